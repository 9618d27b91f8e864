"""Validation of ``kind = "codesign"`` files: every kind of bad file, all problems at once, the reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpc_bio.cli import main
from mpc_bio.codesign.settings import FeedSettings
from mpc_bio.scenarios import ScenarioError, validate_scenario
from mpc_bio.scenarios.kinds import get_schema
from mpc_bio.scenarios.schema import dump_toml, format_reference

REPO = Path(__file__).resolve().parents[2]

BAD = """\
kind = "codesign"
[nomad]
colour = "red"
[nomad.sampling]
n_models = 0
seed = "zero"
[nomad.design]
max_models = 2
[nomad.design.nra]
max_interventions = 0
max_enzyme_fold = 0.5
[nomad.design.verification]
batch_time = 8.0
feed_times = [0.0, 9.0]
feed_rates = [0.0, 0.02]
volume0 = 2.0
[codesign]
n_designs = 2
n_pointz = 5
[codesign.feed]
robust = "median"
n_members = 3
feed_max = -1
max_iter = 1.5
volume_max = 1.5
[extra]
a = 1
"""


def _problems(tmp_path: Path, text: str):
    p = tmp_path / "bad_codesign.toml"
    p.write_text(text)
    with pytest.raises(ScenarioError) as info:
        validate_scenario(p)
    return {(q.key, q.what) for q in info.value.problems}, info.value


def test_shipped_codesign_scenario_is_valid_and_resolved_file_validates_again(tmp_path):
    r = validate_scenario(REPO / "scenarios" / "codesign_anthranilate.toml")
    assert r["codesign"]["feed"]["robust"] == "mean"
    assert (r["codesign"]["feed"]["method"], r["codesign"]["feed"]["collocation_start"]) == ("collocation", "shooting")
    assert r["codesign"]["feed"]["collocation_deg"] == FeedSettings().collocation_deg  # the default, filled in
    assert r["nomad"]["design"]["verification"]["batch_time"] == pytest.approx(16.0, rel=0, abs=0)
    assert r["nomad"]["sampling"]["n_models"] == 2000
    # the resolved configuration (every default filled in) is itself a valid codesign file
    p = tmp_path / "resolved.toml"
    p.write_text(dump_toml(r))
    assert validate_scenario(p)["codesign"] == r["codesign"]


def test_every_problem_of_a_bad_codesign_file_is_reported_at_once(tmp_path):
    found, err = _problems(tmp_path, BAD)
    expected = {
        ("[extra]", "unknown_table"),
        ("nomad.colour", "unknown_key"),
        ("codesign.n_pointz", "unknown_key"),
        ("nomad.sampling.n_models", "range"),
        ("nomad.sampling.seed", "type"),
        ("nomad.design.nra.max_enzyme_fold", "range"),
        ("codesign.feed.feed_max", "range"),
        ("codesign.feed.robust", "range"),
        ("codesign.feed.max_iter", "type"),
        # infeasible combinations across tables
        ("nomad.design.verification.feed_times", "infeasible"),
        ("codesign.feed.volume_max", "infeasible"),
        ("codesign.feed.n_members", "infeasible"),
        ("nomad.design.nra.max_interventions", "infeasible"),
    }
    assert found == expected
    text = str(err)
    assert "bad_codesign.toml" in text
    assert "key 'codesign.feed.robust' must be one of 'mean', 'worst'; got str 'median'" in text
    assert "> nomad.design.verification.volume0 = 2 L" in text


def test_settings_check_of_a_table_is_reported_with_its_message(tmp_path):
    """Types and ranges fine, but the settings dataclass rejects the combination inside one table."""
    found, err = _problems(tmp_path, 'kind = "codesign"\n[codesign.feed]\nfeed_min = 0.02\nfeed_max = 0.01\n')
    assert found == {("[codesign]", "invalid")}
    assert "The 'feed_max' parameter of FeedSettings must be > feed_min = 0.02. Got 0.01 instead." in str(err)
    found, err = _problems(tmp_path, 'kind = "codesign"\n[nomad.design.verification]\nfeed_times = [1.0]\nfeed_rates = [0.1]\n')
    assert found == {("[nomad]", "invalid")}
    assert (
        "The 'feed_times' parameter of VerificationSettings must be a list of times starting at 0 and increasing (h). Got (1.0,) instead."
        in str(err)
    )


def test_missing_tables_take_the_defaults(tmp_path):
    from mpc_bio.codesign import CodesignSettings

    p = tmp_path / "minimal.toml"
    p.write_text('kind = "codesign"\n')
    r = validate_scenario(p)
    d = CodesignSettings()
    assert r["codesign"] == {
        "n_designs": d.n_designs,
        "n_points": d.n_points,
        "cache_dir": d.cache_dir,
        "reuse_nomad_output": True,
        "progress": True,
        "figures": True,
    }


def test_reference_documents_every_codesign_key_with_unit_and_default(capsys):
    from dataclasses import fields

    from mpc_bio.codesign.settings import CodesignSettings, FeedSettings

    ref = format_reference([get_schema("codesign")])
    for f in fields(CodesignSettings):
        assert f"| `{f.name}` |" in ref
    for f in fields(FeedSettings):
        assert f"| `feed.{f.name}` |" in ref
    assert "| `feed.feed_max` | a number | L/h | 0.1 | > 0 |" in ref
    assert "| `design.verification.batch_time` | a number | h | 16.0 | > 0 |" in ref
    assert main(["validate", "--reference", "--kind", "codesign"]) == 0
    assert "#### `[codesign]`" in capsys.readouterr().out


def test_cli_validate_exit_codes(tmp_path, capsys):
    good = REPO / "scenarios" / "codesign_anthranilate.toml"
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD)
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "13 problems" in err
