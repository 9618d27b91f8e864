"""The feed MPC on Taylor models of the network (MPCSettings.backend = "network_taylor") against the
network itself in the loop (backend "network") and torch autograd.

References: torch autograd on the surrogate's own module (float64, point by point) for the Taylor
models' value and Jacobian at their expansion points; :class:`mpc_bio.control.network_mpc.NetworkMPC`
(the same collocation NLP with the network called through one batched torch call, exact
derivatives) for the converged steps, on the shipped e_coli_core surrogate (no kink features) with
kLa oxygen and a short horizon. A converged step's plan is a KKT point of the network's NLP: IPOPT
on that NLP, started at it with its multipliers, stays within 1e-6 (scaled variables); applied
feeds agree within 1e-6 L/h after a warm step (the first, cold, step's plan has a nearly flat
direction, the feed against the move penalty: the two solvers stop 4e-5 L/h apart, both at KKT
points to IPOPT's tol 1e-8, predicted biomass 4e-6 relative apart), predicted objectives within
1e-6 relative (1e-5 after the cold step).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from mpc_bio.control import BatchProblem, ControlError, MPCSettings


def _reactor(batch_time):
    from mpc_bio.process import FedBatchSettings, UptakeKinetics

    return FedBatchSettings(
        volume0=1.0,
        glucose0=10.0,
        biomass0=0.1,
        feed_glucose=1000.0,
        products={"ac": "EX_ac_e"},
        kinetics=UptakeKinetics(oxygen="kla"),
        batch_time=batch_time,
        output_step=0.5,
    )


@pytest.fixture(scope="module")
def case():
    from mpc_bio.surrogate import default_surrogate

    return {
        "sur": default_surrogate(),
        "reactor": _reactor(3.0),
        "problem": BatchProblem(batch_time=2.5, feed_max=0.1, volume_max=1.5, glucose_max=50.0, acetate_max=40.0),
        "settings": MPCSettings(
            t_step=0.5, n_horizon=6, collocation_deg=2, move_penalty=0.1, objective_scale=10.0, max_iter=1000, tol=1e-8, device="cpu"
        ),
    }


def _mpc(case, backend="network_taylor", **changes):
    from mpc_bio.control.network_mpc import build_network_mpc

    settings = dataclasses.replace(case["settings"], backend=backend, **changes)
    return build_network_mpc(case["reactor"], case["sur"], case["problem"], settings)


def _P(ctrl, x, t, u_prev):
    N, dt = ctrl.settings.n_horizon, ctrl.settings.t_step
    flags = [1.0 if t + k * dt < ctrl.problem.batch_time - 1e-9 else 0.0 for k in range(N)]
    return np.r_[x, u_prev, ctrl._p_now, flags]


def _stays_at(net, ctrl, P):
    """IPOPT on the network's own NLP, warm started at ``ctrl``'s solution and multipliers: (status, largest move)."""
    nb = net._lbg.size
    S = net._S_warm
    sol = S(x0=ctrl._sol, lam_x0=ctrl._lam_x, lam_g0=ctrl._lam_g[:nb], p=P, lbx=net._lbx, ubx=net._ubx, lbg=net._lbg, ubg=net._ubg)
    return S.stats()["return_status"], float(np.max(np.abs(np.asarray(sol["x"]).reshape(-1) - ctrl._sol)))


def _torch_outputs(sur, output_ids):
    """The surrogate's torch module in float64 restricted to ``output_ids``: (g(x) -> outputs, their count)."""
    import torch

    from mpc_bio.embed.to_casadi import select_outputs

    module = copy.deepcopy(sur.module).double()
    _, rows = select_outputs(sur, output_ids)
    rows_t = torch.as_tensor(list(rows))
    return (lambda x: module(x[None, :])[0].index_select(0, rows_t)), len(rows)


