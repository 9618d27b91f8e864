"""Settings validation and TOML round trip of the control stage."""

import pytest

from mpc_bio.control import (
    BatchProblem,
    ClosedLoopSettings,
    ControlError,
    EstimatorSettings,
    MeasurementChannel,
    MeasurementSettings,
    MPCSettings,
    settings_from_dict,
)


@pytest.mark.parametrize(
    ("cls", "kwargs", "word"),
    [
        (BatchProblem, {"feed_max": -1.0}, "feed_max"),
        (BatchProblem, {"objective": "profit"}, "objective"),
        (BatchProblem, {"feed_min": 0.3, "feed_max": 0.2}, "feed_max"),
        (MPCSettings, {"n_horizon": 0}, "n_horizon"),
        (MPCSettings, {"collocation_deg": 7}, "collocation_deg"),
        (MPCSettings, {"symvar": "DM"}, "symvar"),
        (MPCSettings, {"backoff": 1.0}, "backoff"),
        (EstimatorSettings, {"kind": "ukf"}, "kind"),
        (EstimatorSettings, {"mhe_horizon": 1}, "mhe_horizon"),
        (MeasurementChannel, {"quantity": "oxygen", "period": 1.0, "noise_std": 0.1}, "quantity"),
        (MeasurementChannel, {"quantity": "volume", "period": 1.0, "noise_std": 0.1, "dropout": 1.0}, "dropout"),
        (ClosedLoopSettings, {"plant": "real"}, "plant"),
    ],
)
def test_bad_settings_name_the_parameter(cls, kwargs, word):
    with pytest.raises(ControlError, match=word):
        cls(**kwargs)


def test_repeated_channel_is_rejected():
    ch = MeasurementChannel("volume", 0.5, 0.01)
    with pytest.raises(ControlError, match="repeated"):
        MeasurementSettings(channels=(ch, ch))


def test_settings_from_dict_rejects_unknown_keys_and_builds_nested():
    with pytest.raises(ControlError, match="horizon"):
        settings_from_dict(MPCSettings, {"horizon": 10}, "mpc")
    ms = settings_from_dict(
        MeasurementSettings,
        {"seed": 3, "channels": [{"quantity": "volume", "period": 0.5, "noise_std": 0.01}]},
        "measurements",
    )
    assert ms.seed == 3 and ms.channels[0].quantity == "volume"
    cl = settings_from_dict(ClosedLoopSettings, {"plant": "perturbed", "plant_parameter_scale": {"vmax_glc": 0.8}}, "closed_loop")
    assert cl.plant_parameter_scale == (("vmax_glc", 0.8),)
