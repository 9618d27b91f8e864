"""Nonlinear verification: log-linear vs nonlinear steady state, strains x models, the readout
time, and the statistics that count failures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mpc_bio.nomad.dynamics import solve_steady_state
from mpc_bio.nomad.mca import compute_control_coefficients
from mpc_bio.nomad.nra import enumerate_designs, nra_problems_from_control_coefficients
from mpc_bio.nomad.nra_settings import NRASettings, VerificationSettings
from mpc_bio.nomad.reactor import simulate_batch, vmax_fold_from_log_changes
from mpc_bio.nomad.verification import verify_strains
from mpc_bio.nomad.viability import StrainSteadyState
from tests.nomad.conftest import linear_batch_result


def test_log_linear_prediction_matches_nonlinear_steady_state(stable_model):
    """An NRA design limited to 1.05-fold changes, applied as Vmax x fold in the nonlinear model.

    Stated tolerances (ln units): the yield change and every log flux change within 0.02 of the
    log-linear prediction at the design itself (|d| <= ln 1.05 = 0.049); concentrations, whose
    second-order terms are larger (saturated shikimate-pathway enzymes), within 0.05 at half the
    design; and both errors shrink at least 3x when the design is halved again (the log-linear
    error is second order)."""
    ens, i = stable_model
    cc = compute_control_coefficients(ens, [i])
    problem = nra_problems_from_control_coefficients(cc)[0]
    settings = NRASettings(max_enzyme_fold=1.05, min_log_change=0.01, excluded_enzymes=(cc.growth_reaction,), max_designs=1)
    design = enumerate_designs(problem, settings).designs[0]
    assert design.enzymes
    flux_err, conc_err = [], []
    for scale in (1.0, 0.5, 0.25):
        d = design.log_changes * scale
        ss = solve_steady_state(ens, i, vmax_fold=vmax_fold_from_log_changes(ens.network, problem.enzyme_ids, d))
        assert ss.converged
        dlnv = np.log(np.abs(ss.fluxes) / np.abs(ens.network.fluxes))
        dlnx = np.log(ss.concentrations / ens.concentrations[i])
        flux_err.append(float(np.max(np.abs(dlnv - problem.flux_control @ d))))
        conc_err.append(float(np.max(np.abs(dlnx - problem.concentration_control @ d))))
        if scale == 1.0:
            p = problem.reaction_ids.index(problem.product_reaction)
            s = problem.reaction_ids.index(problem.substrate_reaction)
            assert dlnv[p] - dlnv[s] == pytest.approx(design.objective, rel=0, abs=0.02)
    assert flux_err[0] <= 0.02
    assert conc_err[1] <= 0.05
    assert flux_err[2] <= flux_err[1] / 3.0
    assert conc_err[2] <= conc_err[1] / 3.0


def test_verify_strains_reference_first_and_skips_infeasible(stable_model):
    ens, i = stable_model
    nr = ens.network.n_reactions
    up = np.ones((1, nr))
    up[0, ens.network.reaction_index(ens.network.product_reaction)] = 1.5
    skipped = np.full((1, nr), np.nan)
    vs = VerificationSettings(batch_time=3.0, n_points=4)
    res = verify_strains(ens, [i], {"export x1.5": up, "infeasible": skipped}, settings=vs)
    assert res.strains == ("reference", "export x1.5", "infeasible")
    assert res.titer_gain[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert not res.success[2, 0] and "not applied" in res.messages[2, 0]
    assert res.n_simulations == 2
    frame = res.to_frame()
    assert len(frame) == 3
    assert res.summary()["reference"]["n_success"] == 1


def test_batch_readout_is_the_end_of_the_reference_fermentation(stable_model):
    """All strains of a model are compared at one fixed time: when the reference strain's
    glucose falls below 1% of the initial. Independent reference: the ensemble stage's batch
    simulator on a 0.004 h grid. Tolerances: crossing time within 0.02 h (linear interpolation
    between 0.1 h output points), titer at that time within 2e-3 relative (the same interpolation
    of a curve that bends as the glucose runs out)."""
    ens, i = stable_model
    vs = VerificationSettings(batch_time=16.0, n_points=161)
    res = verify_strains(ens, [i], {}, settings=vs)
    dense = simulate_batch(ens, i, 16.0, vs.biomass0, n_points=4001)
    level = 0.01 * dense.substrate[0]
    k = int(np.flatnonzero(dense.substrate <= level)[0])
    t_cross = float(np.interp(level, dense.substrate[k : k - 2 : -1], dense.times[k : k - 2 : -1]))
    assert res.readout_times[0] == pytest.approx(t_cross, abs=0.02)
    assert res.readout_times[0] < 16.0
    assert res.titer[0, 0] == pytest.approx(float(np.interp(t_cross, dense.times, dense.product)), rel=2e-3)
    # with "batch_time" the readout is the last point, i.e. the final titer
    late = verify_strains(ens, [i], {}, settings=VerificationSettings(batch_time=16.0, n_points=161, batch_readout="batch_time"))
    assert late.readout_times[0] == 16.0
    assert late.titer[0, 0] == pytest.approx(late.final_titer[0, 0], rel=1e-12)


def test_compare_counts_failures_hand_computed():
    """compare() on a hand-made result of 4 models: strain A is better in models 0 and 1, worse
    in model 2, not applied in model 3; the baseline B has no valid state in model 1."""
    ns, nm = 3, 4
    final = np.array([[1.0, 1.0, 1.0, 1.0], [2.0, 3.0, 0.5, np.nan], [1.5, 4.0, 0.8, 0.9]])
    biomass = np.ones((ns, nm, 3))
    biomass[1, 0] = 0.7  # A keeps < 80% of the reference biomass in model 0
    ok = StrainSteadyState(True, True, -1.0, 1.0, 1.0, 1.0, 0.0, True)
    bad = StrainSteadyState(False, False, math.nan, math.nan, math.nan, math.nan, math.nan, False, "no steady state reached")
    steady = np.full((ns, nm), ok, dtype=object)
    steady[2, 1] = bad
    steady[1, 3] = None
    res = linear_batch_result(final, steady, ("reference", "A", "B"), product_mw_g_per_mol=137.14, biomass=biomass)
    a_ref = res.compare("A", "reference")
    assert a_ref["fraction_models_titer_higher"] == pytest.approx(2 / 4)
    assert a_ref["n_valid_both"] == 3 and a_ref["n_invalid"] == 1
    assert a_ref["titer_ratio"]["mean"] == pytest.approx((2.0 + 3.0 + 0.5) / 3)
    assert a_ref["fraction_models_growth_kept"] == pytest.approx(2 / 4)  # models 1, 2 kept; 0 below 80%; 3 failed
    a_b = res.compare("A", "B")
    # model 0: 2 > 1.5 win; model 1: B invalid -> win; model 2: 0.5 < 0.8 loss; model 3: A not applied -> loss
    assert a_b["fraction_models_titer_higher"] == pytest.approx(2 / 4)
    assert a_b["n_valid_both"] == 2
    s = res.summary()
    assert s["B"]["n_valid"] == 3 and set(s["B"]["failures"]) == {"m1"}
    assert s["A"]["n_valid"] == 3 and "not applied" in s["A"]["failures"]["m3"]
    assert s["A"]["mean_titer_gain"] == pytest.approx(np.mean([1.0, 2.0, -0.5]))


def _hand_made_result():
    """4 models, strains reference / A / B with readout titers ``final`` (see the compare test);
    B's steady state in model 1 lies outside the physiological range (a viability failure
    with a successful simulation), A is not applied in model 3."""
    ns, nm = 3, 4
    final = np.array([[1.0, 2.0, 1.0, 1.0], [2.0, 3.0, 0.5, np.nan], [1.5, 8.0, 0.8, 0.9]])
    ok = StrainSteadyState(True, True, -1.0, 1.0, 1.0, 1.0, 0.0, True, "", 0.01, 5.0, True)
    far = StrainSteadyState(True, True, -1.0, 1.0, 1.0, 1.0, 9.0, True, "steady state outside the physiological range", 0.01, 4.0e3, False)
    steady = np.full((ns, nm), ok, dtype=object)
    steady[2, 1] = far
    steady[1, 3] = None
    return linear_batch_result(final, steady, ("reference", "A", "B"), product_mw_g_per_mol=137.14, physiological_range=(3e-4, 30.0))


def test_titer_statistics_three_conventions_hand_computed():
    """Titer ratios to the reference (readout titers 1, 2, 1, 1): A = 2, 1.5, 0.5, not applied;
    B = 1.5, 4 (steady state outside the range: not viable), 0.8, 0.9. Means and medians by hand
    (exact, rel 1e-12)."""
    res = _hand_made_result()
    assert not res.valid[2, 1] and res.success[2, 1]
    assert "physiological range" in res.failure[2, 1]
    a = res.titer_statistics("A")
    assert a["failures_as_zero"]["mean"] == pytest.approx((2.0 + 1.5 + 0.5 + 0.0) / 4, rel=1e-12)
    assert a["failures_as_zero"]["median"] == pytest.approx((0.5 + 1.5) / 2, rel=1e-12)
    assert a["valid"]["mean"] == pytest.approx((2.0 + 1.5 + 0.5) / 3, rel=1e-12) and a["valid"]["n"] == 3
    assert a["as_simulated"]["mean"] == pytest.approx((2.0 + 1.5 + 0.5) / 3, rel=1e-12) and a["as_simulated"]["n"] == 3
    assert a["wins"] == 2 and a["n_models"] == 4
    b = res.titer_statistics("B")
    assert b["failures_as_zero"]["mean"] == pytest.approx((1.5 + 0.0 + 0.8 + 0.9) / 4, rel=1e-12)
    assert b["valid"]["mean"] == pytest.approx((1.5 + 0.8 + 0.9) / 3, rel=1e-12)
    # as simulated, B's out-of-range strain counts with its ratio 4 and lifts the mean above A's
    assert b["as_simulated"]["mean"] == pytest.approx((1.5 + 4.0 + 0.8 + 0.9) / 4, rel=1e-12)
    assert b["as_simulated"]["mean"] > a["as_simulated"]["mean"]
    assert b["per_model"]["m1"] == {"ratio": pytest.approx(4.0), "valid": False, "failure": res.failure[2, 1]}
    # A against B: model 0 win (2 > 1.5), model 1 win (B not viable), model 2 loss, model 3 loss
    assert res.titer_statistics("A", "B")["wins"] == 2
    assert res.summary()["A"]["titer_ratio_vs_reference"]["failures_as_zero"]["mean"] == pytest.approx(1.0, rel=1e-12)
