"""Factorised last layer and mixed precision of the fused evaluation (MLPSpec.evaluate, FusedForward).

References are built here from the spec's raw arrays (scalings, layers, out_matrix, in_matrix,
out_bias; silu written as h (1 + tanh(h / 2)) / 2), never from the fused maps under test.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mpc_bio.surrogate import SurrogateModule, default_surrogate, mass_balance_residual
from mpc_bio.surrogate.network import FACTOR_RTOL, FusedForward, MLPSpec

from .conftest import reference_fluxes

#: Range floor (mmol/gDW/h) below which a reaction's deviation is judged absolutely, as in compute_metrics.
RANGE_FLOOR = 1e-3


def run(module: FusedForward, X: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return module(torch.as_tensor(X)).double().numpy()


@pytest.fixture(scope="module")
def shipped():
    return default_surrogate()


@pytest.fixture(scope="module")
def points(shipped):
    """2000 uniform random points of the training box (two blocks of FusedForward) plus its corners."""
    rng = np.random.default_rng(7)
    lo, hi = shipped.domain_low, shipped.domain_high
    corners = np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], lo[1]], [hi[0], hi[1]]])
    return np.vstack([corners, rng.uniform(lo, hi, size=(1996, lo.size))])


# ---------------------------------------------------------------- shipped surrogate, float64


def test_shipped_output_factors(shipped):
    spec = shipped.spec()
    N, M = spec.output_factors
    r = spec.n_outputs
    # out_matrix is the projector onto {S v = 0, pinned reactions fixed}: its rank is r minus the
    # rank of the constraints recorded at training time (e_coli_core: 95 - 85 = 10, or 95 - 86 = 9
    # when one more reaction is constant over the training data).
    assert spec.output_rank == r - shipped.info["projection_rank"] <= 10
    assert spec.factorised
    np.testing.assert_allclose(N.T @ N, np.eye(N.shape[1]), rtol=0, atol=1e-13)
    np.testing.assert_allclose(N @ M, spec.out_matrix, rtol=0, atol=1e-13)
    # the dropped singular values are round-off, far below the cut
    s = np.linalg.svd(spec.out_matrix, compute_uv=False)
    assert s[spec.output_rank] <= 1e-13 * s[0] < FACTOR_RTOL * s[0] < s[spec.output_rank - 1]
    # range(N) lies in the null space of S
    assert np.max(np.abs(shipped.stoichiometry @ N)) <= 1e-13


def test_shipped_factorised_float64_equals_reference(shipped, points):
    spec, S = shipped.spec(), shipped.stoichiometry
    ref = reference_fluxes(spec, points)
    atol = 1e-12 * np.max(np.abs(ref))  # 1e-12 relative to the largest flux, rtol 0
    batch = spec.evaluate(points)
    np.testing.assert_allclose(batch, ref, rtol=0, atol=atol)
    for x, v in zip(points[:20], ref[:20]):
        np.testing.assert_allclose(spec.evaluate(x), v, rtol=0, atol=atol)
    fac = run(FusedForward(spec, "float64"), points)
    unfac = run(FusedForward(spec, "float64", factorise=False), points)
    assert FusedForward(spec, "float64").factorised and not FusedForward(spec, factorise=False).factorised
    np.testing.assert_allclose(fac, ref, rtol=0, atol=atol)
    np.testing.assert_allclose(fac, unfac, rtol=0, atol=atol)  # the old fused output
    np.testing.assert_allclose(shipped.predict(points, check_domain=False), fac, rtol=0, atol=0)
    # mass balance as before the factorisation (both measured 1.6e-12 mmol/gDW/h; issue target 1e-9)
    for v in (batch, fac, unfac):
        assert mass_balance_residual(S, v) <= 1e-11


# ---------------------------------------------------------------- shipped surrogate, mixed precision


def test_shipped_mixed_precision(shipped, points):
    S = shipped.stoichiometry
    v64 = run(shipped.fused("float64"), points)
    frange = np.maximum(np.ptp(v64, axis=0), RANGE_FLOOR)
    mixed = shipped.fused("mixed")
    with torch.inference_mode():
        out = mixed(torch.as_tensor(points))
    assert out.dtype == torch.float64 and mixed.WT0.dtype == torch.float32 and mixed.WT1.dtype == torch.float32
    vm = out.numpy()
    assert mass_balance_residual(S, vm) <= 1e-10  # measured 1.6e-12, as float64
    # deviation from float64 per reaction, as a fraction of its range: measured 7e-6 (NADTRHD, near glucose = 0;
    # 1.6e-5 with the map to z in float32 as well, which is why that map is float64)
    assert np.max(np.abs(vm - v64) / frange) <= 1e-5
    np.testing.assert_allclose(shipped.predict(points, check_domain=False, precision="mixed"), vm, rtol=0, atol=0)
    # all-float32 for contrast: the mass balance is lost (measured 3e-5), so the check above discriminates
    v32 = run(shipped.fused("float32"), points.astype(np.float32))
    assert mass_balance_residual(S, v32) > 1e-8
    assert np.max(np.abs(v32 - v64) / frange) <= 1e-4


def test_precision_argument(shipped):
    assert shipped.fused(torch.float64) is shipped.fused("float64")
    assert shipped.fused(torch.float32) is shipped.fused("float32")
    with pytest.raises(ValueError, match="'precision' parameter"):
        shipped.fused("half")
    with pytest.raises(ValueError, match="'precision' parameter"):
        shipped.predict(np.ones((3, 2)), precision="bfloat16")
    with pytest.raises(ValueError, match="'precision' parameter"):
        FusedForward(shipped.spec(), torch.float16)


# ---------------------------------------------------------------- without the mass-balance layer


@pytest.mark.parametrize("target", ["net", "split"])
def test_surrogate_without_mass_balance(shipped, points, target):
    """A random 2 x 16 surrogate with out_matrix = I (net) or [I, -I] (split): full rank, not factorised."""
    k, r = shipped.n_inputs, len(shipped.reaction_ids)
    C = np.eye(r) if target == "net" else np.hstack([np.eye(r), -np.eye(r)])
    torch.manual_seed(3)
    mod = SurrogateModule(k, (16, 16), C.shape[1], r, "silu").double()
    rng = np.random.default_rng(3)
    with torch.no_grad():
        mod.x_offset.copy_(torch.as_tensor((shipped.domain_low + shipped.domain_high) / 2))
        mod.x_scale.copy_(torch.as_tensor((shipped.domain_high - shipped.domain_low) / 2))
        mod.y_offset.copy_(torch.as_tensor(rng.normal(size=C.shape[1])))
        mod.y_scale.copy_(torch.as_tensor(rng.uniform(0.1, 5.0, size=C.shape[1])))
        mod.out_matrix.copy_(torch.as_tensor(C))
    spec = mod.to_spec()
    sur = dataclasses.replace(shipped, mlp=spec, settings=dataclasses.replace(shipped.settings, mass_balance=False, target=target))
    assert spec.output_rank == r and not spec.factorised
    ref = reference_fluxes(spec, points)
    scale = np.max(np.abs(ref))
    np.testing.assert_allclose(sur.predict(points, check_domain=False), ref, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(spec.evaluate(points[0]), ref[0], rtol=0, atol=1e-12 * scale)
    for precision in ("mixed", "float32"):
        v = sur.predict(points, check_domain=False, precision=precision)
        np.testing.assert_allclose(v, ref, rtol=0, atol=1e-5 * scale)  # float32 round-off (~1e-7 relative)
    # forcing the factorisation (d = r) gives the same map
    np.testing.assert_allclose(run(sur.fused(factorise=True), points), ref, rtol=0, atol=1e-12 * scale)


# ---------------------------------------------------------------- synthetic low-rank map with an input term


@pytest.mark.parametrize("target", ["net", "split"])
def test_synthetic_factorised_with_input_term(target):
    """Projector onto null(S) (dimension 3 of 12) with nonzero in_matrix and out_bias in that null space."""
    rng = np.random.default_rng(5)
    r, k, H, n_met = 12, 2, 16, 9
    S = rng.normal(size=(n_met, r))
    Q = np.linalg.svd(S)[2][n_met:].T  # (r, 3) orthonormal basis of null(S)
    P = Q @ Q.T
    C = np.eye(r) if target == "net" else np.hstack([np.eye(r), -np.eye(r)])
    m = C.shape[1]
    spec = MLPSpec(
        x_offset=np.array([1.0, -2.0]),
        x_scale=np.array([3.0, 0.5]),
        layers=(
            (rng.normal(size=(H, k)), rng.normal(size=H)),
            (rng.normal(size=(H, H)) / 4, rng.normal(size=H)),
            (rng.normal(size=(m, H)), rng.normal(size=m)),
        ),
        activation="silu",
        y_offset=rng.normal(size=m),
        y_scale=rng.uniform(0.5, 2.0, size=m),
        out_matrix=P @ C,
        in_matrix=Q @ rng.normal(size=(3, k)),
        out_bias=Q @ rng.normal(size=3),
    )
    assert spec.output_rank == r - np.linalg.matrix_rank(S) == 3 and spec.factorised
    X = rng.uniform(-5.0, 5.0, size=(1500, k))
    ref = reference_fluxes(spec, X)
    scale = np.max(np.abs(ref))
    assert mass_balance_residual(S, ref) <= 1e-12 * scale  # the reference itself balances
    np.testing.assert_allclose(spec.evaluate(X), ref, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(spec.evaluate(X[3]), ref[3], rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(run(FusedForward(spec, "float64"), X), ref, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(run(FusedForward(spec, factorise=False), X), ref, rtol=0, atol=1e-12 * scale)
    vm = run(FusedForward(spec, "mixed"), X)
    assert FusedForward(spec, "mixed").GT is not None  # the input term is evaluated
    assert mass_balance_residual(S, vm) <= 1e-12 * scale
    np.testing.assert_allclose(vm, ref, rtol=0, atol=1e-5 * scale)
    v32 = run(FusedForward(spec, "float32"), X.astype(np.float32))
    np.testing.assert_allclose(v32, ref, rtol=0, atol=1e-5 * scale)


# ---------------------------------------------------------------- independent sub-networks (a merged branch)


def test_hidden_blocks_evaluated_apart():
    """A net whose hidden layers are two sub-networks side by side (block diagonal after the first
    layer, as a merged ``freeze_init`` branch) plus one neuron cut off in the middle layer: the blocks
    are found (the cut-off neuron joins the larger one), and the numpy evaluation over them equals the
    independent dense reference (1e-12 of the largest flux, rel 0), one point and many. One non-zero
    weight between the sub-networks makes them one block again (same values)."""
    from scipy.linalg import block_diag

    from mpc_bio.surrogate.network import hidden_blocks

    rng = np.random.default_rng(11)
    k, r, a, b = 2, 7, (6, 5, 4), (3, 3, 2)  # widths of the two sub-networks per hidden layer
    widths = [p + q for p, q in zip(a, b)]
    layers = [(rng.normal(size=(widths[0], k)), rng.normal(size=widths[0]))]
    for i in (1, 2):
        W = block_diag(rng.normal(size=(a[i], a[i - 1])), rng.normal(size=(b[i], b[i - 1])))
        layers.append((W, rng.normal(size=widths[i])))
    layers.append((rng.normal(size=(r, widths[-1])), rng.normal(size=r)))
    cut = 2  # neuron 2 of the middle layer: nothing in, nothing out
    layers[1][0][cut] = 0.0
    layers[2][0][:, cut] = 0.0
    spec = MLPSpec(
        x_offset=np.array([0.5, -1.0]),
        x_scale=np.array([2.0, 3.0]),
        layers=tuple(layers),
        activation="silu",
        y_offset=rng.normal(size=r),
        y_scale=rng.uniform(0.5, 2.0, size=r),
        out_matrix=np.eye(r),
        in_matrix=np.zeros((r, k)),
        out_bias=np.zeros(r),
    )
    blocks = hidden_blocks(spec.layers)
    assert [[list(i) for i in blk] for blk in blocks] == [
        [[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4], [0, 1, 2, 3]],
        [[6, 7, 8], [5, 6, 7], [4, 5]],
    ]
    assert spec.fused_maps().chains is not None
    X = rng.uniform(-4.0, 4.0, size=(300, k))
    ref = reference_fluxes(spec, X)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(spec.evaluate(X), ref, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(spec.evaluate(X[5]), ref[5], rtol=0, atol=1e-12 * scale)

    joined = [(W.copy(), bias) for W, bias in layers]
    joined[3 - 1][0][0, a[1]] = 1e-3  # layer 2, neuron 0 (first block) reads neuron a[1] of layer 1 (second block)
    one = dataclasses.replace(spec, layers=tuple(joined))
    assert hidden_blocks(one.layers) is None and one.fused_maps().chains is None
    np.testing.assert_allclose(one.evaluate(X), reference_fluxes(one, X), rtol=0, atol=1e-12 * scale)
