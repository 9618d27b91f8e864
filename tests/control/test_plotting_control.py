"""Control figures draw a closed loop and feed profiles without computing anything new."""

import matplotlib

matplotlib.use("Agg")

from mpc_bio.control import BaselineSettings, EstimatorSettings, MPCSettings, simulate_feed
from mpc_bio.control.baselines import tune_exponential_feed
from mpc_bio.control.closed_loop import ClosedLoopSettings, run_closed_loop
from mpc_bio.plotting.control import plot_baseline_scan, plot_closed_loop, plot_feed_profiles, plot_solver_stats


def test_figures(monod_model, monod_problem, x0):
    res = run_closed_loop(
        monod_model,
        monod_problem,
        x0,
        mpc_settings=MPCSettings(t_step=0.5, n_horizon=4),
        estimator_settings=EstimatorSettings(kind="ekf"),
        settings=ClosedLoopSettings(progress=False),
        n_steps=3,
    )
    fig = plot_closed_loop(res, title="t")
    assert len(fig.axes) == 6
    assert len(plot_solver_stats(res).axes) == 2
    tr = simulate_feed(monod_model, monod_problem, x0, lambda t, x: 0.02, dt=0.5)
    assert len(plot_feed_profiles({"c": tr}).axes) == 4
    b = tune_exponential_feed(monod_model, monod_problem, x0, BaselineSettings(n_grid=3, sim_dt=0.5))
    assert plot_baseline_scan(b, offline_objective=1.0).axes
