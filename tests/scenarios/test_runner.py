"""The runner's output-directory protocol: complete runs only, no silent overwrite, an
interrupted run followed by a rerun, the resolved configuration and the run record."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from mpc_bio.cli import main
from mpc_bio.scenarios import RunExistsError, run_scenario, run_status, validate_scenario
from mpc_bio.scenarios import runner as runner_mod

STEP_KIND = """\
kind = "test_steps"
name = "steps"
[steps]
n = 5
seed = 7
"""

_CALLS: list[int] = []


def steps_kind(path: Path, data: dict, out: Path, *, progress: bool = True):
    """A real scenario kind: writes n rows of a deterministic sequence, then a result file; fails
    half-way while ``data['steps']['fail_at']`` is set (the interrupted run)."""
    n = data["steps"]["n"]
    fail_at = data["steps"].get("fail_at")
    _CALLS.append(n)
    rows = out / "rows.csv"
    with rows.open("w") as fh:
        for i in range(n):
            if fail_at is not None and i == fail_at:
                fh.flush()
                raise KeyboardInterrupt("interrupted at row %d" % i)
            fh.write(f"{i},{i * i}\n")
    (out / "result.json").write_text(json.dumps({"sum_of_squares": sum(i * i for i in range(n))}))
    return {"rows": rows, "result": out / "result.json"}, {"sum_of_squares": sum(i * i for i in range(n)), "rows_file": rows}


@pytest.fixture()
def steps(monkeypatch):
    monkeypatch.setitem(runner_mod.SCENARIO_KINDS, "test_steps", f"{__name__}:steps_kind")
    _CALLS.clear()
    return _CALLS


def _write(tmp_path: Path, text: str, name: str = "steps.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_complete_run_writes_record_resolved_config_and_refuses_overwrite(tmp_path, steps):
    path = _write(tmp_path, STEP_KIND)
    out = tmp_path / "runs" / "a"
    res = run_scenario(path, out, progress=False)
    assert res.out_dir == out and run_status(out) == "complete"
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "complete" and rec["kind"] == "test_steps" and rec["name"] == "steps"
    assert rec["seeds"] == {"steps.seed": 7}
    for dep in ("numpy", "scipy", "torch", "casadi", "do-mpc", "cobra", "highspy", "pyomo", "mpc_bio"):
        assert rec["versions"][dep], dep
    assert set(rec["timings_s"]) == {"validate", "run", "total"}
    assert rec["timings_s"]["total"] >= rec["timings_s"]["run"] >= 0
    assert (out / "scenario.toml").read_text() == STEP_KIND
    assert tomllib.loads((out / "resolved.toml").read_text())["steps"] == {"n": 5, "seed": 7}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sum_of_squares"] == 0 + 1 + 4 + 9 + 16
    # paths the kind reported point into the final directory, not the temporary one
    assert summary["rows_file"] == str(out / "rows.csv") and res.files["rows"] == out / "rows.csv"
    assert (out / "rows.csv").read_text().splitlines()[-1] == "4,16"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no leftovers
    # a second run into the same directory is refused, the first result is untouched
    before = (out / "run.json").read_text()
    with pytest.raises(RunExistsError, match="--overwrite"):
        run_scenario(path, out, progress=False)
    assert (out / "run.json").read_text() == before and steps == [5]
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 2
    assert (out / "run.json").read_text() == before
    # unless asked
    _write(tmp_path, STEP_KIND.replace("n = 5", "n = 3"))
    res = run_scenario(path, out, progress=False, overwrite=True)
    assert json.loads((out / "summary.json").read_text())["sum_of_squares"] == 0 + 1 + 4
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_non_empty_foreign_directory_is_not_overwritten(tmp_path, steps):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    with pytest.raises(RunExistsError, match="not empty"):
        run_scenario(_write(tmp_path, STEP_KIND), out, progress=False)
    assert (out / "notes.txt").read_text() == "keep" and steps == []


@pytest.mark.parametrize("where", ["under_a_file", "a_file", "read_only"])
def test_unusable_output_is_one_error_before_any_work(tmp_path, steps, capsys, where):
    """--out under a file, --out a file, or a parent nobody can write: exit 2, one line naming
    the path, the kind never called and nothing left behind."""
    import os

    blocker = tmp_path / "file"
    blocker.write_text("x")
    if where == "read_only" and os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out, fragment = ro / "run", "Cannot write into"
    elif where == "a_file":
        out, fragment = blocker, "is a file"
    else:  # root ignores permission bits: a file in the way stands for the read-only parent
        out, fragment = blocker / "run", f"{str(blocker)!r} is a file, not a folder"
    assert main(["run", str(_write(tmp_path, STEP_KIND)), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mpc-bio run: error:") and fragment in err
    assert steps == [] and blocker.read_text() == "x"
    assert not [p for p in tmp_path.rglob(".*") if "incomplete" in p.name or "write-test" in p.name]


def test_interrupted_run_leaves_nothing_that_looks_complete_then_rerun(tmp_path, steps):
    path = _write(tmp_path, STEP_KIND.replace("n = 5", "n = 5\nfail_at = 3"))
    out = tmp_path / "runs" / "b"
    with pytest.raises(KeyboardInterrupt):
        run_scenario(path, out, progress=False)
    assert not out.exists() and run_status(out) is None
    partial = [p for p in out.parent.iterdir() if p.name.startswith(".b.incomplete")]
    assert len(partial) == 1
    rec = json.loads((partial[0] / "run.json").read_text())
    assert rec["status"] == "interrupted" and "interrupted at row 3" in rec["error"]
    assert not (partial[0] / "summary.json").exists()
    assert (partial[0] / "rows.csv").read_text().splitlines() == ["0,0", "1,1", "2,4"]
    # the rerun (fixed file) completes into the requested directory
    _write(tmp_path, STEP_KIND)
    res = run_scenario(path, out, progress=False)
    assert run_status(out) == "complete" and res.summary["sum_of_squares"] == 30
    assert len((out / "rows.csv").read_text().splitlines()) == 5
    assert steps == [5, 5]
    assert not partial[0].exists()  # the failed attempt is cleaned up once a run completes


def test_failing_kind_with_an_exception_is_recorded_and_out_dir_free(tmp_path, steps, monkeypatch):
    def broken(path, data, out, *, progress=True):
        (out / "half.csv").write_text("1,2\n")
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(runner_mod, "_broken_kind", broken, raising=False)
    monkeypatch.setitem(runner_mod.SCENARIO_KINDS, "test_steps", "mpc_bio.scenarios.runner:_broken_kind")
    out = tmp_path / "c"
    with pytest.raises(RuntimeError, match="solver exploded"):
        run_scenario(_write(tmp_path, STEP_KIND), out, progress=False)
    assert not out.exists()


def test_default_out_dir_is_fresh_per_run(tmp_path, steps, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, STEP_KIND)
    a = run_scenario(path, progress=False).out_dir
    b = run_scenario(path, progress=False).out_dir
    assert a != b and a.parent == Path("runs") and a.name.startswith("steps-")
    assert run_status(a) == run_status(b) == "complete"


def test_invalid_file_runs_nothing(tmp_path, steps):
    bad = _write(tmp_path, 'kind = "simulation"\n[simulation]\nt_end = -1.0\n', "bad.toml")
    out = tmp_path / "d"
    assert main(["run", str(bad), "--out", str(out)]) == 2
    assert not out.exists() and not list(tmp_path.glob(".d.*"))


def test_real_simulation_scenario_end_to_end(tmp_path):
    """The shipped surrogate in a 2 h fed-batch: the volume follows the feed exactly
    (V(t) = V0 + integral of F), biomass grows, and the resolved config reproduces the run."""
    text = """\
