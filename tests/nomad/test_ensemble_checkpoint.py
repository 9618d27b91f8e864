"""Checkpoints inside the ensemble stage: finished chunks of work are kept and a stopped run resumes.

In-process: :func:`~mpc_bio.nomad.executor.run_chunks` inside
:func:`~mpc_bio.nomad.checkpoint.chunk_checkpoint` keeps every finished item, a run stopped part
way resumes from them, computes only the rest and returns the same results; a result that comes
after a signal is not kept. Subprocess: ``mpc-bio nomad ensemble`` stopped by SIGINT once its
first stage-(iv) chunk is kept says so in one line, and the same command resumes and writes the
same ensemble (equal file hashes) without redoing the kept chunks.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from mpc_bio.interrupts import catch_interrupts
from mpc_bio.nomad.checkpoint import chunk_checkpoint, checkpoint_dir, content_key
from mpc_bio.nomad.executor import run_chunks
from mpc_bio.nomad.settings import ExecutorSettings
from tests.signals import CLI

CALLS: list[int] = []
#: run the chunks in this process (CALLS records them)
HERE = ExecutorSettings(n_workers=1, progress=False)


def _square_sum(item):
    """A chunk of work: (first number, sum of squares), recorded in CALLS; item 13 stops the run."""
    start, values = item
    CALLS.append(start)
    if start == 13:
        raise KeyboardInterrupt("stopped at the chunk starting at 13")
    return start, float(np.sum(np.asarray(values) ** 2))


def _items(stop_at: int | None = None) -> list:
    rng = np.random.default_rng(4)
    values = rng.normal(size=30)
    return [(k if k != 12 or stop_at is None else 13, values[k : k + 6]) for k in range(0, 30, 6)]


def test_a_stopped_chunk_run_resumes_from_its_kept_chunks_and_equals_an_uninterrupted_run(tmp_path):
    """5 chunks; the run stops at the third (items 0, 6 finished and kept); the resumed run reads
    those 2, computes the other 3 and returns what an uninterrupted run returns (exactly: rel 0, abs 0)."""
    reference = run_chunks(_square_sum, _items(), HERE)
    CALLS.clear()
    with pytest.raises(KeyboardInterrupt), chunk_checkpoint(tmp_path / "ck") as cp:
        run_chunks(_square_sum, _items(stop_at=13), HERE)
    assert CALLS == [0, 6, 13] and cp.n_written == 2 and cp.n_kept() == 2
    CALLS.clear()
    with chunk_checkpoint(tmp_path / "ck") as cp:
        resumed = run_chunks(_square_sum, _items(), HERE)
    assert CALLS == [12, 18, 24]  # the kept chunks 0 and 6 were not redone
    assert cp.n_reused == 2 and cp.n_written == 3 and cp.n_kept() == 5
    assert resumed == reference  # exact: the kept results are the objects computed then
    # an item with other inputs has another key and is computed anew; other settings too
    changed = _items()
    changed[1] = (6, changed[1][1] + 1e-12)
    CALLS.clear()
    with chunk_checkpoint(tmp_path / "ck") as cp:
        run_chunks(_square_sum, changed, HERE)
    assert CALLS == [6] and cp.n_reused == 4


def test_content_key_is_the_content():
    """Equal arrays / dataclass fields give equal keys; one bit, another dtype or another function give others."""
    a = ExecutorSettings(n_workers=1, chunk_size=20)
    x = np.linspace(0.0, 1.0, 7)
    assert content_key((a, x)) == content_key((ExecutorSettings(n_workers=1, chunk_size=20), x.copy()))
    assert content_key((a, x)) != content_key((ExecutorSettings(n_workers=1, chunk_size=21), x))
    y = x.copy()
    y[3] = np.nextafter(y[3], 2.0)
    assert content_key(x) != content_key(y)
    assert content_key(x) != content_key(x.astype(np.float32))
    assert content_key(x, _square_sum) != content_key(x, run_chunks)
    assert content_key({"b", "a"}) == content_key(frozenset({"a", "b"}))


def _swallowing(item):
    """A solver that turns Ctrl-C into a failed result (as IPOPT and CVODES do)."""
    if item == 2:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)  # the handler raises here
        except KeyboardInterrupt:
            return "failed"
    return "ok"


def test_a_result_after_a_signal_is_not_kept(tmp_path):
    """Item 2's solver swallows the interrupt and returns a failure: that result is not kept, the
    run stops (KeyboardInterrupt) and only the results before the signal are in the checkpoint."""
    with pytest.raises(KeyboardInterrupt), catch_interrupts(), chunk_checkpoint(tmp_path / "ck") as cp:
        run_chunks(_swallowing, [0, 1, 2, 3], HERE)
    assert cp.n_written == 2 and cp.n_kept() == 2


SMALL = """
[nomad]
output_dir = "unused"
[nomad.network]
model = "core_shikimate"
[nomad.steady_state]
n_states = 4
[nomad.sampling]
n_models = 60
seed = 2
[nomad.executor]
n_workers = {workers}
chunk_size = 20
progress = false
"""

#: files whose content carries timings (compared without them)
TIMED = ("summary.json", "funnel.csv")


def _hashes(out: Path) -> dict[str, str]:
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name not in TIMED)
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _untimed_summary(out: Path) -> dict:
    s = json.loads((out / "summary.json").read_text())
    s.pop("seconds")
    s["settings"].pop("output_dir")
    for row in s["funnel"]:
        for k in [k for k in row if "second" in k or "per_s" in k]:
            row.pop(k)
    return s


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=1800)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigint_inside_the_ensemble_stage_keeps_its_chunks_and_the_same_command_resumes(tmp_path, workers):
    """SIGINT once the first stage-(iv) chunk is kept: exit 130, one line naming the chunks kept,
    no output folder. The same command resumes: it reads every kept chunk (none redone: the chunks
    written by the resumed run are exactly the ones missing), removes the checkpoint and writes an
    output equal to an uninterrupted run's (file hashes; summary.json without its timings)."""
    cfg = tmp_path / "nomad.toml"
    cfg.write_text(SMALL.format(workers=workers))
    args = ["nomad", "ensemble", "--config", str(cfg), "--no-progress", "--no-figures"]
    ref = tmp_path / "reference"
    done = _run([*args, "--out", str(ref)])
    assert done.returncode == 0, done.stderr[-2000:]
    n_chunks = int(done.stdout.split("work chunks: ")[1].split()[0])
    assert "work chunks: " + f"{n_chunks} computed, 0 read" in done.stdout
    out = tmp_path / "resumed"
    ckpt = checkpoint_dir(out)
    assert ckpt == tmp_path / ".resumed.checkpoint"
    proc = subprocess.Popen([*CLI, *args, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 900.0  # guards a hang; not a speed limit
    while not list(ckpt.glob("robust_chunk-*.pkl")):
        assert proc.poll() is None, f"the run ended before a stage-(iv) chunk was kept: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "no stage-(iv) chunk was kept"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 130, err[-2000:]
    lines = err.strip().splitlines()
    kept = sorted(p.name for p in ckpt.glob("*.pkl"))
    assert lines[-1].startswith("mpc-bio nomad: interrupted (SIGINT)") and f"{len(kept)} finished chunk(s) kept in {ckpt}" in lines[-1]
    assert not out.exists() and 3 + 1 <= len(kept)  # the 3 linearisation chunks, >= 1 of stage (iv)
    second = _run([*args, "--out", str(out)])
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"resuming: {len(kept)} finished chunk(s)" in second.stdout
    assert f"work chunks: {n_chunks - len(kept)} computed, {len(kept)} read from the checkpoint" in second.stdout
    assert not ckpt.exists()
    assert _hashes(out) == _hashes(ref)
    assert _untimed_summary(out) == _untimed_summary(ref)


def _call(item):
    return item[0](item[1])


def test_items_that_cannot_be_pickled_are_computed_each_time(tmp_path):
    """A lambda in an item (in-process runs accept it) gives a key no later run has: computed again, never wrong."""
    items = [(lambda x: 2 * x, 1.5), (abs, -2.0)]
    with chunk_checkpoint(tmp_path / "ck") as cp:
        assert run_chunks(_call, items, HERE) == [3.0, 2.0]
    with chunk_checkpoint(tmp_path / "ck") as again:
        assert run_chunks(_call, items, HERE) == [3.0, 2.0]
    assert (cp.n_written, again.n_reused, again.n_written) == (2, 1, 1)
