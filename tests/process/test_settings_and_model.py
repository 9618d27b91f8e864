"""Settings validation, the right-hand side against closed forms, the do-mpc model, carbon balance."""

from __future__ import annotations

import casadi as ca
import numpy as np
import pytest

from mpc_bio.process import (
    CellFluxModel,
    FedBatchSettings,
    FeedProfile,
    ProcessSettingsError,
    UptakeKinetics,
    embed_cell_model,
    fedbatch_integrator,
    fedbatch_ode,
    simulate_surrogate,
)

from .conftest import carbon_numbers


# ------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"volume0": -1.0}, "'volume0'.*> 0.*-1.0"),
        ({"biomass0": 0.0}, "'biomass0'"),
        ({"glucose0": float("nan")}, "'glucose0'"),
        ({"products0": {"lac": 1.0}}, r"'products0'.*must be a table of the tracked products \['ac'\]. Got \{'lac': 1.0\}"),
        ({"products": {"glc": "EX_ac_e"}}, "'products'.*identifiers other than 'glc'.*Got {'glc'"),
        ({"products": {"x": "EX_glc__D_e"}}, "'products'.*other than the glucose and oxygen inputs.*Got {'x'"),
        ({"glucose_rate": "lp"}, "'glucose_rate'"),
        ({"dfba_step": 1.0}, "'dfba_step'"),
        ({"product_uptake_gate": -1e-3}, "'product_uptake_gate'"),
        ({"volume0": True}, "'volume0'"),
    ],
)
def test_bad_reactor_settings_raise(kwargs, match):
    with pytest.raises(ProcessSettingsError, match=match):
        FedBatchSettings(**kwargs)


def test_bad_kinetics_and_feed_raise():
    with pytest.raises(ProcessSettingsError, match="'oxygen' parameter of UptakeKinetics must be one of 'fixed', 'kla'. Got 'pure'"):
        UptakeKinetics(oxygen="pure")
    with pytest.raises(ProcessSettingsError, match="'glucose_km'"):
        UptakeKinetics(glucose_km=0.0)
    with pytest.raises(ProcessSettingsError, match="'times'.*starts at 0 and increases strictly"):
        FeedProfile(times=(0.0, 5.0, 4.0), rates=(0.0, 0.1, 0.2))
    with pytest.raises(ProcessSettingsError, match="'rates'.*equal length to times"):
        FeedProfile(times=(0.0, 5.0), rates=(0.1,))
    with pytest.raises(ProcessSettingsError, match="'rates'"):
        FeedProfile(times=(0.0,), rates=(-0.1,))
    with pytest.raises(ProcessSettingsError, match=r"Unknown key\(s\) \['volume'\] in FedBatchSettings"):
        FedBatchSettings.from_dict({"volume": 1.0})


def test_settings_round_trip():
    s = FedBatchSettings(products={"ac": "EX_ac_e", "etoh": "EX_etoh_e"}, products0={"ac": 2.0})
    assert FedBatchSettings.from_dict(s.to_dict()) == s
    assert s.state_names == ("V", "n_glc", "n_ac", "n_etoh", "n_X")
    assert s.initial_state() == pytest.approx([1.0, 20.0, 2.0, 0.0, 0.1], rel=0, abs=0)


def test_surrogate_without_needed_outputs_or_inputs_raises(ecoli_surrogate):
    with pytest.raises(ProcessSettingsError, match="EX_nope_e"):
        embed_cell_model(ecoli_surrogate, FedBatchSettings(products={"nope": "EX_nope_e"}))
    with pytest.raises(ProcessSettingsError, match="no glucose input 'glc'"):
        embed_cell_model(ecoli_surrogate, FedBatchSettings(glucose_input="glc"))


# ------------------------------------------------------------------ closed-form right-hand side
def _linear_cell(a=0.05, b=0.8, symbolic="SX") -> CellFluxModel:
    """growth = a q_glc, acetate = b q_glc, glucose exchange = -q_glc, oxygen exchange = -q_o2."""
    sym = ca.SX if symbolic == "SX" else ca.MX
    u = sym.sym("u", 2)
    out = ca.vertcat(a * u[0], -u[0], -u[1], b * u[0])
    return CellFluxModel(
        function=ca.Function("lin", [u], [out]),
        input_names=("glucose", "oxygen"),
        input_reactions=("EX_glc__D_e", "EX_o2_e"),
        output_ids=("BIOMASS", "EX_glc__D_e", "EX_o2_e", "EX_ac_e"),
        growth_id="BIOMASS",
        domain_low=[0, 0],
        domain_high=[20, 20],
    )


def test_rhs_matches_closed_form():
    s = FedBatchSettings(feed_glucose=500.0)
    ode = fedbatch_ode(s, _linear_cell())
    x = np.array([1.5, 3.0, 0.7, 0.9])  # V, n_glc, n_ac, n_X
    F = 0.02
    c = 3.0 / 1.5
    q = 10.0 * c / (1.0 + c)
    expected = [F, 500.0 * F - q * 0.9, 0.8 * q * 0.9, 0.05 * q * 0.9]
    assert np.array(ode.rhs(x, F, [])).ravel() == pytest.approx(expected, rel=1e-14, abs=1e-14)
    y = np.array(ode.outputs(x, F, [])).ravel()
    assert y[:4] == pytest.approx([0.05 * q, q, 15.0, 0.8 * q], rel=1e-14, abs=1e-14)


