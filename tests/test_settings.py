"""The one settings mechanism (mpc_bio.settings): declaration, check, dict/TOML form, schema."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from typing import ClassVar

import pytest

from mpc_bio.codesign.settings import CodesignError, CodesignSettings, FeedSettings
from mpc_bio.errors import MpcBioError
from mpc_bio.feed import FeedProfile
from mpc_bio.metabolism.settings import PFBASettings
from mpc_bio.process.settings import FedBatchSettings, UptakeKinetics
from mpc_bio.scenarios.schema import dump_toml, settings_fields
from mpc_bio.scenarios.simulation import ModelSource, SimulationOptions, SurrogateSource, process_tables
from mpc_bio.settings import Settings, setting
from mpc_bio.surrogate.settings import SurrogateSettings

CONVERTED = [
    PFBASettings,
    SurrogateSettings,
    FeedProfile,
    UptakeKinetics,
    FedBatchSettings,
    FeedSettings,
    CodesignSettings,
    ModelSource,
    SurrogateSource,
    SimulationOptions,
]


class DemoError(MpcBioError):
    pass


@dataclass(frozen=True)
class Inner(Settings):
    error: ClassVar[type] = DemoError
    rate: float = setting(1.0, unit="L/h", low=0.0, doc="A rate.")


@dataclass(frozen=True)
class Demo(Settings):
    error: ClassVar[type] = DemoError
    renamed: ClassVar[dict[str, str]] = {"time_h": "time"}

    time: float = setting(2.0, unit="h", low=0.0, strict=True, doc="A time.")
    count: int = setting(3, low=1, high=5, doc="A count.")
    mode: str = setting("a", choices=("a", "b"), doc="A mode.")
    widths: tuple[int, ...] = setting((4, 4), low=1, min_items=1, doc="Widths.")
    weights: tuple[tuple[str, float], ...] = setting((), low=0.0, strict=True, doc="Weights by name.")
    table: dict[str, float] = setting({}, low=0.0, doc="A table of numbers.")
    inner: Inner = setting(factory=Inner, doc="A nested table.")
    limit: float | None = setting(None, low=0.0, doc="An optional limit.")
    channels: tuple[Inner, ...] = setting((), doc="An array of tables.")


def test_values_are_converted_once_on_creation():
    d = Demo(time=3, widths=[8, 2], weights={"b": 1, "a": 2.5}, table={"x": 1}, inner={"rate": 2}, channels=[{"rate": 1}])
    assert d.channels == (Inner(rate=1.0),)
    assert d.time == 3.0 and isinstance(d.time, float)
    assert d.widths == (8, 2) and d.weights == (("b", 1.0), ("a", 2.5)) and d.table == {"x": 1.0}
    assert d.inner == Inner(rate=2.0) and isinstance(d.inner.rate, float)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"time": 0.0}, "The 'time' parameter of Demo must be a finite number > 0 (h). Got 0.0 instead."),
        ({"time": True}, "The 'time' parameter of Demo must be a finite number > 0 (h). Got True instead."),
        ({"time": float("inf")}, "The 'time' parameter of Demo must be a finite number > 0 (h). Got inf instead."),
        ({"count": 6}, "The 'count' parameter of Demo must be an integer >= 1 and <= 5. Got 6 instead."),
        ({"count": 2.0}, "The 'count' parameter of Demo must be an integer >= 1 and <= 5. Got 2.0 instead."),
        ({"mode": "c"}, "The 'mode' parameter of Demo must be one of 'a', 'b'. Got 'c' instead."),
        ({"widths": ()}, "The 'widths' parameter of Demo must be a list of at least 1 item, each item an integer >= 1. Got () instead."),
        (
            {"widths": "44"},
            "The 'widths' parameter of Demo must be a list of at least 1 item, each item an integer >= 1. Got '44' instead.",
        ),
        ({"weights": {"a": -1.0}}, "The 'weights' parameter of Demo must be a table {name: a finite number > 0}. Got {'a': -1.0} instead."),
        ({"table": {"x": "1"}}, "The 'table' parameter of Demo must be a table of a finite number >= 0 values. Got {'x': '1'} instead."),
        ({"limit": -1.0}, "The 'limit' parameter of Demo must be a finite number >= 0 or None. Got -1.0 instead."),
        ({"inner": 3}, "The 'inner' parameter of Demo must be a Inner or a table of its keys. Got 3 instead."),
        ({"inner": {"rate": -1}}, "The 'rate' parameter of Inner must be a finite number >= 0 (L/h). Got -1 instead."),
    ],
)
def test_one_check_raises_the_stage_error_in_one_form(kwargs, message):
    with pytest.raises(DemoError) as err:
        Demo(**kwargs)
    assert str(err.value) == message


def test_from_dict_refuses_unknown_and_renamed_keys_naming_them():
    with pytest.raises(DemoError, match=r"^Unknown key\(s\) \['tme'\] in \[demo\]; expected some of \['channels', 'count', "):
        Demo.from_dict({"tme": 1.0}, "[demo]")
    with pytest.raises(DemoError, match=r"^Renamed key\(s\) in Demo: 'time_h' is now 'time'\.$"):
        Demo.from_dict({"time_h": 1.0})
    with pytest.raises(DemoError, match="must be a table of Demo settings"):
        Demo.from_dict([("time", 1.0)])
    with pytest.raises(DemoError, match=r"Unknown key\(s\) \['rte'\] in Demo.inner"):
        Demo.from_dict({"inner": {"rte": 1.0}})


def test_to_dict_round_trips_through_toml():
    d = Demo(weights={"a": 2.0}, table={"x": 1.0}, inner={"rate": 0.5}, channels=[Inner(), {"rate": 3.0}])
    plain = d.to_dict()
    assert "limit" not in plain  # None with a None default is left out (TOML has no null)
    assert plain["weights"] == {"a": 2.0} and plain["widths"] == [4, 4] and plain["inner"] == {"rate": 0.5}
    assert Demo.from_dict(tomllib.loads(dump_toml({"demo": plain}))["demo"]) == d


@pytest.mark.parametrize("cls", CONVERTED, ids=lambda c: c.__name__)
def test_every_converted_class_round_trips_and_documents_each_field(cls):
    s = cls()
    assert cls.from_dict(tomllib.loads(dump_toml({"t": s.to_dict()}))["t"]) == s
    assert issubclass(cls.error, MpcBioError)
    for f in dataclasses.fields(cls):
        assert f.metadata["setting"].doc, f"{cls.__name__}.{f.name} has no doc"


def test_schema_fields_come_from_the_declarations():
    f = settings_fields(Demo)
    assert (f["time"].unit, f["time"].min, f["time"].min_open, f["time"].default) == ("h", 0.0, True, 2.0)
    assert (f["count"].min, f["count"].max, f["mode"].choices) == (1, 5, ("a", "b"))
    assert f["widths"].item is int and f["widths"].default == [4, 4] and f["widths"].min_items == 1
    assert f["weights"].types == (dict,) and f["weights"].values is float
    assert f["inner"].fields["rate"].unit == "L/h" and f["limit"].default is None
    assert f["time_h"].renamed_to == "time"
    assert f["channels"].item is dict and f["channels"].fields["rate"].unit == "L/h"
    assert f["time"].doc == "A time."
    tables = process_tables()
    vol = tables["reactor"].fields["volume0"]
    assert (vol.unit, vol.min, vol.min_open, vol.default) == ("L", 0.0, True, FedBatchSettings().volume0)
    assert set(tables["reactor"].fields) == {f.name for f in dataclasses.fields(FedBatchSettings)} - {
        "kinetics",
        "feed",
        "batch_time",
        "output_step",
        "dfba_step",
    }
    assert set(tables["simulation"].fields) == {"batch_time", "output_step", "dfba_step", "compare_lp", "relax", "rtol", "atol", "t_end"}
    assert tables["simulation"].fields["t_end"].renamed_to == "batch_time"
    assert set(tables["surrogate"].fields) == {f.name for f in dataclasses.fields(SurrogateSource)}
    assert tables["feed"].fields["times"].required and tables["feed"].fields["rates"].unit == "L/h"


def test_renamed_scenario_key_names_the_new_key(tmp_path):
    from mpc_bio.cli import main
    from mpc_bio.scenarios import ScenarioError, validate_scenario

    p = tmp_path / "old.toml"
    p.write_text('kind = "codesign"\n[codesign]\nshow_progress = false\n[codesign.feed]\nfeed_max_l_per_h = 0.2\nbatch_time_h = 8.0\n')
    with pytest.raises(ScenarioError) as err:
        validate_scenario(p)
    found = {(q.key, q.what, q.expected) for q in err.value.problems}
    assert found == {
        ("codesign.show_progress", "renamed_key", "progress"),
        ("codesign.feed.feed_max_l_per_h", "renamed_key", "feed_max"),
        ("codesign.feed.batch_time_h", "renamed_key", "batch_time"),
    }
    assert "key 'codesign.show_progress' was renamed: write 'progress' instead" in str(err.value)
    assert main(["validate", str(p)]) == 2
    with pytest.raises(CodesignError, match="'show_progress' is now 'progress'"):
        CodesignSettings.from_dict({"show_progress": False})
    with pytest.raises(CodesignError, match="'volume_max_l' is now 'volume_max'"):
        FeedSettings.from_dict({"volume_max_l": 2.0})
