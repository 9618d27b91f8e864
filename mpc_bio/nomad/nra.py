"""Network Response Analysis (NRA): strain design as a MILP over control coefficients.

For one kinetic model linearised at its reference steady state, the log responses of
concentrations and fluxes to log changes of enzyme activities are

    dln x = C^x (EU - ED),    dln v = C^v (EU - ED),

with C^x and C^v the concentration and flux control coefficients and EU, ED >= 0 the log up-
and down-regulations (Hatzimanikatis et al. 1996; Tsouka et al. 2021; NOMAD, Methods).
:func:`solve_nra` maximises the log yield change of product on substrate,
dln v_product - dln v_substrate, subject to

* EU_j in [0, ln U], ED_j in [0, ln D], binaries up_j, down_j, use_j = up_j + down_j <= 1;
* big-M links EU_j <= ln(U) up_j and ED_j <= ln(D) down_j. The big-M constants equal the
  variables' own upper bounds, so the link is exact: with up_j = 1 it removes nothing that
  the bound had not removed already, with up_j = 0 it forces EU_j = 0; no numerically large M
  is involved. A minimal change EU_j >= delta up_j (ED_j >= delta down_j) makes a "used"
  enzyme really change. The model is built in the projected form on d_j = EU_j - ED_j:
  delta up_j - ln(D) down_j <= d_j <= ln(U) up_j - delta down_j, which for every binary
  pattern admits exactly the same d_j (0; [delta, ln U]; [-ln D, -delta]) and has the same LP
  relaxation, with a third of the continuous columns and fewer rows;
* |dln x_i| <= ln(max concentration fold) for every intracellular metabolite, dependent
  (conserved-moiety) metabolites included;
* thermodynamics: each reaction keeps its reference direction, ln(Gamma/Keq)_r +
  sum_i S_ir dln x_i <= -margin_r (forward) or >= +margin_r (reverse);
* sum of use_j <= N (a coupled group counts once), dln v_growth >= ln(1 - max reduction),
  exclusions (use_j = 0), couplings (equal changes within a group), optional flux bounds.

:func:`enumerate_designs` then enumerates alternatives with integer cuts: each cut forbids the
exact up/down pattern of a found design; enumeration stops when the next optimum falls below
``optimum - fraction * |optimum|``, and only designs inside that threshold are recorded.

The input, :class:`NRAProblem`, holds plain numpy arrays and ids, so any source of control
coefficients can be used; :func:`nra_problem_from_mca` adapts the NOMAD ensemble's result.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pyomo.environ as pyo
from pyomo.opt import TerminationCondition

from mpc_bio.nomad.nra_settings import NRASettings

__all__ = [
    "NRAProblem",
    "NRADesign",
    "SolveRecord",
    "NRAEnumeration",
    "DesignCheck",
    "build_nra_model",
    "impose_membership",
    "solve_nra",
    "enumerate_designs",
    "predict_response",
    "check_design",
    "random_nra_problem",
    "nra_problems_from_control_coefficients",
]

_HIGHS_SOLVERS = ("appsi_highs", "highs")
_HIGHS_HEURISTICS_OFF = {
    "mip_heuristic_run_rins": False,
    "mip_heuristic_run_rens": False,
    "mip_heuristic_run_root_reduced_cost": False,
    "mip_heuristic_run_feasibility_jump": False,
}


@dataclass(frozen=True, eq=False)
class NRAProblem:
    """Linearised design problem of one kinetic model (plain arrays, no model objects).

    Attributes
    ----------
    enzyme_ids : tuple of str
        Enzymes whose activities can be changed (columns of the control coefficients).
    reaction_ids : tuple of str
        Reactions (rows of ``flux_control``, columns of ``stoichiometry``).
    metabolite_ids : tuple of str
        Intracellular (variable) metabolites, dependent ones included (rows of
        ``concentration_control`` and ``stoichiometry``). Boundary metabolites are fixed and
        left out.
    concentration_control : ndarray, shape (n_metabolites, n_enzymes)
        Log concentration control coefficients dln x_i / dln e_j (dimensionless).
    flux_control : ndarray, shape (n_reactions, n_enzymes)
        Log flux control coefficients dln v_r / dln e_j (dimensionless).
    stoichiometry : ndarray, shape (n_metabolites, n_reactions)
        Stoichiometric coefficients of the variable metabolites, used in the log mass-action
        ratio ln Gamma_r = sum_i S_ir ln x_i + (boundary terms, fixed).
    log_displacement : ndarray, shape (n_reactions,)
        Reference ln(Gamma/Keq) per reaction: negative for forward flux, positive for reverse;
        NaN (or exactly 0) leaves the reaction without a thermodynamic constraint.
    product_reaction, substrate_reaction : str
        Reactions whose log flux ratio is the yield (e.g. anthranilate export, glucose uptake).
    growth_reaction : str or None
        Growth reaction for the growth-reduction constraint; None drops that constraint.
    model_id : str
        Name of the kinetic model (carried into designs).
    """

    enzyme_ids: tuple[str, ...]
    reaction_ids: tuple[str, ...]
    metabolite_ids: tuple[str, ...]
    concentration_control: np.ndarray
    flux_control: np.ndarray
    stoichiometry: np.ndarray
    log_displacement: np.ndarray
    product_reaction: str
    substrate_reaction: str
    growth_reaction: str | None = None
    model_id: str = "model"

    def __post_init__(self) -> None:
        for name in ("enzyme_ids", "reaction_ids", "metabolite_ids"):
            ids = tuple(str(i) for i in getattr(self, name))
            if len(set(ids)) != len(ids):
                raise ValueError(f"The '{name}' of NRAProblem must be unique. Got duplicates in {ids!r}.")
            object.__setattr__(self, name, ids)
        ne, nr, nm = len(self.enzyme_ids), len(self.reaction_ids), len(self.metabolite_ids)
        shapes = {
            "concentration_control": (nm, ne),
            "flux_control": (nr, ne),
            "stoichiometry": (nm, nr),
            "log_displacement": (nr,),
        }
        for name, shape in shapes.items():
            arr = np.array(getattr(self, name), dtype=float, copy=True)
            if arr.shape != shape:
                raise ValueError(f"The '{name}' of NRAProblem must have shape {shape}. Got {arr.shape} instead.")
            if name != "log_displacement" and not np.all(np.isfinite(arr)):
                raise ValueError(f"The '{name}' of NRAProblem must be finite; it has NaN or inf entries.")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        for name in ("product_reaction", "substrate_reaction"):
            if getattr(self, name) not in self.reaction_ids:
                raise ValueError(f"The '{name}' of NRAProblem must be one of reaction_ids. Got {getattr(self, name)!r} instead.")
        if self.growth_reaction is not None and self.growth_reaction not in self.reaction_ids:
            raise ValueError(
                f"The 'growth_reaction' of NRAProblem must be one of reaction_ids or None. Got {self.growth_reaction!r} instead."
            )

    @property
    def yield_control(self) -> np.ndarray:
        """Yield control coefficients C^v_product - C^v_substrate per enzyme (dimensionless)."""
        p = self.reaction_ids.index(self.product_reaction)
        s = self.reaction_ids.index(self.substrate_reaction)
        return self.flux_control[p] - self.flux_control[s]

    @property
    def thermo_control(self) -> np.ndarray:
        """dln Gamma_r / dln e_j = S^T C^x, shape (n_reactions, n_enzymes)."""
        return self.stoichiometry.T @ self.concentration_control


@dataclass(frozen=True, eq=False)
class NRADesign:
    """One strain design: which enzymes change, how much, and the log-linear prediction.

    Attributes
    ----------
    model_id : str
        Kinetic model the design was computed for.
    enzymes : tuple of str
        Changed enzymes (sorted by enzyme index).
    log_fold_changes : tuple of float
        ln(activity / reference activity) per changed enzyme (positive = up).
    objective : float
        Predicted log yield change dln v_product - dln v_substrate (ln units).
    growth_log_change : float
        Predicted dln v_growth (ln units); NaN without a growth reaction.
    log_changes : ndarray, shape (n_enzymes,)
        EU - ED for every enzyme of the problem (ln units).
    rank : int
        0 for the optimum, then in enumeration order.
    """

    model_id: str
    enzymes: tuple[str, ...]
    log_fold_changes: tuple[float, ...]
    objective: float
    growth_log_change: float
    log_changes: np.ndarray
    rank: int = 0

    @property
    def membership(self) -> tuple[str, ...]:
        """Sorted enzyme names: two designs with the same membership are the same by membership."""
        return tuple(sorted(self.enzymes))

    @property
    def directions(self) -> tuple[int, ...]:
        """+1 (up) or -1 (down) per changed enzyme."""
        return tuple(1 if v > 0 else -1 for v in self.log_fold_changes)

    @property
    def fold_changes(self) -> tuple[float, ...]:
        """Activity ratios exp(log fold change) per changed enzyme."""
        return tuple(math.exp(v) for v in self.log_fold_changes)

    @property
    def yield_gain(self) -> float:
        """Predicted relative yield increase exp(objective) - 1 (fraction; 0.9 = +90%)."""
        return math.expm1(self.objective)

    @property
    def label(self) -> str:
        """Readable label such as 'DDPA+5.00x GLUDy-0.20x'."""
        parts = [f"{e}{'+' if v > 0 else '-'}{math.exp(v):.2f}x" for e, v in zip(self.enzymes, self.log_fold_changes)]
        return " ".join(parts) if parts else "(no change)"


@dataclass(frozen=True)
class SolveRecord:
    """Outcome of one MILP solve: status, solver termination, objective, wall time and CPU time (s).

    The CPU time is this process's (HiGHS runs in-process), which other jobs competing for the
    cores disturb less than the wall time.
    """

    status: str
    termination: str
    objective: float
    time_s: float
    cpu_s: float = math.nan


@dataclass(frozen=True, eq=False)
class NRAEnumeration:
    """All designs of one model within a fraction of the optimum.

    Attributes
    ----------
    model_id : str
        Kinetic model.
    status : str
        "optimal" when the first solve found an optimum, "infeasible" when the design
        settings admit no solution (the reference state itself violates them), otherwise the
        solver's termination condition.
    optimum : float
        Best objective (ln units); NaN if none.
    threshold : float
        Designs have objective >= threshold (ln units); NaN if no optimum.
    designs : tuple of NRADesign
        Recorded designs, best first.
    solves : tuple of SolveRecord
        Every MILP solve, including the last one that fell below the threshold.
    truncated : bool
        True when ``max_designs`` stopped the enumeration.
    message : str
        Human-readable summary.
    cpu_s : float
        Process CPU time of the whole enumeration (s): model build, every MILP and the fold
        change re-solves, Pyomo included.
    """

    model_id: str
    status: str
    optimum: float
    threshold: float
    designs: tuple[NRADesign, ...]
    solves: tuple[SolveRecord, ...]
    truncated: bool = False
    message: str = ""
    cpu_s: float = math.nan

    @property
    def solve_times_s(self) -> np.ndarray:
        """Wall time of each MILP solve (s)."""
        return np.array([s.time_s for s in self.solves])

    @property
    def solve_cpu_s(self) -> np.ndarray:
        """CPU time of each MILP solve (s)."""
        return np.array([s.cpu_s for s in self.solves])

    def to_frame(self):
        """Designs as a tidy pandas DataFrame (one row per design)."""
        import pandas as pd

        rows = [
            {
                "model_id": d.model_id,
                "rank": d.rank,
                "design": d.label,
                "membership": "+".join(d.membership),
                "n_enzymes": len(d.enzymes),
                "objective_ln": d.objective,
                "yield_gain": d.yield_gain,
                "growth_log_change": d.growth_log_change,
            }
            for d in self.designs
        ]
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class DesignCheck:
    """Largest violation of each NRA constraint by a vector of log changes (ln units, >= 0)."""

    enzyme_bounds: float
    concentration: float
    thermodynamics: float
    growth: float
    interventions: int
    flux: float
    excluded: float
    coupling: float

    def ok(self, tol: float = 1e-6) -> bool:
        """True when every violation is within ``tol`` and the intervention count is allowed."""
        return (
            max(self.enzyme_bounds, self.concentration, self.thermodynamics, self.growth, self.flux, self.excluded, self.coupling) <= tol
            and self.interventions <= 0
        )


# ----------------------------------------------------------------------------- helpers


def predict_response(problem: NRAProblem, log_changes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-linear responses to enzyme log changes.

    Parameters
    ----------
    problem : NRAProblem
    log_changes : ndarray, shape (n_enzymes,)
        ln(activity / reference) per enzyme.

    Returns
    -------
    dlnx : ndarray, shape (n_metabolites,)
        Predicted log concentration changes.
    dlnv : ndarray, shape (n_reactions,)
        Predicted log flux changes.
    """
    d = np.asarray(log_changes, dtype=float)
    return problem.concentration_control @ d, problem.flux_control @ d


