"""The factored mass-balance map against the dense pseudo-inverse projection, and the module using it.

The reference is written from the definition, independently of the library's construction: with
v = W u and the constraints A v = B x + c0 (A = [S; E; F]), the weighted projection is
u = u_hat - pinv(A W) (A W u_hat - B x - c0), i.e. N = W (I - pinv(A W) A W) W^-1,
G = W pinv(A W) B, c = W pinv(A W) c0 (numpy's pinv on the whole constraint matrix).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mpc_bio.surrogate.network import SurrogateModule
from mpc_bio.surrogate.projection import build_projection, mass_balance_residual


def _dense_reference(S, inputs, fixed, values, w):
    """(N, G, c) of the weighted projection from numpy's pinv of the full constraint matrix."""
    S = S.toarray() if hasattr(S, "toarray") else np.asarray(S, dtype=float)
    m, r = S.shape
    k = len(inputs)
    E = np.eye(r)[inputs]
    F = np.eye(r)[fixed]
    A = np.vstack([S, E, F])
    B = np.vstack([np.zeros((m, k)), -np.eye(k), np.zeros((len(fixed), k))])
    c0 = np.concatenate([np.zeros(m + k), values])
    AW = A * w[None, :]
    P = np.linalg.pinv(AW, rcond=1e-12)
    N = (w[:, None] * (np.eye(r) - P @ AW)) / w[None, :]
    return N, w[:, None] * (P @ B), w * (P @ c0)


def _check(P, ref, X, V):
    N, G, c = ref
    scale = 1.0 + np.abs(N).max()
    # measured on e_coli_core: 2e-13 x scale (N), 4e-14 (G)
    np.testing.assert_allclose(P.left @ P.right, N, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(P.N, N, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(P.G, G, rtol=0, atol=1e-10 * (1.0 + np.abs(G).max()))
    np.testing.assert_allclose(P.c, c, rtol=0, atol=1e-10 * (1.0 + np.abs(c).max()))
    out = V @ N.T + X @ G.T + c
    np.testing.assert_allclose(P.apply(V, X), out, rtol=1e-10, atol=1e-10 * np.abs(out).max())


def test_factored_map_equals_dense_projection_on_e_coli_core(small_dataset):
    ds = small_dataset
    ok = ds.status == 0  # optimal points: the inputs are pinned to -x
    X, V = ds.inputs[ok], ds.fluxes[ok]
    rids = list(ds.reaction_ids)
    inputs = np.array([rids.index(r) for r in ds.input_reactions])
    span = np.ptp(V, axis=0)
    w = np.maximum(span, 1e-3 * span.max())  # the training's metric: ranges, floored
    fixed = np.setdiff1d(np.flatnonzero(span <= 1e-9), inputs)  # blocked (nonzero pins: the random case below)
    values = V[:, fixed].mean(axis=0)
    assert fixed.size > 20
    P = build_projection(ds.stoichiometry, inputs, fixed_indices=fixed, fixed_values=values, weights=w)
    assert P.dim == ds.stoichiometry.shape[1] - P.rank and P.left.shape == (len(rids), P.dim)
    assert P.dim < 15  # e_coli_core with its blocked reactions pinned: 7 free directions of 95
    noisy = V + np.random.default_rng(0).normal(scale=3.0, size=V.shape)
    _check(P, _dense_reference(ds.stoichiometry, inputs, fixed, values, w), X, noisy)
    assert mass_balance_residual(ds.stoichiometry, P.apply(noisy, X)) <= 1e-9


@pytest.mark.parametrize("fix_inputs", [True, False])
def test_factored_map_equals_dense_projection_on_a_random_matrix(fix_inputs):
    rng = np.random.default_rng(3)
    m, r, k = 30, 70, 3
    S = rng.integers(-2, 3, size=(m, r)) * (rng.random((m, r)) < 0.15)
    S[-4:] = rng.integers(-1, 2, size=(4, m - 4)) @ S[: m - 4]  # four dependent rows
    inputs = np.array([0, 5, 9])
    fixed = np.array([11, 17, 23, 40, 41])
    # pinned values consistent with S v = 0: those of a random vector of the null space
    _, s, Vt = np.linalg.svd(S.astype(float))
    v0 = Vt[int(np.sum(s > 1e-10 * s[0])) :].T @ rng.normal(size=r - int(np.sum(s > 1e-10 * s[0])))
    values = v0[fixed]
    w = rng.uniform(0.1, 10.0, size=r)
    P = build_projection(S, inputs, fix_inputs=fix_inputs, fixed_indices=fixed, fixed_values=values, weights=w)
    ref = _dense_reference(S, inputs if fix_inputs else np.zeros(0, dtype=int), fixed, values, w)
    if not fix_inputs:
        ref = (ref[0], np.zeros((r, k)), ref[2])
    X = rng.uniform(0.0, 5.0, size=(50, k))
    V = rng.normal(scale=4.0, size=(50, r))
    _check(P, ref, X, V)
    out = P.apply(V, X)
    assert mass_balance_residual(S, out) <= 1e-10
    np.testing.assert_allclose(out[:, fixed], np.broadcast_to(values, (50, fixed.size)), rtol=0, atol=1e-12)
    if fix_inputs:
        np.testing.assert_allclose(out[:, inputs], -X, rtol=0, atol=1e-12)
    assert P.rank == np.linalg.matrix_rank(np.vstack([S, np.eye(r)[inputs if fix_inputs else []], np.eye(r)[fixed]]))


def test_overlapping_pins_raise():
    S = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]])
    with pytest.raises(ValueError, match="distinct"):
        build_projection(S, [0], fixed_indices=[0], fixed_values=[1.0])
    with pytest.raises(ValueError, match="column indices"):
        build_projection(S, [3])


