"""Settings validation and TOML round trip of the control stage."""

import pytest

from mpc_bio.control import (
    BaselineSettings,
    BatchProblem,
    ClosedLoopSettings,
    ControlError,
    EstimatorSettings,
    MeasurementChannel,
    MeasurementSettings,
    MPCSettings,
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


def test_from_dict_rejects_unknown_and_renamed_keys_and_builds_nested():
    with pytest.raises(ControlError, match=r"Unknown key\(s\) \['horizon'\] in \[mpc\]"):
        MPCSettings.from_dict({"horizon": 10}, "[mpc]")
    with pytest.raises(ControlError, match=r"Renamed key\(s\) in \[baselines\]: 'glucose_feed' is now 'feed_glucose'"):
        BaselineSettings.from_dict({"glucose_feed": 500.0}, "[baselines]")
    ms = MeasurementSettings.from_dict(
        {"seed": 3, "channels": [{"quantity": "volume", "period": 0.5, "noise_std": 0.01}]},
        "[measurements]",
    )
    assert ms.seed == 3 and ms.channels[0].quantity == "volume"
    cl = ClosedLoopSettings.from_dict({"plant": "perturbed", "plant_parameter_scale": {"vmax_glc": 0.8}}, "[closed_loop]")
    assert cl.plant_parameter_scale == (("vmax_glc", 0.8),)
    assert ClosedLoopSettings.from_dict(cl.to_dict()) == cl  # round trip through the TOML form


def test_ranges_and_messages_are_uniform():
    """The boundaries of the ranges (0 allowed or not, 1 excluded) and the base's message form."""
    assert BatchProblem(feed_min=0.0, constraint_tolerance=0.0).feed_min == 0.0
    assert MPCSettings(move_penalty=0.0, safe_feed=0.0, backoff=0.0, max_iter=0).max_iter == 0
    with pytest.raises(
        ControlError, match=r"^The 'batch_time' parameter of BatchProblem must be a finite number > 0 \(h\)\. Got 0\.0 instead\.$"
    ):
        BatchProblem(batch_time=0.0)
    with pytest.raises(
        ControlError, match=r"^The 'feed_max' parameter of BatchProblem must be > feed_min = 0\.3 L/h\. Got 0\.2 instead\.$"
    ):
        BatchProblem(feed_min=0.3, feed_max=0.2)
    with pytest.raises(ControlError, match=r"must be an integer >= 1 and <= 5\. Got 2\.0 instead"):
        MPCSettings(collocation_deg=2.0)
    with pytest.raises(
        ControlError, match=r"'initial_error' parameter of EstimatorSettings must be a finite number > -1\. Got -1\.0 instead"
    ):
        EstimatorSettings(initial_error=-1.0)
    with pytest.raises(ControlError, match="'mu_max' parameter of BaselineSettings must be > mu_min"):
        BaselineSettings(mu_min=0.5, mu_max=0.5)
    with pytest.raises(ControlError, match="at least 1 item"):
        MeasurementSettings(channels=())