def _margins(problem: NRAProblem, settings: NRASettings) -> np.ndarray:
    d = problem.log_displacement
    return np.where(np.isfinite(d), np.minimum(settings.thermodynamic_margin, np.abs(d) / 2.0), np.nan)


def _groups(problem: NRAProblem, settings: NRASettings) -> list[list[int]]:
    """Enzyme index groups: coupled enzymes together, every other enzyme alone."""
    index = {e: i for i, e in enumerate(problem.enzyme_ids)}
    grouped: set[int] = set()
    groups: list[list[int]] = []
    for g in settings.coupled_enzymes:
        missing = [e for e in g if e not in index]
        if missing:
            raise ValueError(f"Coupled enzymes {missing} are not enzymes of model {problem.model_id!r}.")
        idx = [index[e] for e in g]
        groups.append(idx)
        grouped |= set(idx)
    groups.extend([i] for i in range(len(problem.enzyme_ids)) if i not in grouped)
    return groups


def check_design(
    problem: NRAProblem,
    settings: NRASettings,
    log_changes: np.ndarray,
    *,
    zero_tol: float = 1e-9,
) -> DesignCheck:
    """Plug enzyme log changes into every NRA constraint and report the largest violations.

    Parameters
    ----------
    problem, settings
        The design problem and its settings.
    log_changes : ndarray, shape (n_enzymes,)
        ln(activity / reference) per enzyme.
    zero_tol : float
        |log change| below this counts as "not changed" (ln units).

    Returns
    -------
    DesignCheck
        Violations (0 when satisfied); ``interventions`` is the excess over the maximum.
    """
    d = np.asarray(log_changes, dtype=float)
    up, down = settings.log_up_bound, settings.log_down_bound
    changed = np.abs(d) > zero_tol
    enz = np.where(d > 0, np.maximum(d - up, 0.0), np.maximum(-d - down, 0.0))
    # a changed enzyme must change by at least min_log_change
    enz = np.maximum(enz, np.where(changed, np.maximum(settings.min_log_change - np.abs(d), 0.0), 0.0))
    dlnx, dlnv = predict_response(problem, d)
    lim = math.log(settings.max_concentration_fold)
    conc = float(np.max(np.abs(dlnx) - lim, initial=0.0))
    conc = max(conc, 0.0)
    thermo = 0.0
    margins = _margins(problem, settings)
    after = problem.log_displacement + problem.thermo_control @ d
    for r, ref in enumerate(problem.log_displacement):
        if not np.isfinite(ref) or ref == 0.0:
            continue
        viol = after[r] + margins[r] if ref < 0 else margins[r] - after[r]
        thermo = max(thermo, float(viol))
    growth = 0.0
    if problem.growth_reaction is not None:
        g = problem.reaction_ids.index(problem.growth_reaction)
        growth = max(0.0, math.log(1.0 - settings.max_growth_reduction) - float(dlnv[g]))
    flux = 0.0
    if settings.max_flux_fold is not None:
        flux = max(0.0, float(np.max(np.abs(dlnv))) - math.log(settings.max_flux_fold))
    groups = _groups(problem, settings)
    n_int = sum(1 for g in groups if np.any(changed[g]))
    index = {e: i for i, e in enumerate(problem.enzyme_ids)}
    excluded = max((abs(d[index[e]]) for e in settings.excluded_enzymes if e in index), default=0.0)
    coupling = max((float(np.ptp(d[g])) for g in groups if len(g) > 1), default=0.0)
    return DesignCheck(
        enzyme_bounds=float(np.max(enz, initial=0.0)),
        concentration=conc,
        thermodynamics=max(thermo, 0.0),
        growth=growth,
        interventions=max(0, n_int - settings.max_interventions),
        flux=flux,
        excluded=float(excluded),
        coupling=coupling,
    )


