"""The network in the MPC loop: Taylor-model MPC (design a) and batched collocation NLP (design b)
against the MPC with the native CasADi graph of the same network, on the same problem.

The reference is the do-mpc MPC with the shipped e_coli_core surrogate embedded as its native
graph (exact derivatives); the fed-batch has kLa oxygen transfer so both network inputs move. A
short horizon keeps the builds quick; the tolerances follow IPOPT's (tol 1e-8 here) and the
re-linearisation tolerance (q_tol 1e-7 mmol/gDW/h, above the solution noise of tol 1e-8):
applied feed 1e-6 L/h absolute, predicted objective 1e-6 relative, feed plan 1e-4 L/h (its last move is a flat direction of the objective),
predicted states 1e-4 relative.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mpc_bio.control import BatchProblem, MPCSettings
from mpc_bio.control.batched_nlp import build_batched_mpc
from mpc_bio.control.taylor_mpc import build_network_mpc, split_fedbatch


@pytest.fixture(scope="module")
def case():
    from mpc_bio.embed.batched import BatchedNetwork
    from mpc_bio.process import FedBatchSettings, UptakeKinetics, embed_cell_model
    from mpc_bio.surrogate import default_surrogate

    sur = default_surrogate()
    reactor = FedBatchSettings(
        volume0=1.0, glucose0=10.0, biomass0=0.1, feed_glucose=1000.0, products={"ac": "EX_ac_e"},
        kinetics=UptakeKinetics(oxygen="kla"), t_end=3.0, output_step=0.5,
    )
    cell = embed_cell_model(sur, reactor)
    split = split_fedbatch(reactor, cell)
    problem = BatchProblem(batch_time=3.0, feed_max=0.1, volume_max=1.5, glucose_max=50.0, acetate_max=40.0)
    settings = MPCSettings(t_step=0.5, n_horizon=6, collocation_deg=2, move_penalty=0.1, objective_scale=10.0,
                           max_iter=1000, tol=1e-8)
    native = build_network_mpc(split, problem, settings, flux="native")
    native.reset(reactor.initial_state())
    f0 = native.step(reactor.initial_state(), 0.0)
    return {
        "sur": sur, "reactor": reactor, "cell": cell, "split": split, "problem": problem, "settings": settings,
        "native": native, "feed0": f0, "x0": reactor.initial_state(),
        "net": BatchedNetwork(sur, split.output_ids, device="cpu", threads=1),
    }


def test_split_model_equals_the_process_model(case):
    from mpc_bio.control.process_adapter import control_model_from_process

    full = control_model_from_process(case["reactor"], case["cell"])
    rhs = case["split"].native_rhs()
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = case["x0"] * rng.uniform(0.2, 5.0, case["x0"].size)
        F = rng.uniform(0, 0.1)
        a = np.asarray(rhs(x, F, full.param_values)).ravel()
        b = np.asarray(full.rhs(x, F, full.param_values)).ravel()
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_native_reference_solved(case):
    rec = case["native"].records[-1]
    assert rec.success, rec.status
    assert 0.0 <= case["feed0"] <= 0.1


@pytest.mark.parametrize("order", [1, 2])
def test_taylor_mpc_converges_to_the_native_graph_step(case, order):
    ctrl = build_network_mpc(case["split"], case["problem"], case["settings"], flux="taylor", network=case["net"],
                             order=order, q_tol=1e-7, max_relin=40, model_tol=(0.0, 0.0))
    ctrl.reset(case["x0"])
    feed = ctrl.step(case["x0"], 0.0)
    rec = ctrl.records[-1]
    assert rec.success, (rec.status, rec.q_change, ctrl.last_trace)
    assert rec.relinearisations >= 2
    assert rec.q_change <= 1e-7
    ref = case["native"]
    # same KKT point up to IPOPT's tolerance: feed 1e-6 L/h, objective and predicted states relative 1e-6
    assert feed == pytest.approx(case["feed0"], abs=1e-6, rel=0)
    assert rec.predicted_objective == pytest.approx(ref.records[-1].predicted_objective, rel=1e-6, abs=0)
    # the last move hardly changes the objective (flat direction): the plans agree to 1e-4 L/h
    np.testing.assert_allclose(ctrl.plan(), ref.plan(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(ctrl.predicted_states(), ref.predicted_states(), rtol=1e-4, atol=1e-8)


def test_batched_nlp_step_equals_the_native_graph_step(case):
    ctrl = build_batched_mpc(case["split"], case["problem"], case["settings"], case["net"])
    ctrl.reset(case["x0"])
    calls = case["net"].calls
    feed = ctrl.step(case["x0"], 0.0)
    rec = ctrl.records[-1]
    assert rec.success, rec.status
    ref = case["native"]
    assert feed == pytest.approx(case["feed0"], abs=1e-6, rel=0)
    assert rec.predicted_objective == pytest.approx(ref.records[-1].predicted_objective, rel=1e-6, abs=0)
    np.testing.assert_allclose(ctrl.plan(), ref.plan(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(ctrl.predicted_states()[1:], ref.predicted_states()[1:], rtol=1e-4, atol=1e-8)
    # one batched torch call per evaluation of the horizon: a few per IPOPT iteration, not 12 per point
    assert case["net"].calls - calls <= 4 * (rec.iterations + 1)


def test_build_checks(case):
    from mpc_bio.control import ControlError

    with pytest.raises(ControlError, match="batched network"):
        build_network_mpc(case["split"], case["problem"], case["settings"], flux="taylor")
    with pytest.raises(ControlError, match="flux"):
        build_network_mpc(case["split"], case["problem"], case["settings"], flux="spline")
    with pytest.raises(ControlError, match="collocation_ni"):
        build_network_mpc(case["split"], case["problem"], dataclasses.replace(case["settings"], collocation_ni=2),
                          flux="taylor", network=case["net"])
