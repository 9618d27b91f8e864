"""Tiny kinetic ensemble shared by the co-design tests (built once per session, ~5 s)."""

from __future__ import annotations

import pytest

TINY_NOMAD = {
    "network": {
        "model": "anthranilate",
        "product_reaction": "ANTHt",
        "substrate_reaction": "GLCpts",
        "knockouts": ["ANPRT"],
        "uptake_bounds": {"EX_glc__D_e": 10.0},
        "growth_fraction": 0.9,
        "product_fraction": 0.3,
    },
    "steady_state": {"fixed_concentrations": {"glc__D_e": 20.0, "o2_e": 0.2, "co2_e": 0.5}, "n_states": 2},
    "sampling": {"n_models": 40, "seed": 0},
    "screening": {"n_perturbations": 1, "n_robustness": 2, "seed": 1},
    "executor": {"n_workers": 1, "chunk_size": 50, "progress": False},
}


@pytest.fixture(scope="session")
def tiny_ensemble(tmp_path_factory):
    """(ensemble, control, key, source) of a 40-model screened ensemble, cached in a temp dir."""
    from mpc_bio.codesign import load_or_run_ensemble
    from mpc_bio.nomad.settings import EnsembleStudySettings

    settings = EnsembleStudySettings.from_dict({**TINY_NOMAD, "output_dir": str(tmp_path_factory.mktemp("none"))})
    return load_or_run_ensemble(settings, tmp_path_factory.mktemp("cache"), reuse_nomad_output=False)
