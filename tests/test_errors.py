"""Every stage's error class derives from the one base, MpcBioError (a ValueError)."""

import importlib

import pytest

from mpc_bio import MpcBioError

STAGE_ERRORS = [
    ("mpc_bio.metabolism.models", "ModelLoadError"),
    ("mpc_bio.metabolism.pfba", "InputError"),
    ("mpc_bio.metabolism.sampling", "SamplingError"),
    ("mpc_bio.metabolism.settings", "SettingsError"),
    ("mpc_bio.metabolism.dataset", "DatasetError"),
    ("mpc_bio.metabolism.cli", "CLIError"),
    ("mpc_bio.surrogate.artifact", "ArtifactError"),
    ("mpc_bio.surrogate.settings", "SurrogateSettingsError"),
    ("mpc_bio.codesign.settings", "CodesignError"),
    ("mpc_bio.surrogate.training", "TrainingDataError"),
    ("mpc_bio.embed.to_casadi", "EmbeddingError"),
    ("mpc_bio.process", "ProcessSettingsError"),
    ("mpc_bio.control.settings", "ControlError"),
    ("mpc_bio.nomad.network", "NetworkError"),
    ("mpc_bio.nomad.settings", "NomadSettingsError"),
    ("mpc_bio.scenarios.schema", "ScenarioError"),
    ("mpc_bio.scenarios.runner", "RunExistsError"),
]


@pytest.mark.parametrize("module, name", STAGE_ERRORS)
def test_stage_error_is_an_mpc_bio_error(module, name):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, MpcBioError) and issubclass(cls, ValueError)


def test_a_stage_error_is_caught_by_the_base():
    from mpc_bio.metabolism import load_model

    with pytest.raises(MpcBioError, match="neither a bundled model nor an existing file"):
        load_model("no_such_model")
