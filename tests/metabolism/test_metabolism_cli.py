"""`mpc-bio pfba` and `mpc-bio sample` end to end (in-process through mpc_bio.cli.main)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mpc_bio.cli import build_parser, main
from mpc_bio.metabolism import FluxDataset


def test_pfba_command_prints_cobra_growth(capsys, ecoli_core, cobra_pfba):
    assert main(["pfba", "e_coli_core", "-u", "glucose=8", "-u", "oxygen=12", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    growth, total = cobra_pfba(ecoli_core, {"glucose": 8.0, "oxygen": 12.0})
    assert out["status"] == "optimal"
    assert out["growth_per_h"] == pytest.approx(growth, rel=1e-6, abs=1e-9)
    assert out["total_flux"] == pytest.approx(total, rel=1e-6, abs=1e-7)
    assert out["input_exchange_fluxes"]["EX_glc__D_e"] == pytest.approx(-8.0, rel=0, abs=1e-9)
    assert "EX_co2_e" in out["secretions"]


def test_pfba_command_text_and_relaxed(capsys):
    assert main(["pfba", "-u", "glucose=0.1", "-u", "oxygen=0.1"]) == 0
    text = capsys.readouterr().out
    assert "status relaxed" in text and "maintenance_ATPM" in text and "growth (Biomass_Ecoli_core)" in text
    assert main(["pfba", "--no-relax", "-u", "glucose=0", "-u", "oxygen=0"]) == 1
    assert "status infeasible" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["pfba", "no_such_model"], "Shipped models"),
        (["pfba", "-u", "glucose=-3"], "non-negative"),
        (["pfba", "-u", "glucose=nan"], "finite"),
        (["pfba", "-u", "xylose=3"], "unknown inputs ['xylose']"),
        (["pfba", "--inputs", "glucose=EX_foo_e"], "'EX_foo_e' is not a reaction"),
        (["pfba", "--inputs", "glucose=PGI"], "must be an exchange reaction"),
        (["sample", "--grid", "glucose=5:1:0.1", "--no-progress"], "empty"),
        (["sample", "--grid", "glucose=0:1", "--no-progress"], "NAME=LOW:HIGH:STEP"),
        (["sample", "--workers", "zero", "--no-progress"], "--workers"),
    ],
)
def test_cli_errors_are_clear(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mpc-bio {argv[0]}: error:") and fragment in err


def test_sample_command_writes_dataset_figure_summary(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["sample", "e_coli_core", "--grid", "glucose=0:6:1.5", "--grid", "oxygen=0:8:2", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    ds = FluxDataset.load(out)
    assert ds.n_points == 25 and ds.model_id == "e_coli_core"
    assert (out / "growth_map.png").stat().st_size > 5000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_points"] == 25 and summary["content_hash"] == ds.content_hash()
    assert sum(summary["status_counts"].values()) == 25
    assert summary["solver_fallbacks"] == {"tie_break_vertex_kept": 0, "growth_fix_loosened": 0}
    assert np.isfinite(ds.growth).all()
    assert "25 points" in capsys.readouterr().out


def test_sample_command_lhs(tmp_path):
    out = tmp_path / "lhs"
    argv = ["sample", "--lhs", "12", "--bounds", "glucose=1:10", "--seed", "2", "--out", str(out), "--no-progress"]
    assert main([*argv, "--no-figure"]) == 0
    ds = FluxDataset.load(out)
    assert ds.n_points == 12 and ds.settings["sampling"]["kind"] == "lhs"
    assert ds.inputs[:, 0].min() >= 1 and ds.inputs[:, 0].max() <= 10 and ds.inputs[:, 1].max() <= 20


def test_help_has_examples():
    parser = build_parser()
    for cmd in ("sample", "pfba"):
        sub = parser._subparsers._group_actions[0].choices[cmd]
        assert "examples:" in sub.format_help()


GRID = ["--grid", "glucose=0:6:1.5", "--grid", "oxygen=0:8:2", "--no-progress", "--no-figure"]


def test_sample_refuses_an_existing_output_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["sample", *GRID, "--out", str(out)]) == 0
    before = (out / "dataset.npz").read_bytes()
    assert main(["sample", "--grid", "glucose=0:6:3", "--grid", "oxygen=0:8:4", "--no-progress", "--out", str(out)]) == 2
    assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert (out / "dataset.npz").read_bytes() == before  # nothing replaced
    assert main(["sample", "--grid", "glucose=0:6:3", "--grid", "oxygen=0:8:4", "--no-progress", "--out", str(out), "--overwrite"]) == 0
    assert FluxDataset.load(out).n_points == 9
    assert not list(tmp_path.glob(".run.*"))  # no hidden folder left behind


def test_sample_into_a_read_only_folder_fails_before_any_work(tmp_path, capsys, monkeypatch):
    import os

    import mpc_bio.metabolism.sampling as sampling

    if os.geteuid() == 0:
        # root ignores permission bits: make the parent a file instead, which nobody can write into
        parent = tmp_path / "file"
        parent.write_text("x")
    else:
        parent = tmp_path / "ro"
        parent.mkdir()
        parent.chmod(0o500)
    monkeypatch.setattr(sampling, "sample_pfba", lambda *a, **k: pytest.fail("sampling started"))
    assert main(["sample", *GRID, "--out", str(parent / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpc-bio sample: error:") and "Cannot" in err


def test_resumed_sampling_gives_the_same_dataset(tmp_path, monkeypatch):
    """Chunks kept in the checkpoint folder are not solved again, and the dataset is identical (by
    content hash) to an uninterrupted run; chunks of another job are discarded."""
    import mpc_bio.metabolism.sampling as sampling
    from mpc_bio.metabolism.sampling import grid_points, sample_pfba

    pts = grid_points({"glucose": (0, 10, 1.0), "oxygen": (0, 10, 1.0)})  # 121 points, 7 chunks of 20
    whole = sample_pfba("e_coli_core", pts, chunk_size=20, progress=False)
    ck = tmp_path / "chunks"
    sample_pfba("e_coli_core", pts, chunk_size=20, progress=False, checkpoint=ck)
    files = sorted(ck.glob("chunk-*.npz"))
    assert len(files) == 7
    for f in files[2:5]:
        f.unlink()  # as if the run had been stopped with these three unsolved
    solved = []
    real = sampling._solve_chunk
    monkeypatch.setattr(sampling, "_solve_chunk", lambda p, v: solved.append(len(v)) or real(p, v))
    resumed = sample_pfba("e_coli_core", pts, chunk_size=20, progress=False, checkpoint=ck)
    assert len(solved) == 3
    assert resumed.content_hash() == whole.content_hash()
    solved.clear()
    other = grid_points({"glucose": (0, 4, 1.0), "oxygen": (0, 4, 1.0)})
    sample_pfba("e_coli_core", other, chunk_size=20, progress=False, checkpoint=ck)
    assert len(solved) == 2 and len(list(ck.glob("chunk-*.npz"))) == 2  # another job: started afresh


@pytest.mark.slow
def test_sigterm_stops_sample_keeps_chunks_and_leaves_no_workers(tmp_path):
    """`kill PID` on a two-worker `mpc-bio sample`: exit 130 with one line saying what was kept, no
    output folder, no worker process left; the same command then resumes to the dataset of an
    uninterrupted run (same content hash)."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    out = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "mpc_bio.cli",
        "sample",
        "--grid",
        "glucose=0:20:0.25",
        "--grid",
        "oxygen=0:20:0.25",
        "--tie-break",
        "l2",
        "--chunk-size",
        "50",
        "--workers",
        "2",
        "--no-progress",
        "--no-figure",
    ]
    proc = subprocess.Popen([*argv, "--out", str(out)], stderr=subprocess.PIPE, text=True)
    chunks = tmp_path / ".run.chunks"
    deadline = time.monotonic() + 300
    while not list(chunks.glob("chunk-*.npz")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command again to resume" in err
    assert not out.exists()
    kept = len(list(chunks.glob("chunk-*.npz")))
    assert kept >= 1
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, [p.pid for p in alive]
    done = subprocess.run([*argv, "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not chunks.exists()
    fresh = subprocess.run([*argv, "--workers", "1", "--out", str(tmp_path / "fresh")], capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    assert FluxDataset.load(out).content_hash() == FluxDataset.load(tmp_path / "fresh").content_hash()


@pytest.mark.parametrize(
    "address, fragment",
    [("notaurl", "must look like tcp://HOST:PORT"), ("tcp://127.0.0.1:9", "No Dask scheduler answered at tcp://127.0.0.1:9")],
)
def test_unreachable_scheduler_is_one_clear_error(tmp_path, capsys, address, fragment):
    """A malformed address fails at once; a closed port after the short connect time-out; neither
    leaves anything behind (Dask's own error after 30-60 s was a 61-line traceback)."""
    assert main(["sample", *GRID, "--scheduler", address, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpc-bio sample: error:") and fragment in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_sample_on_a_dask_scheduler_equals_local(tmp_path):
    """`mpc-bio sample --scheduler ADDRESS` on an in-process Dask cluster writes the same dataset (by
    content hash) as local processes, and records the address."""
    from dask.distributed import LocalCluster

    local = tmp_path / "local"
    assert main(["sample", *GRID, "--workers", "1", "--out", str(local)]) == 0
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        assert main(["sample", *GRID, "--scheduler", cluster.scheduler_address, "--out", str(tmp_path / "dask")]) == 0
        address = cluster.scheduler_address
    assert FluxDataset.load(tmp_path / "dask").content_hash() == FluxDataset.load(local).content_hash()
    assert json.loads((tmp_path / "dask" / "summary.json").read_text())["scheduler"] == address
