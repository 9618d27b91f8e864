"""LP-in-the-loop dynamic FBA of the fed-batch: the pFBA solved inside the simulation.

Two integrations of the same model (paper 1, Eq. 2, with the fluxes of the lexicographic pFBA of
:class:`mpc_bio.metabolism.pfba.PFBASolver` at the current uptakes):

* ``"adaptive"`` (the accurate reference): the pFBA is the right-hand side of the ODE, integrated
  by an embedded Runge-Kutta pair (Dormand-Prince 5(4), the tableau of :class:`scipy.integrate.RK45`)
  with local error control in ``rtol``/``atol``, steps ending at every feed switch, states at the
  output times from the pair's continuous extension. The pFBA fluxes are continuous, piecewise
  smooth functions of the uptakes; the error control shortens the steps across their kinks.
  An infeasible LP is an event: a step whose stages meet an infeasible LP is shortened towards
  the last feasible time until the two are ``event_tol`` apart (bisection in time), then the run
  stops there with an ``"lp_infeasible"`` event.
* ``"fixed_step"`` (static optimisation, the paper's baseline): the pFBA at every
  ``settings.dfba_step``, its fluxes held constant over the step (biomass grows exactly
  exponentially over a step, the other amounts follow by the exact integral). First order in the
  step: near glucose exhaustion, where the uptake changes on the time scale of the step, it is
  off by several per cent of the glucose.

Without relaxation an infeasible LP stops either run with an ``"lp_infeasible"`` event carrying the
time and state; with relaxation the run continues and the first relaxed point is reported as
``"lp_relaxed"``.
"""

from __future__ import annotations

import math
import time as _time
from typing import Any

import numpy as np

from mpc_bio.process.kinetics import gated_rate, glucose_uptake, oxygen_uptake
from mpc_bio.process.model import OUTPUT_NAMES_BASE
from mpc_bio.process.result import FedBatchResult, SimulationEvent, state_dict
from mpc_bio.process.settings import FedBatchSettings, ProcessSettingsError

__all__ = ["simulate_dfba", "DFBA_METHODS"]

#: Integration methods of :func:`simulate_dfba` (``"auto"`` picks one, see there).
DFBA_METHODS = ("auto", "adaptive", "fixed_step")

#: How far past a located LP failure (h) the adaptive dFBA looks for an infeasible LP, to tell a
#: numerical failure on the feasibility boundary from one inside the feasible region.
_BOUNDARY_PROBE_H = 1e-6


def _solver(model: Any, relax: bool, settings: FedBatchSettings, pfba_settings=None):
    from mpc_bio.metabolism.pfba import PFBASolver
    from mpc_bio.metabolism.settings import PFBASettings

    if isinstance(model, PFBASolver):
        if model.settings.relax != relax:
            raise ProcessSettingsError(
                f"The PFBASolver given to simulate_dfba has relax={model.settings.relax}, but relax={relax} was asked."
            )
        solver = model
    else:
        ps = pfba_settings or PFBASettings(
            inputs=((settings.glucose_input, settings.glucose_exchange), (settings.oxygen_input, settings.oxygen_exchange)),
            relax=relax,
        )
        if ps.relax != relax:
            import dataclasses

            ps = dataclasses.replace(ps, relax=relax)
        solver = PFBASolver(model, ps)
    for label, name in (("glucose_input", settings.glucose_input), ("oxygen_input", settings.oxygen_input)):
        if name not in solver.input_names:
            raise ProcessSettingsError(
                f"The pFBA solver has no input {name!r} (the reactor's '{label}'); its inputs are {list(solver.input_names)}."
            )
    needed = [settings.glucose_exchange, settings.oxygen_exchange, *settings.products.values()]
    missing = [r for r in needed if r not in solver.reaction_ids]
    if missing:
        raise ProcessSettingsError(f"The metabolic model has no reaction(s) {missing} that the reactor tracks.")
    return solver


