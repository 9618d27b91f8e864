"""Figures of the surrogate stage (paper 1, figures 2, 4, 6): draw results, compute nothing.

Every function takes a result object from :mod:`mpc_bio.surrogate.analysis` and optional axes,
and returns the matplotlib Figure (never calls ``show()``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from mpc_bio.plotting.axes import figure_axes

__all__ = [
    "plot_uptake_response",
    "plot_flux_comparison",
    "plot_sensitivity_map",
    "plot_test_parity",
    "plot_training_history",
]


def plot_uptake_response(response, ax=None, *, fixed_oxygen: float | None = None):
    """Figure 2: (A) growth vs glucose concentration per oxygen uptake, (B) growth vs glucose uptake at
    one oxygen uptake, (C) glucose uptake vs concentration with the Michaelis-Menten reference.

    Parameters
    ----------
    response : UptakeResponse
    ax : sequence of 3 Axes, optional
    fixed_oxygen : float, optional
        Oxygen uptake (mmol/gDW/h) of panel B; default the largest curve below or at 15.
    """
    fig, (a, b, c) = figure_axes(ax, (13.5, 4.0), (1, 3))
    r = response
    colors = plt.cm.viridis(np.linspace(0.1, 0.9, r.oxygen_uptakes.size))
    for i, o in enumerate(r.oxygen_uptakes):
        a.plot(r.concentration, r.growth[i], color=colors[i], label=f"q_O2 = {o:g}")
        if r.reference_growth is not None:
            a.plot(r.concentration[::5], r.reference_growth[i, ::5], "o", ms=3, mfc="none", color=colors[i])
    a.set_xlabel("glucose concentration (mmol/L)")
    a.set_ylabel("growth rate (1/h)")
    a.set_title("A  growth vs glucose (surrogate; o = pFBA)")
    a.legend(fontsize=8, title="mmol/gDW/h", title_fontsize=8)
    if fixed_oxygen is None:
        cand = r.oxygen_uptakes[r.oxygen_uptakes <= 15.0]
        fixed_oxygen = float(cand.max() if cand.size else r.oxygen_uptakes[0])
    i = int(np.argmin(np.abs(r.oxygen_uptakes - fixed_oxygen)))
    b.plot(r.glucose_input, r.growth[i], color=colors[i], label="surrogate")
    if r.reference_growth is not None:
        b.plot(r.glucose_input[::5], r.reference_growth[i, ::5], "o", ms=3, mfc="none", color="k", label="pFBA")
    b.set_xlabel("glucose uptake (mmol/gDW/h)")
    b.set_ylabel("growth rate (1/h)")
    b.set_title(f"B  q_O2 = {r.oxygen_uptakes[i]:g} mmol/gDW/h")
    b.legend(fontsize=8)
    for j, o in enumerate(r.oxygen_uptakes):
        c.plot(r.concentration, r.glucose_uptake[j], color=colors[j], label=f"surrogate, q_O2 = {o:g}")
    c.plot(r.concentration, r.glucose_input, ":", color="k", label=f"Michaelis-Menten (Vmax {r.vmax:g}, Km {r.km:g})")
    c.set_xlabel("glucose concentration (mmol/L)")
    c.set_ylabel("glucose uptake (mmol/gDW/h)")
    c.set_title("C  glucose uptake")
    c.legend(fontsize=7)
    return fig


def plot_flux_comparison(comparison, ax=None):
    """Figure 4: (A) total |flux|, (B) total glycolysis |flux|, (C) parity of all reactions,
    (D) parity of the glycolysis reactions, surrogate vs pFBA at one input point."""
    fig, (a, b, c, d) = figure_axes(ax, (16.0, 4.0), (1, 4))
    cm = comparison
    pt = ", ".join(f"{v:g}" for v in cm.inputs)
    a.bar(["pFBA", "surrogate"], [cm.total_reference, cm.total_predicted], color=["0.5", "C0"])
    a.set_ylabel("sum |v| (mmol/gDW/h)")
    a.set_title(f"A  total flux at ({pt})")
    b.bar(["pFBA", "surrogate"], [cm.glycolysis_reference, cm.glycolysis_predicted], color=["0.5", "C1"])
    b.set_ylabel("sum |v| glycolysis (mmol/gDW/h)")
    b.set_title("B  glycolysis flux")
    lim = float(np.max(np.abs(np.concatenate([cm.reference, cm.predicted])))) * 1.05 or 1.0
    c.plot([-lim, lim], [-lim, lim], "k-", lw=0.7)
    c.plot(cm.reference, cm.predicted, "o", ms=4, mfc="none", color="C0")
    c.set_xlabel("pFBA flux (mmol/gDW/h)")
    c.set_ylabel("surrogate flux (mmol/gDW/h)")
    c.set_title(f"C  all {len(cm.reaction_ids)} reactions")
    gr, gp = cm.glycolysis()
    if gr.size:
        lim2 = float(np.max(np.abs(np.concatenate([gr, gp])))) * 1.1 or 1.0
        d.plot([-lim2, lim2], [-lim2, lim2], "k-", lw=0.7)
        d.plot(gr, gp, "o", ms=5, mfc="none", color="C1")
        for rid, x, y in zip(cm.glycolysis_ids, gr, gp):
            d.annotate(rid, (x, y), fontsize=7, xytext=(3, -8), textcoords="offset points")
    d.set_xlabel("pFBA flux (mmol/gDW/h)")
    d.set_ylabel("surrogate flux (mmol/gDW/h)")
    d.set_title("D  glycolysis")
    return fig


def plot_sensitivity_map(smap, ax=None):
    """Figure 6: d(growth)/d(q_glc) and d(growth)/d(q_O2) over the uptake grid (autograd)."""
    fig, (a, b) = figure_axes(ax, (11.0, 4.3), (1, 2))
    ext = [smap.glucose[0], smap.glucose[-1], smap.oxygen[0], smap.oxygen[-1]]
    vmax = float(max(np.abs(smap.d_growth_d_glucose).max(), np.abs(smap.d_growth_d_oxygen).max())) or 1.0
    for axx, data, title in (
        (a, smap.d_growth_d_glucose, "A  d growth / d q_glc"),
        (b, smap.d_growth_d_oxygen, "B  d growth / d q_O2"),
    ):
        im = axx.imshow(data, origin="lower", extent=ext, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        axx.set_xlabel("glucose uptake (mmol/gDW/h)")
        axx.set_ylabel("oxygen uptake (mmol/gDW/h)")
        axx.set_title(title)
        fig.colorbar(im, ax=axx, label="(1/h) per (mmol/gDW/h)")
    return fig


def plot_test_parity(evaluation, ax=None, *, highlight: tuple[str, ...] = ()):
    """Parity over the random off-grid test set: every reaction, fluxes divided by their range,
    and the growth rate; title gives the worst errors."""
    fig, (a, b) = figure_axes(ax, (10.0, 4.3), (1, 2))
    e = evaluation
    m = e.metrics
    keep = m.flux_range > 1e-3  # reactions that vary over the test points
    rng = m.flux_range[keep]
    lo = e.reference[:, keep].min(axis=0)
    ref = (e.reference[:, keep] - lo) / rng
    pred = (e.predicted[:, keep] - lo) / rng
    a.plot([0, 1], [0, 1], "k-", lw=0.7)
    a.plot(ref.ravel(), pred.ravel(), ".", ms=1, alpha=0.3, color="C0")
    a.set_xlim(-0.1, 1.1)
    a.set_ylim(-0.1, 1.1)
    ref = (e.reference - e.reference.min(axis=0)) / np.maximum(m.flux_range, 1e-3)
    pred = (e.predicted - e.reference.min(axis=0)) / np.maximum(m.flux_range, 1e-3)
    for rid in highlight:
        if rid in e.reaction_ids:
            j = e.reaction_ids.index(rid)
            a.plot(ref[:, j], pred[:, j], ".", ms=2, label=rid)
    a.set_xlabel("pFBA flux (fraction of range)")
    a.set_ylabel("surrogate flux (fraction of range)")
    a.set_title(
        f"{int(keep.sum())} varying reactions, {m.n_points} off-grid points\n"
        f"worst {m.worst_reaction}: {100 * m.worst_reaction_max_err_frac:.1f}% of range; "
        f"{int(np.sum(m.max_err_frac <= 0.02))}/{len(m.reaction_ids)} within 2%",
        fontsize=9,
    )
    gi = e.reaction_ids.index(e.objective_id)
    lim = float(e.reference[:, gi].max()) * 1.05
    b.plot([0, lim], [0, lim], "k-", lw=0.7)
    b.plot(e.reference[:, gi], e.predicted[:, gi], ".", ms=2, color="C2")
    b.set_xlabel("pFBA growth (1/h)")
    b.set_ylabel("surrogate growth (1/h)")
    b.set_title(f"growth: max error {100 * m.growth_max_abs_err_frac:.2f}% of max growth")
    return fig


def plot_training_history(history, ax=None):
    """Training and validation loss per epoch; ``history`` rows are (epoch, train, validation)."""
    fig, (a,) = figure_axes(ax, (5.0, 3.5), (1, 1))
    h = np.asarray(history, dtype=float)
    if h.size:
        a.semilogy(h[:, 0], h[:, 1], label="train")
        a.semilogy(h[:, 0], h[:, 2], label="validation")
    a.set_xlabel("epoch")
    a.set_ylabel("loss (range-scaled MSE)")
    a.legend()
    return fig
