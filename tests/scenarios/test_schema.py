"""Scenario validation: every kind of bad file, all problems reported at once, the reference."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mpc_bio.cli import main
from mpc_bio.scenarios import ScenarioError, validate_scenario
from mpc_bio.scenarios.kinds import SCENARIO_SCHEMAS, get_schema
from mpc_bio.scenarios.runner import SCENARIO_KINDS
from mpc_bio.scenarios.schema import Field, dump_toml, format_reference, validate_table

REPO = Path(__file__).resolve().parents[2]

GOOD_SIM = """\
kind = "simulation"
name = "ok"
[feed]
times = [0.0, 1.0]
rates = [0.001, 0.01]
[simulation]
batch_time = 2.0
compare_lp = false
"""

GOOD_CONTROL = """\
kind = "closed_loop"
[problem]
batch_time = 4.0
volume_max = 1.5
[mpc]
t_step = 0.5
[[measurements.channels]]
quantity = "volume"
period = 0.5
noise_std = 0.005
"""


def _write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _problems(path: Path):
    with pytest.raises(ScenarioError) as info:
        validate_scenario(path)
    return info.value.problems, str(info.value)


def test_good_files_validate_and_fill_defaults(tmp_path):
    r = validate_scenario(_write(tmp_path, GOOD_SIM))
    assert r["kind"] == "simulation"
    assert r["simulation"]["batch_time"] == pytest.approx(2.0, rel=0, abs=0)
    # defaults come from the process dataclasses
    from mpc_bio.process import FedBatchSettings, UptakeKinetics

    assert r["reactor"]["volume0"] == FedBatchSettings().volume0
    assert r["kinetics"]["glucose_vmax"] == UptakeKinetics().glucose_vmax
    assert r["simulation"]["compare_lp"] is False
    c = validate_scenario(_write(tmp_path, GOOD_CONTROL, "c.toml"))
    assert c["measurements"]["channels"][0]["dropout"] == 0.0
    from mpc_bio.control.settings import MPCSettings

    assert c["mpc"]["n_horizon"] == MPCSettings().n_horizon


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "scenarios").glob("*.toml")))
def test_shipped_scenarios_are_valid_and_resolved_config_round_trips(name, tmp_path):
    from mpc_bio.scenarios.cli import validate_file

    path = REPO / "scenarios" / name
    resolved = validate_file(path)
    if "kind" not in resolved:  # a [nomad] config
        return
    again = _write(tmp_path, dump_toml(resolved), "resolved.toml")
    assert tomllib.loads(again.read_text()) == resolved
    assert validate_scenario(again) == resolved


def test_unknown_key_and_table(tmp_path):
    probs, msg = _problems(_write(tmp_path, GOOD_SIM + "[reactor]\nvolume_0 = 1.0\n[reactr]\nx = 1\n"))
    keys = {p.key for p in probs}
    assert keys == {"reactor.volume_0", "[reactr]"}
    assert "volume0" in next(p.expected for p in probs if p.key == "reactor.volume_0")  # lists allowed keys
    assert str(tmp_path / "s.toml") in msg


def test_missing_required_key_and_table(tmp_path):
    probs, _ = _problems(_write(tmp_path, 'kind = "simulation"\n[simulation]\nbatch_time = 1.0\n'))
    assert [p.key for p in probs] == ["[feed]"]
    assert "times" in probs[0].expected and probs[0].got.startswith("nothing")
    probs, _ = _problems(_write(tmp_path, 'kind = "simulation"\n[feed]\ntimes = [0.0]\nrates = [0.0]\n[simulation]\nt_end = 1.0\n'))
    assert [(p.key, p.expected) for p in probs] == [("simulation.t_end", "batch_time")]
    probs, _ = _problems(_write(tmp_path, 'kind = "simulation"\n[feed]\ntimes = [0.0]\n'))
    assert [(p.key, p.got) for p in probs] == [("feed.rates", "nothing (missing)")]


def test_wrong_types(tmp_path):
    text = (
        GOOD_SIM.replace("batch_time = 2.0", 'batch_time = "2 h"')
        + "[reactor]\nproducts = { ac = 3 }\n[surrogate]\nhidden = [64, 6.5]\ncache = 1\n"
    )
    probs, _ = _problems(_write(tmp_path, text))
    got = {p.key: p for p in probs}
    assert set(got) == {"simulation.batch_time", "reactor.products", "surrogate.hidden", "surrogate.cache"}
    assert got["simulation.batch_time"].expected == "a number" and "str" in got["simulation.batch_time"].got
    assert got["surrogate.cache"].expected == "a boolean"  # 1 is not a boolean
    assert "a list of integers" in got["surrogate.hidden"].expected


def test_booleans_are_not_numbers_and_ints_become_floats(tmp_path):
    probs, _ = _problems(_write(tmp_path, GOOD_SIM.replace("batch_time = 2.0", "batch_time = true")))
    assert [p.key for p in probs] == ["simulation.batch_time"]
    r = validate_scenario(_write(tmp_path, GOOD_SIM.replace("batch_time = 2.0", "batch_time = 2"), "i.toml"))
    assert isinstance(r["simulation"]["batch_time"], float)


def test_out_of_range_values(tmp_path):
    text = GOOD_SIM + '[kinetics]\nglucose_km = 0.0\noxygen = "air"\n[reactor]\nvolume0 = -1.0\n'
    text = text.replace("rates = [0.001, 0.01]", "rates = [0.001, -0.01]")
    probs, _ = _problems(_write(tmp_path, text))
    got = {p.key: p for p in probs}
    assert set(got) == {"kinetics.glucose_km", "kinetics.oxygen", "reactor.volume0", "feed.rates"}
    assert "> 0" in got["kinetics.glucose_km"].expected and "mmol/L" in got["kinetics.glucose_km"].expected
    assert "'fixed'" in got["kinetics.oxygen"].expected
    assert "-0.01" in got["feed.rates"].got
    # control tables: ranges declared on top of the dataclass fields, in arrays of tables too
    text = GOOD_CONTROL.replace("t_step = 0.5", "t_step = 0.5\ncollocation_deg = 7\nbackoff = 1.0") + "dropout = 1.5\n"
    probs, _ = _problems(_write(tmp_path, text, "c.toml"))
    assert {p.key for p in probs} == {"mpc.collocation_deg", "mpc.backoff", "measurements.channels[0].dropout"}


def test_infeasible_combinations(tmp_path):
    # within a table: the stage's own settings dataclass plugs in (times must increase)
    probs, _ = _problems(_write(tmp_path, GOOD_SIM.replace("times = [0.0, 1.0]", "times = [0.0, 0.0]")))
    assert [p.key for p in probs] == ["[feed]"] and "increase" in probs[0].got
    # across tables
    text = GOOD_SIM.replace("batch_time = 2.0", "batch_time = 2.0\noutput_step = 5.0") + '[model]\nname = "e_coli_core"\npath = "m.json"\n'
    probs, _ = _problems(_write(tmp_path, text, "b.toml"))
    assert {p.key for p in probs} == {"simulation.output_step", "[model]"}
    text = GOOD_CONTROL.replace("volume_max = 1.5", "volume_max = 0.9").replace("t_step = 0.5", "t_step = 5.0")
    probs, _ = _problems(_write(tmp_path, text, "c.toml"))
    assert {p.key for p in probs} == {"problem.volume_max", "mpc.t_step"}
    text = GOOD_CONTROL.replace("closed_loop", "mpc_mismatch")
    probs, _ = _problems(_write(tmp_path, text, "m.toml"))
    assert [p.key for p in probs] == ["closed_loop.plant"]
    # the control dataclass's own cross-field check (feed_max > feed_min)
    probs, _ = _problems(
        _write(tmp_path, GOOD_CONTROL.replace("batch_time = 4.0", "batch_time = 4.0\nfeed_min = 0.3\nfeed_max = 0.2"), "d.toml")
    )
    assert [p.key for p in probs] == ["[problem]"] and "feed_max" in probs[0].got


def test_several_problems_reported_at_once(tmp_path):
    text = """\
