"""The growth-map figure draws the sampled data without computing anything."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mpc_bio.metabolism import grid_points, latin_hypercube_points, sample_pfba  # noqa: E402
from mpc_bio.plotting.metabolism import plot_growth_curves, plot_growth_map  # noqa: E402


def test_growth_map_on_grid_and_given_axes(ecoli_core):
    ds = sample_pfba(ecoli_core, grid_points({"glucose": (0, 10, 1), "oxygen": (0, 10, 1)}), progress=False)
    fig = plot_growth_map(ds)
    ax = fig.axes[0]
    assert "glucose" in ax.get_xlabel() and "oxygen" in ax.get_ylabel()
    mesh = ax.collections[0]
    # the colour data are the dataset's growth values, unchanged
    np.testing.assert_allclose(np.sort(np.ravel(mesh.get_array())), np.sort(ds.growth))
    assert "relaxed" in ax.get_title()
    fig2, ax2 = plt.subplots()
    assert plot_growth_map(ds, ax=ax2) is fig2
    fig3 = plot_growth_curves(ds, levels=(5, 10))
    assert len(fig3.axes[0].lines) == 4
    plt.close("all")


def test_growth_map_scattered(ecoli_core):
    pts = latin_hypercube_points(30, {"glucose": (0, 10), "oxygen": (0, 10)}, seed=1)
    ds = sample_pfba(ecoli_core, pts, progress=False)
    fig = plot_growth_map(ds)
    assert fig.axes[0].collections
    plt.close("all")
