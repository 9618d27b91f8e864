"""A co-design study killed after some feed optimisations resumes from its cache: every feed
optimum is a checkpoint, and the resumed study gives the same tables (equal bytes) as the
uninterrupted one."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.codesign.test_study import _toml


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.slow
def test_feed_optima_are_checkpoints_and_a_resumed_study_is_identical(tmp_path):
    from mpc_bio.scenarios.runner import run_scenario

    path = _toml(tmp_path)
    r1 = run_scenario(path, tmp_path / "run1", progress=False)
    feeds = r1.summary["sources"]["feeds"]
    assert feeds and set(feeds.values()) == {"computed"} and "reference" in feeds
    entries = sorted((tmp_path / "cache").glob("feed-*"))
    assert len(entries) == len(feeds)
    # a study killed before its last feed optimisation finished: that entry never became complete
    lost = next(e for e in entries if json.loads((e / "feed.json").read_text())["strain"] != "reference")
    shutil.rmtree(lost)
    r2 = run_scenario(path, tmp_path / "run2", progress=False)
    resumed = r2.summary["sources"]["feeds"]
    lost_strain = next(k for k, v in resumed.items() if v == "computed")
    assert list(resumed.values()).count("computed") == 1 and lost_strain != "reference"
    assert r2.summary["sources"]["ensemble"] == "cache" and r2.summary["sources"]["designs"] == "cache"
    for name in ("codesign_runs.csv", "codesign_table.csv", "feeds.csv"):
        assert _sha(r1.out_dir / name) == _sha(r2.out_dir / name), name


@pytest.mark.slow
def test_final_simulations_are_checkpoints_per_strain_and_a_resumed_study_is_identical(tmp_path, monkeypatch):
    """A study stopped (KeyboardInterrupt) in its final simulations keeps the strains it finished:
    the next run reads them from the cache, simulates only the others (counted) and writes the
    same tables (equal bytes) as the uninterrupted run."""
    import mpc_bio.codesign.study as study
    from mpc_bio.scenarios.runner import run_scenario

    path = _toml(tmp_path)
    real = study.simulate_reactor
    calls: list[int] = []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(study, "simulate_reactor", counted)
    r1 = run_scenario(path, tmp_path / "run1", progress=False)
    n_total = len(calls)
    sims = r1.summary["sources"]["simulations"]
    assert len(sims) >= 2 and set(sims.values()) == {"computed"}
    assert set(r1.summary["sources"]["viability"].values()) == {"computed"}
    for entry in [*(tmp_path / "cache").glob("simulations-*"), *(tmp_path / "cache").glob("viability-*")]:
        shutil.rmtree(entry)  # the earlier stages stay cached: the next runs start at the final simulations

    per_strain = len(study.FEEDS) * r1.summary["n_models"]  # the reference strain: every model, every feed

    def stopped_in_the_second_strain(*args, **kwargs):
        calls.append(1)
        if len(calls) == per_strain + 2:
            raise KeyboardInterrupt("stopped in the second strain's simulations")
        return real(*args, **kwargs)

    calls.clear()
    monkeypatch.setattr(study, "simulate_reactor", stopped_in_the_second_strain)
    with pytest.raises(KeyboardInterrupt) as stopped:
        run_scenario(path, tmp_path / "stopped", progress=False)
    assert "keeps its finished work (" in str(stopped.value) and "simulations 1" in str(stopped.value)  # the one line says so
    assert len(list((tmp_path / "cache").glob("simulations-*"))) == 1  # the first strain's, complete
    assert not list((tmp_path / "cache").glob(".tmp-*"))  # the second strain's was not kept

    calls.clear()
    monkeypatch.setattr(study, "simulate_reactor", counted)
    r2 = run_scenario(path, tmp_path / "run2", progress=False)
    resumed = r2.summary["sources"]["simulations"]
    assert list(resumed.values()).count("cache") == 1 and resumed["reference"] == "cache"
    assert len(calls) == n_total - per_strain  # the reference strain's simulations were not redone
    for name in ("codesign_runs.csv", "codesign_table.csv", "feeds.csv"):
        assert _sha(r1.out_dir / name) == _sha(r2.out_dir / name), name
