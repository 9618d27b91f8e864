"""Surrogate simulation vs the LP-in-the-loop dFBA, LP events, backends inside the simulation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mpc_bio.metabolism.pfba import PFBASolver
from mpc_bio.metabolism.settings import PFBASettings
from mpc_bio.process import FedBatchSettings, ProcessSettingsError, embed_cell_model, simulate_dfba, simulate_surrogate

from .conftest import growth_error


@pytest.fixture(scope="module")
def runs(_ecoli_core_session, fig3_settings, fig3_cell):
    """Figure-3 runs: surrogate and LP in the loop without relaxation (stops when infeasible)."""
    sur = simulate_surrogate(fig3_settings, fig3_cell)
    lp = simulate_dfba(fig3_settings, _ecoli_core_session, relax=False)  # never modified
    return sur, lp


def test_lp_run_stops_cleanly_with_event(runs, fig3_settings):
    _, lp = runs
    assert not lp.completed
    ev = lp.stop_event
    assert ev is not None and ev.kind == "lp_infeasible"
    # it stops before the feed step (5 h), when glucose is nearly exhausted (paper, figure 3 text)
    assert 3.0 < ev.time < fig3_settings.feed.times[1]
    assert ev.state["n_glc"] / ev.state["V"] < 1.0
    # the event's state is the last recorded row
    assert lp.time[-1] == pytest.approx(ev.time, abs=1e-12)
    assert lp.states[-1] == pytest.approx(np.array([ev.state[n] for n in lp.state_names]), rel=1e-12)
    assert lp.status[-1] == "infeasible" and np.isnan(lp.output("growth")[-1])


def test_surrogate_matches_lp_where_feasible(runs, ecoli_surrogate):
    """States agree within a bound derived from the surrogate's validation growth error.

    Glucose uptake is the same Michaelis-Menten term in both runs, so the runs differ through the
    growth rate: with |mu_sur - mu_lp| <= eps, biomass differs by at most exp(eps t) - 1
    relatively, and glucose consumed (= integral of q n_X) by the same factor. The adaptive
    LP-in-the-loop run is within 1e-4 of the exact dFBA (tests/process/test_dfba_adaptive.py);
    1e-4 is allowed for it.
    """
    sur, lp = runs
    eps = growth_error(ecoli_surrogate)
    ok = np.array([s == "optimal" for s in lp.status])
    t = lp.time[ok]
    idx = np.searchsorted(sur.time, t)
    assert np.allclose(sur.time[idx], t, atol=1e-9)
    bound = np.expm1(eps * t) + 1e-4
    X_s, X_l = sur.state("n_X")[idx], lp.state("n_X")[ok]
    assert np.all(np.abs(X_s - X_l) <= bound * X_l + 1e-9)
    consumed = 20.0 + 1000.0 * (lp.state("V")[ok] - 1.0) - lp.state("n_glc")[ok]
    G_s, G_l = sur.state("n_glc")[idx], lp.state("n_glc")[ok]
    assert np.all(np.abs(G_s - G_l) <= bound * consumed + 1e-6)
    # growth itself: the surrogate at the LP run's own uptakes within eps of the LP growth (the runs'
    # states differ by the bound above, and near glucose exhaustion growth falls by 0.5 /h within
    # 0.2 h, so comparing the two runs' growth at equal times would measure that state difference)
    U = np.column_stack([lp.output("q_glc"), lp.output("q_o2")])[ok]
    mu_sur = ecoli_surrogate.predict_growth(U, check_domain=False)
    assert np.all(np.abs(mu_sur - lp.output("growth")[ok]) <= eps + 1e-6)
    assert len(t) > 30


def test_relaxed_lp_run_continues(ecoli_core, fig3_settings):
    s = dataclasses.replace(fig3_settings, batch_time=8.0)
    lp = simulate_dfba(s, ecoli_core, relax=True)
    assert lp.completed and lp.time[-1] == pytest.approx(8.0)
    ev = lp.event("lp_relaxed")
    assert ev is not None and ev.time < 5.0
    assert "relaxed" in lp.status
    # growth recovers after the feed step (paper figure 3C)
    g = lp.output("growth")
    assert g[np.searchsorted(lp.time, 6.0)] > 3 * g[np.searchsorted(lp.time, 4.8)]


def test_fig3_qualitative_shape(runs, ecoli_surrogate):
    """Paper figure 3: growth drops as glucose depletes, recovers after the step, then declines."""
    sur, _ = runs
    g, t = sur.output("growth"), sur.time
    at = lambda h: g[np.searchsorted(t, h)]  # noqa: E731
    assert at(1.0) > 0.5
    assert at(4.9) < 0.5 * at(1.0)
    assert g[(t > 5) & (t < 8)].max() > 2 * at(4.9)
    assert at(24.0) < 0.2 * g[(t > 5) & (t < 8)].max()
    # total biomass never decreases beyond what the surrogate's growth error allows (its growth
    # near zero uptake is ~0 +- eps)
    X = sur.state("n_X")
    assert np.all(np.diff(X) >= -growth_error(ecoli_surrogate) * X[1:] * np.diff(t))
    assert sur.concentration("glc").min() >= -1e-8
    assert sur.in_domain.all()
    df = sur.to_pandas()
    assert {"time_h", "V_L", "n_X_gDW", "c_glc_mmol_per_L", "growth_per_h", "F_L_per_h"} <= set(df.columns)
    assert len(df) == len(t)


def test_backends_agree_in_simulation(ecoli_surrogate):
    s = FedBatchSettings(batch_time=6.0, output_step=0.5)
    native = simulate_surrogate(s, embed_cell_model(ecoli_surrogate, s, backend="native"), rtol=1e-10, atol=1e-12)
    l4c = simulate_surrogate(s, embed_cell_model(ecoli_surrogate, s, backend="l4casadi"), rtol=1e-10, atol=1e-12)
    assert l4c.states == pytest.approx(native.states, rel=1e-7, abs=1e-9)


def test_dfba_rejects_mismatched_solver_and_species(ecoli_core, fig3_settings):
    solver = PFBASolver(ecoli_core, PFBASettings(relax=True))
    with pytest.raises(ProcessSettingsError, match="relax=True"):
        simulate_dfba(fig3_settings, solver, relax=False)
    with pytest.raises(ProcessSettingsError, match="EX_nope_e"):
        simulate_dfba(FedBatchSettings(products={"nope": "EX_nope_e"}), ecoli_core)


def test_surrogate_simulator_reuse_matches_one_shot(fig3_settings, fig3_cell):
    from mpc_bio.process import SurrogateSimulator

    s = dataclasses.replace(fig3_settings, batch_time=6.0)
    sim = SurrogateSimulator(s, fig3_cell)
    a = sim.run()
    b = sim.run(vmax=8.0)
    one = simulate_surrogate(s, fig3_cell, vmax=8.0)
    assert b.states == pytest.approx(one.states, rel=1e-12, abs=1e-12)
    # a lower Vmax slows glucose uptake: less biomass at 3 h
    i = np.searchsorted(a.time, 3.0)
    assert b.state("n_X")[i] < a.state("n_X")[i]
    assert sim.run().states == pytest.approx(a.states, rel=0, abs=0)  # deterministic
    with pytest.raises(ProcessSettingsError, match="x0 must have 4"):
        sim.run(x0=[1.0, 2.0])
