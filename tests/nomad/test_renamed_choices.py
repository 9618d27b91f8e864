"""A renamed choice of a setting (``setting(renamed_choices={old: new})``): the settings class and the
scenario schema (``mpc-bio validate``) both refuse the old value naming the new one."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mpc_bio.errors import MpcBioError
from mpc_bio.scenarios.schema import Problem, ScenarioError, settings_fields, validate_table
from mpc_bio.settings import Settings, setting


class _ReadoutError(MpcBioError):
    pass


@dataclass(frozen=True)
class _Readout(Settings):
    error = _ReadoutError

    readout: str = setting("reference_end", choices=("reference_end", "batch_time"), renamed_choices={"t_end": "batch_time"})


def test_settings_refuse_a_renamed_choice_naming_the_new_one():
    assert _Readout(readout="batch_time").readout == "batch_time"
    with pytest.raises(_ReadoutError, match=r"Got 't_end' instead\. The value 't_end' was renamed: write 'batch_time' instead\."):
        _Readout(readout="t_end")
    # any other unknown value: the plain message (no rename named)
    with pytest.raises(_ReadoutError) as info:
        _Readout(readout="end")
    assert "renamed" not in str(info.value) and "one of 'reference_end', 'batch_time'" in str(info.value)


def test_schema_names_the_renamed_value():
    fields = settings_fields(_Readout)
    assert fields["readout"].renamed_choices == {"t_end": "batch_time"}
    with pytest.raises(ScenarioError) as info:
        validate_table("demo.toml", "verification", {"readout": "t_end"}, fields)
    (problem,) = info.value.problems
    assert problem == Problem("demo.toml", "verification.readout", "'batch_time'", "'t_end'", "renamed_value")
    assert problem.sentence() == "key 'verification.readout': the value 't_end' was renamed: write 'batch_time' instead"
    with pytest.raises(ScenarioError) as info:
        validate_table("demo.toml", "verification", {"readout": "end"}, fields)
    assert info.value.problems[0].what == "range"
    assert validate_table("demo.toml", "verification", {"readout": "batch_time"}, fields) == {"readout": "batch_time"}


def test_batch_readout_t_end_is_now_batch_time(tmp_path):
    """[nomad.design.verification] batch_readout: "t_end" was renamed "batch_time" (one name for the batch length)."""
    import re
    import tomllib
    from pathlib import Path

    from mpc_bio.nomad.nra_settings import VerificationSettings
    from mpc_bio.nomad.settings import NomadSettingsError
    from mpc_bio.scenarios.nomad_config import validate_nomad_config

    assert VerificationSettings(batch_readout="batch_time").batch_readout == "batch_time"
    with pytest.raises(NomadSettingsError, match="write 'batch_time' instead"):
        VerificationSettings(batch_readout="t_end")
    shipped = Path(__file__).resolve().parents[2] / "scenarios" / "nomad_anthranilate.toml"
    text, n = re.subn(r'^batch_readout = "reference_end"', 'batch_readout = "t_end"', shipped.read_text(), flags=re.M)
    assert n == 1
    cfg = tmp_path / "old.toml"
    cfg.write_text(text)
    with pytest.raises(ScenarioError) as info:
        validate_nomad_config(cfg, tomllib.loads(text))
    (problem,) = info.value.problems
    assert (problem.key, problem.what, problem.got, problem.expected) == (
        "nomad.design.verification.batch_readout",
        "renamed_value",
        "'t_end'",
        "'batch_time'",
    )
