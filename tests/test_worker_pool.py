"""`mpc_bio.interrupts.worker_pool`: a process pool whose workers die with the code using it."""

from __future__ import annotations

import math
import multiprocessing as mp
import time
from pathlib import Path

import pytest

from mpc_bio.interrupts import worker_pool


def test_worker_pool_returns_results_and_joins_its_workers():
    with worker_pool(2, mp_context=mp.get_context("fork")) as pool:
        futs = [pool.submit(math.sqrt, x) for x in (4.0, 9.0, 16.0)]
        procs = list(pool._processes.values())
    assert [f.result() for f in futs] == pytest.approx([2.0, 3.0, 4.0], rel=0, abs=0)
    assert procs and not any(p.is_alive() for p in procs)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_pool_left_by_an_interrupt_kills_running_workers(method):
    """Two workers each in a 600 s task and two tasks queued: leaving by KeyboardInterrupt kills
    the workers (their tasks never finish) and cancels the queue, without waiting for either."""
    with pytest.raises(KeyboardInterrupt):
        with worker_pool(2, mp_context=mp.get_context(method)) as pool:
            futs = [pool.submit(time.sleep, 600) for _ in range(4)]
            while sum(f.running() for f in futs) < 2:
                time.sleep(0.01)
            procs = list(pool._processes.values())
            raise KeyboardInterrupt
    assert len(procs) == 2, procs
    for p in procs:  # killed, not asked to finish: reaped at once unless the machine stalls
        p.join(60)
    # liveness from /proc: the pool's manager thread may reap a worker before Process.is_alive can
    assert not any(_running(p.pid) for p in procs), [p.pid for p in procs]
    assert not any(f.done() and not f.cancelled() and f.exception() is None for f in futs)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
