"""A closed-form fed-batch test system (Monod/Michaelis-Menten kinetics with overflow) for the control tests.

This is an honest, small CasADi model written here so the control machinery can be tested
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

from mpc_bio.control import BatchProblem, ControlModel, ReactorRoles

C_IN = 500.0  # mmol/L
KM = 1.0  # mmol/L
Q_CRIT = 5.0  # mmol/gDW/h
SMOOTH = 0.3  # mmol/gDW/h
Y_OX = 0.09  # gDW/mmol
Y_OV = 0.03  # gDW/mmol
VMAX = 10.0  # mmol/gDW/h
X0 = np.array([1.0, 10.0, 0.0, 0.1])  # V L, glc mmol, ac mmol, X gDW


def monod_control_model(roles: ReactorRoles | None = None, param_values=(VMAX,)) -> ControlModel:
    """The closed-form Monod fed-batch as a plain CasADi ControlModel."""
    x, F, vmax = ca.SX.sym("x", 4), ca.SX.sym("F"), ca.SX.sym("p", 1)
    V, G, X = x[0], x[1], x[3]
    c = G / V
    q = vmax[0] * c / (KM + c)
    q_ov = SMOOTH * ca.log(1 + ca.exp((q - Q_CRIT) / SMOOTH))
    mu = Y_OX * (q - q_ov) + Y_OV * q_ov
    dx = ca.vertcat(F, F * C_IN - q * X, 1.5 * q_ov * X, mu * X)
    return ControlModel(
        rhs=ca.Function("monod_rhs", [x, F, vmax], [dx], ["x", "u", "p"], ["dxdt"]),
        state_names=("V", "n_glc", "n_ac", "n_X"),
        input_name="F",
        param_names=("vmax_glc",),
        param_values=np.asarray(param_values, dtype=float),
        roles=roles or ReactorRoles(),
        aux=ca.Function("monod_aux", [x, F, vmax], [mu], ["x", "u", "p"], ["aux"]),
        aux_names=("mu",),
    )


@pytest.fixture(scope="session")
def monod_model():
    """The closed-form Monod fed-batch as a ControlModel."""
    return monod_control_model()


@pytest.fixture(scope="session")
def monod_problem():
    return BatchProblem(batch_time=6.0, feed_max=0.1, volume_max=1.3, glucose_max=30.0, acetate_max=15.0)


@pytest.fixture(scope="session")
def x0():
    return X0.copy()
