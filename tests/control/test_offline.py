"""Offline direct-collocation optimum: KKT conditions, consistency with simulation, beats the baselines."""

import numpy as np
import pytest

from mpc_bio.control import BaselineSettings, EstimatorSettings, MPCSettings, OfflineSettings
from mpc_bio.control.baselines import exponential_feed_law, tune_constant_feed, tune_exponential_feed
from mpc_bio.control.closed_loop import ClosedLoopSettings, run_closed_loop
from mpc_bio.control.offline import optimize_feed_profile

from .conftest import C_IN, Y_OX


@pytest.fixture(scope="module")
def offline(monod_model, monod_problem, x0):
    return optimize_feed_profile(monod_model, monod_problem, x0, OfflineSettings(n_intervals=12))


@pytest.fixture(scope="module")
def baselines(monod_model, monod_problem, x0):
    bs = BaselineSettings(n_grid=15, yield_xs=Y_OX, feed_glucose=C_IN, sim_dt=0.1)
    return tune_constant_feed(monod_model, monod_problem, x0, bs), tune_exponential_feed(monod_model, monod_problem, x0, bs)


def test_offline_optimum_satisfies_kkt(offline):
    assert offline.success and offline.status == "Solve_Succeeded"
    assert offline.kkt["stationarity"] < 1e-6
    assert offline.kkt["primal_infeasibility"] < 1e-8
    assert offline.kkt["complementarity"] < 1e-6


def test_offline_profile_resimulates_to_the_same_objective(offline, monod_problem):
    # collocation (Radau, degree 3) vs CVODES on the same piecewise-constant feed
    assert offline.simulated.objective == pytest.approx(offline.objective, rel=1e-3, abs=0.0)
    assert offline.simulated.violation <= monod_problem.constraint_tolerance
    assert np.all(offline.feed >= monod_problem.feed_min - 1e-8) and np.all(offline.feed <= monod_problem.feed_max + 1e-8)


def test_offline_beats_tuned_baselines(offline, baselines):
    const, expo = baselines
    assert np.isfinite(const.objective) and np.isfinite(expo.objective)
    assert offline.simulated.objective > expo.objective
    assert offline.simulated.objective > const.objective
    # every feasible baseline candidate is beaten, not only the best one
    ok = expo.scan_violations <= 0.02
    assert np.all(offline.simulated.objective > expo.scan_objectives[ok])


def test_exponential_feed_formula():
    bs = BaselineSettings(yield_xs=0.5, feed_glucose=100.0)
    law = exponential_feed_law(0.2, 2.0, bs)
    assert law(0.0, None) == pytest.approx(0.2 * 2.0 / (0.5 * 100.0), rel=1e-14, abs=0.0)
    assert law(3.0, None) == pytest.approx(0.2 * 2.0 / (0.5 * 100.0) * np.exp(0.6), rel=1e-14, abs=0.0)


def test_nominal_closed_loop_reaches_offline_optimum(monod_model, monod_problem, x0, offline):
    res = run_closed_loop(
        monod_model,
        monod_problem,
        x0,
        mpc_settings=MPCSettings(t_step=0.5, n_horizon=12, backoff=0.0),
        estimator_settings=EstimatorSettings(kind="none"),
        settings=ClosedLoopSettings(progress=False),
    )
    assert res.solver_failures == 0
    assert res.objective >= 0.97 * offline.simulated.objective
    assert res.violation <= monod_problem.constraint_tolerance