# ----------------------------------------------------------------------------- MILP


def _affine(coefs: np.ndarray, var, tol: float = 0.0):
    """sum_j coefs[j] * var[j] over the non-zero coefficients, as a Pyomo linear expression."""
    nz = np.flatnonzero(np.abs(coefs) > tol)
    return pyo.quicksum((float(coefs[j]) * var[int(j)] for j in nz)) if nz.size else 0.0


def build_nra_model(
    problem: NRAProblem,
    settings: NRASettings,
    *,
    members: Sequence[str] | None = None,
    min_log_change: float | None = None,
) -> pyo.ConcreteModel:
    """Build the NRA MILP of one model as a Pyomo ``ConcreteModel``.

    Parameters
    ----------
    problem : NRAProblem
        Control coefficients, stoichiometry and displacements of one kinetic model.
    settings : NRASettings
        Design constraints.
    members : sequence of str, optional
        Impose a design membership: these enzymes must change (direction free) and no other
        may. Used by design ranking. The intervention limit is then not applied.
    min_log_change : float, optional
        Override of ``settings.min_log_change`` (ln units); ranking uses 1e-6 as in the paper.

    Returns
    -------
    pyomo.environ.ConcreteModel
        Variables ``delta`` (= EU - ED, the log activity change), binaries ``up``, ``down``, ``use``;
        objective ``objective`` (maximise); a ``cuts`` ConstraintList for integer cuts.
    """
    ne = len(problem.enzyme_ids)
    up_b, down_b = settings.log_up_bound, settings.log_down_bound
    delta_min = settings.min_log_change if min_log_change is None else float(min_log_change)
    if delta_min < 0 or delta_min >= min(up_b, down_b):
        raise ValueError(f"min_log_change must be in [0, {min(up_b, down_b):.4g}). Got {delta_min!r} instead.")
    index = {e: i for i, e in enumerate(problem.enzyme_ids)}
    unknown = [e for e in settings.excluded_enzymes if e not in index]
    if unknown:
        raise ValueError(f"Excluded enzymes {unknown} are not enzymes of model {problem.model_id!r}.")
    groups = _groups(problem, settings)

    m = pyo.ConcreteModel(name=f"NRA_{problem.model_id}")
    m.J = pyo.RangeSet(0, ne - 1) if ne else pyo.Set(initialize=[])
    m.delta = pyo.Var(m.J, bounds=(-down_b, up_b))
    m.up = pyo.Var(m.J, domain=pyo.Binary)
    m.down = pyo.Var(m.J, domain=pyo.Binary)
    m.use = pyo.Var(m.J, domain=pyo.Binary)

    # big-M = the bounds of EU = max(delta, 0) and ED = max(-delta, 0) themselves, in the
    # projected form on delta = EU - ED: exact (see module docstring)
    m.up_link = pyo.Constraint(m.J, rule=lambda m, j: m.delta[j] <= up_b * m.up[j] - delta_min * m.down[j])
    m.down_link = pyo.Constraint(m.J, rule=lambda m, j: m.delta[j] >= delta_min * m.up[j] - down_b * m.down[j])
    m.one_direction = pyo.Constraint(m.J, rule=lambda m, j: m.up[j] + m.down[j] == m.use[j])

    # couplings: every member of a group follows its first enzyme
    m.coupling = pyo.ConstraintList()
    for g in groups:
        lead = g[0]
        for j in g[1:]:
            m.coupling.add(m.delta[j] == m.delta[lead])
            m.coupling.add(m.up[j] == m.up[lead])
            m.coupling.add(m.down[j] == m.down[lead])
    leads = [g[0] for g in groups]

    m.interventions = pyo.Constraint(expr=pyo.quicksum(m.use[j] for j in leads) <= settings.max_interventions)
    impose_membership(m, problem, settings, members)

    cx = problem.concentration_control
    lim_x = math.log(settings.max_concentration_fold)
    rows_x = [i for i in range(cx.shape[0]) if np.any(cx[i] != 0.0)]
    m.conc_rows = pyo.Set(initialize=rows_x)
    m.dlnx = pyo.Expression(m.conc_rows, rule=lambda m, i: _affine(cx[i], m.delta))
    m.conc_upper = pyo.Constraint(m.conc_rows, rule=lambda m, i: m.dlnx[i] <= lim_x)
    m.conc_lower = pyo.Constraint(m.conc_rows, rule=lambda m, i: m.dlnx[i] >= -lim_x)

    tc = problem.thermo_control
    margins = _margins(problem, settings)
    m.thermo = pyo.ConstraintList()
    for r, ref in enumerate(problem.log_displacement):
        if not np.isfinite(ref) or ref == 0.0 or not np.any(tc[r] != 0.0):
            continue
        expr = _affine(tc[r], m.delta)
        if ref < 0:
            m.thermo.add(expr <= -margins[r] - float(ref))
        else:
            m.thermo.add(expr >= margins[r] - float(ref))

    cv = problem.flux_control
    if problem.growth_reaction is not None:
        g = problem.reaction_ids.index(problem.growth_reaction)
        m.growth = pyo.Constraint(expr=_affine(cv[g], m.delta) >= math.log(1.0 - settings.max_growth_reduction))
    if settings.max_flux_fold is not None:
        lim_v = math.log(settings.max_flux_fold)
        rows_v = [r for r in range(cv.shape[0]) if np.any(cv[r] != 0.0)]
        m.flux_rows = pyo.Set(initialize=rows_v)
        m.flux_upper = pyo.Constraint(m.flux_rows, rule=lambda m, r: _affine(cv[r], m.delta) <= lim_v)
        m.flux_lower = pyo.Constraint(m.flux_rows, rule=lambda m, r: _affine(cv[r], m.delta) >= -lim_v)

    m.objective = pyo.Objective(expr=_affine(problem.yield_control, m.delta), sense=pyo.maximize)
    m.cuts = pyo.ConstraintList()
    return m


