"""`mpc-bio sweep`: one scenario over values x seeds, locally and on a local Dask cluster."""

from __future__ import annotations

import json

import pytest

from mpc_bio.cli import main
from mpc_bio.scenarios import ScenarioError
from mpc_bio.scenarios.sweep import parse_vary, run_sweep

SCENARIO = """\
kind = "simulation"
name = "sweep_test"
[model]
name = "e_coli_core"
[surrogate]
artifact = "default"
symbolic = "MX"
[reactor]
glucose0 = 20.0
biomass0 = 0.1
[kinetics]
glucose_vmax = 10.0
oxygen = "fixed"
oxygen_uptake = 15.0
[feed]
times = [0.0, 2.0]
rates = [0.001, 0.02]
[simulation]
batch_time = 3.0
output_step = 0.5
compare_lp = false
"""


@pytest.fixture()
def scenario(tmp_path):
    p = tmp_path / "sim.toml"
    p.write_text(SCENARIO)
    return p


def test_parse_vary_reads_toml_values():
    assert parse_vary(["kinetics.glucose_vmax=7,10.5", "simulation.compare_lp=true,false", "x.y=abc"]) == {
        "kinetics.glucose_vmax": [7, 10.5],
        "simulation.compare_lp": [True, False],
        "x.y": ["abc"],
    }
    with pytest.raises(ScenarioError, match="TABLE.KEY=V1,V2"):
        parse_vary(["kinetics.glucose_vmax"])


def test_sweep_runs_every_combination_and_resumes(scenario, tmp_path, capsys):
    """Two Vmax values: each run's final biomass equals that of a single `mpc-bio run` of the same
    variant (rel 1e-12: the same computation); the run with the larger Vmax grows more; a second
    call keeps the completed runs; a bad key fails before any run."""
    out = tmp_path / "sweep"
    assert main(["sweep", str(scenario), "--vary", "kinetics.glucose_vmax=6,12", "--workers", "1", "--no-progress", "--out", str(out)]) == 0
    assert "2 runs, 2 complete" in capsys.readouterr().out
    res = run_sweep(scenario, out, vary={"kinetics.glucose_vmax": [6, 12]}, progress=False)
    assert res.summary["reused"] == 2 and res.n_failed == 0
    b = dict(zip(res.runs["kinetics.glucose_vmax"], res.runs["final_biomass_gDW"]))
    assert b[12] > b[6]
    assert main(["run", str(out / "variants" / "0001.toml"), "--out", str(tmp_path / "single"), "--no-progress"]) == 0
    single = json.loads((tmp_path / "single" / "summary.json").read_text())
    assert single["final_biomass_gDW"] == pytest.approx(b[12], rel=1e-12, abs=0)
    assert (out / "sweep.png").stat().st_size > 5000 and (out / "sweep_runs.csv").is_file()
    with pytest.raises(ScenarioError, match="no key 'glucose_vmaxx'"):
        run_sweep(scenario, tmp_path / "bad", vary={"kinetics.glucose_vmaxx": [1]}, progress=False)


def test_seed_index_shifts_every_seed_key(scenario):
    from mpc_bio.scenarios.runner import find_seeds, validate_scenario
    from mpc_bio.scenarios.sweep import _variants

    resolved = validate_scenario(scenario)
    base = find_seeds(resolved)
    assert base  # [surrogate] seed
    variants = _variants(resolved, {"reactor.glucose0": [5.0, 9.0]}, 3, scenario)
    assert [(v["values"]["reactor.glucose0"], v["seed_index"]) for v in variants] == [
        (5.0, 0),
        (5.0, 1),
        (5.0, 2),
        (9.0, 0),
        (9.0, 1),
        (9.0, 2),
    ]
    for v in variants:
        assert find_seeds(v["config"]) == {k: s + v["seed_index"] for k, s in base.items()}
        assert v["config"]["reactor"]["glucose0"] == v["values"]["reactor.glucose0"]


def test_sweep_reports_failed_runs(scenario, tmp_path, capsys):
    """A variant that fails at run time (a corrupted artifact) is a failed row with its error, never
    a crash of the sweep; without a progress bar each finished run is a status line."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "surrogate.json").write_text("{not json")
    (broken / "weights.npz").write_bytes(b"")
    res = run_sweep(scenario, tmp_path / "s", vary={"surrogate.artifact": ["default", str(broken)]}, progress=False, status=True)
    assert list(res.runs["status"]) == ["complete", "failed"]
    assert res.summary["failed"] == 1 and "not valid json" in res.summary["failures"]["0001"]
    lines = [ln.split("] ", 1)[1] for ln in capsys.readouterr().err.splitlines()]
    assert lines[0] == "sweep sim: 2 run(s) to do, 0 complete from before, 2 in all"
    assert lines[1].startswith("sweep sim: run 0000 complete in ") and lines[1].endswith("(1 of 2 done)")
    assert lines[2].startswith("sweep sim: run 0001 failed in ") and lines[2].endswith("(2 of 2 done)")
    assert lines[3].startswith("sweep sim: run 0001 failed: ") and "not valid json" in lines[3] and len(lines) == 4


def test_sweep_on_a_local_dask_cluster(scenario, tmp_path):
    """The same sweep on a Dask cluster gives the same results as in this process (rel 1e-12)."""
    from dask.distributed import Client, LocalCluster

    local = run_sweep(scenario, tmp_path / "local", vary={"reactor.glucose0": [10.0, 20.0]}, progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        dask = run_sweep(scenario, tmp_path / "dask", vary={"reactor.glucose0": [10.0, 20.0]}, scheduler=client, progress=False)
    assert dask.n_failed == 0
    assert list(dask.runs["final_biomass_gDW"]) == pytest.approx(list(local.runs["final_biomass_gDW"]), rel=1e-12, abs=0)


def test_interrupted_sweep_says_what_it_kept_and_resumes(scenario, tmp_path, capsys, monkeypatch):
    """Ctrl-C after the first of three runs: exit 130, one line naming the one complete run kept;
    the same command then runs only the two others and gives the table of an uninterrupted sweep
    (same final biomass, rel 1e-12)."""
    import mpc_bio.scenarios.sweep as sweep_mod

    argv = ["sweep", str(scenario), "--vary", "kinetics.glucose_vmax=6,9,12", "--workers", "1", "--no-progress"]
    real, calls = sweep_mod._run_one, []

    def stop_at_second(path, run_dir):
        calls.append(run_dir)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path, run_dir)

    monkeypatch.setattr(sweep_mod, "_run_one", stop_at_second)
    out = tmp_path / "s"
    assert main([*argv, "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"mpc-bio sweep: interrupted (SIGINT): 1 complete run(s) kept in {out / 'runs'}/; the same command resumes the sweep "
        "(the other runs start again)"
    )
    monkeypatch.setattr(sweep_mod, "_run_one", real)
    assert main([*argv, "--out", str(out)]) == 0
    assert "3 runs, 3 complete (1 kept from before), 0 failed" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    resumed = [json.loads((out / "runs" / r / "summary.json").read_text())["final_biomass_gDW"] for r in ("0000", "0001", "0002")]
    whole = [
        json.loads((tmp_path / "whole" / "runs" / r / "summary.json").read_text())["final_biomass_gDW"] for r in ("0000", "0001", "0002")
    ]
    assert resumed == pytest.approx(whole, rel=1e-12, abs=0)
