"""Nonlinear verification: reactor model vs closed forms and the ensemble stage, log-linear vs
nonlinear steady state, sensitivity sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mpc_bio.nomad.dynamics import simulate_batch, solve_steady_state
from mpc_bio.nomad.mca import compute_control_coefficients
from mpc_bio.nomad.nra import enumerate_designs, nra_problems_from_control_coefficients
from mpc_bio.nomad.nra_settings import NRASettings, SensitivitySettings, VerificationSettings
from mpc_bio.nomad.verification import (
    FeedProfile,
    expression_sensitivity,
    simulate_reactor,
    verify_strains,
    vmax_fold_from_log_changes,
)


@pytest.fixture(scope="module")
def model(small_ensemble, stable_models):
    return small_ensemble, int(stable_models[0])


def test_batch_matches_ensemble_stage_batch(model):
    ens, i = model
    vs = VerificationSettings(t_end_h=3.0, n_points=7)
    mine = simulate_reactor(ens, i, settings=vs)
    theirs = simulate_batch(ens, i, 3.0, vs.biomass0_gdw_per_l, n_points=7)
    assert mine.success and theirs.success
    assert mine.biomass == pytest.approx(theirs.biomass, rel=1e-4, abs=1e-7)
    assert mine.product == pytest.approx(theirs.product, rel=1e-4, abs=1e-7)
    assert mine.substrate == pytest.approx(theirs.substrate, rel=1e-4, abs=1e-6)
    assert np.all(mine.volume == pytest.approx(1.0, rel=1e-12))


def test_fed_batch_mixing_closed_form(model):
    """With (almost) no cells the feed only mixes: s V = s0 V0 + s_in * integral(F), V = V0 + integral(F)."""
    ens, i = model
    vs = VerificationSettings(t_end_h=10.0, n_points=11, biomass0_gdw_per_l=1e-12, feed_glucose_mmol_per_l=500.0)
    feed = FeedProfile((0.0, 2.5, 6.0), (0.0, 0.05, 0.01), 500.0)
    sim = simulate_reactor(ens, i, settings=vs, feed=feed)
    assert sim.success
    fed_volume = np.array([0.05 * max(0.0, min(t, 6.0) - 2.5) + 0.01 * max(0.0, t - 6.0) for t in sim.times])
    assert sim.volume == pytest.approx(1.0 + fed_volume, rel=1e-7, abs=1e-9)
    s0 = sim.substrate[0]
    assert sim.substrate * sim.volume == pytest.approx(s0 + 500.0 * fed_volume, rel=1e-6, abs=1e-6)
    assert sim.substrate_fed_mmol == pytest.approx(500.0 * fed_volume[-1], rel=1e-12)


def test_callable_feed_equals_profile(model):
    ens, i = model
    vs = VerificationSettings(t_end_h=4.0, n_points=9)
    prof = FeedProfile((0.0, 2.0), (0.0, 0.02), vs.feed_glucose_mmol_per_l)
    a = simulate_reactor(ens, i, settings=vs, feed=prof)
    b = simulate_reactor(ens, i, settings=vs, feed=lambda t: 0.02 if t >= 2.0 else 0.0)
    assert a.product == pytest.approx(b.product, rel=1e-9, abs=1e-12)
    assert a.volume[-1] == pytest.approx(1.04, rel=1e-9)
    bad = simulate_reactor(ens, i, settings=vs, feed=lambda t: -1.0)
    assert not bad.success and "feed rate" in bad.message


def test_log_linear_prediction_matches_nonlinear_steady_state(model):
    """An NRA design limited to 1.05-fold changes, applied as Vmax x fold in the nonlinear model.

    Stated tolerances (ln units): the yield change and every log flux change within 0.02 of the
    log-linear prediction at the design itself (|d| <= ln 1.05 = 0.049); concentrations, whose
    second-order terms are larger (saturated shikimate-pathway enzymes), within 0.05 at half the
    design; and both errors shrink at least 3x when the design is halved again (the log-linear
    error is second order)."""
    ens, i = model
    cc = compute_control_coefficients(ens, [i])
    problem = nra_problems_from_control_coefficients(cc)[0]
    settings = NRASettings(
        max_enzyme_fold=1.05, min_log_change=0.01, excluded_enzymes=(cc.growth_reaction,), max_designs=1
    )
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


def test_verify_strains_reference_first_and_skips_infeasible(model):
    ens, i = model
    nr = ens.network.n_reactions
    up = np.ones((1, nr))
    up[0, ens.network.reaction_index(ens.network.product_reaction)] = 1.5
    skipped = np.full((1, nr), np.nan)
    vs = VerificationSettings(t_end_h=3.0, n_points=4)
    res = verify_strains(ens, [i], {"export x1.5": up, "infeasible": skipped}, settings=vs)
    assert res.strains == ("reference", "export x1.5", "infeasible")
    assert res.titer_gain[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert not res.success[2, 0] and "not applied" in res.messages[2, 0]
    assert res.n_simulations == 2
    frame = res.to_frame()
    assert len(frame) == 3
    assert res.summary()["reference"]["n_success"] == 1


def test_expression_sensitivity_draws(model):
    ens, i = model
    vs = VerificationSettings(t_end_h=2.0, n_points=3)
    ss = SensitivitySettings(perturbation=0.5, n_draws=2, seed=4)
    enzymes = ("DDPA", "PGI")
    mean = np.array([3.0, 0.5])
    a = expression_sensitivity(ens, [i], "d", enzymes, mean, settings=ss, verification=vs)
    b = expression_sensitivity(ens, [i], "d", enzymes, mean, settings=ss, verification=vs)
    assert np.array_equal(a.folds, b.folds)
    assert a.modes == ("all", "DDPA", "PGI")
    lo, hi = mean * 0.5, mean * 1.5
    assert np.all((a.folds >= lo - 1e-12) & (a.folds <= hi + 1e-12))
    # one-at-a-time modes keep the other enzyme at its mean
    assert np.all(a.folds[1, :, :, 1] == mean[1])
    assert np.all(a.folds[2, :, :, 0] == mean[0])
    assert np.all(a.success)
    assert set(a.summary()) == {"all", "DDPA", "PGI"}
    with pytest.raises(ValueError, match="mean_fold"):
        expression_sensitivity(ens, [i], "d", enzymes, [1.0], verification=vs)