def impose_membership(
    m: pyo.ConcreteModel,
    problem: NRAProblem,
    settings: NRASettings,
    members: Sequence[str] | None,
) -> None:
    """Fix the binaries of an NRA model for a design membership (or release them).

    With ``members`` None every enzyme is free except the excluded ones and the intervention
    limit is active. Otherwise the members (and their coupled partners) must change, direction
    free, every other enzyme is fixed at its reference activity, and the intervention limit is
    deactivated. Works in place, so a persistent solver re-solves incrementally.

    Raises
    ------
    ValueError
        When a member is not an enzyme of the model or is excluded in the settings.
    """
    ne = len(problem.enzyme_ids)
    index = {e: i for i, e in enumerate(problem.enzyme_ids)}
    for j in range(ne):
        for var in (m.up[j], m.down[j], m.use[j]):
            var.unfix()
    excluded = {index[e] for e in settings.excluded_enzymes}
    for j in excluded:
        m.use[j].fix(0)
        m.up[j].fix(0)
        m.down[j].fix(0)
    if members is None:
        m.interventions.activate()
        return
    missing = [e for e in members if e not in index]
    if missing:
        raise ValueError(f"Design enzymes {missing} are not enzymes of model {problem.model_id!r}.")
    chosen = {index[e] for e in members}
    for g in _groups(problem, settings):
        if chosen & set(g):
            chosen |= set(g)
    if chosen & excluded:
        raise ValueError(f"Design enzymes {[problem.enzyme_ids[j] for j in sorted(chosen & excluded)]} are excluded in the settings.")
    for j in range(ne):
        if j in chosen:
            m.use[j].fix(1)
        else:
            m.up[j].fix(0)
            m.down[j].fix(0)
            m.use[j].fix(0)
    m.interventions.deactivate()


