"""Fed-batch simulators: the surrogate model (CasADi/CVODES) and the LP-in-the-loop dFBA.

* :func:`simulate_surrogate` integrates the fed-batch ODE with the embedded surrogate using
  CVODES (BDF, tolerances in the call), one integrator per constant-feed segment.
* :func:`simulate_dfba` is the classical static-optimisation dFBA the paper improves on: at every
  step of ``settings.dfba_step`` the fast split-flux pFBA is solved at the current uptakes and
  its fluxes are held constant over the step (biomass grows exactly exponentially over a step,
  the other amounts follow by the exact integral). Without relaxation, an infeasible LP stops
  the run with an ``"lp_infeasible"`` event carrying the time and state; with relaxation the run
  continues and the first relaxed step is reported as ``"lp_relaxed"``.
"""

from __future__ import annotations

import dataclasses
import math
import time as _time
from typing import Any

import casadi as ca
import numpy as np

from mpc_bio.process.cell import CellFluxModel
from mpc_bio.process.kinetics import gated_rate, glucose_uptake, oxygen_uptake
from mpc_bio.process.model import OUTPUT_NAMES_BASE, FedBatchODE, fedbatch_ode
from mpc_bio.process.result import FedBatchResult, SimulationEvent
from mpc_bio.process.settings import FedBatchSettings, ProcessSettingsError

__all__ = ["SurrogateSimulator", "simulate_surrogate", "simulate_dfba", "fedbatch_integrator"]


def _segments(settings: FedBatchSettings, grid: np.ndarray) -> list[tuple[float, float, float]]:
    """(t_start, t_stop, F) for each constant-feed segment within [0, t_end]."""
    ts = [t for t in settings.feed.times if t < settings.t_end] + [settings.t_end]
    return [(ts[i], ts[i + 1], settings.feed.rates[i]) for i in range(len(ts) - 1)]


def fedbatch_integrator(
    ode: FedBatchODE,
    t0: float,
    times,
    *,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    name: str = "fedbatch_sim",
    jit: bool = False,
) -> ca.Function:
    """CVODES integrator of the fed-batch ODE at constant feed: ``(x0, [F; p]) -> X(times)``.

    The returned function is differentiable (forward/adjoint sensitivities), so derivatives of
    simulated states with respect to the initial state, the feed or the parameters are exact up
    to the integrator tolerances. ``jit=True`` compiles the right-hand side and its Jacobian to C
    (CasADi's shell compiler, needs a C compiler): ~15 s once, then 2-3x faster integration.
    """
    sym = ca.MX if ode.cell.symbolic == "MX" else ca.SX
    x = sym.sym("x", ode.n_x)
    F = sym.sym("F")
    p = sym.sym("p", len(ode.param_names))
    dae = {"x": x, "p": ca.vertcat(F, p), "ode": ode.rhs(x, F, p)}
    opts = {"abstol": atol, "reltol": rtol, "max_num_steps": 100000}
    if jit:
        opts.update({"jit": True, "compiler": "shell", "jit_options": {"flags": ["-O2"], "verbose": False}})
    return ca.integrator(name, "cvodes", dae, float(t0), [float(t) for t in times], opts)


def _state_dict(names, x) -> dict[str, float]:
    return {n: float(v) for n, v in zip(names, np.asarray(x, dtype=float))}


