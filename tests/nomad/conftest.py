"""Fixtures of the NOMAD ensemble tests: the default network and a small seeded ensemble, built once."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.nomad.ensemble import sample_ensemble
from mpc_bio.nomad.mca import linearize_ensemble
from mpc_bio.nomad.network import anthranilate_model, build_network
from mpc_bio.nomad.settings import SamplingSettings
from mpc_bio.nomad.steady_state import sample_reference_states


@pytest.fixture(scope="session")
def anthranilate_cobra():
    """The default anthranilate cobra model (read-only: tests must not modify it)."""
    return anthranilate_model()


@pytest.fixture(scope="session")
def anthranilate_network(anthranilate_cobra):
    """The default anthranilate kinetic network (e_coli_core + shikimate branch, no ANPRT)."""
    return build_network(anthranilate_cobra)


@pytest.fixture(scope="session")
def small_ensemble(anthranilate_network):
    """120 models over 6 reference states, seed 3."""
    states = sample_reference_states(anthranilate_network, n_states=6, seed=3)
    return sample_ensemble(anthranilate_network, states, SamplingSettings(n_models=120, seed=3))


@pytest.fixture(scope="session")
def stable_models(small_ensemble):
    """Indices of the linearly stable models of ``small_ensemble`` whose time constant is short."""
    lin = linearize_ensemble(small_ensemble)
    idx = np.flatnonzero((lin.max_real < 0) & (lin.time_constant < 0.2))
    if idx.size < 3:
        pytest.fail("fewer than 3 fast stable models in the seeded test ensemble")
    return idx


@pytest.fixture(scope="module")
def stable_model(small_ensemble, stable_models):
    """(ensemble, index) of the first fast stable model: the strain of the reactor and verification tests."""
    return small_ensemble, int(stable_models[0])
