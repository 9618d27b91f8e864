"""Where a reaction switches on: points on the phase boundaries of the pFBA map, and the lines through them.

The pFBA map is piecewise smooth; its kinks lie where a reaction switches on or off (a phase
boundary of the linear programme), and on genome-scale models such boundaries are often straight
lines in the uptake plane (iCH360: sulfate uptake starts along oxygen = 2.7642 glucose + 1.5308,
glutamate synthase along oxygen = 2.7674 glucose + 1.5293). :func:`switch_points` locates a boundary
by bisection of fresh pFBA solves along one input; :func:`fit_hyperplane` fits the line (hyperplane)
through the points, ready for ``SurrogateSettings.kink_lines``. :func:`find_kink_lines` finds
them all without being told where to look: it reads where the solution's active set changes between
neighbouring points of a sampled grid, bisects there on fresh solves and keeps the straight
boundaries.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mpc_bio.metabolism.pfba import PFBASolver
from mpc_bio.metabolism.settings import PFBASettings

__all__ = ["switch_points", "fit_hyperplane", "find_kink_lines", "KinkLine", "KinkSearch"]


def switch_points(
    model,
    reaction: str,
    along: str,
    points: Sequence[Sequence[float]] | np.ndarray,
    low: float,
    high: float,
    *,
    settings: PFBASettings | None = None,
    flux_tol: float = 1e-6,
    xtol: float = 1e-10,
    n_scan: int = 64,
) -> np.ndarray:
    """Points where ``reaction`` switches between zero and non-zero flux, by bisection along one input.

    For every row of ``points``, the input ``along`` (the other inputs keep the row's values) is
    first scanned from ``low`` to ``high`` in ``n_scan`` equal steps; the first step across which
    |v_reaction| crosses ``flux_tol`` is then bisected until it is narrower than ``xtol``. Rows
    without a switch in [low, high] come back as NaN; a switch on and off again within one scan
    step is missed (use more steps or a narrower bracket).

    Parameters
    ----------
    model : cobra.Model or PFBASolver
        The model (a solver is built with ``settings``) or a ready solver (then no ``settings``).
    reaction : str
        Reaction id whose switch is located.
    along : str
        Input name bisected (e.g. ``"oxygen"``).
    points : array-like, shape (n, k)
        Input values in the solver's ``input_names`` order (mmol/gDW/h); the ``along`` column is ignored.
    low, high : float
        Bracket of the ``along`` input (mmol/gDW/h), low < high.
    settings : PFBASettings, optional
        pFBA settings when ``model`` is a cobra model (use the training data's, e.g. the l2 tie-break).
    flux_tol : float
        |flux| above this counts as switched on (mmol/gDW/h).
    xtol : float
        Width of the final bracket (mmol/gDW/h).
    n_scan : int
        Scan steps; each row costs n_scan + 1 + log2((high - low) / (n_scan xtol)) pFBA solves.

    Returns
    -------
    ndarray, shape (n, k)
        The switch points (mmol/gDW/h), NaN rows where the bracket holds no switch.
    """
    if isinstance(model, PFBASolver) and settings is not None:
        raise ValueError(
            "The 'settings' parameter of switch_points applies only to a cobra model; a PFBASolver brings its own "
            f"({model.problem.settings!r}). Pass one or the other."
        )
    solver = model if isinstance(model, PFBASolver) else PFBASolver(model, settings)
    names = tuple(solver.input_names)
    if along not in names:
        raise ValueError(f"The 'along' parameter of switch_points must be one of the inputs {names}; got {along!r}.")
    if reaction not in solver.problem.reaction_ids:
        raise ValueError(f"The 'reaction' parameter of switch_points must be a reaction of the model; got {reaction!r}.")
    P = np.array(points, dtype=np.float64, ndmin=2)
    if P.ndim != 2 or P.shape[1] != len(names):
        raise ValueError(f"The 'points' parameter of switch_points must have shape (n, {len(names)}); got {P.shape}.")
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"The 'low' and 'high' parameters of switch_points must be finite with low < high; got {low}, {high}.")
    if not (flux_tol > 0 and xtol > 0):
        raise ValueError(f"The 'flux_tol' and 'xtol' parameters of switch_points must be positive; got {flux_tol}, {xtol}.")
    if isinstance(n_scan, bool) or not isinstance(n_scan, int) or n_scan < 1:
        raise ValueError(f"The 'n_scan' parameter of switch_points must be a positive integer; got {n_scan!r}.")
    j, col = solver.problem.reaction_ids.index(reaction), names.index(along)

    def is_on(x: np.ndarray, value: float) -> bool:
        x = x.copy()
        x[col] = value
        point = solver.solve(x)
        if not np.all(np.isfinite(point.fluxes)):
            raise RuntimeError(f"switch_points: pFBA failed at {dict(zip(names, x))} (status {point.status!r}).")
        return bool(abs(point.fluxes[j]) > flux_tol)

    out = np.full_like(P, np.nan)
    grid = np.linspace(float(low), float(high), n_scan + 1)
    for i, x in enumerate(P):
        on_lo = is_on(x, grid[0])
        step = next((s for s in range(n_scan) if is_on(x, grid[s + 1]) != on_lo), None)
        if step is None:
            continue
        lo, hi = float(grid[step]), float(grid[step + 1])
        while hi - lo > xtol:
            mid = 0.5 * (lo + hi)
            if is_on(x, mid) == on_lo:
                lo = mid
            else:
                hi = mid
        out[i] = x
        out[i, col] = 0.5 * (lo + hi)
    return out


def fit_hyperplane(points: Sequence[Sequence[float]] | np.ndarray) -> tuple[tuple[float, ...], float]:
    """The hyperplane a . x = c closest to the points (total least squares), for ``kink_lines``.

    Parameters
    ----------
    points : array-like, shape (n, k)
        Points on a boundary, e.g. from :func:`switch_points` (NaN rows are skipped); n >= k.

    Returns
    -------
    line : tuple of float
        ``(a_1, ..., a_k, c)`` with |a| = 1 and the largest |a_i| positive.
    max_distance : float
        Largest distance of a point from the hyperplane (mmol/gDW/h): how straight the boundary is.
    """
    P = np.array(points, dtype=np.float64, ndmin=2)
    P = P[np.all(np.isfinite(P), axis=1)] if P.ndim == 2 else P
    if P.ndim != 2 or P.shape[0] < P.shape[1] or P.shape[1] < 2:
        raise ValueError(
            f"The 'points' parameter of fit_hyperplane must hold at least k >= 2 finite points of k inputs; got shape {P.shape}."
        )
    mean = P.mean(axis=0)
    normal = np.linalg.svd(P - mean)[2][-1]
    normal = normal * np.sign(normal[np.argmax(np.abs(normal))])
    distance = np.abs((P - mean) @ normal)
    return (*map(float, normal), float(normal @ mean)), float(distance.max())


# ---------------------------------------------------------------------------------------------
# Automatic search: every straight phase boundary crossing a sampled grid
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class KinkLine:
    """One straight phase boundary of the pFBA map, located by bisection of fresh pFBA solves.

    Attributes
    ----------
    line : tuple of float
        ``(a_1, ..., a_k, c)`` of the hyperplane a . x = c (x in mmol/gDW/h, inputs in the solver's
        order), |a| = 1, the largest |a_i| positive; ready for ``SurrogateSettings.kink_lines``.
    max_distance : float
        Largest distance of a located point from the line (mmol/gDW/h): how straight it is.
    points : ndarray, shape (m, k)
        The located switch points (mmol/gDW/h), each on a grid edge crossing the boundary.
    features : tuple of str
        What changes across the line, e.g. ``"PGI sign"`` (the reaction's flux changes between
        negative, zero and positive), ``"PFK at upper bound"`` or ``"slack glucose_shortfall"``.
    n_edges : int
        Grid edges on which the line was seen (its length in grid cells, summed over features).
    jump : float
        How sharp the kink is: the largest change of slope across the line, over the located points
        and the reactions, times the grid step, as a fraction of the reaction's range over the grid
        (dimensionless). A smooth fit that rounds the kink over one grid step misses by about an
        eighth of it; a sign change that passes linearly through zero has none.
    jump_reaction : str
        The reaction whose slope changes most.
    """

    line: tuple[float, ...]
    max_distance: float
    points: np.ndarray
    features: tuple[str, ...]
    n_edges: int
    jump: float = float("nan")
    jump_reaction: str = ""

    def distance(self, x: np.ndarray) -> np.ndarray:
        """Signed distance (mmol/gDW/h) of points ``x`` (n, k) from the line."""
        a = np.asarray(self.line[:-1])
        return np.asarray(x, dtype=np.float64) @ a - self.line[-1]

    def to_dict(self) -> dict[str, Any]:
        """Json-serialisable form (points as lists)."""
        return {
            "line": list(self.line),
            "max_distance": self.max_distance,
            "features": list(self.features),
            "n_edges": self.n_edges,
            "jump": self.jump,
            "jump_reaction": self.jump_reaction,
            "points": self.points.tolist(),
        }


@dataclass(frozen=True, eq=False)
class KinkSearch:
    """Result of :func:`find_kink_lines`.

    Attributes
    ----------
    lines : tuple of KinkLine
        Straight boundaries with a kink of at least ``min_jump``, sharpest first (at most ``max_lines``).
    curved : list of dict
        Candidates whose located points are not on one line within the tolerance (feature,
        number of edges, largest distance in mmol/gDW/h): boundaries that bend, left to the net;
        and candidates not bisected because the solve or time budget ran out (``"skipped"``).
    dropped : list of dict
        Straight lines left out (line, features, number of edges, jump, and why: beyond
        ``max_lines`` or a kink below ``min_jump``).
    n_features_switching : int
        State features (sign, bounds, slacks) that change between some neighbouring grid points.
    n_solves : int
        Fresh pFBA solves spent on the bisections.
    settings : dict
        The search parameters, resolved (tolerances in mmol/gDW/h).
    """

    lines: tuple[KinkLine, ...]
    curved: list[dict[str, Any]]
    dropped: list[dict[str, Any]]
    n_features_switching: int
    n_solves: int
    settings: dict[str, Any]

    @property
    def kink_lines(self) -> tuple[tuple[float, ...], ...]:
        """The lines as ``SurrogateSettings.kink_lines`` rows."""
        return tuple(k.line for k in self.lines)

    def to_dict(self) -> dict[str, Any]:
        """Json-serialisable summary."""
        return {
            "lines": [k.to_dict() for k in self.lines],
            "curved": self.curved,
            "dropped": self.dropped,
            "n_features_switching": self.n_features_switching,
            "n_solves": self.n_solves,
            "settings": self.settings,
        }


def _state_features(problem, fluxes: np.ndarray, slacks: np.ndarray, tol: float) -> tuple[np.ndarray, list[str]]:
    """Discrete state of pFBA solutions (n, f) and the feature names: per reaction the sign of its
    flux (-1, 0, +1 with |v| <= tol counted zero), whether it sits at a finite lower or upper
    bound, and per slack whether it is active. The input exchanges are fixed by the inputs and
    left out."""
    V = np.atleast_2d(fluxes)
    Z = np.atleast_2d(slacks)
    keep = np.ones(V.shape[1], dtype=bool)
    keep[np.asarray(problem.input_index, dtype=int)] = False
    rids = np.asarray(problem.reaction_ids)
    lb, ub = np.asarray(problem.lower_bounds), np.asarray(problem.upper_bounds)
    sign = np.where(V > tol, 1, np.where(V < -tol, -1, 0))[:, keep].astype(np.int8)
    names = [f"{r} sign" for r in rids[keep]]
    parts = [sign]
    for label, bound in (("lower", lb), ("upper", ub)):
        cols = keep & np.isfinite(bound) & (bound != 0)  # a zero bound is already the sign
        parts.append((np.abs(V[:, cols] - bound[cols]) <= tol).astype(np.int8))
        names += [f"{r} at {label} bound" for r in rids[cols]]
    parts.append((Z > tol).astype(np.int8))
    names += [f"slack {s}" for s in problem.slack_names]
    return np.concatenate(parts, axis=1), names


def _ransac_lines(P: np.ndarray, tol: float, min_support: int, rng: np.random.Generator, n_trials: int, max_lines: int):
    """Sequential RANSAC: index sets of points lying within ``tol`` of common hyperplanes."""
    k = P.shape[1]
    left = np.arange(P.shape[0])
    out: list[np.ndarray] = []
    while left.size >= min_support and len(out) < max_lines:
        Q = P[left]
        best, best_count = None, 0
        for _ in range(n_trials):
            pick = rng.choice(Q.shape[0], size=k, replace=False)
            A = Q[pick]
            normal = np.linalg.svd(A - A.mean(axis=0))[2][-1]
            count = int(np.sum(np.abs((Q - A[0]) @ normal) <= tol))
            if count > best_count:
                best, best_count = (A[0], normal), count
        if best is None or best_count < min_support:
            break
        inl = np.abs((Q - best[0]) @ best[1]) <= tol
        for _ in range(3):  # refit on the inliers (total least squares), recount
            mean = Q[inl].mean(axis=0)
            normal = np.linalg.svd(Q[inl] - mean)[2][-1]
            new = np.abs((Q - mean) @ normal) <= tol
            if new.sum() < inl.sum():
                break
            inl = new
        if inl.sum() < min_support:
            break
        out.append(left[inl])
        left = left[~inl]
    return out


def _joins_found_line(lines, group, order, X, step, locate, tol: float, feature: str) -> bool:
    """Whether a candidate's edges lie on a line already found; if so it joins that line.

    The line must cross (or pass within ``tol`` of) at least 90 % of the candidate's grid edges,
    and the candidate's switch, bisected at its two ends and its middle, must lie within ``tol`` of
    the line (close but distinct boundaries, a fraction of a grid step apart, are told apart here).
    """
    if not lines:
        return False
    a_pts = X[group[:, 0]]
    b_pts = a_pts.copy()
    b_pts[np.arange(len(group)), group[:, 1]] += step[group[:, 1]]
    pts = None
    for m in lines:
        n, c = m["line"][:-1], m["line"][-1]
        da, db = a_pts @ n - c, b_pts @ n - c
        crossed = (da * db <= 0) | (np.minimum(np.abs(da), np.abs(db)) <= tol)
        if crossed.mean() < 0.9:
            continue
        if pts is None:  # bisected once, compared with every line that crosses the edges
            ends = order[np.unique([0, len(order) // 2, len(order) - 1])]
            pts = np.array([locate(*group[i]) for i in ends])
        if np.all(np.abs(pts @ n - c) <= tol):
            m["points"] = np.vstack([m["points"], pts])
            if feature not in m["features"]:
                m["features"].append(feature)
            m["edges"] |= {tuple(e) for e in group[crossed].tolist()}
            return True
    return False


def _grid_jump(V: np.ndarray, ok: np.ndarray, node: np.ndarray, idx: np.ndarray, group: np.ndarray, ranges: np.ndarray) -> float:
    """Sharpness of a candidate's kink estimated on the grid, without solves.

    For each edge ``(start node, axis)`` of the group, the slopes on the grid edges just before and
    just after it along the axis (fluxes at grid indices i - 1, i and i + 1, i + 2) differ by the
    change of slope across the edge times the grid step; as a fraction of each reaction's range,
    largest over the reactions (the units of :attr:`KinkLine.jump`). An edge at a face of the box
    has one neighbour: the slope on the edge itself stands in for the missing side (a kink at a
    fraction t along the edge then shows t or 1 - t of its size). Median over the edges; 0 when
    none has a neighbour.
    """
    counts = node.shape
    out = []
    for s_node, ax in group:
        i = idx[s_node]
        ids = {}
        for d in (-1, 0, 1, 2):
            j = i.copy()
            j[ax] += d
            if 0 <= j[ax] < counts[ax] and node[tuple(j)] >= 0 and ok[node[tuple(j)]]:
                ids[d] = int(node[tuple(j)])
        if 0 not in ids or 1 not in ids:
            continue
        before = V[ids[0]] - V[ids[-1]] if -1 in ids else V[ids[1]] - V[ids[0]]
        after = V[ids[2]] - V[ids[1]] if 2 in ids else V[ids[1]] - V[ids[0]]
        if -1 in ids or 2 in ids:
            out.append(float(np.max(np.abs(after - before) / ranges)))
    return float(np.median(out)) if out else 0.0


def _slope_jumps(solver, lines, low, high, h: float, ranges: np.ndarray, n_points: int) -> list[tuple[float, str, int]]:
    """Per line ``(jump, reaction, solves)``: the largest change of slope across the line.

    At up to ``n_points`` of its located points x, pFBA is solved at x and x +- eps n (n the unit
    normal); (v(x + eps n) - 2 v(x) + v(x - eps n)) / eps is the change of slope of every flux when
    only this line lies within eps, so eps is 0.4 of the distance to the nearest other line there
    (at most half a grid step, at least 1e-4 of one, and inside the box). The jump is that change
    times the grid step ``h`` over the reaction's range, largest over the points and reactions.
    """
    if not lines:
        return []
    A = np.array([np.asarray(line[:-1], dtype=float) for line, _ in lines])
    C = np.array([float(line[-1]) for line, _ in lines])
    rids = solver.problem.reaction_ids
    out = []
    for i, (line, pts) in enumerate(lines):
        normal = A[i] / np.linalg.norm(A[i])
        pick = pts[np.unique(np.round(np.linspace(0, len(pts) - 1, min(n_points, len(pts)))).astype(int))]
        best, who, n = 0.0, "", 0
        for x in pick:
            others = np.abs(A @ x - C)
            others[i] = np.inf
            eps = min(0.4 * float(others.min(initial=np.inf)), 1e-2 * h)
            with np.errstate(divide="ignore", invalid="ignore"):  # room to the faces of the box along the normal
                room = np.where(normal != 0, np.minimum((high - x) / np.abs(normal), (x - low) / np.abs(normal)), np.inf)
            eps = min(eps, 0.99 * float(room.min()))
            if not eps >= 1e-5 * h:
                continue
            points = [solver.solve_validated(x + sign * eps * normal) for sign in (-1.0, 0.0, 1.0)]
            n += 3
            if not all(p.ok for p in points):
                continue
            change = np.abs(points[2].fluxes - 2.0 * points[1].fluxes + points[0].fluxes) / eps * h / ranges
            change[solver.problem.input_index] = 0.0  # the inputs themselves are linear
            k = int(np.argmax(change))
            if change[k] > best:
                best, who = float(change[k]), rids[k]
        out.append((best, who, n))
    return out


@dataclass(frozen=True, eq=False)
class _KinkGrid:
    """The grid rows of a dataset as the kink search reads them.

    ``X`` inputs and ``V`` fluxes of the grid rows, ``axes`` the grid's axis values, ``low`` and
    ``step`` its origin and steps per input, ``h`` the smallest step; ``state`` the discrete state
    of every row (:func:`_state_features`) with its feature ``names``; ``ok`` the rows with a
    solution; ``node`` the row at each grid index and ``idx`` each row's grid index; ``ranges``
    every reaction's range over the grid (at least 1e-3 of the largest).
    """

    X: np.ndarray
    V: np.ndarray
    axes: list
    low: np.ndarray
    step: np.ndarray
    h: float
    state: np.ndarray
    names: list
    ok: np.ndarray
    node: np.ndarray
    idx: np.ndarray
    ranges: np.ndarray

    @property
    def high(self) -> np.ndarray:
        return np.array([a[-1] for a in self.axes])


def _kink_grid(dataset, problem, flux_tol: float | None) -> tuple[_KinkGrid, float]:
    """The dataset's grid rows (refined rows after them ignored) and the flux tolerance (default
    1e-6 times the largest |flux|, at least 1e-9)."""
    from mpc_bio.metabolism.refinement import _grid_axes

    n_grid = ((dataset.settings or {}).get("sampling") or {}).get("refinement", {}).get("n_grid_points") or dataset.n_points
    X = np.asarray(dataset.inputs[:n_grid], dtype=np.float64)
    V = np.asarray(dataset.fluxes[:n_grid], dtype=np.float64)
    Z = np.asarray(dataset.slacks[:n_grid], dtype=np.float64)
    axes = _grid_axes(X)
    k = X.shape[1]
    step = np.array([a[1] - a[0] for a in axes])
    finite = np.isfinite(V)
    if flux_tol is None:
        flux_tol = max(1e-6 * float(np.abs(V[finite]).max(initial=0.0)), 1e-9)
    state, names = _state_features(problem, np.nan_to_num(V), np.nan_to_num(Z), flux_tol)
    ok = np.all(finite, axis=1) & np.all(np.isfinite(Z), axis=1)
    idx = np.stack([np.searchsorted(axes[j], X[:, j]) for j in range(k)], axis=1)
    node = np.full([a.size for a in axes], -1, dtype=np.int64)
    node[tuple(idx.T)] = np.arange(X.shape[0])
    ranges = np.ptp(V[ok], axis=0) if ok.any() else np.zeros(V.shape[1])
    ranges = np.maximum(ranges, 1e-3 * max(float(ranges.max(initial=0.0)), 1e-9))
    low = np.array([a[0] for a in axes])
    grid = _KinkGrid(X, V, axes, low, step, float(step.min()), state, names, ok, node, idx, ranges)
    return grid, flux_tol


def _switching_edges(grid: _KinkGrid) -> dict[int, list[tuple[int, int]]]:
    """Per feature, the grid edges (start row, axis) between two solved rows where it changes."""
    k = grid.X.shape[1]
    edges: dict[int, list[tuple[int, int]]] = {}
    for ax in range(k):
        sl_a = [slice(None)] * k
        sl_b = [slice(None)] * k
        sl_a[ax], sl_b[ax] = slice(0, -1), slice(1, None)
        a, b = grid.node[tuple(sl_a)].ravel(), grid.node[tuple(sl_b)].ravel()
        both = grid.ok[a] & grid.ok[b]
        a, b = a[both], b[both]
        diff = grid.state[a] != grid.state[b]
        for e, f in zip(*np.nonzero(diff)):
            edges.setdefault(int(f), []).append((int(a[e]), ax))
    return edges


def _kink_candidates(grid: _KinkGrid, edges, min_edges: int, rng: np.random.Generator) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Candidate lines ``(feature, edges (start row, axis), edge midpoints in grid units)``, the
    sharpest kinks first (estimated on the grid, no solves), then the longest.

    The midpoints of each feature's switching edges are grouped by sequential RANSAC (tolerance
    half a cell). A group along a face of the box (every edge midpoint within a step of it) is a
    boundary the box's own edge carries and is dropped: no solves are spent on it. A budget that
    runs out leaves the weak kinks, which are dropped below ``min_jump`` or beyond ``max_lines``
    anyway.
    """
    candidates: list[tuple[int, np.ndarray, np.ndarray]] = []
    for f, lst in sorted(edges.items()):
        if len(lst) < min_edges:
            continue
        start = np.array([e[0] for e in lst])
        ax = np.array([e[1] for e in lst])
        mid = (grid.X[start] - grid.low) / grid.step
        mid[np.arange(len(lst)), ax] += 0.5
        for group in _ransac_lines(mid, 0.5 + 1e-9, min_edges, rng, 64, 8):
            candidates.append((f, np.column_stack([start[group], ax[group]]), mid[group]))
    k = grid.X.shape[1]
    top = np.array([len(a) - 1 for a in grid.axes], dtype=float)
    candidates = [c for c in candidates if not any(np.all(c[2][:, j] <= 1.0) or np.all(c[2][:, j] >= top[j] - 1.0) for j in range(k))]
    sharpness = [_grid_jump(grid.V, grid.ok, grid.node, grid.idx, c[1], grid.ranges) for c in candidates]
    order = sorted(range(len(candidates)), key=lambda i: (-sharpness[i], -len(candidates[i][1])))
    return [candidates[i] for i in order]


class _LineBisection:
    """Locates candidate lines on fresh pFBA solves within a solve and time budget.

    ``lines`` collects the straight lines found (dicts: ``line``, ``points``, ``features``,
    ``edges``), ``curved`` the candidates that stayed bent or were skipped, ``n_solves`` the
    solves spent.
    """

    def __init__(
        self,
        solver,
        grid: _KinkGrid,
        flux_tol: float,
        *,
        xtol,
        tol,
        points_per_line,
        min_edges,
        max_splits,
        max_solves,
        max_seconds,
        t_start,
    ):
        self.solver, self.grid, self.flux_tol = solver, grid, flux_tol
        self.xtol, self.tol, self.points_per_line = xtol, tol, points_per_line
        self.min_edges, self.max_splits = min_edges, max_splits
        self.max_solves, self.max_seconds = max_solves, max_seconds
        self.t_start = t_start
        self.n_solves = 0
        self.lines: list[dict[str, Any]] = []
        self.curved: list[dict[str, Any]] = []

    def out_of_budget(self) -> bool:
        return (self.max_solves is not None and self.n_solves >= self.max_solves) or (
            self.max_seconds is not None and time.perf_counter() - self.t_start >= self.max_seconds
        )

    def feature_state(self, x: np.ndarray, f: int) -> int:
        """Feature ``f``'s state at inputs ``x`` on a fresh solve (-99 without a solution)."""
        self.n_solves += 1
        pt = self.solver.solve_validated(x)
        if not pt.ok:
            return -99
        return int(_state_features(self.solver.problem, pt.fluxes, pt.slacks, self.flux_tol)[0][0, f])

    def locate(self, f: int, s_node: int, ax: int) -> np.ndarray:
        """Where feature ``f`` changes on the grid edge (``s_node``, ``ax``), bisected to ``xtol`` grid steps."""
        g = self.grid
        lo_x = g.X[s_node].copy()
        target = int(g.state[s_node, f])
        lo, hi = 0.0, float(g.step[ax])
        while hi - lo > self.xtol * g.step[ax]:
            m = 0.5 * (lo + hi)
            x = lo_x.copy()
            x[ax] += m
            if self.feature_state(x, f) == target:
                lo = m
            else:
                hi = m
        lo_x[ax] += 0.5 * (lo + hi)
        return lo_x

    def search(self, f: int, group: np.ndarray, mid: np.ndarray) -> None:
        """Locate one candidate: join a line already found, or fit its straight pieces."""
        name = self.grid.names[f]
        if self.out_of_budget():
            self.curved.append({"feature": name, "n_edges": int(len(group)), "skipped": "solve or time budget reached"})
            return
        # edges spread along the group: sort by position along its main direction
        direction = np.linalg.svd(mid - mid.mean(axis=0))[2][0]
        order = np.argsort(mid @ direction)
        g = self.grid

        def locate(s_node, ax):
            return self.locate(f, s_node, ax)

        # a boundary already found for another feature (several reactions switch on one line):
        # three bisections confirm it instead of a new fit, which leaves the budget to other lines
        if not _joins_found_line(self.lines, group, order, g.X, g.step, locate, self.tol, name):
            self._piece(f, group, mid, order, {}, 0)

    def _piece(self, f: int, group: np.ndarray, mid: np.ndarray, ids: np.ndarray, done: dict, depth: int) -> None:
        """The two ends and the middle first: a piece that bends is split in two halves (a polyline
        boundary gives its straight pieces), down to pieces of ``min_edges`` edges."""
        g, k = self.grid, self.grid.X.shape[1]
        ends = np.unique(ids[[0, len(ids) // 2, -1]])
        for i in ends:
            if int(i) not in done:
                done[int(i)] = self.locate(f, *group[i])
        probe = np.array([done[int(i)] for i in ends])
        if probe.shape[0] >= k and fit_hyperplane(probe)[1] <= self.tol:
            n_spread = min(self.points_per_line, len(ids))
            spread = ids[np.unique(np.round(np.linspace(0, len(ids) - 1, n_spread)).astype(int))]
            for i in spread:
                if int(i) not in done:
                    done[int(i)] = self.locate(f, *group[i])
            pts = np.array([done[int(i)] for i in spread])
            line, dist = fit_hyperplane(pts)
            if dist <= self.tol:
                normal = np.asarray(line[:-1])
                near = np.abs((g.low + mid[ids] * g.step) @ normal - line[-1]) / np.linalg.norm(normal * g.step)
                self.lines.append(
                    {
                        "line": np.array(line),
                        "points": pts,
                        "features": [g.names[f]],
                        "edges": {tuple(e) for e in group[ids][near <= 0.5 + 1e-9].tolist()},
                    }
                )
                return
        if len(ids) >= 2 * self.min_edges and depth < self.max_splits and not self.out_of_budget():
            self._piece(f, group, mid, ids[: len(ids) // 2], done, depth + 1)
            self._piece(f, group, mid, ids[len(ids) // 2 :], done, depth + 1)
        else:
            self.curved.append(
                {
                    "feature": g.names[f],
                    "n_edges": int(len(ids)),
                    "max_distance": fit_hyperplane(probe)[1] if probe.shape[0] >= k else None,
                }
            )


def _merge_lines(lines: list[dict[str, Any]], tol: float) -> list[dict[str, Any]]:
    """Lines seen for several features merged: every point of one within ``tol`` of the other."""
    merged: list[dict[str, Any]] = []
    for c in lines:
        for m in merged:
            a_m, a_c = m["line"], c["line"]
            if np.all(np.abs(c["points"] @ a_m[:-1] - a_m[-1]) <= tol) and np.all(np.abs(m["points"] @ a_c[:-1] - a_c[-1]) <= tol):
                m["points"] = np.vstack([m["points"], c["points"]])
                m["features"] += [x for x in c["features"] if x not in m["features"]]
                m["edges"] |= c["edges"]
                m["line"] = np.array(fit_hyperplane(m["points"])[0])
                break
        else:
            merged.append(c)
    return merged


def _crossing_box(lines: list[dict[str, Any]], low: np.ndarray, high: np.ndarray, tol: float) -> list[dict[str, Any]]:
    """The lines that cross the box: lines that only touch it (e.g. along a face) carry no kink inside it."""
    k = low.size
    corners = low + np.array(list(np.ndindex(*(2,) * k))) * (high - low)
    inside = []
    for m in lines:
        d = corners @ m["line"][:-1] - m["line"][-1]
        if d.min() < -tol and d.max() > tol:
            inside.append(m)
    return inside


def find_kink_lines(
    model,
    dataset,
    *,
    settings: PFBASettings | None = None,
    flux_tol: float | None = None,
    points_per_line: int = 8,
    min_edges: int = 4,
    straightness: float = 1e-3,
    xtol: float = 1e-6,
    max_splits: int = 2,
    max_lines: int = 32,
    min_jump: float = 0.01,
    max_solves: int | None = None,
    max_seconds: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> KinkSearch:
    """Find the straight phase boundaries (kink lines) of the pFBA map over a sampled grid.

    Between neighbouring grid points the discrete state of the solution changes where a phase
    boundary crosses the edge: a reaction's flux changes sign or starts or stops (``"R sign"``),
    a reaction reaches or leaves a finite bound, a slack of the relaxation turns on. For every
    such state feature, the midpoints of the edges where it changes are grouped into lines by
    sequential RANSAC (in grid units, tolerance half a cell); on each group, up to
    ``points_per_line`` edges spread along it are bisected on fresh pFBA solves (the feature's
    state at the edge's start against its state at the midpoint) down to ``xtol`` grid steps,
    and the line through the located points is fitted (:func:`fit_hyperplane`). Straight fits are
    kept; lines found for several features are merged. Nothing depends on the model beyond the
    grid: every tolerance is a fraction of the grid step or of the largest flux.

    Parameters
    ----------
    model : cobra.Model, PFBAProblem, PFBASolver, str or Path
        The model the grid was sampled from.
    dataset : FluxDataset
        A complete regular grid (``sample_pfba`` on ``grid_points``; refined rows after the grid
        rows are ignored when the dataset records its ``n_grid_points``).
    settings : PFBASettings, optional
        Default: the dataset's recorded settings (same tie-break as its fluxes).
    flux_tol : float, optional
        |flux| at or below this counts as zero, and a flux this close to a bound counts as at the
        bound (mmol/gDW/h). Default 1e-6 times the largest |flux| of the grid (at least 1e-9).
    points_per_line : int
        Edges bisected per candidate line (>= 2 and >= the number of inputs).
    min_edges : int
        Smallest number of grid edges a candidate line must cross (>= 2).
    straightness : float
        A candidate is kept when all its located points lie within this many grid steps (the
        smallest step over the axes) of the fitted line; lines closer than that everywhere in
        the box are merged.
    xtol : float
        Width of the final bisection bracket in grid steps.
    max_splits : int
        A candidate that is not straight is halved, and each half tried again, at most this many
        times deep (2: straight pieces of a quarter of it at the least); a boundary still bent
        then is recorded as curved. A bent boundary split down to the smallest pieces would spend
        the solve budget that the next candidates need.
    max_lines : int
        Largest number of lines returned (the sharpest kinks, see ``min_jump``); 0 for no limit.
    min_jump : float
        Lines whose kink is weaker than this are dropped (:attr:`KinkLine.jump`: the change of slope
        across the line times the grid step, as a fraction of a reaction's range; dimensionless,
        >= 0). The slopes are second differences of fresh pFBA solves on both sides of the located
        points, closer than any other line found. A feature that only changes sign (a reversible
        reaction passing linearly through zero) or a bound reached by a reaction that stays
        straight carries no kink and is dropped here.
    max_solves : int, optional
        Stop bisecting new candidates once this many pFBA solves are spent (None: no limit).
    max_seconds : float, optional
        Stop bisecting new candidates after this wall time (s; None: no limit). The candidates
        whose kink is sharpest on the grid come first (the change of slope across their edges, from
        second differences of the grid's fluxes, median over the edges; longer ones first among
        equals), so a cut keeps the sharpest lines; groups along a face of the box are skipped.
    seed : int
        Seed of the RANSAC draws.
    progress : bool
        Show a progress bar over the candidates.

    Returns
    -------
    KinkSearch
    """
    from tqdm.auto import tqdm

    from mpc_bio.metabolism.pfba import PFBAProblem, build_problem

    for name, value, ok, what in (
        ("points_per_line", points_per_line, isinstance(points_per_line, int) and points_per_line >= 2, "an integer >= 2"),
        ("min_edges", min_edges, isinstance(min_edges, int) and min_edges >= 2, "an integer >= 2"),
        ("straightness", straightness, isinstance(straightness, (int, float)) and straightness > 0, "a positive number (grid steps)"),
        ("xtol", xtol, isinstance(xtol, (int, float)) and 0 < xtol < 1, "a number in (0, 1) (grid steps)"),
        ("max_lines", max_lines, isinstance(max_lines, int) and max_lines >= 0, "a non-negative integer"),
        ("min_jump", min_jump, isinstance(min_jump, (int, float)) and min_jump >= 0, "a non-negative number"),
        ("max_splits", max_splits, isinstance(max_splits, int) and max_splits >= 0, "a non-negative integer"),
    ):
        if isinstance(value, bool) or not ok:
            raise ValueError(f"The {name!r} parameter of find_kink_lines must be {what}. Got {value!r} instead.")
    if isinstance(model, PFBASolver):
        if settings is not None:
            raise ValueError("The 'settings' parameter of find_kink_lines applies only to a cobra model; a PFBASolver brings its own.")
        solver = model
    else:
        if settings is None:
            recorded = (getattr(dataset, "settings", None) or {}).get("pfba")
            settings = PFBASettings.from_dict(recorded) if recorded else None
        solver = PFBASolver(model if isinstance(model, PFBAProblem) else build_problem(model, settings))
    problem = solver.problem
    if tuple(dataset.input_names) != tuple(solver.input_names) or tuple(dataset.reaction_ids) != tuple(problem.reaction_ids):
        raise ValueError(
            "The 'dataset' parameter of find_kink_lines must be sampled from this model with these inputs; got inputs "
            f"{tuple(dataset.input_names)} for a solver with {tuple(solver.input_names)}."
        )
    grid, flux_tol = _kink_grid(dataset, problem, flux_tol)
    edges = _switching_edges(grid)
    t_start = time.perf_counter()  # the time budget counts from here
    candidates = _kink_candidates(grid, edges, min_edges, np.random.default_rng(seed))
    tol = straightness * grid.h
    search = _LineBisection(
        solver,
        grid,
        flux_tol,
        xtol=xtol,
        tol=tol,
        points_per_line=points_per_line,
        min_edges=min_edges,
        max_splits=max_splits,
        max_solves=max_solves,
        max_seconds=max_seconds,
        t_start=t_start,
    )
    for f, group, mid in tqdm(candidates, desc="kink lines", unit="cand", disable=not progress, leave=False):
        search.search(f, group, mid)

    inside = _crossing_box(_merge_lines(search.lines, tol), grid.low, grid.high, tol)
    jumps = _slope_jumps(solver, [(m["line"], m["points"]) for m in inside], grid.low, grid.high, grid.h, grid.ranges, points_per_line)
    n_solves = search.n_solves + sum(n for _, _, n in jumps)
    for m, (jump, rid, _) in zip(inside, jumps):
        m["jump"], m["jump_reaction"] = jump, rid
    inside.sort(key=lambda m: (-m["jump"], -len(m["edges"])))
    sharp = [m for m in inside if m["jump"] >= min_jump]
    keep = sharp[:max_lines] if max_lines else sharp
    out = []
    for m in keep:
        line, dist = fit_hyperplane(m["points"])
        out.append(
            KinkLine(
                line=line,
                max_distance=dist,
                points=m["points"],
                features=tuple(m["features"]),
                n_edges=len(m["edges"]),
                jump=float(m["jump"]),
                jump_reaction=m["jump_reaction"],
            )
        )
    kept = {id(m) for m in keep}
    dropped = [
        {
            "line": [float(v) for v in m["line"]],
            "features": m["features"],
            "n_edges": len(m["edges"]),
            "jump": float(m["jump"]),
            "jump_reaction": m["jump_reaction"],
            "reason": "beyond max_lines" if m["jump"] >= min_jump else "kink below min_jump",
        }
        for m in inside
        if id(m) not in kept
    ]
    return KinkSearch(
        lines=tuple(out),
        curved=search.curved,
        dropped=dropped,
        n_features_switching=len(edges),
        n_solves=n_solves,
        settings={
            "flux_tol": float(flux_tol),
            "points_per_line": points_per_line,
            "min_edges": min_edges,
            "straightness_grid_steps": float(straightness),
            "tolerance": float(tol),
            "xtol_grid_steps": float(xtol),
            "max_splits": max_splits,
            "max_lines": max_lines,
            "min_jump": float(min_jump),
            "max_solves": max_solves,
            "max_seconds": max_seconds,
            "seed": seed,
            "grid_step": grid.step.tolist(),
        },
    )