def _solver(settings: NRASettings):
    opt = pyo.SolverFactory(settings.solver)
    try:
        available = opt.available(exception_flag=False)
    except Exception as exc:  # pragma: no cover - depends on installed solvers
        raise RuntimeError(f"Pyomo solver {settings.solver!r} is not usable: {exc}") from exc
    if not available:
        raise RuntimeError(
            f"Pyomo solver {settings.solver!r} is not available; use 'appsi_highs' or 'highs' (highspy) or install the solver."
        )
    if settings.solver == "appsi_highs":
        # The persistent interface re-reads only what NRA changes between solves: fixed binaries
        # go to HiGHS as column bounds (instead of re-adding every constraint that holds them),
        # and new or deactivated constraints (cuts, the objective floor, the intervention limit
        # in ranking). Variables, parameters, objective and existing constraint bodies never
        # change after build_nra_model.
        cfg = opt.update_config
        cfg.treat_fixed_vars_as_params = False
        cfg.check_for_new_or_removed_vars = False
        cfg.check_for_new_or_removed_params = False
        cfg.check_for_new_objective = False
        cfg.update_params = False
        cfg.update_named_expressions = False
        cfg.update_objective = False
        cfg.update_constraints = False
    return opt


def _solve(opt, m: pyo.ConcreteModel, settings: NRASettings, *, first_feasible: bool = False) -> SolveRecord:
    """Solve ``m`` in place; with ``first_feasible`` (persistent HiGHS only) stop at the first
    improving solution, reported with status "feasible"."""
    kwargs = {}
    if settings.solver in _HIGHS_SOLVERS:
        kwargs["options"] = {
            "mip_rel_gap": settings.mip_rel_gap,
            "time_limit": settings.time_limit,
            "mip_feasibility_tolerance": 1e-9,
            "primal_feasibility_tolerance": 1e-9,
            # HiGHS's sub-MIP and search heuristics (RINS, RENS, root reduced cost, feasibility
            # jump) took most of the time on these small MILPs (~30 nodes) without shortening
            # the search: off, the enumeration of the benchmark's 10 models needs ~2x less CPU
            # and returns the same designs (benchmarks/nomad_nra.py, tests/nomad/test_nra.py)
            **_HIGHS_HEURISTICS_OFF,
        }
        if settings.solver == "appsi_highs":
            # set on every call: the persistent solver keeps options between solves
            kwargs["options"]["mip_max_improving_sols"] = 1 if first_feasible else 2147483647
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        res = opt.solve(m, load_solutions=False, **kwargs)
    except Exception as exc:  # solver crash: report, do not propagate silently
        return SolveRecord("error", f"{type(exc).__name__}: {exc}", math.nan, time.perf_counter() - t0, time.process_time() - c0)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    tc = res.solver.termination_condition
    if tc == TerminationCondition.optimal:
        m.solutions.load_from(res)
        return SolveRecord("optimal", str(tc), float(pyo.value(m.objective)), elapsed, cpu)
    if tc in (TerminationCondition.infeasible, TerminationCondition.infeasibleOrUnbounded):
        return SolveRecord("infeasible", str(tc), math.nan, elapsed, cpu)
    if first_feasible and tc == TerminationCondition.maxIterations:
        # HiGHS stopped at the requested first improving solution: load it (Pyomo warns that
        # the status is "aborted"; the solution is feasible by construction)
        log = logging.getLogger("pyomo.core")
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            m.solutions.load_from(res)
        except (ValueError, RuntimeError):  # no solution attached after all
            return SolveRecord("not_solved", str(tc), math.nan, elapsed, cpu)
        finally:
            log.setLevel(level)
        return SolveRecord("feasible", str(tc), float(pyo.value(m.objective)), elapsed, cpu)
    return SolveRecord("not_solved", str(tc), math.nan, elapsed, cpu)


