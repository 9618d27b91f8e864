"""`mpc-bio pfba` and `mpc-bio sample` end to end (in-process through mpc_bio.cli.main)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mpc_bio.cli import build_parser, main
from mpc_bio.metabolism import FluxDataset


def test_pfba_command_prints_cobra_growth(capsys, ecoli_core, cobra_pfba):
    assert main(["pfba", "e_coli_core", "-u", "glucose=8", "-u", "oxygen=12", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    growth, total = cobra_pfba(ecoli_core, {"glucose": 8.0, "oxygen": 12.0})
    assert out["status"] == "optimal"
    assert out["growth_per_h"] == pytest.approx(growth, rel=1e-6, abs=1e-9)
    assert out["total_flux"] == pytest.approx(total, rel=1e-6, abs=1e-7)
    assert out["input_exchange_fluxes"]["EX_glc__D_e"] == pytest.approx(-8.0, rel=0, abs=1e-9)
    assert "EX_co2_e" in out["secretions"]


def test_pfba_command_text_and_relaxed(capsys):
    assert main(["pfba", "-u", "glucose=0.1", "-u", "oxygen=0.1"]) == 0
    text = capsys.readouterr().out
    assert "status relaxed" in text and "maintenance_ATPM" in text and "growth (Biomass_Ecoli_core)" in text
    assert main(["pfba", "--no-relax", "-u", "glucose=0", "-u", "oxygen=0"]) == 1
    assert "status infeasible" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["pfba", "no_such_model"], "Bundled models"),
        (["pfba", "-u", "glucose=-3"], "non-negative"),
        (["pfba", "-u", "glucose=nan"], "finite"),
        (["pfba", "-u", "xylose=3"], "unknown inputs ['xylose']"),
        (["pfba", "--inputs", "glucose=EX_foo_e"], "'EX_foo_e' is not a reaction"),
        (["sample", "--grid", "glucose=5:1:0.1", "--no-progress"], "empty"),
        (["sample", "--grid", "glucose=0:1", "--no-progress"], "NAME=LOW:HIGH:STEP"),
        (["sample", "--workers", "zero", "--no-progress"], "--workers"),
    ],
)
def test_cli_errors_are_clear(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mpc-bio {argv[0]}: error:") and fragment in err


def test_sample_command_writes_dataset_figure_summary(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["sample", "e_coli_core", "--grid", "glucose=0:6:1.5", "--grid", "oxygen=0:8:2", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    ds = FluxDataset.load(out)
    assert ds.n_points == 25 and ds.model_id == "e_coli_core"
    assert (out / "growth_map.png").stat().st_size > 5000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_points"] == 25 and summary["content_hash"] == ds.content_hash()
    assert sum(summary["status_counts"].values()) == 25
    assert summary["solver_fallbacks"] == {"tie_break_vertex_kept": 0, "growth_fix_loosened": 0}
    assert np.isfinite(ds.growth).all()
    assert "25 points" in capsys.readouterr().out


def test_sample_command_lhs(tmp_path):
    out = tmp_path / "lhs"
    argv = ["sample", "--lhs", "12", "--bounds", "glucose=1:10", "--seed", "2", "--out", str(out), "--no-progress"]
    assert main([*argv, "--no-figure"]) == 0
    ds = FluxDataset.load(out)
    assert ds.n_points == 12 and ds.settings["sampling"]["kind"] == "lhs"
    assert ds.inputs[:, 0].min() >= 1 and ds.inputs[:, 0].max() <= 10 and ds.inputs[:, 1].max() <= 20


def test_help_has_examples():
    parser = build_parser()
    for cmd in ("sample", "pfba"):
        sub = parser._subparsers._group_actions[0].choices[cmd]
        assert "examples:" in sub.format_help()
