"""Adaptive refinement of a sampled grid (mpc_bio.metabolism.refinement).

Independent references: (a) functions with a known kink, where the right places for new points
are known in closed form, and a linear function, where no point is needed; (b) every point added to
a pFBA dataset is an ordinary pFBA solution: solving it again from a cold solver gives the same
fluxes.
"""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.metabolism import FluxDataset, PFBASettings, PFBASolver
from mpc_bio.metabolism.refinement import (
    RefineSettings,
    extend_dataset,
    refine_cells,
    refine_dataset,
)
from mpc_bio.metabolism.sampling import (
    SamplingError,
    grid_points,
    latin_hypercube_points,
    sample_pfba,
)
from mpc_bio.metabolism.settings import SettingsError

KINK = 0.537  # not on any refinement lattice (multiples of 0.1 / 2**6)


def _kinked(P: np.ndarray) -> np.ndarray:
    """Two outputs: |x - KINK| (a kink along a line) and y (linear)."""
    return np.stack([np.abs(P[:, 0] - KINK), P[:, 1]], axis=1)


def test_refinement_puts_points_at_a_known_kink_only():
    grid = grid_points({"x": (0, 1, 0.1), "y": (0, 1, 0.1)}).values
    depth = 4
    res = refine_cells(_kinked, grid, _kinked(grid), np.ones(2), RefineSettings(tolerance=1e-4, max_depth=depth), progress=False)
    assert res.points.shape[0] > 0
    # values are the function at the points (exact; no interpolation involved)
    np.testing.assert_allclose(res.values, _kinked(res.points), rtol=0, atol=0)
    # the centres of all 100 grid cells are tested first; every point after them lies in the grid
    # column (0.5, 0.6) that contains the kink
    n_centres = res.levels[0]["cells_tested"]
    assert n_centres == 100 and res.levels[0]["cells_flagged"] == 10
    split = res.points[n_centres:]
    assert split.shape[0] > 0
    assert np.all((split[:, 0] >= 0.5 - 1e-12) & (split[:, 0] <= 0.6 + 1e-12))
    # the last level's points are centres of the children of the cells of edge 0.1 / 2**(depth-1)
    # that straddle the kink (only those differ from their interpolation), so within that edge of it
    finest = res.points[-res.levels[-1]["points_added"] :]
    assert res.levels[-1]["depth"] == depth
    assert np.all(np.abs(finest[:, 0] - KINK) <= 0.1 / 2 ** (depth - 1) + 1e-12)
    # no point is repeated, none is a grid point
    assert len(np.unique(res.points, axis=0)) == len(res.points)
    on_grid = np.all(np.abs(res.points / 0.1 - np.round(res.points / 0.1)) < 1e-9, axis=1)
    assert not on_grid.any()
    # closed form: in a cell [a, a + h] around the kink the corners interpolate to h/2 at the centre c,
    # so the difference is h/2 - |c - KINK| (<= h/2: it halves with every split); tolerance 1e-12
    for lv in res.levels:
        h = 0.1 / 2 ** lv["depth"]
        c = (np.floor(KINK / h) + 0.5) * h
        assert lv["max_difference"] == pytest.approx(h / 2 - abs(c - KINK), rel=0, abs=1e-12)


def test_refinement_adds_nothing_where_the_function_is_multilinear():
    grid = grid_points({"x": (0, 2, 0.25), "y": (1, 3, 0.5)}).values
    f = lambda P: np.stack([3 * P[:, 0] - P[:, 1] + 2 * P[:, 0] * P[:, 1]], axis=1)
    res = refine_cells(f, grid, f(grid), np.ones(1), RefineSettings(tolerance=1e-9, max_depth=3), progress=False)
    assert res.levels[0]["cells_flagged"] == 0
    # the centres were tested (and kept), nothing beyond them
    assert res.points.shape[0] == res.levels[0]["cells_tested"] == 8 * 4


def test_refinement_respects_the_point_budget():
    grid = grid_points({"x": (0, 1, 0.1), "y": (0, 1, 0.1)}).values
    full = refine_cells(_kinked, grid, _kinked(grid), np.ones(2), RefineSettings(tolerance=1e-4, max_depth=4), progress=False)
    capped = refine_cells(
        _kinked, grid, _kinked(grid), np.ones(2), RefineSettings(tolerance=1e-4, max_depth=4, max_points=150), progress=False
    )
    assert capped.points.shape[0] <= 150 < full.points.shape[0]
    for budget in range(40, full.points.shape[0], 37):  # caps met inside every level, at any split
        capped = refine_cells(
            _kinked,
            grid,
            _kinked(grid),
            np.ones(2),
            RefineSettings(tolerance=1e-4, max_depth=4, max_points=budget),
            progress=False,
        )
        assert capped.points.shape[0] <= budget


def test_refinement_settings_and_inputs_are_checked():
    for bad in ({"tolerance": 0}, {"tolerance": float("nan")}, {"max_depth": 0}, {"max_depth": 2.5}, {"max_points": -1}):
        with pytest.raises(SettingsError):
            RefineSettings(**bad)
    scattered = latin_hypercube_points(20, {"x": (0, 1), "y": (0, 1)}, seed=0).values
    with pytest.raises(SamplingError, match="complete regular grid"):
        refine_cells(_kinked, scattered, _kinked(scattered), np.ones(2), progress=False)


