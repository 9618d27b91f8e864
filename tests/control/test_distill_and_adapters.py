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


def test_distilled_cell_holds_boundary_values_beyond_its_grid_and_flags_them():
    cell = _closed_form_cell()
    d = distill_cell_model(cell, upper={"glucose": 12.0}, fixed={"oxygen": 15.0}, step=0.05)
    f = lambda q: np.asarray(d.cell.function([q, 15.0])).ravel()  # noqa: E731
    ref_end = np.asarray(cell.function([12.0, 15.0])).ravel()
    # beyond the grid the spline is clamped to its end (a B-spline alone returns 0 there)
    assert f(15.0) == pytest.approx(ref_end, rel=1e-6, abs=1e-8)
    assert f(-1.0) == pytest.approx(np.asarray(cell.function([0.0, 15.0])).ravel(), rel=1e-6, abs=1e-8)
    flags = d.out_of_domain([[5.0, 15.0], [15.0, 15.0], [5.0, 10.0], [-0.1, 15.0]])
    assert flags.tolist() == [False, True, True, True]
    assert not d.covers_domain  # grid ends at 12 in a domain up to 20


def test_two_dimensional_distillation_over_the_whole_domain():
    cell = _closed_form_cell()
    d = distill_cell_model(cell, upper={"glucose": None, "oxygen": None}, step=0.25)
    assert d.varying == ("glucose", "oxygen") and d.covers_domain
    assert d.grid[0][-1] == 20.0 and d.grid[1][-1] == 20.0
    # smooth closed-form outputs: a cubic spline at h = 0.25 is accurate to ~1e-5 of the range
    assert np.all(d.max_rel_error < 1e-4)
    rng = np.random.default_rng(1)
    u = ca.SX.sym("u", 2)
    jf = ca.Function("j", [u], [ca.jacobian(d.cell.function(u), u)])
    jr = ca.Function("j", [u], [ca.jacobian(cell.function(u), u)])
    for x in rng.uniform(0.5, 19.5, (5, 2)):
        assert np.asarray(d.cell.function(x)).ravel() == pytest.approx(np.asarray(cell.function(x)).ravel(), rel=1e-4, abs=1e-5)
        assert np.asarray(jf(x)) == pytest.approx(np.asarray(jr(x)), rel=1e-2, abs=1e-4)
    assert not d.out_of_domain([[19.9, 0.1]]).any()


def test_kla_control_model_oxygen_balance_matches_closed_form():
    from mpc_bio.control.process_adapter import control_model_from_process
    from mpc_bio.process import FedBatchSettings, UptakeKinetics

    kin = UptakeKinetics(oxygen="kla", kla=300.0, o2_saturation=0.2, oxygen_vmax=12.0, oxygen_km=0.01)
    reactor = FedBatchSettings(volume0=1.0, glucose0=10.0, biomass0=0.1, feed_glucose=1000.0, kinetics=kin)
    m = control_model_from_process(reactor, _closed_form_cell())
    assert m.state_names == ("V", "n_glc", "n_ac", "n_X", "n_o2")
    assert m.param_bounds[0].tolist() == [0.1, 20.0]  # 1 % of the nominal Vmax, the glucose domain's end
    x = np.array([1.2, 6.0, 0.5, 0.6, 0.06])
    dx = np.asarray(m.rhs(x, 0.02, m.param_values)).ravel()
    c_o2 = 0.06 / 1.2
    q_o2 = 12.0 * c_o2 / (0.01 + c_o2)
    assert dx[4] == pytest.approx(300.0 * (0.2 - c_o2) * 1.2 - q_o2 * 0.6, rel=1e-12, abs=1e-12)
    c_g = 6.0 / 1.2
    q_g = 10.0 * c_g / (1.0 + c_g)
    assert dx[3] == pytest.approx((0.08 * q_g * np.exp(-0.02 * q_g) + 0.001 * q_o2) * 0.6, rel=1e-12, abs=1e-12)


def test_tabulating_by_the_batched_network_equals_the_casadi_function():
    """A surrogate's cell model is tabulated by its batched numpy form; without it (batch=None) by
    its CasADi function in chunks: the two splines and their measured errors agree to round-off."""
    import dataclasses

    from mpc_bio.process import FedBatchSettings, embed_cell_model
    from mpc_bio.surrogate import default_surrogate

    cell = embed_cell_model(default_surrogate("e_coli_core"), FedBatchSettings())
    assert cell.batch is not None
    fast = distill_cell_model(cell, upper={"glucose": None, "oxygen": None}, step=0.4)
    slow = distill_cell_model(dataclasses.replace(cell, batch=None), upper={"glucose": None, "oxygen": None}, step=0.4)
    assert fast.max_abs_error == pytest.approx(slow.max_abs_error, rel=1e-9, abs=1e-12)
    for x in np.random.default_rng(2).uniform(0.0, 20.0, (20, 2)):
        a, b = np.asarray(fast.cell.function(x)).ravel(), np.asarray(slow.cell.function(x)).ravel()
        assert a == pytest.approx(b, rel=1e-10, abs=1e-12)
