"""Fed-batch simulators: the surrogate model (CasADi/CVODES) and the LP-in-the-loop dFBA.

* :func:`simulate_surrogate` integrates the fed-batch ODE with the embedded surrogate using
  CVODES (BDF, tolerances in the call), one integrator per constant-feed segment.
* :func:`simulate_dfba` (defined in :mod:`mpc_bio.process.dfba`) solves the pFBA inside the
  simulation: adaptively (the accurate reference) or at a fixed step with frozen fluxes (the
  static-optimisation baseline the paper improves on).
"""

from __future__ import annotations

import dataclasses
import time as _time

import casadi as ca
import numpy as np

from mpc_bio.interrupts import check_interrupt
from mpc_bio.process.cell import CellFluxModel
from mpc_bio.process.dfba import simulate_dfba
from mpc_bio.process.model import FedBatchODE, fedbatch_ode, fedbatch_split
from mpc_bio.process.result import FedBatchResult, SimulationEvent, state_dict
from mpc_bio.process.settings import FedBatchSettings, ProcessSettingsError
from mpc_bio.status import note

__all__ = ["SurrogateSimulator", "simulate_surrogate", "simulate_dfba", "fedbatch_integrator"]


def _segments(settings: FedBatchSettings, grid: np.ndarray) -> list[tuple[float, float, float]]:
    """(t_start, t_stop, F) for each constant-feed segment within [0, batch_time]."""
    ts = [t for t in settings.feed.times if t < settings.batch_time] + [settings.batch_time]
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
    multistep: str = "bdf",
) -> ca.Function:
    """CVODES integrator of the fed-batch ODE at constant feed: ``(x0, [F; p]) -> X(times)``.

    The returned function is differentiable (forward/adjoint sensitivities), so derivatives of
    simulated states with respect to the initial state, the feed or the parameters are exact up
    to the integrator tolerances. ``jit=True`` compiles the right-hand side and its Jacobian to C
    (CasADi's shell compiler, needs a C compiler): ~15 s once, then 2-3x faster integration.
    ``multistep`` is CVODES's linear multistep method: ``"bdf"`` (stiff problems) or ``"adams"``
    (Adams-Moulton, with Newton iterations: fewer right-hand-side evaluations where the
    fed-batch is not stiff).
    """
    if multistep not in ("bdf", "adams"):
        raise ProcessSettingsError(f"The 'multistep' parameter must be 'bdf' or 'adams'. Got {multistep!r} instead.")
    sym = ca.MX if ode.symbolic == "MX" else ca.SX
    x = sym.sym("x", ode.n_x)
    F = sym.sym("F")
    p = sym.sym("p", len(ode.param_names))
    dae = {"x": x, "p": ca.vertcat(F, p), "ode": ode.rhs(x, F, p)}
    opts = {"abstol": atol, "reltol": rtol, "max_num_steps": 100000, "linear_multistep_method": multistep}
    if jit:
        opts.update({"jit": True, "compiler": "shell", "jit_options": {"flags": ["-O2"], "verbose": False}})
    return ca.integrator(name, "cvodes", dae, float(t0), [float(t) for t in times], opts)


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
    multistep : {"bdf", "adams"}
        CVODES's linear multistep method (see :func:`fedbatch_integrator`).
    """

    def __init__(
        self,
        settings: FedBatchSettings,
        cell: CellFluxModel,
        *,
        rtol: float = 1e-8,
        atol: float = 1e-10,
        jit: bool = False,
        multistep: str = "bdf",
    ) -> None:
        t0 = _time.perf_counter()
        self.settings, self.cell, self.rtol, self.atol, self.multistep = settings, cell, rtol, atol, multistep
        self.ode = fedbatch_ode(settings, cell, vmax_as_parameter=True)
        self._split = fedbatch_split(settings, cell) if cell.batch is not None else None  # outputs with one batched cell call
        self._maps: dict[int, tuple[ca.Function, ca.Function]] = {}  # the split's maps over n output rows
        self.grid = settings.time_grid()
        self._segments = []
        for ta, tb, F in _segments(settings, self.grid):
            pts = [t for t in self.grid if ta + 1e-12 < t <= tb + 1e-12]
            if pts:
                integ = fedbatch_integrator(
                    self.ode, ta, pts, rtol=rtol, atol=atol, jit=jit, multistep=multistep, name=f"fedbatch_sim_{len(self._segments)}"
                )
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
            note(f"surrogate fed-batch: CVODES from {ta:g} h to {pts[-1]:g} h")
            try:
                xf = np.array(integ(x0=x, p=pf)["xf"])
            except RuntimeError:
                check_interrupt()
                # keep what can be integrated: redo the segment interval by interval up to the failure
                t_prev = ta
                for tp in pts:
                    try:
                        integ_1 = fedbatch_integrator(ode, t_prev, [tp], rtol=rtol, atol=atol, multistep=self.multistep)
                        x = np.array(integ_1(x0=x, p=pf)["xf"]).ravel()
                    except RuntimeError as exc:
                        check_interrupt()  # CVODES failed because of Ctrl-C/SIGTERM: stop, not an event
                        msg = next((ln for ln in str(exc).splitlines() if "error test failed" in ln or "CV_" in ln), "")
                        events.append(
                            SimulationEvent(
                                t_prev,
                                "integrator_failed",
                                f"CVODES failed between {t_prev:.4g} h and {tp:.4g} h {msg}".strip(),
                                state_dict(ode.state_names, x),
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
        k = len(cell.input_names)
        P = np.tile(pval[:, None], (1, n))
        if self._split is None:
            Y = np.array(ode.outputs.map(n)(states.T, feed[None, :], P)).T
        else:  # the cell model evaluated once for all rows by cell.batch
            if n not in self._maps:
                self._maps[n] = (self._split.uptakes.map(n), self._split.outputs.map(n))
            uptakes_n, outputs_n = self._maps[n]
            U = np.array(uptakes_n(states.T, P)).T
            Y = np.array(outputs_n(states.T, feed[None, :], P, np.asarray(cell.batch(U), dtype=float).T)).T
        outputs, uptakes = Y[:, :-k], Y[:, -k:]
        dom = cell.in_domain(uptakes)
        if not np.all(dom):
            i = int(np.argmin(dom))
            events.append(
                SimulationEvent(
                    float(time[i]),
                    "out_of_domain",
                    f"uptakes {dict(zip(cell.input_names, uptakes[i].round(4).tolist()))} mmol/gDW/h left the "
                    f"surrogate's training box [{cell.domain_low.tolist()}, {cell.domain_high.tolist()}]; "
                    "predictions are extrapolations.",
                    state_dict(ode.state_names, states[i]),
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
            info={
                "integrator": "cvodes",
                "multistep": self.multistep,
                "rtol": rtol,
                "atol": atol,
                "backend": cell.backend,
                "setup_s": self.setup_time,
            },
        )


def simulate_surrogate(
    settings: FedBatchSettings, cell: CellFluxModel, *, rtol: float = 1e-8, atol: float = 1e-10, vmax: float | None = None
) -> FedBatchResult:
    """Simulate the fed-batch with the embedded cell model (surrogate) using CVODES: the one-shot
    form of :class:`SurrogateSimulator` (same parameters) and its :meth:`~SurrogateSimulator.run`
    (``vmax``), set-up included in ``wall_time``."""
    sim = SurrogateSimulator(settings, cell, rtol=rtol, atol=atol)
    res = sim.run(vmax=vmax)
    return dataclasses.replace(res, wall_time=res.wall_time + sim.setup_time)