def _simulate_dfba_fixed(settings: FedBatchSettings, solver, *, relax: bool, progress: bool) -> FedBatchResult:
    """Static-optimisation dFBA: fluxes frozen over each ``settings.dfba_step`` (first order in the step)."""
    t_start = _time.perf_counter()
    s, kin = settings, settings.kinetics
    rid = {r: i for i, r in enumerate(solver.reaction_ids)}
    i_mu = rid[solver.objective_id]
    i_glc = rid[s.glucose_exchange]
    prods = list(s.products.items())
    names = s.state_names
    ix = {n: i for i, n in enumerate(names)}
    kla = kin.oxygen == "kla"
    in_order = list(solver.input_names)
    j_glc, j_o2 = in_order.index(s.glucose_input), in_order.index(s.oxygen_input)

    grid = s.time_grid()
    x = s.initial_state()
    times, X, feeds, Y, status = [], [], [], [], []
    events: list[SimulationEvent] = []
    completed = True
    n_lp = 0
    relaxed_seen = False
    limited_seen = False
    stop = False

    def rates(x, F, h):
        """Solve the LP at state x; returns (point, q_glc, q_o2, limited)."""
        V, nX = x[ix["V"]], x[ix["n_X"]]
        c = max(x[ix["n_glc"]], 0.0) / V
        q = float(glucose_uptake(c, kin))
        # never take up more glucose in a step than is there (first-order biomass estimate)
        avail = (max(x[ix["n_glc"]], 0.0) + s.feed_glucose * F * h) / max(nX * h, 1e-300)
        limited = q > avail
        q = min(q, avail)
        qo = float(oxygen_uptake(max(x[ix["n_o2"]], 0.0) / V if kla else None, kin))
        u = np.zeros(len(in_order))
        u[j_glc], u[j_o2] = q, qo
        return solver.solve(u), q, qo, limited

    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    bar = tqdm(total=len(grid) - 1, desc="dFBA", disable=not progress) if tqdm else None
    for k in range(len(grid)):
        t = float(grid[k])
        F = s.feed.rate(t)
        h_out = (grid[k + 1] - t) if k + 1 < len(grid) else 0.0
        nsub = max(1, int(math.ceil(h_out / s.dfba_step - 1e-9))) if h_out > 0 else 0
        h = h_out / nsub if nsub else s.dfba_step
        pt, q, qo, limited = rates(x, F, h)
        n_lp += 1
        times.append(t)
        X.append(x.copy())
        feeds.append(F)
        status.append(pt.status)
        if not pt.ok:
            Y.append([math.nan] * (3 + len(prods)))
            kind = "lp_infeasible" if pt.status == "infeasible" else "lp_failed"
            events.append(
                SimulationEvent(
                    t,
                    kind,
                    f"pFBA {pt.status} at uptakes glucose {q:.4g}, oxygen {qo:.4g} mmol/gDW/h "
                    f"(c_glc {max(x[ix['n_glc']], 0) / x[ix['V']]:.4g} mmol/L); the LP-in-the-loop run stops here."
                    + (f" {pt.message}" if pt.message else ""),
                    state_dict(names, x),
                )
            )
            completed = False
            break
        Y.append([float(pt.fluxes[i_mu]), q, qo, *(float(pt.fluxes[rid[r]]) for _, r in prods)])
        for j in range(nsub):
            if j > 0:
                pt, q, qo, limited = rates(x, F, h)
                n_lp += 1
                if not pt.ok:
                    kind = "lp_infeasible" if pt.status == "infeasible" else "lp_failed"
                    events.append(
                        SimulationEvent(
                            t + j * h,
                            kind,
                            f"pFBA {pt.status} at uptakes glucose {q:.4g}, oxygen {qo:.4g} mmol/gDW/h; "
                            "the LP-in-the-loop run stops here." + (f" {pt.message}" if pt.message else ""),
                            state_dict(names, x),
                        )
                    )
                    completed = False
                    stop = True
                    times.append(t + j * h)
                    X.append(x.copy())
                    feeds.append(F)
                    status.append(pt.status)
                    Y.append([math.nan] * (3 + len(prods)))
                    break
            if pt.status == "relaxed" and not relaxed_seen:
                relaxed_seen = True
                events.append(SimulationEvent(t + j * h, "lp_relaxed", "first step that needed relaxation slacks", state_dict(names, x)))
            if limited and not limited_seen:
                limited_seen = True
                events.append(
                    SimulationEvent(
                        t + j * h, "uptake_limited", "glucose uptake limited to the glucose available in the step", state_dict(names, x)
                    )
                )
            v = pt.fluxes
            mu = float(v[i_mu])
            nX = x[ix["n_X"]]
            growth_factor = math.exp(mu * h)
            integral_X = nX * (math.expm1(mu * h) / mu if abs(mu) > 1e-12 else h)
            xn = x.copy()
            xn[ix["V"]] = x[ix["V"]] + F * h
            q_act = -float(v[i_glc])  # actual uptake (less than offered when relaxed)
            xn[ix["n_glc"]] = max(x[ix["n_glc"]] + s.feed_glucose * F * h - q_act * integral_X, 0.0)
            for p, r in prods:
                c_p = max(x[ix[f"n_{p}"]], 0.0) / x[ix["V"]]
                rate = float(gated_rate(float(v[rid[r]]), c_p, s.product_uptake_gate, np.where))
                xn[ix[f"n_{p}"]] = max(x[ix[f"n_{p}"]] + rate * integral_X, 0.0)
            xn[ix["n_X"]] = nX * growth_factor
            if kla:
                # dissolved O2 is fast (kLa h >> 1): semi-implicit step, uptake held at the LP value
                V0 = x[ix["V"]]
                c_new = (x[ix["n_o2"]] / V0 + h * (kin.kla * kin.o2_saturation) - qo * integral_X / V0) / (1 + h * kin.kla)
                xn[ix["n_o2"]] = max(c_new, 0.0) * xn[ix["V"]]
            x = xn
        if stop:
            break
        if bar is not None:
            bar.update(1)
        if k + 1 == len(grid):
            break
    if bar is not None:
        bar.close()
    info = {"dfba_method": "fixed_step", "step_h": s.dfba_step, "lp_solves": n_lp, "relax": relax}
    return _result(s, times, X, Y, feeds, status, events, completed, t_start, solver, info)


