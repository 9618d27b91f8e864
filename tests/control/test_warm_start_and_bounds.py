"""MPC initial guess placement and warm starts, estimator parameter bounds, offline fine-grid check."""

import dataclasses

import casadi as ca
import numpy as np
import pytest

from mpc_bio.control import EstimatorSettings, MeasurementChannel, MeasurementSettings, MPCSettings, OfflineSettings
from mpc_bio.control.closed_loop import ClosedLoopSettings, run_closed_loop
from mpc_bio.control.estimation import build_estimator, sample_measurements
from mpc_bio.control.model import constraint_margins, make_integrator, simulate_feed
from mpc_bio.control.mpc import build_mpc
from mpc_bio.control.offline import optimize_feed_profile, piecewise_feed

DT = 0.5


def _reference_states(model, x0, feeds, times):
    """Tight CVODES integration (rtol 1e-10) of a piecewise-constant feed, states at ``times`` [h]."""
    out = []
    for t in times:
        x = np.asarray(x0, dtype=float).copy()
        k = 0
        while (k + 1) * DT <= t + 1e-12:
            x = np.asarray(
                make_integrator(model, DT, reltol=1e-10, abstol=1e-12)(x0=x, p=np.r_[feeds[k], model.param_values])["xf"]
            ).ravel()
            k += 1
        rest = t - k * DT
        if rest > 1e-12:
            x = np.asarray(
                make_integrator(model, rest, reltol=1e-10, abstol=1e-12)(x0=x, p=np.r_[feeds[k], model.param_values])["xf"]
            ).ravel()
        out.append(x)
    return np.array(out)


def test_reset_places_nodes_at_interval_starts_and_collocation_points_at_radau_times(monod_model, monod_problem, x0):
    n, deg = 4, 2
    ctrl = build_mpc(monod_model, monod_problem, MPCSettings(t_step=DT, n_horizon=n, collocation_deg=deg))
    feeds = np.array([0.01, 0.02, 0.03, 0.04])
    ctrl.reset(x0, guess_feed=feeds)
    xs = ctrl.mpc.opt_x_num  # no state scaling here: scaled == unscaled
    tau = np.array(ca.collocation_points(deg, "radau"))
    for k in range(n + 1):
        node = np.asarray(xs["_x", k, 0, -1]).ravel()
        ref = _reference_states(monod_model, x0, feeds, [k * DT])[0]
        # the guess integrator runs at rtol 1e-6 (errors add up over the intervals); a guess one
        # interval off differs by 10-50 %
        assert node == pytest.approx(ref, rel=1e-4, abs=1e-8), k
    for k in range(n):
        refs = _reference_states(monod_model, x0, feeds, k * DT + tau * DT)
        for j in range(deg):
            got = np.asarray(xs["_x", k + 1, 0, j]).ravel()
            assert got == pytest.approx(refs[j], rel=1e-4, abs=1e-8), (k, j)
        assert float(xs["_u", k, 0]) == pytest.approx(feeds[k], rel=1e-14, abs=0.0)


@pytest.mark.parametrize("warm", [True, False])
def test_closed_loop_without_failures_warm_or_cold(monod_model, monod_problem, x0, warm):
    res = run_closed_loop(
        monod_model,
        monod_problem,
        x0,
        mpc_settings=MPCSettings(t_step=DT, n_horizon=12, warm_start=warm, backoff=0.0),
        estimator_settings=EstimatorSettings(kind="none"),
        settings=ClosedLoopSettings(progress=False),
    )
    assert res.solver_failures == 0
    assert [r.warm for r in res.mpc_records] == [False] + [warm] * (len(res.mpc_records) - 1)
    s = res.summary()
    assert s["mpc_warm_steps"] == (len(res.mpc_records) - 1 if warm else 0)
    assert s["mpc_step_cpu_ms_median"] > 0


def test_warm_start_needs_fewer_iterations_than_cold(monod_model, monod_problem, x0):
    kw = dict(estimator_settings=EstimatorSettings(kind="none"), settings=ClosedLoopSettings(progress=False))
    its = {}
    for warm in (True, False):
        res = run_closed_loop(monod_model, monod_problem, x0, mpc_settings=MPCSettings(t_step=DT, n_horizon=12, warm_start=warm), **kw)
        its[warm] = np.median([r.iterations for r in res.mpc_records[1:]])
    assert its[True] < its[False]


def _bounded(model, lo, hi):
    return dataclasses.replace(model, param_bounds=np.array([[lo, hi]]))


