"""Fixtures of the process tests: the e_coli_core surrogate (shipped, or trained here if absent)."""

from __future__ import annotations

import numpy as np
import pytest


def _train_small_surrogate():
    """A small e_coli_core surrogate (relaxed pFBA on a 0.5 mmol/gDW/h grid, 2 x 32 SiLU)."""
    from mpc_bio.metabolism.models import load_model
    from mpc_bio.metabolism.sampling import grid_points, sample_pfba
    from mpc_bio.surrogate import SurrogateSettings, train_surrogate

    pts = grid_points({"glucose": (0.0, 20.0, 0.5), "oxygen": (0.0, 20.0, 0.5)})
    ds = sample_pfba(load_model("e_coli_core"), pts, progress=False)
    return train_surrogate(ds, SurrogateSettings(hidden=(32, 32), epochs=1500, seed=0, num_threads=2), progress=False)


@pytest.fixture(scope="session")
def ecoli_surrogate():
    """The shipped default surrogate, or (until it ships) one trained on the spot."""
    from mpc_bio.surrogate import ArtifactError, default_surrogate

    import os
    import tempfile
    from pathlib import Path

    from mpc_bio.surrogate import load_surrogate

    try:
        return default_surrogate()
    except ArtifactError:
        pass
    # cache outside the repository so that repeated test runs train once
    root = os.environ.get("MPC_BIO_CACHE") or os.path.join(tempfile.gettempdir(), "mpc_bio_cache")
    cache = Path(root) / "surrogates" / "tests_e_coli_core_32x32_v1"
    if (cache / "surrogate.json").is_file():
        return load_surrogate(cache)
    sur = _train_small_surrogate()
    sur.save(cache)
    return sur


def growth_error(sur) -> float:
    """Max abs growth error (1/h) of the surrogate on its held-out validation points."""
    m = sur.metrics
    for key in ("test", "validation", "train"):
        if isinstance(m.get(key), dict) and "growth_max_abs_err" in m[key]:
            return float(m[key]["growth_max_abs_err"])
    raise KeyError("the surrogate has no growth_max_abs_err metric")


@pytest.fixture(scope="session")
def fig3_settings():
    from mpc_bio.process import FedBatchSettings

    return FedBatchSettings()


@pytest.fixture(scope="session")
def fig3_cell(ecoli_surrogate, fig3_settings):
    from mpc_bio.process import embed_cell_model

    return embed_cell_model(ecoli_surrogate, fig3_settings)


def carbon_numbers(model, ids):
    """Carbon atoms of the single metabolite of each exchange reaction id."""
    out = []
    for rid in ids:
        (met,) = model.reactions.get_by_id(rid).metabolites
        out.append(met.elements.get("C", 0))
    return np.array(out, dtype=float)
