"""Stopped verifications and experiments resume where they stopped and give the same result.

In-process: :func:`~mpc_bio.nomad.verification.verify_strains` inside a
:func:`~mpc_bio.nomad.checkpoint.chunk_checkpoint` keeps every finished strain x model; stopped
part way, the same call computes only the others and returns what an uninterrupted call returns.
Subprocess: ``mpc-bio nomad experiment closeness`` stopped by SIGINT once its first verification
simulation is kept says so in one line; its NRA enumerations stay in the ensemble's design cache
and the same command resumes and writes the same result (equal file hashes) without redoing the
kept simulations.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import mpc_bio.nomad.verification as verification
from mpc_bio.nomad.checkpoint import checkpoint_dir, chunk_checkpoint
from mpc_bio.nomad.nra_settings import VerificationSettings
from mpc_bio.nomad.verification import verify_strains
from tests.signals import CLI


def _fields(res) -> list:
    """Everything a verification computes (its wall time aside)."""
    return [
        res.product,
        res.biomass,
        res.substrate,
        res.volume,
        res.product_yield,
        res.success,
        res.messages,
        res.failure,
        res.readout_times,
    ]


def test_a_stopped_verification_resumes_from_its_kept_simulations(tmp_path, small_ensemble, stable_models, monkeypatch):
    """2 strains x 2 models = 4 simulations; the run stops in the third (2 kept); the resumed run
    reads those 2, simulates the other 2 and returns exactly (rel 0, abs 0) what an uninterrupted run returns."""
    net = small_ensemble.network
    fold = np.ones((2, net.n_reactions))
    fold[:, net.reaction_index("DDPA")] = 1.3
    args = (small_ensemble, stable_models[:2], {"d": fold})
    vs = VerificationSettings(batch_time=3.0, n_points=7)
    reference = verify_strains(*args, settings=vs)
    real, calls = verification.simulate_reactor, []

    def stopped_at_the_third(*a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("stopped in the third simulation")
        return real(*a, **kw)

    monkeypatch.setattr(verification, "simulate_reactor", stopped_at_the_third)
    with pytest.raises(KeyboardInterrupt), chunk_checkpoint(tmp_path / "ck") as cp:
        verify_strains(*args, settings=vs)
    assert cp.n_written == 2 and cp.n_kept() == 2
    calls.clear()
    monkeypatch.setattr(verification, "simulate_reactor", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    with chunk_checkpoint(tmp_path / "ck") as cp:
        resumed = verify_strains(*args, settings=vs)
    assert len(calls) == 2 and cp.n_reused == 2 and cp.n_written == 2
    assert resumed.strains == reference.strains
    for a, b in zip(_fields(resumed), _fields(reference)):
        np.testing.assert_array_equal(a, b)


TOML = """
[nomad]
output_dir = "{ens}"

[nomad.design]
max_models = 2
n_workers = 1
progress = false

[nomad.design.nra]
max_interventions = 2
max_designs = 2
"""

#: closeness groups (4) + MCA + reference = 6 strains x 2 models
N_SIMULATIONS = 12


def _ensemble_copy(ensemble_dir: Path, to: Path) -> Path:
    """The ensemble output without its design cache: each run below enumerates its NRA itself."""
    for name in ("ensemble", "control_coefficients"):
        shutil.copytree(ensemble_dir / name, to / name)
    return to


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _untimed(path: Path) -> dict:
    s = json.loads(path.read_text())
    s.pop("seconds")
    s.pop("seconds_total")
    return s


@pytest.mark.slow
def test_sigint_in_the_closeness_experiment_keeps_its_work_and_the_same_command_resumes(ensemble_dir, tmp_path, monkeypatch, capsys):
    """SIGINT once the first verification simulation is kept: exit 130, one line naming what was
    kept, no output folder, the NRA enumerations (4 bounds x 2 models) in the design cache.
    The same command resumes: it says so, reads every kept simulation (none redone: it simulates
    exactly the missing ones), removes the checkpoint and writes the output of an uninterrupted run
    (equal file hashes; closeness.json without its timings)."""
    from mpc_bio.cli import main

    ref_ens = _ensemble_copy(ensemble_dir, tmp_path / "ens_ref")
    ens = _ensemble_copy(ensemble_dir, tmp_path / "ens")
    opts = ["--no-progress", "--no-figures", "--folds", "2", "3", "10", "20", "--batch-time", "8"]
    for d in (ref_ens, ens):
        (d.parent / f"{d.name}.toml").write_text(TOML.format(ens=str(d)))
    ref = tmp_path / "reference"
    assert main(["nomad", "experiment", "closeness", str(tmp_path / "ens_ref.toml"), "--out", str(ref), *opts]) == 0

    out = tmp_path / "resumed"
    args = ["nomad", "experiment", "closeness", str(tmp_path / "ens.toml"), "--out", str(out), *opts]
    ckpt = checkpoint_dir(out)
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 900.0  # guards a hang; not a speed limit
    while not list(ckpt.glob("simulate_strain-*.pkl")):
        assert proc.poll() is None, f"the run ended before a simulation was kept: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "no verification simulation was kept"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 130, err[-2000:]
    kept = sorted(p.name for p in ckpt.glob("simulate_strain-*.pkl"))
    assert 1 <= len(kept) < N_SIMULATIONS and not out.exists()
    last = err.strip().splitlines()[-1]
    assert last.startswith("mpc-bio nomad: interrupted (SIGINT)"), last
    assert f"{len(kept)} finished verification / sensitivity task(s) in {ckpt}" in last
    assert len(list((ens / ".design_cache").glob("enumerate_model_designs-*.pkl"))) == 8  # 4 bounds x 2 models

    real, calls = verification._simulate_strain, []

    @functools.wraps(real)  # the same name: the same checkpoint keys
    def counted(task):
        calls.append(1)
        return real(task)

    monkeypatch.setattr(verification, "_simulate_strain", counted)
    capsys.readouterr()
    assert main(args) == 0
    assert f"resuming: {len(kept)} finished chunk(s) of a stopped run in {ckpt}" in capsys.readouterr().out
    assert len(calls) == N_SIMULATIONS - len(kept)
    assert not ckpt.exists()
    assert _hash(out / "closeness_verification.csv") == _hash(ref / "closeness_verification.csv")
    assert _untimed(out / "closeness.json") == _untimed(ref / "closeness.json")