@pytest.mark.parametrize("kind", ["ekf", "mhe"])
def test_vmax_estimate_stays_inside_its_bounds(monod_model, x0, kind):
    # plant Vmax 14, estimator bounded to [5, 11]: the estimate must end at (not beyond) the bound
    dt, n = 0.25, 16
    plant_p = monod_model.params_with({"vmax_glc": 1.4})
    integ = make_integrator(monod_model, dt)
    xs = [x0.copy()]
    for _ in range(n):
        xs.append(np.asarray(integ(x0=xs[-1], p=np.r_[0.02, plant_p])["xf"]).ravel())
    ch = (MeasurementChannel("volume", dt, 0.005), MeasurementChannel("biomass", dt, 0.01), MeasurementChannel("glucose", dt, 0.1))
    ms = MeasurementSettings(channels=ch, seed=2)
    meas = sample_measurements(monod_model, ms, dt * np.arange(n + 1), np.array(xs), dt)
    model = _bounded(monod_model, 5.0, 11.0)
    est = build_estimator(model, EstimatorSettings(kind=kind, estimate_vmax=True, initial_error=0.0, mhe_horizon=5), ms, dt, x0)
    vmax = []
    for k in range(n + 1):
        est.update(meas.values[k], None if k == 0 else 0.02)
        vmax.append(est.params[0])
    vmax = np.array(vmax)
    assert np.all(vmax <= 11.0 + 1e-6) and np.all(vmax >= 5.0 - 1e-6)
    assert vmax[-1] == pytest.approx(11.0, rel=0.0, abs=0.05)  # pushed against the bound by the data
    if kind == "mhe":
        assert len(est.statuses) == n + 1


def test_param_bounds_are_checked(monod_model):
    from mpc_bio.control import ControlError

    with pytest.raises(ControlError, match="param_bounds"):
        _bounded(monod_model, 11.0, 20.0)  # nominal Vmax 10 outside


def test_offline_optimum_holds_the_limits_on_a_fine_grid(monod_model, monod_problem, x0):
    st = OfflineSettings(n_intervals=6, collocation_deg=2, max_violation=0.005, check_dt=0.02)
    off = optimize_feed_profile(monod_model, monod_problem, x0, st)
    assert off.success
    assert off.max_violation_frac <= 0.005
    # independent check on a finer grid than the optimiser's own (CVODES, 0.005 h)
    fine = simulate_feed(monod_model, monod_problem, x0, piecewise_feed(off.interval_edges, off.feed), dt=0.005, stop_at_volume_max=False)
    worst = max(-float(np.min(m)) for m in constraint_margins(monod_model, monod_problem, fine.states).values())
    assert worst <= 0.005 + 1e-4
    assert set(off.backoff) == {"volume", "glucose", "acetate"} and off.rounds >= 1


def test_offline_check_model_must_match_the_states(monod_model, monod_problem, x0):
    from mpc_bio.control import ControlError

    other = dataclasses.replace(monod_model, state_names=("V", "n_glc", "n_X", "n_ac"))  # same names, other order
    with pytest.raises(ControlError, match="check_model"):
        optimize_feed_profile(monod_model, monod_problem, x0, OfflineSettings(n_intervals=4), check_model=other)


def test_failed_warm_solve_is_retried_cold_within_the_step(monod_model, monod_problem, x0):
    # one IPOPT iteration for warm solves (a real failure), 500 for cold ones
    st = MPCSettings(t_step=DT, n_horizon=6, max_iter=1, cold_max_iter=500)
    ctrl = build_mpc(monod_model, monod_problem, st)
    ctrl.reset(x0)
    integ = make_integrator(monod_model, DT)
    f0 = ctrl.step(x0, 0.0)
    x1 = np.asarray(integ(x0=x0, p=np.r_[f0, monod_model.param_values])["xf"]).ravel()
    ctrl.step(x1, DT)
    first, second = ctrl.records
    assert first.success and not first.warm and not first.retried
    assert second.warm and second.retried and second.success and second.fallback == ""
    assert second.iterations > 1  # the failed warm iteration plus the cold solve
    # the applied feed is the cold solve's first move, inside the bounds
    assert monod_problem.feed_min <= second.feed <= monod_problem.feed_max
    assert float(ctrl.mpc.u0.cat[0]) == pytest.approx(second.feed, rel=1e-9, abs=1e-12)


def test_failed_mhe_solve_falls_back_to_the_model_prediction(monod_model, x0):
    dt = 0.25
    ch = (MeasurementChannel("volume", dt, 0.005), MeasurementChannel("biomass", dt, 0.01))
    ms = MeasurementSettings(channels=ch, seed=3)
    est = build_estimator(monod_model, EstimatorSettings(kind="mhe", mhe_horizon=4), ms, dt, x0)
    est.update([1.0, 0.1], None)
    x_prev, p_prev = est.x, est.params
    # zero IPOPT iterations allowed: a real failed solve
    est.mhe.S = ca.nlpsol("S0", "ipopt", est.mhe.nlp, {"ipopt.max_iter": 0, "ipopt.print_level": 0, "ipopt.sb": "yes", "print_time": 0})
    x = est.update([1.005, 0.11], 0.02)
    assert est.statuses[-1] == "Maximum_Iterations_Exceeded" and est.successes[-1] is False
    ref = np.asarray(make_integrator(monod_model, dt, reltol=1e-10, abstol=1e-12)(x0=x_prev, p=np.r_[0.02, p_prev])["xf"]).ravel()
    assert x == pytest.approx(ref, rel=1e-6, abs=1e-9)  # CVODES 1e-8 vs 1e-10
    assert est.params == pytest.approx(p_prev, rel=0.0, abs=0.0)
