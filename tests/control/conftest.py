"""A closed-form fed-batch test system (Monod/Michaelis-Menten kinetics with overflow) for the control tests.

This is an honest, small do-mpc model written here so the control machinery can be tested
independently of the surrogate; it is not a stand-in for the product's process model.

States: V [L], n_glc [mmol], n_ac [mmol], n_X [gDW]; input F [L/h] of glucose at C_IN mmol/L;
parameter vmax_glc [mmol/gDW/h].
q_glc = vmax c/(KM + c); overflow q_ov = s log(1 + exp((q_glc - Q_CRIT)/s));
mu = Y_OX (q_glc - q_ov) + Y_OV q_ov; q_ac = 1.5 q_ov.
"""

from __future__ import annotations

import casadi as ca
import numpy as np
import pytest

from mpc_bio.control import BatchProblem, ReactorRoles, control_model_from_do_mpc

C_IN = 500.0  # mmol/L
KM = 1.0  # mmol/L
Q_CRIT = 5.0  # mmol/gDW/h
SMOOTH = 0.3  # mmol/gDW/h
Y_OX = 0.09  # gDW/mmol
Y_OV = 0.03  # gDW/mmol
VMAX = 10.0  # mmol/gDW/h
X0 = np.array([1.0, 10.0, 0.0, 0.1])  # V L, glc mmol, ac mmol, X gDW


def monod_do_mpc_model(symvar: str = "SX"):
    import do_mpc

    m = do_mpc.model.Model("continuous", symvar)
    V = m.set_variable("_x", "V")
    G = m.set_variable("_x", "n_glc")
    m.set_variable("_x", "n_ac")
    X = m.set_variable("_x", "n_X")
    F = m.set_variable("_u", "F")
    vmax = m.set_variable("_p", "vmax_glc")
    c = G / V
    q = vmax * c / (KM + c)
    q_ov = SMOOTH * ca.log(1 + ca.exp((q - Q_CRIT) / SMOOTH))
    mu = Y_OX * (q - q_ov) + Y_OV * q_ov
    m.set_rhs("V", F)
    m.set_rhs("n_glc", F * C_IN - q * X)
    m.set_rhs("n_ac", 1.5 * q_ov * X)
    m.set_rhs("n_X", mu * X)
    m.set_expression("mu", mu)
    m.setup()
    return m


@pytest.fixture(scope="session")
def monod_model():
    """The closed-form Monod fed-batch as a ControlModel."""
    return control_model_from_do_mpc(monod_do_mpc_model(), ReactorRoles(), {"vmax_glc": VMAX})


@pytest.fixture(scope="session")
def monod_problem():
    return BatchProblem(batch_time=6.0, feed_max=0.1, volume_max=1.3, glucose_max=30.0, acetate_max=15.0)


@pytest.fixture(scope="session")
def x0():
    return X0.copy()
