"""BuildSettings on the project's Settings base: checks on creation, messages naming the parameter, round trip."""

from __future__ import annotations

import json
import math

import pytest

from mpc_bio.metabolism.settings import SettingsError
from mpc_bio.settings import Settings
from mpc_bio.surrogate.build import BuildSettings


def test_is_a_settings_class_with_documented_fields():
    assert issubclass(BuildSettings, Settings)
    doc = BuildSettings.__doc__
    for name in ("time_budget_min", "min_adam_steps", "kink_extra_reach_steps", "device"):
        assert f"    {name} : " in doc


def test_defaults_and_normalisation():
    s = BuildSettings()
    assert s.box == (("glucose", 0.0, 20.0), ("oxygen", 0.0, 20.0))
    assert (s.batch_size, s.min_batch_size, s.min_adam_steps, s.min_steps_per_epoch) == (1024, 32, 20000, 16)
    t = BuildSettings(inputs={"glucose": "EX_glc__D_e", "ammonium": "EX_nh4_e"}, box={"ammonium": (0, 10)}, hidden=[16, 16])
    assert t.inputs == (("glucose", "EX_glc__D_e"), ("ammonium", "EX_nh4_e"))
    assert t.box == (("glucose", 0.0, 20.0), ("ammonium", 0.0, 10.0))
    assert t.hidden == (16, 16) and isinstance(t.box[1][1], float)


def test_round_trip_through_json():
    s = BuildSettings(inputs={"glucose": "EX_glc__D_e", "ammonium": "EX_nh4_e"}, box=(("ammonium", 0, 10),), seed=3)
    d = json.loads(json.dumps(s.to_dict()))
    assert d["inputs"] == [["glucose", "EX_glc__D_e"], ["ammonium", "EX_nh4_e"]]
    assert BuildSettings.from_dict(d) == s
    with pytest.raises(SettingsError, match="Unknown key"):
        BuildSettings.from_dict({**d, "batch": 3})


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"box": (("glucose", 0.0, math.nan),)}, "box"),
        ({"box": (("glucose", True, 3.0),)}, "box"),
        ({"box": {"glucose": 3}}, "box"),
        ({"box": (("glucose", 5.0, 5.0),)}, "box"),
        ({"time_budget_min": 0}, "time_budget_min"),
        ({"time_budget_min": True}, "time_budget_min"),
        ({"grid_share": 0.5, "kink_share": 0.5}, "grid_share, kink_share, refine_share, eval_share"),
        ({"grid_share": -0.1}, "grid_share"),
        ({"grid_min_per_axis": 1}, "grid_min_per_axis"),
        ({"grid_min_per_axis": 300}, "grid_min_per_axis"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"hidden": ()}, "hidden"),
        ({"finetune_power": 3}, "finetune_power"),
        ({"finetune_share": 1.0}, "finetune_share"),
        ({"batch_size": 0}, "batch_size"),
        ({"min_batch_size": 2048}, "min_batch_size"),
        ({"n_fresh_points": 0}, "n_fresh_points"),
        ({"kink_reach_steps": 1e-3}, "kink_reach_steps"),
        ({"refine_tolerance": 0.0}, "refine_tolerance"),
        ({"min_kink_jump": -1.0}, "min_kink_jump"),
        ({"device": "gpu"}, "device"),
    ],
)
def test_errors_name_the_parameter(kw, name):
    with pytest.raises(SettingsError, match=f"The '{name}' parameter of BuildSettings must be .* Got .* instead"):
        BuildSettings(**kw)


def test_input_errors_come_from_pfba_settings():
    with pytest.raises(SettingsError, match="BuildSettings: The 'inputs' parameter of PFBASettings"):
        BuildSettings(inputs={"glucose": "EX_glc__D_e", "oxygen": "EX_glc__D_e"})
    with pytest.raises(SettingsError, match="naming the inputs"):
        BuildSettings(box=(("ammonium", 0.0, 5.0),))
