"""Designs across an ensemble: per-model enumeration, unique designs, ranking, MCA baseline.

NOMAD (Methods, "Design ranking"): designs are enumerated per kinetic model, reduced to those
unique by membership (the set of targeted enzymes), and each unique design is enforced in
every model of the ensemble by re-solving the NRA MILP with its membership imposed (a minimal
log change of 1e-6 on each member, direction free). Designs are ranked by the mean predicted
log yield increase over the models; the designs x models matrix is kept as a result table.

The baseline is the classical MCA recipe the paper shows failing: per model, the enzymes with
the largest |yield control coefficient| changed by a fixed fold in the direction of the
coefficient's sign, without any constraint on the network response.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from mpc_bio.nomad.executor import progress as progress_bar
from mpc_bio.nomad.nra import (
    NRADesign,
    NRAEnumeration,
    NRAProblem,
    SolveRecord,
    _design_from_model,
    _solve,
    _solver,
    build_nra_model,
    check_design,
    enumerate_designs,
    impose_membership,
)
from mpc_bio.nomad.nra_settings import NRASettings, RankingSettings

__all__ = [
    "mean_fold_changes",
    "UniqueDesign",
    "EnsembleDesigns",
    "DesignRanking",
    "enumerate_ensemble_designs",
    "unique_designs",
    "rank_designs",
    "mca_baseline",
]


@dataclass(frozen=True)
class UniqueDesign:
    """A design unique by membership, with the models that proposed it.

    Attributes
    ----------
    membership : tuple of str
        Sorted enzyme ids.
    source_models : tuple of str
        Models whose enumeration contained this membership (possibly several times).
    best_objective : float
        Best predicted log yield change among the sources (ln units).
    count : int
        Number of enumerated designs with this membership.
    """

    membership: tuple[str, ...]
    source_models: tuple[str, ...]
    best_objective: float
    count: int

    @property
    def label(self) -> str:
        """'DDPA+GLUDy+PGI'-style label."""
        return "+".join(self.membership) if self.membership else "(reference)"


@dataclass(frozen=True, eq=False)
class EnsembleDesigns:
    """Per-model enumerations over an ensemble and the designs unique by membership."""

    enumerations: tuple[NRAEnumeration, ...]
    unique: tuple[UniqueDesign, ...]
    time_s: float

    @property
    def n_designs(self) -> int:
        """Total number of recorded designs over all models."""
        return sum(len(e.designs) for e in self.enumerations)

    def membership_matrix(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """Binary matrix unique designs x enzymes (1 = targeted) and the enzyme ids of its columns.

        Only enzymes appearing in at least one design are columns, in order of first appearance.
        """
        enzymes: list[str] = []
        for u in self.unique:
            for e in u.membership:
                if e not in enzymes:
                    enzymes.append(e)
        mat = np.zeros((len(self.unique), len(enzymes)))
        for i, u in enumerate(self.unique):
            for e in u.membership:
                mat[i, enzymes.index(e)] = 1.0
        return mat, tuple(enzymes)

    def cluster_order(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hierarchical clustering of the unique designs by membership (Jaccard distance, average link).

        Returns
        -------
        design_order : ndarray of int
            Row order of :meth:`membership_matrix` that groups similar designs (dendrogram leaves).
        enzyme_order : ndarray of int
            Column order: enzymes sorted by how many designs target them (descending).
        clusters : ndarray of int
            Cluster label per unique design (cut at Jaccard distance 0.7), in the original order.
        """
        mat, _ = self.membership_matrix()
        n = mat.shape[0]
        enzyme_order = np.argsort(-mat.sum(axis=0), kind="stable")
        if n < 2:
            return np.arange(n), enzyme_order, np.ones(n, dtype=int)
        from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
        from scipy.spatial.distance import pdist

        dist = pdist(mat.astype(bool), metric="jaccard")
        tree = linkage(dist, method="average")
        return leaves_list(tree), enzyme_order, fcluster(tree, t=0.7, criterion="distance")

    def to_frame(self):
        """All designs of all models as one tidy DataFrame."""
        import pandas as pd

        frames = [e.to_frame() for e in self.enumerations if e.designs]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def mean_fold_changes(log_changes: np.ndarray, enzyme_ids: Sequence[str], members: Sequence[str]) -> dict[str, float]:
    """Mean over the models, where finite, of the activity fold change of each enzyme of ``members``
    (ratio; NaN when infeasible everywhere); ``log_changes`` (n_models, n_enzymes), ln units."""
    out = {}
    for e in members:
        vals = np.exp(log_changes[:, enzyme_ids.index(e)])
        out[e] = float(np.nanmean(vals)) if np.any(np.isfinite(vals)) else math.nan
    return out


