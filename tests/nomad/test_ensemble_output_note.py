"""The stale-ensemble note (mpc_bio.nomad.design_study.ensemble_output_note) names value
differences only: a setting written in another form reads the same, a setting the record lacks
(an older version) and a recorded key that is no setting any more are named as such."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mpc_bio.nomad.design_study import ensemble_output_note
from mpc_bio.nomad.settings import load_study_settings

CONFIG = Path(__file__).resolve().parents[2] / "scenarios" / "nomad_anthranilate.toml"


@pytest.fixture()
def record(tmp_path):
    """The config's settings as the ensemble stage records them, and a writer of summary.json."""
    settings = load_study_settings(CONFIG).to_dict()

    def write(s: dict) -> Path:
        (tmp_path / "summary.json").write_text(json.dumps({"settings": s}))
        return tmp_path

    return settings, write


def test_pairs_written_as_lists_are_the_same_settings(record):
    """Older versions wrote pair settings as [[key, value], ...]: not a difference."""
    s, write = record
    assert s["network"]["uptake_bounds"] and s["steady_state"]["fixed_concentrations"]
    s["network"]["uptake_bounds"] = [[k, v] for k, v in s["network"]["uptake_bounds"].items()]
    s["steady_state"]["fixed_concentrations"] = [[k, v] for k, v in s["steady_state"]["fixed_concentrations"].items()]
    assert ensemble_output_note(CONFIG, write(s)) is None


def test_a_setting_the_record_lacks_or_no_longer_has_is_named_as_such(record):
    s, write = record
    batch_points = s["screening"].pop("batch_points")
    s["network"]["retired_key"] = 3
    note = ensemble_output_note(CONFIG, write(s))
    assert note is not None and len(note.splitlines()) == 1 and "may be stale" in note
    assert f"screening.batch_points not recorded there (an older mpc_bio), {batch_points!r} in the config" in note
    assert "network.retired_key 3 there, no setting of this version" in note


def test_value_differences_come_first_and_say_stale(record):
    s, write = record
    s["network"]["uptake_bounds"] = [[k, v] for k, v in s["network"]["uptake_bounds"].items()]  # a form, not a value
    first = next(iter(s["steady_state"]["fixed_concentrations"]))
    value = s["steady_state"]["fixed_concentrations"].pop(first)  # a pair missing from a recorded table is a value
    s["screening"].pop("batch_points")
    note = ensemble_output_note(CONFIG, write(s))
    assert note is not None and "is stale: made with other [nomad] settings" in note
    assert f"(steady_state.fixed_concentrations.{first} None there, {value!r} in the config; screening.batch_points" in note
    assert "uptake_bounds" not in note
