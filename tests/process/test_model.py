"""The fed-batch ODE: its symbol type, and its split at the cell model."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.process import FedBatchSettings, UptakeKinetics, fedbatch_integrator, fedbatch_ode
from mpc_bio.process.model import fedbatch_split

from .test_settings_and_model import _linear_cell


@pytest.mark.parametrize(("cell_symbolic", "asked", "expected"), [("SX", None, "SX"), ("SX", "MX", "MX"), ("MX", None, "MX")])
def test_ode_carries_its_symbol_type(cell_symbolic, asked, expected):
    """Default: the cell model's type; ``symbolic="MX"`` on an SX cell gives MX functions. The CVODES
    integrator built on ``ode.symbolic`` gives the trajectory of the SX-built ODE (rel 1e-8, abs 1e-10
    mmol: the same model, integrated to 1e-10 / 1e-12)."""
    s = FedBatchSettings(feed_glucose=500.0, glucose0=5.0, biomass0=0.5)
    cell = _linear_cell(symbolic=cell_symbolic)
    object.__setattr__(cell, "symbolic", cell_symbolic)
    ode = fedbatch_ode(s, cell, symbolic=asked)
    assert ode.symbolic == expected
    assert ode.rhs.is_a(f"{expected}Function") and ode.outputs.is_a(f"{expected}Function")
    times = [0.5, 1.0, 2.0]
    x0 = s.initial_state()
    X = np.array(fedbatch_integrator(ode, 0.0, times)(x0=x0, p=[0.01])["xf"])
    ref = np.array(fedbatch_integrator(fedbatch_ode(s, _linear_cell()), 0.0, times)(x0=x0, p=[0.01])["xf"])
    np.testing.assert_allclose(X, ref, rtol=1e-8, atol=1e-10)


def test_split_outputs_equal_the_ode_outputs():
    """``fedbatch_split``'s outputs, given the cell model's fluxes at its uptakes, are the ODE's outputs
    (kLa oxygen, a product near zero so its uptake gate acts; rel 1e-14, abs 1e-14)."""
    kin = UptakeKinetics(oxygen="kla", kla=100.0, oxygen_vmax=12.0, oxygen_km=0.01, o2_saturation=0.2)
    s = FedBatchSettings(kinetics=kin)
    cell = _linear_cell()
    ode, split = fedbatch_ode(s, cell, vmax_as_parameter=True), fedbatch_split(s, cell)
    for x in ([1.0, 5.0, 1e-9, 0.5, 0.05], [2.0, 0.3, 4.0, 1.5, 0.01]):
        v = cell.function(split.uptakes(x, [8.0]))
        ref = np.array(ode.outputs(x, 0.02, [8.0])).ravel()
        assert np.array(split.outputs(x, 0.02, [8.0], v)).ravel() == pytest.approx(ref, rel=1e-14, abs=1e-14)


def test_split_with_exchange_glucose_is_the_dfba_right_hand_side():
    """``fedbatch_split`` on a :class:`FluxLayout` with ``glucose_rate="exchange"`` is the LP-in-the-loop
    right-hand side written out in numpy (the LP's glucose exchange ungated, products gated, kLa oxygen
    with the kinetic uptake): 500 random states and flux vectors, some amounts near zero or negative
    (rel 1e-12, abs 1e-12)."""
    from mpc_bio.process.kinetics import gated_rate, oxygen_uptake
    from mpc_bio.process.model import FluxLayout

    kin = UptakeKinetics(oxygen="kla", kla=300.0)
    s = FedBatchSettings(kinetics=kin, products={"ac": "EX_ac_e", "etoh": "EX_etoh_e"}, product_uptake_gate=0.01)
    ids = ("BIOMASS", "EX_glc__D_e", "EX_ac_e", "EX_etoh_e")
    split = fedbatch_split(s, FluxLayout(("oxygen", "glucose"), ids, "BIOMASS"), glucose_rate="exchange")
    rng = np.random.default_rng(3)
    for _ in range(500):
        x = rng.uniform(0.0, 5.0, 6)  # V, n_glc, n_ac, n_etoh, n_X, n_o2
        x[0] += 0.5
        x[rng.integers(1, 6)] = rng.uniform(-1e-3, 1e-3)
        F, v = rng.uniform(0.0, 0.1), rng.normal(0.0, 10.0, 4)
        V, nX = x[0], x[4]
        c = np.maximum(x, 0.0) / V
        qo = oxygen_uptake(c[5], kin)
        ref = [
            F,
            s.feed_glucose * F + v[1] * nX,
            gated_rate(v[2], c[2], 0.01, np.where) * nX,
            gated_rate(v[3], c[3], 0.01, np.where) * nX,
            v[0] * nX,
            kin.kla * (kin.o2_saturation - c[5]) * V - qo * nX,
        ]
        assert np.array(split.rhs(x, F, split.param_values, v)).ravel() == pytest.approx(np.array(ref, dtype=float), rel=1e-12, abs=1e-12)
        q = np.array(split.uptakes(x, split.param_values)).ravel()
        assert q == pytest.approx([qo, kin.glucose_vmax * c[1] / (kin.glucose_km + c[1])], rel=1e-12, abs=1e-12)


def test_split_refuses_an_unknown_glucose_rate_and_a_missing_reaction():
    from mpc_bio.process import ProcessSettingsError
    from mpc_bio.process.model import FluxLayout

    layout = FluxLayout(("glucose", "oxygen"), ("BIOMASS", "EX_ac_e"), "BIOMASS")
    with pytest.raises(ProcessSettingsError, match="'glucose_rate' parameter of fedbatch_split"):
        fedbatch_split(FedBatchSettings(), layout, glucose_rate="lp")
    with pytest.raises(ProcessSettingsError, match="no reaction 'EX_glc__D_e'"):
        fedbatch_split(FedBatchSettings(), layout, glucose_rate="exchange")
