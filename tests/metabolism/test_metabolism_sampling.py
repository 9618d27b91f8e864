"""Grids, Latin hypercubes, serpentine order, parallel sampling and the FluxDataset round trip."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mpc_bio.metabolism import (
    PAPER_GRID,
    DatasetError,
    FluxDataset,
    PFBASettings,
    PFBASolver,
    SamplingError,
    grid_points,
    latin_hypercube_points,
    sample_pfba,
    serpentine_order,
)

SMALL_GRID = {"glucose": (0.0, 12.0, 0.75), "oxygen": (0.0, 15.0, 1.0)}  # 17 x 16 = 272 points


def test_paper_grid_is_exact():
    pts = grid_points(PAPER_GRID)
    assert len(pts) == 40401 and pts.shape == (201, 201)
    g = pts.axis("glucose")
    assert len(g) == 201 and g[0] == 0.0 and g[-1] == 20.0
    assert 0.3 in g and 0.7 in g and 19.9 in g  # exact decimal values, no 0.30000000000000004
    np.testing.assert_array_equal(g, np.array([float(f"{i / 10:.1f}") for i in range(201)]))
    # first axis slowest
    assert tuple(pts.values[1]) == (0.0, 0.1) and tuple(pts.values[201]) == (0.1, 0.0)


def test_grid_errors():
    with pytest.raises(SamplingError, match="empty"):
        grid_points({"glucose": (5.0, 1.0, 0.1)})
    with pytest.raises(SamplingError, match="positive step"):
        grid_points({"glucose": (0.0, 1.0, 0.0)})
    with pytest.raises(SamplingError, match="non-negative"):
        grid_points({"glucose": (-1.0, 1.0, 0.5)})
    with pytest.raises(SamplingError, match="non-empty mapping"):
        grid_points({})
    with pytest.raises(SamplingError, match="finite"):
        grid_points({"glucose": (0.0, float("nan"), 0.5)})


def test_latin_hypercube_is_seeded_and_stratified():
    a = latin_hypercube_points(50, {"glucose": (0, 20), "oxygen": (5, 15)}, seed=3)
    b = latin_hypercube_points(50, {"glucose": (0, 20), "oxygen": (5, 15)}, seed=3)
    c = latin_hypercube_points(50, {"glucose": (0, 20), "oxygen": (5, 15)}, seed=4)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    # one point in each of the 50 strata of every input
    strata_g = np.floor(a.values[:, 0] / 20 * 50).astype(int)
    strata_o = np.floor((a.values[:, 1] - 5) / 10 * 50).astype(int)
    assert sorted(strata_g) == list(range(50)) and sorted(strata_o) == list(range(50))
    with pytest.raises(SamplingError, match="positive integer"):
        latin_hypercube_points(0, {"glucose": (0, 1)})
    with pytest.raises(SamplingError, match="0 <= low <= high"):
        latin_hypercube_points(5, {"glucose": (2, 1)})


def test_serpentine_order_walks_grid_neighbours():
    pts = grid_points({"a": (0, 4, 1), "b": (0, 5, 1), "c": (0, 2, 1)})
    order = serpentine_order(pts.values)
    assert sorted(order) == list(range(len(pts)))
    steps = np.abs(np.diff(pts.values[order], axis=0)).sum(axis=1)
    np.testing.assert_array_equal(steps, np.ones(len(pts) - 1))
    scattered = latin_hypercube_points(300, {"a": (0, 1), "b": (0, 1)}, seed=0).values
    o = serpentine_order(scattered)
    assert sorted(o) == list(range(300))
    # the path is much shorter than a random one
    path = np.linalg.norm(np.diff(scattered[o], axis=0), axis=1).sum()
    rand = np.linalg.norm(np.diff(scattered, axis=0), axis=1).sum()
    assert path < 0.3 * rand


@pytest.fixture(scope="module")
def serial_dataset(_ecoli_core_session):
    return sample_pfba(_ecoli_core_session, grid_points(SMALL_GRID), chunk_size=40, progress=False)


def test_dataset_matches_single_point_solves(serial_dataset, ecoli_core):
    ds = serial_dataset
    assert ds.n_points == 272
    assert ds.status_counts()["optimal"] > 200 and ds.status_counts()["relaxed"] > 0
    solver = PFBASolver(ecoli_core)
    for i in [0, 17, 100, 271]:
        pt = solver.solve(ds.inputs[i])
        assert pt.status_code == ds.status[i]
        assert ds.growth[i] == pytest.approx(pt.growth, rel=1e-7, abs=1e-9)
        assert ds.split_fluxes[i].sum() == pytest.approx(pt.total_flux, rel=1e-7, abs=1e-7)
    np.testing.assert_allclose(ds.fluxes, ds.split_fluxes[:, :95] - ds.split_fluxes[:, 95:], rtol=0, atol=0)
    assert ds.settings["sampling"]["kind"] == "grid" and ds.settings["sampling"]["chunk_size"] == 40


def test_rerun_gives_identical_data(serial_dataset, ecoli_core):
    again = sample_pfba(ecoli_core, grid_points(SMALL_GRID), chunk_size=40, progress=False)
    assert again.content_hash() == serial_dataset.content_hash()


def test_process_pool_equals_serial(serial_dataset, ecoli_core):
    par = sample_pfba(ecoli_core, grid_points(SMALL_GRID), chunk_size=40, n_workers=2, progress=False)
    assert par.content_hash() == serial_dataset.content_hash()
    np.testing.assert_array_equal(par.split_fluxes, serial_dataset.split_fluxes)


def test_broken_pool_loses_no_points(serial_dataset, tmp_path):
    """A script without an ``if __name__ == "__main__":`` guard breaks the spawn pool (each worker
    re-runs the script); the chunks are solved in the calling process instead, with a warning that
    says why, and the data equal the serial run exactly (same content hash)."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    out = tmp_path / "data"
    script.write_text(
        "from mpc_bio.metabolism import grid_points, load_model, sample_pfba\n"
        f"ds = sample_pfba(load_model('e_coli_core'), grid_points({SMALL_GRID!r}), chunk_size=40, n_workers=2, progress=False)\n"
        f"ds.save({str(out)!r})\n"
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'under `if __name__ == "__main__":`' in run.stderr and "solved in this process instead" in run.stderr
    assert FluxDataset.load(out).content_hash() == serial_dataset.content_hash()


def test_dask_local_cluster_equals_serial(serial_dataset, ecoli_core):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        par = sample_pfba(ecoli_core, grid_points(SMALL_GRID), chunk_size=40, scheduler=cluster.scheduler_address, progress=False)
    assert par.content_hash() == serial_dataset.content_hash()
    np.testing.assert_array_equal(par.status, serial_dataset.status)


def test_failed_points_never_stop_a_run(ecoli_core):
    """Unbounded growth (all bounds opened) is a solver failure at every point: recorded, not raised."""
    broken = ecoli_core.copy()
    for r in broken.reactions:
        r.bounds = (-float("inf"), float("inf"))
    ds = sample_pfba(broken, grid_points({"glucose": (1, 3, 1), "oxygen": (1, 2, 1)}), progress=False)
    assert ds.status_counts()["failed"] == ds.n_points == 6
    assert np.isnan(ds.fluxes).all()
    # relaxation off: infeasible and optimal points in one run
    ds = sample_pfba(ecoli_core, grid_points({"glucose": (0, 10, 5), "oxygen": (0, 10, 5)}), PFBASettings(relax=False), progress=False)
    c = ds.status_counts()
    assert c["infeasible"] > 0 and c["optimal"] > 0 and c["infeasible"] + c["optimal"] == 9
    assert np.isnan(ds.growth[ds.mask("infeasible")]).all()
    # the rows to learn from: optimal or relaxed and finite, nothing else
    np.testing.assert_array_equal(ds.usable_rows(), ds.mask("optimal"))
    with_nan = ds.fluxes.copy()
    first = int(np.flatnonzero(ds.mask("optimal"))[0])
    with_nan[first, 0] = np.nan
    mask = ds.mask("optimal")
    mask[first] = False
    np.testing.assert_array_equal(dataclasses.replace(ds, fluxes=with_nan).usable_rows(), mask)
    np.testing.assert_array_equal(dataclasses.replace(ds, fluxes=with_nan).flux_ranges(), np.ptp(ds.fluxes[mask], axis=0))


def test_sampling_input_errors(ecoli_core):
    with pytest.raises(SamplingError, match="empty"):
        sample_pfba(ecoli_core, np.zeros((0, 2)), progress=False)
    with pytest.raises(SamplingError, match="non-negative"):
        sample_pfba(ecoli_core, np.array([[1.0, -2.0]]), progress=False)
    with pytest.raises(SamplingError, match="finite"):
        sample_pfba(ecoli_core, np.array([[1.0, np.nan]]), progress=False)
    with pytest.raises(SamplingError, match="shape"):
        sample_pfba(ecoli_core, np.ones((3, 3)), progress=False)
    with pytest.raises(SamplingError, match="settings expect"):
        sample_pfba(ecoli_core, grid_points({"xylose": (0, 1, 1)}), progress=False)
    with pytest.raises(SamplingError, match="chunk_size"):
        sample_pfba(ecoli_core, np.ones((3, 2)), chunk_size=0, progress=False)


def test_points_given_as_mapping_and_reordered_names(ecoli_core, serial_dataset):
    pts = grid_points({"oxygen": SMALL_GRID["oxygen"], "glucose": SMALL_GRID["glucose"]})
    ds = sample_pfba(ecoli_core, pts, chunk_size=40, progress=False)
    assert ds.input_names == ("glucose", "oxygen")
    i = int(np.flatnonzero((ds.inputs[:, 0] == 6.0) & (ds.inputs[:, 1] == 9.0))[0])
    j = int(np.flatnonzero((serial_dataset.inputs[:, 0] == 6.0) & (serial_dataset.inputs[:, 1] == 9.0))[0])
    assert ds.growth[i] == pytest.approx(serial_dataset.growth[j], rel=1e-9, abs=1e-12)
    ds2 = sample_pfba(ecoli_core, {"glucose": [6.0, 2.0], "oxygen": [9.0, 0.0]}, progress=False)
    assert ds2.growth[0] == pytest.approx(serial_dataset.growth[j], rel=1e-9, abs=1e-12)


def test_save_load_round_trip(serial_dataset, tmp_path):
    serial_dataset.save(tmp_path / "ds")
    back = FluxDataset.load(tmp_path / "ds")
    assert back.content_hash() == serial_dataset.content_hash()
    for name in ("inputs", "fluxes", "split_fluxes", "growth", "status", "slacks"):
        np.testing.assert_array_equal(getattr(back, name), getattr(serial_dataset, name))
    assert back.reaction_ids == serial_dataset.reaction_ids
    assert back.slack_names == serial_dataset.slack_names
    assert (back.stoichiometry != serial_dataset.stoichiometry).nnz == 0
    assert back.settings == json.loads(json.dumps(serial_dataset.settings))
    # S v = 0 holds for the loaded data at every solved point
    ok = back.mask("optimal", "relaxed")
    assert np.abs(back.stoichiometry @ back.fluxes[ok].T).max() < 1e-6
    # tampering is detected
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    meta["content_hash"] = "0" * 16
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="content hash"):
        FluxDataset.load(tmp_path / "ds")
