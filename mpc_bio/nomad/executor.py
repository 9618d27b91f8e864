"""Run a function over chunks of work: in-process, local processes, or a Dask cluster.

Local processes are the default for ``n_workers > 1``; when a Dask scheduler address is
given, chunks are submitted to that cluster instead (``dask.distributed.Client``). The function
and its arguments must be picklable (module-level functions, small frozen objects). Local workers
die with their parent (:func:`mpc_bio.interrupts.worker_pool`): an interrupt or an error cancels
the queued chunks and kills the workers instead of waiting for them.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from mpc_bio.nomad.settings import ExecutorSettings

__all__ = ["run_chunks", "run_timed_chunks", "ChunkTiming", "chunk_indices", "stage_chunk_size", "progress"]

#: Target number of chunks of a screening stage (:func:`stage_chunk_size`).
STAGE_CHUNKS = 64


def chunk_indices(index: Sequence[int] | np.ndarray, chunk_size: int) -> list[np.ndarray]:
    """Split ``index`` into consecutive chunks of at most ``chunk_size``."""
    index = np.asarray(index, dtype=int)
    if index.size == 0:
        return []
    return [index[k : k + chunk_size] for k in range(0, index.size, chunk_size)]


def stage_chunk_size(n_items: int, chunk_size: int) -> int:
    """Chunk size of a stage over ``n_items`` models: about :data:`STAGE_CHUNKS` chunks, at most ``chunk_size`` models each.

    It depends on the stage's size only, never on the number of workers, so a run resumed with
    other workers forms the same chunks and finds them in its checkpoint.
    """
    return max(1, min(int(chunk_size), -(-int(n_items) // STAGE_CHUNKS)))


@dataclass(frozen=True)
class ChunkTiming:
    """Worker time of the chunks of one :func:`run_timed_chunks` call.

    Attributes
    ----------
    n_chunks : int
    n_restored : int
        Chunks read from a checkpoint (finished by an earlier run).
    worker_seconds, cpu_seconds : float
        Wall and CPU time (s) summed over all chunks, those restored counted with the times
        recorded when they were computed.
    restored_worker_seconds, restored_cpu_seconds : float
        The part of ``worker_seconds`` and ``cpu_seconds`` (s) spent by an earlier run.
    """

    n_chunks: int = 0
    n_restored: int = 0
    worker_seconds: float = 0.0
    cpu_seconds: float = 0.0
    restored_worker_seconds: float = 0.0
    restored_cpu_seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "n_chunks": self.n_chunks,
            "n_chunks_restored": self.n_restored,
            "worker_seconds": self.worker_seconds,
            "cpu_seconds": self.cpu_seconds,
            "restored_worker_seconds": self.restored_worker_seconds,
            "restored_cpu_seconds": self.restored_cpu_seconds,
        }


class _Timed:
    """``func`` returning ``(result, wall s, CPU s)`` of its call; named after ``func`` (checkpoint keys and files)."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func
        self.__name__ = func.__name__
        self.__qualname__ = f"{func.__qualname__}[timed]"
        self.__module__ = func.__module__

    def __call__(self, item: Any) -> tuple[Any, float, float]:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        value = self.func(item)
        return value, time.perf_counter() - wall0, time.process_time() - cpu0


def run_timed_chunks(
    func: Callable[[Any], Any], items: Sequence[Any], settings: ExecutorSettings | None = None, desc: str = "nomad"
) -> tuple[list[Any], ChunkTiming]:
    """:func:`run_chunks` that also returns the worker time of the chunks, restored ones included.

    Every chunk's wall and CPU time is measured where it runs and kept with its result (also in
    a checkpoint), so a resumed run reports the time its restored chunks took when they were
    computed, beside the count of restored chunks.

    Returns
    -------
    results : list
        ``[func(item) for item in items]``.
    timing : ChunkTiming
    """
    items = list(items)
    fresh: set[int] = set()
    parts = run_chunks(_Timed(func), items, settings, desc, on_result=lambda k, _res: fresh.add(k))
    restored = [k for k in range(len(items)) if k not in fresh]
    timing = ChunkTiming(
        n_chunks=len(items),
        n_restored=len(restored),
        worker_seconds=float(sum(p[1] for p in parts)),
        cpu_seconds=float(sum(p[2] for p in parts)),
        restored_worker_seconds=float(sum(parts[k][1] for k in restored)),
        restored_cpu_seconds=float(sum(parts[k][2] for k in restored)),
    )
    return [p[0] for p in parts], timing