def _result(s: FedBatchSettings, times, X, Y, feeds, status, events, completed: bool, t_start: float, solver, info: dict):
    """The :class:`FedBatchResult` of a dFBA run from its recorded lists (states, outputs, feeds, LP
    statuses, events per recorded time); ``info`` gets the model id."""
    time = np.array(times)
    return FedBatchResult(
        method="dfba",
        time=time,
        states=np.array(X),
        state_names=s.state_names,
        state_units=s.state_units,
        feed=np.array(feeds),
        outputs=np.array(Y, dtype=float).reshape(len(time), len(OUTPUT_NAMES_BASE) + len(s.products)),
        output_names=(*OUTPUT_NAMES_BASE, *(f"v_{p}" for p in s.products)),
        in_domain=np.ones(len(time), dtype=bool),
        status=tuple(status),
        events=tuple(events),
        completed=completed and time[-1] >= s.batch_time - 1e-9,
        wall_time=_time.perf_counter() - t_start,
        info={**info, "model_id": getattr(solver, "model_id", "")},
    )


class _LPStop(Exception):
    """The LP at a right-hand-side evaluation has no solution (infeasible or solver failure)."""

    def __init__(self, point, q_glc: float, q_o2: float) -> None:
        super().__init__(point.status)
        self.point, self.q_glc, self.q_o2 = point, q_glc, q_o2