class SurrogateSimulator:
    """The fed-batch with the embedded cell model, set up once and simulated many times (CVODES).

    Building the CasADi ODE and one CVODES integrator per constant-feed segment costs tens of
    milliseconds; :meth:`run` then only integrates (closed loops, benchmarks, ensembles).

    Parameters
    ----------
    settings : FedBatchSettings
        Reactor, feed profile, kinetics and output grid.
    cell : CellFluxModel
        Embedded surrogate (:func:`mpc_bio.process.embed_cell_model`).
    rtol, atol : float
        CVODES relative and absolute tolerances (states in L, mmol, gDW).
    jit : bool
        Compile the right-hand side to C (see :func:`fedbatch_integrator`).
    """

    def __init__(
        self, settings: FedBatchSettings, cell: CellFluxModel, *, rtol: float = 1e-8, atol: float = 1e-10, jit: bool = False
    ) -> None:
        t0 = _time.perf_counter()
        self.settings, self.cell, self.rtol, self.atol = settings, cell, rtol, atol
        self.ode = fedbatch_ode(settings, cell, vmax_as_parameter=True)
        self.grid = settings.time_grid()
        self._segments = []
        for ta, tb, F in _segments(settings, self.grid):
            pts = [t for t in self.grid if ta + 1e-12 < t <= tb + 1e-12]
            if pts:
                integ = fedbatch_integrator(self.ode, ta, pts, rtol=rtol, atol=atol, jit=jit, name=f"fedbatch_sim_{len(self._segments)}")
                self._segments.append((ta, pts, F, integ))
        self.setup_time = _time.perf_counter() - t0

    def run(self, *, vmax: float | None = None, x0=None) -> FedBatchResult:
        """Simulate from ``x0`` (default: the settings' initial state).

        Parameters
        ----------
        vmax : float, optional
            Glucose Vmax (mmol/gDW/h) overriding ``settings.kinetics.glucose_vmax``.
        x0 : array_like, optional
            Initial state in ``settings.state_names`` order (L, mmol, gDW).

        Returns
        -------
        FedBatchResult
            ``method="surrogate"``; an ``"out_of_domain"`` event when the uptakes leave the
            surrogate's training box (the run continues; predictions there are extrapolations).
        """
        t0 = _time.perf_counter()
        settings, cell, ode = self.settings, self.cell, self.ode
        rtol, atol = self.rtol, self.atol
        pval = np.array([settings.kinetics.glucose_vmax if vmax is None else float(vmax)])
        grid = self.grid
        x = settings.initial_state() if x0 is None else np.asarray(x0, dtype=float).copy()
        if x.shape != (ode.n_x,):
            raise ProcessSettingsError(f"x0 must have {ode.n_x} entries {list(ode.state_names)}; got shape {x.shape}.")
        X = [x]
        events: list[SimulationEvent] = []
        completed = True
        for ta, pts, F, integ in self._segments:
            pf = np.concatenate([[F], pval])
            try:
                xf = np.array(integ(x0=x, p=pf)["xf"])
            except RuntimeError:
                # keep what can be integrated: redo the segment interval by interval up to the failure
                t_prev = ta
                for tp in pts:
                    try:
                        x = np.array(fedbatch_integrator(ode, t_prev, [tp], rtol=rtol, atol=atol)(x0=x, p=pf)["xf"]).ravel()
                    except RuntimeError as exc:
                        msg = next((ln for ln in str(exc).splitlines() if "error test failed" in ln or "CV_" in ln), "")
                        events.append(
                            SimulationEvent(
                                t_prev, "integrator_failed",
                                f"CVODES failed between {t_prev:.4g} h and {tp:.4g} h {msg}".strip(),
                                _state_dict(ode.state_names, x),
                            )
                        )
                        break
                    X.append(x)
                    t_prev = tp
                completed = False
                break
            for j in range(xf.shape[1]):
                X.append(xf[:, j])
            x = xf[:, -1]
        n = len(X)
        time = grid[:n]
        states = np.array(X)
        feed = np.array([settings.feed.rate(t) for t in time])
        Y = np.array(ode.outputs.map(n)(states.T, feed[None, :], np.tile(pval[:, None], (1, n)))).T
        k = len(cell.input_names)
        outputs, uptakes = Y[:, :-k], Y[:, -k:]
        dom = cell.in_domain(uptakes)
        if not np.all(dom):
            i = int(np.argmin(dom))
            events.append(
                SimulationEvent(
                    float(time[i]), "out_of_domain",
                    f"uptakes {dict(zip(cell.input_names, uptakes[i].round(4).tolist()))} mmol/gDW/h left the "
                    f"surrogate's training box [{cell.domain_low.tolist()}, {cell.domain_high.tolist()}]; "
                    "predictions are extrapolations.",
                    _state_dict(ode.state_names, states[i]),
                )
            )
        return FedBatchResult(
            method="surrogate",
            time=time,
            states=states,
            state_names=ode.state_names,
            state_units=settings.state_units,
            feed=feed,
            outputs=outputs,
            output_names=ode.output_names[:-k],
            in_domain=dom,
            status=tuple("ok" for _ in range(n)),
            events=tuple(sorted(events, key=lambda e: e.time)),
            completed=completed,
            wall_time=_time.perf_counter() - t0,
            info={"integrator": "cvodes", "rtol": rtol, "atol": atol, "backend": cell.backend, "setup_s": self.setup_time},
        )


