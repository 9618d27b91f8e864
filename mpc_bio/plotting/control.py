"""Figures of the control stage: closed loop (states with estimates and measurements, feed,
constraint margins, solver statistics) and feed-profile comparisons. They draw, compute nothing,
and return the Figure (never ``show()``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_closed_loop", "plot_solver_stats", "plot_feed_profiles", "plot_baseline_scan"]

_LABELS = {
    "volume": "volume [L]",
    "biomass": "biomass [gDW/L]",
    "glucose": "glucose [mmol/L]",
    "acetate": "acetate [mmol/L]",
    "product": "product [mmol/L]",
}


def _axes(ax, n: int, shape, figsize):
    if ax is None:
        fig, axs = plt.subplots(*shape, figsize=figsize, constrained_layout=True)
        return fig, np.ravel(axs)
    axs = np.ravel(np.atleast_1d(ax))
    if axs.size != n:
        raise ValueError(f"This figure needs {n} axes; got {axs.size}.")
    return axs[0].figure, axs


def plot_closed_loop(result, ax=None, *, title: str | None = None):
    """Closed loop: each measured quantity (true line, estimate dashed, measurements dots, dropped
    samples as crosses on the axis), acetate (true and estimate) when modelled, the applied feed,
    and the relative constraint margins.

    Parameters
    ----------
    result : mpc_bio.control.closed_loop.ClosedLoopResult
    ax : array of 6 Axes, optional
    title : str, optional
    """
    fig, axs = _axes(ax, 6, (2, 3), (14, 7.5))
    t = result.time
    limits = result.info.get("limits", {})
    roles = result.info.get("roles", {})
    panels = list(result.quantities)[:3]
    if roles.get("acetate") and "acetate" not in panels:
        panels.append("acetate")
    for a, q in zip(axs[:4], panels):
        if q in result.quantities:
            a.plot(t, result.output(q, "true"), "-", color="k", lw=1.5, label="true")
            a.plot(t, result.output(q, "estimate"), "--", color="C1", lw=1.5, label="estimate")
            y = result.output(q, "measured")
            a.plot(t, y, "o", color="C0", ms=4, label="measured")
            j = result.quantities.index(q)
            dropped = result.measurements.dropped[:, j]
            if dropped.any():
                a.plot(t[dropped], np.zeros(dropped.sum()), "x", color="C3", ms=6, clip_on=False, label="dropped")
        else:
            a.plot(t, result.concentration(roles[q], "true"), "-", color="k", lw=1.5, label="true")
            a.plot(t, result.concentration(roles[q], "estimate"), "--", color="C1", lw=1.5, label="estimate (unmeasured)")
        if q in limits:
            a.axhline(limits[q], color="C3", ls=":", lw=1, label="limit")
        a.set_xlabel("time [h]")
        a.set_ylabel(_LABELS.get(q, q))
        a.legend(fontsize=7, loc="best")
    for a in axs[len(panels):4]:
        a.axis("off")
    a = axs[4]
    a.step(t, np.r_[result.feed, result.feed[-1:]], where="post", color="C2", lw=1.5, label="applied feed")
    fb = [r.time for r in result.mpc_records if r.fallback]
    if fb:
        fbf = [r.feed for r in result.mpc_records if r.fallback]
        a.plot(fb, fbf, "v", color="C3", label="fallback (failed solve)")
    if "feed_max" in limits:
        a.axhline(limits["feed_max"], color="C3", ls=":", lw=1, label="F max")
    a.set_xlabel("time [h]")
    a.set_ylabel("feed [L/h]")
    a.legend(fontsize=7)
    a = axs[5]
    for k, v in result.margins.items():
        a.plot(t, v, label=k)
    a.axhline(0.0, color="C3", ls=":", lw=1)
    a.set_xlabel("time [h]")
    a.set_ylabel("relative margin to limit [-]")
    a.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def plot_solver_stats(result, ax=None):
    """Per-step MPC wall time [ms] and IPOPT iterations; failed solves marked.

    Parameters
    ----------
    result : mpc_bio.control.closed_loop.ClosedLoopResult
    ax : array of 2 Axes, optional
    """
    fig, axs = _axes(ax, 2, (1, 2), (10, 3.5))
    recs = result.mpc_records
    t = np.array([r.time for r in recs])
    ms = result.step_times_ms()
    ok = np.array([r.success for r in recs], dtype=bool)
    axs[0].plot(t[ok], ms[ok], "o-", ms=3, label="solved")
    if (~ok).any():
        axs[0].plot(t[~ok], ms[~ok], "x", color="C3", ms=7, label="failed (fallback)")
    axs[0].set_xlabel("time [h]")
    axs[0].set_ylabel("MPC step wall time [ms]")
    axs[0].legend(fontsize=7)
    axs[1].bar(t, [r.iterations for r in recs], width=0.8 * (t[1] - t[0]) if t.size > 1 else 0.4, color=np.where(ok, "C0", "C3"))
    axs[1].set_xlabel("time [h]")
    axs[1].set_ylabel("IPOPT iterations")
    return fig


def plot_feed_profiles(trajectories: dict, ax=None, *, limits: dict | None = None, roles: dict | None = None):
    """Feed, biomass, glucose and acetate of several open-loop feed profiles.

    Parameters
    ----------
    trajectories : dict of str to mpc_bio.control.Trajectory
        Label -> simulated trajectory (e.g. offline optimum, best exponential, best constant).
    ax : array of 4 Axes, optional
    limits : dict, optional
        ``glucose``/``acetate`` limits to draw (mmol/L).
    roles : dict, optional
        State names of ``biomass``, ``glucose``, ``acetate`` (defaults n_X, n_glc, n_ac).
    """
    fig, axs = _axes(ax, 4, (1, 4), (16, 3.6))
    roles = {"biomass": "n_X", "glucose": "n_glc", "acetate": "n_ac", **(roles or {})}
    limits = limits or {}
    for i, (label, tr) in enumerate(trajectories.items()):
        c = f"C{i}"
        axs[0].step(tr.time, tr.feed, where="post", color=c, label=f"{label} ({tr.objective:.3g})")
        axs[1].plot(tr.time, tr.states[:, tr.state_names.index(roles["biomass"])], color=c, label=label)
        axs[2].plot(tr.time, tr.concentration(roles["glucose"]), color=c, label=label)
        if roles.get("acetate") in tr.state_names:
            axs[3].plot(tr.time, tr.concentration(roles["acetate"]), color=c, label=label)
    for a, key in ((axs[2], "glucose"), (axs[3], "acetate")):
        if key in limits:
            a.axhline(limits[key], color="C3", ls=":", lw=1, label="limit")
    for a, yl in zip(axs, ("feed [L/h]", "biomass [gDW]", "glucose [mmol/L]", "acetate [mmol/L]")):
        a.set_xlabel("time [h]")
        a.set_ylabel(yl)
    axs[0].legend(fontsize=7, title="objective")
    axs[2].legend(fontsize=7)
    return fig


def plot_baseline_scan(baseline, ax=None, *, offline_objective: float | None = None):
    """Objective of a tuned baseline over its parameter; infeasible candidates hollow.

    Parameters
    ----------
    baseline : mpc_bio.control.baselines.BaselineResult
    ax : Axes, optional
    offline_objective : float, optional
        Offline optimum to draw as a reference line.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5), constrained_layout=True)
    fig = ax.figure
    p, o, v = baseline.scan_parameters, baseline.scan_objectives, baseline.scan_violations
    feas = v <= baseline.tolerance
    ax.plot(p[feas], o[feas], "o-", color="C0", label="feasible")
    ax.plot(p[~feas], o[~feas], "o", mfc="none", color="C0", label="violates a limit")
    if np.isfinite(baseline.parameter):
        ax.axvline(baseline.parameter, color="C2", ls="--", lw=1, label="best")
    if offline_objective is not None:
        ax.axhline(offline_objective, color="C3", ls=":", label="offline optimum")
    ax.set_xlabel(f"{baseline.kind} feed: {baseline.parameter_name}")
    ax.set_ylabel("objective")
    ax.legend(fontsize=7)
    return fig