class _LPRightHandSide:
    """The fed-batch right-hand side with the pFBA fluxes at the current uptakes (units per h)."""

    def __init__(self, settings: FedBatchSettings, solver) -> None:
        s = settings
        self.s, self.kin, self.solver = s, s.kinetics, solver
        rid = {r: i for i, r in enumerate(solver.reaction_ids)}
        self.i_mu, self.i_glc = rid[solver.objective_id], rid[s.glucose_exchange]
        self.prods = [(f"n_{p}", rid[r]) for p, r in s.products.items()]
        ix = {n: i for i, n in enumerate(s.state_names)}
        self.ix = ix
        self.iV, self.iG, self.iX = ix["V"], ix["n_glc"], ix["n_X"]
        self.iP = [ix[n] for n, _ in self.prods]
        self.kla = self.kin.oxygen == "kla"
        self.iO = ix.get("n_o2")
        order = list(solver.input_names)
        self.j_glc, self.j_o2 = order.index(s.glucose_input), order.index(s.oxygen_input)
        self.n_inputs = len(order)
        self.n_lp = 0
        self.n_y = 3 + len(self.prods)

    def uptakes(self, x: np.ndarray) -> tuple[float, float]:
        """Glucose and oxygen uptake (mmol/gDW/h) at state x."""
        V = x[self.iV]
        q = float(glucose_uptake(max(x[self.iG], 0.0) / V, self.kin))
        qo = float(oxygen_uptake(max(x[self.iO], 0.0) / V if self.kla else None, self.kin))
        return q, qo

    def point(self, x: np.ndarray):
        """(LP point, q_glc, q_o2) at state x; the point may be infeasible."""
        q, qo = self.uptakes(x)
        u = np.zeros(self.n_inputs)
        u[self.j_glc], u[self.j_o2] = q, qo
        self.n_lp += 1
        return self.solver.solve_validated(u), q, qo

    def derivative(self, x: np.ndarray, F: float, pt, qo: float) -> np.ndarray:
        """dx/dt (L/h, mmol/h, gDW/h) at state x and feed F (L/h) from the LP point ``pt``."""
        s, v = self.s, pt.fluxes
        nX, V = x[self.iX], x[self.iV]
        dx = np.zeros_like(x)
        dx[self.iV] = F
        # the LP's glucose exchange (= -q_glc at an optimal point; the relaxed LP may take less)
        dx[self.iG] = s.feed_glucose * F + v[self.i_glc] * nX
        for i, (_, r) in zip(self.iP, self.prods):
            dx[i] = float(gated_rate(float(v[r]), max(x[i], 0.0) / V, s.product_uptake_gate, np.where)) * nX
        dx[self.iX] = v[self.i_mu] * nX
        if self.kla:
            dx[self.iO] = self.kin.kla * (self.kin.o2_saturation - max(x[self.iO], 0.0) / V) * V - qo * nX
        return dx

    def __call__(self, x: np.ndarray, F: float):
        """(dx/dt, LP point) at state x and feed F; raises :class:`_LPStop` when the LP has no solution."""
        pt, q, qo = self.point(x)
        if not pt.ok:
            raise _LPStop(pt, q, qo)
        return self.derivative(x, F, pt, qo), pt

    def outputs(self, pt, q: float, qo: float) -> list[float]:
        """growth (1/h), q_glc, q_o2, product exchange fluxes (mmol/gDW/h); NaN fluxes without a solution."""
        if not pt.ok:
            return [math.nan, q, qo, *(math.nan for _ in self.prods)]
        v = pt.fluxes
        return [float(v[self.i_mu]), q, qo, *(float(v[r]) for _, r in self.prods)]


def _rk45_tableau():
    from scipy.integrate import RK45

    return RK45.A, RK45.B, RK45.C, RK45.E, RK45.P


