"""The iCH360 case: reference states consistent with component-contribution Delta_r G'0 (the shipped model and estimates)."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.nomad.ensemble import sample_ensemble
from mpc_bio.nomad.kinetics import evaluate_rates
from mpc_bio.nomad.network import build_network, ich360_anthranilate_model
from mpc_bio.nomad.settings import NetworkSettings, SamplingSettings, SteadyStateSettings
from mpc_bio.nomad.steady_state import (
    GAS_CONSTANT,
    PHYSIOLOGICAL_CONCENTRATIONS,
    load_dg0,
    medium_exchange_bounds,
    sample_reference_states,
)


@pytest.fixture(scope="module")
def ich360_case(ich360_path):
    model = ich360_anthranilate_model(ich360_path)
    net = build_network(model, NetworkSettings(model="ich360", substrate_reaction="GLCptspp"))  # unreduced
    d = ich360_path.parent
    settings = SteadyStateSettings(dg0_mean_path=str(d / "drg0_prime_mean.csv"), dg0_cov_sqrt_path=str(d / "drg0_cov_sqrt.csv"), n_states=4)
    thermo = load_dg0(settings.dg0_mean_path, settings.dg0_cov_sqrt_path)
    states = sample_reference_states(net, settings, seed=2, thermodynamics=thermo)
    return net, settings, thermo, states


def test_ich360_network_has_branch_without_anprt(ich360_case):
    net = ich360_case[0]
    assert "ANPRT" not in net.reaction_ids
    for rid in ("DDPA", "SHKK", "CHORS", "ANS", "ANTHt"):
        assert rid in net.reaction_ids
    assert np.abs(net.stoichiometry @ net.fluxes).max() == pytest.approx(0.0, abs=1e-6)


def test_ich360_states_agree_with_dg0(ich360_case):
    net, settings, thermo, st = ich360_case
    rt = GAS_CONSTANT * settings.temperature
    known = np.isfinite(st.dg0[0])
    assert known.sum() > 0.8 * net.n_reactions
    # every displacement has the sign opposite to its flux, with at least the minimal driving force
    assert np.all(-np.sign(st.fluxes) * st.ln_displacement >= settings.min_driving_force - 1e-9)
    assert np.all(np.sign(st.fluxes) == np.sign(net.fluxes))
    # Keq consistent with the sampled dG'0: ln Keq(mM) = -dG'0/RT + sum(nu) ln 1000
    nu_sum = net.stoichiometry.sum(axis=0) + net.fixed_stoichiometry.sum(axis=0)
    expected = -st.dg0[:, known] / rt + nu_sum[known] * np.log(1000.0)
    np.testing.assert_allclose(st.ln_keq[:, known], expected, rtol=1e-9, atol=1e-8)
    # dG'0 within the stated uncertainty: dG0 = mean + Q z with |z| <= z_bound (least-squares z)
    index = {r: i for i, r in enumerate(thermo.reaction_ids)}
    est = np.array([k and r in index for r, k in zip(net.reaction_ids, known)])
    rows = [index[r] for r, k in zip(net.reaction_ids, est) if k]
    assert np.all(np.abs(st.dg0[:, est] - thermo.mean[rows]) <= settings.dg0_z_bound * np.abs(thermo.cov_sqrt[rows]).sum(axis=1) + 1e-9)
    np.testing.assert_array_equal(st.dg0[:, known & ~est], 0.0)  # one-species transports: Delta_r G'0 = 0
    lo, hi = settings.concentration_bounds
    medium = medium_exchange_bounds(net, settings)  # periplasmic medium species: around the medium's concentration
    assert "glc__D_p" in medium
    free = [i for i, m in enumerate(net.metabolite_ids) if m not in PHYSIOLOGICAL_CONCENTRATIONS and m not in medium]
    c = st.concentrations[:, free]
    assert np.all((c >= lo * (1 - 1e-9)) & (c <= hi * (1 + 1e-9)))
    for m, (a, b) in medium.items():
        c = st.concentrations[:, net.metabolite_ids.index(m)]
        assert np.all((c >= a * (1 - 1e-9)) & (c <= b * (1 + 1e-9))), m


def test_ich360_models_reproduce_reference_fluxes(ich360_case):
    net, _, _, st = ich360_case
    ens = sample_ensemble(net, st, SamplingSettings(n_models=8, seed=1))
    v = evaluate_rates(net, *ens.parameters())
    np.testing.assert_allclose(v, ens.fluxes, rtol=1e-9, atol=1e-12)
