"""Allosteric regulation: each modifier kind against its closed form, strain modifications, MCA vs finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.nomad.ensemble import sample_ensemble
from mpc_bio.nomad.kinetics import evaluate_rates
from mpc_bio.nomad.network import NetworkError, build_network
from mpc_bio.nomad.regulation import (
    AROG_FBR,
    ROLE_ACTIVATOR,
    ROLE_COMPETITIVE,
    ROLE_NONCOMPETITIVE,
    ROLE_UNCOMPETITIVE,
    RegulationError,
    StrainModification,
    apply_strain,
)
from mpc_bio.nomad.settings import NetworkSettings, SamplingSettings
from mpc_bio.nomad.steady_state import sample_reference_states

KINDS = ("noncompetitive", "competitive", "uncompetitive", "mixed", "activation")


@pytest.fixture(scope="module")
def regulated(anthranilate_cobra):
    """One small network per kind: DDPA (e4p + pep -> 2dda7p + pi) modified by g6p_c; 4 models each."""
    out = {}
    for kind in KINDS:
        net = build_network(anthranilate_cobra, NetworkSettings(regulations=(("DDPA", "g6p_c", kind),), strict_regulations=True))
        st = sample_reference_states(net, n_states=2, seed=5)
        out[kind] = sample_ensemble(net, st, SamplingSettings(n_models=4, seed=5))
    return out


def _ddpa_closed_form(ens, i, x_all, kind):
    """DDPA's rate written by hand from its slots (convenience kinetics with the modifier)."""
    net = ens.network
    j = net.reaction_index("DDPA")
    K = ens.km[i]
    slots = np.flatnonzero(net.slot_reaction == j)
    col = np.concatenate([net.stoichiometry[:, j], net.fixed_stoichiometry[:, j]])
    gamma = np.prod(x_all[col != 0] ** col[col != 0])
    f_t = 1 - gamma / np.exp(ens.ln_keq[i, j])
    subs = [k for k in slots if net.slot_role[k] == 1]
    prods = [k for k in slots if net.slot_role[k] == -1]
    num = np.prod([x_all[net.slot_species[k]] / K[k] for k in subs])
    D = np.prod([1 + x_all[net.slot_species[k]] / K[k] for k in subs]) + np.prod([1 + x_all[net.slot_species[k]] / K[k] for k in prods]) - 1
    I = x_all[net.species_ids.index("g6p_c")]
    role = {int(net.slot_role[k]): K[k] for k in slots if abs(net.slot_role[k]) >= 2}
    base = ens.vmax[i, j] * f_t * num
    if kind == "noncompetitive":
        return base / D * role[ROLE_NONCOMPETITIVE] / (role[ROLE_NONCOMPETITIVE] + I)
    if kind == "competitive":
        return base / (D + I / role[ROLE_COMPETITIVE])
    if kind == "uncompetitive":
        return base / (1 + (D - 1) * (1 + I / role[ROLE_UNCOMPETITIVE]))
    if kind == "mixed":
        return base / (1 + I / role[ROLE_COMPETITIVE] + (D - 1) * (1 + I / role[ROLE_UNCOMPETITIVE]))
    return base / D * I / (role[ROLE_ACTIVATOR] + I)


@pytest.mark.parametrize("kind", KINDS)
def test_modifier_matches_closed_form(regulated, kind):
    """Away from the reference (every concentration scaled 0.5x-2x): rel 1e-12, abs 1e-15 mmol/gDW/h."""
    ens = regulated[kind]
    net = ens.network
    assert int(np.sum(np.abs(net.slot_role) >= 2)) == (2 if kind == "mixed" else 1)
    v_ref = evaluate_rates(net, *ens.parameters())
    np.testing.assert_allclose(v_ref, ens.fluxes, rtol=1e-9, atol=1e-12)  # the reference is reproduced
    i = 1
    x = ens.concentrations[i] * np.linspace(0.5, 2.0, net.n_metabolites)
    x_all = np.concatenate([x, ens.fixed_concentrations])
    v = evaluate_rates(net, x, ens.fixed_concentrations, ens.km[i], ens.ln_keq[i], ens.vmax[i])
    expected = _ddpa_closed_form(ens, i, x_all, kind)
    assert v[net.reaction_index("DDPA")] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # inhibitors lower the rate and activators raise it as the modifier grows
    x2 = x.copy()
    x2[net.metabolite_ids.index("g6p_c")] *= 2.0
    v2 = evaluate_rates(net, x2, ens.fixed_concentrations, ens.km[i], ens.ln_keq[i], ens.vmax[i])
    j = net.reaction_index("DDPA")
    assert (v2[j] > v[j]) if kind == "activation" else (v2[j] < v[j])


