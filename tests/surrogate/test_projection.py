"""The mass-balance layer against independent checks: balanced vectors stay, residuals vanish."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.surrogate.projection import build_projection, mass_balance_residual


def _setup(ds):
    idx = [ds.reaction_ids.index(r) for r in ds.input_reactions]
    ok = ds.status == 0  # optimal points: v[inputs] = -x holds exactly
    return idx, ds.inputs[ok], ds.fluxes[ok]


@pytest.mark.parametrize("weighted", [False, True])
def test_projection_leaves_balanced_fluxes_unchanged(small_dataset, weighted):
    idx, X, V = _setup(small_dataset)
    w = np.maximum(np.ptp(V, axis=0), 0.1 * np.ptp(V, axis=0).max()) if weighted else None
    P = build_projection(small_dataset.stoichiometry, idx, weights=w)
    # pFBA fluxes satisfy S v = 0 and v[inputs] = -x up to HiGHS's feasibility tolerance (1e-7):
    # the projection moves them by no more than that.
    res = mass_balance_residual(small_dataset.stoichiometry, V)
    assert res <= 1e-6
    np.testing.assert_allclose(P.apply(V, X), V, rtol=0, atol=1e-5)
    # an exactly balanced vector (a balanced pFBA vector rounded onto the set once) is left unchanged
    balanced = P.apply(V, X)
    assert mass_balance_residual(small_dataset.stoichiometry, balanced) <= 1e-9
    np.testing.assert_allclose(P.apply(balanced, X), balanced, rtol=0, atol=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
def test_projection_balances_arbitrary_vectors(small_dataset, weighted):
    idx, X, V = _setup(small_dataset)
    w = np.maximum(np.ptp(V, axis=0), 0.1 * np.ptp(V, axis=0).max()) if weighted else None
    P = build_projection(small_dataset.stoichiometry, idx, weights=w)
    rng = np.random.default_rng(0)
    noisy = V + rng.normal(scale=5.0, size=V.shape)
    assert mass_balance_residual(small_dataset.stoichiometry, noisy) > 1.0
    out = P.apply(noisy, X)
    assert mass_balance_residual(small_dataset.stoichiometry, out) <= 1e-9
    np.testing.assert_allclose(out[:, idx], -X, rtol=0, atol=1e-9)
    # idempotent: projecting twice changes nothing
    np.testing.assert_allclose(P.apply(out, X), out, rtol=0, atol=1e-9)


def test_euclidean_projection_is_closest_point(small_dataset):
    """Without weights the correction is orthogonal: it never increases the distance to a balanced vector."""
    idx, X, V = _setup(small_dataset)
    P = build_projection(small_dataset.stoichiometry, idx)
    V = P.apply(V, X)  # exactly balanced (pFBA data are balanced to the LP tolerance only)
    rng = np.random.default_rng(1)
    noisy = V + rng.normal(size=V.shape)
    out = P.apply(noisy, X)
    d_before = np.linalg.norm(noisy - V, axis=1)
    d_after = np.linalg.norm(out - V, axis=1)
    assert np.all(d_after <= d_before + 1e-12)
    # the correction is orthogonal to (out - V), which lies in the null space of the constraints
    dots = np.einsum("ij,ij->i", noisy - out, out - V)
    np.testing.assert_allclose(dots, 0.0, rtol=0, atol=1e-9)


def test_pinned_reactions_and_free_inputs(small_dataset):
    idx, X, V = _setup(small_dataset)
    zero = [j for j in range(V.shape[1]) if np.all(V[:, j] == 0.0)]
    assert zero, "e_coli_core has reactions that carry no flux anywhere on the grid"
    P = build_projection(small_dataset.stoichiometry, idx, fix_inputs=False, fixed_indices=zero, fixed_values=np.zeros(len(zero)))
    noisy = V + np.random.default_rng(2).normal(size=V.shape)
    out = P.apply(noisy, X)
    assert mass_balance_residual(small_dataset.stoichiometry, out) <= 1e-9
    np.testing.assert_allclose(out[:, zero], 0.0, rtol=0, atol=1e-10)
    assert np.all(P.G == 0.0)


def test_bad_weights_raise(small_dataset):
    with pytest.raises(ValueError, match="weights"):
        build_projection(small_dataset.stoichiometry, [0], weights=np.zeros(len(small_dataset.reaction_ids)))
