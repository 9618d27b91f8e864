"""The streamed funnel: the same models, counts and survivors as screening the whole ensemble at once;
chunk size, workers and resuming from the chunk files change nothing."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.nomad.funnel import run_funnel
from mpc_bio.nomad.screening import screen_ensemble
from mpc_bio.nomad.settings import ExecutorSettings, NomadSettingsError, SamplingSettings, ScreeningSettings

SETTINGS = ScreeningSettings(n_perturbations=1, n_robustness=1)
SAMPLING = SamplingSettings(n_models=120, seed=3)  # the small_ensemble fixture's population


@pytest.fixture(scope="module")
def whole(small_ensemble):
    return screen_ensemble(small_ensemble, SETTINGS, ExecutorSettings(n_workers=1, progress=False))


@pytest.fixture(scope="module")
def streamed(small_ensemble):
    return run_funnel(
        small_ensemble.network, small_ensemble.states, SAMPLING, SETTINGS, ExecutorSettings(n_workers=2, chunk_size=50, progress=False)
    )


def test_streamed_funnel_equals_screening_the_whole_ensemble(small_ensemble, whole, streamed):
    """Counts per stage, survivors, eigenvalues (rel 1e-12, abs 0) and stage (iii)/(iv) values are identical."""
    f = streamed.funnel()
    assert [r["name"] for r in f] == ["sampling", "linear_stability", "time_constant", "nonlinear_return", "robustness"]
    assert f[0]["n_in"] == f[0]["n_out"] == 120 and streamed.n_sampled == 120
    for row, stage in zip(f[1:], whole.stages):
        assert (row["n_in"], row["n_out"]) == (stage.n_in, stage.n_out)
        assert row["models_per_s"] is None or row["models_per_s"] > 0
    for name in ("time_constant", "robustness"):
        assert np.array_equal(np.sort(streamed.survivors[name]), np.sort(whole.passed[name]))
    assert np.array_equal(np.sort(streamed.survivors["stage_iii"]), np.sort(whole.passed["nonlinear_return"]))
    np.testing.assert_allclose(streamed.max_real, whole.linear.max_real, rtol=1e-12, atol=0.0)
    assert streamed.return_deviation == whole.return_deviation
    assert streamed.robustness_growth == whole.robustness_growth
    assert streamed.n_stable == int(np.sum(whole.linear.max_real < 0))
    sub = streamed.survivor_ensemble("time_constant")
    ref = small_ensemble.subset(np.sort(whole.passed["time_constant"]))
    assert np.array_equal(sub.km, ref.km) and np.array_equal(sub.vmax, ref.vmax)
    s = streamed.summary()
    assert s["models_sampled"] == 120 and s["stable_fraction"] == pytest.approx(streamed.n_stable / 120, rel=1e-12, abs=0.0)


def test_chunk_files_resume_and_partial_reads(tmp_path, small_ensemble, streamed):
    net, st = small_ensemble.network, small_ensemble.states
    ex = ExecutorSettings(n_workers=1, chunk_size=40, progress=False)
    first = run_funnel(net, st, SAMPLING, SETTINGS, ex, out_dir=tmp_path)
    chunks = sorted((tmp_path / "chunks").glob("chunk_*.npz"))
    assert len(chunks) == 3 and first.n_chunks_resumed == 0
    assert first.counts == streamed.counts
    # a run stopped after two chunks: the read-only summary counts those two
    for suffix in (".npz", ".json"):
        chunks[1].with_suffix(suffix).unlink()
    part = run_funnel(net, st, SAMPLING, SETTINGS, ex, out_dir=tmp_path, read_only=True)
    assert part.n_sampled == 80 and part.n_chunks_resumed == 2
    assert part.counts["linear_stability"][1] == int(np.sum(streamed.max_real[np.r_[0:40, 80:120]] < 0))
    # running again computes only the missing chunk and gives the whole result
    again = run_funnel(net, st, SAMPLING, SETTINGS, ex, out_dir=tmp_path)
    assert again.n_chunks_resumed == 2 and again.counts == streamed.counts
    assert np.array_equal(np.sort(again.final), np.sort(streamed.final))
    # the population size is not part of the settings: its first chunks read back as a smaller run
    small = run_funnel(net, st, SamplingSettings(n_models=80, seed=3), SETTINGS, ex, out_dir=tmp_path, read_only=True)
    assert small.n_sampled == 80 and small.counts["linear_stability"][1] == int(np.sum(streamed.max_real[:80] < 0))
    # other settings in the same directory are refused
    with pytest.raises(NomadSettingsError, match="other settings"):
        run_funnel(net, st, SamplingSettings(n_models=120, seed=4), SETTINGS, ex, out_dir=tmp_path)
    with pytest.raises(NomadSettingsError, match="out_dir"):
        run_funnel(net, st, SAMPLING, SETTINGS, ex, read_only=True)


def _square(x):
    return x * x


def test_on_result_sees_every_chunk_in_each_executor():
    from mpc_bio.nomad.executor import run_chunks

    for ex in (ExecutorSettings(n_workers=1, progress=False), ExecutorSettings(n_workers=2, progress=False)):
        seen = {}
        out = run_chunks(_square, list(range(6)), ex, on_result=lambda k, r: seen.__setitem__(k, r))
        assert out == [i * i for i in range(6)] and seen == dict(enumerate(out))


def test_funnel_on_a_dask_cluster_writes_the_same_chunks(tmp_path, small_ensemble, streamed):
    """Stages (i)-(ii) through a Dask scheduler address: same counts and eigenvalues (rel 1e-12, abs 0)."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        ex = ExecutorSettings(scheduler=cluster.scheduler_address, chunk_size=40, progress=False)
        res = run_funnel(small_ensemble.network, small_ensemble.states, SAMPLING, SETTINGS, ex, out_dir=tmp_path, stages=2)
    assert len(list((tmp_path / "chunks").glob("chunk_*.json"))) == 3
    for k in ("sampling", "linear_stability", "time_constant"):
        assert res.counts[k] == streamed.counts[k]
    assert "stage_iii" not in res.counts and [r["name"] for r in res.funnel()][-1] == "time_constant"
    np.testing.assert_allclose(res.max_real, streamed.max_real, rtol=1e-12, atol=0.0)
    assert np.array_equal(np.sort(res.final), np.sort(streamed.survivors["time_constant"]))


