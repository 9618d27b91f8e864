"""The co-design Pareto points and figure: titers as simulated and under the viability rule."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from mpc_bio.codesign.study import CodesignEvaluation
from mpc_bio.nomad.viability import ViabilityRule


def _evaluation() -> CodesignEvaluation:
    """2 strains x 2 feeds x 3 models, final product (mM) written out, molar mass 1000 g/mol so
    titers in g/L equal the numbers below; the design is not viable in model 2."""
    final = np.array([[[1.0, 2.0, 3.0], [2.0, 4.0, np.nan]], [[3.0, 3.0, 6.0], [0.0, 1.0, 2.0]]])
    biomass_end = np.array([[[1.0, 1.0, 1.0], [2.0, 2.0, np.nan]], [[0.5, 0.7, 0.9], [1.0, 1.0, 4.0]]])
    t = np.array([0.0, 1.0, 2.0])
    ramp = t / 2.0
    product, biomass = final[..., None] * ramp, biomass_end[..., None] * ramp
    ones = np.ones_like(product)
    return CodesignEvaluation(
        strains=("reference", "d-1 DDPA"),
        feeds=("batch", "shared"),
        model_ids=("model0", "model1", "model2"),
        times=t,
        product=product,
        biomass=biomass,
        substrate=ones,
        volume=ones,
        feed=0 * ones,
        growth_rate=ones,
        product_yield=final / 10.0,
        success=np.isfinite(final),
        product_mw_g_per_mol=1000.0,
        viability_failure=np.array([["", "", ""], ["", "", "growth ratio 0.5 < 0.8"]]),
        viability_rule=ViabilityRule(3.0, 0.8),
    )


def test_pareto_points_as_simulated_and_under_the_rule():
    """Means and stds over the models written out by hand (rel 1e-12, abs 1e-15): the design's
    batch titer 4 g/L as simulated, (3 + 3 + 0)/3 = 2 g/L under the rule; a missing run (NaN)
    is left out of both; the table's rule column agrees."""
    ev = _evaluation()
    p = ev.pareto_points()
    tol = dict(rel=1e-12, abs=1e-15)
    assert p["titer_mean"][1, 0] == pytest.approx(4.0, **tol)
    assert p["titer_rule_mean"][1, 0] == pytest.approx(2.0, **tol)
    assert p["titer_rule_std"][1, 0] == pytest.approx(np.sqrt(2.0), **tol)  # values 3, 3, 0
    assert p["titer_mean"][1, 1] == pytest.approx(1.0, **tol)
    assert p["titer_rule_mean"][1, 1] == pytest.approx(1.0 / 3.0, **tol)  # values 0, 1, 0
    assert p["titer_mean"][0, 1] == pytest.approx(3.0, **tol) and p["titer_rule_mean"][0, 1] == pytest.approx(3.0, **tol)
    assert p["titer_std"][0, 1] == pytest.approx(1.0, **tol)  # values 2, 4
    assert p["biomass_mean"][1, 1] == pytest.approx(2.0, **tol) and p["biomass_mean"][0, 1] == pytest.approx(2.0, **tol)
    assert p["n_viable"].tolist() == [3, 2]
    table = ev.table().set_index(["strain", "feed"])
    for s, strain in enumerate(ev.strains):
        for f, feed in enumerate(ev.feeds):
            assert table.loc[(strain, feed), "titer_g_per_l_mean_rule"] == pytest.approx(p["titer_rule_mean"][s, f], **tol)
            assert table.loc[(strain, feed), "titer_g_per_l_mean"] == pytest.approx(p["titer_mean"][s, f], **tol)


def test_pareto_figure_draws_both_titers_visibly_distinguished():
    """Each strain x feed is drawn twice at the same biomass: filled at the titer as simulated, open
    at the titer under the rule (the plotted data equal pareto_points, rel 1e-12)."""
    from mpc_bio.plotting.codesign import plot_pareto

    ev = _evaluation()
    p = ev.pareto_points()
    fig = plot_pareto(ev)
    try:
        ax = fig.axes[0]
        filled, hollow = [], []
        for c in ax.containers:
            line = c.lines[0]
            x, y = float(line.get_xdata()[0]), float(line.get_ydata()[0])
            (hollow if line.get_markerfacecolor() == "none" else filled).append((x, y))
        expected_filled = sorted((p["biomass_mean"][s, f], p["titer_mean"][s, f]) for s in range(2) for f in range(2))
        expected_hollow = sorted((p["biomass_mean"][s, f], p["titer_rule_mean"][s, f]) for s in range(2) for f in range(2))
        np.testing.assert_allclose(sorted(filled), expected_filled, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(sorted(hollow), expected_hollow, rtol=1e-12, atol=1e-15)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "d-1 DDPA / batch (2/3 viable)" in labels and "viability rule (open)" in labels
    finally:
        plt.close(fig)
