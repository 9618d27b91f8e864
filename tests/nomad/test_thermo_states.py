"""Thermodynamically consistent reference states (TFA-style sampling) against closed forms, per state."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.metabolism.models import ich360_gibbs_energy_files
from mpc_bio.nomad.ensemble import sample_ensemble
from mpc_bio.nomad.kinetics import evaluate_rates
from mpc_bio.nomad.settings import SamplingSettings, SteadyStateSettings
from mpc_bio.nomad.steady_state import (
    GAS_CONSTANT,
    PHYSIOLOGICAL_CONCENTRATIONS,
    cofactor_ratios,
    hit_and_run,
    load_dg0,
    sample_reference_states,
)


def _settings(**kw) -> SteadyStateSettings:
    mean, cov = ich360_gibbs_energy_files()
    return SteadyStateSettings(**{"method": "tfa", "dg0_mean_path": str(mean), "dg0_cov_sqrt_path": str(cov), "n_states": 6, **kw})


@pytest.fixture(scope="module")
def tfa_case(anthranilate_network):
    """The small network with iCH360's Delta_r G'0 estimates (ids shared with e_coli_core), 6 states, seed 4."""
    settings = _settings()
    return anthranilate_network, settings, sample_reference_states(anthranilate_network, settings, seed=4)


def _bounds(net, settings):
    lo = np.full(net.n_metabolites, settings.concentration_bounds[0])
    hi = np.full(net.n_metabolites, settings.concentration_bounds[1])
    for i, m in enumerate(net.metabolite_ids):
        if m in PHYSIOLOGICAL_CONCENTRATIONS:
            lo[i] = PHYSIOLOGICAL_CONCENTRATIONS[m] / settings.physiological_fold
            hi[i] = PHYSIOLOGICAL_CONCENTRATIONS[m] * settings.physiological_fold
    return lo, hi


def test_gibbs_energies_close_per_state(tfa_case):
    """dG' = dG'0 + RT sum_i nu_i ln(c_i / 1 M) recomputed per state from the concentrations and dG'0
    (rel 1e-9, abs 1e-9 kJ/mol), opposite to each state's flux with |dG'|/RT >= min_driving_force,
    ln Keq (mM basis) = -dG'0/RT + sum nu ln 1000 (abs 1e-9), concentrations within their bounds."""
    net, settings, st = tfa_case
    rt = GAS_CONSTANT * settings.temperature
    known = np.isfinite(st.dg0[0])
    g = net.reaction_index(net.growth_reaction)
    assert known.sum() >= net.n_reactions - 6  # e_coli_core ids without an iCH360 estimate: growth, GLCpts, ETC
    ln_c_molar = np.log(np.hstack([st.concentrations, np.broadcast_to(st.fixed_concentrations, (st.n_states, net.n_fixed))]) * 1e-3)
    S_all = np.vstack([net.stoichiometry, net.fixed_stoichiometry])
    for k in range(st.n_states):
        dg = st.dg0[k, known] + rt * (ln_c_molar[k] @ S_all[:, known])
        np.testing.assert_allclose(st.ln_displacement[k, known] * rt, dg, rtol=1e-9, atol=1e-9)
        v = st.fluxes[k]
        assert np.all(-np.sign(v[known]) * dg / rt >= settings.min_driving_force - 1e-9)
        nu = S_all[:, known].sum(axis=0)
        np.testing.assert_allclose(st.ln_keq[k, known], -st.dg0[k, known] / rt + nu * np.log(1000.0), rtol=0, atol=1e-9)
    # every displacement (with or without an estimate) is opposite to the flux
    disp = np.delete(st.ln_displacement, g, axis=1)
    flux = np.delete(st.fluxes, g, axis=1)
    assert np.all(-np.sign(flux) * disp >= settings.min_driving_force - 1e-9)
    lo, hi = _bounds(net, settings)
    assert np.all(st.concentrations >= lo * (1 - 1e-9)) and np.all(st.concentrations <= hi * (1 + 1e-9))
    # dG'0 within its uncertainty: |dG'0 - mean| <= z_bound * sum_k |Q_jk|
    thermo = load_dg0(settings.dg0_mean_path, settings.dg0_cov_sqrt_path)
    idx = {r: i for i, r in enumerate(thermo.reaction_ids)}
    for j in np.flatnonzero(known):
        rid = net.reaction_ids[j]
        if rid not in idx:  # a one-species transport: Delta_r G'0 = 0
            assert net.rate_laws[j] == "mass_action"
            np.testing.assert_array_equal(st.dg0[:, j], 0.0)
            continue
        bound = settings.dg0_z_bound * np.abs(thermo.cov_sqrt[idx[rid]]).sum()
        assert np.all(np.abs(st.dg0[:, j] - thermo.mean[idx[rid]]) <= bound + 1e-9), rid


def test_flux_profiles_are_steady_and_within_bounds(tfa_case):
    """Each state's fluxes: S v = 0 and the cytosolic proton balance (abs 1e-9), substrate and product
    at the reference (rel 1e-9), directions kept within the fold, growth >= 80 % of the reference."""
    net, settings, st = tfa_case
    assert st.fluxes.shape == (st.n_states, net.n_reactions)
    np.testing.assert_allclose(st.fluxes @ net.stoichiometry.T, 0.0, rtol=0, atol=1e-9)
    h = net.excluded_ids.index("h_c")
    np.testing.assert_allclose(st.fluxes @ net.excluded_stoichiometry[h], 0.0, rtol=0, atol=1e-9)
    for rid in (net.product_reaction, net.substrate_reaction):
        j = net.reaction_index(rid)
        np.testing.assert_allclose(st.fluxes[:, j], net.fluxes[j], rtol=1e-9, atol=0)
    ratio = st.fluxes / net.fluxes
    f = settings.flux_fold
    assert np.all(ratio >= 1 / f - 1e-9) and np.all(ratio <= f + 1e-9)
    g = net.reaction_index(net.growth_reaction)
    assert np.all(st.fluxes[:, g] >= settings.flux_growth_fraction * net.fluxes[g] - 1e-9)
    assert np.ptp(st.fluxes, axis=0).max() > 1e-3  # the profiles differ between states


