"""Figures of the NOMAD ensemble stage. Each takes a result and an optional Axes, returns the Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from mpc_bio.plotting.axes import figure_axes

__all__ = ["plot_eigenvalues", "plot_time_constants", "plot_screening_funnel", "plot_yield_control_heatmap", "plot_cofactor_ratios"]


def plot_eigenvalues(screening, ax=None):
    """Histogram of the largest real part of the reduced-Jacobian eigenvalues (1/h), symlog axis."""
    fig, ax = figure_axes(ax, (6, 4))
    mr = screening.linear.max_real
    ax.hist(np.sign(mr) * np.log10(1 + np.abs(mr)), bins=60, color="tab:blue", alpha=0.8)
    ax.axvline(0.0, color="k", lw=1)
    ax.set_xlabel("sign(max Re λ) · log10(1 + |max Re λ| [1/h])")
    ax.set_ylabel("models")
    ax.set_title(f"Dominant eigenvalues of {mr.size} models (right of 0: unstable)")
    return fig


def plot_time_constants(screening, ax=None):
    """Histogram of dominant time constants (min) of stable models with the stage (ii) threshold."""
    fig, ax = figure_axes(ax, (6, 4))
    tau = screening.linear.time_constant
    tau = tau[np.isfinite(tau)] * 60.0
    ax.hist(np.log10(tau), bins=60, color="tab:green", alpha=0.8)
    ax.axvline(
        np.log10(screening.max_time_constant * 60.0),
        color="tab:red",
        lw=1.5,
        label=f"doubling time / {screening.doubling_time / screening.max_time_constant:.0f}",
    )
    ax.set_xlabel("log10 dominant time constant [min]")
    ax.set_ylabel("stable models")
    ax.legend()
    return fig


def plot_screening_funnel(screening, ax=None):
    """Models entering the screening and passing each stage."""
    fig, ax = figure_axes(ax, (6, 4))
    stages = screening.stages
    labels = ["sampled"] + [s.name.replace("_", "\n") for s in stages]
    counts = [stages[0].n_in] + [s.n_out for s in stages]
    bars = ax.bar(range(len(counts)), counts, color=["0.6"] + ["tab:blue"] * len(stages))
    for b, c in zip(bars, counts):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), str(c), ha="center", va="bottom")
    ax.set_xticks(range(len(counts)), labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("models")
    ax.set_title("Screening funnel")
    return fig


def plot_yield_control_heatmap(control, ax=None, max_models: int = 100):
    """Heat map of product-yield control coefficients (models x enzymes) of a ControlCoefficients result."""
    fig, ax = figure_axes(ax, (12, 5))
    data = control.yield_control()[:max_models]
    lim = float(np.nanpercentile(np.abs(data), 98)) if data.size else 1.0
    im = ax.imshow(data, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_xticks(range(len(control.enzyme_ids)), control.enzyme_ids, rotation=90, fontsize=7)
    ax.set_ylabel("model")
    ax.set_title(f"Control coefficients of the {control.product_reaction}/{control.substrate_reaction} yield")
    fig.colorbar(im, ax=ax, label="C (yield, enzyme)")
    fig.tight_layout()
    return fig


def plot_cofactor_ratios(ratios: dict, fig=None):
    """Histograms of energy charge and the ATP/ADP, NADH/NAD, NADPH/NADP ratios across reference states.

    Parameters
    ----------
    ratios : dict of str to ndarray
        Per-state values, as :func:`mpc_bio.nomad.steady_state.cofactor_ratios` returns (dimensionless).
    fig : matplotlib.figure.Figure, optional
        Figure to draw into (one panel per ratio).
    """
    names = list(ratios)
    fig = fig or plt.figure(figsize=(3.2 * max(1, len(names)), 3.2))
    labels = {"energy_charge": "energy charge", "atp_adp": "log10 ATP/ADP", "nadh_nad": "log10 NADH/NAD", "nadph_nadp": "log10 NADPH/NADP"}
    for k, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), k + 1)
        val = np.asarray(ratios[name], dtype=float)
        ax.hist(val if name == "energy_charge" else np.log10(val), bins=20, color="tab:purple", alpha=0.8)
        ax.set_xlabel(labels.get(name, name))
        ax.set_ylabel("reference states" if k == 0 else "")
    fig.suptitle("Cofactor ratios of the reference states")
    fig.tight_layout()
    return fig
