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
    # as simulated (viability ignored): the best pair is the argmax of mean titer, its margin recomputed from the runs
    means = runs.groupby(["strain", "feed"])["titer_g_per_l"].mean()
    best_sim = summary["best_as_simulated"]
    assert (best_sim["strain"], best_sim["feed"]) == means.idxmax()
    ref = means[("reference", "reference")]
    assert best_sim["margin_over_reference"] == pytest.approx(means.max() / ref - 1.0, rel=1e-9, abs=1e-12)
    # under the viability rule: a non-viable strain x model counts as zero titer
    runs["titer_rule"] = np.where(runs["viable"], runs["titer_g_per_l"], 0.0)
    rule_means = runs.groupby(["strain", "feed"])["titer_rule"].mean()
    best = summary["best"]
    assert (best["strain"], best["feed"]) == rule_means.idxmax()
    assert best["mean_titer_g_per_l"] == pytest.approx(rule_means.max(), rel=1e-12, abs=1e-15)
    assert best["margin_over_reference"] == pytest.approx(
        rule_means.max() / rule_means[("reference", "reference")] - 1.0, rel=1e-9, abs=1e-12
    )
    for _, row in table.iterrows():
        sub = runs[(runs.strain == row.strain) & (runs.feed == row.feed)]
        assert row.titer_g_per_l_mean_rule == pytest.approx(sub["titer_rule"].mean(), rel=1e-12, abs=1e-15)
        assert row.n_viable == int(sub["viable"].sum())
    _check_viability_independently(path, runs, summary)
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


def _check_viability_independently(path, runs, summary):
    """Each strain x model's viability recomputed from its steady state with the NRA's bounds written out
    (3-fold concentrations: max |ln x/x_ref| <= ln 3 + 1e-9; growth ratio >= 0.8 - 1e-9)."""
    import math
    import tomllib
    from pathlib import Path

    from mpc_bio.codesign import load_or_run_designs, load_or_run_ensemble
    from mpc_bio.codesign.study import load_codesign_config
    from mpc_bio.nomad.viability import strain_steady_state

    data = tomllib.loads(Path(path).read_text())
    settings, ens_settings, design_settings = load_codesign_config({k: data[k] for k in ("nomad", "codesign")})
    assert design_settings.nra.max_concentration_fold == 3.0 and design_settings.nra.max_growth_reduction == 0.2
    ensemble, control, key, source = load_or_run_ensemble(ens_settings, settings.cache_dir, reuse_nomad_output=False)
    designs = load_or_run_designs(ensemble, control, design_settings, settings.n_designs, settings.cache_dir, key)
    assert source == "cache" and designs.source == "cache"
    assert summary["viability_rule"] == {
        "concentration_fold": 3.0,
        "min_growth_ratio": 0.8,
        "label": "3-fold concentrations, growth >= 0.8",
    }
    n_broken = 0
    for k, label in enumerate(("reference", *designs.labels)):
        folds = np.ones((designs.model_index.size, ensemble.network.n_reactions)) if k == 0 else designs.vmax_folds(ensemble, k - 1)
        for m, model in enumerate(designs.model_index):
            rows = runs[(runs.strain == label) & (runs.model_id == f"model{model}")]
            if not np.all(np.isfinite(folds[m])):
                assert not rows["viable"].any()
                continue
            ss = strain_steady_state(ensemble, int(model), folds[m])
            expected = (
                ss.converged and ss.stable and ss.max_abs_log_concentration_change <= math.log(3.0) + 1e-9 and ss.growth_ratio >= 0.8 - 1e-9
            )
            assert set(rows["viable"]) == {expected}, (label, model)
            if not expected:
                n_broken += 1
                # the reactor still integrates the strain; its titer is reported, and counted as zero under the rule
                assert (rows["titer_g_per_l"] > 0).all() and (rows["titer_rule"] == 0.0).all()
                assert summary["designs"][k - 1]["viability_failures"][f"model{model}"] == rows["viability_failure"].iloc[0] != ""
    # the tiny case: the reference is viable in every model; at least one design breaks the rule in one model
    assert summary["reference"]["n_viable_models"] == designs.model_index.size and n_broken >= 1


def test_codesign_settings_validation():
    from mpc_bio.codesign import CodesignSettings, load_codesign_config

    with pytest.raises(ValueError, match="'n_points'"):
        CodesignSettings(n_points=1)
    with pytest.raises(ValueError, match="Unknown key"):
        CodesignSettings.from_dict({"n_design": 3})
    with pytest.raises(ValueError, match="Unknown top-level"):
        load_codesign_config({"codesign": {}, "extra": {}})