@pytest.fixture(scope="module")
def refined_small():
    settings = PFBASettings(tie_break="l2")
    grid = sample_pfba("e_coli_core", grid_points({"glucose": (0, 3, 0.5), "oxygen": (0, 6, 1.0)}), settings, progress=False)
    return grid, refine_dataset("e_coli_core", grid, RefineSettings(tolerance=0.01, max_depth=2), progress=False)


def test_refined_points_are_fresh_pfba_solutions(refined_small, tmp_path):
    grid, ref = refined_small
    n0 = grid.n_points
    info = ref.settings["sampling"]["refinement"]
    assert info["n_grid_points"] == n0 and info["n_added_points"] == ref.n_points - n0 > 0
    # grid rows unchanged and first
    np.testing.assert_array_equal(ref.inputs[:n0], grid.inputs)
    np.testing.assert_array_equal(ref.fluxes[:n0], grid.fluxes)
    # no point needed a solver fallback (the counts sum the grid's and the added parts')
    for data in (grid, ref):
        assert data.settings["sampling"]["tie_break_vertex_kept"] == data.settings["sampling"]["growth_fix_loosened"] == 0
    # added points: a cold solver at each point gives the same fluxes (abs 1e-6 mmol/gDW/h, rel 1e-6)
    rng = np.random.default_rng(0)
    pick = rng.choice(np.arange(n0, ref.n_points), size=min(25, ref.n_points - n0), replace=False)
    for i in pick:
        pt = PFBASolver("e_coli_core", PFBASettings(tie_break="l2")).solve(ref.inputs[i])
        np.testing.assert_allclose(ref.fluxes[i], pt.fluxes, rtol=1e-6, atol=1e-6)
        assert ref.status[i] == pt.status_code
    # save/load keeps the points and the record
    back = FluxDataset.load(ref.save(tmp_path / "refined"))
    assert back.content_hash() == ref.content_hash()
    assert back.settings["sampling"]["refinement"]["levels"] == info["levels"]


def test_refine_dataset_refuses_wrong_model_and_refined_input(refined_small):
    grid, ref = refined_small
    with pytest.raises(SamplingError, match="already refined"):
        refine_dataset("e_coli_core", ref, progress=False)
    import cobra

    other = cobra.io.load_model("textbook")
    other.reactions.ATPM.lower_bound = 3.0
    with pytest.raises(SamplingError, match="hash"):
        refine_dataset(other, grid, progress=False)


def test_extend_dataset_appends_fresh_pfba_solutions_once(refined_small, tmp_path):
    """A finer oxygen axis over the grid (glucose 0-3 step 0.5, oxygen 0-1 step 0.25): 7 x 5 = 35
    points, of which the 14 at oxygen 0 and 1 are grid points, so 21 are added; each is an
    ordinary pFBA solution (a cold solver gives the same fluxes, abs and rel 1e-6); given again,
    nothing is added."""
    grid, ref = refined_small
    strip = grid_points({"glucose": (0, 3, 0.5), "oxygen": (0, 1, 0.25)})
    ext = extend_dataset("e_coli_core", grid, strip, progress=False)
    assert ext.n_points == grid.n_points + 21
    np.testing.assert_array_equal(ext.fluxes[: grid.n_points], grid.fluxes)
    new = ext.inputs[grid.n_points :]
    assert set(np.round(new[:, 1], 9)) == {0.25, 0.5, 0.75}
    for i in range(grid.n_points, ext.n_points, 4):
        pt = PFBASolver("e_coli_core", PFBASettings(tie_break="l2")).solve(ext.inputs[i])
        np.testing.assert_allclose(ext.fluxes[i], pt.fluxes, rtol=1e-6, atol=1e-6)
    [record] = ext.settings["sampling"]["extensions"]
    assert record["kind"] == "grid" and record["n_given"] == 35 and record["n_added"] == 21
    # extending a refined dataset keeps its refinement record; repeated points add nothing
    again = extend_dataset("e_coli_core", extend_dataset("e_coli_core", ref, strip, progress=False), strip, progress=False)
    assert again.settings["sampling"]["refinement"] == ref.settings["sampling"]["refinement"]
    assert [e["n_added"] for e in again.settings["sampling"]["extensions"]][1] == 0
    back = FluxDataset.load(ext.save(tmp_path / "ext"))
    assert back.content_hash() == ext.content_hash()
    assert back.settings["sampling"]["extensions"] == ext.settings["sampling"]["extensions"]
    with pytest.raises(SamplingError, match="already refined or extended"):
        refine_dataset("e_coli_core", ext, progress=False)
    with pytest.raises(SamplingError, match="finite"):
        extend_dataset("e_coli_core", grid, np.array([[1.0, np.nan]]), progress=False)
    with pytest.raises(SamplingError, match="columns"):
        extend_dataset("e_coli_core", grid, np.ones((3, 3)), progress=False)


def test_sample_command_refines(tmp_path, capsys):
    from mpc_bio.cli import main

    out = tmp_path / "refined"
    argv = [
        "sample",
        "e_coli_core",
        "--tie-break",
        "l2",
        "--grid",
        "glucose=0:2:0.5",
        "--grid",
        "oxygen=0:4:1",
        "--refine",
        "0.01",
        "--refine-depth",
        "2",
        "--workers",
        "1",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    ds = FluxDataset.load(out)
    info = ds.settings["sampling"]["refinement"]
    assert info["n_grid_points"] == 25 and ds.n_points == 25 + info["n_added_points"] > 25
    assert (out / "growth_map.png").stat().st_size > 5000
    assert main(["sample", "--lhs", "5", "--refine", "0.01", "--no-progress"]) == 2
    assert "--refine" in capsys.readouterr().err