def test_wall_segments_of_a_stopped_and_resumed_run(tmp_path, small_ensemble):
    """A pause between sessions is left out of the wall time: spans split at gaps > max_gap (s)."""
    import json

    net, st = small_ensemble.network, small_ensemble.states
    ex = ExecutorSettings(n_workers=1, chunk_size=40, progress=False)
    run_funnel(net, st, SAMPLING, SETTINGS, ex, out_dir=tmp_path, stages=2)
    # the last chunk finished an hour later, as if the run had been stopped and resumed
    last = tmp_path / "chunks" / "chunk_0000000080.json"
    meta = json.loads(last.read_text())
    assert len(meta["load_avg"]) == 3 and min(meta["load_avg"]) >= 0.0
    meta["finished_unix"] += 3600.0
    last.write_text(json.dumps(meta))
    res = run_funnel(net, st, SAMPLING, SETTINGS, ex, out_dir=tmp_path, stages=2, read_only=True)
    segs = res.wall_segments(max_gap=600.0)
    assert [s["n_chunks"] for s in segs] == [2, 1] and [s["n_models"] for s in segs] == [80, 40]
    started = json.loads((tmp_path / "funnel_manifest.json").read_text())["started_unix"]
    assert segs[0]["start_unix"] == started  # the first span starts with the run (exact)
    # a resumed span starts when its first chunk started: a one-chunk span lasts its worker wall time
    chunk_wall = sum(w for w, _ in meta["times"].values())
    assert segs[1]["wall_s"] == pytest.approx(chunk_wall, rel=1e-9, abs=1e-6)  # unix-time resolution ~2e-7 s
    assert segs[1]["load_avg_1min"]["n_chunks"] == 1 and segs[1]["load_avg_1min"]["mean"] == meta["load_avg"][0]
    # span_seconds counts the pause, the spans do not (rel 1e-9, abs 1e-6 s)
    assert res.span_seconds == pytest.approx(segs[1]["end_unix"] - started, rel=1e-9, abs=1e-6)
    assert res.span_seconds - sum(s["wall_s"] for s in segs) > 3600.0 - 600.0
    assert res.summary()["wall_segments"] == segs


def test_clock_times_wall_and_cpu():
    """Sleeping takes wall time and no CPU of this thread; a busy loop in this thread takes both.

    The clock reads the process's CPU time (all threads), so other threads (BLAS, libtorch) may add
    to it: the reference is this thread's own CPU time, which neither clock can be below.
    """
    import time

    from mpc_bio.nomad.funnel import Clock

    with Clock() as idle:
        time.sleep(0.05)
    assert idle.wall >= 0.05
    with Clock() as busy:
        c0 = time.thread_time()
        while time.thread_time() - c0 < 0.02:
            pass
        spun = time.thread_time() - c0
    # clock resolutions: abs 1e-3 s
    assert busy.cpu >= spun - 1e-3 and busy.wall >= spun - 1e-3
