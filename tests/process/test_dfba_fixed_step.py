"""The fixed-step LP-in-the-loop dFBA: its dissolved-O2 step, and the scheme against independent references.

The reactor: the linear-yield model (growth = YIELD q_glc, oxygen into a sink) at 0.5 gDW/L with
kLa 40/h, where the dissolved O2 falls to its Km and limits the uptake (the regime in which an
uptake held at its step-start value makes the step unstable). Reference: one CVODES run of the
hand-written model (tests/control/test_process_adapter.py, rtol 1e-12).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.optimize import brentq

from mpc_bio.metabolism.pfba import PFBASolver
from mpc_bio.metabolism.settings import PFBASettings
from mpc_bio.process import FedBatchSettings, FeedProfile, UptakeKinetics, simulate_dfba
from mpc_bio.process.dfba import _oxygen_step

from tests.control.test_process_adapter import _cvodes_reference
from tests.process.test_dfba_adaptive import YIELD, _linear_model

FEED = 0.01  # L/h

#: the O2-limited fed-batch: 1.5 h, the dissolved O2 from saturation down to half its Km
REACTOR = FedBatchSettings(
    volume0=1.0,
    glucose0=20.0,
    biomass0=0.5,
    feed_glucose=500.0,
    products={},
    kinetics=UptakeKinetics(oxygen="kla", kla=40.0),
    feed=FeedProfile(times=(0.0,), rates=(FEED,)),
    batch_time=1.5,
    output_step=0.05,
)


@pytest.fixture(scope="module")
def solver():
    return PFBASolver(_linear_model(), PFBASettings(maintenance_id=None, relax=False))


def _fixed(settings, solver, step):
    res = simulate_dfba(dataclasses.replace(settings, dfba_step=step), solver, relax=False, method="fixed_step")
    assert res.completed and not res.events
    return res


def _reference(settings):
    """CVODES states at the output times (the initial state included)."""
    grid = settings.time_grid()
    return np.vstack([settings.initial_state(), _cvodes_reference(settings, FEED, grid[1:])])


@pytest.mark.parametrize("integral_X", [0.0, 1e-4, 0.01, 1.0, 1e3])
@pytest.mark.parametrize("h", [1e-4, 0.005, 1.0, 1e3])
def test_oxygen_step_solves_the_backward_euler_balance(h, integral_X):
    """The root solves n = n0 + h kla (c* V - n) - vmax c / (km + c) I to rel 1e-12 (of the largest
    term), is non-negative and below the transfer-only step; both branches of the root formula."""
    kin = UptakeKinetics(oxygen="kla", kla=400.0)
    for n0, V in ((0.21, 1.0), (0.0, 2.0), (1e-6, 1.3), (-1e-9, 1.0)):
        n = _oxygen_step(n0, V, integral_X, h, kin)
        c = n / V
        uptake = kin.oxygen_vmax * c / (kin.oxygen_km + c) * integral_X
        terms = (max(n0, 0.0), h * kin.kla * kin.o2_saturation * V, h * kin.kla * n, uptake, n)
        residual = n - max(n0, 0.0) - h * kin.kla * (kin.o2_saturation * V - n) + uptake
        assert abs(residual) <= 1e-12 * max(terms)
        assert 0.0 <= n <= (max(n0, 0.0) + h * kin.kla * kin.o2_saturation * V) / (1 + h * kin.kla) * (1 + 1e-15)


def _recursion(settings, nsub):
    """The fixed-step scheme written out for the linear model: per step the glucose uptake at the
    step start (capped by the glucose available in the step), growth YIELD q held, biomass exact
    exponential, glucose by the biomass integral, dissolved O2 from the backward-Euler balance
    solved by bisection (brentq); states at the output times."""
    s, kin = settings, settings.kinetics
    kla = kin.oxygen == "kla"
    x = settings.initial_state()
    grid = s.time_grid()
    rows = [x]
    for t0, t1 in zip(grid[:-1], grid[1:]):
        h = (t1 - t0) / nsub
        for _ in range(nsub):
            V, G, X = x[0], max(x[1], 0.0), x[2]
            q = min(kin.glucose_vmax * (G / V) / (kin.glucose_km + G / V), (G + s.feed_glucose * FEED * h) / (X * h))
            mu = YIELD * q
            integral_X = X * math.expm1(mu * h) / mu
            V1 = V + h * FEED
            new = [V1, max(G + h * s.feed_glucose * FEED - q * integral_X, 0.0), X * math.exp(mu * h)]
            if kla:
                n0 = x[3]

                def balance(n, n0=n0, V1=V1, integral_X=integral_X, h=h):
                    c = n / V1
                    return n - n0 - h * kin.kla * (kin.o2_saturation * V1 - n) + kin.oxygen_vmax * c / (kin.oxygen_km + c) * integral_X

                new.append(brentq(balance, 0.0, n0 + h * kin.kla * kin.o2_saturation * V1, xtol=1e-16, rtol=4 * np.finfo(float).eps))
            x = np.array(new)
        rows.append(x)
    return np.array(rows)


@pytest.mark.parametrize("oxygen", ["fixed", "kla"])
def test_fixed_step_is_the_written_out_scheme(solver, oxygen):
    """The run equals the scheme written out by hand (rel 1e-12, abs 1e-15 in L, mmol, gDW) over 3 h,
    into the feed-limited phase. With fixed oxygen this is the scheme the
    fixed-step method had before the dissolved-O2 step became implicit (the O2 step is the only change)."""
    kin = dataclasses.replace(REACTOR.kinetics, oxygen=oxygen)
    s = dataclasses.replace(REACTOR, kinetics=kin, batch_time=3.0)
    res = _fixed(s, solver, s.dfba_step)
    assert res.info["dfba_method"] == "fixed_step"
    expected = _recursion(s, round(s.output_step / s.dfba_step))
    assert res.states == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # the glucose falls below its Km (the feed-limited phase) and, with kLa, the dissolved O2 below its Km
    assert res.concentration("glc")[-1] < 0.2 * kin.glucose_km
    if oxygen == "kla":
        assert res.states[-1, 3] < kin.oxygen_km * res.states[-1, 0]


def test_o2_limited_fixed_step_follows_cvodes(solver):
    """At the default step (0.005 h) every step of the fixed-step run against CVODES: the dissolved O2
    within rel 1e-2 (abs 1e-7 mmol) once the first 0.15 h transient from saturation is over, within
    abs 0.05 c* V (rel 0) during it; non-negative and decreasing at every step, as the reference."""
    s = dataclasses.replace(REACTOR, output_step=REACTOR.dfba_step)
    res = _fixed(s, solver, s.dfba_step)
    ref = _reference(s)
    n_o2, n_ref = res.states[:, 3], ref[:, 3]
    assert np.all(np.diff(n_ref) < 0) and n_ref[-1] < 0.5 * s.kinetics.oxygen_km * ref[-1, 0]  # O2-limited
    assert np.all(n_o2 >= 0) and np.all(np.diff(n_o2) < 0)
    late = res.time >= 0.15
    assert n_o2[late] == pytest.approx(n_ref[late], rel=1e-2, abs=1e-7)
    assert n_o2[~late] == pytest.approx(n_ref[~late], rel=0, abs=0.05 * s.kinetics.o2_saturation * s.volume0)
    # biomass: first order in the held fluxes, within rel 1e-4 (abs 0)
    assert res.states[:, 2] == pytest.approx(ref[:, 2], rel=1e-4, abs=0)


def test_fixed_step_dissolved_oxygen_converges_first_order(solver):
    """Halving the step from 0.005 h three times halves the largest dissolved-O2 error on the output
    grid (against CVODES) each time: ratios within 1.6-2.4."""
    ref = _reference(REACTOR)
    steps = REACTOR.dfba_step / 2.0 ** np.arange(4)
    errors = np.array([np.max(np.abs(_fixed(REACTOR, solver, h).states[:, 3] - ref[:, 3])) for h in steps])
    ratios = errors[:-1] / errors[1:]
    assert np.all((ratios > 1.6) & (ratios < 2.4)), (errors, ratios)