@pytest.mark.parametrize("kind", ("noncompetitive", "activation"))
def test_removing_the_regulation_changes_only_its_reaction(regulated, kind):
    """Removal (aroG^fbr style) multiplies DDPA's reference rate by (Ki + I)/Ki, resp. (Ka + I)/I (rel 1e-12);
    Vmax folds multiply their reactions exactly; every other rate is unchanged (bit for bit)."""
    ens = regulated[kind]
    net = ens.network
    strain = StrainModification("test", vmax_folds=(("TKT1", 5.0), ("TKT2", 5.0)), removed_regulations=(("DDPA", None),))
    x, xf, K, lk, vm = ens.parameters()
    K2, vm2 = apply_strain(net, K, vm, strain)
    assert not np.shares_memory(K2, K) and np.array_equal(ens.km, K)  # inputs untouched
    v0 = evaluate_rates(net, x, xf, K, lk, vm)
    v1 = evaluate_rates(net, x, xf, K2, lk, vm2)
    j = net.reaction_index("DDPA")
    k = int(np.flatnonzero(np.abs(net.slot_role) >= 2)[0])
    I = x[:, net.metabolite_ids.index("g6p_c")]
    factor = (K[:, k] + I) / K[:, k] if kind == "noncompetitive" else (K[:, k] + I) / I
    np.testing.assert_allclose(v1[:, j] / v0[:, j], factor, rtol=1e-12, atol=0)
    for rid in ("TKT1", "TKT2"):
        np.testing.assert_allclose(v1[:, net.reaction_index(rid)] / v0[:, net.reaction_index(rid)], 5.0, rtol=1e-12, atol=0)
    others = [m for m in range(net.n_reactions) if net.reaction_ids[m] not in ("DDPA", "TKT1", "TKT2")]
    np.testing.assert_array_equal(v1[:, others], v0[:, others])


def test_clear_errors(anthranilate_cobra, regulated):
    net = regulated["noncompetitive"].network
    with pytest.raises(RegulationError, match="phe__L_c"):
        apply_strain(net, regulated["noncompetitive"].km, regulated["noncompetitive"].vmax, AROG_FBR)
    with pytest.raises(ValueError, match="kind one of"):
        NetworkSettings(regulations=(("DDPA", "g6p_c", "allosteric"),))
    with pytest.raises(NetworkError, match="needs the convenience rate law"):
        build_network(anthranilate_cobra, NetworkSettings(regulations=(("ANTHt", "g6p_c", "competitive"),)))
    with pytest.raises(ValueError, match="vmax_folds"):
        StrainModification("bad", vmax_folds=(("TKT1", 0.0),))


def test_control_coefficients_match_finite_differences_with_regulation_and_tfa_states(anthranilate_cobra):
    """A regulated small network (mixed, competitive, activation) with TFA states whose fluxes differ per
    state: C^v and C^x against central differences of the nonlinear steady state (step 1e-4; tolerance
    abs 2e-3 + rel 2e-3, as the unregulated test)."""
    from mpc_bio.metabolism.models import ich360_gibbs_energy_files
    from mpc_bio.nomad.dynamics import solve_steady_state
    from mpc_bio.nomad.mca import compute_control_coefficients, linearize_ensemble
    from mpc_bio.nomad.settings import SteadyStateSettings

    regs = (("DDPA", "g6p_c", "mixed"), ("PFK", "pep_c", "competitive"), ("PYK", "fdp_c", "activation"))
    net = build_network(anthranilate_cobra, NetworkSettings(regulations=regs, strict_regulations=True))
    mean, cov = ich360_gibbs_energy_files()
    st = sample_reference_states(
        net,
        SteadyStateSettings(method="tfa", dg0_mean_path=str(mean), dg0_cov_sqrt_path=str(cov), n_states=4, hit_and_run_thinning=10),
        seed=3,
    )
    ens = sample_ensemble(net, st, SamplingSettings(n_models=80, seed=3))
    lin = linearize_ensemble(ens)
    stable = np.flatnonzero((lin.max_real < 0) & (lin.time_constant < 0.5))
    assert stable.size > 0, "no stable model in the seeded regulated ensemble"
    i = int(stable[0])
    assert np.ptp(ens.fluxes, axis=0).max() > 0  # the models' reference fluxes differ
    cc = compute_control_coefficients(ens, [i])
    n, h = net.n_reactions, 1e-4
    fdv, fdx = np.zeros((n, n)), np.zeros((net.n_metabolites, n))
    for j in range(n):
        up, dn = np.ones(n), np.ones(n)
        up[j], dn[j] = 1 + h, 1 - h
        sp, sm = solve_steady_state(ens, i, up), solve_steady_state(ens, i, dn)
        assert sp.converged and sm.converged, (sp.message, sm.message)
        d = np.log(1 + h) - np.log(1 - h)
        fdv[:, j] = (np.log(np.abs(sp.fluxes)) - np.log(np.abs(sm.fluxes))) / d
        fdx[:, j] = (np.log(sp.concentrations) - np.log(sm.concentrations)) / d
    np.testing.assert_allclose(cc.flux[0], fdv, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(cc.concentration[0], fdx, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(cc.reference_fluxes[0], ens.fluxes[i], rtol=0, atol=0)


@pytest.mark.slow
def test_arog_fbr_on_the_default_network():
    """aroG^fbr removes only DDPA's phenylalanine inhibition: DDPA x (Ki + phe)/Ki, all other rates equal."""
    net = build_network()
    st = sample_reference_states(net, n_states=2, seed=0)
    ens = sample_ensemble(net, st, SamplingSettings(n_models=4, seed=0))
    x, xf, K, lk, vm = ens.parameters()
    K2, vm2 = apply_strain(net, K, vm, AROG_FBR)
    v0, v1 = evaluate_rates(net, x, xf, K, lk, vm), evaluate_rates(net, x, xf, K2, lk, vm2)
    j = net.reaction_index("DDPA")
    phe = net.species_ids.index("phe__L_c")
    k = int(np.flatnonzero((net.slot_reaction == j) & (net.slot_species == phe) & (net.slot_role <= -2))[0])
    np.testing.assert_allclose(v1[:, j] / v0[:, j], (K[:, k] + x[:, phe]) / K[:, k], rtol=1e-12, atol=0)
    others = [m for m in range(net.n_reactions) if m != j]
    np.testing.assert_array_equal(v1[:, others], v0[:, others])
