"""Distilled (B-spline) cell model against a closed-form cell; the process adapters."""

import casadi as ca
import numpy as np
import pytest

from mpc_bio.control import ControlError
from mpc_bio.control.distill import distill_cell_model


def _closed_form_cell():
    from mpc_bio.process import CellFluxModel

    u = ca.SX.sym("u", 2)
    g, o = u[0], u[1]
    out = ca.vertcat(0.08 * g * ca.exp(-0.02 * g) + 0.001 * o, -g, -o, 0.3 * g**2 / (4 + g))
    return CellFluxModel(
        function=ca.Function("cf", [u], [out]),
        input_names=("glucose", "oxygen"),
        input_reactions=("EX_glc__D_e", "EX_o2_e"),
        output_ids=("BIOMASS", "EX_glc__D_e", "EX_o2_e", "EX_ac_e"),
        growth_id="BIOMASS",
        domain_low=[0, 0],
        domain_high=[20, 20],
    )


def test_distilled_cell_matches_the_original_with_derivatives():
    cell = _closed_form_cell()
    d = distill_cell_model(cell, upper={"glucose": 12.0}, fixed={"oxygen": 15.0}, step=0.05)
    assert d.cell.backend == "bspline"
    assert np.all(d.max_rel_error < 1e-6)
    rng = np.random.default_rng(0)
    u = ca.SX.sym("u", 2)
    jf = ca.Function("j", [u], [ca.jacobian(d.cell.function(u), u)])
    jr = ca.Function("j", [u], [ca.jacobian(cell.function(u), u)])
    hf = ca.Function("h", [u], [ca.hessian(d.cell.function(u)[0], u)[0]])
    hr = ca.Function("h", [u], [ca.hessian(cell.function(u)[0], u)[0]])
    for q in rng.uniform(0.1, 11.9, 5):
        x = [q, 15.0]
        assert np.asarray(d.cell.function(x)).ravel() == pytest.approx(np.asarray(cell.function(x)).ravel(), rel=1e-6, abs=1e-8)
        # glucose column of the Jacobian and Hessian (the oxygen input is held fixed)
        assert np.asarray(jf(x))[:, 0] == pytest.approx(np.asarray(jr(x))[:, 0], rel=1e-4, abs=1e-6)
        assert float(hf(x)[0, 0]) == pytest.approx(float(hr(x)[0, 0]), rel=1e-2, abs=1e-5)


def test_distill_rejects_bad_inputs():
    cell = _closed_form_cell()
    with pytest.raises(ControlError, match="nitrogen"):
        distill_cell_model(cell, upper={"glucose": 10.0, "nitrogen": 1.0}, fixed={"oxygen": 15.0})
    with pytest.raises(ControlError, match="oxygen"):
        distill_cell_model(cell, upper={"glucose": 10.0})


def test_control_model_from_process_and_dfba_plant(ecoli_core):
    from mpc_bio.control.process_adapter import DfbaPlant, control_model_from_process
    from mpc_bio.process import FedBatchSettings

    reactor = FedBatchSettings(volume0=1.0, glucose0=10.0, biomass0=0.1, feed_glucose=1000.0)
    m = control_model_from_process(reactor, _closed_form_cell())
    assert m.state_names == ("V", "n_glc", "n_ac", "n_X") and m.param_names == ("vmax_glc",)
    assert m.roles.acetate == "n_ac"
    plant = DfbaPlant(reactor, ecoli_core, substeps=2)
    x0 = reactor.initial_state()
    xs = plant.step(x0, 0.05, 0.02)
    assert xs.shape == (2, 4)
    # the volume balance is exact: V(t) = V0 + F t
    assert xs[-1, 0] == pytest.approx(1.0 + 0.05 * 0.02, rel=1e-12, abs=1e-12)
    assert np.all(xs >= 0) and xs[-1, 3] > x0[3]
    assert plant.lp_solves >= 4
