"""Screening stages: stability, time constants, nonlinear return, robustness; funnel bookkeeping."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mpc_bio.nomad.conservation import analyse_conservation
from mpc_bio.nomad.mca import linearize_ensemble, reduced_jacobian
from mpc_bio.nomad.screening import (
    _perturbation,
    doubling_time,
    screen_ensemble,
    screen_linear_stability,
    screen_nonlinear_return,
    screen_robustness,
    screen_time_constants,
)
from mpc_bio.nomad.settings import ExecutorSettings, ScreeningSettings

QUIET = ExecutorSettings(n_workers=1, progress=False)


def test_reduced_jacobian_matches_finite_differences_of_the_ode(small_ensemble, stable_models):
    """J_r vs central differences of N_r S v(x_ref + L dx_ind)/V in the independent coordinates."""
    from mpc_bio.nomad.kinetics import evaluate_rates

    ens, i = small_ensemble, int(stable_models[0])
    cons = analyse_conservation(ens.network)
    x, xf, K, lk, vm = (a[i] if a.ndim == 2 else a for a in ens.parameters())
    Jr = reduced_jacobian(ens, [i], cons)[0]
    fd = np.zeros_like(Jr)
    for b, m in enumerate(cons.independent):
        h = 1e-6 * x[m]
        e = np.zeros(cons.rank)
        e[b] = h
        fp = cons.reduced_stoichiometry @ evaluate_rates(ens.network, x + cons.link @ e, xf, K, lk, vm)
        fm = cons.reduced_stoichiometry @ evaluate_rates(ens.network, x - cons.link @ e, xf, K, lk, vm)
        fd[:, b] = (fp - fm) / (2 * h) / ens.cell_volume
    np.testing.assert_allclose(Jr, fd, rtol=1e-5, atol=1e-6 * np.abs(Jr).max())


def test_model_made_unstable_is_rejected_by_stage_i(small_ensemble, stable_models):
    """Running a stable model backwards in time (negated cell volume) mirrors its eigenvalues."""
    stable = small_ensemble.subset(stable_models[:5])
    reversed_time = dataclasses.replace(stable, cell_volume=-stable.cell_volume)
    assert screen_linear_stability(linearize_ensemble(stable)).size == 5
    lin = linearize_ensemble(reversed_time)
    assert np.all(lin.max_real > 0)
    assert screen_linear_stability(lin).size == 0


def test_time_constant_stage_uses_threshold(small_ensemble):
    lin = linearize_ensemble(small_ensemble)
    stable = screen_linear_stability(lin)
    t_max = 0.1
    fast = screen_time_constants(lin, stable, t_max)
    tau = dict(zip(lin.model_index, lin.time_constant))
    assert all(tau[m] < t_max for m in fast)
    assert all(tau[m] >= t_max for m in set(stable) - set(fast))
    # tau = -1 / max Re(lambda)
    for m in fast[:5]:
        assert tau[m] == pytest.approx(-1.0 / lin.max_real[m], rel=1e-12)


def test_perturbation_keeps_moieties(small_ensemble):
    cons = analyse_conservation(small_ensemble.network)
    x_ref = small_ensemble.concentrations[0]
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = _perturbation(rng, x_ref, cons, 2.0)
        assert np.all(x > 0)
        np.testing.assert_allclose(cons.moieties @ x, cons.moieties @ x_ref, rtol=1e-10, atol=1e-12)
        assert not np.allclose(x, x_ref)


def test_nonlinear_stages_are_deterministic(small_ensemble, stable_models):
    idx = stable_models[:3]
    settings = ScreeningSettings(n_perturbations=2, n_robustness=2)
    p1, dev1 = screen_nonlinear_return(small_ensemble, idx, settings, QUIET)
    p2, dev2 = screen_nonlinear_return(small_ensemble, idx, settings, ExecutorSettings(n_workers=2, chunk_size=1, progress=False))
    assert dev1 == dev2 and np.array_equal(p1, p2)
    assert all(dev1[int(m)] <= settings.return_tolerance for m in p1)
    q1, g1 = screen_robustness(small_ensemble, idx, settings, QUIET)
    q2, g2 = screen_robustness(small_ensemble, idx, settings, QUIET)
    assert g1 == g2 and all(g1[int(m)] >= 0.5 for m in q1)


def test_screen_ensemble_funnel_counts(small_ensemble):
    settings = ScreeningSettings(n_perturbations=1, n_robustness=1, max_nonlinear_models=4)
    res = screen_ensemble(small_ensemble, settings, QUIET)
    f = res.funnel()
    assert [s["name"] for s in f] == ["linear_stability", "time_constant", "nonlinear_return", "robustness"]
    assert f[0]["n_in"] == small_ensemble.n_models
    for a, b in zip(f, f[1:]):
        assert b["n_in"] <= a["n_out"] and b["n_out"] <= b["n_in"]
    assert f[2]["n_in"] == min(4, f[1]["n_out"])
    assert res.doubling_time == pytest.approx(doubling_time(small_ensemble), rel=1e-12)
    table = res.model_table()
    assert len(table) == small_ensemble.n_models
    assert int(table["passed_time_constant"].sum()) == f[1]["n_out"]
