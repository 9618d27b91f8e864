"""The batched torch evaluation (values, Jacobians, Hessians) against torch autograd and the native CasADi graph.

References: torch autograd on the surrogate's own module (float64, point by point) and the native
CasADi graph with CasADi's algorithmic differentiation (:mod:`mpc_bio.embed.native`).
"""

from __future__ import annotations

import casadi as ca
import numpy as np
import pytest
import torch

from mpc_bio.embed import native_function, select_outputs
from mpc_bio.embed.batched import (
    BatchedNetwork,
    batched_casadi_function,
    network_curvature_function,
    network_taylor_function,
    torch_threads,
)
from tests.embed.conftest import random_surrogate

OUTS = ["Biomass_Ecoli_core", "EX_glc__D_e", "EX_o2_e", "EX_ac_e"]


@pytest.fixture(scope="module")
def ecoli():
    from mpc_bio.surrogate import default_surrogate

    return default_surrogate()


def _points(n=12, seed=0, lo=0.5, hi=19.5):
    return np.random.default_rng(seed).uniform(lo, hi, (n, 2))


def _autograd(module, rows, Q):
    """Values, Jacobians and Hessians of the selected outputs by torch autograd, one point at a time."""
    rows_t = torch.as_tensor(list(rows))

    def f(x):
        return module(x[None, :])[0].index_select(0, rows_t)

    vals, jacs, hess = [], [], []
    for q in Q:
        x = torch.as_tensor(q, dtype=torch.float64)
        vals.append(f(x).detach().numpy())
        jacs.append(torch.autograd.functional.jacobian(f, x).numpy())
        hess.append(np.stack([torch.autograd.functional.hessian(lambda z, i=i: f(z)[i], x).numpy() for i in range(len(rows))]))
    return np.array(vals), np.array(jacs), np.array(hess)


