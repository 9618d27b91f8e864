"""Fed-batch figures (paper 1, figure 3). Plotting only: every number comes from the result objects."""

from __future__ import annotations

import numpy as np

from mpc_bio.plotting.axes import figure_axes

__all__ = ["plot_fedbatch"]

_PANELS = (
    ("A", "Volume [L]"),
    ("B", "Feed F [L/h]"),
    ("C", "Growth rate [1/h]"),
    ("D", "Glucose [mmol/L]"),
    ("E", "Biomass [gDW/L]"),
    ("F", "Glucose uptake [mmol/gDW/h]"),
)


def _series(res):
    return (
        res.state("V"),
        res.feed,
        res.output("growth"),
        res.concentration("glc"),
        res.concentration("X"),
        res.output("q_glc"),
    )


def plot_fedbatch(result, dfba=None, axes=None, title: str | None = None):
    """Six-panel fed-batch figure: volume, feed, growth, glucose, biomass, glucose uptake.

    Parameters
    ----------
    result : FedBatchResult
        Main run (usually the surrogate simulation), drawn as solid lines.
    dfba : FedBatchResult, optional
        LP-in-the-loop run drawn dashed on the same axes; its stop event (infeasible LP) is
        marked with a cross and a vertical line on every panel.
    axes : array of 6 matplotlib Axes, optional
        Where to draw; a new 2x3 figure when omitted.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = figure_axes(axes, (12, 6.5), (2, 3), sharex=True)
    label = "surrogate" if result.method == "surrogate" else result.method
    for ax, y, (tag, ylabel) in zip(axes, _series(result), _PANELS):
        if tag == "B":
            ax.step(result.time, y, where="post", color="C0", label=label)
        else:
            ax.plot(result.time, y, color="C0", label=label)
        ax.set_ylabel(ylabel)
        ax.set_title(tag, loc="left", fontweight="bold")
    if dfba is not None:
        stop = dfba.stop_event
        for ax, y, (tag, _) in zip(axes, _series(dfba), _PANELS):
            if tag == "B":
                ax.step(dfba.time, y, where="post", color="C3", ls="--", label="LP in the loop")
            else:
                ax.plot(dfba.time, y, color="C3", ls="--", label="LP in the loop")
            if stop is not None:
                ax.axvline(stop.time, color="C3", lw=0.8, ls=":")
                finite = np.isfinite(y)
                if np.any(finite):
                    i = np.flatnonzero(finite)[-1]
                    ax.plot(dfba.time[i], y[i], "x", color="C3", ms=9, mew=2)
        if stop is not None:
            axes[2].annotate(
                f"LP {stop.kind.replace('lp_', '')}\n t = {stop.time:.2f} h",
                xy=(stop.time, 0.5),
                xycoords=("data", "axes fraction"),
                color="C3",
                fontsize=8,
                xytext=(4, 0),
                textcoords="offset points",
            )
    for ax in axes[3:]:
        ax.set_xlabel("Time [h]")
    axes[0].legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
