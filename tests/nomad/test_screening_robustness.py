"""Stage (iv) decided early: each Vmax draw stops once its biomass produced reaches the fraction.

Against an independent implementation of the plain screen (every draw one CVODES run over the
whole batch, the model's loop stopped at the first failing draw): the same models pass, a failing
model's growth fraction agrees and a passing model's value is a lower bound between the fraction
and the plain screen's, to rel 3e-2, abs 1e-6. That tolerance is the plain screen's own
uncertainty: CVODES restarts at the check times, and the final biomass of one of these draws
(model 5, first draw) spreads over 1.007-1.029 gDW/L across CVODES tolerances 1e-7 to 1e-10 (the
6-h reference batches of these models: rel 3e-4). Models within that tolerance of the fraction are
left out of the pass/fail comparison. Stage chunks do not depend on the number of workers, and a
resumed stage reports the time its restored chunks took.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mpc_bio.nomad.checkpoint import chunk_checkpoint
from mpc_bio.nomad.executor import STAGE_CHUNKS, stage_chunk_size
from mpc_bio.nomad.reactor import batch_biomass_gain, simulate_batch
from mpc_bio.nomad.screening import robustness_duration, screen_ensemble, screen_robustness
from mpc_bio.nomad.settings import ExecutorSettings, ScreeningSettings

QUIET = ExecutorSettings(n_workers=1, progress=False)
#: a 6-h batch (the glucose runs out), wide Vmax draws and a strict fraction: some models pass, some fail
SETTINGS = ScreeningSettings(nonlinear_check="perturbation", batch_time=6.0, n_robustness=4, vmax_cv=0.3, min_growth_fraction=0.9)
REL, ABS = 3e-2, 1e-6


def _plain_robustness(ens, models, s: ScreeningSettings) -> dict[int, float]:
    """Stage (iv) without early decisions: the reference and every draw integrated over the whole batch."""
    duration = robustness_duration(ens, s)
    out = {}
    for m in models:
        rng = np.random.default_rng([s.seed, int(m), 4])
        ref = simulate_batch(ens, int(m), duration, s.biomass0, n_points=2)
        gained = ref.biomass[-1] - ref.biomass[0]
        worst = np.inf
        for _ in range(s.n_robustness):
            fold = np.maximum(rng.normal(1.0, s.vmax_cv, size=ens.network.n_reactions), 0.01)
            sim = simulate_batch(ens, int(m), duration, s.biomass0, vmax_fold=fold, n_points=2)
            worst = min(worst, (sim.biomass[-1] - sim.biomass[0]) / gained if sim.success else 0.0)
            if worst < s.min_growth_fraction:
                break
        out[int(m)] = float(worst)
    return out


def test_early_decisions_pass_the_same_models_as_the_plain_screen(small_ensemble, stable_models):
    models = stable_models[:12]
    plain = _plain_robustness(small_ensemble, models, SETTINGS)
    passed, growth = screen_robustness(small_ensemble, models, SETTINGS, QUIET)
    f = SETTINGS.min_growth_fraction
    clear = {m for m, g in plain.items() if abs(g - f) > REL * f}
    assert len(clear) >= len(models) - 1
    assert {int(m) for m in passed} & clear == {m for m in clear if plain[m] >= f}
    assert 0 < len(passed) < len(models)  # the settings give both outcomes
    for m, g in plain.items():
        if growth[m] >= f:
            assert growth[m] <= g * (1 + REL) + ABS
        else:
            assert growth[m] == pytest.approx(g, rel=REL, abs=ABS)


def test_batch_biomass_gain_is_the_batch_run_and_a_lower_bound_when_stopped(small_ensemble, stable_models):
    """Without check times: the integration of simulate_batch(n_points=2) (rel 0, abs 0). Stopped at a
    check time: the gain there, >= the target and <= the whole batch's (rel 2e-3)."""
    ens, m = small_ensemble, int(stable_models[0])
    whole = simulate_batch(ens, m, 6.0, 0.05, n_points=2)
    run = batch_biomass_gain(ens, m, 6.0, 0.05)
    assert run.success and not run.reached and run.time == 6.0
    assert run.gain == whole.biomass[-1] - whole.biomass[0]
    target = 0.5 * run.gain
    stopped = batch_biomass_gain(ens, m, 6.0, 0.05, stop_gain=target, check_times=[1.0, 2.0, 3.0, 4.0, 5.0, 7.0])
    assert stopped.reached and stopped.time in (1.0, 2.0, 3.0, 4.0, 5.0)
    assert target <= stopped.gain <= run.gain * (1 + REL)
    grid = simulate_batch(ens, m, 6.0, 0.05, n_points=7)  # output every hour
    k = int(round(stopped.time))
    assert grid.biomass[k - 1] - 0.05 < target  # not reached at the check before
    assert stopped.gain == pytest.approx(grid.biomass[k] - 0.05, rel=REL, abs=0.0)


def test_stage_chunks_depend_on_the_stage_size_only():
    for n in (0, 1, 63, 64, 65, 1000, 10**6):
        size = stage_chunk_size(n, 250)
        assert size == max(1, min(250, -(-n // STAGE_CHUNKS)))


def test_a_stage_resumed_with_other_workers_reuses_its_chunks_and_reports_their_time(tmp_path, small_ensemble):
    """The second run (2 workers instead of 1) reads every stage (iii)/(iv) chunk, returns the same
    results and reports the worker time of those chunks as the first run measured it (rel 1e-12)."""
    settings = dataclasses.replace(SETTINGS, n_perturbations=1, n_robustness=2, max_nonlinear_models=6)
    with chunk_checkpoint(tmp_path / "ck"):
        first = screen_ensemble(small_ensemble, settings, ExecutorSettings(n_workers=1, chunk_size=2, progress=False))
    with chunk_checkpoint(tmp_path / "ck"):
        second = screen_ensemble(small_ensemble, settings, ExecutorSettings(n_workers=2, chunk_size=2, progress=False))
    assert second.robustness_growth == first.robustness_growth and second.return_deviation == first.return_deviation
    for a, b in zip(first.stages[2:], second.stages[2:]):
        assert a.chunks.n_chunks == b.chunks.n_chunks >= 1
        assert a.chunks.n_restored == 0 and b.chunks.n_restored == b.chunks.n_chunks
        assert b.chunks.worker_seconds == pytest.approx(a.chunks.worker_seconds, rel=1e-12, abs=0.0)
        assert b.chunks.restored_cpu_seconds == pytest.approx(a.chunks.cpu_seconds, rel=1e-12, abs=0.0)
        row = b.to_dict()
        assert row["n_chunks_restored"] == b.chunks.n_chunks and row["worker_seconds"] > 0


@pytest.mark.slow
def test_compiled_reactor_integrates_the_same_batch(small_ensemble, stable_models):
    """The reactor compiled to C: the same biomass and product trajectories (rel 1e-9, abs 1e-12)."""
    ens, m = small_ensemble, int(stable_models[0])
    fold = np.random.default_rng(0).uniform(0.8, 1.2, ens.network.n_reactions)
    a = simulate_batch(ens, m, 6.0, 0.05, vmax_fold=fold, n_points=13)
    b = simulate_batch(ens, m, 6.0, 0.05, vmax_fold=fold, n_points=13, compiled=True)
    np.testing.assert_allclose(b.biomass, a.biomass, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.product, a.product, rtol=1e-9, atol=1e-12)
