"""Figures of the NOMAD design stage (NRA designs, ranking, verification, sensitivity).

Each function takes a result object and an optional Axes, draws, and returns the Figure; all
numbers (clustering order, bands) come from the result objects' methods.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from mpc_bio.plotting.axes import figure_axes

__all__ = [
    "plot_design_membership",
    "plot_design_ranking",
    "plot_titer_time_courses",
    "plot_sensitivity_bands",
]


def plot_design_membership(designs, ax=None):
    """Unique designs x targeted enzymes, rows grouped by membership clusters (Jaccard).

    Parameters
    ----------
    designs : mpc_bio.nomad.ranking.EnsembleDesigns
    ax : matplotlib Axes, optional
    """
    mat, enzymes = designs.membership_matrix()
    n_rows = max(mat.shape[0], 1)
    fig, ax = figure_axes(ax, (max(5, 0.35 * len(enzymes) + 2), max(3, 0.18 * n_rows + 1.5)))
    if mat.size == 0:
        ax.text(0.5, 0.5, "no designs", ha="center", va="center", transform=ax.transAxes)
        return fig
    rows, cols, clusters = designs.cluster_order()
    shown = mat[np.ix_(rows, cols)] * clusters[rows][:, None]
    cmap = plt.get_cmap("tab20", int(clusters.max()) + 1)
    masked = np.ma.masked_where(shown == 0, shown)
    ax.imshow(masked, aspect="auto", cmap=cmap, interpolation="nearest", vmin=0, vmax=int(clusters.max()) + 1)
    ax.set_xticks(range(len(cols)), [enzymes[c] for c in cols], rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), [designs.unique[r].label for r in rows], fontsize=6)
    ax.set_title(f"{len(rows)} designs unique by membership ({designs.n_designs} in total), colour = cluster")
    fig.tight_layout()
    return fig


def plot_design_ranking(ranking, ax=None, top: int = 20):
    """Mean predicted yield increase per design (bars) and per model (dots), best first.

    Parameters
    ----------
    ranking : mpc_bio.nomad.ranking.DesignRanking
    top : int
        Number of designs shown.
    """
    n = min(top, len(ranking.designs))
    fig, ax = figure_axes(ax, (8, 0.3 * n + 1.8))
    y = np.arange(n)
    gain = np.expm1(ranking.objective[:n]) * 100.0
    ax.barh(y, ranking.mean_yield_gain[:n] * 100.0, color="tab:blue", alpha=0.6, label="mean (infeasible = 0)")
    for k in range(n):
        ok = np.isfinite(gain[k])
        ax.plot(gain[k][ok], np.full(ok.sum(), y[k]), "k.", ms=3)
    ax.set_yticks(y, [d.label for d in ranking.designs[:n]], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("predicted yield increase of product on substrate [%] (log-linear)")
    ax.set_title(f"Designs enforced in {len(ranking.model_ids)} models")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _g_per_mmol(mw: float) -> float:
    """g/L per mM of a product with molar mass ``mw`` (g/mol), checked."""
    mw = float(mw)
    if not (mw > 0 and np.isfinite(mw)):
        raise ValueError(f"The product molar mass must be a positive number of g/mol; got {mw!r}.")
    return mw / 1000.0


def plot_titer_time_courses(verification, ax=None, strains=None):
    """Product titer vs time: mean over models (line) and 10-90% band, per strain.

    Every simulated model is drawn, viable or not; the legend gives each strain's number of
    viable models (:attr:`~mpc_bio.nomad.verification.VerificationResult.valid`), so a high
    band carried by strains without a viable steady state is recognisable.

    Parameters
    ----------
    verification : mpc_bio.nomad.verification.VerificationResult
        Titers are drawn in g/L: the simulated mM times the result's ``product_mw_g_per_mol`` / 1000.
    strains : sequence of str, optional
        Strains to draw (default all: reference, designs, MCA baseline).
    """
    fig, ax = figure_axes(ax, (7, 4.5))
    g_per_mmol = _g_per_mmol(verification.product_mw_g_per_mol)
    mean, lo, hi = (g_per_mmol * np.asarray(b, dtype=float) for b in verification.bands("product"))
    labels = list(verification.strains) if strains is None else list(strains)
    colors = plt.get_cmap("tab10")
    valid = verification.valid
    n_models = len(verification.model_ids)
    for k, label in enumerate(labels):
        s = verification.strains.index(label)
        style = (
            {"color": "k", "lw": 2}
            if label == "reference"
            else ({"color": "tab:red", "lw": 2, "ls": "--"} if label.startswith("MCA") else {"color": colors(k % 10), "lw": 1.3})
        )
        ax.plot(verification.times, mean[s], label=f"{label} (viable {int(valid[s].sum())}/{n_models})", **style)
        ax.fill_between(verification.times, lo[s], hi[s], color=style["color"], alpha=0.12)
    t_read = getattr(verification, "readout_times", None)
    if t_read is not None and len(t_read) and float(min(t_read)) < float(verification.times[-1]):
        # the comparison times: end of each model's reference fermentation
        ax.axvspan(float(min(t_read)), float(max(t_read)), color="0.5", alpha=0.15, lw=0, label="readout (reference end)")
    ax.set_xlabel("time [h]")
    ax.set_ylabel("product titer [g/L]")
    ax.set_title(f"{verification.mode}: reference vs designs vs MCA baseline ({len(verification.model_ids)} models)")
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    return fig


def plot_sensitivity_bands(sensitivity, ax=None, product_mw_g_per_mol: float | None = None):
    """Titer time course under +/- expression perturbations: mean and 5-95% band per mode.

    Parameters
    ----------
    sensitivity : mpc_bio.nomad.sensitivity.SensitivityResult
    product_mw_g_per_mol : float, optional
        Molar mass of the product (g/mol): titers are drawn in g/L (the simulated mM times
        ``product_mw_g_per_mol / 1000``). Default: the result's own ``product_mw_g_per_mol``;
        required when the result does not carry one.
    """
    mw = product_mw_g_per_mol if product_mw_g_per_mol is not None else getattr(sensitivity, "product_mw_g_per_mol", None)
    if mw is None:
        raise ValueError(
            "The 'product_mw_g_per_mol' parameter of plot_sensitivity_bands is required (titers are "
            "drawn in g/L) when the sensitivity result carries no molar mass; got None."
        )
    g_per_mmol = _g_per_mmol(mw)
    fig, ax = figure_axes(ax, (7, 4.5))
    mean, lo, hi = (g_per_mmol * np.asarray(b, dtype=float) for b in sensitivity.bands())
    colors = plt.get_cmap("tab10")
    for k, mode in enumerate(sensitivity.modes):
        label = "all enzymes" if mode == "all" else f"{mode} only"
        ax.plot(sensitivity.times, mean[k], color=colors(k), label=label)
        ax.fill_between(sensitivity.times, lo[k], hi[k], color=colors(k), alpha=0.15)
    ax.axhline(g_per_mmol * float(np.nanmean(sensitivity.reference_titer)), color="k", ls=":", label="reference (final, mean)")
    ax.set_xlabel("time [h]")
    ax.set_ylabel("product titer [g/L]")
    folds = ", ".join(f"{e} x{f:.2f}" for e, f in zip(sensitivity.enzymes, sensitivity.mean_fold))
    ax.set_title(f"{sensitivity.design}: {folds}", fontsize=8)
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    return fig
