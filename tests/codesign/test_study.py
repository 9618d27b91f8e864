"""The co-design scenario end to end on tiny settings, through the scenario runner."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.codesign.conftest import TINY_NOMAD


def _toml(tmp_path) -> str:
    def value(v):  # TOML: json for scalars and lists, inline tables for dicts
        return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }" if isinstance(v, dict) else json.dumps(v)

    def table(name, d):
        return "\n".join([f"[{name}]", *(f"{k} = {value(v)}" for k, v in d.items())])

    parts = ['kind = "codesign"', 'name = "tiny_codesign"', "[nomad]", f'output_dir = "{tmp_path / "nomad"}"']
    parts += [table(f"nomad.{k}", v) for k, v in TINY_NOMAD.items()]
    parts += [
        table("nomad.design", {"max_models": 2}),
        table("nomad.design.nra", {"max_interventions": 2, "max_designs": 5, "excluded_enzymes": ["ATPM"]}),
        table("nomad.design.verification", {"batch_time": 8.0}),
        table("codesign", {"n_designs": 2, "n_points": 9, "cache_dir": str(tmp_path / "cache"), "progress": False}),
        table("codesign.feed", {"n_intervals": 3, "n_members": 1, "max_iter": 5, "reltol": 1e-8, "abstol": 1e-10, "fd_step": 1e-4}),
    ]
    path = tmp_path / "codesign_tiny.toml"
    path.write_text("\n".join(parts) + "\n")
    return str(path)


def test_codesign_scenario_end_to_end_and_cache_reuse(tmp_path):
    from mpc_bio.scenarios.runner import run_scenario

    path = _toml(tmp_path)
    r1 = run_scenario(path, tmp_path / "run1", progress=False)
    out = r1.out_dir
    for name in (
        "codesign_table.csv",
        "codesign_runs.csv",
        "feeds.csv",
        "codesign_summary.json",
        "figures/pareto.png",
        "figures/titer_time_courses.png",
        "figures/feeds.png",
    ):
        assert (out / name).is_file(), name
    summary = json.loads((out / "codesign_summary.json").read_text())
    runs = pd.read_csv(out / "codesign_runs.csv")
    table = pd.read_csv(out / "codesign_table.csv")
    strains = ["reference"] + [d["label"] for d in summary["designs"]]
    assert set(runs["strain"]) == set(strains)
    assert set(runs["feed"]) == {"batch", "reference", "shared", "own"}
    # the table's means are the means over the models of the per-run rows
    for _, row in table.iterrows():
        sub = runs[(runs.strain == row.strain) & (runs.feed == row.feed)]["titer_g_per_l"].dropna()
        assert row.titer_g_per_l_mean == pytest.approx(sub.mean(), rel=1e-12, abs=1e-15)
    # the best pair is the argmax of mean titer and its margin is recomputed from the runs
    means = runs.groupby(["strain", "feed"])["titer_g_per_l"].mean()
    best = summary["best"]
    assert (best["strain"], best["feed"]) == means.idxmax()
    ref = means[("reference", "reference")]
    assert best["margin_over_reference"] == pytest.approx(means.max() / ref - 1.0, rel=1e-9, abs=1e-12)
    # productivity = titer / batch time; the reference strain's own feed is the shared feed
    assert np.allclose(runs["productivity_g_per_l_h"], runs["titer_g_per_l"] / 8.0, rtol=1e-12, equal_nan=True)
    a = runs[(runs.strain == "reference") & (runs.feed == "own")]["titer_g_per_l"].to_numpy()
    b = runs[(runs.strain == "reference") & (runs.feed == "shared")]["titer_g_per_l"].to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert r1.summary["sources"]["ensemble"] == "computed" and r1.summary["sources"]["designs"] == "computed"

    # unchanged inputs: ensemble and designs come from the cache, same results
    r2 = run_scenario(path, tmp_path / "run2", progress=False)
    assert r2.summary["sources"]["ensemble"] == "cache" and r2.summary["sources"]["designs"] == "cache"
    assert r2.summary["best"]["mean_titer_g_per_l"] == pytest.approx(best["mean_titer_g_per_l"], rel=1e-9)
    # every feed optimum is a checkpoint too: reused, and the tables are the same bytes
    assert set(r1.summary["sources"]["feeds"].values()) == {"computed"}
    assert set(r2.summary["sources"]["feeds"].values()) == {"cache"}
    for name in ("codesign_runs.csv", "feeds.csv"):
        assert (r2.out_dir / name).read_bytes() == (out / name).read_bytes(), name

    # a changed design setting invalidates the designs only
    text = (tmp_path / "codesign_tiny.toml").read_text().replace('"max_interventions": 2', '"max_interventions": 1')
    text = text.replace("max_interventions = 2", "max_interventions = 1")
    (tmp_path / "codesign_tiny.toml").write_text(text)
    r3 = run_scenario(path, tmp_path / "run3", progress=False)
    assert r3.summary["sources"]["ensemble"] == "cache" and r3.summary["sources"]["designs"] == "computed"


def test_codesign_settings_validation():
    from mpc_bio.codesign import CodesignSettings, load_codesign_config

    with pytest.raises(ValueError, match="'n_points'"):
        CodesignSettings(n_points=1)
    with pytest.raises(ValueError, match="Unknown key"):
        CodesignSettings.from_dict({"n_design": 3})
    with pytest.raises(ValueError, match="Unknown top-level"):
        load_codesign_config({"codesign": {}, "extra": {}})