def test_models_reproduce_their_state_fluxes(tfa_case):
    net, _, st = tfa_case
    ens = sample_ensemble(net, st, SamplingSettings(n_models=12, seed=2))
    v = evaluate_rates(net, *ens.parameters())
    np.testing.assert_allclose(v, ens.fluxes, rtol=1e-9, atol=1e-12)


def test_cofactor_ratios_closed_form(tfa_case):
    net, settings, st = tfa_case
    r = cofactor_ratios(net, st)
    x = dict(zip(net.metabolite_ids, st.concentrations.T))
    np.testing.assert_allclose(r["atp_adp"], x["atp_c"] / x["adp_c"], rtol=1e-15, atol=0)
    np.testing.assert_allclose(r["nadph_nadp"], x["nadph_c"] / x["nadp_c"], rtol=1e-15, atol=0)
    f = settings.physiological_fold
    P = PHYSIOLOGICAL_CONCENTRATIONS
    assert np.all(r["atp_adp"] <= P["atp_c"] / P["adp_c"] * f * f * (1 + 1e-9))
    assert np.all(r["nadh_nad"] >= P["nadh_c"] / P["nad_c"] / f / f * (1 - 1e-9))


def test_sampling_is_seeded(anthranilate_network):
    quick = _settings(n_states=2, hit_and_run_thinning=2)
    a = sample_reference_states(anthranilate_network, quick, seed=9)
    b = sample_reference_states(anthranilate_network, quick, seed=9)
    np.testing.assert_array_equal(a.concentrations, b.concentrations)
    np.testing.assert_array_equal(a.fluxes, b.fluxes)


_SAMPLE_SCRIPT = """
import hashlib, numpy as np
from mpc_bio.metabolism.models import ich360_gibbs_energy_files
from mpc_bio.nomad.network import anthranilate_model, build_network
from mpc_bio.nomad.settings import SteadyStateSettings
from mpc_bio.nomad.steady_state import sample_reference_states
mean, cov = ich360_gibbs_energy_files()
s = SteadyStateSettings(method="tfa", dg0_mean_path=str(mean), dg0_cov_sqrt_path=str(cov), n_states=2, hit_and_run_thinning=50)
st = sample_reference_states(build_network(anthranilate_model()), s, seed=0)
print(hashlib.sha256(np.ascontiguousarray(np.hstack([st.concentrations, st.fluxes])).tobytes()).hexdigest())
"""


def test_sampled_states_do_not_depend_on_the_blas_thread_count(tmp_path):
    """The same seed gives bit-identical states with one and with two BLAS threads (the chain turns
    last-digit differences of a threaded product or factorisation into different samples)."""
    import os
    import subprocess
    import sys

    digests = []
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", _SAMPLE_SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
        digests.append(out.stdout.strip().splitlines()[-1])
    assert digests[0] == digests[1]


def test_hit_and_run_is_uniform_on_a_simplex():
    """Uniform on {y >= 0, sum y <= 1} in 3-D: mean 1/4, variance 3/80 per coordinate (abs 0.02 / 0.006
    with 3,000 samples, thinning 5, seed 0)."""
    d = 3
    G = np.vstack([-np.eye(d), np.ones((1, d))])
    h = np.concatenate([np.zeros(d), [1.0]])
    y = hit_and_run(G, h, np.full(d, 0.2), 3000, 5, np.random.default_rng(0))
    assert np.all(G @ y.T <= h[:, None] + 1e-12)
    np.testing.assert_allclose(y.mean(axis=0), 0.25, rtol=0, atol=0.02)
    np.testing.assert_allclose(y.var(axis=0), 3 / 80, rtol=0, atol=0.006)


@pytest.mark.slow
def test_default_states_from_ich360():
    """The default (iCH360 trpD9923) network: 'auto' takes the shipped estimates; every reaction but growth
    has a Delta_r G'0; cofactor ratios within their physiological ranges."""
    from mpc_bio.nomad.network import build_network

    net = build_network()
    settings = SteadyStateSettings(n_states=8)
    st = sample_reference_states(net, settings, seed=0)
    g = net.reaction_index(net.growth_reaction)
    assert np.isfinite(np.delete(st.dg0, g, axis=1)).all()
    r = cofactor_ratios(net, st)
    assert np.all((r["energy_charge"] > 0.5) & (r["energy_charge"] < 1.0))
    P, f = PHYSIOLOGICAL_CONCENTRATIONS, settings.physiological_fold
    for name, a, b in (("atp_adp", "atp_c", "adp_c"), ("nadh_nad", "nadh_c", "nad_c"), ("nadph_nadp", "nadph_c", "nadp_c")):
        assert np.all(r[name] >= P[a] / P[b] / f**2 * (1 - 1e-9)) and np.all(r[name] <= P[a] / P[b] * f**2 * (1 + 1e-9))
    ens = sample_ensemble(net, st, SamplingSettings(n_models=8, seed=1))
    np.testing.assert_allclose(evaluate_rates(net, *ens.parameters()), ens.fluxes, rtol=1e-9, atol=1e-12)