@dataclass(frozen=True, eq=False)
class DesignRanking:
    """Unique designs enforced in every model and ranked by mean predicted yield increase.

    Attributes
    ----------
    designs : tuple of UniqueDesign
        In rank order (best first).
    model_ids : tuple of str
        Columns of the matrices.
    enzyme_ids : tuple of str
        Order of the last axis of ``log_changes``.
    objective : ndarray, shape (n_designs, n_models)
        Predicted log yield change dln v_P - dln v_S of each design in each model (ln units);
        NaN where infeasible.
    status : ndarray of str, shape (n_designs, n_models)
        Solver status of each enforced design.
    log_changes : ndarray, shape (n_designs, n_models, n_enzymes)
        NRA log fold changes of each design in each model (NaN where infeasible).
    mean_objective : ndarray, shape (n_designs,)
        Ranking score: mean over models, infeasible counted as ``infeasible_gain`` (ln units).
    mean_objective_feasible : ndarray, shape (n_designs,)
        Mean over the feasible models only (ln units).
    n_feasible : ndarray of int, shape (n_designs,)
        Models in which the design is feasible.
    solve_times_s : ndarray, shape (n_designs, n_models)
        Wall time of each solve (s).
    """

    designs: tuple[UniqueDesign, ...]
    model_ids: tuple[str, ...]
    enzyme_ids: tuple[str, ...]
    objective: np.ndarray
    status: np.ndarray
    log_changes: np.ndarray
    mean_objective: np.ndarray
    mean_objective_feasible: np.ndarray
    n_feasible: np.ndarray
    solve_times_s: np.ndarray

    @property
    def mean_yield_gain(self) -> np.ndarray:
        """exp(mean_objective) - 1 per design (fraction)."""
        return np.expm1(self.mean_objective)

    def design_summary(self, design: int) -> dict[str, Any]:
        """Json-ready label, mean predicted yield gain (fraction), number of feasible models and mean
        fold changes of design ``design``."""
        return {
            "design": self.designs[design].label,
            "mean_predicted_yield_gain": float(self.mean_yield_gain[design]),
            "n_feasible_models": int(self.n_feasible[design]),
            "mean_fold_changes": self.mean_fold_changes(design),
        }

    def mean_fold_changes(self, design: int) -> dict[str, float]:
        """Mean (over feasible models) activity fold change of each member enzyme."""
        return mean_fold_changes(self.log_changes[design], self.enzyme_ids, self.designs[design].membership)

    def to_frame(self):
        """Ranking table: one row per design with its score and feasibility."""
        import pandas as pd

        return pd.DataFrame(
            {
                "rank": np.arange(1, len(self.designs) + 1),
                "design": [d.label for d in self.designs],
                "n_source_models": [len(set(d.source_models)) for d in self.designs],
                "mean_objective_ln": self.mean_objective,
                "mean_yield_gain": self.mean_yield_gain,
                "mean_objective_feasible_ln": self.mean_objective_feasible,
                "n_feasible": self.n_feasible,
            }
        )

    def matrix_frame(self):
        """Designs x models matrix of predicted log yield change (NaN = infeasible)."""
        import pandas as pd

        return pd.DataFrame(self.objective, index=[d.label for d in self.designs], columns=list(self.model_ids))


def enumerate_ensemble_designs(
    problems: Sequence[NRAProblem],
    settings: NRASettings | None = None,
    *,
    progress: bool = False,
) -> EnsembleDesigns:
    """Enumerate NRA designs for every model and collect those unique by membership.

    Parameters
    ----------
    problems : sequence of NRAProblem
        One per screened kinetic model.
    settings : NRASettings, optional
    progress : bool
        tqdm progress bar over models.

    Returns
    -------
    EnsembleDesigns
    """
    settings = settings or NRASettings()
    t0 = time.perf_counter()
    enums = tuple(enumerate_designs(p, settings) for p in progress_bar(problems, progress, "NRA per model"))
    return EnsembleDesigns(enums, unique_designs(enums), time.perf_counter() - t0)


def unique_designs(enumerations: Sequence[NRAEnumeration]) -> tuple[UniqueDesign, ...]:
    """Designs unique by membership (empty designs dropped), in order of first appearance."""
    found: dict[tuple[str, ...], dict] = {}
    for enum in enumerations:
        for d in enum.designs:
            if not d.enzymes:
                continue
            key = d.membership
            rec = found.setdefault(key, {"sources": [], "best": -math.inf, "count": 0})
            rec["sources"].append(d.model_id)
            rec["best"] = max(rec["best"], d.objective)
            rec["count"] += 1
    return tuple(UniqueDesign(k, tuple(v["sources"]), float(v["best"]), int(v["count"])) for k, v in found.items())


