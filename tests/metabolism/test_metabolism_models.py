"""Model loading: the shipped iCH360 model and its Gibbs-energy estimates, and $MPC_BIO_ICH360."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from mpc_bio.metabolism import ICH360_DIR, ModelLoadError, find_ich360, ich360_gibbs_energy_files, load_model
from mpc_bio.metabolism.models import model_hash


def test_ich360_ships_with_the_package_and_its_licence():
    assert find_ich360().parent == ICH360_DIR
    for name in ("Escherichia_coli_iCH360.json", "LICENSE", "CITATION.md", "drg0_prime_mean.csv", "drg0_cov_sqrt.csv"):
        assert (ICH360_DIR / name).is_file(), name
    assert "MIT License" in (ICH360_DIR / "LICENSE").read_text()
    assert "Corrao" in (ICH360_DIR / "CITATION.md").read_text()


def test_load_ich360_by_name(ich360):
    """The paper's model as the data README states it: 349 reactions, 304 metabolites, objective
    Biomass; COBRApy's own pFBA at glucose = oxygen = 10 mmol/gDW/h gives growth 0.5285 1/h."""
    import cobra

    model = load_model("iCH360")
    assert model_hash(model) == model_hash(ich360)
    assert (len(model.reactions), len(model.metabolites)) == (349, 304)
    model.reactions.EX_glc__D_e.bounds = (-10.0, -10.0)
    model.reactions.EX_o2_e.bounds = (-10.0, -10.0)
    sol = cobra.flux_analysis.pfba(model)
    assert sol.fluxes["Biomass"] == pytest.approx(0.5285, abs=1e-4, rel=0)
    assert load_model("ich360").id == model.id  # any case


def test_gibbs_energy_estimates_cover_the_model():
    """Mean (kJ/mol) and covariance square root cover the same reactions, all of them model reactions."""
    mean_csv, cov_csv = ich360_gibbs_energy_files()
    mean = pd.read_csv(mean_csv, index_col=0).iloc[:, 0]
    q = pd.read_csv(cov_csv, index_col=0)
    assert set(q.index) == set(mean.index)
    assert set(mean.index) <= {r.id for r in load_model("iCH360").reactions}
    assert np.isfinite(mean.to_numpy()).all() and np.isfinite(q.to_numpy()).all()


def test_environment_variable_points_at_another_copy(tmp_path, monkeypatch):
    copy = tmp_path / "ich"
    shutil.copytree(ICH360_DIR, copy)
    monkeypatch.setenv("MPC_BIO_ICH360", str(copy))
    assert find_ich360() == copy / "Escherichia_coli_iCH360.json"
    assert ich360_gibbs_energy_files()[0].parent == copy
    monkeypatch.setenv("MPC_BIO_ICH360", str(tmp_path / "absent"))
    with pytest.raises(ModelLoadError, match="MPC_BIO_ICH360"):
        load_model("iCH360")
