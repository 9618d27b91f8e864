"""Figures of the control stage: closed loop (states with estimates and measurements, feed,
constraint margins, solver statistics) and feed-profile comparisons. They draw, compute nothing,
and return the Figure (never ``show()``).
"""

from __future__ import annotations

import numpy as np

from mpc_bio.plotting.axes import figure_axes

__all__ = ["plot_closed_loop", "plot_solver_stats", "plot_feed_profiles", "plot_baseline_scan"]

_LABELS = {
    "volume": "volume [L]",
    "biomass": "biomass [gDW/L]",
    "glucose": "glucose [mmol/L]",
    "acetate": "acetate [mmol/L]",
    "product": "product [mmol/L]",
}


#: Axis labels (with units) of the baselines' tuned parameters.
_PARAMETER_LABELS = {
    "feed": "feed rate [L/h]",
    "mu_set": "set growth rate mu_set [1/h]",
}


def plot_closed_loop(result, ax=None, *, title: str | None = None, offline=None):
    """Closed loop: each measured quantity (true line, estimate dashed, measurements dots, dropped
    samples as red crosses at the true value they would have measured), acetate (true and
    estimate) when modelled, the applied feed, the relative constraint margins and, when the
    estimator estimates the glucose Vmax, its estimate beside the plant's value.

    Parameters
    ----------
    result : mpc_bio.control.closed_loop.ClosedLoopResult
    ax : array of 6 Axes (8 when Vmax is estimated), optional
    title : str, optional
    offline : mpc_bio.control.offline.OfflineResult, optional
        The offline optimum the closed loop is compared with: its re-simulated trajectory and its
        feed are drawn grey, and its objective is in the feed panel's legend.
    """
    vmax_i = result.info.get("vmax_index") if result.info.get("estimate_vmax") else None
    if vmax_i is None:
        fig, axs = figure_axes(ax, (14, 7.5), (2, 3))
    else:
        fig, axs = figure_axes(ax, (18, 7.5), (2, 4))
        axs[7].axis("off")
    t = result.time
    sim = None if offline is None else offline.simulated
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
            if dropped.any():  # no value was received: marked at the true value, never at 0
                a.plot(
                    t[dropped], result.output(q, "true")[dropped], "x", color="C3", ms=7, mew=1.5, label="dropped sample (at true value)"
                )
            if sim is not None:
                a.plot(sim.time, _trajectory_output(sim, q, roles), "-", color="0.6", lw=1.2, zorder=0, label="offline optimum")
        else:
            a.plot(t, result.concentration(roles[q], "true"), "-", color="k", lw=1.5, label="true")
            a.plot(t, result.concentration(roles[q], "estimate"), "--", color="C1", lw=1.5, label="estimate (unmeasured)")
            if sim is not None and roles[q] in sim.state_names:
                a.plot(sim.time, sim.concentration(roles[q]), "-", color="0.6", lw=1.2, zorder=0, label="offline optimum")
        if q in limits:
            a.axhline(limits[q], color="C3", ls=":", lw=1, label="limit")
        a.set_xlabel("time [h]")
        a.set_ylabel(_LABELS.get(q, q))
        a.legend(fontsize=7, loc="best")
    for a in axs[len(panels) : 4]:
        a.axis("off")
    a = axs[4]
    a.step(t, np.r_[result.feed, result.feed[-1:]], where="post", color="C2", lw=1.5, label=f"applied feed ({result.objective:.4g})")
    if offline is not None:
        a.step(
            offline.interval_edges,
            np.r_[offline.feed, offline.feed[-1:]],
            where="post",
            color="0.6",
            lw=1.2,
            label=f"offline optimum ({offline.simulated.objective:.4g})",
        )
    fb = [r.time for r in result.mpc_records if r.fallback]
    if fb:
        fbf = [r.feed for r in result.mpc_records if r.fallback]
        a.plot(fb, fbf, "v", color="C3", label="fallback (failed solve)")
    if "feed_max" in limits:
        a.axhline(limits["feed_max"], color="C3", ls=":", lw=1, label="F max")
    a.set_xlabel("time [h]")
    a.set_ylabel("feed [L/h]")
    a.legend(fontsize=7, title=f"objective: {_objective_label(result.info.get('objective_kind'))}", title_fontsize=7)
    a = axs[5]
    for k, v in result.margins.items():
        a.plot(t, v, label=k)
    a.axhline(0.0, color="C3", ls=":", lw=1)
    a.set_xlabel("time [h]")
    a.set_ylabel("relative margin to limit [-]")
    a.legend(fontsize=7)
    if vmax_i is not None:
        a = axs[6]
        a.step(t, result.estimated_params[:, vmax_i], where="post", color="C1", lw=1.5, label="estimate (used by the MPC)")
        if result.info.get("vmax_plant"):
            a.axhline(result.info["vmax_plant"], color="k", lw=1.5, label="plant")
        a.set_xlabel("time [h]")
        a.set_ylabel("glucose Vmax [mmol/gDW/h]")
        a.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def _objective_label(kind: str | None) -> str:
    return {"biomass": "final biomass [gDW]", "product": "final product [mmol]"}.get(kind or "", "productivity [gDW/L/h]")


def _trajectory_output(tr, quantity: str, roles: dict) -> np.ndarray:
    """A measured quantity (volume L, or a concentration) along an open-loop trajectory."""
    if quantity == "volume":
        return tr.states[:, tr.state_names.index(tr.volume_state)]
    return tr.concentration(roles[quantity])