def test_taylor_model_at_its_expansion_point_equals_the_network_and_autograd(case):
    """At the expansion points (the uptakes of a simulated guess, 12 collocation points) the NLP's
    Taylor models give the network's value and Jacobian by torch autograd (relative 1e-10,
    absolute 1e-11) and, order 2, its second derivatives (relative 1e-8, absolute 1e-10)."""
    import casadi as ca
    import torch

    from mpc_bio.control.taylor_mpc import taylor_parameters

    ctrl = _mpc(case)
    x0 = case["reactor"].initial_state()
    ctrl.reset(x0, guess_feed=0.05)
    w = ctrl._guess(x0, 0.0)
    P = _P(ctrl, x0, 0.0, 0.0)
    Q0 = ctrl._uptakes(w, P)  # (n, k)
    n, k = Q0.shape
    coef = ctrl.network.taylor(Q0, 2)
    T = taylor_parameters(coef, 2)
    Qs = ca.SX.sym("Q", k, n)
    Ts = ca.SX.sym("T", T.size)
    V = ctrl._model(Qs, Ts)
    f = ca.Function("model", [Qs, Ts], [V, ca.jacobian(ca.vec(V), ca.vec(Qs)), ca.jacobian(ca.jacobian(ca.vec(V), ca.vec(Qs)), ca.vec(Qs))])
    v, J, H = (np.asarray(ca.DM(a)) for a in f(Q0.T, T))

    g, r = _torch_outputs(case["sur"], ctrl.split.output_ids)
    for p in range(n):
        x = torch.as_tensor(Q0[p], dtype=torch.float64)
        ref_v = g(x).detach().numpy()
        ref_J = torch.autograd.functional.jacobian(g, x).numpy()
        ref_H = np.stack([torch.autograd.functional.hessian(lambda z, i=i: g(z)[i], x).numpy() for i in range(r)])
        np.testing.assert_allclose(v[:, p], ref_v, rtol=1e-10, atol=1e-11)
        np.testing.assert_allclose(J[p * r : (p + 1) * r, p * k : (p + 1) * k], ref_J, rtol=1e-10, atol=1e-11)
        Hp = H.reshape(r * n, k * n, k * n, order="F")[p * r : (p + 1) * r][:, p * k : (p + 1) * k][:, :, p * k : (p + 1) * k]
        np.testing.assert_allclose(Hp, ref_H, rtol=1e-8, atol=1e-10)
    # block diagonal: a point's models depend on its own uptakes only
    assert np.count_nonzero(J) <= n * r * k
    # first order: the same value and Jacobian, no curvature
    c1 = ctrl.network.taylor(Q0, 1)
    np.testing.assert_allclose(taylor_parameters(c1, 1), T[: taylor_parameters(c1, 1).size], rtol=1e-12, atol=1e-14)


def test_converged_taylor_steps_equal_the_network_backend(case):
    """Two steps (cold, then warm from a state 1 % off): each converges in a few outer iterations
    (uptakes moving < 1e-9 mmol/gDW/h), its plan is a KKT point of the network backend's NLP (its
    IPOPT stays within 1e-6), and the warm step's feed and both predicted objectives equal the
    network backend's (1e-6 L/h absolute; 1e-6 relative; cold step 1e-4 L/h, 1e-5)."""
    net, tay = _mpc(case, "network"), _mpc(case, taylor_tol=1e-9)
    x0 = case["reactor"].initial_state()
    for m in (net, tay):
        m.reset(x0)
    for k, x in enumerate((x0, x0 * 1.01)):
        t = 0.5 * k
        u_prev = tay._u_prev
        f_net, f_tay = net.step(x, t), tay.step(x, t)
        rec = tay.records[-1]
        assert rec.success and rec.outer_converged and 2 <= rec.outer_iterations <= 5, rec
        assert rec.uptake_step <= 1e-9
        status, move = _stays_at(net, tay, _P(tay, np.maximum(x, 0.0), t, u_prev))
        assert status == "Solve_Succeeded" and move <= 1e-6, (status, move)
        # the cold start's plan has a nearly flat direction (feed against move penalty)
        assert rec.predicted_objective == pytest.approx(net.records[-1].predicted_objective, rel=1e-6 if k else 1e-5, abs=0)
        assert f_tay == pytest.approx(f_net, abs=1e-6 if k else 1e-4, rel=0)


