"""The benchmark records say which model and command produced them."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_build_surrogate_record_names_the_model_the_case_built_from():
    """The textbook case's report records the cobra id e_coli_core (textbook is read as e_coli_core):
    the record keeps that as model_id and names the model the case built from; the committed
    records agree with their cases."""
    bench = _script("build_surrogate")
    report = {
        "model": "e_coli_core",
        "settings": {"inputs": [["glucose", "EX_glc__D_e"]], "box": [["glucose", 0.0, 10.0]], "time_budget_min": 1.0, "seed": 0},
        "kink_lines": [],
    }
    rec = bench.record(report, "textbook_glc_nh4", "runs/x")
    assert (rec["model"], rec["model_id"], rec["case"]) == ("textbook", "e_coli_core", "textbook_glc_nh4")
    assert bench.record(report, "a_folder_name")["model"] == "e_coli_core"  # not a case: the report's id
    results = json.loads((ROOT / "benchmarks" / "results" / "build_surrogate.json").read_text())["results"]
    for r in results:
        if r["case"] in bench.CASES:
            assert r["model"] == bench.CASES[r["case"]]["model"], r["case"]


def test_nomad_nra_usage_states_the_recorded_number_of_sampled_models():
    doc = (ROOT / "benchmarks" / "nomad_nra.py").read_text()
    usage = int(re.search(r"--n-sampled (\d+)\]", doc).group(1))
    default = int(re.search(r'"--n-sampled", type=int, default=(\d+)', doc).group(1))
    recorded = json.loads((ROOT / "benchmarks" / "results" / "nomad_nra.json").read_text())["arguments"]["n_sampled"]
    assert usage == default == recorded
