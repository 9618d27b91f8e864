"""A sweep counts a run whose summary reports failed solves as failed (with the failures as its
error), like a run that raised; it is reused as failed when the sweep is resumed."""

from __future__ import annotations

from pathlib import Path

from mpc_bio.scenarios import runner as runner_mod
from mpc_bio.scenarios.sweep import run_sweep

SCENARIO = """\
kind = "test_outcome"
name = "outcome"
[outcome]
fail = false
seed = 0
"""


def outcome_kind(path: Path, data: dict, out: Path, *, progress: bool = True):
    """A real kind: one number, and a failed solve reported when ``[outcome] fail`` is true."""
    value = 1.0 + data["outcome"]["seed"]
    failures = ["offline optimum: IPOPT returned Maximum_Iterations_Exceeded"] if data["outcome"]["fail"] else []
    return {}, {"value": value, "failures": failures}


def test_run_with_failed_solves_is_a_failed_sweep_row(tmp_path, monkeypatch):
    monkeypatch.setitem(runner_mod.SCENARIO_KINDS, "test_outcome", f"{__name__}:outcome_kind")
    scen = tmp_path / "s.toml"
    scen.write_text(SCENARIO)
    res = run_sweep(scen, tmp_path / "sw", vary={"outcome.fail": [False, True]}, seeds=2, progress=False)
    assert list(res.runs["status"]) == ["complete", "complete", "failed", "failed"]
    assert res.summary["failed"] == 2 and res.summary["complete"] == 2
    assert "Maximum_Iterations_Exceeded" in res.summary["failures"]["0002"]
    assert res.summary["failures"]["0002"].startswith("result failed: ")
    again = run_sweep(scen, tmp_path / "sw", vary={"outcome.fail": [False, True]}, seeds=2, progress=False)
    assert again.summary["reused"] == 4 and list(again.runs["status"]) == list(res.runs["status"])
