"""Result objects of the fed-batch simulators: trajectories, events, and a tidy table view."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SimulationEvent", "FedBatchResult", "state_dict"]


def state_dict(names, x) -> dict[str, float]:
    """The state ``x`` by name (``names``), for :attr:`SimulationEvent.state`."""
    return {n: float(v) for n, v in zip(names, np.asarray(x, dtype=float))}


@dataclass(frozen=True)
class SimulationEvent:
    """Something that happened during a simulation.

    Attributes
    ----------
    time : float
        When, h.
    kind : str
        ``"lp_infeasible"`` (the LP-in-the-loop run stopped), ``"lp_failed"`` (solver error, run
        stopped), ``"lp_relaxed"`` (first step needing relaxation slacks; the run continued),
        ``"out_of_domain"`` (the surrogate inputs left its training box), ``"uptake_limited"``
        (the dFBA step limited glucose uptake to what was available), ``"integrator_failed"``.
    message : str
        Human-readable detail.
    state : dict of str to float
        State at ``time`` (V in L, amounts in mmol, biomass in gDW).
    """

    time: float
    kind: str
    message: str
    state: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Json-ready dict."""
        return {"time_h": self.time, "kind": self.kind, "message": self.message, "state": dict(self.state)}


@dataclass(frozen=True, eq=False)
class FedBatchResult:
    """Trajectories of one fed-batch simulation.

    Attributes
    ----------
    method : str
        ``"surrogate"`` or ``"dfba"`` (LP in the loop).
    time : ndarray, shape (n,)
        Output times, h.
    states : ndarray, shape (n, n_x)
        States at ``time`` (units in ``state_units``).
    state_names : tuple of str
    state_units : dict of str to str
    feed : ndarray, shape (n,)
        Feed rate in force from each time on, L/h.
    outputs : ndarray, shape (n, n_y)
        growth (1/h), q_glc, q_o2, v_<product> (mmol/gDW/h) at each time (NaN where the LP had
        no solution).
    output_names : tuple of str
    in_domain : ndarray of bool, shape (n,)
        The cell model's inputs lie in its validity box (training domain of the surrogate).
    status : tuple of str
        Per time: ``"ok"`` for the surrogate; the LP status (optimal/relaxed/infeasible/failed) for dFBA.
    events : tuple of SimulationEvent
    completed : bool
        True when the run reached ``batch_time``.
    wall_time : float
        Seconds spent simulating.
    info : dict
        Method details (integrator, step, number of LP solves, backend).
    """

    method: str
    time: np.ndarray
    states: np.ndarray
    state_names: tuple[str, ...]
    state_units: dict[str, str]
    feed: np.ndarray
    outputs: np.ndarray
    output_names: tuple[str, ...]
    in_domain: np.ndarray
    status: tuple[str, ...]
    events: tuple[SimulationEvent, ...]
    completed: bool
    wall_time: float
    info: dict[str, Any] = field(default_factory=dict)

    def state(self, name: str) -> np.ndarray:
        """Trajectory of one state."""
        try:
            return self.states[:, self.state_names.index(name)]
        except ValueError:
            raise KeyError(f"No state {name!r}; states are {list(self.state_names)}.") from None

    def output(self, name: str) -> np.ndarray:
        """Trajectory of one output (growth, q_glc, q_o2, v_<product>)."""
        try:
            return self.outputs[:, self.output_names.index(name)]
        except ValueError:
            raise KeyError(f"No output {name!r}; outputs are {list(self.output_names)}.") from None

    def concentration(self, name: str) -> np.ndarray:
        """Concentration of an amount state (``"glc"``, ``"X"``, a product): mmol/L or gDW/L."""
        return self.state(f"n_{name}") / self.state("V")

    def event(self, kind: str) -> SimulationEvent | None:
        """The first event of a kind, or None."""
        return next((e for e in self.events if e.kind == kind), None)

    @property
    def stop_event(self) -> SimulationEvent | None:
        """The event that ended an incomplete run, or None when the run completed."""
        if self.completed:
            return None
        return next((e for e in self.events if e.kind in ("lp_infeasible", "lp_failed", "integrator_failed")), None)

    def to_pandas(self):
        """Tidy table: one row per time, columns ``time_h``, states, concentrations, feed, outputs."""
        import pandas as pd

        data: dict[str, Any] = {"method": self.method, "time_h": self.time}
        for i, n in enumerate(self.state_names):
            data[f"{n}_{self.state_units[n]}"] = self.states[:, i]
        V = self.state("V")
        for n in self.state_names:
            if n.startswith("n_"):
                unit = "gDW_per_L" if n == "n_X" else "mmol_per_L"
                data[f"c_{n[2:]}_{unit}"] = self.states[:, self.state_names.index(n)] / V
        data["F_L_per_h"] = self.feed
        for i, n in enumerate(self.output_names):
            unit = "per_h" if n == "growth" else "mmol_per_gDW_h"
            data[f"{n}_{unit}"] = self.outputs[:, i]
        data["in_domain"] = self.in_domain
        data["status"] = list(self.status)
        return pd.DataFrame(data)
