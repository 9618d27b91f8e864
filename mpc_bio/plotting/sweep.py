"""Scenario-sweep figure: the distribution of every numeric result over the runs. Plotting only."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

__all__ = ["plot_sweep"]


def plot_sweep(result, *, metrics: tuple[str, ...] | None = None, max_panels: int = 12):
    """One histogram per metric of a :class:`~mpc_bio.scenarios.sweep.SweepResult` (complete runs),
    with the median marked; the title counts the runs and the failures.

    Parameters
    ----------
    result : SweepResult
    metrics : tuple of str, optional
        Columns to draw (default ``result.metrics``, at most ``max_panels`` of them).
    max_panels : int
        Largest number of panels.
    """
    names = list(metrics or result.metrics)[:max_panels]
    done = result.runs[result.runs["status"] == "complete"]
    n = max(len(names), 1)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        values = done[name].astype(float)
        ax.hist(values, bins=min(30, max(5, len(values) // 3)), color="tab:blue", alpha=0.8)
        ax.axvline(values.median(), color="k", lw=1, ls="--", label=f"median {values.median():.4g}")
        ax.set_xlabel(name)
        ax.set_ylabel("runs")
        ax.legend(fontsize=7, frameon=False)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    s = result.summary
    fig.suptitle(f"{result.out_dir.name}: {s.get('runs', len(result.runs))} runs, {s.get('failed', result.n_failed)} failed")
    fig.tight_layout()
    return fig