def test_kla_mode_oxygen_balance():
    kin = UptakeKinetics(oxygen="kla", kla=100.0, oxygen_vmax=12.0, oxygen_km=0.01, o2_saturation=0.2)
    s = FedBatchSettings(kinetics=kin)
    ode = fedbatch_ode(s, _linear_cell())
    x = np.array([1.0, 5.0, 0.0, 0.5, 0.05])
    c_o2 = 0.05
    q_o2 = 12.0 * c_o2 / (0.01 + c_o2)
    dx = np.array(ode.rhs(x, 0.0, [])).ravel()
    assert dx[4] == pytest.approx(100.0 * (0.2 - c_o2) * 1.0 - q_o2 * 0.5, rel=1e-14, abs=1e-14)


def test_glucose_never_negative_without_feed():
    s = FedBatchSettings(feed=FeedProfile(times=(0.0,), rates=(0.0,)), glucose0=5.0, biomass0=1.0, batch_time=20.0)
    res = simulate_surrogate(s, _linear_cell(a=0.1))
    # the uptake vanishes at c = 0, so only integrator error (atol 1e-10 mmol per step) can undershoot
    assert res.state("n_glc").min() >= -1e-8
    assert res.state("n_glc")[-1] == pytest.approx(0.0, abs=1e-3)
    # all glucose went into biomass (a) and acetate (b): closed-form yields
    dX = res.state("n_X")[-1] - res.state("n_X")[0]
    assert dX == pytest.approx(0.1 * (5.0 - res.state("n_glc")[-1]), rel=1e-6, abs=1e-8)
    assert res.state("n_ac")[-1] == pytest.approx(0.8 * (5.0 - res.state("n_glc")[-1]), rel=1e-6, abs=1e-8)


def test_mx_only_cell_refuses_sx():
    cell = _linear_cell(symbolic="MX")
    object.__setattr__(cell, "symbolic", "MX")
    with pytest.raises(ProcessSettingsError, match="MX"):
        fedbatch_ode(FedBatchSettings(), cell, symbolic="SX")


# ------------------------------------------------------------------ carbon balance
def test_reactor_conserves_carbon(ecoli_surrogate, ecoli_core):
    """Carbon fed = carbon left as glucose + secreted products + biomass (mass-balanced surrogate)."""
    ex_c = [r.id for r in ecoli_core.exchanges if r.id not in ("EX_glc__D_e",) and carbon_numbers(ecoli_core, [r.id])[0] > 0]
    prods = {rid[3:-2].replace("__", "_"): rid for rid in ex_c}
    # gate off: the reactor must book exactly the cell model's fluxes (some tiny predicted
    # uptakes of absent products then make those amounts slightly negative, which is fine here)
    s = FedBatchSettings(products=prods, glucose_rate="surrogate", product_uptake_gate=0.0, batch_time=4.0)
    cell = embed_cell_model(ecoli_surrogate, s)
    res = simulate_surrogate(s, cell, rtol=1e-11, atol=1e-12)
    bio = ecoli_core.reactions.get_by_id(ecoli_surrogate.objective_id)
    c_per_gdw = -sum(coef * m.elements.get("C", 0) for m, coef in bio.metabolites.items())  # mmol C / gDW
    c_prod = carbon_numbers(ecoli_core, list(prods.values()))
    fed = 6.0 * (s.glucose0 * s.volume0 + s.feed_glucose * (res.state("V") - s.volume0))
    held = (
        6.0 * res.state("n_glc")
        + sum(c * res.state(f"n_{p}") for c, p in zip(c_prod, prods))
        + c_per_gdw * (res.state("n_X") - res.state("n_X")[0])
    )
    # tolerance: the projection makes S v = 0 to ~1e-9 mmol/gDW/h (surrogate metric), the
    # integrator tolerances add ~1e-9 relative; 1e-6 of the carbon fed is well above both.
    assert res.completed and res.time[-1] == pytest.approx(4.0)
    assert held == pytest.approx(fed, rel=1e-6, abs=1e-8)
    assert res.state("n_co2")[-1] > 1.0  # the balance is not trivially about nothing


# ------------------------------------------------------------------ derivatives of the simulation
def test_simulation_derivatives_match_finite_differences(fig3_settings, fig3_cell):
    ode = fedbatch_ode(fig3_settings, fig3_cell, vmax_as_parameter=True)
    integ = fedbatch_integrator(ode, 0.0, [3.0], rtol=1e-12, atol=1e-12)
    x0 = fig3_settings.initial_state()
    p = np.array([0.01, 10.0])  # F [L/h], vmax [mmol/gDW/h]
    xs, ps = ca.MX.sym("x0", len(x0)), ca.MX.sym("p", 2)
    xf = integ(x0=xs, p=ps)["xf"]
    J = ca.Function("J", [xs, ps], [ca.jacobian(xf, ca.vertcat(xs, ps))])(x0, p)
    J = np.array(J)
    z0 = np.concatenate([x0, p])

    def sim(z):
        return np.array(integ(x0=z[: len(x0)], p=z[len(x0) :])["xf"]).ravel()

    for j in range(len(z0)):
        h = 1e-5 * max(1.0, abs(z0[j]))
        e = np.zeros_like(z0)
        e[j] = h
        fd = (sim(z0 + e) - sim(z0 - e)) / (2 * h)
        # central differences: truncation ~h^2 |x'''|, rounding ~1e-12/h; 1e-5 relative covers both
        assert J[:, j] == pytest.approx(fd, rel=1e-5, abs=1e-6)
