"""The adaptive LP-in-the-loop dFBA against a closed-form batch and an independent tight integration.

Error measures: biomass relative to itself; glucose (which goes to zero) relative to its initial
amount, so both tolerances (rel, abs) are stated in every comparison.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from mpc_bio.metabolism.pfba import PFBASolver
from mpc_bio.metabolism.settings import PFBASettings
from mpc_bio.process import FedBatchSettings, FeedProfile, ProcessSettingsError, UptakeKinetics, simulate_dfba
from mpc_bio.process.kinetics import glucose_uptake

#: biomass yield of the linear model, gDW per mmol glucose
YIELD = 0.09


def _linear_model(maintenance: bool = False):
    """glucose -> biomass with a fixed yield (growth = YIELD * q_glc), oxygen taken up into a sink;
    ``maintenance``: with an ATPM reaction of lower bound 0 (for the default pFBA settings)."""
    import cobra

    m = cobra.Model("linear_yield")
    glc, o2 = cobra.Metabolite("glc__D_e", compartment="e"), cobra.Metabolite("o2_e", compartment="e")
    ex_glc, ex_o2 = cobra.Reaction("EX_glc__D_e"), cobra.Reaction("EX_o2_e")
    ex_glc.add_metabolites({glc: -1.0})
    ex_o2.add_metabolites({o2: -1.0})
    ex_glc.bounds = ex_o2.bounds = (-1000.0, 1000.0)
    sink = cobra.Reaction("O2SINK", lower_bound=0.0, upper_bound=1000.0)
    sink.add_metabolites({o2: -1.0})
    bio = cobra.Reaction("Biomass", lower_bound=0.0, upper_bound=1000.0)
    bio.add_metabolites({glc: -1.0 / YIELD})
    m.add_reactions([ex_glc, ex_o2, sink, bio])
    if maintenance:
        m.add_reactions([cobra.Reaction("ATPM", lower_bound=0.0, upper_bound=1000.0)])
    m.objective = "Biomass"
    return m


def _batch_glucose_exact(t, c0, x0, vmax, km):
    """Closed-form batch: dc/dt = -vmax c / (km + c) x, x = x0 + YIELD (c0 - c) (mmol/L, gDW/L, h).

    With A = x0 + Y c0 and B = 1 + km Y / A, separation of variables gives
    t(c) = -[(km / A) ln(c / c0) - (B / Y) ln((A - Y c) / (A - Y c0))] / vmax, inverted by bisection.
    """
    Y = YIELD
    A = x0 + Y * c0
    B = 1.0 + km * Y / A

    def t_of_c(c):
        return -((km / A) * math.log(c / c0) - (B / Y) * math.log((A - Y * c) / (A - Y * c0))) / vmax

    if t == 0.0:
        return c0
    return brentq(lambda c: t_of_c(c) - t, 1e-300, c0, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)


def test_adaptive_matches_closed_form_batch():
    kin = UptakeKinetics(glucose_vmax=10.0, glucose_km=1.0, oxygen_uptake=2.0)
    s = FedBatchSettings(
        volume0=1.5,
        glucose0=20.0,
        biomass0=0.1,
        products={},
        kinetics=kin,
        feed=FeedProfile(times=(0.0,), rates=(0.0,)),
        batch_time=8.0,
        output_step=0.1,
    )
    pf = PFBASettings(maintenance_id=None, relax=False)
    res = simulate_dfba(s, _linear_model(), pfba_settings=pf, relax=False)
    assert res.completed and res.info["dfba_method"] == "adaptive"
    c_exact = np.array([_batch_glucose_exact(t, 20.0, 0.1, 10.0, 1.0) for t in res.time])
    x_exact = 0.1 + YIELD * (20.0 - c_exact)
    # the batch passes through exponential growth, glucose exhaustion (c ~ km at ~ 5 h) and a stationary phase
    assert c_exact[-1] < 1e-3 and x_exact[-1] > 15 * 0.1
    assert res.concentration("glc") == pytest.approx(c_exact, rel=1e-6, abs=1e-6 * 20.0)
    assert res.concentration("X") == pytest.approx(x_exact, rel=1e-6, abs=1e-12)
    assert res.state("V") == pytest.approx(np.full(len(res.time), 1.5), rel=1e-15, abs=0)
    # the LP's growth at the recorded uptakes is the linear model's
    assert res.output("growth") == pytest.approx(YIELD * res.output("q_glc"), rel=1e-7, abs=1e-12)
    # the fixed-step baseline of the same batch is first order: 1e3x further from the exact solution
    fixed = simulate_dfba(s, _linear_model(), pfba_settings=pf, relax=False, method="fixed_step")
    err_fixed = np.max(np.abs(fixed.concentration("glc") - c_exact)) / 20.0
    err_adaptive = np.max(np.abs(res.concentration("glc") - c_exact)) / 20.0
    assert err_fixed > 1e3 * err_adaptive


def _reference(settings, solver, t_eval, rtol=1e-11, atol=1e-12):
    """Independent tight dFBA: scipy's DOP853 with the pFBA in the right-hand side (feed constant)."""
    s = settings
    names = s.state_names
    iV, iG, iX = names.index("V"), names.index("n_glc"), names.index("n_X")
    iP = [(names.index(f"n_{p}"), solver.reaction_ids.index(r)) for p, r in s.products.items()]
    i_mu, i_glc = solver.reaction_ids.index(solver.objective_id), solver.reaction_ids.index(s.glucose_exchange)
    F = s.feed.rate(0.0)
    if any(0 < t < t_eval[-1] for t in s.feed.times):
        raise ValueError("the reference integrates one constant-feed segment")

    def f(t, x):
        q = float(glucose_uptake(max(x[iG], 0.0) / x[iV], s.kinetics))
        pt = solver.solve([q, s.kinetics.oxygen_uptake])
        if not pt.ok:
            raise RuntimeError(f"LP {pt.status} at t = {t} h inside the reference window")
        v = pt.fluxes
        dx = np.zeros_like(x)
        dx[iV] = F
        dx[iG] = s.feed_glucose * F + v[i_glc] * x[iX]
        for i, r in iP:
            dx[i] = v[r] * x[iX]  # secretion only in this window (the gate acts on uptake)
        dx[iX] = v[i_mu] * x[iX]
        return dx

    sol = solve_ivp(f, (0.0, float(t_eval[-1])), s.initial_state(), method="DOP853", t_eval=t_eval, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(sol.message)
    return sol.y.T


@pytest.fixture(scope="module")
def fig3_runs(_ecoli_core_session):
    s = FedBatchSettings()  # paper figure 3: feed step at 5 h, oxygen uptake fixed at 15
    solver = PFBASolver(_ecoli_core_session, PFBASettings(relax=False))  # the model is never modified
    adaptive = simulate_dfba(s, solver, relax=False)
    fixed = simulate_dfba(s, solver, relax=False, method="fixed_step")
    return s, solver, adaptive, fixed


def test_adaptive_matches_tight_reference_over_feasible_window(fig3_runs):
    s, solver, res, fixed = fig3_runs
    ev = res.stop_event
    assert ev is not None and ev.kind == "lp_infeasible"
    assert 3.0 < ev.time < 5.0  # glucose runs low before the feed step
    ok = np.array([st == "optimal" for st in res.status])
    t = res.time[ok]
    assert len(t) > 40 and t[-1] > ev.time - s.output_step - 1e-9
    ref = _reference(s, solver, t)
    iX, iG = s.state_names.index("n_X"), s.state_names.index("n_glc")
    G0 = s.glucose0 * s.volume0
    assert res.states[ok, iX] == pytest.approx(ref[:, iX], rel=1e-4, abs=0)
    assert res.states[ok, iG] == pytest.approx(ref[:, iG], rel=1e-4, abs=1e-4 * G0)
    # the fixed-step baseline misses the same tolerance near glucose exhaustion
    okf = np.array([st == "optimal" for st in fixed.status])
    n = min(okf.sum(), len(t))
    assert np.max(np.abs(fixed.states[:n, iG] - ref[:n, iG])) > 1e-4 * G0


def test_adaptive_event_brackets_the_infeasible_lp(fig3_runs):
    s, solver, res, _ = fig3_runs
    ev = res.stop_event
    assert res.time[-1] == pytest.approx(ev.time, rel=0, abs=1e-12)
    assert res.status[-1] == "infeasible" and np.isnan(res.output("growth")[-1])
    assert res.states[-1] == pytest.approx(np.array([ev.state[n] for n in res.state_names]), rel=1e-12, abs=0)

    def status_at(x):
        q = float(glucose_uptake(max(x[1], 0.0) / x[0], s.kinetics))
        return solver.solve([q, s.kinetics.oxygen_uptake]).status

    assert status_at(res.states[-1]) == "infeasible"
    # 1e-6 h before the event (tight reference integration) the LP still has a solution
    before = _reference(s, solver, np.array([0.0, ev.time - 1e-6]))[-1]
    assert status_at(before) == "optimal"


def test_adaptive_relaxed_run_matches_tight_run(ecoli_core):
    """Across the relaxation onset and the feed step: default tolerances against rtol 1e-11."""
    s = dataclasses.replace(FedBatchSettings(), batch_time=8.0)
    solver = PFBASolver(ecoli_core, PFBASettings(relax=True))
    res = simulate_dfba(s, solver, relax=True)
    tight = simulate_dfba(s, solver, relax=True, rtol=1e-11, atol=1e-13)
    assert res.completed and tight.completed
    assert res.event("lp_relaxed") is not None
    iX, iG = s.state_names.index("n_X"), s.state_names.index("n_glc")
    G0 = s.glucose0 * s.volume0
    assert res.states[:, iX] == pytest.approx(tight.states[:, iX], rel=1e-4, abs=0)
    assert res.states[:, iG] == pytest.approx(tight.states[:, iG], rel=1e-4, abs=1e-4 * G0)
    # the tight run against the independent DOP853 integration on the first (constant-feed) segment
    seg = tight.time <= 4.0 + 1e-9
    ref = _reference(dataclasses.replace(s, batch_time=4.0), solver, tight.time[seg])
    assert tight.states[seg, iX] == pytest.approx(ref[:, iX], rel=1e-7, abs=0)
    assert tight.states[seg, iG] == pytest.approx(ref[:, iG], rel=1e-7, abs=1e-7 * G0)


def test_method_and_tolerance_checks(ecoli_core):
    s = FedBatchSettings(batch_time=0.2)
    with pytest.raises(ProcessSettingsError, match="'method' parameter of simulate_dfba"):
        simulate_dfba(s, ecoli_core, method="rk4")
    with pytest.raises(ProcessSettingsError, match="'rtol' parameter of simulate_dfba"):
        simulate_dfba(s, ecoli_core, rtol=0.0)
    with pytest.raises(ProcessSettingsError, match="max_steps=3"):
        simulate_dfba(s, ecoli_core, max_steps=3)
    with pytest.raises(ProcessSettingsError, match="'x0' parameter of simulate_dfba must be 4 finite numbers"):
        simulate_dfba(s, ecoli_core, x0=[1.0, 20.0, 0.1])
    kla = FedBatchSettings(batch_time=0.2, kinetics=UptakeKinetics(oxygen="kla"))
    assert simulate_dfba(kla, ecoli_core, relax=True).info["dfba_method"] == "fixed_step"
