"""Figures of the metabolism stage: the sampled growth map (paper 1, figure 2A/B style)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_growth_map", "plot_growth_curves"]


def _grid(dataset: Any, x_name: str, y_name: str, values: np.ndarray):
    ix = dataset.input_names.index(x_name)
    iy = dataset.input_names.index(y_name)
    xs, xi = np.unique(dataset.inputs[:, ix], return_inverse=True)
    ys, yi = np.unique(dataset.inputs[:, iy], return_inverse=True)
    Z = np.full((len(ys), len(xs)), np.nan)
    Z[yi, xi] = values
    return xs, ys, Z


def plot_growth_map(dataset: Any, ax: Any = None, *, x: str | None = None, y: str | None = None) -> Any:
    """Growth rate over the plane of two uptake inputs, relaxed points hatched.

    Parameters
    ----------
    dataset : FluxDataset
        Sampled pFBA solutions on a grid of (at least) two inputs.
    ax : matplotlib Axes, optional
        Axes to draw into; a new figure is made when omitted.
    x, y : str, optional
        Input names for the axes (default: the first two inputs, e.g. glucose and oxygen).

    Returns
    -------
    matplotlib.figure.Figure
        Growth (1/h) as colour over the uptakes (mmol/gDW/h); relaxed points (elastic slacks
        used) are hatched and outlined, failed/infeasible points drawn in grey.
    """
    from mpc_bio.plotting.axes import figure_axes

    names = list(dataset.input_names)
    if len(names) < 2 and (x is None or y is None):
        raise ValueError(f"plot_growth_map needs a dataset with two inputs; got inputs {names}.")
    x = x or names[0]
    y = y or names[1]
    for n in (x, y):
        if n not in names:
            raise ValueError(f"plot_growth_map: input {n!r} is not in the dataset; expected one of {names}.")
    fig, (ax,) = figure_axes(ax, (6.0, 4.8), (1, 1))
    xs, ys, G = _grid(dataset, x, y, dataset.growth)
    _, _, R = _grid(dataset, x, y, (dataset.status == 1).astype(float))
    _, _, F = _grid(dataset, x, y, (dataset.status >= 2).astype(float))
    if len(xs) >= 2 and len(ys) >= 2 and np.isfinite(G).sum() >= 4:
        mesh = ax.pcolormesh(xs, ys, np.ma.masked_invalid(G), shading="nearest", cmap="viridis")
        R0 = np.nan_to_num(R)
        if R0.max() > 0:
            ax.contourf(xs, ys, R0, levels=[0.5, 1.5], colors="none", hatches=["///"])
            ax.contour(xs, ys, R0, levels=[0.5], colors="white", linewidths=1.0)
        F0 = np.nan_to_num(F)
        if F0.max() > 0:
            ax.contourf(xs, ys, F0, levels=[0.5, 1.5], colors=["0.6"])
    else:  # scattered points
        ix, iy = names.index(x), names.index(y)
        mesh = ax.scatter(dataset.inputs[:, ix], dataset.inputs[:, iy], c=dataset.growth, s=12, cmap="viridis")
        rel = dataset.status == 1
        ax.scatter(dataset.inputs[rel, ix], dataset.inputs[rel, iy], facecolors="none", edgecolors="white", s=14)
    fig.colorbar(mesh, ax=ax, label="growth rate (1/h)")
    ax.set_xlabel(f"{x} uptake (mmol/gDW/h)")
    ax.set_ylabel(f"{y} uptake (mmol/gDW/h)")
    counts = dataset.status_counts()
    ax.set_title(
        f"{dataset.model_id}: pFBA growth ({counts['optimal']} optimal, {counts['relaxed']} relaxed = hatched"
        + (f", {counts['failed'] + counts['infeasible']} failed" if counts["failed"] + counts["infeasible"] else "")
        + ")",
        fontsize=9,
    )
    return fig


def plot_growth_curves(
    dataset: Any, ax: Any = None, *, x: str | None = None, fixed: str | None = None, levels: Any = (5, 10, 15, 20)
) -> Any:
    """Growth against one uptake at a few fixed values of another (paper figure 2B style).

    Parameters
    ----------
    dataset : FluxDataset
        Sampled solutions on a grid.
    ax : matplotlib Axes, optional
    x : str, optional
        Input on the horizontal axis (default: the first input).
    fixed : str, optional
        Input held at each of ``levels`` (default: the second input).
    levels : sequence of float
        Values of ``fixed`` in mmol/gDW/h; the nearest grid value is used.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from mpc_bio.plotting.axes import figure_axes

    names = list(dataset.input_names)
    x = x or names[0]
    fixed = fixed or names[1]
    fig, (ax,) = figure_axes(ax, (5.5, 4.0), (1, 1))
    ix, jf = names.index(x), names.index(fixed)
    fvals = np.unique(dataset.inputs[:, jf])
    for lev in levels:
        f = fvals[np.argmin(np.abs(fvals - lev))]
        sel = np.flatnonzero(dataset.inputs[:, jf] == f)
        sel = sel[np.argsort(dataset.inputs[sel, ix])]
        line = ax.plot(dataset.inputs[sel, ix], dataset.growth[sel], label=f"{fixed} = {f:g}")[0]
        rel = sel[dataset.status[sel] == 1]
        ax.plot(dataset.inputs[rel, ix], dataset.growth[rel], ".", color=line.get_color(), ms=3)
    ax.set_xlabel(f"{x} uptake (mmol/gDW/h)")
    ax.set_ylabel("growth rate (1/h)")
    ax.legend(title="dots: relaxed", fontsize=8)
    return fig