def simulate_surrogate(
    settings: FedBatchSettings,
    cell: CellFluxModel,
    *,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    vmax: float | None = None,
) -> FedBatchResult:
    """Simulate the fed-batch with the embedded cell model (surrogate) using CVODES.

    One-shot form of :class:`SurrogateSimulator` (set-up included in ``wall_time``).

    Parameters
    ----------
    settings : FedBatchSettings
        Reactor, feed profile, kinetics and output grid.
    cell : CellFluxModel
        Embedded surrogate (:func:`mpc_bio.process.embed_cell_model`).
    rtol, atol : float
        CVODES relative and absolute tolerances (states in L, mmol, gDW).
    vmax : float, optional
        Glucose Vmax (mmol/gDW/h) overriding ``settings.kinetics.glucose_vmax``.

    Returns
    -------
    FedBatchResult
    """
    sim = SurrogateSimulator(settings, cell, rtol=rtol, atol=atol)
    res = sim.run(vmax=vmax)
    return dataclasses.replace(res, wall_time=res.wall_time + sim.setup_time)


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


def simulate_dfba(
    settings: FedBatchSettings,
    model: Any,
    *,
    relax: bool = False,
    pfba_settings=None,
    progress: bool = False,
) -> FedBatchResult:
    """LP-in-the-loop dFBA of the same fed-batch: fast pFBA at every step (static optimisation).

    Parameters
    ----------
    settings : FedBatchSettings
        The same reactor as the surrogate run; ``dfba_step`` (h) is the LP step.
    model : cobra.Model, str, path or PFBASolver
        Metabolic model (never modified) or a ready solver.
    relax : bool
        Elastic relaxation of the uptakes/maintenance when the LP is infeasible. False: the run
        stops at the first infeasible LP with an ``"lp_infeasible"`` event (time and state).
    pfba_settings : PFBASettings, optional
        Solver settings (inputs default to the reactor's glucose/oxygen inputs).
    progress : bool
        Show a tqdm progress bar over the output intervals.

    Returns
    -------
    FedBatchResult
        ``method="dfba"``; per output time the LP status of the step starting there.
    """
    t_start = _time.perf_counter()
    s, kin = settings, settings.kinetics
    solver = _solver(model, relax, s, pfba_settings)
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
                    t, kind,
                    f"pFBA {pt.status} at uptakes glucose {q:.4g}, oxygen {qo:.4g} mmol/gDW/h "
                    f"(c_glc {max(x[ix['n_glc']], 0) / x[ix['V']]:.4g} mmol/L); the LP-in-the-loop run stops here."
                    + (f" {pt.message}" if pt.message else ""),
                    _state_dict(names, x),
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
                            t + j * h, kind,
                            f"pFBA {pt.status} at uptakes glucose {q:.4g}, oxygen {qo:.4g} mmol/gDW/h; "
                            "the LP-in-the-loop run stops here." + (f" {pt.message}" if pt.message else ""),
                            _state_dict(names, x),
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
                events.append(SimulationEvent(t + j * h, "lp_relaxed", "first step that needed relaxation slacks", _state_dict(names, x)))
            if limited and not limited_seen:
                limited_seen = True
                events.append(
                    SimulationEvent(t + j * h, "uptake_limited", "glucose uptake limited to the glucose available in the step", _state_dict(names, x))
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
    time = np.array(times)
    states = np.array(X)
    outputs = np.array(Y, dtype=float).reshape(len(time), 3 + len(prods))
    out_names = (*OUTPUT_NAMES_BASE, *(f"v_{p}" for p, _ in prods))
    return FedBatchResult(
        method="dfba",
        time=time,
        states=states,
        state_names=names,
        state_units=s.state_units,
        feed=np.array(feeds),
        outputs=outputs,
        output_names=out_names,
        in_domain=np.ones(len(time), dtype=bool),
        status=tuple(status),
        events=tuple(events),
        completed=completed and time[-1] >= s.t_end - 1e-9,
        wall_time=_time.perf_counter() - t_start,
        info={"step_h": s.dfba_step, "lp_solves": n_lp, "relax": relax, "model_id": getattr(solver, "model_id", "")},
    )
