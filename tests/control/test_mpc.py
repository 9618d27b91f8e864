"""Feed MPC: bounds, per-step records, fallback on a (real) failed IPOPT solve."""

import numpy as np
import pytest

from mpc_bio.control import EstimatorSettings, MPCSettings, make_integrator
from mpc_bio.control.closed_loop import ClosedLoopSettings, run_closed_loop
from mpc_bio.control.mpc import build_mpc


def test_short_closed_loop_respects_bounds_and_records_every_step(monod_model, monod_problem, x0):
    res = run_closed_loop(
        monod_model,
        monod_problem,
        x0,
        mpc_settings=MPCSettings(t_step=0.5, n_horizon=6),
        estimator_settings=EstimatorSettings(kind="ekf"),
        settings=ClosedLoopSettings(progress=False),
        n_steps=5,
    )
    assert res.feed.shape == (5,)
    assert np.all(res.feed >= monod_problem.feed_min - 1e-9)
    assert np.all(res.feed <= monod_problem.feed_max + 1e-9)
    assert len(res.mpc_records) == 5
    for r in res.mpc_records:
        assert r.status and r.iterations >= 1 and r.wall_time > 0
    assert res.solver_failures == sum(1 for r in res.mpc_records if not r.success)
    assert res.true_states[:, 0].max() <= monod_problem.volume_max * (1 + monod_problem.constraint_tolerance)
    assert res.violation <= 0.05
    frames = res.to_frames()
    assert {"trajectory", "fine", "solver"} <= set(frames)
    assert len(frames["solver"]) == 5


def test_forced_solver_failure_uses_fallback_and_is_counted(monod_model, monod_problem, x0):
    # Two IPOPT iterations are not enough from a cold start: a real failed solve.
    settings = MPCSettings(t_step=0.5, n_horizon=6, max_iter=2, safe_feed=0.01)
    ctrl = build_mpc(monod_model, monod_problem, settings)
    ctrl.reset(x0)
    integ = make_integrator(monod_model, settings.t_step)
    x = x0.copy()
    feeds = []
    for k in range(4):
        feeds.append(ctrl.step(x, k * settings.t_step))
        x = np.asarray(integ(x0=x, p=np.r_[feeds[-1], monod_model.param_values])["xf"]).ravel()
    recs = ctrl.records
    assert ctrl.failures == sum(1 for r in recs if not r.success) >= 1
    first = recs[0]
    assert not first.success and first.status == "Maximum_Iterations_Exceeded"
    assert first.fallback == "safe_feed" and first.feed == pytest.approx(0.01, abs=0.0, rel=0.0)
    for r in recs:
        assert (r.fallback == "") == r.success
        assert monod_problem.feed_min <= r.feed <= monod_problem.feed_max


def test_fallback_replays_the_shifted_plan(monod_model, monod_problem, x0):
    ctrl = build_mpc(monod_model, monod_problem, MPCSettings(t_step=0.5, n_horizon=6))
    ctrl.reset(x0)
    ctrl.step(x0, 0.0)
    assert ctrl.records[-1].success
    plan = ctrl.plan()
    # Force the next solve to fail for real: a NaN in the state estimate makes IPOPT stop with an
    # invalid number; the controller must apply plan[1] (the previous plan shifted by one step).
    x_bad = x0.copy()
    x_bad[3] = np.nan
    f = ctrl.step(np.where(np.isnan(x_bad), np.inf, x_bad), 0.5)
    rec = ctrl.records[-1]
    assert not rec.success
    assert rec.fallback == "shifted_plan"
    assert f == pytest.approx(plan[1], rel=1e-12, abs=1e-12)
    assert ctrl.failures == 1


def _nodes(ctrl, n):
    xs = ctrl.mpc.opt_x_num_unscaled
    return np.array([np.asarray(xs["_x", k, 0, -1]).ravel() for k in range(n + 1)])