def plot_solver_stats(result, ax=None):
    """Per-step MPC wall time [ms] and IPOPT iterations; failed solves marked.

    Parameters
    ----------
    result : mpc_bio.control.closed_loop.ClosedLoopResult
    ax : array of 2 Axes, optional
    """
    fig, axs = figure_axes(ax, (10, 3.5), (1, 2))
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


def plot_feed_profiles(
    trajectories: dict,
    ax=None,
    *,
    limits: dict | None = None,
    roles: dict | None = None,
    tolerance: float = 0.0,
    failed: tuple[str, ...] = (),
):
    """Feed, biomass, glucose and acetate of several open-loop feed profiles; a profile that
    breaks a limit by more than ``tolerance`` (or whose solve failed) is flagged in the legends
    and its worst violation marked.

    Parameters
    ----------
    trajectories : dict of str to mpc_bio.control.Trajectory
        Label -> simulated trajectory (e.g. offline optimum, best exponential, best constant).
    ax : array of 4 Axes, optional
    limits : dict, optional
        ``glucose``/``acetate`` limits to draw (mmol/L).
    roles : dict, optional
        State names of ``biomass``, ``glucose``, ``acetate`` (defaults n_X, n_glc, n_ac).
    tolerance : float
        Relative violation of a limit tolerated before a profile is flagged [-].
    failed : tuple of str
        Labels of profiles whose optimisation failed (flagged "solve failed").
    """
    fig, axs = figure_axes(ax, (16, 3.6), (1, 4))
    roles = {"biomass": "n_X", "glucose": "n_glc", "acetate": "n_ac", **(roles or {})}
    limits = limits or {}
    for i, (label, tr) in enumerate(trajectories.items()):
        c = f"C{i}"
        flags = ["solve failed"] if label in failed else []
        for a, key in ((axs[2], "glucose"), (axs[3], "acetate")):
            if key not in limits or roles.get(key) not in tr.state_names:
                continue
            conc = tr.concentration(roles[key])
            k = int(np.argmax(conc))
            over = conc[k] / limits[key] - 1.0
            if over > tolerance:
                flags.append(f"{key} +{100 * over:.0f} %")
                a.plot(tr.time[k], conc[k], "v", color="C3", ms=8, zorder=5)
                a.annotate(f"+{100 * over:.0f} %", (tr.time[k], conc[k]), textcoords="offset points", xytext=(4, 4), color="C3", fontsize=8)
        flag = "".join(f" - {f}" for f in flags if f == "solve failed")
        over_limit = [f for f in flags if f != "solve failed"]
        if over_limit:
            flag += f" - over limit: {', '.join(over_limit)}"
        axs[0].step(tr.time, tr.feed, where="post", color=c, label=f"{label} ({tr.objective:.3g}){flag}")
        axs[1].plot(tr.time, tr.states[:, tr.state_names.index(roles["biomass"])], color=c, label=label + (" (!)" if flags else ""))
        axs[2].plot(tr.time, tr.concentration(roles["glucose"]), color=c, label=label + (" (!)" if flags else ""))
        if roles.get("acetate") in tr.state_names:
            axs[3].plot(tr.time, tr.concentration(roles["acetate"]), color=c, label=label + (" (!)" if flags else ""))
    for a, key in ((axs[2], "glucose"), (axs[3], "acetate")):
        if key in limits:
            a.axhline(limits[key], color="C3", ls=":", lw=1, label="limit")
    for a, yl in zip(axs, ("feed [L/h]", "biomass [gDW]", "glucose [mmol/L]", "acetate [mmol/L]")):
        a.set_xlabel("time [h]")
        a.set_ylabel(yl)
    axs[0].legend(fontsize=6, title="objective", title_fontsize=7, loc="upper left")
    axs[2].legend(fontsize=7)
    axs[3].legend(fontsize=7)
    return fig


def plot_baseline_scan(baseline, ax=None, *, offline_objective: float | None = None, objective_unit: str = "objective"):
    """Objective of a tuned baseline over its parameter; infeasible candidates hollow.

    Parameters
    ----------
    baseline : mpc_bio.control.baselines.BaselineResult
    ax : Axes, optional
    offline_objective : float, optional
        Offline optimum to draw as a reference line.
    objective_unit : str
        y-axis label, with the objective's unit (e.g. ``"final biomass [gDW]"``).
    """
    fig, (ax,) = figure_axes(ax, (5, 3.5), (1, 1))
    p, o, v = baseline.scan_parameters, baseline.scan_objectives, baseline.scan_violations
    feas = v <= baseline.tolerance
    ax.plot(p[feas], o[feas], "o-", color="C0", label="feasible")
    ax.plot(p[~feas], o[~feas], "o", mfc="none", color="C0", label="violates a limit")
    if np.isfinite(baseline.parameter):
        ax.axvline(baseline.parameter, color="C2", ls="--", lw=1, label="best")
    if offline_objective is not None:
        ax.axhline(offline_objective, color="C3", ls=":", label="offline optimum")
    ax.set_xlabel(f"{baseline.kind} feed: {_PARAMETER_LABELS.get(baseline.parameter_name, baseline.parameter_name)}")
    ax.set_ylabel(objective_unit)
    ax.legend(fontsize=7)
    return fig