def _polish(opt, m: pyo.ConcreteModel, problem: NRAProblem, settings: NRASettings, up: Iterable[int], down: Iterable[int]) -> SolveRecord:
    """Best fold changes for one up/down pattern: fix its binaries, re-solve, release them."""
    up, down = set(up), set(down)
    for j in range(len(problem.enzyme_ids)):
        m.up[j].fix(1 if j in up else 0)
        m.down[j].fix(1 if j in down else 0)
        m.use[j].fix(1 if (j in up or j in down) else 0)
    try:
        return _solve(opt, m, settings)
    finally:
        impose_membership(m, problem, settings, None)


def _design_from_model(problem: NRAProblem, m: pyo.ConcreteModel, rank: int) -> tuple[NRADesign, list[int], list[int]]:
    ne = len(problem.enzyme_ids)
    up = [j for j in range(ne) if pyo.value(m.up[j]) > 0.5]
    down = [j for j in range(ne) if pyo.value(m.down[j]) > 0.5]
    d = np.zeros(ne)
    for j in up + down:
        d[j] = float(pyo.value(m.delta[j]))
    used = sorted(up + down)
    growth = math.nan
    if problem.growth_reaction is not None:
        g = problem.reaction_ids.index(problem.growth_reaction)
        growth = float(problem.flux_control[g] @ d)
    d.setflags(write=False)
    design = NRADesign(
        model_id=problem.model_id,
        enzymes=tuple(problem.enzyme_ids[j] for j in used),
        log_fold_changes=tuple(float(d[j]) for j in used),
        objective=float(problem.yield_control @ d),
        growth_log_change=growth,
        log_changes=d,
        rank=rank,
    )
    return design, up, down


