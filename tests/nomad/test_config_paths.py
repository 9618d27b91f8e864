"""Relative file paths of a [nomad] configuration are read relative to the scenario file, the same
way by ``mpc-bio nomad`` (load_study_settings), ``mpc-bio validate`` and the scenario runner."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

from mpc_bio.nomad.fermentation_data import DEFAULT_FERMENTATION_DATA, load_fermentation_data
from mpc_bio.nomad.screening import batch_target
from mpc_bio.nomad.settings import load_study_settings
from mpc_bio.scenarios.nomad_config import validate_nomad_config
from mpc_bio.scenarios.runner import validate_scenario

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "mpc_bio" / DEFAULT_FERMENTATION_DATA

# the data file beside the scenario: the shipped file with another reference titer
EDITED_TITER = 0.62  # g/L (the shipped file says 0.31)


def _with_data(src: Path, dest: Path, data_key: str) -> Path:
    """Copy scenario ``src`` to ``dest`` with ``fermentation_data = data_key`` in [nomad.screening]."""
    text = src.read_text()
    text, n = re.subn(r"^\[nomad\.screening\]\s*$", f'[nomad.screening]\nfermentation_data = "{data_key}"', text, count=1, flags=re.M)
    assert n == 1
    dest.write_text(text)
    return dest


def _edited_data(dest: Path) -> Path:
    lines = SHIPPED.read_text().splitlines()
    out = [re.sub(r"^trpD9923,product,final,0\.31,", f"trpD9923,product,final,{EDITED_TITER},", line) for line in lines]
    assert out != lines
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(out) + "\n")
    return dest


def test_fermentation_data_relative_to_the_scenario_file(tmp_path, monkeypatch):
    scen_dir = tmp_path / "scenarios"
    data = _edited_data(scen_dir / "data" / "batch.csv")
    cfg = _with_data(ROOT / "scenarios" / "nomad_anthranilate.toml", scen_dir / "cfg.toml", "data/batch.csv")
    # a decoy at the same relative path from the working directory: it must not be read
    decoy = tmp_path / "cwd" / "data" / "batch.csv"
    decoy.parent.mkdir(parents=True)
    shutil.copy(SHIPPED, decoy)
    monkeypatch.chdir(tmp_path / "cwd")

    settings = load_study_settings(cfg)
    assert settings.screening.fermentation_data == str(data.resolve())
    resolved = validate_nomad_config(cfg, tomllib.loads(cfg.read_text()))
    assert resolved["nomad"]["screening"]["fermentation_data"] == str(data.resolve())
    # the number read is the one in the file beside the scenario (exact: rel 0, abs 0)
    read = load_fermentation_data(settings.screening.fermentation_data)
    assert read.final("trpD9923", "product").value == EDITED_TITER
    target = batch_target(settings.screening)
    # g/L -> mM with the settings' molar mass (137.14 g/mol); rel 1e-12, abs 0
    assert abs(target.final_product / (EDITED_TITER / settings.screening.product_molar_mass * 1000.0) - 1.0) <= 1e-12


def test_codesign_scenario_resolves_nested_nomad_paths(tmp_path, monkeypatch):
    data = _edited_data(tmp_path / "scen" / "batch.csv")
    cfg = _with_data(ROOT / "scenarios" / "codesign_anthranilate.toml", tmp_path / "scen" / "codesign.toml", "batch.csv")
    monkeypatch.chdir(tmp_path)
    resolved = validate_scenario(cfg)
    assert resolved["nomad"]["screening"]["fermentation_data"] == str(data.resolve())


def test_absolute_and_missing_paths_are_kept_as_given(tmp_path, monkeypatch):
    cfg = _with_data(ROOT / "scenarios" / "nomad_anthranilate.toml", tmp_path / "a.toml", str(SHIPPED))
    assert load_study_settings(cfg).screening.fermentation_data == str(SHIPPED)
    cfg = _with_data(ROOT / "scenarios" / "nomad_anthranilate.toml", tmp_path / "b.toml", "nowhere/batch.csv")
    monkeypatch.chdir(tmp_path)
    # not beside the scenario: left as written (the reader's error then names it)
    assert load_study_settings(cfg).screening.fermentation_data == "nowhere/batch.csv"