def _simulate_dfba_adaptive(
    settings: FedBatchSettings,
    solver,
    *,
    relax: bool,
    progress: bool,
    rtol: float,
    atol: float,
    event_tol: float,
    max_steps: int,
) -> FedBatchResult:
    """The pFBA inside an embedded Runge-Kutta 5(4) integration (see the module docstring)."""
    t_start = _time.perf_counter()
    s = settings
    A, B, C, E, P = _rk45_tableau()
    rhs = _LPRightHandSide(s, solver)
    names = s.state_names
    grid = s.time_grid()
    # feed switching times are step ends (the right-hand side jumps there)
    ends = sorted({float(t) for t in s.feed.times if 0.0 < t < s.batch_time} | {float(s.batch_time)})
    x = s.initial_state()
    n = len(x)
    times: list[float] = []
    X: list[np.ndarray] = []
    feeds: list[float] = []
    Y: list[list[float]] = []
    status: list[str] = []
    events: list[SimulationEvent] = []
    n_accepted = n_rejected = n_event_cuts = 0
    relaxed_seen = False
    completed = True

    def record(t: float, xr: np.ndarray, pt=None, q=None, qo=None) -> None:
        if pt is None:
            pt, q, qo = rhs.point(xr)
        times.append(t)
        X.append(xr.copy())
        feeds.append(s.feed.rate(t))
        Y.append(rhs.outputs(pt, q, qo))
        status.append(pt.status)

    def stop_event(t: float, xs: np.ndarray, exc: _LPStop, bracket: str) -> None:
        nonlocal completed
        pt = exc.point
        kind = "lp_infeasible" if pt.status == "infeasible" else "lp_failed"
        events.append(
            SimulationEvent(
                t,
                kind,
                f"pFBA {pt.status} at uptakes glucose {exc.q_glc:.6g}, oxygen {exc.q_o2:.6g} mmol/gDW/h "
                f"(c_glc {max(xs[rhs.iG], 0.0) / xs[rhs.iV]:.6g} mmol/L){bracket}; the LP-in-the-loop run stops here."
                + (f" {pt.message}" if pt.message else ""),
                state_dict(names, xs),
            )
        )
        times.append(t)
        X.append(xs.copy())
        feeds.append(s.feed.rate(t))
        Y.append(rhs.outputs(pt, exc.q_glc, exc.q_o2))
        status.append(pt.status)
        completed = False

    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    bar = tqdm(total=float(s.batch_time), desc="dFBA (adaptive)", disable=not progress, unit="h") if tqdm else None

    t = 0.0
    gi = 1  # next output time index
    F = s.feed.rate(0.0)
    try:
        f, pt = rhs(x, F)
    except _LPStop as exc:
        stop_event(0.0, x, exc, "")
        f = None
    if f is not None:
        record(0.0, x, pt, *rhs.uptakes(x))
        if pt.status == "relaxed":
            relaxed_seen = True
            events.append(SimulationEvent(0.0, "lp_relaxed", "first point that needed relaxation slacks", state_dict(names, x)))
    K = np.empty((7, n))
    h = None
    t_bad = math.inf  # earliest time known to meet an infeasible LP (a step-length cap)
    steps = 0
    while f is not None and t < s.batch_time - 1e-12:
        t_seg_end = next(te for te in ends if te > t + 1e-12)
        F = s.feed.rate(t)
        if h is None:
            # initial step (Hairer, Norsett & Wanner, II.4): a first-order step of size ~0.01 |x|/|f|
            sc = atol + np.abs(x) * rtol
            d0, d1 = np.sqrt(np.mean((x / sc) ** 2)), np.sqrt(np.mean((f / sc) ** 2))
            h = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        h = min(h, t_seg_end - t, t_bad - t)
        rejected = False
        while True:
            steps += 1
            if steps > max_steps:
                raise ProcessSettingsError(
                    f"The adaptive dFBA needed more than max_steps={max_steps} steps by t = {t:.6g} h; loosen "
                    f"'rtol' ({rtol:g}) / 'atol' ({atol:g}) or raise 'max_steps'."
                )
            t_new = t + h
            if abs(t_seg_end - t_new) <= 1e-12 * max(1.0, t_seg_end):
                t_new = t_seg_end
                h = t_new - t
            pts = [pt] + [None] * 6
            K[0] = f
            stage = 1
            try:
                for stage in range(1, 6):
                    K[stage], pts[stage] = rhs(x + h * (K[:stage].T @ A[stage, :stage]), F)
                stage = 6
                x_new = x + h * (K[:6].T @ B)
                K[6], pts[6] = rhs(x_new, F)
                failed_c = None
            except _LPStop as exc:
                failed_c = 1.0 if stage == 6 else float(C[stage])
                failed_exc = exc
            if failed_c is not None:
                n_event_cuts += 1
                t_bad = t + failed_c * h
                if t_bad - t <= event_tol:
                    # the LP without solution sits within event_tol of the last feasible time t
                    xs = x + (t_bad - t) * f
                    note = f"; last feasible LP at t = {t:.10g} h, {t_bad - t:.2g} h earlier"
                    if failed_exc.point.status != "infeasible":
                        # on the feasibility boundary the solver may fail numerically (a degenerate
                        # LP); an infeasible LP a little later says that the boundary was reached
                        probe = rhs.point(x + (t_bad - t + _BOUNDARY_PROBE_H) * f)[0]
                        if probe.status == "infeasible":
                            note += (
                                f"; the LP there failed ({failed_exc.point.message}), and {_BOUNDARY_PROBE_H:g} h later it is infeasible"
                            )
                            failed_exc = _LPStop(probe, failed_exc.q_glc, failed_exc.q_o2)
                    stop_event(t_bad, xs, failed_exc, note)
                    f = None
                    break
                h = 0.5 * (t_bad - t)
                rejected = True
                continue
            scale = atol + np.maximum(np.abs(x), np.abs(x_new)) * rtol
            err = np.sqrt(np.mean((h * (K.T @ E) / scale) ** 2))
            if err <= 1.0:
                factor = 10.0 if err == 0.0 else min(10.0, 0.9 * err**-0.2)
                if rejected:
                    factor = min(1.0, factor)
                break
            n_rejected += 1
            rejected = True
            h *= max(0.2, 0.9 * err**-0.2)
        if f is None:
            break
        n_accepted += 1
        # output times inside (t, t_new]: the pair's continuous extension (order 4)
        Q = K.T @ P
        while gi < len(grid) and grid[gi] <= t_new + 1e-12:
            if abs(grid[gi] - t_new) <= 1e-12:
                record(float(grid[gi]), x_new, pts[6], *rhs.uptakes(x_new))
            else:
                th = (grid[gi] - t) / (t_new - t)
                record(float(grid[gi]), x + (t_new - t) * (Q @ th ** np.arange(1, 5)))
            gi += 1
        if not relaxed_seen and any(p is not None and p.status == "relaxed" for p in pts):
            relaxed_seen = True
            events.append(SimulationEvent(t, "lp_relaxed", "first step that needed relaxation slacks", state_dict(names, x)))
        if bar is not None:
            bar.update(t_new - t)
        h_used = t_new - t
        x, t, f, pt = x_new, t_new, K[6].copy(), pts[6]
        if t >= t_bad - 1e-15:
            t_bad = math.inf  # reached without meeting the infeasible LP again: the cap was a stage artefact
        if t_seg_end == t and t < s.batch_time:
            f = rhs.derivative(x, s.feed.rate(t), pt, rhs.uptakes(x)[1])  # new feed, same LP point
        h = h_used * factor
    if bar is not None:
        bar.close()
    info = {
        "dfba_method": "adaptive",
        "integrator": "dopri5",
        "rtol": rtol,
        "atol": atol,
        "event_tol_h": event_tol,
        "steps_accepted": n_accepted,
        "steps_rejected": n_rejected,
        "event_cuts": n_event_cuts,
        "lp_solves": rhs.n_lp,
        "relax": relax,
    }
    return _result(s, times, X, Y, feeds, status, events, completed, t_start, solver, info)


