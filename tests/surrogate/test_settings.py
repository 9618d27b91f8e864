"""SurrogateSettings validation and round trip."""

from __future__ import annotations

import pytest

from mpc_bio.surrogate.settings import SurrogateSettings


def test_defaults_round_trip():
    s = SurrogateSettings()
    assert SurrogateSettings.from_dict(s.to_dict()) == s


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"activation": "relu"}, "activation"),
        ({"target": "both"}, "target"),
        ({"hidden": ()}, "hidden"),
        ({"hidden": (64, 0)}, "hidden"),
        ({"epochs": -1}, "epochs"),
        ({"epochs": 0}, "epochs"),  # with no fine-tuning or L-BFGS: nothing would train
        ({"lr": -1.0}, "lr"),
        ({"validation_fraction": 0.9}, "validation_fraction"),
        ({"device": "tpu"}, "device"),
        ({"mass_balance": 1}, "mass_balance"),
        ({"finetune_power": 3}, "finetune_power"),
        ({"finetune_power": 18}, "finetune_power"),
        ({"finetune_epochs": -1}, "finetune_epochs"),
        ({"finetune_lr_ratio": 0.0}, "finetune_lr_ratio"),
        ({"finetune_batch_size": 0}, "finetune_batch_size"),
        ({"projection_metric": "l1"}, "projection_metric"),
        ({"freeze_init": 1}, "freeze_init"),
    ],
)
def test_invalid_settings_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        SurrogateSettings(**kwargs)


def test_unknown_key_rejected():
    with pytest.raises(ValueError, match=r"Unknown key\(s\) \['epochz'\] in SurrogateSettings"):
        SurrogateSettings.from_dict({"epochz": 3})


def test_reaction_weights_stored_as_sorted_pairs_and_round_trip():
    s = SurrogateSettings(reaction_weights={"PGI": 3, "ACONTa": 10.0})
    assert s.reaction_weights == (("ACONTa", 10.0), ("PGI", 3.0))
    assert SurrogateSettings.from_dict(s.to_dict()) == s
    assert SurrogateSettings(reaction_weights=[("PGI", 3.0), ("ACONTa", 10)]) == s


@pytest.mark.parametrize("bad", [{"PGI": 0.0}, {"PGI": -1}, {"PGI": True}, [("PGI",)], [(3, 1.0)], [("PGI", 1.0), ("PGI", 2.0)]])
def test_invalid_reaction_weights_name_the_parameter(bad):
    with pytest.raises(ValueError, match="'reaction_weights'"):
        SurrogateSettings(reaction_weights=bad)
