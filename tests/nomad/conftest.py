"""Fixtures of the NOMAD ensemble tests: the default network and a small seeded ensemble, built once."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.nomad.ensemble import sample_ensemble
from mpc_bio.nomad.mca import compute_control_coefficients, linearize_ensemble
from mpc_bio.nomad.network import anthranilate_model, build_network
from mpc_bio.nomad.settings import SamplingSettings
from mpc_bio.nomad.steady_state import sample_reference_states
from mpc_bio.nomad.verification import VerificationResult


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


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory, small_ensemble, stable_models):
    """The small ensemble and the control coefficients of its first two stable models, saved as the
    ensemble stage writes them (one folder per test module: the design stage writes beside them)."""
    d = tmp_path_factory.mktemp("nomad_ens")
    small_ensemble.save(d / "ensemble")
    compute_control_coefficients(small_ensemble, stable_models[:2]).save(d / "control_coefficients")
    return d


def linear_batch_result(final: np.ndarray, steady: np.ndarray, strains: tuple, **fields) -> VerificationResult:
    """A hand-made batch result: titers rise linearly to ``final`` (strains x models, mM; NaN: not
    simulated) at t = 2 h, glucose falls to 0 at t = 2 h, biomass 1, readout at 2 h; ``fields`` set
    or replace the rest (``product_mw_g_per_mol`` required; ``biomass``, ``viability``, ...)."""
    t = np.array([0.0, 1.0, 2.0])
    ns, nm = final.shape
    product = final[:, :, None] * t / 2.0
    success = np.isfinite(final)
    product[~success] = np.nan
    data = dict(
        mode="batch",
        strains=strains,
        model_ids=tuple(f"m{k}" for k in range(nm)),
        times=t,
        product=product,
        biomass=np.ones((ns, nm, 3)),
        substrate=np.tile(np.array([10.0, 5.0, 0.0]), (ns, nm, 1)),
        volume=np.ones((ns, nm, 3)),
        product_yield=np.full((ns, nm), np.nan),
        success=success,
        messages=np.where(success, "", "not applied (design infeasible in this model)").astype(object),
        seconds=1.0,
        n_simulations=int(success.sum()),
        readout_times=np.full(nm, 2.0),
        steady_state=steady,
    )
    return VerificationResult(**{**data, **fields})
