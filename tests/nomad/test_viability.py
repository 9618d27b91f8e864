"""Viability of engineered strains: steady state, stability and the physiological range."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.nomad.dynamics import simulate_relaxation, solve_steady_state
from mpc_bio.nomad.mca import linearize_ensemble
from mpc_bio.nomad.nra_settings import NRASettings, VerificationSettings
from mpc_bio.nomad.verification import verify_strains
from mpc_bio.nomad.viability import ViabilityRule, strain_steady_state


@pytest.fixture(scope="module")
def small_design(stable_model):
    """(vmax fold, strain_steady_state, independent solve_steady_state) of the small design
    DDPA x1.3, PGI x0.8 in the first fast stable model, built once for this module."""

    ens, i = stable_model
    net = ens.network
    fold = np.ones(net.n_reactions)
    fold[net.reaction_index("DDPA")] = 1.3
    fold[net.reaction_index("PGI")] = 0.8
    return fold, strain_steady_state(ens, i, fold), solve_steady_state(ens, i, vmax_fold=fold)


def test_strain_steady_state_of_reference_and_small_design(stable_model, small_design):
    """The reference strain is its own steady state (ratios 1 within 1e-9) with the eigenvalue
    of the linear screen (rel 1e-9); a small design's ratios equal those of an independent
    Newton solve (solve_steady_state, 1e-9)."""

    ens, i = stable_model
    ref = strain_steady_state(ens, i)
    assert ref.valid and ref.directions_kept
    assert ref.growth_ratio == pytest.approx(1.0, abs=1e-9)
    assert ref.yield_ratio == pytest.approx(1.0, abs=1e-9)
    assert ref.max_abs_log_concentration_change == pytest.approx(0.0, abs=1e-9)
    assert ref.max_real_eigenvalue == pytest.approx(float(linearize_ensemble(ens, [i]).max_real[0]), rel=1e-9)
    net = ens.network
    fold, s, direct = small_design
    assert s.valid and direct.converged
    g, p, u = (net.reaction_index(r) for r in (net.growth_reaction, net.product_reaction, net.substrate_reaction))
    assert s.growth_ratio == pytest.approx(direct.fluxes[g] / net.fluxes[g], rel=1e-9)
    assert s.yield_ratio == pytest.approx((direct.fluxes[p] / net.fluxes[p]) / (direct.fluxes[u] / net.fluxes[u]), rel=1e-9)


def test_strain_without_steady_state_counts_as_a_failure(stable_model):
    """50x glucose uptake overruns the downstream enzymes: no steady state (independent witness:
    the intracellular ODE keeps drifting, max |ln x/x_ref| grows by > 1 between 5 h and 50 h or
    the integrator gives up). The strain is then invalid and loses against the reference in
    every statistic, even though its batch simulation ran."""

    ens, i = stable_model
    net = ens.network
    fold = np.ones(net.n_reactions)
    fold[net.reaction_index(net.substrate_reaction)] = 50.0
    s = strain_steady_state(ens, i, fold)
    assert not s.valid and not s.converged and "no steady state" in s.message
    x_ref = ens.concentrations[i]
    x5, ok5, _ = simulate_relaxation(ens, i, x_ref, 5.0, vmax_fold=fold)
    x50, ok50, _ = simulate_relaxation(ens, i, x_ref, 50.0, vmax_fold=fold)
    drift = lambda x: float(np.max(np.abs(np.log(x / x_ref))))
    assert not ok50 or not ok5 or drift(x50) > drift(x5) + 1.0
    res = verify_strains(ens, [i], {"uptake x50": fold[None, :]}, settings=VerificationSettings(batch_time=8.0, n_points=33))
    k = res.strains.index("uptake x50")
    assert not res.valid[k, 0] and res.valid[0, 0]
    assert "no steady state" in res.failure[k, 0]
    cmp = res.compare("uptake x50")
    assert cmp["n_valid_both"] == 0 and cmp["n_invalid"] == 1
    assert cmp["fraction_models_titer_higher"] == 0.0 and cmp["fraction_models_growth_kept"] == 0.0
    summary = res.summary()["uptake x50"]
    assert summary["n_valid"] == 0 and summary["mean_titer_gain"] is None
    assert "no steady state" in summary["failures"][res.model_ids[0]]


def test_steady_state_outside_physiological_range_is_not_viable(stable_model):
    """An absolute concentration range still marks a steady state outside it (the reference
    inside the ensemble's envelope, outside half of it)."""

    ens, i = stable_model
    x = ens.concentrations[i]
    inside = strain_steady_state(ens, i, concentration_range=(float(ens.concentrations.min()), float(ens.concentrations.max())))
    assert inside.valid and inside.within_range
    assert inside.max_concentration == pytest.approx(float(x.max()), rel=1e-9)
    assert inside.min_concentration == pytest.approx(float(x.min()), rel=1e-9)
    outside = strain_steady_state(ens, i, concentration_range=(float(x.min()) / 2, float(x.max()) / 2))
    assert outside.converged and outside.stable and not outside.within_range and not outside.valid
    assert "physiological range" in outside.message
    with pytest.raises(ValueError, match="viability_concentration_fold"):
        VerificationSettings(viability_concentration_fold=1.0)
    with pytest.raises(ValueError, match="concentration_range"):
        strain_steady_state(ens, i, concentration_range=(1.0, 0.5))


def test_viability_rule_is_the_nra_bound_relative_to_each_model(stable_model, small_design):
    """The rule's concentration bound is max |ln(x/x_ref)| against the model's own reference,
    from an independent Newton solve (rel 1e-9): a rule whose fold is 1 % above the design's
    largest change passes it, 1 % below fails it; the growth bound likewise around the steady
    state's growth ratio. verify_strains applies one rule per strain, the reference included."""

    ens, i = stable_model
    fold, s, direct = small_design
    dln = float(np.max(np.abs(np.log(direct.concentrations / ens.concentrations[i]))))
    assert s.max_abs_log_concentration_change == pytest.approx(dln, rel=1e-9)
    assert s.converged and s.stable and dln > 0.01
    f = float(np.exp(dln))
    assert ViabilityRule(f * 1.01, None).viable(s)
    assert "concentration bound" in ViabilityRule(f / 1.01, None).failure(s)
    g = s.growth_ratio
    assert ViabilityRule(None, min(1.0, g * 0.99)).viable(s)
    if g * 1.01 <= 1.0:
        assert "growth" in ViabilityRule(None, g * 1.01).failure(s)
    assert ViabilityRule.from_nra(NRASettings(max_concentration_fold=2.0, max_growth_reduction=0.3)) == ViabilityRule(2.0, 0.7)
    with pytest.raises(ValueError, match="concentration_fold"):
        ViabilityRule(1.0, 0.8)
    with pytest.raises(ValueError, match="min_growth_ratio"):
        ViabilityRule(3.0, 1.5)
    vs = VerificationSettings(batch_time=2.0, n_points=5)
    res = verify_strains(ens, [i], {"d": fold[None, :]}, settings=vs, viability={"d": ViabilityRule(f / 1.01, None)})
    assert res.valid[0, 0] and not res.valid[1, 0] and res.success[1, 0]
    res = verify_strains(ens, [i], {"d": fold[None, :]}, settings=vs, viability=ViabilityRule(f * 1.01, None))
    assert res.valid[1, 0] and res.viability == (ViabilityRule(f * 1.01, None),) * 2
    with pytest.raises(ValueError, match="viability"):
        verify_strains(ens, [i], {"d": fold[None, :]}, settings=vs, viability={"e": ViabilityRule()})