def test_trust_region_bounds_each_move_and_reaches_the_same_plan(case):
    """With an initial trust radius of 0.05 mmol/gDW/h no uptake moves more than the radius in an
    outer iteration (checked against the iterates' uptakes); the first move is held by it, the
    radius doubles after the good prediction, the step takes more outer iterations and reaches the
    plan of a run with the default radius (1e-6 L/h absolute)."""
    from mpc_bio.control.taylor_mpc import TaylorMPC

    x0 = case["reactor"].initial_state()
    free, bounded = _mpc(case, taylor_tol=1e-8), _mpc(case, taylor_tol=1e-8, taylor_trust_radius=0.05, taylor_max_iter=30)
    moves = []
    original = TaylorMPC._uptakes

    def spy(self, w, P):
        q = original(self, w, P)
        moves.append(q)
        return q

    for m in (free, bounded):
        m.reset(x0)
    free.step(x0, 0.0)
    TaylorMPC._uptakes = spy
    try:
        bounded.step(x0, 0.0)
    finally:
        TaylorMPC._uptakes = original
    steps = [float(np.max(np.abs(b - a))) for a, b in zip(moves, moves[1:])]
    history = bounded._outer[0]["history"]  # (IPOPT iterations, uptake move, model error, network change, radius)
    np.testing.assert_allclose(steps, [h[1] for h in history], rtol=1e-12, atol=1e-12)
    assert history[0][4] == 0.05 and all(h[1] <= h[4] + 1e-7 for h in history), history
    assert history[0][1] >= 0.05 - 1e-7 and history[1][4] == 0.1, history  # active at first, doubled after a good prediction
    r_free, r_b = free.records[-1], bounded.records[-1]
    assert r_b.outer_converged and r_b.outer_iterations > r_free.outer_iterations
    np.testing.assert_allclose(bounded.plan(), free.plan(), rtol=0, atol=1e-6)


def test_warm_start_shifts_the_trust_region_multipliers(case):
    """The trust region's multipliers (one per uptake and collocation point, last in g) are shifted
    one interval with the rest: point p + d's go to point p, the last interval's are repeated."""
    ctrl = _mpc(case, taylor_trust_radius=0.2)
    x0 = case["reactor"].initial_state()
    ctrl.reset(x0)
    ctrl.step(x0, 0.0)
    nb, d, k = ctrl._lbg.size, ctrl.settings.collocation_deg, ctrl._k
    tail = ctrl._lam_g[nb:].reshape(-1, k)
    _, _, lg = ctrl._shift()
    assert lg.size == ctrl._lam_g.size
    shifted = lg[nb:].reshape(-1, k)
    np.testing.assert_array_equal(shifted[:-d], tail[d:])
    np.testing.assert_array_equal(shifted[-d:], tail[-d:])
    ctrl._lam_g = ctrl._lam_g.copy()
    ctrl._lam_g[nb:] = 0.0
    np.testing.assert_array_equal(ctrl._shift()[2][:nb], lg[:nb])  # the rest as NetworkMPC shifts it