def _add_cut(m: pyo.ConcreteModel, problem: NRAProblem, settings: NRASettings, up: Iterable[int], down: Iterable[int]) -> None:
    """Forbid exactly this up/down pattern (same enzymes, same directions).

    A pattern that uses all ``max_interventions`` (coupled groups counting once) admits no
    superset, so the sparse cut sum_{j in pattern} b_j <= n - 1 over the binaries b of its
    groups' lead enzymes removes exactly that pattern; its LP relaxation is tighter than the
    dense no-good cut and it touches n instead of 2 n_enzymes binaries. A smaller pattern gets
    the dense cut sum_{j in P} (1 - b_j) + sum_{j not in P} b_j >= 1 over every binary, which
    leaves its supersets feasible. Both cut off the same integer points.
    """
    ne = len(problem.enzyme_ids)
    up, down = set(up), set(down)
    leads = [g[0] for g in _groups(problem, settings)]
    used = [j for j in leads if j in up or j in down]
    if len(used) >= settings.max_interventions and m.interventions.active:
        m.cuts.add(pyo.quicksum(m.up[j] if j in up else m.down[j] for j in used) <= len(used) - 1)
        return
    expr = (
        pyo.quicksum(1 - m.up[j] for j in up)
        + pyo.quicksum(1 - m.down[j] for j in down)
        + pyo.quicksum(m.up[j] for j in range(ne) if j not in up)
        + pyo.quicksum(m.down[j] for j in range(ne) if j not in down)
    )
    m.cuts.add(expr >= 1)


def solve_nra(
    problem: NRAProblem,
    settings: NRASettings | None = None,
    *,
    members: Sequence[str] | None = None,
    min_log_change: float | None = None,
) -> tuple[NRADesign | None, SolveRecord]:
    """Solve the NRA MILP once.

    Parameters
    ----------
    problem : NRAProblem
    settings : NRASettings, optional
        Defaults from the paper when omitted.
    members, min_log_change
        See :func:`build_nra_model` (design imposition for ranking).

    Returns
    -------
    design : NRADesign or None
        The optimal design, None when the solve did not reach an optimum.
    record : SolveRecord
        Status, termination, objective and time of the solve.
    """
    settings = settings or NRASettings()
    m = build_nra_model(problem, settings, members=members, min_log_change=min_log_change)
    opt = _solver(settings)
    rec = _solve(opt, m, settings)
    if rec.status != "optimal":
        return None, rec
    design, _, _ = _design_from_model(problem, m, 0)
    return design, rec


def enumerate_designs(problem: NRAProblem, settings: NRASettings | None = None) -> NRAEnumeration:
    """Enumerate all designs within ``settings.enumeration_fraction`` of the optimum.

    Each found design is excluded by an integer cut on its exact up/down pattern and the MILP
    is re-solved (incrementally with the persistent ``appsi_highs`` solver; the Pyomo model is
    built once) until the optimum drops below ``optimum - fraction * |optimum|``, the MILP
    becomes infeasible, or ``settings.max_designs`` designs are recorded. With
    ``enumeration_strategy = "feasible"`` (default) the threshold is an objective floor and
    each cut solve stops at the first pattern above it, whose fold changes are then optimised
    with its binaries fixed; the designs are the same as with best-first enumeration ("optimal")
    and are returned best first. The MILP time is HiGHS's branch and bound, not Pyomo: building
    the model takes ~0.05 s and adding a cut ~10 ms on the 49-enzyme network.

    Parameters
    ----------
    problem : NRAProblem
    settings : NRASettings, optional

    Returns
    -------
    NRAEnumeration
        Designs within the threshold (best first), every solve's status and time, and a status
        of "infeasible" (with a message) when the design constraints admit no strain at all.
    """
    settings = settings or NRASettings()
    cpu0 = time.process_time()
    m = build_nra_model(problem, settings)
    opt = _solver(settings)
    solves: list[SolveRecord] = []
    designs: list[NRADesign] = []
    first = _solve(opt, m, settings)
    solves.append(first)
    if first.status != "optimal":
        msg = (
            "The design constraints admit no strain (even the reference strain violates them: check "
            "thermodynamic margin, growth, exclusions and couplings)."
            if first.status == "infeasible"
            else f"The MILP solver stopped with {first.termination!r}."
        )
        return NRAEnumeration(problem.model_id, first.status, math.nan, math.nan, (), tuple(solves), False, msg, time.process_time() - cpu0)
    optimum = first.objective
    threshold = optimum - settings.enumeration_fraction * abs(optimum)
    design, up, down = _design_from_model(problem, m, 0)
    designs.append(design)
    if optimum <= 1e-12:
        msg = "No design improves the yield under these constraints (optimum <= 0); only the optimum is recorded."
        return NRAEnumeration(
            problem.model_id, "optimal", optimum, threshold, tuple(designs), tuple(solves), False, msg, time.process_time() - cpu0
        )
    # objective floor: designs below the threshold are not wanted, so let the solver prune them
    m.objective_floor = pyo.Constraint(expr=m.objective.expr >= threshold - 1e-9)
    first_feasible = settings.enumeration_strategy == "feasible" and settings.solver == "appsi_highs"
    truncated = False
    while True:
        if len(designs) >= settings.max_designs:
            truncated = True
            break
        _add_cut(m, problem, settings, up, down)
        rec = _solve(opt, m, settings, first_feasible=first_feasible)
        solves.append(rec)
        if rec.status == "feasible":
            # a pattern that meets the objective floor: optimise its fold changes (binaries
            # fixed). Its best objective decides whether it is recorded; a pattern that met the
            # floor only within the solver's feasibility tolerance is cut without recording.
            _, up, down = _design_from_model(problem, m, len(designs))
            polished = _polish(opt, m, problem, settings, up, down)
            if polished.status != "optimal":
                solves.append(polished)
                break
            design, up, down = _design_from_model(problem, m, len(designs))
            if design.objective >= threshold - 1e-9:
                designs.append(design)
            continue
        if rec.status != "optimal" or rec.objective < threshold - 1e-9:
            break
        design, up, down = _design_from_model(problem, m, len(designs))
        designs.append(design)
    if first_feasible and len(designs) > 1:
        order = sorted(range(len(designs)), key=lambda k: (k != 0, -designs[k].objective))
        designs = [dataclasses.replace(designs[k], rank=r) for r, k in enumerate(order)]
    msg = (
        f"{len(designs)} design(s) within {settings.enumeration_fraction:.0%} of the optimum "
        f"{optimum:.4g} (yield gain {math.expm1(optimum):+.1%}); {len(solves)} MILP solves"
        + ("; truncated at max_designs" if truncated else "")
    )
    return NRAEnumeration(
        problem.model_id, "optimal", optimum, threshold, tuple(designs), tuple(solves), truncated, msg, time.process_time() - cpu0
    )


