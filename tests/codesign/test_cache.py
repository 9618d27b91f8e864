"""The co-design cache: reused when the inputs are unchanged, invalidated when they change."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mpc_bio.codesign import cached_entry, config_hash, load_or_run_designs
from mpc_bio.nomad.nra_settings import DesignStudySettings


def test_config_hash_is_canonical():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_cached_entry_builds_once_and_interrupted_build_leaves_nothing(tmp_path):
    calls = []

    def build(d):
        calls.append(d)
        (d / "x.txt").write_text("42")

    p1, reused1 = cached_entry(tmp_path, "stage", "k1", build)
    p2, reused2 = cached_entry(tmp_path, "stage", "k1", build)
    assert (reused1, reused2) == (False, True) and p1 == p2 and len(calls) == 1
    assert (p1 / "x.txt").read_text() == "42"

    def broken(d):
        (d / "half.txt").write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached_entry(tmp_path, "stage", "k2", broken)
    assert not (tmp_path / "stage-k2").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["stage-k1"]


def test_designs_reused_when_unchanged_and_recomputed_when_changed(tiny_ensemble, tmp_path):
    """Second call with the same settings reads the cache (same arrays); a changed NRA setting
    gives a new key and a fresh computation."""
    ens, control, key, _ = tiny_ensemble
    base = DesignStudySettings(max_models=2, progress=False)
    base = dataclasses.replace(base, nra=dataclasses.replace(base.nra, max_interventions=2, max_designs=5))
    d1 = load_or_run_designs(ens, control, base, 2, tmp_path, key)
    d2 = load_or_run_designs(ens, control, base, 2, tmp_path, key)
    assert (d1.source, d2.source) == ("computed", "cache")
    assert d1.key == d2.key and d1.labels == d2.labels
    np.testing.assert_array_equal(d1.log_changes, d2.log_changes)
    changed = dataclasses.replace(base, nra=dataclasses.replace(base.nra, max_interventions=1))
    d3 = load_or_run_designs(ens, control, changed, 2, tmp_path, key)
    assert d3.source == "computed" and d3.key != d1.key
    assert all(len(m) <= 1 for m in d3.memberships)
    # a different ensemble key invalidates too
    d4 = load_or_run_designs(ens, control, base, 2, tmp_path, key + "x")
    assert d4.source == "computed" and d4.key != d1.key


def test_cache_note_counts_the_complete_entries_per_stage(tmp_path):
    """The interrupt line of a co-design run: complete entries per stage; an entry being written
    (no .complete marker) and the temporary folders are not counted."""
    from mpc_bio.codesign.study import cache_note

    assert "holds no finished stage yet" in cache_note(tmp_path / "missing")
    for stage, key in (("feed", "a1"), ("feed", "b2"), ("simulations", "c3")):
        cached_entry(tmp_path, stage, key, lambda d: (d / "x").write_text("1"))
    (tmp_path / "simulations-d4").mkdir()  # killed while being written in place: never counted
    (tmp_path / ".tmp-simulations-e5-123").mkdir()
    note = cache_note(tmp_path)
    assert note == f"the co-design cache {tmp_path} keeps its finished work (feed 2, simulations 1); the same command resumes there"
