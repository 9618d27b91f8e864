"""The closed loop's feed cap for an uncertain Vmax (MPCSettings.robust_std): checked against scipy's LSODA."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from mpc_bio.control import EstimatorSettings, MPCSettings
from mpc_bio.control.closed_loop import ClosedLoopSettings, RobustFeedCap, run_closed_loop

DT, N = 0.5, 12


def _peak_acetate(model, x0, feed, vmax, t_end):
    """Largest acetate concentration [mmol/L] with ``feed`` for one step then none, by LSODA (reference)."""

    def rhs(_t, x, u):
        return np.asarray(model.rhs(x, u, [vmax])).reshape(-1)

    a = solve_ivp(rhs, (0.0, DT), x0, args=(feed,), method="LSODA", rtol=1e-9, atol=1e-11, dense_output=True)
    b = solve_ivp(rhs, (DT, t_end), a.y[:, -1], args=(0.0,), method="LSODA", rtol=1e-9, atol=1e-11, dense_output=True)
    ta, tb = np.linspace(0.0, DT, 201), np.linspace(DT, t_end, 2001)
    xs = np.hstack([a.sol(ta), b.sol(tb)])
    return float(np.max(xs[2] / xs[0]))


def test_cap_is_the_largest_feed_that_keeps_the_limits_in_both_scenarios(monod_model, monod_problem, x0):
    # Vmax estimated 10 with standard deviation 3: the scenarios 7 and 13. At 13 a full first feed
    # (0.1 L/h for 0.5 h, 25 mmol glucose) overflows acetate past its backed-off limit (0.95 * 15 mmol/L)
    # even with no feed afterwards; the cap is the largest feed whose peak stays there.
    settings = MPCSettings(t_step=DT, n_horizon=N, robust_std=1.0)
    cap = RobustFeedCap(monod_model, monod_problem, settings)
    limit = (1 - settings.backoff) * monod_problem.acetate_max
    t_end = N * DT
    assert _peak_acetate(monod_model, x0, 0.1, 13.0, t_end) > 1.2 * limit
    f = cap(x0, 0.0, 0.1, np.array([10.0]), 3.0)
    assert 0.0 < f < 0.1
    # the capped feed keeps the limit at Vmax 13 (reference LSODA peak on a 1 ms grid; rel 1e-3 and abs
    # 0.02 mmol/L: the cap's own check sees 4 points per step), and 1 % more feed breaks it
    assert _peak_acetate(monod_model, x0, f, 13.0, t_end) <= limit * (1 + 1e-3) + 0.02
    assert _peak_acetate(monod_model, x0, 1.01 * f, 13.0, t_end) > limit
    # the low scenario overflows less: the high one decides
    assert _peak_acetate(monod_model, x0, f, 7.0, t_end) < limit
    # no uncertainty, no cap: the feed passes exactly
    assert cap(x0, 0.0, 0.1, np.array([10.0]), 0.0) == 0.1


def test_closed_loop_reports_the_capped_feeds(monod_model, monod_problem, x0):
    # plant Vmax 13 (x1.3), estimate starting at 10 +- 3: the first feeds are capped and reported; no limit
    # is broken beyond the problem's tolerance (the cap's check is on the estimate, the plant is off by 30 %)
    res = run_closed_loop(
        monod_model,
        monod_problem,
        x0,
        mpc_settings=MPCSettings(t_step=DT, n_horizon=N, robust_std=1.0),
        estimator_settings=EstimatorSettings(kind="ekf", estimate_vmax=True, initial_error=0.0),
        settings=ClosedLoopSettings(plant="perturbed", plant_parameter_scale=(("vmax_glc", 1.3),), progress=False),
        n_steps=4,
    )
    capped = res.info["capped_feeds"]
    assert res.info["robust_std"] == 1.0
    assert res.info["feed_cap_cpu_ms_median"] >= 0.0
    assert capped
    for t, mpc_feed, applied in capped:
        k = int(round(t / DT))
        assert applied < mpc_feed
        assert res.feed[k] == pytest.approx(applied, rel=0, abs=0)
    assert res.violation <= monod_problem.constraint_tolerance
