"""Figures of the co-design study (:mod:`mpc_bio.codesign`): Pareto plot, time-course bands, feeds.

Each function takes a result (and an optional ``ax``), computes nothing beyond means/quantiles
already defined on the result, and returns the figure (never shown).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from mpc_bio.plotting.axes import figure_axes

__all__ = ["plot_pareto", "plot_time_courses", "plot_feed_profiles"]

_MARKERS = {"batch": "s", "reference": "o", "shared": "^", "own": "D"}


def plot_pareto(evaluation, ax=None):
    """Mean final titer (g/L) vs mean final biomass (gDW/L) per strain x feed, bars = std over
    models, from :meth:`~mpc_bio.codesign.study.CodesignEvaluation.pareto_points`: the titer as
    simulated (filled markers) and under the viability rule (open markers, non-viable strain x
    model as zero titer; a dotted line joins the two where they differ). The biomass is as
    simulated in both."""
    fig, ax = figure_axes(ax, (6.0, 4.5))
    p = evaluation.pareto_points()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    n_models = len(evaluation.model_ids)
    for s, strain in enumerate(evaluation.strains):
        c = colors[s % len(colors)]
        for f, feed in enumerate(evaluation.feeds):
            x, y, y_rule = p["biomass_mean"][s, f], p["titer_mean"][s, f], p["titer_rule_mean"][s, f]
            if not np.isfinite(y):
                continue
            marker = _MARKERS.get(feed, "o")
            ax.errorbar(x, y, xerr=p["biomass_std"][s, f], yerr=p["titer_std"][s, f], fmt=marker, color=c, capsize=2)
            ax.errorbar(
                x,
                y_rule,
                yerr=p["titer_rule_std"][s, f],
                fmt=marker,
                mfc="none",
                color=c,
                capsize=2,
                label=f"{strain} / {feed} ({p['n_viable'][s]}/{n_models} viable)",
            )
            if y_rule != y:
                ax.plot([x, x], [y, y_rule], ":", color=c, linewidth=1)
    ax.plot([], [], "ok", label="as simulated (filled)")
    ax.plot([], [], "ok", mfc="none", label="viability rule (open)")
    ax.set_xlabel("final biomass (gDW/L, as simulated)")
    ax.set_ylabel("final titer (g/L)")
    rule = evaluation.viability_rule
    ax.set_title(
        f"co-design: titer vs growth (mean ± std over models)\nrule: {'not checked' if rule is None else rule.label()}", fontsize=9
    )
    ax.legend(fontsize=6, ncol=2)
    return fig


def plot_time_courses(evaluation, quantity: str = "product", ax=None):
    """Mean and 10-90 % band over models of a time course, one panel per feed, one colour per strain.

    The product is drawn as a titer in g/L (the evaluation's molar mass), like every titer of the
    co-design outputs; the other quantities in their model units (gDW/L, mM, L).
    """
    n = len(evaluation.feeds)
    fig, axes = figure_axes(ax, (3.2 * n, 3.2), (1, n), sharey=True)
    mean, lo, hi = evaluation.bands(quantity)
    if quantity == "product":  # titers in g/L, as in the Pareto plot and the summary (mM x g/mol / 1000)
        mean, lo, hi = (a * evaluation.product_mw_g_per_mol / 1000.0 for a in (mean, lo, hi))
    unit = {"product": "titer (g/L)", "biomass": "biomass (gDW/L)", "substrate": "glucose (mM)", "volume": "volume (L)"}.get(
        quantity, quantity
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for f, feed in enumerate(evaluation.feeds[: len(axes)]):
        a = axes[f]
        for s, strain in enumerate(evaluation.strains):
            c = colors[s % len(colors)]
            a.plot(evaluation.times, mean[s, f], color=c, label=strain)
            a.fill_between(evaluation.times, lo[s, f], hi[s, f], color=c, alpha=0.2)
        a.set_title(f"feed: {feed}")
        a.set_xlabel("time (h)")
    axes[0].set_ylabel(unit)
    axes[0].legend(fontsize=6)
    return fig


def plot_feed_profiles(study, ax=None):
    """The shared feed and each design's own feed (L/h) over the batch."""
    fig, ax = figure_axes(ax, (6.0, 4.5))
    for opt, style in [(study.shared_feed, "-")] + [(o, "--") for o in study.own_feeds.values()]:
        ax.step(
            opt.edges,
            np.r_[opt.feed, opt.feed[-1]],
            where="post",
            linestyle=style,
            label=("shared (reference strain)" if opt is study.shared_feed else f"own: {opt.strain}"),
        )
    ref = study.reference_feed
    t_end = study.evaluation.times[-1]
    ax.step(list(ref.times) + [t_end], list(ref.rates) + [ref.rates[-1]], where="post", color="k", alpha=0.5, label="reference feed")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("feed (L/h)")
    ax.legend(fontsize=6)
    return fig
