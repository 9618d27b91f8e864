"""Small pFBA data and a small trained surrogate, shared by the surrogate tests (module scope for speed)."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.metabolism.models import load_model
from mpc_bio.metabolism.sampling import grid_points, sample_pfba
from mpc_bio.surrogate import SurrogateSettings, train_surrogate

#: Small, fast settings: a 2 x 32 SiLU net on a 1 mmol/gDW/h grid (441 points), ~15 s on one core.
SMALL = SurrogateSettings(hidden=(32, 32), epochs=200, batch_size=32, lr=3e-3, patience=200, lbfgs_steps=500, seed=0, num_threads=1)


def tiny_build_settings(**overrides):
    """BuildSettings of a quarter-minute build: a 2 x 16 net, an 11 x 11 grid, one refinement level,
    at most 4 kink lines, 100 fresh points (``overrides`` replace any of them)."""
    from mpc_bio.surrogate.build import BuildSettings

    base = dict(
        time_budget_min=0.25,
        hidden=(16, 16),
        grid_min_per_axis=11,
        grid_max_per_axis=11,
        refine_depth=1,
        n_fresh_points=100,
        max_kink_lines=4,
    )
    return BuildSettings(**{**base, **overrides})


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


def reference_fluxes(spec, X: np.ndarray) -> np.ndarray:
    """v = out_matrix (y_offset + y_scale MLP(z0)) + in_matrix x + out_bias, unfused, float64, with
    z0 = (x - x_offset) / x_scale, followed by the input warp and kink features when the spec has them.

    An independent numpy forward written from the MLPSpec docstring (SiLU as a (1 + tanh(a/2)) / 2,
    not the library's expit form), the reference for every evaluation path."""
    if spec.activation != "silu":
        raise ValueError(f"reference_fluxes: only silu is written out here; got {spec.activation!r}.")
    h = (X - spec.x_offset) / spec.x_scale
    if spec.warped:  # input warp features, as in MLPSpec's docstring
        h = np.hstack([h, (np.arcsinh(X / spec.warp_knee) - spec.warp_offset) / spec.warp_scale])
    if spec.n_kinks:  # kink bumps softplus(rho u) / rho - softplus(u), written directly (not branch-wise)
        u, rho = X @ spec.kink_matrix.T - spec.kink_bias, spec.kink_ratio
        bump = np.logaddexp(rho * u, 0.0) / rho - np.logaddexp(u, 0.0)
        h = np.hstack([h, bump / spec.kink_scale])
    for i, (W, b) in enumerate(spec.layers):
        h = h @ W.T + b
        if i < len(spec.layers) - 1:
            h = 0.5 * h * (1.0 + np.tanh(0.5 * h))
    y = spec.y_offset + spec.y_scale * h
    return y @ spec.out_matrix.T + X @ spec.in_matrix.T + spec.out_bias
