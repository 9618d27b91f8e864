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
