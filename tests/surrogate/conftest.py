"""Small pFBA data and a small trained surrogate, shared by the surrogate tests (module scope for speed)."""

from __future__ import annotations

import pytest

from mpc_bio.metabolism.models import load_model
from mpc_bio.metabolism.sampling import grid_points, sample_pfba
from mpc_bio.surrogate import SurrogateSettings, train_surrogate

#: Small, fast settings: a 2 x 32 SiLU net on a 1 mmol/gDW/h grid (441 points), ~15 s on one core.
SMALL = SurrogateSettings(
    hidden=(32, 32), epochs=200, batch_size=32, lr=3e-3, patience=200, lbfgs_steps=500, seed=0, num_threads=1
)


@pytest.fixture(scope="session")
def small_settings() -> SurrogateSettings:
    """The settings of :func:`small_surrogate`."""
    return SMALL


@pytest.fixture(scope="session")
def small_dataset():
    """pFBA of e_coli_core on glucose x oxygen 0-20 step 1 (441 points, relaxed region included)."""
    model = load_model("e_coli_core")
    return sample_pfba(model, grid_points({"glucose": (0, 20, 1.0), "oxygen": (0, 20, 1.0)}), progress=False)


@pytest.fixture(scope="session")
def small_surrogate(small_dataset):
    """A small surrogate trained on :func:`small_dataset` (about half a minute on one core)."""
    return train_surrogate(small_dataset, SMALL, progress=False)
