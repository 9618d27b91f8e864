"""The feed MPC with the network itself in the loop (MPCSettings.backend = "network") against the
do-mpc MPC with the same network embedded as its native CasADi graph, on the same problem.

Reference: :class:`mpc_bio.control.mpc.FeedMPC` (do-mpc's collocation NLP, the shipped e_coli_core
surrogate as a native SX graph with CasADi's exact derivatives); the fed-batch has kLa oxygen
transfer, so both network inputs move. A short horizon keeps the builds quick. The horizon (3 h)
reaches one interval past the end of the batch (2.5 h), so its last node is frozen at the start of
a constrained interval: the network MPC's extra soft limits at the last node (tested separately)
then change nothing and the two NLPs are the same. Both solve to IPOPT tol 1e-11: the first
feed is a nearly flat direction of the cold solve, at tol 1e-8 the two solvers' feeds each lie
up to 1e-4 L/h from the optimum, wherever their paths end. Tolerances: applied feed 1e-6 L/h absolute, predicted objective 1e-6 relative, feed
plan over the batch 1e-4 L/h absolute (its last move is a flat direction), predicted states 1e-4
relative (1e-8 absolute).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mpc_bio.control import BatchProblem, ControlError, MPCSettings


@pytest.fixture(scope="module")
def case():
    from mpc_bio.control.model import make_integrator
    from mpc_bio.control.mpc import build_mpc
    from mpc_bio.control.process_adapter import control_model_from_process
    from mpc_bio.process import FedBatchSettings, UptakeKinetics, embed_cell_model
    from mpc_bio.surrogate import default_surrogate

    sur = default_surrogate()
    reactor = FedBatchSettings(
        volume0=1.0,
        glucose0=10.0,
        biomass0=0.1,
        feed_glucose=1000.0,
        products={"ac": "EX_ac_e"},
        kinetics=UptakeKinetics(oxygen="kla"),
        batch_time=3.0,
        output_step=0.5,
    )
    cell = embed_cell_model(sur, reactor)
    model = control_model_from_process(reactor, cell)
    problem = BatchProblem(batch_time=2.5, feed_max=0.1, volume_max=1.5, glucose_max=50.0, acetate_max=40.0)
    settings = MPCSettings(t_step=0.5, n_horizon=6, collocation_deg=2, move_penalty=0.1, objective_scale=10.0, max_iter=1000, tol=1e-11)
    x0 = reactor.initial_state()
    ref = build_mpc(model, problem, settings)
    ref.reset(x0)
    plant = make_integrator(model, settings.t_step)
    feeds, states = [], [x0]
    for k in range(2):  # a cold step, then a warm one from the plant's state
        feeds.append(ref.step(states[-1], k * settings.t_step))
        states.append(np.asarray(plant(x0=states[-1], p=np.r_[feeds[-1], model.param_values])["xf"]).reshape(-1))
    return {
        "sur": sur,
        "reactor": reactor,
        "model": model,
        "problem": problem,
        "settings": settings,
        "ref": ref,
        "feeds": feeds,
        "states": states,
    }


def _network_mpc(case, **changes):
    from mpc_bio.control.network_mpc import build_network_mpc

    settings = dataclasses.replace(case["settings"], backend="network", device="cpu", **changes)
    return build_network_mpc(case["reactor"], case["sur"], case["problem"], settings)


def test_network_mpc_steps_equal_the_native_graph_mpc(case):
    ctrl = _network_mpc(case)
    ctrl.reset(case["states"][0])
    ref = case["ref"]
    for k in range(2):
        calls = ctrl.network.calls
        feed = ctrl.step(case["states"][k], k * case["settings"].t_step)
        rec, rrec = ctrl.records[-1], ref.records[k]
        assert rec.success, rec.status
        assert rec.warm == (k == 1)
        assert feed == pytest.approx(case["feeds"][k], abs=1e-6, rel=0)
        assert rec.predicted_objective == pytest.approx(rrec.predicted_objective, rel=1e-6, abs=0)
        if k == 1:  # warm: one batched torch call per evaluation of the horizon, a few per IPOPT iteration
            assert ctrl.network.calls - calls <= 4 * (rec.iterations + 1)
    # the feeds of the intervals after the batch's end move nothing (only the move penalty weighs
    # them, a nearly flat direction): the plans are compared over the batch (intervals 0..3 at 0.5 h)
    np.testing.assert_allclose(ctrl.plan()[:4], ref.plan()[:4], rtol=0, atol=1e-4)
    nodes = np.array(
        [
            [float(ref.mpc.opt_x_num_unscaled["_x", k, 0, -1, n][0]) for n in case["model"].state_names]
            for k in range(case["settings"].n_horizon + 1)
        ]
    )
    np.testing.assert_allclose(ctrl.predicted_states(), nodes, rtol=1e-4, atol=1e-8)


def test_limits_hold_at_the_last_node(case):
    from mpc_bio.control.mpc import build_mpc

    problem = dataclasses.replace(case["problem"], batch_time=3.0)  # the horizon ends with the batch
    ref = build_mpc(case["model"], problem, case["settings"], terminal_limits=False)
    ctrl = _network_mpc(case)
    ctrl = type(ctrl)(ctrl.split, ctrl.roles, problem, ctrl.settings, ctrl.network)
    x0 = case["states"][0]
    for c in (ref, ctrl):
        c.reset(x0)
        c.step(x0, 0.0)
        assert c.records[-1].success
    limit = (1 - case["settings"].backoff) * problem.glucose_max
    names = case["model"].state_names
    end = ctrl.predicted_states()[-1]
    assert end[names.index("n_glc")] / end[names.index("V")] <= limit * (1 + 1e-6)
    # do-mpc alone (terminal_limits=False) checks the limits at the start of each interval only:
    # its plan breaks the glucose limit in the last interval (a feed dump later steps have to undo)
    ref_end = np.array([float(ref.mpc.opt_x_num_unscaled["_x", -1, 0, -1, n][0]) for n in names])
    assert ref_end[names.index("n_glc")] / ref_end[names.index("V")] > limit * 1.1


def test_warm_start_places_node_k_at_t_k_and_shifts_multipliers(case):
    ctrl = _network_mpc(case)
    ctrl.reset(case["states"][0])
    ctrl.step(case["states"][0], 0.0)
    d, N = case["settings"].collocation_deg, case["settings"].n_horizon
    Xc, U, _, Xn = ctrl._unpack(ctrl._sol)
    w0, lam_x, lam_g = ctrl._shift()
    Xc1, U1, _, Xn1 = ctrl._unpack(w0)
    # node k of the shifted guess holds the state at the new t_k (the old node k + 1), interval k's
    # collocation points the old interval k + 1's (same Radau times), the feed plan one on
    np.testing.assert_array_equal(Xn1[:, :N], Xn[:, 1:])
    np.testing.assert_array_equal(Xc1[:, : (N - 1) * d], Xc[:, d:])
    np.testing.assert_array_equal(U1[: N - 1], U[1:])
    Lc, _, _, Ln = ctrl._unpack(ctrl._lam_x)
    Lc1, _, _, Ln1 = ctrl._unpack(lam_x)
    np.testing.assert_array_equal(Ln1[:, :N], Ln[:, 1:])
    nx, b = ctrl.split.n_x, ctrl._gblock
    np.testing.assert_array_equal(lam_g[nx : nx + (N - 1) * b], ctrl._lam_g[nx + b : nx + N * b])
    # the predicted node 1 is (to the collocation error of one 0.5 h interval) the plant's state at t_1
    np.testing.assert_allclose(Xn1[:, 0], case["states"][1], rtol=2e-2, atol=1e-3)


def test_torch_threads_are_pinned_in_the_solver_loop_and_restored(case):
    import torch

    ctrl = _network_mpc(case, torch_threads=1)
    seen = []
    taylor = ctrl.network.taylor

    def spy(q, order=2):
        seen.append(torch.get_num_threads())
        return taylor(q, order)

    ctrl.network.taylor = spy
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ctrl.reset(case["states"][0])
        ctrl.step(case["states"][0], 0.0)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_settings_and_build_checks(case):
    from mpc_bio.control.closed_loop import run_closed_loop

    with pytest.raises(ControlError, match="backend"):
        MPCSettings(backend="l4")
    with pytest.raises(ControlError, match="torch_threads"):
        MPCSettings(torch_threads=0)
    with pytest.raises(ControlError, match="collocation_ni"):
        _network_mpc(case, collocation_ni=2)
    with pytest.raises(ControlError, match="build_network_mpc"):
        run_closed_loop(
            case["model"],
            case["problem"],
            case["states"][0],
            mpc_settings=dataclasses.replace(case["settings"], backend="network"),
            n_steps=1,
        )


def test_fedbatch_split_equals_the_process_model(case):
    from mpc_bio.process.model import fedbatch_ode, fedbatch_split

    reactor, cell = case["reactor"], case["model"]
    from mpc_bio.process import embed_cell_model

    cell = embed_cell_model(case["sur"], reactor)
    split = fedbatch_split(reactor, cell)
    ode = fedbatch_ode(reactor, cell, vmax_as_parameter=True)
    rng = np.random.default_rng(0)
    x0 = reactor.initial_state()
    for _ in range(20):
        x = x0 * rng.uniform(0.2, 5.0, x0.size)
        F, p = rng.uniform(0, 0.1), [rng.uniform(5, 12)]
        v = cell.function(split.uptakes(x, p))
        np.testing.assert_allclose(np.asarray(split.rhs(x, F, p, v)).ravel(), np.asarray(ode.rhs(x, F, p)).ravel(), rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_ich360_nlp_derivatives_equal_the_native_graph_nlp(monkeypatch):
    """The network MPC's NLP on iCH360 (4x256 net with kink features) evaluated through the batched
    torch call equals the same NLP with the net as its native CasADi MX graph: constraints, their
    Jacobian and the Hessian of the Lagrangian at a simulated guess with random multipliers
    (relative 1e-9 of the largest entry)."""
    import casadi as ca

    import mpc_bio.embed.batched as batched
    from mpc_bio.control.network_mpc import build_network_mpc
    from mpc_bio.embed import to_casadi
    from mpc_bio.process import FedBatchSettings, UptakeKinetics
    from mpc_bio.surrogate import default_surrogate

    sur = default_surrogate("iCH360")
    reactor = FedBatchSettings(
        volume0=1.0,
        glucose0=10.0,
        biomass0=0.1,
        feed_glucose=1000.0,
        products={"ac": "EX_ac_e"},
        kinetics=UptakeKinetics(oxygen="kla"),
        batch_time=10.0,
        output_step=0.5,
    )
    problem = BatchProblem(batch_time=10.0, feed_max=0.1, volume_max=1.5, glucose_max=50.0, acetate_max=40.0)
    settings = MPCSettings(
        t_step=0.5,
        n_horizon=20,
        collocation_deg=2,
        move_penalty=0.1,
        objective_scale=10.0,
        backend="network",
        device="cpu",
        network_hessian="exact",  # the native graph's Hessian is exact (no convexified curvature to compare with)
        network_kink_width=0.0,  # the trained network exactly, as the native graph
    )
    ctrl = build_network_mpc(reactor, sur, problem, settings)
    graph = to_casadi(sur, "native", outputs=ctrl.split.output_ids, symbolic="MX")
    original = batched.batched_casadi_function
    monkeypatch.setattr(batched, "batched_casadi_function", lambda net, n, **kw: graph.map(n) if n > 1 else original(net, n, **kw))
    ref = build_network_mpc(reactor, sur, problem, settings)
    x0 = reactor.initial_state()
    ctrl.reset(x0, guess_feed=0.03)
    w = ctrl._guess(x0, 0.0)
    P = np.r_[x0, 0.0, ctrl.split.param_values, np.ones(settings.n_horizon)]
    lam = np.random.default_rng(0).normal(size=ctrl._lbg.size)
    for name, args in (("nlp_g", [w, P]), ("nlp_jac_g", [w, P]), ("nlp_hess_l", [w, P, 1.0, lam])):
        a = ctrl._S_cold.get_function(name)(*args)
        b = ref._S_cold.get_function(name)(*args)
        for u, v in zip(a if isinstance(a, (list, tuple)) else [a], b if isinstance(b, (list, tuple)) else [b]):
            u, v = np.asarray(ca.DM(u)), np.asarray(ca.DM(v))
            np.testing.assert_allclose(u, v, rtol=0, atol=1e-9 * np.max(np.abs(v)))


def test_assembled_derivatives_equal_casadis_and_convexified_steps_agree(case):
    """IPOPT's constraint Jacobian and Hessian of the Lagrangian, assembled from the network's
    batched coefficients (the Hessian without and with the absolute-value modification), against
    CasADi's derivatives of the NLP itself (through the batched callback's exact derivatives) at a
    simulated guess with random multipliers: Jacobian and exact Hessian to 1e-12 of the largest
    entry (rel 0); the modified Hessian exceeds the exact one by a positive semidefinite matrix (twice
    the network's negative curvature; eigenvalues of the difference >= -1e-12 of the largest entry).
    With the modified Hessian the step reaches the same KKT point (feed 1e-6 L/h, predicted
    objective 1e-6 relative)."""
    import casadi as ca

    ctrl = _network_mpc(case, network_hessian="exact")
    assert not ctrl.convexified
    x0 = case["states"][0]
    ctrl.reset(x0, guess_feed=0.03)
    w = ctrl._guess(x0, 0.0)
    P = np.r_[x0, 0.0, ctrl.split.param_values, np.ones(case["settings"].n_horizon)]
    lam = np.random.default_rng(1).normal(size=ctrl._lbg.size)
    nlp = ctrl.nlp
    lf, lg = ca.MX.sym("lf"), ca.MX.sym("lg", lam.size)
    ref_jac = ca.Function("j", [nlp["x"], nlp["p"]], [ca.jacobian(nlp["g"], nlp["x"])])
    ref_hess = ca.Function("h", [nlp["x"], nlp["p"], lf, lg], [ca.triu(ca.hessian(lf * nlp["f"] + ca.dot(lg, nlp["g"]), nlp["x"])[0])])
    J = np.asarray(ca.DM(ctrl._S_cold.get_function("nlp_jac_g")(w, P)[1]))
    Jr = np.asarray(ca.DM(ref_jac(w, P)))
    np.testing.assert_allclose(J, Jr, rtol=0, atol=1e-12 * np.abs(Jr).max())
    Hr = np.asarray(ca.DM(ref_hess(w, P, 0.7, lam)))
    H = np.asarray(ca.DM(ctrl._S_cold.get_function("nlp_hess_l")(w, P, 0.7, lam)))
    np.testing.assert_allclose(H, Hr, rtol=0, atol=1e-12 * np.abs(Hr).max())
    Hm = np.asarray(ca.DM(ctrl._hessian_of_lagrangian(*ctrl._funs, convexify=True)(w, P, 0.7, lam)))
    sym = lambda A: np.triu(A) + np.triu(A, 1).T  # noqa: E731
    diff = np.linalg.eigvalsh(sym(Hm) - sym(Hr))  # Q_w' (|M| - M) Q_w: positive semidefinite
    assert diff.min() >= -1e-12 * np.abs(Hr).max()
    assert diff.max() > 1e-6 * np.abs(Hr).max()  # the random multipliers give the network negative curvature
    conv = _network_mpc(case, network_hessian="convexified")
    assert conv.convexified
    conv.reset(x0)
    feed = conv.step(x0, 0.0)
    assert conv.records[-1].success
    assert feed == pytest.approx(case["feeds"][0], abs=1e-6, rel=0)
    assert conv.records[-1].predicted_objective == pytest.approx(case["ref"].records[0].predicted_objective, rel=1e-6, abs=0)


@pytest.mark.slow
def test_l4casadi_evaluator_steps_equal_the_torch_evaluator(case, tmp_path, monkeypatch):
    """MPCSettings.network_evaluator = "l4casadi": the same NLP with the batched call compiled by L4CasADi.

    Reference: the torch evaluator (tested against do-mpc above). The two calls differ only by
    L4CasADi's float32 input pairs (~1e-11 in the uptakes), far below IPOPT's tolerance: feeds
    1e-7 L/h absolute, predicted objective 1e-7 relative.
    """
    monkeypatch.setenv("MPC_BIO_CACHE", str(tmp_path))
    ctrls = [_network_mpc(case, network_evaluator=e) for e in ("torch", "l4casadi")]
    for ctrl in ctrls:
        ctrl.reset(case["states"][0])
        for k in range(2):
            ctrl.step(case["states"][k], k * case["settings"].t_step)
    torch_mpc, l4_mpc = ctrls
    assert l4_mpc.network.l4casadi_calls > 0
    for a, b in zip(l4_mpc.records, torch_mpc.records):
        assert a.success and b.success
        assert a.feed == pytest.approx(b.feed, abs=1e-7, rel=0)
        assert a.predicted_objective == pytest.approx(b.predicted_objective, rel=1e-7, abs=0)


def test_new_network_settings_are_checked_and_the_kink_width_rule():
    """MPCSettings.network_kink_width, correction_max_iter and correction_tol name themselves when out
    of range; the default kink width is the surrogate's kink_reach capped at 1 % of its domain's
    smallest span, None without kink features (e_coli_core) or when set to 0."""
    from mpc_bio.control.network_mpc import kink_width
    from mpc_bio.surrogate import default_surrogate

    for field, bad in (("network_kink_width", -0.1), ("correction_max_iter", 0), ("correction_tol", 0.0)):
        with pytest.raises(ControlError, match=field):
            MPCSettings(**{field: bad})
    with pytest.raises(ControlError, match="network_evaluator"):
        MPCSettings(network_evaluator="onnx")
    with pytest.raises(ControlError, match="'device'"):  # the L4CasADi library runs on the cpu
        MPCSettings(network_evaluator="l4casadi", device="cuda")
    sur = default_surrogate()
    assert sur.settings.kink_lines == ()
    assert kink_width(sur, MPCSettings()) is None
    assert kink_width(sur, MPCSettings(network_kink_width=0.3)) == 0.3

    class Fake:  # a surrogate with kink features: only its settings and domain are read
        def __init__(self, reach, high):
            self.settings = dataclasses.replace(sur.settings, kink_lines=((1.0, -0.5, 1.0),), kink_reach=reach)
            self.domain_low, self.domain_high = np.zeros(2), np.array([high, 20.0])

    assert kink_width(Fake(0.05, 20.0), MPCSettings()) == pytest.approx(0.05, rel=1e-15, abs=0)
    assert kink_width(Fake(0.5, 20.0), MPCSettings()) == pytest.approx(0.2, rel=1e-15, abs=0)  # 1 % of 20
    assert kink_width(Fake(0.05, 2.0), MPCSettings()) == pytest.approx(0.02, rel=1e-15, abs=0)
    assert kink_width(Fake(0.05, 20.0), MPCSettings(network_kink_width=0.0)) is None


@pytest.mark.parametrize("deg", [2, 4])
def test_warm_start_correction_equals_a_cvodes_simulation_of_the_shifted_plan(case, deg):
    """The shifted solution corrected onto a new estimate (states and Vmax off the prediction) is
    the shifted plan simulated from that estimate. Reference: CVODES (reltol 1e-8) on the process
    model with the network as its native CasADi graph, under the corrected feeds. The corrected
    point meets the NLP's equality constraints within correction_tol, its slacks are the soft
    limits' violations, and its nodes equal CVODES's to the collocation error of a 0.5 h interval
    (degree 2: rtol 1e-2, degree 4: rtol 1e-4 but 1e-2 for the dissolved oxygen, whose minutes-fast
    transfer an interval does not resolve; atol 1e-6 in state units)."""
    from mpc_bio.control.model import make_integrator
    from mpc_bio.control.mpc import soft_violation

    ctrl = _network_mpc(case, collocation_deg=deg)
    x0, dt, N = case["states"][0], case["settings"].t_step, case["settings"].n_horizon
    ctrl.reset(x0)
    ctrl.step(x0, 0.0)
    assert ctrl.records[-1].success
    w0 = ctrl._shift()[0]
    x_hat = case["states"][1] * np.array([1.0, 1.15, 0.8, 1.1, 0.9])[: case["states"][1].size]
    p_new = np.asarray(ctrl.split.param_values, dtype=float) * 1.2
    t = dt
    flags = np.array([1.0 if t + k * dt < case["problem"].batch_time - 1e-9 else 0.0 for k in range(N)])
    P = np.r_[x_hat, ctrl._u_prev, p_new, flags]
    G0 = np.asarray(ctrl._eq_fun(w0, P)[0]).ravel()
    assert np.max(np.abs(G0)) > 1e-2  # the shifted solution breaks the model equations at the new estimate
    w = ctrl._corrected(w0, P)
    assert w is not None
    G = np.asarray(ctrl._eq_fun(w, P)[0]).ravel()
    assert np.max(np.abs(G)) <= ctrl.settings.correction_tol
    _, U, E, Xn = ctrl._unpack(w)
    np.testing.assert_array_equal(U, ctrl._unpack(w0)[1])  # the feeds are kept
    X = Xn * ctrl._xs[:, None]
    model = case["model"]
    plant = make_integrator(model, dt)
    x = x_hat.copy()
    np.testing.assert_allclose(X[:, 0], x_hat, rtol=1e-12, atol=1e-12)
    rtol = np.full(x.size, 1e-2 if deg == 2 else 1e-4)
    rtol[list(model.state_names).index("n_o2")] = 1e-2  # dissolved O2 relaxes within minutes (1 / kla): a collocation step sees its level
    for k in range(N):
        if flags[k]:
            x = np.asarray(plant(x0=x, p=np.r_[U[k], p_new])["xf"]).ravel()
        assert np.all(np.abs(X[:, k + 1] - x) <= rtol * np.abs(x) + 1e-6), f"node {k + 1}: {X[:, k + 1]} vs CVODES {x}"
    for k in range(N + 1):
        viol = soft_violation(X[:, k], ctrl._iv, ctrl._ig, ctrl._ia, ctrl.problem, ctrl.settings.backoff)
        np.testing.assert_allclose(E[:, k], viol, rtol=1e-12, atol=1e-12)


def test_warm_start_is_corrected_only_after_a_parameter_change(case):
    """A new state estimate alone starts IPOPT from the shifted solution (its initial-state constraint
    is linear); a new Vmax, which breaks every collocation equation, from the corrected one."""
    ctrl = _network_mpc(case)
    calls = []
    corrected = ctrl._corrected

    def spy(w0, P):
        calls.append(P.copy())
        return corrected(w0, P)

    ctrl._corrected = spy
    x0, dt = case["states"][0], case["settings"].t_step
    p = np.asarray(ctrl.split.param_values, dtype=float)
    ctrl.reset(x0)
    ctrl.step(x0, 0.0, params=p)
    ctrl.step(case["states"][1] * 1.05, dt, params=p)
    assert ctrl.records[-1].warm and ctrl.records[-1].success and calls == []
    ctrl.step(case["states"][2], 2 * dt, params=p * 1.1)
    assert ctrl.records[-1].warm and ctrl.records[-1].success and len(calls) == 1
