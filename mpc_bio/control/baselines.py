"""Classical feed baselines, each tuned over its single parameter: constant feed and exponential feed.

Both stop feeding when the reactor is full (``volume_max``), the usual practice. A candidate that
violates the glucose or acetate limit by more than ``BatchProblem.constraint_tolerance`` is
rejected; the best feasible candidate on the batch objective is returned with the whole scan.

Exponential feed (classical, e.g. Yee & Blanch 1992): the feed that keeps the specific growth
rate at a set value mu_set when the biomass yield on glucose is Y_xs,

    F(t) = mu_set * X0 / (Y_xs * C_in) * exp(mu_set * t)      [L/h],

with X0 the initial biomass [gDW] and C_in the feed glucose concentration [mmol/L].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpc_bio.control.model import ControlModel, Trajectory, simulate_feed
from mpc_bio.control.settings import BaselineSettings, BatchProblem

__all__ = ["BaselineResult", "tune_constant_feed", "tune_exponential_feed", "exponential_feed_law"]


@dataclass(frozen=True, eq=False)
class BaselineResult:
    """The best tuned baseline and its parameter scan.

    Attributes
    ----------
    kind : str
        ``"constant"`` or ``"exponential"``.
    parameter_name : str
        ``"feed"`` [L/h] or ``"mu_set"`` [1/h].
    parameter : float
        The best parameter value (NaN when no candidate was feasible).
    objective : float
        Batch objective of the best candidate (NaN when none was feasible).
    trajectory : Trajectory or None
        Simulation of the best candidate.
    scan_parameters, scan_objectives, scan_violations : ndarray
        The whole scan (objective and largest relative constraint violation per candidate).
    tolerance : float
        Largest relative violation accepted as feasible [-].
    """

    kind: str
    parameter_name: str
    parameter: float
    objective: float
    trajectory: Trajectory | None
    scan_parameters: np.ndarray
    scan_objectives: np.ndarray
    scan_violations: np.ndarray
    tolerance: float = 0.0


def exponential_feed_law(mu_set: float, x_biomass0: float, settings: BaselineSettings):
    """Feed law ``f(t, x)`` of the classical exponential feed [L/h]."""
    f0 = mu_set * x_biomass0 / (settings.yield_xs * settings.feed_glucose)

    def law(t, x):
        return f0 * np.exp(mu_set * t)

    return law


def _select(kind, pname, values, trajs, problem) -> BaselineResult:
    obj = np.array([t.objective for t in trajs])
    vio = np.array([t.violation for t in trajs])
    ok = vio <= problem.constraint_tolerance
    if not ok.any():
        return BaselineResult(kind, pname, float("nan"), float("nan"), None, values, obj, vio, problem.constraint_tolerance)
    best = int(np.argmax(np.where(ok, obj, -np.inf)))
    return BaselineResult(kind, pname, float(values[best]), float(obj[best]), trajs[best], values, obj, vio, problem.constraint_tolerance)


def tune_constant_feed(
    model: ControlModel, problem: BatchProblem, x0, settings: BaselineSettings | None = None, *, params=None
) -> BaselineResult:
    """Best constant feed rate over a grid between ``feed_min`` and ``feed_max``."""
    settings = settings or BaselineSettings()
    values = np.linspace(problem.feed_min, problem.feed_max, settings.n_grid)
    trajs = [simulate_feed(model, problem, x0, (lambda t, x, f=f: f), dt=settings.sim_dt, params=params) for f in values]
    return _select("constant", "feed", values, trajs, problem)


def tune_exponential_feed(
    model: ControlModel, problem: BatchProblem, x0, settings: BaselineSettings | None = None, *, params=None
) -> BaselineResult:
    """Best exponential feed over a grid of set growth rates ``mu_min..mu_max``."""
    settings = settings or BaselineSettings()
    x0 = np.asarray(x0, dtype=float).reshape(-1)
    xb = float(x0[model.index("biomass")])
    values = np.linspace(settings.mu_min, settings.mu_max, settings.n_grid)
    trajs = [simulate_feed(model, problem, x0, exponential_feed_law(mu, xb, settings), dt=settings.sim_dt, params=params) for mu in values]
    return _select("exponential", "mu_set", values, trajs, problem)
