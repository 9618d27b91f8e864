"""Split-flux parsimonious FBA with elastic slacks, solved with HiGHS (``highspy``) directly.

The LP is built once from the model's sparse stoichiometric matrix (paper 1, Eq. 3-4). Every
flux is split as v = v+ - v- with v+, v- >= 0 and bounds from the model. Per point only bounds
change, and each of the three HiGHS instances (slack minimisation, growth maximisation,
total-flux minimisation) keeps its own simplex basis, so consecutive nearby points are warm-started.

Stage (4), ``PFBASettings.tie_break="l2"``, the minimum-norm point of the optimal face of (3),
is :mod:`mpc_bio.metabolism.tiebreak`.

Variables (columns): ``v+`` (r), ``v-`` (r), then the slacks: for every input j a shortfall
``s_short_j`` in [0, u_j] and an excess ``s_exc_j`` >= 0, and a maintenance slack ``s_m`` in
[0, lb_m] when a maintenance reaction is set.
Rows: ``S (v+ - v-) = 0``; for every input ``v+_j - v-_j - s_short_j + s_exc_j = -u_j``; the
maintenance row ``v+_m - v-_m + s_m >= lb_m``; the growth row ``c^T (v+ - v-)``; the slack budget
row ``w^T s``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from mpc_bio.errors import MpcBioError
from mpc_bio.metabolism.settings import PFBASettings
from mpc_bio.metabolism.tiebreak import FACE_PRIMAL_TOLERANCE, QP_ITERATION_LIMIT, face_directions, min_norm_on_face

__all__ = [
    "PFBAProblem",
    "PFBAPoint",
    "PFBASolver",
    "InputError",
    "build_problem",
    "STATUS_NAMES",
]

#: Status name -> integer code stored in :class:`~mpc_bio.metabolism.dataset.FluxDataset`.
STATUS_NAMES = {"optimal": 0, "relaxed": 1, "failed": 2, "infeasible": 3}

_INF = math.inf
#: LPs with more columns than this use presolve for their first (cold) solve.
_PRESOLVE_COLD_ABOVE = 2000


class InputError(MpcBioError):
    """An uptake input or a reaction id given to the pFBA solver is invalid."""


# ---------------------------------------------------------------------------------------------
# The LP data, extracted once from a cobra model (picklable, cheap to ship to workers)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PFBAProblem:
    """The model data the split-flux LP is built from (no cobra objects; picklable).

    Attributes
    ----------
    reaction_ids, metabolite_ids : tuple of str
        Column order of the fluxes and row order of ``stoichiometry``.
    stoichiometry : scipy.sparse.csr_matrix, shape (m, r)
        Stoichiometric matrix S (mol per mol of reaction).
    lower_bounds, upper_bounds : ndarray, shape (r,)
        Flux bounds from the model in mmol/gDW/h (infinite allowed).
    objective : ndarray, shape (r,)
        Objective (growth) coefficients c; growth = c^T v in 1/h.
    objective_id : str
        The objective reaction (the single reaction with a non-zero coefficient).
    settings : PFBASettings
        Inputs, maintenance, relaxation and tolerances.
    input_index : ndarray of int, shape (k,)
        Column of each input's exchange reaction.
    maintenance_index : int or None
        Column of the maintenance reaction, or None.
    model_id, model_hash : str
        Identity of the source model.
    """

    reaction_ids: tuple[str, ...]
    metabolite_ids: tuple[str, ...]
    stoichiometry: sp.csr_matrix
    lower_bounds: np.ndarray
    upper_bounds: np.ndarray
    objective: np.ndarray
    objective_id: str
    settings: PFBASettings
    input_index: np.ndarray
    maintenance_index: int | None
    model_id: str
    model_hash: str

    @property
    def n_reactions(self) -> int:
        return len(self.reaction_ids)

    @property
    def maintenance_lower_bound(self) -> float:
        """Maintenance demand lb_m in mmol ATP/gDW/h (0 when no maintenance reaction)."""
        if self.maintenance_index is None:
            return 0.0
        return float(max(self.lower_bounds[self.maintenance_index], 0.0))

    @property
    def slack_names(self) -> tuple[str, ...]:
        """Names of the slack columns reported with every point."""
        names: list[str] = []
        for name in self.settings.input_names:
            names += [f"{name}_shortfall", f"{name}_excess"]
        if self.maintenance_index is not None:
            names.append(f"maintenance_{self.settings.maintenance_id}")
        return tuple(names)


def _unknown_reaction(parameter: str, rid: str, ids: Sequence[str]) -> InputError:
    hint = [x for x in ids if x.startswith("EX_")][:12]
    return InputError(
        f"The {parameter} {rid!r} is not a reaction of the model; expected a reaction id such as "
        f"{hint or list(ids)[:12]} (the model has {len(ids)} reactions)."
    )


def build_problem(model: Any, settings: PFBASettings | None = None) -> PFBAProblem:
    """Extract the split-flux LP data from a cobra model without modifying it.

    Parameters
    ----------
    model : cobra.Model or str or Path
        The model, or a bundled model name / model file path for :func:`load_model`.
    settings : PFBASettings, optional
        Input names and reactions, maintenance reaction, relaxation.

    Raises
    ------
    InputError
        An input or maintenance reaction id is not in the model, an input is not an exchange
        reaction, or the objective is not a single maximised reaction.
    """
    from mpc_bio.metabolism.models import load_model, model_hash

    settings = settings if settings is not None else PFBASettings()
    if not hasattr(model, "reactions"):
        model = load_model(model)
    reactions = list(model.reactions)
    rids = tuple(r.id for r in reactions)
    mets = list(model.metabolites)
    mids = tuple(m.id for m in mets)
    mindex = {m.id: i for i, m in enumerate(mets)}
    rindex = {rid: j for j, rid in enumerate(rids)}
    rows, cols, vals = [], [], []
    lb = np.empty(len(rids))
    ub = np.empty(len(rids))
    c = np.zeros(len(rids))
    from cobra.util.solver import linear_reaction_coefficients

    coefficients = {r.id: float(v) for r, v in linear_reaction_coefficients(model).items()}
    for j, r in enumerate(reactions):
        for met, coef in r.metabolites.items():
            rows.append(mindex[met.id])
            cols.append(j)
            vals.append(float(coef))
        lb[j] = float(r.lower_bound)
        ub[j] = float(r.upper_bound)
        c[j] = coefficients.get(r.id, 0.0)
    S = sp.csr_matrix((vals, (rows, cols)), shape=(len(mids), len(rids)))
    nz = np.flatnonzero(c)
    if len(nz) != 1:
        raise InputError(f"The model {model.id!r} must have exactly one objective (growth) reaction; got {[rids[j] for j in nz]}.")
    direction = getattr(model.objective, "direction", "max")
    if direction != "max":
        raise InputError(f"The objective of model {model.id!r} must be maximised; got direction {direction!r}.")
    idx = []
    for name, rid in settings.inputs:
        if rid not in rindex:
            raise _unknown_reaction(f"exchange reaction of input {name!r}", rid, rids)
        n_mets = len(reactions[rindex[rid]].metabolites)
        if n_mets != 1:
            raise InputError(
                f"The input {name!r} must be an exchange reaction (one metabolite crossing the model's boundary); "
                f"{rid!r} has {n_mets} metabolites."
            )
        idx.append(rindex[rid])
    m_idx = None
    if settings.maintenance_id is not None:
        if settings.maintenance_id not in rindex:
            raise _unknown_reaction(
                "maintenance reaction (PFBASettings.maintenance_id; use None for no maintenance)",
                settings.maintenance_id,
                rids,
            )
        m_idx = rindex[settings.maintenance_id]
    if rids[int(nz[0])] in settings.input_reactions:
        raise InputError(f"The objective reaction {rids[int(nz[0])]!r} cannot also be an input reaction.")
    return PFBAProblem(
        reaction_ids=rids,
        metabolite_ids=mids,
        stoichiometry=S,
        lower_bounds=lb,
        upper_bounds=ub,
        objective=c,
        objective_id=rids[int(nz[0])],
        settings=settings,
        input_index=np.asarray(idx, dtype=np.int64),
        maintenance_index=m_idx,
        model_id=str(model.id),
        model_hash=model_hash(model),
    )


# ---------------------------------------------------------------------------------------------
# Result of one point
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PFBAPoint:
    """The lexicographic split-flux pFBA solution at one input point.

    Attributes
    ----------
    inputs : ndarray, shape (k,)
        Uptake rates in mmol/gDW/h, in ``input_names`` order.
    fluxes : ndarray, shape (r,)
        Net fluxes v = v+ - v- in mmol/gDW/h (NaN when status is failed/infeasible).
    split_fluxes : ndarray, shape (2r,)
        v+ then v-, both >= 0, mmol/gDW/h.
    growth : float
        Growth rate c^T v in 1/h.
    status : str
        ``"optimal"``, ``"relaxed"`` (slacks were needed), ``"failed"`` (solver error) or
        ``"infeasible"`` (relaxation off and the LP has no solution).
    slacks : ndarray, shape (n_slacks,)
        Slack values in mmol/gDW/h (names in ``slack_names``); zeros at optimal points.
    total_flux : float
        sum(v+ + v-) in mmol/gDW/h, the pFBA objective.
    solve_time : float
        Wall time of the solve in seconds.
    message : str
        Solver detail for failed/infeasible points (empty otherwise).
    """

    inputs: np.ndarray
    fluxes: np.ndarray
    split_fluxes: np.ndarray
    growth: float
    status: str
    slacks: np.ndarray
    total_flux: float
    solve_time: float = 0.0
    message: str = ""
    reaction_ids: tuple[str, ...] = field(default=(), repr=False)
    slack_names: tuple[str, ...] = field(default=(), repr=False)

    @property
    def status_code(self) -> int:
        """Integer status (0 optimal, 1 relaxed, 2 failed, 3 infeasible)."""
        return STATUS_NAMES[self.status]

    @property
    def ok(self) -> bool:
        """True when fluxes are available (optimal or relaxed)."""
        return self.status in ("optimal", "relaxed")

    def flux(self, reaction_id: str) -> float:
        """Net flux of one reaction in mmol/gDW/h."""
        try:
            return float(self.fluxes[self.reaction_ids.index(reaction_id)])
        except ValueError:
            raise InputError(f"Reaction {reaction_id!r} is not in the solution.") from None

    def slack(self, name: str) -> float:
        """Value of one named slack (see ``slack_names``)."""
        try:
            return float(self.slacks[self.slack_names.index(name)])
        except ValueError:
            raise InputError(f"Slack {name!r} is unknown; expected one of {list(self.slack_names)}.") from None


# ---------------------------------------------------------------------------------------------
# The solver
# ---------------------------------------------------------------------------------------------
def _new_highs(highspy: Any) -> Any:
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", "off")
    h.setOptionValue("solver", "simplex")
    h.setOptionValue("random_seed", 0)
    # one thread, no parallel simplex: cheaper per warm solve, and one core per worker process
    h.setOptionValue("threads", 1)
    h.setOptionValue("parallel", "off")
    return h


class PFBASolver:
    """Lexicographic split-flux pFBA on one model, built once and warm-started between points.

    Parameters
    ----------
    model : cobra.Model, PFBAProblem, str or Path
        The model (never modified), an already extracted :class:`PFBAProblem`, or a bundled
        model name / model file path.
    settings : PFBASettings, optional
        Inputs, maintenance, relaxation and tolerances (ignored when ``model`` is a PFBAProblem,
        which carries its own).

    Examples
    --------
    >>> solver = PFBASolver(load_model("e_coli_core"))
    >>> point = solver.solve({"glucose": 10.0, "oxygen": 15.0})
    >>> point.status, round(point.growth, 4)
    ('optimal', 0.7178)
    """

    def __init__(self, model: Any, settings: PFBASettings | None = None) -> None:
        import highspy

        self._highspy = highspy
        self.problem = model if isinstance(model, PFBAProblem) else build_problem(model, settings)
        p = self.problem
        self.settings = p.settings
        self.reaction_ids = p.reaction_ids
        self.metabolite_ids = p.metabolite_ids
        self.stoichiometry = p.stoichiometry
        self.objective_id = p.objective_id
        self.input_names = p.settings.input_names
        self.input_reactions = p.settings.input_reactions
        self.slack_names = p.slack_names
        self.model_id = p.model_id
        self.model_hash = p.model_hash
        self._build()

    # ------------------------------------------------------------------ build
    def _build(self) -> None:
        p, s = self.problem, self.settings
        r = p.n_reactions
        k = len(p.input_index)
        m = len(p.metabolite_ids)
        has_m = p.maintenance_index is not None
        n_slack = 2 * k + (1 if has_m else 0)
        n_col = 2 * r + n_slack
        lb, ub = p.lower_bounds.copy(), p.upper_bounds.copy()
        # the maintenance lower bound moves to its own row (relaxable); inputs get their own rows
        if has_m:
            lb[p.maintenance_index] = min(lb[p.maintenance_index], 0.0)
        col_lo = np.concatenate([np.maximum(lb, 0), np.maximum(-ub, 0), np.zeros(n_slack)])
        col_hi = np.concatenate([np.maximum(ub, 0), np.maximum(-lb, 0), np.zeros(n_slack)])
        for j in p.input_index:  # uptake only, amount set by the input row
            col_lo[j], col_hi[j] = 0.0, 0.0
            col_lo[r + j], col_hi[r + j] = 0.0, _INF
        S = p.stoichiometry.tocsc()
        blocks = [sp.hstack([S, -S, sp.csc_matrix((m, n_slack))])]
        E = sp.csc_matrix((np.ones(k), (np.arange(k), p.input_index)), shape=(k, r))
        slack_in = sp.lil_matrix((k, n_slack))
        for j in range(k):
            slack_in[j, 2 * j] = -1.0  # shortfall: less uptake (flux less negative)
            slack_in[j, 2 * j + 1] = 1.0  # excess: more uptake
        blocks.append(sp.hstack([E, -E, slack_in.tocsc()]))
        row_lo = [np.zeros(m), np.zeros(k)]
        row_hi = [np.zeros(m), np.zeros(k)]
        if has_m:
            e = sp.csc_matrix(([1.0], ([0], [p.maintenance_index])), shape=(1, r))
            sm = sp.csc_matrix(([1.0], ([0], [n_slack - 1])), shape=(1, n_slack))
            blocks.append(sp.hstack([e, -e, sm]))
            row_lo.append(np.array([p.maintenance_lower_bound]))
            row_hi.append(np.array([_INF]))
        c = sp.csc_matrix(p.objective.reshape(1, -1))
        blocks.append(sp.hstack([c, -c, sp.csc_matrix((1, n_slack))]))  # growth row
        w = np.zeros(n_slack)
        w[0 : 2 * k : 2] = s.uptake_shortfall_weight
        w[1 : 2 * k : 2] = s.uptake_excess_weight
        if has_m:
            w[-1] = s.maintenance_weight
        blocks.append(sp.hstack([sp.csc_matrix((1, 2 * r)), sp.csc_matrix(w.reshape(1, -1))]))  # budget row
        row_lo += [np.array([-_INF]), np.array([-_INF])]
        row_hi += [np.array([_INF]), np.array([_INF])]
        A = sp.vstack(blocks).tocsc()
        A.sort_indices()
        self._r, self._k, self._n_slack, self._n_col = r, k, n_slack, n_col
        self._weights = w
        self._row_input = np.arange(m, m + k, dtype=np.int32)
        self._row_growth = m + k + (1 if has_m else 0)
        self._row_budget = self._row_growth + 1
        self._var_rows = np.concatenate([self._row_input, [self._row_growth, self._row_budget]]).astype(np.int32)
        self._slack_cols = np.arange(2 * r, n_col, dtype=np.int32)
        self._col_lo, self._col_hi = col_lo, col_hi
        self._row_lo, self._row_hi = np.concatenate(row_lo), np.concatenate(row_hi)
        costs = {
            "relax": np.concatenate([np.zeros(2 * r), w]),
            "growth": np.concatenate([-p.objective, p.objective, np.zeros(n_slack)]),
            "pfba": np.concatenate([np.ones(2 * r), np.zeros(n_slack)]),
        }
        self._A = A
        self._A_csr = A.tocsr()
        self._A_abs_csr = abs(self._A_csr)  # scale of row activities in stage (4)
        self._costs = costs
        hp = self._highspy
        self._optimal = hp.HighsModelStatus.kOptimal
        self._infeasible = (hp.HighsModelStatus.kInfeasible, hp.HighsModelStatus.kUnboundedOrInfeasible)
        self._verdicts = (self._optimal, hp.HighsModelStatus.kUnbounded, *self._infeasible)
        self._buf_rlo = np.full(k + 2, -_INF)
        self._buf_rhi = np.full(k + 2, _INF)
        self._buf_lo = np.zeros(n_slack)
        self._buf_hi = np.zeros(n_slack)
        self._last_relaxed = False
        self._qp: Any = None  # stage (4) QP instance, built on first use
        self._highs: dict[str, Any] = {}
        self._cold: set[int] = set()  # instances still using presolve for their first solve
        self._slacks_open: dict[int, bool] = {}
        for name, cost in costs.items():
            self._highs[name] = self._make_instance(name, cost)

    def _make_instance(self, name: str, cost: np.ndarray) -> Any:
        hp = self._highspy
        lp = hp.HighsLp()
        A = self._A
        lp.num_col_ = A.shape[1]
        lp.num_row_ = A.shape[0]
        lp.col_cost_ = cost
        lp.col_lower_ = self._col_lo
        lp.col_upper_ = self._col_hi
        lp.row_lower_ = self._row_lo
        lp.row_upper_ = self._row_hi
        lp.a_matrix_.format_ = hp.MatrixFormat.kColwise
        lp.a_matrix_.start_ = A.indptr.astype(np.int32)
        lp.a_matrix_.index_ = A.indices.astype(np.int32)
        lp.a_matrix_.value_ = A.data.astype(np.float64)
        h = _new_highs(hp)
        if name == "pfba" and self.settings.tie_break == "l2":
            # stage (4) starts from this vertex: a vertex off its bounds by up to HiGHS's default
            # 1e-7 moves the minimum-norm point by ~1e-6 (warm and cold solves then differ by that)
            h.setOptionValue("primal_feasibility_tolerance", FACE_PRIMAL_TOLERANCE)
        h.passModel(lp)
        # on genome-scale LPs the first (cold) solve is ~2x faster with presolve; warm solves never use it
        if A.shape[1] > _PRESOLVE_COLD_ABOVE:
            h.setOptionValue("presolve", "on")
            self._cold.add(id(h))
        return h

    def reset(self) -> None:
        """Forget all warm-start information (the next solve starts cold, as after construction)."""
        self._cold.clear()
        self._slacks_open.clear()
        for name, cost in self._costs.items():
            self._highs[name] = self._make_instance(name, cost)
        self._last_relaxed = False

    # ------------------------------------------------------------------ inputs
    def input_vector(self, inputs: Mapping[str, float] | Sequence[float] | np.ndarray) -> np.ndarray:
        """Validate inputs and return them as an array in ``input_names`` order (mmol/gDW/h).

        Raises
        ------
        InputError
            Unknown or missing input names, wrong length, negative or non-finite values.
        """
        names = self.input_names
        if isinstance(inputs, Mapping):
            unknown = sorted(set(inputs) - set(names))
            missing = [n for n in names if n not in inputs]
            if unknown or missing:
                raise InputError(f"The inputs must name exactly {list(names)}; got unknown {unknown} and missing {missing}.")
            vals = [inputs[n] for n in names]
        else:
            vals = list(np.ravel(np.asarray(inputs, dtype=object))) if not isinstance(inputs, str) else [inputs]
            if len(vals) != len(names):
                raise InputError(f"The inputs must have one value per input {list(names)} ({len(names)}); got {len(vals)}.")
        out = np.empty(len(names))
        for i, (n, v) in enumerate(zip(names, vals)):
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise InputError(f"The uptake input {n!r} must be a number in mmol/gDW/h; got {v!r}.") from None
            if not math.isfinite(x):
                raise InputError(f"The uptake input {n!r} must be a finite number in mmol/gDW/h; got {v!r}.")
            if x < 0:
                raise InputError(
                    f"The uptake input {n!r} must be a non-negative uptake rate in mmol/gDW/h (exchange flux = -input); got {x!r}."
                )
            out[i] = x
        return out

    # ------------------------------------------------------------------ solve
    def _set_point(self, h: Any, u: np.ndarray, relaxed: bool, z: float, budget: float) -> None:
        k = self._k
        rlo, rhi = self._buf_rlo, self._buf_rhi
        np.negative(u, out=rlo[:k])
        rhi[:k] = rlo[:k]
        rlo[k] = z
        rhi[k + 1] = budget
        h.changeRowsBounds(k + 2, self._var_rows, rlo, rhi)
        key = id(h)
        if not relaxed:
            if self._slacks_open.get(key, True):  # close the slacks (once)
                h.changeColsBounds(self._n_slack, self._slack_cols, self._buf_lo, self._buf_lo)
                self._slacks_open[key] = False
            return
        hi = self._buf_hi
        hi[0 : 2 * k : 2] = u
        hi[1 : 2 * k : 2] = _INF
        if self._n_slack > 2 * k:
            hi[-1] = self.problem.maintenance_lower_bound
        h.changeColsBounds(self._n_slack, self._slack_cols, self._buf_lo, hi)
        self._slacks_open[key] = True

    def _run(self, h: Any) -> tuple[bool, Any]:
        h.run()
        st = h.getModelStatus()
        if st not in self._verdicts:
            # HiGHS can end a warm-started solve without a verdict ("Unknown": iCH360's total-flux
            # LP at the tight growth fix near glucose 11.35, oxygen 16.5): once more from no basis
            h.clearSolver()
            h.run()
            st = h.getModelStatus()
        if self._cold and id(h) in self._cold and st == self._optimal:
            # a basis exists now: warm starts from here on, without presolve
            h.setOptionValue("presolve", "off")
            self._cold.discard(id(h))
        return st == self._optimal, st

    def _status_text(self, h: Any, st: Any) -> str:
        return str(h.modelStatusToString(st))

    def _nan_point(self, u: np.ndarray, status: str, t0: float, msg: str) -> PFBAPoint:
        r = self._r
        return PFBAPoint(
            inputs=u,
            fluxes=np.full(r, np.nan),
            split_fluxes=np.full(2 * r, np.nan),
            growth=math.nan,
            status=status,
            slacks=np.full(self._n_slack, np.nan),
            total_flux=math.nan,
            solve_time=time.perf_counter() - t0,
            message=msg,
            reaction_ids=self.reaction_ids,
            slack_names=self.slack_names,
        )

    def solve(self, inputs: Mapping[str, float] | Sequence[float] | np.ndarray) -> PFBAPoint:
        """Solve the lexicographic pFBA at one point.

        Parameters
        ----------
        inputs : mapping or sequence
            Uptake rates in mmol/gDW/h, ``{name: value}`` or values in ``input_names`` order.

        Returns
        -------
        PFBAPoint
            Never raises for solver trouble: infeasible points give status ``"relaxed"`` (with
            ``relax=True``) or ``"infeasible"``; solver errors give ``"failed"`` (NaN fluxes).

        Raises
        ------
        InputError
            Invalid inputs (unknown names, negative or non-finite values).
        """
        return self.solve_validated(self.input_vector(inputs))

    def solve_validated(self, u: np.ndarray) -> PFBAPoint:
        """:meth:`solve` for an input array already checked by :meth:`input_vector` (no checks)."""
        t0 = time.perf_counter()
        try:
            return self._solve(u, t0)
        except Exception as exc:  # a solver exception must never stop a sampling run
            self.reset()
            return self._nan_point(u, "failed", t0, f"{type(exc).__name__}: {exc}")

    def _min_slack(self, u: np.ndarray) -> float | str:
        """Stage (1): the minimum weighted slack sum, or an error text when the slack LP fails."""
        hr = self._highs["relax"]
        self._set_point(hr, u, True, -_INF, _INF)
        ok, st = self._run(hr)
        if not ok:
            return f"slack LP: {self._status_text(hr, st)}"
        return max(float(hr.getObjectiveValue()), 0.0)

    def _solve(self, u: np.ndarray, t0: float) -> PFBAPoint:
        s = self.settings
        hg, hp_ = self._highs["growth"], self._highs["pfba"]
        w_star = 0.0
        growth_done = False
        if s.relax and self._last_relaxed:
            # the previous point needed slacks: this one probably does too, so start with stage (1)
            res = self._min_slack(u)
            if isinstance(res, str):
                self._last_relaxed = False
                return self._nan_point(u, "failed", t0, res)
            w_star = res
        else:
            self._set_point(hg, u, False, -_INF, _INF)
            ok, st = self._run(hg)
            growth_done = ok
            if not ok:
                msg = self._status_text(hg, st)
                if not s.relax:
                    status = "infeasible" if st in self._infeasible else "failed"
                    return self._nan_point(u, status, t0, f"growth LP: {msg}")
                res = self._min_slack(u)
                if isinstance(res, str):
                    return self._nan_point(u, "failed", t0, f"growth LP: {msg}; {res}")
                if res <= s.slack_tolerance:
                    # feasible after all, so the growth LP failed for another reason (e.g. unbounded)
                    return self._nan_point(u, "failed", t0, f"growth LP: {msg}; the slack LP finds it feasible")
                w_star = res
        relaxed = w_star > s.slack_tolerance
        self._last_relaxed = relaxed
        budget = w_star * (1.0 + s.slack_tolerance) + s.slack_tolerance if relaxed else _INF
        if not growth_done:
            self._set_point(hg, u, relaxed, -_INF, budget)
            ok, st = self._run(hg)
            if not ok:
                self._last_relaxed = False
                return self._nan_point(u, "failed", t0, f"growth LP (stage 2): {self._status_text(hg, st)}")
        z = -float(hg.getObjectiveValue())
        z_lo = z - s.growth_tolerance * abs(z)
        self._set_point(hp_, u, relaxed, z_lo, budget)
        ok, st = self._run(hp_)
        msg = ""
        if not ok:
            # numerical trouble with the growth fix: loosen it once. Routine where z* is zero to
            # round-off (relaxed points without growth: z* ~ 1e-10 from the growth LP, infeasible
            # under stage 3's tolerance); anywhere else the point says so.
            first = self._status_text(hp_, st)
            loosen = 1e3 * s.growth_tolerance * max(1.0, abs(z))
            z_lo = z - loosen
            self._set_point(hp_, u, relaxed, z_lo, budget)
            ok, st = self._run(hp_)
            if not ok:
                return self._nan_point(u, "failed", t0, f"total-flux LP (stage 3): {self._status_text(hp_, st)}")
            if abs(z) > loosen:
                msg = f"total-flux LP (stage 3): {first} at the growth fix; solved with growth {loosen:.1e} below z*"
        x = np.asarray(hp_.getSolution().col_value)
        if s.tie_break == "l2":
            x, face_msg = self._min_norm_on_face(hp_, x, u, relaxed, z_lo, budget)
            msg = "; ".join(m for m in (msg, face_msg) if m)
        r = self._r
        split = np.maximum(x[: 2 * r], 0.0)
        fluxes = split[:r] - split[r:]
        slacks = np.maximum(x[2 * r :], 0.0) if relaxed else np.zeros(self._n_slack)
        growth = float(self.problem.objective @ fluxes)
        return PFBAPoint(
            inputs=u,
            fluxes=fluxes,
            split_fluxes=split,
            growth=growth,
            status="relaxed" if relaxed else "optimal",
            slacks=slacks,
            total_flux=float(split.sum()),
            solve_time=time.perf_counter() - t0,
            message=msg,
            reaction_ids=self.reaction_ids,
            slack_names=self.slack_names,
        )

    # ------------------------------------------------------------------ stage (4)
    def _current_bounds(
        self, u: np.ndarray, relaxed: bool, z_lo: float, budget: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Column and row bounds of the total-flux LP (3) at this point (as set by :meth:`_set_point`)."""
        k, r = self._k, self._r
        lo, hi = self._col_lo.copy(), self._col_hi.copy()
        lo[2 * r :] = 0.0
        hi[2 * r :] = 0.0
        if relaxed:
            hi[2 * r : 2 * r + 2 * k : 2] = u
            hi[2 * r + 1 : 2 * r + 2 * k : 2] = _INF
            if self._n_slack > 2 * k:
                hi[-1] = self.problem.maintenance_lower_bound
        rl, rh = self._row_lo.copy(), self._row_hi.copy()
        rl[self._row_input] = -u
        rh[self._row_input] = -u
        rl[self._row_growth] = z_lo
        rh[self._row_budget] = budget
        return lo, hi, rl, rh

    def _min_norm_on_face(self, h: Any, x0: np.ndarray, u: np.ndarray, relaxed: bool, z_lo: float, budget: float) -> tuple[np.ndarray, str]:
        """Stage (4): the minimum-norm point of the optimal face of (3); the vertex on failure."""
        bounds = self._current_bounds(u, relaxed, z_lo, budget)
        try:
            x, D = face_directions(h, self._A, bounds, self.settings.face_tolerance)
        except Exception as exc:  # numerical trouble: keep the LP vertex, say so
            return x0, f"tie-break (stage 4) skipped: {type(exc).__name__}: {exc}"
        return min_norm_on_face(x, D, bounds, self._A_csr, self._A_abs_csr, self._face_qp)

    def _face_qp(self) -> Any:
        """The HiGHS instance of stage (4)'s QP, built on first use."""
        if self._qp is None:
            self._qp = _new_highs(self._highspy)
            self._qp.setOptionValue("presolve", "off")
            self._qp.setOptionValue("qp_iteration_limit", QP_ITERATION_LIMIT)
        return self._qp

    def __repr__(self) -> str:
        return f"PFBASolver(model={self.model_id!r}, reactions={self._r}, inputs={dict(self.settings.inputs)}, relax={self.settings.relax})"
