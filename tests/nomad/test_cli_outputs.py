"""Output folders and interrupts of ``mpc-bio nomad ensemble`` / ``nomad design``: an existing
folder is refused unless --overwrite, an unwritable one before any work, a stale or missing
ensemble is said in one line, and SIGTERM stops the command with its worker pool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpc_bio.cli import main
from mpc_bio.nomad.design_study import ensemble_output_note
from mpc_bio.nomad.settings import load_study_settings

SMALL = """
[nomad]
output_dir = "{out}"
[nomad.network]
model = "core_shikimate"
[nomad.steady_state]
n_states = 4
[nomad.sampling]
n_models = {n_models}
seed = 2
[nomad.executor]
n_workers = 2
chunk_size = 20
progress = false
"""


def _config(tmp_path: Path, n_models: int = 60, out: str = "unused") -> Path:
    cfg = tmp_path / "nomad.toml"
    cfg.write_text(SMALL.format(n_models=n_models, out=out))
    return cfg


@pytest.mark.parametrize("command", ["ensemble", "design"])
def test_existing_output_folder_is_refused_before_any_work(tmp_path, capsys, command):
    """A non-empty --out is refused with exit code 2 and one line naming --overwrite; its content
    stays, and nothing else is written (the ensemble would take minutes: the refusal comes first)."""
    cfg = _config(tmp_path, out=str(tmp_path / "missing_ensemble"))
    out = tmp_path / "existing"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert main(["nomad", command, "--config", str(cfg), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--overwrite" in err and "exists and is not empty" in err
    assert (out / "notes.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "nomad.toml"]


def test_unwritable_output_folder_fails_before_any_work(tmp_path, capsys):
    """An output whose parent cannot be created (a file in the way) is one error line, exit 2."""
    cfg = _config(tmp_path)
    (tmp_path / "file").write_text("x")
    assert main(["nomad", "ensemble", "--config", str(cfg), "--out", str(tmp_path / "file" / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mpc-bio nomad: error:") and "Cannot create" in err


def test_stale_ensemble_output_is_said_in_one_line(tmp_path):
    """The settings recorded in an ensemble folder's summary.json against the config's: equal
    (executor and output folder aside) gives no note; another n_models gives one line naming it."""
    cfg = _config(tmp_path, n_models=60)
    ens = tmp_path / "ens"
    ens.mkdir()
    recorded = load_study_settings(cfg).to_dict()
    recorded["executor"] = {"n_workers": 7}
    recorded["output_dir"] = "elsewhere"
    (ens / "summary.json").write_text(json.dumps({"settings": recorded}))
    assert ensemble_output_note(cfg, ens) is None
    recorded["sampling"]["n_models"] = 500
    (ens / "summary.json").write_text(json.dumps({"settings": recorded}))
    note = ensemble_output_note(cfg, ens)
    assert note is not None and len(note.splitlines()) == 1
    assert "stale" in note and "sampling.n_models 500 there, 60 in the config" in note and "--overwrite" in note
    (ens / "summary.json").unlink()
    note = ensemble_output_note(cfg, ens)
    assert note is not None and "no readable summary.json" in note and len(note.splitlines()) == 1


def _group(pgid: int) -> dict[int, float]:
    """Live (not zombie) processes of process group ``pgid`` and their CPU time (s), from /proc."""
    procs = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            procs[int(d.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return procs


@pytest.mark.slow
def test_sigterm_stops_nomad_ensemble_and_its_workers(tmp_path):
    """`kill PID` on `mpc-bio nomad ensemble --workers 2` (small network) while its two workers run:
    exit 130, one stderr line saying the output was not written and how many finished chunks the
    checkpoint keeps, no output or staging folder, and no process of the command's process group left."""
    cfg = _config(tmp_path, n_models=2000)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mpc_bio.cli",
            "nomad",
            "ensemble",
            "--config",
            str(cfg),
            "--out",
            str(out),
            "--workers",
            "2",
            "--no-progress",
            "--no-figures",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    workers: dict[int, float] = {}
    # each screening stage forks two workers; wait for a stage whose workers have solved for a while
    # (the nonlinear screens, minutes of work left), not the quick linear screen
    while proc.poll() is None and not (len(workers) >= 2 and max(workers.values()) >= 1.5):
        workers = {p: c for p, c in _group(proc.pid).items() if p != proc.pid}
        time.sleep(0.05)
    assert proc.poll() is None, "the command ended before its worker pool started; make the ensemble larger"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mpc-bio nomad: interrupted (SIGTERM)"), err
    assert "was not written" in lines[0]
    # no output and no staging folder; the finished chunks stay in the checkpoint, and the line says how many
    assert not out.exists() and [p.name for p in tmp_path.glob(".out.*")] in ([], [".out.checkpoint"])
    kept = len(list((tmp_path / ".out.checkpoint").glob("*.pkl")))
    assert (f"{kept} finished chunk(s) kept in {tmp_path / '.out.checkpoint'}" if kept else "no chunk had finished") in lines[0]
    left = _group(proc.pid)
    for _ in range(600):  # killed workers may take a moment to be reaped; no time is asserted
        if not left:
            break
        time.sleep(0.05)
        left = _group(proc.pid)
    assert not left, f"processes left in the command's group: {sorted(left)} (workers were {sorted(workers)})"


DESIGN = """
[nomad.design]
max_models = 1
[nomad.design.ranking]
top_n = 1
[nomad.design.sensitivity]
n_draws = 1
"""


@pytest.mark.slow
def test_design_runs_a_missing_ensemble_first_and_reuses_it(tmp_path, capsys):
    """`nomad design` with no ensemble output: one line says so, the ensemble stage is written
    whole (its checkpoint) before the design; the next run (another --out) reuses it without a
    note, and a refused --out leaves both untouched."""
    ens = tmp_path / "ens"
    cfg = _config(tmp_path, n_models=60, out=str(ens))
    cfg.write_text(cfg.read_text().replace("n_workers = 2", "n_workers = 1") + DESIGN)
    argv = ["nomad", "design", "--config", str(cfg), "--no-progress", "--no-figures"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"no ensemble output in {ens}; running the ensemble stage first"
    assert (ens / "ensemble" / "ensemble.json").is_file() and (ens / "design" / "summary.json").is_file()
    assert not [p for p in tmp_path.rglob(".*") if ".incomplete-" in p.name or ".checkpoint" in p.name]  # removed once complete
    assert (ens / ".design_cache").is_dir()  # the NRA enumeration and ranking, for the next design run
    stamp = (ens / "ensemble" / "ensemble.json").stat().st_mtime_ns
    assert main([*argv, "--out", str(tmp_path / "design2")]) == 0
    out = capsys.readouterr().out
    assert "running the ensemble stage" not in out and "stale" not in out
    assert (ens / "ensemble" / "ensemble.json").stat().st_mtime_ns == stamp
    first = json.loads((ens / "design" / "summary.json").read_text())
    second = json.loads((tmp_path / "design2" / "summary.json").read_text())
    assert first["ranking"] == second["ranking"]  # the same ensemble gives the same designs
    assert main(argv) == 2  # ens/design exists: refused
    assert "--overwrite" in capsys.readouterr().err