def test_shipped_e_coli_core_matches_autograd_and_native_graph(ecoli):
    net = BatchedNetwork(ecoli, OUTS, device="cpu")
    Q = _points()
    c = net.taylor(Q, order=2)
    _, rows = select_outputs(ecoli, OUTS)
    v, J, H = _autograd(ecoli.module.double(), rows, Q)
    # same float64 arithmetic up to summation order: 1e-12 relative on O(1-20) numbers
    np.testing.assert_allclose(c.values, v, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(c.jacobians, J, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(c.hessians, H, rtol=1e-8, atol=1e-10)
    f = native_function(ecoli.spec(), rows, symbolic="SX")
    x = ca.SX.sym("x", 2)
    jf = ca.Function("j", [x], [ca.jacobian(f(x), x)])
    np.testing.assert_allclose(c.values, np.array([np.asarray(f(q)).ravel() for q in Q]), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(c.jacobians, np.array([np.asarray(jf(q)) for q in Q]), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(net.values(Q), c.values, rtol=0, atol=1e-13)


@pytest.mark.parametrize("activation", ["silu", "tanh", "softplus"])
def test_random_net_with_warp_and_kinks_matches_autograd(activation):
    sur = random_surrogate(hidden=(24, 16), activation=activation, n_out=5, seed=3, warp=True, kinks=4)
    rows = (0, 2, 4)
    net = BatchedNetwork(sur, [sur.reaction_ids[i] for i in rows], device="cpu")
    Q = _points(10, seed=1, lo=1.0, hi=19.0)
    c = net.taylor(Q, order=2)
    v, J, H = _autograd(sur.module.double(), rows, Q)
    scale = 1.0 + np.abs(v).max()
    np.testing.assert_allclose(c.values, v, rtol=1e-10, atol=1e-11 * scale)
    np.testing.assert_allclose(c.jacobians, J, rtol=1e-9, atol=1e-10 * scale)
    np.testing.assert_allclose(c.hessians, H, rtol=1e-8, atol=1e-9 * scale)
    c1 = net.taylor(Q, order=1)
    assert c1.hessians is None
    np.testing.assert_allclose(c1.jacobians, c.jacobians, rtol=0, atol=1e-13 * scale)


def test_taylor_model_error_shrinks_with_its_order(ecoli):
    """First-order models err O(d^2), second-order O(d^3): halving the offset divides by ~4 and ~8."""
    net = BatchedNetwork(ecoli, OUTS, device="cpu")
    Q = _points(6, seed=2, lo=4.0, hi=16.0)
    c2 = net.taylor(Q, order=2)
    c1 = net.taylor(Q, order=1)
    step = np.array([0.02, -0.015])
    err = {}
    for h in (1.0, 0.5):
        exact = net.values(Q + h * step)
        err[1, h] = np.abs(c1.predict(Q + h * step) - exact).max()
        err[2, h] = np.abs(c2.predict(Q + h * step) - exact).max()
    assert err[1, 1.0] / err[1, 0.5] == pytest.approx(4.0, rel=0.15, abs=0)
    assert err[2, 1.0] / err[2, 0.5] == pytest.approx(8.0, rel=0.25, abs=0)
    np.testing.assert_allclose(c2.predict(Q), c2.values, rtol=0, atol=0)


def test_batched_casadi_function_derivatives_match_native_graph(ecoli):
    net = BatchedNetwork(ecoli, OUTS, device="cpu")
    n = 8
    F = batched_casadi_function(net, n)
    Q = _points(n, seed=4).T  # (k, n)
    lam = np.random.default_rng(5).normal(size=(len(OUTS), n))
    Qs = ca.MX.sym("Q", 2, n)
    L = ca.sum1(ca.sum2(lam * F(Qs)))
    H, g = ca.hessian(L, Qs)
    fun = ca.Function("f", [Qs], [F(Qs), ca.jacobian(ca.vec(F(Qs)), ca.vec(Qs)), H])
    V, J, Hn = (np.asarray(a) for a in fun(Q))
    _, rows = select_outputs(ecoli, OUTS)
    nat = native_function(ecoli.spec(), rows, symbolic="SX")
    Xs = ca.SX.sym("X", 2, n)
    Vs = ca.horzcat(*[nat(Xs[:, p]) for p in range(n)])
    Ls = ca.sum1(ca.sum2(lam * Vs))
    Hs, _ = ca.hessian(Ls, Xs)
    ref = ca.Function("r", [Xs], [Vs, ca.jacobian(ca.vec(Vs), ca.vec(Xs)), Hs])
    Vr, Jr, Hr = (np.asarray(a) for a in ref(Q))
    np.testing.assert_allclose(V, Vr, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(J, Jr, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(Hn, Hr, rtol=1e-8, atol=1e-10)
    calls = net.calls
    fun(Q)  # value, Jacobian and Hessian of the same points: one batched call (cached)
    assert net.calls - calls <= 1
    # exact sparsity: each point's outputs depend on its own inputs only (block diagonal)
    assert fun.sparsity_out(1).nnz() == len(OUTS) * 2 * n
    assert fun.sparsity_out(2).nnz() == 2 * 2 * n


def test_batched_casadi_function_without_network_hessian(ecoli):
    net = BatchedNetwork(ecoli, OUTS, device="cpu")
    n = 5
    F = batched_casadi_function(net, n, exact_hessian=False)
    Fe = batched_casadi_function(BatchedNetwork(ecoli, OUTS, device="cpu"), n)
    Qs = ca.MX.sym("Q", 2, n)
    lam = np.random.default_rng(6).normal(size=(len(OUTS), n))
    H, _ = ca.hessian(ca.sum1(ca.sum2(lam * F(Qs))), Qs)
    fun = ca.Function("f", [Qs], [ca.jacobian(ca.vec(F(Qs)), ca.vec(Qs)), H])
    ref = ca.Function("r", [Qs], [ca.jacobian(ca.vec(Fe(Qs)), ca.vec(Qs))])
    Q = _points(n, seed=7).T
    J, Hn = fun(Q)
    np.testing.assert_allclose(np.asarray(J), np.asarray(ref(Q)), rtol=1e-12, atol=1e-13)
    assert fun.sparsity_out(1).nnz() == 0  # the network's second-order term is structurally zero


def test_adaptive_prefetch_gives_the_same_numbers_and_skips_derivatives_of_unused_points(ecoli):
    """prefetch = "adaptive": derivatives with a value only after a point whose derivatives were used.

    Reference: the same function without prefetch (values, Jacobians and Hessians at every point of
    a sequence that imitates a line search: point A evaluated and differentiated, B and C evaluated
    only, then C differentiated); equal to rel 1e-13, abs 1e-14. Second-order calls: with the values
    of A and B (each after a differentiated point: the first trial of an iteration), the value of C
    alone (after B, which was not differentiated: a backtracking step), and C's derivatives when
    asked for.
    """
    n = 6
    nets = [BatchedNetwork(ecoli, OUTS, device="cpu") for _ in range(2)]
    funs = [batched_casadi_function(nets[0], n, prefetch="adaptive"), batched_casadi_function(nets[1], n)]
    Qs = ca.MX.sym("Q", 2, n)
    lam = np.random.default_rng(8).normal(size=(len(OUTS), n))
    out = []
    for F in funs:
        H, _ = ca.hessian(ca.sum1(ca.sum2(lam * F(Qs))), Qs)
        value = ca.Function("v", [Qs], [F(Qs)])
        derivs = ca.Function("d", [Qs], [ca.jacobian(ca.vec(F(Qs)), ca.vec(Qs)), H])
        out.append((value, derivs))
    orders = []
    taylor = nets[0].taylor
    nets[0].taylor = lambda q, order=2: (orders.append(order), taylor(q, order))[1]
    A, B, C = (_points(n, seed=s).T for s in (11, 12, 13))
    got, ref = [], []
    for (value, derivs), res in zip(out, (got, ref)):
        res.append(np.asarray(value(A)))
        res.extend(np.asarray(a) for a in derivs(A))
        res.append(np.asarray(value(B)))
        res.append(np.asarray(value(C)))
        res.extend(np.asarray(a) for a in derivs(C))
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)
    assert orders == [2, 2, 0, 2]
    with pytest.raises(ValueError, match="prefetch"):
        batched_casadi_function(nets[0], n, prefetch="sometimes")


def test_network_taylor_function_matches_the_native_graph_and_shares_the_call(ecoli):
    """network_taylor_function: values, Jacobians (row i + r j) and second derivatives (row i + r s for
    the pair s = (j, m), j <= m) per column, against CasADi's derivatives of the native SX graph (and
    the same layout built from any CasADi function by differentiation); rel 1e-9, abs 1e-11. The
    value and the coefficients of the same points share one torch call."""
    n, r, k = 5, len(OUTS), 2
    net = BatchedNetwork(ecoli, OUTS, device="cpu")
    F = batched_casadi_function(net, n, prefetch="adaptive")
    T1, T2 = network_taylor_function(F, order=1), network_taylor_function(F, order=2)
    Q = _points(n, seed=21).T
    _, rows = select_outputs(ecoli, OUTS)
    nat = native_function(ecoli.spec(), rows, symbolic="SX")
    x = ca.SX.sym("x", k)
    v = nat(x)
    H = [ca.hessian(v[i], x)[0] for i in range(r)]
    point = ca.Function("point", [x], [v, ca.jacobian(v, x), *H])
    calls = net.calls
    F(Q)
    V, J, Hp = (np.asarray(a) for a in T2(Q))
    V1, J1 = (np.asarray(a) for a in T1(Q))
    assert net.calls - calls == 1
    for p in range(n):
        out = [np.asarray(a) for a in point(Q[:, p])]
        np.testing.assert_allclose(V[:, p], out[0].ravel(), rtol=1e-9, atol=1e-11)
        for j in range(k):
            np.testing.assert_allclose(J[r * j : r * (j + 1), p], out[1][:, j], rtol=1e-9, atol=1e-11)
        for s, (j, m) in enumerate([(0, 0), (0, 1), (1, 1)]):
            np.testing.assert_allclose(Hp[r * s : r * (s + 1), p], [out[2 + i][j, m] for i in range(r)], rtol=1e-9, atol=1e-11)
    np.testing.assert_array_equal(V1, V)
    np.testing.assert_array_equal(J1, J)
    Xs = ca.SX.sym("X", k, n)
    graph = ca.Function("graph", [Xs], [ca.horzcat(*[nat(Xs[:, p]) for p in range(n)])])
    for a, b in zip(network_taylor_function(graph, order=2)(Q), (V, J, Hp)):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-9, atol=1e-11)
    with pytest.raises(ValueError, match="order"):
        network_taylor_function(F, order=3)


def test_network_curvature_function_weights_and_takes_absolute_values():
    """network_curvature_function: per point sum_i W[i] H_i on the input pairs; with convexify the
    matrix absolute value, against scipy's square root of the matrix's square, sqrtm(M M) (rel 1e-10,
    abs 1e-12), which is positive semidefinite and equals M where M is."""
    from scipy.linalg import sqrtm

    r, k, n = 3, 2, 6
    rng = np.random.default_rng(22)
    H, W = rng.normal(size=(r * 3, n)), rng.normal(size=(r, n))
    M = np.asarray(network_curvature_function(r, k, n)(H, W))
    Ma = np.asarray(network_curvature_function(r, k, n, convexify=True)(H, W))
    for p in range(n):
        pairs = [sum(W[i, p] * H[i + r * s, p] for i in range(r)) for s in range(3)]
        np.testing.assert_allclose(M[:, p], pairs, rtol=1e-12, atol=1e-14)
        full = np.array([[pairs[0], pairs[1]], [pairs[1], pairs[2]]])
        ref = np.real(sqrtm(full @ full))
        np.testing.assert_allclose(Ma[:, p], [ref[0, 0], ref[0, 1], ref[1, 1]], rtol=1e-10, atol=1e-12)
        assert np.linalg.eigvalsh(ref).min() >= -1e-12
    with pytest.raises(ValueError, match="'n'"):
        network_curvature_function(r, k, 0)


def test_torch_threads_restores_the_thread_count():
    old = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == old
    with pytest.raises(ValueError, match="positive"):
        with torch_threads(0):
            pass


def test_input_checks(ecoli):
    net = BatchedNetwork(ecoli, OUTS, device="cpu")
    with pytest.raises(ValueError, match="columns"):
        net.values(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="order"):
        net.taylor(np.zeros((3, 2)), order=3)
    assert net.in_domain(np.array([[1.0, 1.0], [25.0, 1.0]])).tolist() == [True, False]


@pytest.mark.slow
def test_shipped_ich360_matches_autograd():
    """The paper's 4x256 net with kink features: values, Jacobians, Hessians at 6 points."""
    from mpc_bio.surrogate import default_surrogate

    sur = default_surrogate("iCH360")
    outs = [sur.objective_id, "EX_glc__D_e", "EX_o2_e", "EX_ac_e"]
    net = BatchedNetwork(sur, outs, device="cpu")
    Q = _points(6, seed=7)
    c = net.taylor(Q, order=2)
    _, rows = select_outputs(sur, outs)
    v, J, H = _autograd(sur.module.double(), rows, Q)
    np.testing.assert_allclose(c.values, v, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(c.jacobians, J, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(c.hessians, H, rtol=1e-8, atol=1e-9)


def test_kink_width_widens_the_bends_as_a_rescaled_module():
    """kink_width w: each kink feature becomes softplus(r u) / r - softplus(c u) / c with c = s / w
    (s = 0.05, the sharp width of the random kinks) and r = min(rho, c), which equals
    bump(c u, r / c) / c: the reference is the surrogate's own torch module with its kink rows
    scaled by c, ratios r / c and scales kink_scale * c (features with rho >= c: ratio 1, i.e. 0),
    differentiated by autograd. Same float64 arithmetic: rtol 1e-9 / atol 1e-10 relative to the
    output size (values), 1e-8 / 1e-9 (Jacobians, Hessians)."""
    import copy

    sur = random_surrogate(hidden=(24, 16), activation="silu", n_out=5, seed=4, warp=True, kinks=6)
    rows = (0, 1, 3)
    ids = [sur.reaction_ids[i] for i in rows]
    w = 0.2
    net = BatchedNetwork(sur, ids, device="cpu", kink_width=w)
    mod = copy.deepcopy(sur.module).double()
    with torch.no_grad():
        sharp = 1.0 / torch.linalg.norm(mod.kink_matrix, dim=1)
        c = torch.clamp(sharp / w, max=1.0)
        r = torch.minimum(mod.kink_ratio, c)
        assert 0 < int((r < c).sum()) < 6  # some features kept, some dropped at this width
        mod.kink_matrix.mul_(c[:, None])
        mod.kink_bias.mul_(c)
        mod.kink_ratio.copy_(r / c)
        mod.kink_scale.mul_(c)
    Q = _points(10, seed=2, lo=1.0, hi=19.0)
    c2 = net.taylor(Q, order=2)
    v, J, H = _autograd(mod, rows, Q)
    scale = 1.0 + np.abs(v).max()
    np.testing.assert_allclose(c2.values, v, rtol=1e-9, atol=1e-10 * scale)
    np.testing.assert_allclose(c2.jacobians, J, rtol=1e-8, atol=1e-9 * scale)
    np.testing.assert_allclose(c2.hessians, H, rtol=1e-8, atol=1e-9 * scale)
    # a width below the sharp width changes nothing (bit for bit up to summation order)
    np.testing.assert_allclose(
        BatchedNetwork(sur, ids, device="cpu", kink_width=1e-3).values(Q), BatchedNetwork(sur, ids).values(Q), rtol=0, atol=1e-12 * scale
    )
    with pytest.raises(ValueError, match="kink_width"):
        BatchedNetwork(sur, ids, kink_width=-1.0)
