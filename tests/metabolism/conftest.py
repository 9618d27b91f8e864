"""Helpers for the metabolism tests: the independent reference is COBRApy's own pfba (GLPK)."""

from __future__ import annotations

import math

import cobra
import pytest
from cobra.flux_analysis import pfba


def cobra_pfba(model: cobra.Model, uptakes: dict[str, float], inputs: dict[str, str] | None = None):
    """(growth, total split flux) from cobra.flux_analysis.pfba with uptakes fixed; None if infeasible.

    GLPK runs with a primal feasibility tolerance of 1e-9 (optlang's default 1e-7 leaves errors of
    ~1e-6 relative in growth on iJO1366, as GLPK's exact solver confirms). The model's bounds are
    changed only inside ``with model:`` and the tolerance is restored on exit.
    """
    inputs = inputs or {"glucose": "EX_glc__D_e", "oxygen": "EX_o2_e"}
    tolerances = model.solver.configuration.tolerances
    old = tolerances.feasibility
    tolerances.feasibility = 1e-9
    try:
        return _cobra_pfba(model, uptakes, inputs)
    finally:
        tolerances.feasibility = old


def _cobra_pfba(model, uptakes, inputs):
    with model:
        for name, value in uptakes.items():
            model.reactions.get_by_id(inputs[name]).bounds = (-value, -value)
        try:
            sol = pfba(model)
        except (cobra.exceptions.Infeasible, cobra.exceptions.OptimizationError):
            return None
        if sol.status != "optimal":
            return None
        objective = next(r.id for r in model.reactions if r.objective_coefficient != 0)
        return float(sol.fluxes[objective]), float(sol.objective_value)


def spread(low: float, high: float, n: int, offset: float = 0.0137) -> list[float]:
    """n values in [low, high], nudged off round numbers so no point sits exactly on a boundary."""
    step = (high - low) / (n - 1)
    return [round(low + i * step + offset * math.sin(7.0 * i + 1.0), 6) for i in range(n)]


@pytest.fixture(name="cobra_pfba")
def _cobra_pfba_fixture():
    """The COBRApy reference :func:`cobra_pfba` (a fixture, so any pytest import mode works)."""
    return cobra_pfba


@pytest.fixture(name="spread")
def _spread_fixture():
    """The point-spacing helper :func:`spread`."""
    return spread