def test_limits_hold_at_the_last_node(monod_model, monod_problem, x0):
    # horizon = batch (12 x 0.5 h = 6 h): do-mpc alone constrains the start of each interval, so
    # its plan dumps feed in the last interval and the acetate at the last node breaks the
    # (backed-off) limit by 41 %; the soft limits added at the last node hold it there. Tolerance:
    # IPOPT's tol 1e-8 on the scaled constraint, 1e-6 relative (0 absolute).
    settings = MPCSettings(t_step=0.5, n_horizon=12, tol=1e-8, max_iter=1000)
    limit = (1 - settings.backoff) * monod_problem.acetate_max
    ends = {}
    for term in (True, False):
        ctrl = build_mpc(monod_model, monod_problem, settings, terminal_limits=term)
        ctrl.reset(x0)
        ctrl.step(x0, 0.0)
        assert ctrl.records[-1].success, ctrl.records[-1].status
        end = _nodes(ctrl, settings.n_horizon)[-1]
        ends[term] = end[2] / end[0]
    assert ends[True] <= limit * (1 + 1e-6)
    assert ends[False] > limit * 1.1


def test_warm_start_shift_keeps_the_last_node_limit_multipliers(monod_model, monod_problem, x0):
    settings = MPCSettings(t_step=0.5, n_horizon=12, tol=1e-8, max_iter=1000)
    ctrl = build_mpc(monod_model, monod_problem, settings)
    ctrl.reset(x0)
    ctrl.step(x0, 0.0)
    lam = np.asarray(ctrl.mpc.lam_g_num).ravel().copy()
    n_x, N, n_t = monod_model.n_x, settings.n_horizon, ctrl._n_terminal
    assert n_t == 3  # volume, glucose, acetate
    b = (lam.size - n_x - n_t) // N
    assert n_x + N * b + n_t == lam.size
    assert np.abs(lam[-n_t:]).max() > 0  # the acetate limit is active at the last node
    ctrl._shift_guess()
    new = np.asarray(ctrl.mpc.lam_g_num).ravel()
    np.testing.assert_array_equal(new[n_x : n_x + (N - 1) * b], lam[n_x + b : n_x + N * b])
    np.testing.assert_array_equal(new[-n_t:], lam[-n_t:])


def test_limit_bounds_hold_an_estimate_inside_the_margin(monod_model, monod_problem):
    # acetate limit 15 mmol/L backed off 5 % to 14.25: an estimate at 14.6 is its own bound with hold_margin,
    # one at 16 gets the limit itself, one at 10 the backed-off limit (exact arithmetic: rel 0, abs 1e-12)
    from mpc_bio.control.mpc import limit_bounds

    for c_ac, held in ((14.6, 14.6), (16.0, 15.0), (10.0, 14.25)):
        x = np.array([1.1, 0.5 * 1.1, c_ac * 1.1, 3.0])
        on = limit_bounds(x, 0, 1, 2, monod_problem, MPCSettings())
        off = limit_bounds(x, 0, 1, 2, monod_problem, MPCSettings(hold_margin=False))
        np.testing.assert_allclose(on, [1.3, 28.5, held], rtol=0, atol=1e-12)
        np.testing.assert_allclose(off, [1.3, 28.5, 14.25], rtol=0, atol=1e-12)


def test_hold_margin_keeps_feeding_at_an_acetate_estimate_inside_the_margin(monod_model, monod_problem):
    # acetate at 14.6 mmol/L, inside the margin (14.25-15): without hold_margin the plan dilutes it below 14.25
    # at once with a smaller feed; with it the plan feeds more and keeps acetate at about 14.6. Checked on the
    # plans simulated by CVODES (reference), within the collocation error: rel 1e-2, abs 0.
    x = np.array([1.1, 0.5 * 1.1, 14.6 * 1.1, 3.0])
    integ = make_integrator(monod_model, 0.5)
    first, peaks = {}, {}
    for hold in (False, True):
        ctrl = build_mpc(monod_model, monod_problem, MPCSettings(t_step=0.5, n_horizon=6, hold_margin=hold))
        ctrl.reset(x)
        first[hold] = ctrl.step(x, 3.0, params=np.array([10.0]))
        assert ctrl.records[-1].success
        xx, ac = x.copy(), []
        for u in ctrl.plan():
            xx = np.asarray(integ(x0=xx, p=np.r_[u, 10.0])["xf"]).reshape(-1)
            ac.append(xx[2] / xx[0])
        peaks[hold] = np.array(ac)
    assert first[True] > 1.1 * first[False]
    assert np.all(peaks[True] <= 14.6 * (1 + 1e-2))
    assert peaks[False][1] <= 14.25 * (1 + 1e-2)  # back below the backed-off limit after two steps