def rank_designs(
    problems: Sequence[NRAProblem],
    designs: Sequence[UniqueDesign],
    nra_settings: NRASettings | None = None,
    settings: RankingSettings | None = None,
    *,
    progress: bool = False,
) -> DesignRanking:
    """Enforce every design in every model, re-solve the NRA MILP and rank by mean yield gain.

    One Pyomo model is built per kinetic model; designs are imposed by fixing binaries in
    place (:func:`~mpc_bio.nomad.nra.impose_membership`), so the persistent solver re-solves
    incrementally.

    Parameters
    ----------
    problems : sequence of NRAProblem
        The models (same enzyme ids in the same order).
    designs : sequence of UniqueDesign
    nra_settings : NRASettings, optional
        Design constraints (concentration, thermodynamics, growth, ...), as in the enumeration.
    settings : RankingSettings, optional
        Minimal imposed log change (paper: 1e-6) and infeasible handling.
    progress : bool

    Returns
    -------
    DesignRanking
        Designs sorted by ``mean_objective`` (best first), with the designs x models matrices.
    """
    nra_settings = nra_settings or NRASettings()
    settings = settings or RankingSettings()
    if not problems:
        raise ValueError("rank_designs needs at least one NRAProblem.")
    enzyme_ids = problems[0].enzyme_ids
    for p in problems:
        if p.enzyme_ids != enzyme_ids:
            raise ValueError(f"All models must share enzyme ids in the same order; model {p.model_id!r} differs.")
    nd, nm, ne = len(designs), len(problems), len(enzyme_ids)
    obj = np.full((nd, nm), np.nan)
    status = np.full((nd, nm), "", dtype=object)
    changes = np.full((nd, nm, ne), np.nan)
    times = np.zeros((nd, nm))
    opt = _solver(nra_settings)
    for k, problem in enumerate(progress_bar(problems, progress, "ranking per model")):
        m = build_nra_model(problem, nra_settings, min_log_change=settings.min_log_change)
        for i, design in enumerate(designs):
            impose_membership(m, problem, nra_settings, design.membership)
            rec: SolveRecord = _solve(opt, m, nra_settings)
            status[i, k] = rec.status
            times[i, k] = rec.time_s
            if rec.status == "optimal":
                d, _, _ = _design_from_model(problem, m, 0)
                obj[i, k] = d.objective
                changes[i, k] = d.log_changes
    filled = np.where(np.isfinite(obj), obj, settings.infeasible_gain)
    mean = filled.mean(axis=1) if nm else np.zeros(nd)
    n_feas = np.isfinite(obj).sum(axis=1)
    with np.errstate(invalid="ignore"):
        mean_feas = np.where(n_feas > 0, np.nansum(obj, axis=1) / np.maximum(n_feas, 1), np.nan)
    order = np.lexsort((-n_feas, -mean))  # by mean (desc), ties by feasibility count
    return DesignRanking(
        designs=tuple(designs[i] for i in order),
        model_ids=tuple(p.model_id for p in problems),
        enzyme_ids=enzyme_ids,
        objective=obj[order],
        status=status[order],
        log_changes=changes[order],
        mean_objective=mean[order],
        mean_objective_feasible=mean_feas[order],
        n_feasible=n_feas[order],
        solve_times_s=times[order],
    )


def mca_baseline(
    problem: NRAProblem,
    *,
    fold: float = 5.0,
    size: int = 3,
    excluded: Sequence[str] = (),
    settings: NRASettings | None = None,
) -> tuple[NRADesign, dict[str, float]]:
    """The unconstrained MCA design: top-|yield control coefficient| enzymes, changed by ``fold``.

    Parameters
    ----------
    problem : NRAProblem
    fold : float
        Activity fold change applied to each chosen enzyme (ratio > 1): up when its yield
        control coefficient is positive, down (1/fold) when negative.
    size : int
        Number of enzymes.
    excluded : sequence of str
        Enzymes not eligible (e.g. the lumped growth reaction, exchanges).
    settings : NRASettings, optional
        Only used to report how far the baseline violates the NRA constraints.

    Returns
    -------
    design : NRADesign
        The baseline design with its log-linear predicted objective.
    violations : dict
        Largest violation per NRA constraint (ln units; the baseline ignores them).
    """
    if fold <= 1:
        raise ValueError(f"The 'fold' parameter of mca_baseline must be > 1. Got {fold!r} instead.")
    if size < 1:
        raise ValueError(f"The 'size' parameter of mca_baseline must be >= 1. Got {size!r} instead.")
    y = problem.yield_control
    eligible = [j for j, e in enumerate(problem.enzyme_ids) if e not in set(excluded)]
    top = sorted(eligible, key=lambda j: -abs(y[j]))[:size]
    top = sorted(top)
    d = np.zeros(len(problem.enzyme_ids))
    for j in top:
        d[j] = math.copysign(math.log(fold), y[j]) if y[j] != 0 else 0.0
    d.setflags(write=False)
    growth = math.nan
    if problem.growth_reaction is not None:
        growth = float(problem.flux_control[problem.reaction_ids.index(problem.growth_reaction)] @ d)
    design = NRADesign(
        model_id=problem.model_id,
        enzymes=tuple(problem.enzyme_ids[j] for j in top),
        log_fold_changes=tuple(float(d[j]) for j in top),
        objective=float(y @ d),
        growth_log_change=growth,
        log_changes=d,
        rank=0,
    )
    check = check_design(problem, settings or NRASettings(), d)
    violations = {
        "concentration": check.concentration,
        "thermodynamics": check.thermodynamics,
        "growth": check.growth,
    }
    return design, violations