def _module(rng, n_raw, r, k, with_factors):
    mod = SurrogateModule(k, (16, 16), n_raw, r, "silu").double()
    L, R = rng.normal(size=(r, 4)), rng.normal(size=(4, n_raw))
    with torch.no_grad():
        mod.y_offset.copy_(torch.as_tensor(rng.normal(size=n_raw)))
        mod.y_scale.copy_(torch.as_tensor(rng.uniform(0.5, 2.0, size=n_raw)))
        mod.out_matrix.copy_(torch.as_tensor(L @ R))
        mod.in_matrix.copy_(torch.as_tensor(rng.normal(size=(r, k))))
        mod.out_bias.copy_(torch.as_tensor(rng.normal(size=r)))
    if with_factors:
        mod.set_output_factors(L, R)
    return mod


@pytest.mark.parametrize("n_raw_factor", [1, 2])  # net target (m = r) and split (m = 2 r)
def test_module_with_output_factors_equals_dense(n_raw_factor):
    """Same function and the same gradients (float64) through the factored map as through out_matrix."""
    r, k = 40, 2
    n_raw = n_raw_factor * r
    dense = _module(np.random.default_rng(5), n_raw, r, k, False)
    fact = _module(np.random.default_rng(5), n_raw, r, k, True)
    fact.load_state_dict({**dense.state_dict(), "out_left": fact.out_left, "out_right": fact.out_right})
    x = torch.as_tensor(np.random.default_rng(6).uniform(0.0, 10.0, size=(64, k)))
    target = torch.as_tensor(np.random.default_rng(7).normal(size=(64, r)))
    grads = []
    for mod in (dense, fact):
        mod.zero_grad()
        v = mod(x)
        ((v - target) ** 2).mean().backward()
        grads.append([p.grad.clone() for p in mod.core.parameters()])
        v2, y = mod.fluxes_and_raw_outputs(x)
        np.testing.assert_allclose(v2.detach().numpy(), v.detach().numpy(), rtol=1e-12, atol=1e-12 * float(v.detach().abs().max()))
        np.testing.assert_allclose(y.detach().numpy(), mod.raw_outputs(x).detach().numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(
        fact(x).detach().numpy(), dense(x).detach().numpy(), rtol=1e-12, atol=1e-12 * float(dense(x).detach().abs().max())
    )
    for gd, gf in zip(*grads):
        np.testing.assert_allclose(gf.numpy(), gd.numpy(), rtol=1e-10, atol=1e-12 * float(gd.abs().max()))
    # the factors are not part of the spec: to_spec keeps out_matrix, so artifacts are unchanged
    spec = fact.to_spec()
    np.testing.assert_array_equal(spec.out_matrix, dense.to_spec().out_matrix)
    fact.set_output_factors(None)
    assert fact.out_left is None and "out_left" not in fact.state_dict()
    with pytest.raises(ValueError, match="factors"):
        fact.set_output_factors(np.zeros((r, 3)), np.zeros((4, n_raw)))


@pytest.mark.parametrize("split", [False, True])
def test_module_conversion_map_equals_dense(split):
    """Without the mass-balance layer the final map is I or [I, -I]: applied without the multiply, bit for bit."""
    r, k = 30, 2
    rng = np.random.default_rng(8)
    n_raw = 2 * r if split else r
    mod = SurrogateModule(k, (16,), n_raw, r, "silu").double()
    eye = np.eye(r)
    with torch.no_grad():
        mod.y_scale.copy_(torch.as_tensor(rng.uniform(0.5, 2.0, size=n_raw)))
        mod.out_matrix.copy_(torch.as_tensor(np.hstack([eye, -eye]) if split else eye))
    x = torch.as_tensor(rng.uniform(0.0, 10.0, size=(20, k)))
    with torch.no_grad():
        dense = mod(x)
        mod.set_output_conversion()
        conv = mod(x)
    assert mod.out_conversion
    np.testing.assert_allclose(conv.numpy(), dense.numpy(), rtol=0, atol=0)
    mod.set_output_factors(None)
    assert not mod.out_conversion
    with torch.no_grad():
        mod.out_matrix[0, 1] = 0.5
    with pytest.raises(ValueError, match="identity"):
        mod.set_output_conversion()


@pytest.mark.parametrize("split", [False, True])
def test_spec_output_factors_of_the_conversion_map(split):
    """Without the mass-balance layer the spec's factors are N = I, M = out_matrix (no SVD), and it evaluates as the module."""
    r, k = 25, 2
    rng = np.random.default_rng(9)
    n_raw = 2 * r if split else r
    mod = SurrogateModule(k, (8, 8), n_raw, r, "silu").double()
    eye = np.eye(r)
    with torch.no_grad():
        mod.out_matrix.copy_(torch.as_tensor(np.hstack([eye, -eye]) if split else eye))
    spec = mod.to_spec()
    N, M = spec.output_factors
    np.testing.assert_array_equal(N, eye)
    np.testing.assert_array_equal(M, spec.out_matrix)
    assert spec.output_rank == r and not spec.factorised
    x = rng.uniform(0.0, 10.0, size=(30, k))
    with torch.no_grad():
        ref = mod(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(spec.evaluate(x), ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
