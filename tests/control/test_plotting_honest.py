"""The control figures say what they compare with: the offline optimum beside the closed loop,
the Vmax estimate beside the plant's value, dropped samples at their time without a fake value,
units on the baseline scans, and a feed profile above a limit flagged."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from mpc_bio.control import BaselineSettings, EstimatorSettings, MeasurementSettings, MPCSettings, OfflineSettings, simulate_feed
from mpc_bio.control.baselines import tune_constant_feed
from mpc_bio.control.closed_loop import ClosedLoopSettings, run_closed_loop
from mpc_bio.control.offline import optimize_feed_profile
from mpc_bio.control.settings import MeasurementChannel
from mpc_bio.plotting.control import plot_baseline_scan, plot_closed_loop, plot_feed_profiles


def _labels(ax) -> list[str]:
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg is not None else []


@pytest.fixture(scope="module")
def loop(monod_model, monod_problem, x0):
    meas = MeasurementSettings(
        channels=(
            MeasurementChannel("volume", period=0.5, noise_std=0.001),
            MeasurementChannel("glucose", period=0.5, noise_std=0.1, dropout=0.5),
        ),
        seed=3,
    )
    res = run_closed_loop(
        monod_model,
        monod_problem,
        x0,
        mpc_settings=MPCSettings(t_step=0.5, n_horizon=4),
        estimator_settings=EstimatorSettings(kind="ekf", estimate_vmax=True),
        measurement_settings=meas,
        settings=ClosedLoopSettings(progress=False, plant="perturbed", plant_parameter_scale=(("vmax_glc", 0.8),)),
        n_steps=6,
    )
    off = optimize_feed_profile(monod_model, monod_problem, x0, OfflineSettings(n_intervals=6, collocation_deg=2))
    return res, off


def test_closed_loop_figure_draws_the_offline_optimum_and_the_vmax_estimate(loop):
    res, off = loop
    assert off.success
    fig = plot_closed_loop(res, title="t", offline=off)
    axs = fig.axes
    assert len(axs) == 8  # 2 x 4: the Vmax panel is added when Vmax is estimated
    feed_labels = _labels(axs[4])
    assert f"offline optimum ({off.simulated.objective:.4g})" in feed_labels
    assert f"applied feed ({res.objective:.4g})" in feed_labels
    for a in axs[:2]:
        assert "offline optimum" in _labels(a)
    vmax_ax = axs[6]
    assert vmax_ax.get_ylabel() == "glucose Vmax [mmol/gDW/h]"
    est_line = next(ln for ln in vmax_ax.get_lines() if ln.get_label() == "estimate (used by the MPC)")
    i = res.info["vmax_index"]
    np.testing.assert_allclose(est_line.get_ydata(), res.estimated_params[:, i], rtol=0, atol=0)
    plant_line = next(ln for ln in vmax_ax.get_lines() if ln.get_label() == "plant")
    assert plant_line.get_ydata()[0] == pytest.approx(0.8 * 10.0, rel=1e-12, abs=0)


def test_dropped_samples_are_drawn_at_the_true_value_never_at_zero(loop):
    res, _ = loop
    j = res.quantities.index("glucose")
    dropped = res.measurements.dropped[:, j]
    assert dropped.any()  # seed 3 with 50 % dropout drops some glucose samples
    fig = plot_closed_loop(res)
    a = fig.axes[res.quantities.index("glucose")]
    line = next(ln for ln in a.get_lines() if ln.get_label() == "dropped sample (at true value)")
    y = np.asarray(line.get_ydata(), dtype=float)
    np.testing.assert_allclose(y, res.output("glucose", "true")[dropped], rtol=1e-12, atol=0)
    assert np.all(y > 0)
    measured = next(ln for ln in a.get_lines() if ln.get_label() == "measured")
    assert np.isnan(np.asarray(measured.get_ydata(), dtype=float)[dropped]).all()  # a gap, not a point at 0


def test_feed_profile_above_the_acetate_limit_is_flagged(monod_model, monod_problem, x0):
    tr = simulate_feed(monod_model, monod_problem, x0, lambda t, x: 0.05, dt=0.1)
    peak = float(tr.concentration("n_ac").max())
    limit = 0.5 * peak  # a limit the profile exceeds by 100 %
    fig = plot_feed_profiles({"optimum": tr, "other": tr}, limits={"acetate": limit, "glucose": 1e6}, tolerance=0.02, failed=("other",))
    labels = _labels(fig.axes[0])
    assert labels[0].startswith("optimum") and f"over limit: acetate +{100 * (peak / limit - 1):.0f} %" in labels[0]
    assert "solve failed" in labels[1]
    ok = plot_feed_profiles({"optimum": tr}, limits={"acetate": 2 * peak, "glucose": 1e6}, tolerance=0.02)
    assert "over limit" not in _labels(ok.axes[0])[0]


def test_baseline_scan_axes_have_units(monod_model, monod_problem, x0):
    b = tune_constant_feed(monod_model, monod_problem, x0, BaselineSettings(n_grid=3, sim_dt=0.5))
    ax = plot_baseline_scan(b, offline_objective=1.0, objective_unit="final biomass [gDW]").axes[0]
    assert ax.get_xlabel() == "constant feed: feed rate [L/h]"
    assert ax.get_ylabel() == "final biomass [gDW]"
