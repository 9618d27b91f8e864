"""Validation of NOMAD configuration files (``[nomad]`` tables, no ``kind``) against their schema."""

from pathlib import Path

import pytest

from mpc_bio.scenarios import ScenarioError
from mpc_bio.scenarios.cli import validate_file
from mpc_bio.scenarios.nomad_config import nomad_config_schema

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_is_valid_and_resolved_with_defaults():
    resolved = validate_file(REPO / "scenarios" / "nomad_anthranilate.toml")
    nomad = resolved["nomad"]
    assert nomad["sampling"]["n_models"] == 5000  # given in the file
    assert nomad["design"]["sensitivity"]["perturbation"] == 0.5  # default of SensitivitySettings
    assert nomad["design"]["nra"]["max_interventions"] == 3


def test_every_problem_reported_at_once(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(
        '[nomad]\noutput_dir = "x"\nbogus = 1\n'
        "[nomad.network]\nmodel = 3\n"
        '[nomad.sampling]\nn_models = "many"\n'
        "[nomad.design.nra]\nmax_interventions = 2.5\nunknown_key = true\n"
        "[nomad.extra]\na = 1\n"
    )
    with pytest.raises(ScenarioError) as err:
        validate_file(f)
    text = str(err.value)
    for needle in (
        "['bogus'] in [nomad]",
        "['extra'] in [nomad]",
        "nomad.network.model",
        "nomad.sampling.n_models",
        "nomad.design.nra.max_interventions",
        "['unknown_key'] in [nomad.design.nra]",
    ):
        assert needle in text, (needle, text)


def test_out_of_range_values_reach_the_stage_checks(tmp_path):
    f = tmp_path / "range.toml"
    f.write_text('[nomad]\noutput_dir = "x"\n[nomad.sampling]\nsaturation_bounds = [0.5, 1.5]\n')
    with pytest.raises(ScenarioError, match="saturation"):
        validate_file(f)


def test_schema_covers_every_settings_field():
    import dataclasses

    from mpc_bio.nomad.nra_settings import NRASettings
    from mpc_bio.nomad.settings import NetworkSettings

    def live(table):  # the keys of a table (renamed keys are listed to name their new key)
        return {k for k, f in table.fields.items() if f.renamed_to is None}

    nomad = nomad_config_schema().tables["nomad"].fields
    assert live(nomad["network"]) == {f.name for f in dataclasses.fields(NetworkSettings)}
    assert live(nomad["design"].fields["nra"]) == {f.name for f in dataclasses.fields(NRASettings)}
    assert nomad["design"].fields["nra"].fields["time_limit_s"].renamed_to == "time_limit"