def test_taylor_settings_and_dispatch(case):
    """The new settings are checked; build_network_mpc dispatches on the backend; the closed loop
    asks for a prebuilt MPC."""
    from mpc_bio.control.closed_loop import run_closed_loop
    from mpc_bio.control.network_mpc import NetworkMPC
    from mpc_bio.control.taylor_mpc import TaylorMPC, TaylorStepRecord

    with pytest.raises(ControlError, match="taylor_trust_radius"):
        MPCSettings(taylor_tol=1e-3, taylor_trust_radius=1e-3)
    with pytest.raises(ControlError, match="taylor_order"):
        MPCSettings(taylor_order=3)
    with pytest.raises(ControlError, match="backend"):
        MPCSettings(backend="taylor")
    s = MPCSettings(backend="network_taylor", taylor_order=1, taylor_trust_radius=0.5)
    assert MPCSettings.from_dict(s.to_dict()) == s
    ctrl = _mpc(case, taylor_order=1)
    assert isinstance(ctrl, TaylorMPC) and type(_mpc(case, "network")) is NetworkMPC
    x0 = case["reactor"].initial_state()
    ctrl.reset(x0)
    ctrl.step(x0, 0.0)
    rec = ctrl.records[-1]
    assert isinstance(rec, TaylorStepRecord) and rec.success and rec.outer_iterations >= 2
    rti = _mpc(case, taylor_max_iter=1)  # a real-time iteration: one solve, first-order models, no trust region
    rti.reset(x0)
    rti.step(x0, 0.0)
    (h,) = rti._outer[-1]["history"]
    assert rti.records[-1].success and rti.records[-1].outer_iterations == 1 and h[4] == np.inf
    from mpc_bio.control.process_adapter import control_model_from_process
    from mpc_bio.process import embed_cell_model

    model = control_model_from_process(case["reactor"], embed_cell_model(case["sur"], case["reactor"]))
    with pytest.raises(ControlError, match="network_taylor"):
        run_closed_loop(model, case["problem"], x0, mpc_settings=dataclasses.replace(case["settings"], backend="network_taylor"), n_steps=1)


@pytest.mark.slow
def test_ich360_taylor_models_and_a_bounded_step():
    """iCH360 (4x256 net with kink features; the MPC's copy kept exact, network_kink_width = 0), the
    whole 20-interval horizon: at the uptakes of a simulated guess (40 points) the NLP's Taylor models
    give the network's value and Jacobian by torch autograd (relative 1e-10, absolute 1e-10); a cold
    step succeeds with every outer iteration's uptake move within the trust radius in effect
    (1e-7 mmol/gDW/h) and its record counting the outer iterations."""
    import casadi as ca
    import torch

    from mpc_bio.control.network_mpc import build_network_mpc
    from mpc_bio.control.taylor_mpc import taylor_parameters
    from mpc_bio.surrogate import default_surrogate

    sur = default_surrogate("iCH360")
    reactor = _reactor(10.0)
    problem = BatchProblem(batch_time=10.0, feed_max=0.1, volume_max=1.5, glucose_max=50.0, acetate_max=40.0)
    settings = MPCSettings(
        t_step=0.5,
        n_horizon=20,
        collocation_deg=2,
        move_penalty=0.1,
        objective_scale=10.0,
        backend="network_taylor",
        device="cpu",
        network_kink_width=0.0,
        taylor_max_iter=4,
    )
    ctrl = build_network_mpc(reactor, sur, problem, settings)
    x0 = reactor.initial_state()
    ctrl.reset(x0, guess_feed=0.03)
    w = ctrl._guess(x0, 0.0)
    P = _P(ctrl, x0, 0.0, 0.0)
    Q0 = ctrl._uptakes(w, P)
    n, k = Q0.shape
    T = taylor_parameters(ctrl.network.taylor(Q0, 2), 2)
    Qs, Ts = ca.SX.sym("Q", k, n), ca.SX.sym("T", T.size)
    V = ctrl._model(Qs, Ts)
    v, J = (np.asarray(ca.DM(a)) for a in ca.Function("m", [Qs, Ts], [V, ca.jacobian(ca.vec(V), ca.vec(Qs))])(Q0.T, T))
    g, r = _torch_outputs(sur, ctrl.split.output_ids)
    for p in range(n):
        x = torch.as_tensor(Q0[p], dtype=torch.float64)
        np.testing.assert_allclose(v[:, p], g(x).detach().numpy(), rtol=1e-10, atol=1e-10)
        J_ref = torch.autograd.functional.jacobian(g, x).numpy()
        np.testing.assert_allclose(J[p * r : (p + 1) * r, p * k : (p + 1) * k], J_ref, rtol=1e-10, atol=1e-10)
    ctrl.step(x0, 0.0)
    rec = ctrl.records[-1]
    history = [h for o in ctrl._outer for h in o["history"]]  # (a cold retry adds a second outer loop)
    assert rec.success and rec.outer_iterations == len(history)
    assert all(h[1] <= h[4] + 1e-7 for h in history if np.isfinite(h[1])), history
