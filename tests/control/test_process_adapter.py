"""The control model of the process ODE uses the ODE's symbol type; the dFBA plant continues its state."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mpc_bio.control.process_adapter import control_model_from_process
from mpc_bio.process import FedBatchSettings

from tests.process.test_dfba_adaptive import YIELD, _linear_model

from .test_distill_and_adapters import _closed_form_cell


@pytest.mark.parametrize(("symvar", "expected"), [(None, "SX"), ("MX", "MX"), ("SX", "SX")])
def test_control_model_takes_the_ode_symbol_type(symvar, expected):
    """An SX cell model: SX by default, MX when asked; the right-hand side is a function of that type."""
    m = control_model_from_process(FedBatchSettings(), _closed_form_cell(), symvar=symvar)
    assert m.symvar == expected
    assert m.rhs.is_a(f"{expected}Function")


def _cvodes_reference(reactor, feed, times):
    """The linear model's fed-batch with kLa oxygen written out by hand (growth = YIELD q_glc), one
    CVODES run at rtol 1e-12, atol 1e-14 from the reactor's initial state."""
    import casadi as ca

    kin = reactor.kinetics
    x = ca.SX.sym("x", 4)  # V, n_glc, n_X, n_o2
    V, nG, nX, nO = x[0], x[1], x[2], x[3]
    c_glc, c_o2 = ca.fmax(nG, 0) / V, ca.fmax(nO, 0) / V
    q = kin.glucose_vmax * c_glc / (kin.glucose_km + c_glc)
    qo = kin.oxygen_vmax * c_o2 / (kin.oxygen_km + c_o2)
    dx = ca.vertcat(feed, reactor.feed_glucose * feed - q * nX, YIELD * q * nX, kin.kla * (kin.o2_saturation - c_o2) * V - qo * nX)
    opts = {"reltol": 1e-12, "abstol": 1e-14, "max_num_steps": 100000}
    integ = ca.integrator("ref", "cvodes", {"x": x, "ode": dx}, 0.0, list(times), opts)
    return np.array(integ(x0=reactor.initial_state())["xf"]).T


def test_kla_dfba_plant_carries_dissolved_oxygen_across_steps():
    """k control steps of the dFBA plant under kLa oxygen give the uninterrupted trajectory: the
    dissolved O2 is carried from step to step, not reset to saturation. The adaptive plant against
    one CVODES run of the hand-written model (rel 1e-6, abs 1e-9 in L, mmol, gDW); the default
    fixed-step plant against one uninterrupted fixed-step run over the same grid (rel 1e-9, abs 1e-12)."""
    from mpc_bio.control.process_adapter import DfbaPlant
    from mpc_bio.process import FeedProfile, UptakeKinetics, simulate_dfba

    reactor = FedBatchSettings(
        volume0=1.0, glucose0=20.0, biomass0=0.5, feed_glucose=500.0, products={}, kinetics=UptakeKinetics(oxygen="kla", kla=40.0)
    )
    model = _linear_model(maintenance=True)  # the plant's pFBA relaxes a maintenance bound
    feed, dt, k, substeps = 0.01, 0.25, 6, 5
    times = dt / substeps * np.arange(1, k * substeps + 1)
    ref = _cvodes_reference(reactor, feed, times)
    plant = DfbaPlant(reactor, model, relax=False, substeps=substeps, method="adaptive", rtol=1e-10, atol=1e-12)
    x, states = reactor.initial_state(), []
    for _ in range(k):
        xs = plant.step(x, feed, dt)
        states.append(xs)
        x = xs[-1]
    states = np.vstack(states)
    assert not plant.events
    # the dissolved O2 falls well below saturation (a reset would show at every step start)
    assert states[-1, 3] < 0.5 * reactor.kinetics.o2_saturation * states[-1, 0]
    np.testing.assert_allclose(states, ref, rtol=1e-6, atol=1e-9)

    # the fixed-step plant (the default kLa 400 /h) against one uninterrupted fixed-step run
    reactor = dataclasses.replace(reactor, kinetics=UptakeKinetics(oxygen="kla", kla=400.0))
    fixed = DfbaPlant(reactor, model, relax=False, substeps=substeps)
    x, fixed_states = reactor.initial_state(), []
    for _ in range(k):
        xs = fixed.step(x, feed, dt)
        fixed_states.append(xs)
        x = xs[-1]
    whole = dataclasses.replace(
        reactor, feed=FeedProfile(times=(0.0,), rates=(feed,)), batch_time=k * dt, output_step=dt / substeps, dfba_step=reactor.dfba_step
    )
    one_run = simulate_dfba(whole, fixed.solver, relax=False)
    assert one_run.info["dfba_method"] == "fixed_step"
    assert np.all(one_run.states[:, 3] > 10 * reactor.kinetics.oxygen_km * one_run.states[:, 0])
    np.testing.assert_allclose(np.vstack(fixed_states), one_run.states[1:], rtol=1e-9, atol=1e-12)