kind = "simulation"
colour = "red"
[model]
name = "e_coli_core"
path = "x.json"
[surrogate]
backend = "gpu"
[reactor]
volume0 = -1.0
glucose0 = "ten"
[feed]
times = [0.0, 5.0]
[simulation]
bogus = 1
"""
    path = _write(tmp_path, text)
    probs, msg = _problems(path)
    assert {p.key for p in probs} == {
        "colour",
        "[model]",
        "surrogate.backend",
        "reactor.volume0",
        "reactor.glucose0",
        "feed.rates",
        "simulation.bogus",
    }
    assert msg.startswith(f"{path}: 7 problems")
    assert all(p.file == str(path) for p in probs)
    for p in probs:  # each problem on its own line with key, expected and got
        assert f"  - {p.sentence()}" in msg
        assert p.key.rpartition(".")[2].strip("[]") in p.sentence() and p.expected in p.sentence()
    assert "key 'reactor.volume0' must be a number > 0 (L); got float -1.0" in msg
    assert "key 'reactor.glucose0' must be a number; got str 'ten'" in msg
    assert "missing key 'feed.rates' (expected a list of numbers >= 0 (L/h))" in msg
    assert "unknown key(s) ['bogus'] in [simulation]" in msg


def test_bad_kind_and_toml_syntax(tmp_path):
    probs, _ = _problems(_write(tmp_path, 'kind = "simulashun"\nname = 3\n'))
    assert [p.key for p in probs] == ["kind", "name"]
    probs, _ = _problems(_write(tmp_path, "kind = \n", "t.toml"))
    assert probs[0].expected == "valid TOML"


def test_validate_table_collects_every_problem(tmp_path):
    fields = {"a": Field(float, required=True, min=0.0), "b": Field(int, default=3, max=5)}
    assert validate_table("f", "t", {"a": 1}, fields) == {"a": 1.0, "b": 3}
    with pytest.raises(ScenarioError) as info:
        validate_table("f", "t", {"a": -1.0, "b": 9, "c": 0}, fields)
    assert {p.key for p in info.value.problems} == {"t.a", "t.b", "t.c"}


def test_every_kind_with_a_runner_has_a_schema_and_reference_lists_every_key():
    for kind in ("simulation", "closed_loop", "feed_optimization", "mpc_mismatch"):
        assert kind in SCENARIO_KINDS and kind in SCENARIO_SCHEMAS
    schemas = [get_schema(k) for k in SCENARIO_SCHEMAS]
    ref = format_reference(schemas)
    for s in schemas:
        for t in s.tables.values():
            for key in t.fields:
                assert f"`{key}`" in ref
    assert "| `volume0` | a number | L | 1.0 | > 0 |" in ref
    assert "| `t_step` | a number | h | 0.5 | > 0 |" in ref


def test_cli_validate_exit_codes(tmp_path, capsys):
    good, bad = _write(tmp_path, GOOD_SIM, "g.toml"), _write(tmp_path, GOOD_SIM.replace("batch_time = 2.0", "batch_time = -2.0"), "b.toml")
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "simulation.batch_time" in err and "1 of 2 file(s) invalid" in err
    assert main(["validate", str(tmp_path / "nope.toml")]) == 2
    assert main(["validate", "--reference", "--kind", "simulation"]) == 0
    assert "[feed]" in capsys.readouterr().out


def test_help_shows_examples():
    for cmd in (["run", "--help"], ["validate", "--help"]):
        out = subprocess.run([sys.executable, "-m", "mpc_bio.cli", *cmd], capture_output=True, text=True, check=True).stdout
        assert "examples:" in out and "mpc-bio " + cmd[0] in out


def test_every_subcommand_help_has_examples():
    import argparse

    from mpc_bio.cli import build_parser

    def subparsers(p):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                yield from a.choices.items()

    seen = []
    for name, p in subparsers(build_parser()):
        nested = list(subparsers(p))
        for sub_name, sp in nested or [(None, p)]:
            text = sp.format_help()
            seen.append(name if sub_name is None else f"{name} {sub_name}")
            assert "example" in text and "mpc-bio " in text, f"`mpc-bio {seen[-1]} --help` shows no example"
        if nested:
            assert "example" in p.format_help(), name
    assert {"run", "validate"} <= set(seen)


def test_relative_paths_become_absolute_in_the_resolved_config(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.json").write_text("{}")
    text = GOOD_SIM + '[model]\npath = "models/m.json"\n[surrogate]\nartifact = "default"\n'
    r = validate_scenario(_write(tmp_path, text))
    assert r["model"]["path"] == str((tmp_path / "models" / "m.json").resolve())
    assert r["surrogate"]["artifact"] == "default"


def test_nomad_config_is_checked_by_its_schema(tmp_path):
    from mpc_bio.scenarios.cli import validate_file

    text = (REPO / "scenarios" / "nomad_anthranilate.toml").read_text().replace("n_models = 5000", "n_models = 5000\nn_modles = 3")
    with pytest.raises(ScenarioError, match="n_modles") as info:
        validate_file(_write(tmp_path, text))
    assert info.value.problems[0].key == "nomad.sampling.n_modles"


@pytest.mark.parametrize(
    "edit, key, fragment",
    [
        (('name = "e_coli_core"', 'name = "no_such_model"'), "model.name", "one of"),
        (('artifact = "default"', 'artifact = "no/such/dir"'), "surrogate.artifact", "holding surrogate.json"),
        (
            ('products = { ac = "EX_ac_e" }', 'products = { ac = "EX_acetate_e" }'),
            "reactor.products",
            "exchange reactions the surrogate predicts",
        ),
        (('artifact = "default"', 'artifact = "iCH360"'), "surrogate.artifact", "a surrogate of the scenario's model 'e_coli_core'"),
    ],
)
def test_validate_catches_what_would_fail_later(tmp_path, edit, key, fragment):
    """An unknown model name, a surrogate directory that does not exist, a product the surrogate
    does not predict and a surrogate of another model (iCH360's on e_coli_core) are validation
    errors (they used to pass `validate` and fail the run)."""
    from pathlib import Path

    from mpc_bio.scenarios import ScenarioError, validate_scenario

    text = (Path(__file__).resolve().parents[2] / "scenarios" / "paper_fig3.toml").read_text()
    assert edit[0] in text
    p = tmp_path / "s.toml"
    p.write_text(text.replace(edit[0], edit[1]))
    with pytest.raises(ScenarioError, match=fragment) as info:
        validate_scenario(p)
    assert key in str(info.value)


@pytest.mark.parametrize("edit", ["json", "weights"])
def test_validate_refuses_an_edited_artifact(tmp_path, edit):
    """A copy of the shipped artifact with its json edited (acetate and ethanol swapped) or its
    weights replaced fails `validate` (no torch needed), as it fails loading."""
    import json
    import shutil
    from pathlib import Path

    import numpy as np

    from mpc_bio.scenarios import ScenarioError, validate_scenario
    from mpc_bio.surrogate.shipped import shipped_artifact

    art = tmp_path / "art"
    shutil.copytree(shipped_artifact("e_coli_core")[1], art)
    if edit == "json":
        meta = json.loads((art / "surrogate.json").read_text())
        ids = meta["reaction_ids"]
        i, j = ids.index("EX_ac_e"), ids.index("EX_etoh_e")
        ids[i], ids[j] = ids[j], ids[i]
        (art / "surrogate.json").write_text(json.dumps(meta))
        fragment = "content of .* does not match its recorded SHA-256"
    else:
        with np.load(art / "weights.npz") as z:
            arrays = {k: z[k] * (1.0 + 1e-6) for k in z.files}
        np.savez(art / "weights.npz", **arrays)
        fragment = "weights in .* do not match the SHA-256"
    text = (Path(__file__).resolve().parents[2] / "scenarios" / "paper_fig3.toml").read_text()
    assert 'artifact = "default"' in text
    p = tmp_path / "s.toml"
    p.write_text(text.replace('artifact = "default"', f'artifact = "{art}"'))
    with pytest.raises(ScenarioError, match=fragment) as info:
        validate_scenario(p)
    assert "surrogate.artifact" in str(info.value)


def test_control_tables_come_from_the_settings_declarations(tmp_path):
    """The control tables are the control settings' declarations (units, ranges, renamed keys), plus the
    scenario's own options; an old key names its new one."""
    from mpc_bio.control.settings import MPCSettings
    from mpc_bio.settings import setting_spec

    probs, msg = _problems(_write(tmp_path, GOOD_CONTROL + "[baselines]\nglucose_feed = 500.0\n[control_model]\nsteps = 0.1\n", "c.toml"))
    assert [(p.key, p.what) for p in probs] == [("baselines.glucose_feed", "renamed_key"), ("control_model.steps", "unknown_key")]
    assert "key 'baselines.glucose_feed' was renamed: write 'feed_glucose' instead" in msg
    tables = get_schema("closed_loop").tables
    t_step = next(f for f in dataclasses.fields(MPCSettings) if f.name == "t_step")
    assert tables["mpc"].fields["t_step"].unit == setting_spec(t_step).unit == "h"
    assert tables["baselines"].fields["feed_glucose"].default is None  # absent: the reactor's feed_glucose
    assert {"rmse_after", "relax"} <= set(tables["closed_loop"].fields) and "progress" not in tables["closed_loop"].fields
    c = validate_scenario(_write(tmp_path, GOOD_CONTROL.replace("t_step = 0.5", "t_step = 0.5\nbackoff = 0.0"), "d.toml"))
    assert c["mpc"]["backoff"] == 0.0 and "feed_glucose" not in c["baselines"] and c["control_model"]["distill"] is False
