"""The executor: in-process, local processes and a Dask cluster give the same results in order."""

from __future__ import annotations

import numpy as np

from mpc_bio.nomad.executor import chunk_indices, run_chunks
from mpc_bio.nomad.mca import linearize_ensemble
from mpc_bio.nomad.screening import linearize_parallel
from mpc_bio.nomad.settings import ExecutorSettings


def _square(x):
    return x * x


def test_local_processes_keep_order():
    items = list(range(7))
    assert run_chunks(_square, items, ExecutorSettings(n_workers=2, progress=False)) == [i * i for i in items]
    assert [c.tolist() for c in chunk_indices(np.arange(5), 2)] == [[0, 1], [2, 3], [4]]


def test_parallel_linearisation_matches_serial(small_ensemble):
    serial = linearize_ensemble(small_ensemble)
    par = linearize_parallel(small_ensemble, ExecutorSettings(n_workers=2, chunk_size=50, progress=False))
    np.testing.assert_array_equal(par.model_index, serial.model_index)
    np.testing.assert_allclose(par.max_real, serial.max_real, rtol=1e-12, atol=0)


def test_dask_scheduler(small_ensemble):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        ex = ExecutorSettings(scheduler=cluster.scheduler_address, chunk_size=40, progress=False)
        par = linearize_parallel(small_ensemble, ex)
    serial = linearize_ensemble(small_ensemble)
    np.testing.assert_allclose(par.max_real, serial.max_real, rtol=1e-12, atol=0)