def progress(iterable, show: bool, desc: str, total: int | None = None):
    """``iterable`` behind a tqdm progress bar labelled ``desc``, hidden unless ``show`` (also a bar
    to ``update`` by hand when ``iterable`` is None)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=not show, leave=False)


def run_chunks(
    func: Callable[[Any], Any],
    items: Sequence[Any],
    settings: ExecutorSettings | None = None,
    desc: str = "nomad",
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``[func(item) for item in items]``, in order, possibly in parallel.

    Parameters
    ----------
    func : callable
        Module-level function of one argument.
    items : sequence
        Work items (e.g. sub-ensembles).
    settings : ExecutorSettings, optional
        ``scheduler`` (Dask address) wins over ``n_workers`` (local processes); ``n_workers=1`` runs here.
    desc : str
        Progress-bar label.
    on_result : callable, optional
        Called in this process as ``on_result(k, result)`` as soon as item k's result arrives (in
        completion order), e.g. to write it to disk so finished chunks survive a later failure
        (not for the items read from a checkpoint).

    Notes
    -----
    Inside :func:`mpc_bio.nomad.checkpoint.chunk_checkpoint`, items finished by an earlier run are
    read from the checkpoint instead of computed, and every new result is written there as it
    arrives (unless a Ctrl-C / SIGTERM came first: then ``KeyboardInterrupt`` is raised).
    """
    settings = settings or ExecutorSettings()
    items = list(items)
    from mpc_bio.nomad.checkpoint import active_checkpoint

    cp = active_checkpoint()
    if cp is None:
        return _run(func, items, settings, desc, on_result)
    from mpc_bio.interrupts import check_interrupt

    out: list[Any] = [None] * len(items)
    keys = [cp.key(func, it) for it in items]
    todo = []
    for k, key in enumerate(keys):
        found, value = cp.load(func, key)
        if found:
            out[k] = value
        else:
            todo.append(k)

    def keep(j: int, res: Any) -> None:
        check_interrupt()  # a result that arrives after a signal may hold a model failed by it
        cp.save(func, keys[todo[j]], res)
        if on_result is not None:
            on_result(todo[j], res)

    for k, res in zip(todo, _run(func, [items[k] for k in todo], settings, desc, keep)):
        out[k] = res
    return out


def _run(func: Callable[[Any], Any], items: list[Any], settings: ExecutorSettings, desc: str, on_result) -> list[Any]:
    """:func:`run_chunks` without the checkpoint."""
    out: list[Any] = [None] * len(items)
    if not items:
        return out
    with progress(None, settings.progress, desc, len(items)) as bar:

        def done(k: int, res: Any) -> None:
            out[k] = res
            if on_result is not None:
                on_result(k, res)
            bar.update(1)

        if settings.scheduler:
            from dask.distributed import as_completed

            from mpc_bio.cluster import connect_scheduler

            client = connect_scheduler(settings.scheduler, option="[nomad.executor] scheduler")
            try:
                futures = client.map(func, items, pure=False)
                pos = {f.key: k for k, f in enumerate(futures)}
                for fut in as_completed(futures, loop=client.loop):
                    done(pos[fut.key], fut.result())
            finally:
                client.close()
        elif settings.n_workers == 1 or len(items) == 1:
            for k, it in enumerate(items):
                done(k, func(it))
        else:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
            from concurrent.futures import as_completed as cf_completed

            from mpc_bio.interrupts import worker_pool

            with worker_pool(min(settings.n_workers, len(items)), mp_context=ctx) as pool:
                futures = {pool.submit(func, it): k for k, it in enumerate(items)}
                for fut in cf_completed(futures):
                    done(futures[fut], fut.result())
    return out