def simulate_dfba(
    settings: FedBatchSettings,
    model: Any,
    *,
    relax: bool = False,
    pfba_settings=None,
    progress: bool = False,
    method: str = "auto",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    event_tol: float = 1e-9,
    max_steps: int = 200_000,
) -> FedBatchResult:
    """LP-in-the-loop dFBA of the fed-batch: the pFBA of the metabolic model inside the simulation.

    Parameters
    ----------
    settings : FedBatchSettings
        The same reactor as the surrogate run (``dfba_step``, h, is the step of ``"fixed_step"``).
    model : cobra.Model, str, path or PFBASolver
        Metabolic model (never modified) or a ready solver (its ``relax`` must equal ``relax``).
    relax : bool
        Elastic relaxation of the uptakes/maintenance when the LP is infeasible. False: the run
        stops at the first infeasible LP with an ``"lp_infeasible"`` event (time and state).
    pfba_settings : PFBASettings, optional
        Solver settings (inputs default to the reactor's glucose/oxygen inputs).
    progress : bool
        Show a tqdm progress bar.
    method : {"auto", "adaptive", "fixed_step"}
        ``"adaptive"``: the pFBA as the right-hand side of an error-controlled Runge-Kutta 5(4)
        integration with the infeasible LP located in time to ``event_tol`` (the accurate
        reference). ``"fixed_step"``: fluxes held constant over each ``settings.dfba_step``
        (static optimisation, the paper's baseline; first order). ``"auto"``: ``"adaptive"``
        with a fixed oxygen uptake; ``"fixed_step"`` with the dissolved-oxygen balance
        (``kinetics.oxygen = "kla"``), which is stiff (rate constants of 1e3-1e4 1/h) and which the
        fixed-step method integrates semi-implicitly.
    rtol, atol : float
        Relative and absolute local error tolerances of ``"adaptive"`` (absolute in the state
        units: L, mmol, gDW).
    event_tol : float
        Time, h, within which ``"adaptive"`` locates an infeasible LP.
    max_steps : int
        Step attempts of ``"adaptive"`` after which it stops with an error.

    Returns
    -------
    FedBatchResult
        ``method="dfba"``; per output time the LP status there (``"fixed_step"``: of the step
        starting there). ``info`` holds ``dfba_method``, the LP solve count and the step
        statistics. A stopped run ends with a row at the event (NaN fluxes).

    Raises
    ------
    ProcessSettingsError
        Unknown ``method``, non-positive tolerances, a solver whose ``relax`` differs, or a model
        without the reactions the reactor tracks.
    """
    if method not in DFBA_METHODS:
        raise ProcessSettingsError(f"The 'method' parameter of simulate_dfba must be one of {list(DFBA_METHODS)}. Got {method!r} instead.")
    for name, value in (("rtol", rtol), ("atol", atol), ("event_tol", event_tol)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ProcessSettingsError(f"The '{name}' parameter of simulate_dfba must be a finite number > 0. Got {value!r} instead.")
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ProcessSettingsError(f"The 'max_steps' parameter of simulate_dfba must be an integer >= 1. Got {max_steps!r} instead.")
    solver = _solver(model, relax, settings, pfba_settings)
    if method == "auto":
        method = "fixed_step" if settings.kinetics.oxygen == "kla" else "adaptive"
    if method == "fixed_step":
        return _simulate_dfba_fixed(settings, solver, relax=relax, progress=progress)
    return _simulate_dfba_adaptive(
        settings,
        solver,
        relax=relax,
        progress=progress,
        rtol=float(rtol),
        atol=float(atol),
        event_tol=float(event_tol),
        max_steps=max_steps,
    )