kind = "simulation"
name = "small_fedbatch"
[feed]
times = [0.0, 1.0]
rates = [0.001, 0.01]
[simulation]
batch_time = 2.0
output_step = 0.5
compare_lp = false
"""
    path = _write(tmp_path, text, "small.toml")
    res = run_scenario(path, tmp_path / "sim", progress=False)
    v_exact = 1.0 + 0.001 * 1.0 + 0.01 * 1.0
    assert res.summary["final_volume_L"] == pytest.approx(v_exact, rel=1e-8, abs=1e-10)
    assert res.summary["final_biomass_gDW"] > 0.1
    assert (res.out_dir / "figure.png").stat().st_size > 0
    resolved = validate_scenario(res.out_dir / "resolved.toml")
    assert resolved["simulation"]["batch_time"] == 2.0 and resolved["reactor"]["volume0"] == 1.0
    again = run_scenario(res.out_dir / "resolved.toml", tmp_path / "sim2", progress=False)
    assert again.summary["final_biomass_gDW"] == pytest.approx(res.summary["final_biomass_gDW"], rel=1e-9, abs=1e-12)


def test_stale_running_folder_of_a_killed_run_is_reported_and_removed(tmp_path, steps, capsys):
    """A hidden run folder still "running" whose process is gone (SIGKILL) is removed by the next
    run into the same parent folder, with one line; one of a live process (here: this one) stays."""
    import os
    import subprocess
    import sys

    from mpc_bio.scenarios.runner import stale_run_folders

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runs = tmp_path / "runs"
    stale = runs / f".old.incomplete-{dead.pid}-0"
    stale.mkdir(parents=True)
    (stale / "run.json").write_text(json.dumps({"status": "running", "pid": dead.pid}))
    alive = runs / f".live.incomplete-{os.getpid()}-0"
    alive.mkdir()
    (alive / "run.json").write_text(json.dumps({"status": "running", "pid": os.getpid()}))
    failed = runs / f".old.incomplete-{dead.pid}-1"
    failed.mkdir()
    (failed / "run.json").write_text(json.dumps({"status": "failed", "pid": dead.pid}))
    assert stale_run_folders(runs) == [stale]
    capsys.readouterr()
    run_scenario(_write(tmp_path, STEP_KIND), runs / "new", progress=False)
    err = capsys.readouterr().err
    assert "removed 1 unfinished run folder(s)" in err and stale.name in err
    assert not stale.exists() and alive.exists() and failed.exists()  # a failed one keeps its error for inspection
    assert stale_run_folders(runs) == []