def random_nra_problem(
    n_enzymes: int = 6,
    n_metabolites: int = 5,
    *,
    seed: int = 0,
    scale: float = 1.0,
    model_id: str | None = None,
) -> NRAProblem:
    """A small synthetic NRA problem with random control coefficients (tests and benchmarks).

    One reaction per enzyme plus product, substrate and growth rows taken from the first three
    reactions; random stoichiometry in {-1, 0, 1}; reference ln displacements in
    [-2, -0.05] (forward) for 80% of reactions and [0.05, 2] (reverse) otherwise. The numbers
    have no biological meaning: use it to exercise the MILP, never as a model.

    Parameters
    ----------
    n_enzymes, n_metabolites : int
        Problem size (n_reactions = n_enzymes).
    seed : int
        Seed of the random generator.
    scale : float
        Standard deviation of the control coefficients.
    model_id : str, optional
        Defaults to ``f"random{seed}"``.
    """
    if n_enzymes < 3 or n_metabolites < 1:
        raise ValueError(f"random_nra_problem needs n_enzymes >= 3 and n_metabolites >= 1. Got {n_enzymes}, {n_metabolites}.")
    rng = np.random.default_rng(seed)
    ne, nm = int(n_enzymes), int(n_metabolites)
    cx = rng.normal(0.0, scale, size=(nm, ne))
    cv = rng.normal(0.0, scale, size=(ne, ne)) * 0.5 + np.eye(ne) * 0.5
    stoich = rng.choice([-1.0, 0.0, 1.0], size=(nm, ne), p=[0.25, 0.5, 0.25])
    mag = rng.uniform(0.05, 2.0, size=ne)
    sign = np.where(rng.random(ne) < 0.8, -1.0, 1.0)
    rxns = tuple(f"R{j}" for j in range(ne))
    return NRAProblem(
        enzyme_ids=tuple(f"E{j}" for j in range(ne)),
        reaction_ids=rxns,
        metabolite_ids=tuple(f"M{i}" for i in range(nm)),
        concentration_control=cx,
        flux_control=cv,
        stoichiometry=stoich,
        log_displacement=sign * mag,
        product_reaction=rxns[0],
        substrate_reaction=rxns[1],
        growth_reaction=rxns[2],
        model_id=model_id or f"random{seed}",
    )


def nra_problems_from_control_coefficients(
    control,
    *,
    model_ids: Sequence[str] | None = None,
) -> list[NRAProblem]:
    """Adapt the ensemble stage's :class:`~mpc_bio.nomad.mca.ControlCoefficients` to NRA problems.

    Parameters
    ----------
    control : mpc_bio.nomad.mca.ControlCoefficients
        Control coefficients of N models (concentration (N, n_met, n_enz) for all balanced
        metabolites, dependent ones included; flux (N, n_rxn, n_enz)), the log mass-action
        stoichiometry (n_rxn, n_met) and reference ln displacements (N, n_rxn).
    model_ids : sequence of str, optional
        Names of the models; default ``f"model{index}"`` from ``control.model_index``.

    Returns
    -------
    list of NRAProblem
        One per model, in the order of ``control``.
    """
    n = int(np.asarray(control.model_index).size)
    if model_ids is None:
        model_ids = [f"model{int(i)}" for i in np.asarray(control.model_index)]
    if len(model_ids) != n:
        raise ValueError(f"model_ids must have {n} entries (one per model). Got {len(model_ids)} instead.")
    stoich = np.asarray(control.stoichiometry, dtype=float)  # (n_rxn, n_met)
    disp = np.atleast_2d(np.asarray(control.ln_displacement, dtype=float))
    return [
        NRAProblem(
            enzyme_ids=tuple(control.enzyme_ids),
            reaction_ids=tuple(control.reaction_ids),
            metabolite_ids=tuple(control.metabolite_ids),
            concentration_control=control.concentration[k],
            flux_control=control.flux[k],
            stoichiometry=stoich.T,
            log_displacement=disp[k],
            product_reaction=control.product_reaction,
            substrate_reaction=control.substrate_reaction,
            growth_reaction=control.growth_reaction,
            model_id=str(model_ids[k]),
        )
        for k in range(n)
    ]
