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
