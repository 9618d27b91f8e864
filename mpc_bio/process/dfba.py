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
  exponentially over a step, the other amounts follow by the exact integral); the dissolved O2
  (``kinetics.oxygen = "kla"``) by a backward-Euler step of its balance, transfer and Michaelis-Menten
  uptake both implicit (one quadratic per step), unconditionally stable however fast the O2 relaxes.
  First order in the step: near glucose exhaustion, where the uptake changes on the time scale of
  the step, it is off by several per cent of the glucose.

Without relaxation an infeasible LP stops either run with an ``"lp_infeasible"`` event carrying the
time and state; with relaxation the run continues and the first relaxed point is reported as
``"lp_relaxed"``.
"""

from __future__ import annotations

import math
import time as _time
from typing import Any

import numpy as np

from mpc_bio.process.model import OUTPUT_NAMES_BASE, FluxLayout, fedbatch_split
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


class _LPStop(Exception):
    """The LP at a right-hand-side evaluation has no solution (infeasible or solver failure)."""

    def __init__(self, point, uptakes: np.ndarray) -> None:
        super().__init__(point.status)
        self.point, self.uptakes = point, uptakes


class _NumericCall:
    """A CasADi function of dense vectors, one output, evaluated in place on numpy buffers (a plain
    call converts every argument and costs ~50x more: as much as a quarter of an LP solve)."""

    def __init__(self, fn) -> None:
        self._fn = fn  # the buffers point into it
        self._buffer, self._trigger = fn.buffer()
        self._args = [np.zeros(fn.nnz_in(i)) for i in range(fn.n_in())]
        self._res = np.zeros(fn.nnz_out(0))
        for i, a in enumerate(self._args):
            self._buffer.set_arg(i, memoryview(a))
        self._buffer.set_res(0, memoryview(self._res))

    def __call__(self, *args) -> np.ndarray:
        for a, value in zip(self._args, args):
            a[:] = value
        self._trigger()
        return self._res.copy()


class _LPRightHandSide:
    """The fed-batch right-hand side of :func:`mpc_bio.process.model.fedbatch_split` with the pFBA
    fluxes at the current uptakes (the LP's glucose exchange, not the kinetic rate: a relaxed LP
    may take up less)."""

    def __init__(self, settings: FedBatchSettings, solver) -> None:
        s = settings
        self.solver = solver
        ids = (solver.objective_id, s.glucose_exchange, *s.products.values())
        layout = FluxLayout(tuple(solver.input_names), ids, solver.objective_id)
        split = fedbatch_split(s, layout, glucose_rate="exchange")
        self._uptakes, self._rhs = _NumericCall(split.uptakes), _NumericCall(split.rhs)
        self.p = split.param_values
        rid = {r: i for i, r in enumerate(solver.reaction_ids)}
        self.i_v = np.array([rid[r] for r in ids])  # the fluxes of the split's v in the LP's flux vector
        self.i_mu = self.i_v[0]
        ix = {n: i for i, n in enumerate(s.state_names)}
        self.iV, self.iG, self.iX, self.iO = ix["V"], ix["n_glc"], ix["n_X"], ix.get("n_o2")
        self.kla = s.kinetics.oxygen == "kla"
        self.j_glc, self.j_o2 = layout.input_index(s.glucose_input), layout.input_index(s.oxygen_input)
        self.n_lp = 0

    def uptakes(self, x: np.ndarray) -> np.ndarray:
        """The LP's inputs at state x: the uptakes (mmol/gDW/h) in the solver's input order."""
        return self._uptakes(x, self.p)

    def point(self, x: np.ndarray):
        """(LP point, uptakes) at state x; the point may be infeasible."""
        u = self.uptakes(x)
        self.n_lp += 1
        return self.solver.solve_validated(u), u

    def derivative(self, x: np.ndarray, F: float, pt) -> np.ndarray:
        """dx/dt (L/h, mmol/h, gDW/h) at state x and feed F (L/h) from the LP point ``pt``."""
        return self._rhs(x, F, self.p, pt.fluxes[self.i_v])

    def __call__(self, x: np.ndarray, F: float):
        """(dx/dt, LP point) at state x and feed F; raises :class:`_LPStop` when the LP has no solution."""
        pt, u = self.point(x)
        if not pt.ok:
            raise _LPStop(pt, u)
        return self.derivative(x, F, pt), pt

    def outputs(self, pt, u: np.ndarray) -> list[float]:
        """growth (1/h), q_glc, q_o2, product exchange fluxes (mmol/gDW/h); NaN fluxes without a solution."""
        v = pt.fluxes[self.i_v] if pt.ok else np.full(len(self.i_v), math.nan)
        return [float(v[0]), float(u[self.j_glc]), float(u[self.j_o2]), *(float(f) for f in v[2:])]


class _Run:
    """The rows of a dFBA run (time, state, feed, outputs and LP status per row) and its events."""

    def __init__(self, settings: FedBatchSettings, rhs: _LPRightHandSide) -> None:
        self.s, self.rhs = settings, rhs
        self.times: list[float] = []
        self.X: list[np.ndarray] = []
        self.feeds: list[float] = []
        self.Y: list[list[float]] = []
        self.status: list[str] = []
        self.events: list[SimulationEvent] = []
        self.completed = True

    def row(self, t: float, x: np.ndarray, pt, u: np.ndarray, F: float | None = None) -> None:
        """A row at time t (h): state x, the LP point there and its uptakes u; feed F (L/h, default the profile's)."""
        self.times.append(t)
        self.X.append(x.copy())
        self.feeds.append(self.s.feed.rate(t) if F is None else F)
        self.Y.append(self.rhs.outputs(pt, u))
        self.status.append(pt.status)

    def event(self, kind: str, t: float, x: np.ndarray, message: str) -> None:
        self.events.append(SimulationEvent(t, kind, message, state_dict(self.s.state_names, x)))

    def first(self, kind: str, t: float, x: np.ndarray, message: str) -> None:
        """An event recorded at its first occurrence only."""
        if all(e.kind != kind for e in self.events):
            self.event(kind, t, x, message)

    def stop(self, t: float, x: np.ndarray, pt, u: np.ndarray, F: float | None = None, note: str = "") -> None:
        """The LP at (t, x) has no solution: the stop event, a last row (NaN fluxes), and the run is incomplete."""
        rhs = self.rhs
        self.event(
            "lp_infeasible" if pt.status == "infeasible" else "lp_failed",
            t,
            x,
            f"pFBA {pt.status} at uptakes glucose {u[rhs.j_glc]:.6g}, oxygen {u[rhs.j_o2]:.6g} mmol/gDW/h "
            f"(c_glc {max(x[rhs.iG], 0.0) / x[rhs.iV]:.6g} mmol/L){note}; the LP-in-the-loop run stops here."
            + (f" {pt.message}" if pt.message else ""),
        )
        self.row(t, x, pt, u, F)
        self.completed = False

    def result(self, t_start: float, solver, info: dict) -> FedBatchResult:
        """The :class:`FedBatchResult` (``info`` gets the model id; ``t_start``: ``time.perf_counter()`` at the start)."""
        s, time = self.s, np.array(self.times)
        return FedBatchResult(
            method="dfba",
            time=time,
            states=np.array(self.X),
            state_names=s.state_names,
            state_units=s.state_units,
            feed=np.array(self.feeds),
            outputs=np.array(self.Y, dtype=float).reshape(len(time), len(OUTPUT_NAMES_BASE) + len(s.products)),
            output_names=(*OUTPUT_NAMES_BASE, *(f"v_{p}" for p in s.products)),
            in_domain=np.ones(len(time), dtype=bool),
            status=tuple(self.status),
            events=tuple(self.events),
            completed=self.completed and time[-1] >= s.batch_time - 1e-9,
            wall_time=_time.perf_counter() - t_start,
            info={**info, "model_id": getattr(solver, "model_id", "")},
        )


def _oxygen_step(n_o2: float, volume: float, integral_X: float, h: float, kin) -> float:
    """Dissolved O2 (mmol) at the end of a fixed step: the backward-Euler step of the O2 balance.

    With the step-end volume V (L), the biomass integral I = integral n_X dt over the step
    (gDW h) and c = n_new / V, the balance
    ``n_new = n_o2 + h kla (c* V - n_new) - vmax c / (km + c) I`` is the quadratic
    ``a c^2 + (a km + g - b) c - b km = 0`` with ``a = 1 + h kla``, ``b = n_o2 / V + h kla c*``,
    ``g = vmax I / V``, whose one non-negative root is taken (the left side grows monotonically
    in c, so the step is unconditionally stable and the O2 never turns negative).

    Parameters
    ----------
    n_o2 : float
        Dissolved O2 at the step start, mmol (negative values count as 0).
    volume : float
        Volume at the step end, L.
    integral_X : float
        Biomass integral over the step, gDW h.
    h : float
        Step, h.
    kin : UptakeKinetics
        ``kla`` (1/h), ``o2_saturation`` c* and ``oxygen_km`` (mmol/L), ``oxygen_vmax`` (mmol/gDW/h).
    """
    km = kin.oxygen_km
    a = 1.0 + h * kin.kla
    b = max(n_o2, 0.0) / volume + h * kin.kla * kin.o2_saturation
    B = a * km + kin.oxygen_vmax * integral_X / volume - b
    root = math.sqrt(B * B + 4.0 * a * b * km)
    # the form without cancellation between B and the root
    c = 2.0 * b * km / (B + root) if B > 0.0 else (root - B) / (2.0 * a)
    return c * volume


def _simulate_dfba_fixed(settings: FedBatchSettings, solver, x0: np.ndarray, *, relax: bool, progress: bool) -> FedBatchResult:
    """Static-optimisation dFBA: fluxes frozen over each ``settings.dfba_step`` (first order in the step)."""
    from tqdm.auto import tqdm

    t_start = _time.perf_counter()
    s, kin = settings, settings.kinetics
    rhs = _LPRightHandSide(s, solver)
    run = _Run(s, rhs)
    iV, iG, iX, iO = rhs.iV, rhs.iG, rhs.iX, rhs.iO
    grid = s.time_grid()
    x = x0

    def rates(x, F, h):
        """Solve the LP at state x; returns (point, uptakes, limited)."""
        u = rhs.uptakes(x)
        # never take up more glucose in a step than is there (first-order biomass estimate)
        avail = (max(x[iG], 0.0) + s.feed_glucose * F * h) / max(x[iX] * h, 1e-300)
        limited = u[rhs.j_glc] > avail
        u[rhs.j_glc] = min(u[rhs.j_glc], avail)
        rhs.n_lp += 1
        return solver.solve(u), u, limited

    bar = tqdm(total=len(grid) - 1, desc="dFBA", disable=not progress)
    for k in range(len(grid)):
        t = float(grid[k])
        F = s.feed.rate(t)
        h_out = (grid[k + 1] - t) if k + 1 < len(grid) else 0.0
        nsub = max(1, int(math.ceil(h_out / s.dfba_step - 1e-9))) if h_out > 0 else 0
        h = h_out / nsub if nsub else s.dfba_step
        for j in range(max(nsub, 1)):
            pt, u, limited = rates(x, F, h)
            if not pt.ok:
                run.stop(t + j * h, x, pt, u, F)
                break
            if j == 0:
                run.row(t, x, pt, u, F)
            if nsub == 0:
                break
            if pt.status == "relaxed":
                run.first("lp_relaxed", t + j * h, x, "first step that needed relaxation slacks")
            if limited:
                run.first("uptake_limited", t + j * h, x, "glucose uptake limited to the glucose available in the step")
            mu = float(pt.fluxes[rhs.i_mu])
            nX = x[iX]
            integral_X = nX * (math.expm1(mu * h) / mu if abs(mu) > 1e-12 else h)  # biomass integral over the step
            # every cell term of the right-hand side is proportional to the biomass: with the fluxes held,
            # the right-hand side at the step's mean biomass integral_X / h gives the exact increment
            x_mean = x.copy()
            x_mean[iX] = integral_X / h
            xn = np.maximum(x + h * rhs.derivative(x_mean, F, pt), 0.0)
            xn[iX] = nX * math.exp(mu * h)
            if rhs.kla:
                # the dissolved O2 relaxes within a step (kla h ~ 1): its uptake at the step end, not the LP's
                xn[iO] = _oxygen_step(x[iO], xn[iV], integral_X, h, kin)
            x = xn
        if not run.completed or k + 1 == len(grid):
            break
        bar.update(1)
    bar.close()
    return run.result(t_start, solver, {"dfba_method": "fixed_step", "step_h": s.dfba_step, "lp_solves": rhs.n_lp, "relax": relax})


def _rk45_tableau():
    from scipy.integrate import RK45

    return RK45.A, RK45.B, RK45.C, RK45.E, RK45.P


def _simulate_dfba_adaptive(
    settings: FedBatchSettings,
    solver,
    x0: np.ndarray,
    *,
    relax: bool,
    progress: bool,
    rtol: float,
    atol: float,
    event_tol: float,
    max_steps: int,
) -> FedBatchResult:
    """The pFBA inside an embedded Runge-Kutta 5(4) integration (see the module docstring)."""
    from tqdm.auto import tqdm

    t_start = _time.perf_counter()
    s = settings
    A, B, C, E, P = _rk45_tableau()
    rhs = _LPRightHandSide(s, solver)
    run = _Run(s, rhs)
    grid = s.time_grid()
    # feed switching times are step ends (the right-hand side jumps there)
    ends = sorted({float(t) for t in s.feed.times if 0.0 < t < s.batch_time} | {float(s.batch_time)})
    x = x0
    n = len(x)
    n_accepted = n_rejected = n_event_cuts = 0

    def record(t: float, xr: np.ndarray, pt=None) -> None:
        """The row at time t: state xr, and the LP point there (solved when not given)."""
        pt, u = rhs.point(xr) if pt is None else (pt, rhs.uptakes(xr))
        run.row(t, xr, pt, u)

    bar = tqdm(total=float(s.batch_time), desc="dFBA (adaptive)", disable=not progress, unit="h")

    t = 0.0
    gi = 1  # next output time index
    F = s.feed.rate(0.0)
    try:
        f, pt = rhs(x, F)
    except _LPStop as exc:
        run.stop(0.0, x, exc.point, exc.uptakes)
        f = None
    if f is not None:
        record(0.0, x, pt)
        if pt.status == "relaxed":
            run.first("lp_relaxed", 0.0, x, "first point that needed relaxation slacks")
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
                            failed_exc = _LPStop(probe, failed_exc.uptakes)
                    run.stop(t_bad, xs, failed_exc.point, failed_exc.uptakes, note=note)
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
                record(float(grid[gi]), x_new, pts[6])
            else:
                th = (grid[gi] - t) / (t_new - t)
                record(float(grid[gi]), x + (t_new - t) * (Q @ th ** np.arange(1, 5)))
            gi += 1
        if any(p is not None and p.status == "relaxed" for p in pts):
            run.first("lp_relaxed", t, x, "first step that needed relaxation slacks")
        bar.update(t_new - t)
        h_used = t_new - t
        x, t, f, pt = x_new, t_new, K[6].copy(), pts[6]
        if t >= t_bad - 1e-15:
            t_bad = math.inf  # reached without meeting the infeasible LP again: the cap was a stage artefact
        if t_seg_end == t and t < s.batch_time:
            f = rhs.derivative(x, s.feed.rate(t), pt)  # new feed, same LP point
        h = h_used * factor
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
    return run.result(t_start, solver, info)


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
    x0=None,
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
        fixed-step method integrates implicitly (backward Euler).
    rtol, atol : float
        Relative and absolute local error tolerances of ``"adaptive"`` (absolute in the state
        units: L, mmol, gDW).
    event_tol : float
        Time, h, within which ``"adaptive"`` locates an infeasible LP.
    max_steps : int
        Step attempts of ``"adaptive"`` after which it stops with an error.
    x0 : array_like, optional
        Initial state in the units of ``settings.state_names`` (default
        ``settings.initial_state()``): e.g. a run continued from another one's last state,
        dissolved O2 included.

    Returns
    -------
    FedBatchResult
        ``method="dfba"``; per output time the LP status there (``"fixed_step"``: of the step
        starting there). ``info`` holds ``dfba_method``, the LP solve count and the step
        statistics. A stopped run ends with a row at the event (NaN fluxes).

    Raises
    ------
    ProcessSettingsError
        Unknown ``method``, non-positive tolerances, an ``x0`` of the wrong length or not finite,
        a solver whose ``relax`` differs, or a model without the reactions the reactor tracks.
    """
    if method not in DFBA_METHODS:
        raise ProcessSettingsError(f"The 'method' parameter of simulate_dfba must be one of {list(DFBA_METHODS)}. Got {method!r} instead.")
    for name, value in (("rtol", rtol), ("atol", atol), ("event_tol", event_tol)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ProcessSettingsError(f"The '{name}' parameter of simulate_dfba must be a finite number > 0. Got {value!r} instead.")
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ProcessSettingsError(f"The 'max_steps' parameter of simulate_dfba must be an integer >= 1. Got {max_steps!r} instead.")
    x0 = settings.initial_state() if x0 is None else np.array(x0, dtype=float).ravel()
    if x0.shape != (len(settings.state_names),) or not np.all(np.isfinite(x0)):
        raise ProcessSettingsError(
            f"The 'x0' parameter of simulate_dfba must be {len(settings.state_names)} finite numbers "
            f"({', '.join(settings.state_names)}). Got {x0.tolist()} instead."
        )
    solver = _solver(model, relax, settings, pfba_settings)
    if method == "auto":
        method = "fixed_step" if settings.kinetics.oxygen == "kla" else "adaptive"
    if method == "fixed_step":
        return _simulate_dfba_fixed(settings, solver, x0, relax=relax, progress=progress)
    return _simulate_dfba_adaptive(
        settings,
        solver,
        x0,
        relax=relax,
        progress=progress,
        rtol=float(rtol),
        atol=float(atol),
        event_tol=float(event_tol),
        max_steps=max_steps,
    )
