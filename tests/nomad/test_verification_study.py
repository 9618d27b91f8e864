"""The design study end to end on two kinetic models: ``mpc-bio nomad design`` writes its tables,
summary and figures, and the numbers in them are consistent with each other."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mpc_bio.cli import main
from mpc_bio.nomad.nra_settings import DesignStudySettings

TOML = """
[nomad]
output_dir = "{ens}"

[nomad.design]
max_models = 2
n_workers = 1
baseline_fold = 5.0

[nomad.design.nra]
max_interventions = 2
max_designs = 2
enumeration_fraction = 0.05

[nomad.design.ranking]
top_n = 2

[nomad.design.verification]
batch_time = 6.0
n_points = 7
feed_times = [0.0, 2.0]
feed_rates = [0.0, 0.02]

[nomad.design.sensitivity]
n_draws = 1
seed = 3
"""


def test_design_command_end_to_end(ensemble_dir, tmp_path):
    cfg = tmp_path / "scenario.toml"
    cfg.write_text(TOML.format(ens=str(ensemble_dir)))
    out = tmp_path / "design"
    assert main(["nomad", "design", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 0
    for name in (
        "designs.csv",
        "unique_designs.csv",
        "ranking.csv",
        "ranking_matrix.csv",
        "baseline.csv",
        "verification.csv",
        "sensitivity.csv",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    for name in ("design_membership", "ranking", "titer_batch", "titer_fed_batch", "sensitivity_d1"):
        assert (out / "figures" / f"{name}.png").is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    designs = pd.read_csv(out / "designs.csv")
    ranking = pd.read_csv(out / "ranking.csv")
    assert summary["n_models"] == 2
    assert summary["nra"]["designs_enumerated"] == len(designs)
    assert summary["nra"]["unique_by_membership"] == len(ranking)
    assert all(n <= 2 for n in designs["n_enzymes"])
    # recorded designs lie within 5% of their model's optimum
    for mid, grp in designs.groupby("model_id"):
        best = grp["objective_ln"].max()
        assert (grp["objective_ln"] >= best - 0.05 * abs(best) - 1e-9).all()
    # the ranking table is sorted and its gains are exp(mean log gain) - 1
    assert (np.diff(ranking["mean_objective_ln"]) <= 1e-12).all()
    assert np.allclose(ranking["mean_yield_gain"], np.expm1(ranking["mean_objective_ln"]), rtol=1e-12, atol=0)
    # the baseline changes 3 enzymes by exactly 5-fold
    base = pd.read_csv(out / "baseline.csv")
    for label in base["design"]:
        assert len(label.split()) == 3 and all(("5.00x" in p) or ("0.20x" in p) for p in label.split())
    ver = pd.read_csv(out / "verification.csv")
    assert set(ver["mode"]) == {"batch", "fed-batch"}
    ref = ver[ver["strain"] == "reference"]
    assert np.allclose(ref["titer_gain"], 0.0, atol=1e-12)
    assert ref["success"].all()
    # fed-batch adds substrate: the reference strain ends with at least the batch titer
    b = ref[ref["mode"] == "batch"].set_index("model_id")["final_titer_mM"]
    f = ref[ref["mode"] == "fed-batch"].set_index("model_id")["final_titer_mM"]
    assert (f >= b - 1e-6).all()
    assert (
        summary["batch"]["n_simulations"]
        == ver[(ver["mode"] == "batch") & ~ver["message"].fillna("").str.startswith("not applied")].shape[0]
    )
    assert math.isfinite(summary["nra"]["milp_solve_s_median"])


def test_design_settings_reject_unknown_keys():
    with pytest.raises(ValueError, match="Unknown key"):
        DesignStudySettings.from_dict({"nra": {"max_fold": 3}})
    with pytest.raises(ValueError, match="max_models"):
        DesignStudySettings(max_models=-1)
