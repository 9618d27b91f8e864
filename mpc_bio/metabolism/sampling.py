"""Sampling the pFBA solution map over uptake inputs: grids, Latin hypercubes, parallel chunks.

Points are solved in a serpentine (boustrophedon) order so consecutive points are neighbours and
the simplex basis of one is a good start for the next. The order is cut into chunks of fixed size;
every chunk starts from a cold solver, so the data do not depend on how chunks are distributed:
serial, a local process pool and a Dask cluster give identical datasets. With a checkpoint
folder every solved chunk is kept on disk as it arrives, so an interrupted run resumes where it
stopped and gives the same dataset.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from mpc_bio.metabolism.dataset import FluxDataset
from mpc_bio.metabolism.pfba import STATUS_NAMES, InputError, PFBAProblem, PFBASolver, build_problem
from mpc_bio.metabolism.settings import PFBASettings

__all__ = [
    "SamplePoints",
    "SamplingError",
    "grid_points",
    "latin_hypercube_points",
    "serpentine_order",
    "sample_pfba",
    "DEFAULT_CHUNK_SIZE",
    "PAPER_GRID",
    "SOLVER_NOTES",
]

#: Fallbacks of the pFBA solver counted per dataset (key in ``settings["sampling"]``) and the text
#: of :attr:`PFBAPoint.message` that marks each.
SOLVER_NOTES = {"tie_break_vertex_kept": "tie-break (stage 4)", "growth_fix_loosened": "at the growth fix"}
#: Points per chunk. Fixed (not derived from the number of workers) so results never depend on it.
DEFAULT_CHUNK_SIZE = 400

#: The paper's training grid: glucose and oxygen uptake 0-20 mmol/gDW/h, step 0.1 (201 x 201 = 40,401).
PAPER_GRID: dict[str, tuple[float, float, float]] = {"glucose": (0.0, 20.0, 0.1), "oxygen": (0.0, 20.0, 0.1)}


class SamplingError(InputError):
    """Sample points or sampling options are invalid (empty grid, bad bounds, wrong names)."""


@dataclass(frozen=True, eq=False)
class SamplePoints:
    """Input points to sample, with their names and how they were generated.

    Attributes
    ----------
    names : tuple of str
        Input names, one per column (e.g. ``("glucose", "oxygen")``).
    values : ndarray, shape (n, k)
        Uptake rates in mmol/gDW/h.
    kind : str
        ``"grid"``, ``"lhs"`` or ``"given"``.
    spec : dict
        Json-serialisable generation parameters (axes, bounds, seed).
    shape : tuple of int or None
        Grid shape (one count per axis, first axis slowest) for ``kind == "grid"``.
    """

    names: tuple[str, ...]
    values: np.ndarray
    kind: str = "given"
    spec: dict[str, Any] = field(default_factory=dict)
    shape: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)

    def axis(self, name: str) -> np.ndarray:
        """Unique values along one grid axis (mmol/gDW/h)."""
        return np.unique(self.values[:, self.names.index(name)])


def _decimals(x: float) -> int:
    exp = Decimal(repr(float(x))).normalize().as_tuple().exponent
    return max(0, -int(exp)) if isinstance(exp, int) else 0


def _axis_values(name: str, spec: Any) -> np.ndarray:
    try:
        low, high, step = (float(v) for v in spec)
    except (TypeError, ValueError):
        raise SamplingError(f"The grid axis {name!r} must be (low, high, step) in mmol/gDW/h; got {spec!r}.") from None
    if not all(math.isfinite(v) for v in (low, high, step)):
        raise SamplingError(f"The grid axis {name!r} must have finite (low, high, step); got {spec!r}.")
    if low < 0:
        raise SamplingError(f"The grid axis {name!r} must start at a non-negative uptake (low >= 0); got low={low!r}.")
    if high < low:
        raise SamplingError(f"The grid axis {name!r} is empty: high ({high!r}) must be >= low ({low!r}).")
    if step <= 0:
        raise SamplingError(f"The grid axis {name!r} must have a positive step; got step={step!r}.")
    # integer counts so that float steps are exact: 0-20 step 0.1 gives 201 values, 0.3 is 0.3
    n = int(math.floor((high - low) / step + 1e-9)) + 1
    dec = min(max(_decimals(low), _decimals(step)), 15)
    vals = np.round(low + np.arange(n) * step, dec)
    return vals


def grid_points(axes: Mapping[str, Sequence[float]]) -> SamplePoints:
    """Regular grid over named inputs.

    Parameters
    ----------
    axes : mapping
        Input name -> ``(low, high, step)`` in mmol/gDW/h. ``high`` is included when it lies on
        the grid. Values are computed from integer counts and rounded to the decimals of ``low``
        and ``step``, so ``(0, 20, 0.1)`` gives exactly 0.0, 0.1, ..., 20.0 (201 values).

    Returns
    -------
    SamplePoints
        All combinations, first axis slowest; ``shape`` gives the counts per axis.

    Examples
    --------
    >>> pts = grid_points({"glucose": (0, 20, 0.1), "oxygen": (0, 20, 0.1)})
    >>> len(pts)
    40401
    """
    if not isinstance(axes, Mapping) or not axes:
        raise SamplingError(f"The 'axes' of a grid must be a non-empty mapping name -> (low, high, step); got {axes!r}.")
    names = tuple(str(k) for k in axes)
    vals = [_axis_values(n, axes[n]) for n in axes]
    mesh = np.meshgrid(*vals, indexing="ij")
    values = np.stack([m.ravel() for m in mesh], axis=1)
    spec = {"axes": {n: [float(x) for x in axes[n]] for n in axes}}
    return SamplePoints(names, values, "grid", spec, tuple(len(v) for v in vals))


def latin_hypercube_points(n: int, bounds: Mapping[str, Sequence[float]], seed: int = 0) -> SamplePoints:
    """Latin hypercube sample of ``n`` points inside a box of named inputs.

    Parameters
    ----------
    n : int
        Number of points (>= 1).
    bounds : mapping
        Input name -> ``(low, high)`` in mmol/gDW/h, 0 <= low <= high.
    seed : int
        Seed of the generator; the same seed gives the same points.
    """
    from scipy.stats import qmc

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise SamplingError(f"The number of Latin hypercube points 'n' must be a positive integer; got {n!r}.")
    if not isinstance(bounds, Mapping) or not bounds:
        raise SamplingError(f"The 'bounds' must be a non-empty mapping name -> (low, high); got {bounds!r}.")
    lows, highs = [], []
    for name, b in bounds.items():
        try:
            lo, hi = (float(v) for v in b)
        except (TypeError, ValueError):
            raise SamplingError(f"The bounds of {name!r} must be (low, high) in mmol/gDW/h; got {b!r}.") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or hi < lo:
            raise SamplingError(f"The bounds of {name!r} must be finite with 0 <= low <= high (mmol/gDW/h); got {b!r}.")
        lows.append(lo)
        highs.append(hi)
    sampler = qmc.LatinHypercube(d=len(lows), seed=np.random.default_rng(seed))
    unit = sampler.random(int(n))
    values = np.asarray(lows) + unit * (np.asarray(highs) - np.asarray(lows))
    spec = {"n": int(n), "bounds": {k: [float(x) for x in v] for k, v in bounds.items()}, "seed": int(seed)}
    return SamplePoints(tuple(str(k) for k in bounds), values, "lhs", spec)


def serpentine_order(values: np.ndarray, n_bins: int | None = None) -> np.ndarray:
    """Permutation visiting the points in a serpentine (boustrophedon) path.

    On a grid, the last input sweeps up and down while the earlier ones advance one step, so
    consecutive points are grid neighbours. Scattered points are first binned (about
    ``n ** (1/k)`` quantile bins per leading input) and sorted by value inside the last input.

    Parameters
    ----------
    values : ndarray, shape (n, k)
    n_bins : int, optional
        Bins per leading input for scattered points (default: about n ** (1/k)).
    """
    values = np.asarray(values, dtype=float)
    n, k = values.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    codes = []
    for j in range(k - 1):
        col = values[:, j]
        uniq, inv = np.unique(col, return_inverse=True)
        nb = n_bins or max(1, int(round(n ** (1.0 / k))))
        if len(uniq) > 2 * nb:  # scattered: quantile bins
            edges = np.quantile(col, np.linspace(0, 1, nb + 1)[1:-1])
            inv = np.searchsorted(edges, col, side="right")
        codes.append(inv.astype(np.int64))
    last = values[:, -1]
    # direction of each sweep flips with the parity of the prefix position
    prefix = np.zeros(n, dtype=np.int64)
    keys = []
    for j, code in enumerate(codes):
        nj = int(code.max()) + 1
        code_j = np.where(prefix % 2 == 0, code, nj - 1 - code)
        keys.append(code_j)
        prefix = prefix * nj + code_j
    last_key = np.where(prefix % 2 == 0, last, -last)
    order = np.lexsort([last_key, *reversed(keys)]) if keys else np.argsort(last_key, kind="stable")
    return order.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Chunk solving (runs in the caller, in pool workers, or on Dask workers)
# ---------------------------------------------------------------------------------------------
_LOCAL = threading.local()


def _solver_for(problem: PFBAProblem) -> PFBASolver:
    """A solver for this problem, cached per thread and reset to a cold state."""
    cached = getattr(_LOCAL, "solver", None)
    if cached is not None and cached.problem is problem:
        cached.reset()
        return cached
    solver = PFBASolver(problem)
    _LOCAL.solver = solver
    return solver


def _solve_chunk(problem: PFBAProblem, values: np.ndarray) -> dict[str, np.ndarray]:
    """Solve one chunk of points from a cold start; a failing point is recorded, never raised."""
    solver = _solver_for(problem)
    r = problem.n_reactions
    c = len(values)
    split = np.full((c, 2 * r), np.nan)
    growth = np.full(c, np.nan)
    status = np.full(c, STATUS_NAMES["failed"], dtype=np.int8)
    slacks = np.full((c, len(problem.slack_names)), np.nan)
    notes = np.zeros((c, len(SOLVER_NOTES)), dtype=bool)
    for i in range(c):
        pt = solver.solve_validated(values[i])  # points were validated by sample_pfba
        split[i] = pt.split_fluxes
        growth[i] = pt.growth
        status[i] = pt.status_code
        slacks[i] = pt.slacks
        for k, marker in enumerate(SOLVER_NOTES.values()):
            notes[i, k] = marker in pt.message
    return {"split": split, "growth": growth, "status": status, "slacks": slacks, "notes": notes}


_WORKER_PROBLEM: PFBAProblem | None = None


def _init_worker(problem: PFBAProblem) -> None:
    global _WORKER_PROBLEM
    _WORKER_PROBLEM = problem
    _exit_with_parent()


def _exit_with_parent(period_s: float = 1.0) -> None:
    """End this worker process when its parent dies (killed, even by SIGKILL): a daemon thread
    watches the parent pid, so no orphaned solver keeps running."""
    parent = os.getppid()

    def watch() -> None:
        import time

        while True:
            time.sleep(period_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="mpc_bio-parent-watch").start()


def _solve_chunk_in_worker(values: np.ndarray) -> dict[str, np.ndarray]:
    if _WORKER_PROBLEM is None:  # pragma: no cover - initializer always runs first
        raise RuntimeError("pFBA worker was not initialised with a problem")
    return _solve_chunk(_WORKER_PROBLEM, values)


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------
def _as_points(points: Any, names: tuple[str, ...]) -> tuple[np.ndarray, dict[str, Any]]:
    if isinstance(points, SamplePoints):
        if set(points.names) != set(names) or len(points.names) != len(names):
            raise SamplingError(f"The sample points name the inputs {list(points.names)}; the settings expect {list(names)}.")
        perm = [points.names.index(n) for n in names]
        values = np.asarray(points.values, dtype=float)[:, perm]
        meta = {"kind": points.kind, "spec": points.spec, "shape": list(points.shape) if points.shape else None}
    elif isinstance(points, Mapping):
        unknown = sorted(set(points) - set(names))
        missing = [n for n in names if n not in points]
        if unknown or missing:
            raise SamplingError(f"The sample points must name exactly {list(names)}; got unknown {unknown}, missing {missing}.")
        cols = [np.ravel(np.asarray(points[n], dtype=float)) for n in names]
        if len({len(c) for c in cols}) != 1:
            raise SamplingError(f"The sample point columns have different lengths: {[len(c) for c in cols]}.")
        values = np.stack(cols, axis=1)
        meta = {"kind": "given", "spec": {}, "shape": None}
    else:
        try:
            values = np.asarray(points, dtype=float)
        except (TypeError, ValueError):
            raise SamplingError(f"The sample points must be numbers in mmol/gDW/h; got {type(points).__name__}.") from None
        if values.ndim == 1 and len(names) == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[1] != len(names):
            raise SamplingError(
                f"The sample points must be an array of shape (n, {len(names)}) with columns {list(names)}; got shape {values.shape}."
            )
        meta = {"kind": "given", "spec": {}, "shape": None}
    if values.shape[0] == 0:
        raise SamplingError("The sample points are empty: expected at least one point; got 0.")
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise SamplingError(f"The sample points must be finite uptakes in mmol/gDW/h; point {int(i)} has {names[j]} = {values[i, j]!r}.")
    if (values < 0).any():
        i, j = np.argwhere(values < 0)[0]
        raise SamplingError(
            f"The sample points must be non-negative uptakes in mmol/gDW/h; point {int(i)} has {names[j]} = {values[i, j]!r}."
        )
    return np.ascontiguousarray(values), meta


def sample_pfba(
    model: Any,
    points: SamplePoints | np.ndarray | Mapping[str, Sequence[float]],
    settings: PFBASettings | None = None,
    *,
    n_workers: int | None = 1,
    scheduler: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
    checkpoint: str | Path | None = None,
) -> FluxDataset:
    """Solve the lexicographic split-flux pFBA at many input points.

    Parameters
    ----------
    model : cobra.Model, PFBAProblem, str or Path
        The model (never modified), or a bundled model name / file path.
    points : SamplePoints, ndarray (n, k) or mapping name -> values
        Uptake rates in mmol/gDW/h. Plain arrays have one column per input in settings order.
    settings : PFBASettings, optional
        Inputs, maintenance, relaxation and tolerances.
    n_workers : int or None
        Local worker processes; 1 solves in this process, None uses all cores.
        Ignored when ``scheduler`` is given.
    scheduler : str, optional
        Address of a Dask distributed scheduler (e.g. ``"tcp://10.0.0.5:8786"``); the same chunks
        are then solved on that cluster.
    chunk_size : int
        Points per chunk (each chunk starts cold, so the data do not depend on the workers).
    progress : bool
        Show a tqdm progress bar.
    checkpoint : str or Path, optional
        Folder where every solved chunk is written as it arrives. A later call with the same
        model, settings, points and chunk size loads the chunks found there and solves only the
        others (an interrupted run resumes; the dataset is the same as in one go); chunks of
        another job in the folder are discarded. The caller removes the folder when done.

    Returns
    -------
    FluxDataset
        Rows in the order of ``points``. Points whose solve failed have status ``"failed"``
        and NaN rows; they never stop the run.
    """
    from tqdm.auto import tqdm

    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise SamplingError(f"The 'chunk_size' parameter must be a positive integer; got {chunk_size!r}.")
    if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, (int, np.integer)) or n_workers < 1):
        raise SamplingError(f"The 'n_workers' parameter must be a positive integer or None (all cores); got {n_workers!r}.")
    if isinstance(model, PFBAProblem):
        problem = model
    else:
        problem = build_problem(model, settings)
    settings = problem.settings
    values, meta = _as_points(points, settings.input_names)
    n, r = values.shape[0], problem.n_reactions
    order = serpentine_order(values)
    chunks = [order[i : i + chunk_size] for i in range(0, n, chunk_size)]

    split = np.full((n, 2 * r), np.nan)
    growth = np.full(n, np.nan)
    status = np.full(n, STATUS_NAMES["failed"], dtype=np.int8)
    slacks = np.full((n, len(problem.slack_names)), np.nan)
    notes = np.zeros((n, len(SOLVER_NOTES)), dtype=bool)

    def store(idx: np.ndarray, res: dict[str, np.ndarray]) -> None:
        split[idx] = res["split"]
        growth[idx] = res["growth"]
        status[idx] = res["status"]
        slacks[idx] = res["slacks"]
        notes[idx] = res["notes"]

    pending = list(range(len(chunks)))
    if checkpoint is not None:
        saved = _ChunkStore(Path(checkpoint), _job_key(problem, values, chunk_size))
        for i in saved.done():
            store(chunks[i], saved.load(i))
        pending = [i for i in pending if i not in saved.done()]
        solved = store

        def store(idx: np.ndarray, res: dict[str, np.ndarray]) -> None:  # noqa: F811 - also kept on disk
            solved(idx, res)
            saved.save(first_row[int(idx[0])], res)

        first_row = {int(c[0]): i for i, c in enumerate(chunks)}
    todo = [chunks[i] for i in pending]
    workers = (os.cpu_count() or 1) if n_workers is None else int(n_workers)
    bar = tqdm(
        total=n, initial=n - sum(len(c) for c in todo), disable=not progress, unit="pt", desc=f"pFBA {problem.model_id}", smoothing=0.1
    )
    failed_chunks: list[tuple[int, str]] = []
    try:
        if not todo:
            pass
        elif scheduler is not None:
            _run_dask(scheduler, problem, values, todo, store, bar, failed_chunks)
        elif workers <= 1 or len(todo) == 1:
            for idx in todo:
                store(idx, _solve_chunk(problem, values[idx]))
                bar.update(len(idx))
            _LOCAL.solver = None  # release the HiGHS instances
        else:
            _run_pool(min(workers, len(todo)), problem, values, todo, store, bar, failed_chunks)
    finally:
        bar.close()
    if failed_chunks:
        # a worker crash (or a broken pool, e.g. a script without an `if __name__ == "__main__":`
        # guard) must not lose points: every chunk starts cold, so solving it here gives the same data
        hint = (
            "; worker processes start by re-importing the main script, so a script must call this under "
            '`if __name__ == "__main__":`, or pass n_workers=1'
            if "BrokenProcessPool" in failed_chunks[0][1]
            else ""
        )
        warnings.warn(
            f"{len(failed_chunks)} of {len(todo)} chunk(s) failed on the workers and are solved in this "
            f"process instead (first error: {failed_chunks[0][1]}){hint}",
            RuntimeWarning,
            stacklevel=2,
        )
        for i, _ in failed_chunks:
            try:
                store(todo[i], _solve_chunk(problem, values[todo[i]]))
            except Exception:  # pragma: no cover - the points stay recorded as failed
                pass

    counts = {name: int(c) for name, c in zip(SOLVER_NOTES, notes.sum(axis=0))}
    if any(counts.values()):
        warnings.warn(
            f"solver fallbacks among {n} points: {counts} (tie_break_vertex_kept: the l2 tie-break failed and "
            "the total-flux LP's vertex is kept; growth_fix_loosened: the total-flux LP was solved with "
            "growth 1e3 x growth_tolerance below a non-zero z*); recorded in settings['sampling']",
            RuntimeWarning,
            stacklevel=2,
        )
    fluxes = split[:, :r] - split[:, r:]
    run_settings = {
        "pfba": settings.to_dict(),
        "sampling": {**meta, "n_points": int(n), "chunk_size": int(chunk_size), "order": "serpentine", **counts},
        "solver": {"name": "highs", "highspy": _version("highspy")},
    }
    return FluxDataset(
        inputs=values,
        fluxes=fluxes,
        split_fluxes=split,
        growth=growth,
        status=status,
        slacks=slacks,
        input_names=settings.input_names,
        input_reactions=settings.input_reactions,
        reaction_ids=problem.reaction_ids,
        metabolite_ids=problem.metabolite_ids,
        slack_names=problem.slack_names,
        objective_id=problem.objective_id,
        stoichiometry=problem.stoichiometry,
        model_id=problem.model_id,
        model_hash=problem.model_hash,
        settings=run_settings,
    )


def _job_key(problem: PFBAProblem, values: np.ndarray, chunk_size: int) -> str:
    """What makes a sampling job: the model, the pFBA settings, the points and the chunking."""
    h = hashlib.sha256()
    h.update(json.dumps([problem.model_hash, problem.settings.to_dict(), int(chunk_size)], sort_keys=True).encode())
    h.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


class _ChunkStore:
    """Solved chunks of one sampling job in a folder: ``job.json`` names the job, ``chunk-<i>.npz``
    holds chunk i (written to a temporary name, then renamed, so a file is complete or absent)."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        meta = folder / "job.json"
        try:
            same = json.loads(meta.read_text()).get("key") == key
        except (OSError, ValueError):
            same = False
        if not same:  # another job's chunks (or none): start afresh
            for f in folder.glob("chunk-*.npz"):
                f.unlink()
            meta.write_text(json.dumps({"key": key}))
        self._done = {int(f.stem.split("-")[1]) for f in folder.glob("chunk-*.npz")}

    def done(self) -> set[int]:
        return set(self._done)

    def load(self, i: int) -> dict[str, np.ndarray]:
        with np.load(self.folder / f"chunk-{i:06d}.npz") as z:
            return {k: z[k] for k in z.files}

    def save(self, i: int, res: dict[str, np.ndarray]) -> None:
        tmp = self.folder / f"partial-{i:06d}.npz"
        np.savez(tmp, **res)
        os.replace(tmp, self.folder / f"chunk-{i:06d}.npz")
        self._done.add(i)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def _run_pool(workers, problem, values, chunks, store, bar, failed_chunks) -> None:
    import multiprocessing as mp
    from concurrent.futures import as_completed

    from mpc_bio.interrupts import worker_pool

    # spawn, not fork: HiGHS keeps worker threads that a forked child would inherit broken.
    # Interrupted (Ctrl-C, SIGTERM turned into an exception): the queued chunks are dropped and the
    # workers killed at once; every chunk stored so far is kept
    ctx = mp.get_context("spawn")
    with worker_pool(workers, mp_context=ctx, initializer=_init_worker, initargs=(problem,)) as ex:
        futs = {ex.submit(_solve_chunk_in_worker, values[idx]): i for i, idx in enumerate(chunks)}
        for fut in as_completed(futs):
            i = futs[fut]
            try:
                store(chunks[i], fut.result())
            except Exception as exc:  # a crashed chunk never stops the run
                failed_chunks.append((i, f"chunk {i}: {type(exc).__name__}: {exc}"))
            bar.update(len(chunks[i]))


def _run_dask(scheduler, problem, values, chunks, store, bar, failed_chunks) -> None:
    from dask.distributed import as_completed

    from mpc_bio.cluster import connect_scheduler

    client = connect_scheduler(scheduler, option="'scheduler' parameter")
    try:
        [problem_f] = client.scatter([problem], broadcast=True, hash=False)
        futs = [client.submit(_solve_chunk, problem_f, values[idx], pure=False) for idx in chunks]
        index = {f.key: i for i, f in enumerate(futs)}
        for fut in as_completed(futs, loop=client.loop):
            i = index[fut.key]
            try:
                store(chunks[i], fut.result())
            except Exception as exc:
                failed_chunks.append((i, f"chunk {i}: {type(exc).__name__}: {exc}"))
            bar.update(len(chunks[i]))
    finally:
        if client is not scheduler:
            client.close()
