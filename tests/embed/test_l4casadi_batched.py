"""The L4CasADi batched call against the Python torch call and torch autograd.

References: :class:`mpc_bio.embed.batched.BatchedNetwork` (itself tested against torch autograd in
``test_batched.py``) and torch autograd on the surrogate's module at one point. The only
difference between the paths is L4CasADi's float32 input: the uptakes travel as float32-exact
pairs whose low part is rounded at about 1e-11, so values agree to ~1e-10 and derivatives to the
curvature times that.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mpc_bio.embed.batched import BatchedNetwork, batched_casadi_function
from mpc_bio.embed.l4casadi_batched import L4CasADiBatchedNetwork
from tests.embed.conftest import random_surrogate

N_POINTS = 6


@pytest.fixture(scope="module")
def kinked():
    return random_surrogate(activation="silu", mass_balance=True, seed=3, warp=True, kinks=2)


@pytest.fixture(scope="module")
def nets(kinked, tmp_path_factory):
    outs = list(kinked.reaction_ids[:4])
    l4 = L4CasADiBatchedNetwork(kinked, outs, n_points=N_POINTS, build_dir=tmp_path_factory.mktemp("l4b"))
    return l4, BatchedNetwork(kinked, outs, device="cpu")


def _points(kinked, n, seed=0):
    lo, hi = np.asarray(kinked.domain_low), np.asarray(kinked.domain_high)
    return np.random.default_rng(seed).uniform(lo, hi, (n, len(lo)))


@pytest.mark.parametrize("order", [0, 1, 2])
def test_l4casadi_call_equals_the_torch_call(nets, kinked, order):
    l4, ref = nets
    Q = _points(kinked, N_POINTS)
    a, b = l4.taylor(Q, order), ref.taylor(Q, order)
    assert l4.l4casadi_calls >= 1
    np.testing.assert_allclose(a.values, b.values, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.jacobians, b.jacobians, rtol=1e-7, atol=1e-8)
    if order == 2:
        scale = np.abs(b.hessians).max()
        np.testing.assert_allclose(a.hessians, b.hessians, rtol=1e-6, atol=1e-7 * scale)
    else:
        assert a.hessians is None


def test_values_match_torch_autograd_module(nets, kinked):
    l4, _ = nets
    Q = _points(kinked, N_POINTS, seed=1)
    rows = torch.as_tensor([kinked.reaction_ids.index(r) for r in l4.output_ids])
    with torch.no_grad():
        want = kinked.module(torch.as_tensor(Q)).index_select(1, rows).numpy()
    np.testing.assert_allclose(l4.values(Q), want, rtol=1e-9, atol=1e-9)


def test_other_point_counts_take_the_python_path(nets, kinked):
    l4, ref = nets
    calls = l4.l4casadi_calls
    Q = _points(kinked, 2, seed=2)
    np.testing.assert_allclose(l4.taylor(Q, 2).hessians, ref.taylor(Q, 2).hessians, rtol=1e-12, atol=1e-12)
    assert l4.l4casadi_calls == calls


def test_casadi_function_of_the_l4casadi_network(nets, kinked):
    """The CasADi wrapper used by the MPC's NLP takes the L4CasADi network unchanged."""
    l4, ref = nets
    Q = _points(kinked, N_POINTS, seed=4).T  # (k, n)
    fa = batched_casadi_function(l4, N_POINTS, name="l4b")
    fb = batched_casadi_function(ref, N_POINTS, name="ref")
    np.testing.assert_allclose(np.asarray(fa(Q)), np.asarray(fb(Q)), rtol=1e-9, atol=1e-9)
    ja = np.asarray(fa.jacobian()(Q, fa(Q)))
    jb = np.asarray(fb.jacobian()(Q, fb(Q)))
    np.testing.assert_allclose(ja, jb, rtol=1e-7, atol=1e-8)


def test_bad_point_count_is_refused(kinked):
    with pytest.raises(ValueError, match="'n_points'"):
        L4CasADiBatchedNetwork(kinked, n_points=0)
