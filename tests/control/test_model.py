"""The control view of a fed-batch model against closed-form values."""

import numpy as np
import pytest

from .conftest import C_IN, KM, Q_CRIT, SMOOTH, VMAX, Y_OV, Y_OX
from mpc_bio.control import ControlError, ReactorRoles, constraint_margins, simulate_feed


def _monod_rhs(x, f, vmax):
    V, G, A, X = x
    c = G / V
    q = vmax * c / (KM + c)
    q_ov = SMOOTH * np.log1p(np.exp((q - Q_CRIT) / SMOOTH))
    mu = Y_OX * (q - q_ov) + Y_OV * q_ov
    return np.array([f, f * C_IN - q * X, 1.5 * q_ov * X, mu * X])


def test_rhs_matches_closed_form(monod_model):
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.uniform([0.5, 0.1, 0.0, 0.05], [2.0, 60.0, 10.0, 3.0])
        f = rng.uniform(0, 0.2)
        got = np.asarray(monod_model.rhs(x, f, monod_model.param_values)).ravel()
        assert got == pytest.approx(_monod_rhs(x, f, VMAX), rel=1e-12, abs=1e-12)


def test_roles_are_checked():
    from .conftest import monod_control_model

    with pytest.raises(ControlError, match="biomass"):
        monod_control_model(ReactorRoles(biomass="X"))
    with pytest.raises(ControlError, match="param_values"):
        monod_control_model(param_values=())


def test_simulation_without_uptake_is_exact(monod_model, monod_problem, x0):
    # Vmax = 0: no uptake, no growth; volume and glucose rise linearly with the feed (closed form).
    f = 0.04
    tr = simulate_feed(monod_model, monod_problem, x0, lambda t, x: f, dt=0.1, params=[0.0])
    T = monod_problem.batch_time
    assert tr.states[-1, 0] == pytest.approx(x0[0] + f * T, rel=1e-9, abs=1e-12)
    assert tr.states[-1, 1] == pytest.approx(x0[1] + f * C_IN * T, rel=1e-8, abs=1e-10)
    # the smooth overflow term leaves q_ov = 0.3 log(1 + e^(-5/0.3)) ~ 2e-8 at zero uptake
    assert tr.states[-1, 3] == pytest.approx(x0[3], rel=1e-6, abs=0.0)
    m = constraint_margins(monod_model, monod_problem, tr.states[-1])
    assert m["volume"][0] == pytest.approx(1 - (x0[0] + f * T) / monod_problem.volume_max, rel=1e-9, abs=1e-12)


def test_feed_stops_at_volume_max(monod_model, monod_problem, x0):
    tr = simulate_feed(monod_model, monod_problem, x0, lambda t, x: monod_problem.feed_max, dt=0.1)
    assert tr.states[:, 0].max() <= monod_problem.volume_max + 1e-9
