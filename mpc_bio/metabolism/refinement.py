"""Adaptive refinement of a sampled pFBA grid where the fluxes change faster than the grid resolves.

The pFBA map is piecewise linear in the uptakes, with kinks (and steep but continuous ramps)
along lines where the optimal basis changes. A regular grid misses kinks narrower than its step:
piecewise-linear interpolation of the paper's 0.1 grid errs by up to 17-30% of a reaction's range
on e_coli_core. Refinement tests every grid cell: the fluxes freshly solved at the cell centre are
compared with the multilinear interpolation of the cell's corners; a cell where they differ by more
than ``tolerance`` times a reaction's range is split into 2^k children (a quadtree in two inputs),
and the test repeats on the children down to ``max_depth`` splits. Every added point is an ordinary
pFBA solution (same settings, tie-break and solver as the grid) appended to the dataset.

:func:`extend_dataset` appends given points instead (e.g. a fine grid over a strip where the map
has a feature narrower than the quadtree's finest cell), solved the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mpc_bio.metabolism.dataset import FluxDataset
from mpc_bio.metabolism.pfba import PFBAProblem, build_problem
from mpc_bio.metabolism.sampling import (
    DEFAULT_CHUNK_SIZE,
    SamplePoints,
    SOLVER_NOTES,
    SamplingError,
    _as_points,
    sample_pfba,
)
from mpc_bio.metabolism.settings import PFBASettings, SettingsError

__all__ = ["RefineSettings", "RefinementResult", "extend_dataset", "refine_cells", "refine_dataset"]


@dataclass(frozen=True)
class RefineSettings:
    """How a sampled grid is refined (deterministic: no random step).

    Attributes
    ----------
    tolerance : float
        A cell is split when, for some reaction j, |v_j(centre) - multilinear interpolation of the
        corners| > tolerance * scale_j, where scale_j = max(range of v_j over the grid, range_floor)
        (dimensionless fraction; e.g. 0.005 is half a percent of each reaction's range).
    max_depth : int
        Largest number of successive splits of a grid cell (>= 1). The finest cell edge is
        step / 2**max_depth and the finest point spacing (its tested centres) step / 2**(max_depth + 1).
    range_floor : float
        Smallest reaction scale in mmol/gDW/h (growth in 1/h): reactions whose range over the grid is
        below it (blocked, or LP round-off) are judged against this absolute difference.
    max_points : int
        Upper bound on the number of points added (0 = no bound). When the next level would exceed
        it, only the cells with the largest differences are split, in decreasing order.
    """

    tolerance: float = 0.005
    max_depth: int = 3
    range_floor: float = 1e-3
    max_points: int = 0

    def __post_init__(self) -> None:
        for name in ("tolerance", "range_floor"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
                raise SettingsError(f"The {name!r} parameter of RefineSettings must be a positive finite number; got {v!r}.")
            object.__setattr__(self, name, float(v))
        if isinstance(self.max_depth, bool) or not isinstance(self.max_depth, (int, np.integer)) or not 1 <= self.max_depth <= 12:
            raise SettingsError(f"The 'max_depth' parameter of RefineSettings must be an integer in [1, 12]; got {self.max_depth!r}.")
        if isinstance(self.max_points, bool) or not isinstance(self.max_points, (int, np.integer)) or self.max_points < 0:
            raise SettingsError(f"The 'max_points' parameter of RefineSettings must be a non-negative integer; got {self.max_points!r}.")

    def to_dict(self) -> dict[str, Any]:
        """Json-serialisable form; ``RefineSettings(**d)`` inverts it."""
        return asdict(self)


@dataclass(frozen=True, eq=False)
class RefinementResult:
    """Points added by :func:`refine_cells`.

    Attributes
    ----------
    points : ndarray, shape (m, k)
        New input points (mmol/gDW/h), in the order they were solved (level by level).
    values : ndarray, shape (m, p)
        The function's values at ``points``.
    levels : list of dict
        Per level: ``depth``, ``cells_tested``, ``cells_flagged``, ``points_added`` and
        ``max_difference`` (largest scaled centre-vs-interpolation difference of the level).
    """

    points: np.ndarray
    values: np.ndarray
    levels: list[dict[str, Any]]


def _grid_axes(values: np.ndarray) -> list[np.ndarray]:
    """Axes of a complete, evenly spaced grid in ``values`` (n, k); raises otherwise."""
    axes = [np.unique(values[:, j]) for j in range(values.shape[1])]
    if int(np.prod([a.size for a in axes])) != values.shape[0]:
        raise SamplingError(
            "Refinement needs a complete regular grid of points (every combination of the axis values once); "
            f"got {values.shape[0]} points on axes of sizes {[a.size for a in axes]}."
        )
    for j, a in enumerate(axes):
        if a.size < 2:
            raise SamplingError(f"Refinement needs at least 2 grid values on every axis; axis {j} has {a.size}.")
        d = np.diff(a)
        if not np.allclose(d, d[0], rtol=1e-6, atol=1e-12):
            raise SamplingError(f"Refinement needs an evenly spaced grid; axis {j} has steps from {d.min()!r} to {d.max()!r}.")
    return axes


def refine_cells(
    fn: Callable[[np.ndarray], np.ndarray],
    grid_inputs: np.ndarray,
    grid_values: np.ndarray,
    scale: np.ndarray,
    settings: RefineSettings | None = None,
    *,
    progress: bool = True,
) -> RefinementResult:
    """Refine a regular grid of a vector function where multilinear interpolation misses it.

    Parameters
    ----------
    fn : callable
        ``fn(points (m, k)) -> values (m, p)``; evaluated once per level on all new points.
        Rows of NaN (failed evaluations) are kept and never trigger a split.
    grid_inputs : ndarray, shape (n, k)
        A complete regular grid (any row order), evenly spaced on every axis.
    grid_values : ndarray, shape (n, p)
        ``fn`` at the grid points.
    scale : ndarray, shape (p,)
        Positive scale per output: differences are measured in units of it.
    settings : RefineSettings, optional
    progress : bool
        Show a progress bar over the levels.

    Returns
    -------
    RefinementResult
        The added points (never grid points, never repeated) and their values.
    """
    from tqdm.auto import tqdm

    s = settings or RefineSettings()
    X = np.asarray(grid_inputs, dtype=np.float64)
    F = np.asarray(grid_values, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    if X.ndim != 2 or F.ndim != 2 or F.shape[0] != X.shape[0]:
        raise SamplingError(f"grid_inputs (n, k) and grid_values (n, p) must have the same n; got {X.shape} and {F.shape}.")
    if scale.shape != (F.shape[1],) or not np.all(scale > 0):
        raise SamplingError(f"scale must be positive with shape ({F.shape[1]},); got shape {scale.shape}.")
    axes = _grid_axes(X)
    k = X.shape[1]
    unit = 2 ** (s.max_depth + 1)  # integer lattice: the finest centre spacing is one unit
    low = np.array([a[0] for a in axes])
    step = np.array([a[1] - a[0] for a in axes])
    counts = np.array([a.size for a in axes])

    # integer lattice coordinates -> row in the value store
    grid_int = np.stack([np.searchsorted(axes[j], X[:, j]) for j in range(k)], axis=1) * unit
    index: dict[tuple[int, ...], int] = {tuple(int(c) for c in row): i for i, row in enumerate(grid_int)}
    store: list[np.ndarray] = [F]
    n_known = F.shape[0]
    new_pts: list[np.ndarray] = []

    def coords(I: np.ndarray) -> np.ndarray:
        return low + I / unit * step

    def evaluate(I: np.ndarray) -> None:
        nonlocal n_known
        if I.shape[0] == 0:
            return
        P = coords(I)
        vals = np.asarray(fn(P), dtype=np.float64)
        if vals.shape != (I.shape[0], F.shape[1]):
            raise SamplingError(f"fn must return shape ({I.shape[0]}, {F.shape[1]}); got {vals.shape}.")
        for r, row in enumerate(I):
            index[tuple(int(c) for c in row)] = n_known + r
        n_known += I.shape[0]
        store.append(vals)
        new_pts.append(P)

    def value_rows(I: np.ndarray) -> np.ndarray:
        return np.array([index[tuple(int(c) for c in row)] for row in I], dtype=np.int64)

    def unknown(I: np.ndarray) -> np.ndarray:
        I = np.unique(I, axis=0)
        keep = np.array([tuple(int(c) for c in row) not in index for row in I], dtype=bool)
        return I[keep] if keep.size else I

    bits = np.array(list(itertools.product((0, 1), repeat=k)), dtype=np.int64)  # 2^k corner offsets
    lower = np.stack(np.meshgrid(*[np.arange(c - 1) for c in counts], indexing="ij"), axis=-1).reshape(-1, k) * unit
    size = unit
    levels: list[dict[str, Any]] = []
    added = 0
    bar = tqdm(total=s.max_depth + 1, desc="refine grid", unit="level", disable=not progress)
    try:
        for depth in range(s.max_depth + 1):
            half = size // 2
            centres = lower + half
            todo = unknown(centres)
            if s.max_points and added + len(todo) > s.max_points:
                todo = todo[: max(0, s.max_points - added)]
            evaluate(todo)
            added += len(todo)
            have = np.array([tuple(int(c) for c in row) in index for row in centres], dtype=bool)
            lower_t, centres_t = lower[have], centres[have]
            Fs = np.concatenate(store, axis=0)
            corner_rows = np.stack([value_rows(lower_t + size * b) for b in bits], axis=1)  # (m, 2^k)
            interp = Fs[corner_rows].mean(axis=1)  # multilinear interpolation at a cell centre
            diff = np.abs(Fs[value_rows(centres_t)] - interp) / scale
            with np.errstate(invalid="ignore"):
                worst = np.nanmax(np.where(np.isfinite(diff), diff, -np.inf), axis=1) if diff.size else np.zeros(0)
            flagged = worst > s.tolerance
            levels.append(
                {
                    "depth": depth,
                    "cell_size": (step / 2**depth).tolist(),
                    "cells_tested": len(lower_t),
                    "cells_flagged": int(flagged.sum()),
                    "points_added": len(todo),
                    "max_difference": float(worst.max()) if worst.size else 0.0,
                }
            )
            bar.update(1)
            bar.set_postfix(points=added, flagged=int(flagged.sum()))
            if depth == s.max_depth or not flagged.any() or (s.max_points and added >= s.max_points):
                break
            # split the flagged cells, the largest differences first (matters only under max_points)
            order = np.argsort(-worst[flagged], kind="stable")
            parents = lower_t[flagged][order]
            children = (parents[:, None, :] + half * bits[None, :, :]).reshape(-1, k)
            corners = (children[:, None, :] + half * bits[None, :, :]).reshape(-1, k)
            todo = unknown(corners)
            if s.max_points and added + len(todo) > s.max_points:
                # keep whole parents: the corners their children need, in the parents' order
                keep_parents = 0
                seen: set[tuple[int, ...]] = set()
                for p in parents:
                    need = {tuple(int(c) for c in p + half * np.asarray(t)) for t in itertools.product((0, 1, 2), repeat=k)}
                    need = {c for c in need if c not in index and c not in seen}
                    if added + len(seen) + len(need) > s.max_points:
                        break
                    seen |= need
                    keep_parents += 1
                parents = parents[:keep_parents]
                children = (parents[:, None, :] + half * bits[None, :, :]).reshape(-1, k)
                corners = (children[:, None, :] + half * bits[None, :, :]).reshape(-1, k)
                todo = unknown(corners) if len(corners) else np.zeros((0, k), dtype=np.int64)
            evaluate(todo)
            added += len(todo)
            levels[-1]["points_added"] += len(todo)
            lower, size = children, half
            if len(lower) == 0:
                break
    finally:
        bar.close()
    P = np.concatenate(new_pts, axis=0) if new_pts else np.zeros((0, k))
    V = np.concatenate(store[1:], axis=0) if len(store) > 1 else np.zeros((0, F.shape[1]))
    return RefinementResult(points=P, values=V, levels=levels)


def refine_dataset(
    model: Any,
    dataset: FluxDataset,
    settings: RefineSettings | None = None,
    *,
    n_workers: int | None = 1,
    scheduler: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
) -> FluxDataset:
    """Add pFBA points to a grid dataset where its fluxes change faster than the grid resolves.

    Parameters
    ----------
    model : cobra.Model, PFBAProblem, str or Path
        The model the dataset was sampled from (its hash must match ``dataset.model_hash``).
    dataset : FluxDataset
        A complete regular grid sampled by :func:`~mpc_bio.metabolism.sampling.sample_pfba`;
        the new points are solved with the same :class:`PFBASettings` (including the tie-break).
    settings : RefineSettings, optional
        Tolerance, depth and point budget of the refinement.
    n_workers, scheduler, chunk_size
        As in :func:`~mpc_bio.metabolism.sampling.sample_pfba` (each level is one sampling run).
    progress : bool
        Show a progress bar over the levels.

    Returns
    -------
    FluxDataset
        The grid rows unchanged and first, then the added points (level by level).
        ``settings["sampling"]["refinement"]`` records the settings, ``n_grid_points`` and the
        per-level counts. Added rows are plain pFBA solutions: solving any of them again gives
        the same fluxes.
    """
    s = settings or RefineSettings()
    if not isinstance(dataset, FluxDataset):
        raise SamplingError(f"The 'dataset' parameter must be a FluxDataset; got {type(dataset).__name__}.")
    sampling = dataset.settings.get("sampling") or {}
    if sampling.get("refinement") or sampling.get("extensions"):
        raise SamplingError("The dataset is already refined or extended; refine the original grid dataset instead.")
    problem = _problem_of(model, dataset)
    V = dataset.fluxes
    with np.errstate(invalid="ignore"):
        rng = np.nanmax(V, axis=0) - np.nanmin(V, axis=0)
    scale = np.maximum(np.nan_to_num(rng, nan=0.0), s.range_floor)
    solved: list[FluxDataset] = []

    def solve(points: np.ndarray) -> np.ndarray:
        d = sample_pfba(problem, points, n_workers=n_workers, scheduler=scheduler, chunk_size=chunk_size, progress=False)
        solved.append(d)
        return d.fluxes

    res = refine_cells(solve, dataset.inputs, V, scale, s, progress=progress)
    record = {
        "settings": s.to_dict(),
        "n_grid_points": dataset.n_points,
        "n_added_points": int(res.points.shape[0]),
        "levels": res.levels,
    }
    return _append(dataset, solved, {**sampling, "refinement": record})


def extend_dataset(
    model: Any,
    dataset: FluxDataset,
    points: SamplePoints | np.ndarray,
    *,
    n_workers: int | None = 1,
    scheduler: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
) -> FluxDataset:
    """Solve pFBA at extra input points and append them to a dataset.

    For features of the map narrower than a refinement can afford everywhere, e.g. on iCH360 the
    succinate export that is non-zero only below an oxygen uptake of 0.005 (glucose 5) to 0.06
    (glucose 20) mmol/gDW/h: a fine grid over that strip, ``grid_points({"glucose": (0, 20, 0.1),
    "oxygen": (0, 0.08, 0.0005)})``.

    Parameters
    ----------
    model : cobra.Model, PFBAProblem, str or Path
        The model the dataset was sampled from (its hash must match ``dataset.model_hash``).
    dataset : FluxDataset
        Any dataset (a grid, a refined grid, an extended one); its :class:`PFBASettings`
        (including the tie-break) solve the new points.
    points : SamplePoints or ndarray, shape (n, k)
        Uptake rates in mmol/gDW/h (columns in ``dataset.input_names`` order for arrays). Points
        already in the dataset (within 1e-9 mmol/gDW/h) or repeated are solved once only.
    n_workers, scheduler, chunk_size, progress
        As in :func:`~mpc_bio.metabolism.sampling.sample_pfba`.

    Returns
    -------
    FluxDataset
        The dataset's rows unchanged and first, then the new points in their given order.
        ``settings["sampling"]["extensions"]`` lists, per call, how the points were made
        (``kind``, ``spec``), ``n_given`` and ``n_added``.
    """
    from scipy.spatial import cKDTree

    if not isinstance(dataset, FluxDataset):
        raise SamplingError(f"The 'dataset' parameter must be a FluxDataset; got {type(dataset).__name__}.")
    problem = _problem_of(model, dataset)
    P, meta = _as_points(points, dataset.input_names)
    n_given = P.shape[0]
    # drop repeats (keep the first) and points the dataset already has
    _, first = np.unique(np.round(P, 9), axis=0, return_index=True)
    P = P[np.sort(first)]
    if P.shape[0] and dataset.n_points:
        dist, _ = cKDTree(dataset.inputs).query(P, k=1)
        P = P[dist > 1e-9]
    parts: list[FluxDataset] = []
    if P.shape[0]:
        parts.append(sample_pfba(problem, P, n_workers=n_workers, scheduler=scheduler, chunk_size=chunk_size, progress=progress))
    sampling = dict(dataset.settings.get("sampling") or {})
    record = {**meta, "n_given": int(n_given), "n_added": int(P.shape[0])}
    sampling["extensions"] = [*(sampling.get("extensions") or []), record]
    return _append(dataset, parts, sampling)


def _problem_of(model: Any, dataset: FluxDataset) -> PFBAProblem:
    """The pFBA problem of ``model`` with ``dataset``'s settings; raises when the model or settings differ."""
    pfba = (dataset.settings or {}).get("pfba")
    pfba_settings = PFBASettings.from_dict(pfba) if pfba else None
    problem = model if isinstance(model, PFBAProblem) else build_problem(model, pfba_settings)
    if problem.model_hash != dataset.model_hash:
        raise SamplingError(
            f"The model (hash {problem.model_hash}) is not the one the dataset was sampled from "
            f"(hash {dataset.model_hash}); pass the dataset's model."
        )
    if pfba_settings is not None and problem.settings.to_dict() != pfba_settings.to_dict():
        raise SamplingError(
            "The PFBAProblem was built with settings different from the dataset's; use the dataset's settings "
            f"{pfba_settings.to_dict()}, got {problem.settings.to_dict()}."
        )
    return problem


def _append(dataset: FluxDataset, solved: list[FluxDataset], sampling: dict[str, Any]) -> FluxDataset:
    """``dataset`` followed by the rows of ``solved``, with ``settings["sampling"]`` replaced by ``sampling``."""
    parts = [dataset, *solved]
    run = dict(dataset.settings)
    for note in SOLVER_NOTES:  # fallback counts of all parts (absent in datasets older than the count)
        counts = [(p.settings.get("sampling") or {}).get(note) for p in parts]
        if any(c is not None for c in counts):
            sampling = {**sampling, note: sum(int(c or 0) for c in counts)}
    run["sampling"] = sampling
    return dataset.appended(*solved, settings=run)
