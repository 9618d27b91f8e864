"""The numpy (BLAS) cell model and the batched trajectory outputs agree with the native CasADi graph."""

from __future__ import annotations

import dataclasses

import casadi as ca
import numpy as np
import pytest

from mpc_bio.process import FedBatchSettings, ProcessSettingsError, SurrogateSimulator, embed_cell_model


@pytest.fixture(scope="module")
def cells(ecoli_surrogate):
    s = FedBatchSettings()
    return s, embed_cell_model(ecoli_surrogate, s, symbolic="MX"), embed_cell_model(ecoli_surrogate, s, backend="numpy")


def test_numpy_cell_values_and_jacobian_match_native(cells):
    _, native, fast = cells
    assert fast.backend == "numpy" and fast.symbolic == "MX" and fast.output_ids == native.output_ids
    x = ca.MX.sym("x", 2)
    jn = ca.Function("jn", [x], [ca.jacobian(native.function(x), x)])
    jf = ca.Function("jf", [x], [ca.jacobian(fast.function(x), x)])
    rng = np.random.default_rng(0)
    for u in rng.uniform([0.5, 0.5], [19.5, 19.5], size=(20, 2)):
        vn = np.array(native.function(u)).ravel()
        assert np.array(fast.function(u)).ravel() == pytest.approx(vn, rel=1e-12, abs=1e-12)
        # forward differences of step 1e-8 x max(1, |u|): ~1e-7 relative, more across a sharp kink
        Jn = np.array(jn(u))
        assert np.array(jf(u)) == pytest.approx(Jn, rel=1e-4, abs=1e-5 * np.abs(Jn).max())
    U = rng.uniform(0.0, 20.0, size=(50, 2))
    Vn = np.column_stack([np.array(native.function(u)).ravel() for u in U]).T
    assert fast.batch(U) == pytest.approx(Vn, rel=1e-12, abs=1e-12)
    assert native.batch(U) == pytest.approx(Vn, rel=1e-12, abs=1e-12)


def test_numpy_backend_simulation_matches_native(cells):
    s, native, fast = cells
    s = dataclasses.replace(s, batch_time=8.0)
    a = SurrogateSimulator(s, native, rtol=1e-10, atol=1e-12).run()
    b = SurrogateSimulator(s, fast, rtol=1e-10, atol=1e-12).run()
    assert b.states == pytest.approx(a.states, rel=1e-7, abs=1e-9)
    assert b.outputs == pytest.approx(a.outputs, rel=1e-6, abs=1e-8)


def test_batched_outputs_equal_pointwise_outputs(cells):
    """The simulator's batched outputs against the ODE's CasADi output function, row by row."""
    s, native, _ = cells
    s = dataclasses.replace(s, batch_time=6.0)
    sim = SurrogateSimulator(s, native)
    res = sim.run()
    n = len(res.time)
    Y = np.array(sim.ode.outputs.map(n)(res.states.T, res.feed[None, :], np.full((1, n), s.kinetics.glucose_vmax))).T
    assert res.outputs == pytest.approx(Y[:, : res.outputs.shape[1]], rel=1e-12, abs=1e-12)


def test_numpy_backend_refuses_unknown_options(ecoli_surrogate):
    s = FedBatchSettings()
    with pytest.raises(ProcessSettingsError, match="Unknown option"):
        embed_cell_model(ecoli_surrogate, s, backend="numpy", chunk=3)
    with pytest.raises(ProcessSettingsError, match="'fd_step' parameter"):
        embed_cell_model(ecoli_surrogate, s, backend="numpy", fd_step=1.0)


def test_float32_precision_stays_close_to_float64(ecoli_surrogate, cells):
    s, native, _ = cells
    f32 = embed_cell_model(ecoli_surrogate, s, backend="numpy", precision="float32")
    U = np.random.default_rng(1).uniform(0.0, 20.0, size=(200, 2))
    V64, V32 = native.batch(U), f32.batch(U)
    assert V32.dtype == np.float64
    scale = np.abs(V64).max(axis=0)
    assert V32 == pytest.approx(V64, rel=1e-5, abs=1e-5 * scale.max())
    s8 = dataclasses.replace(s, batch_time=8.0)
    a = SurrogateSimulator(s8, native, rtol=1e-8, atol=1e-10).run()
    b = SurrogateSimulator(s8, f32, rtol=1e-8, atol=1e-10).run()
    assert b.states == pytest.approx(a.states, rel=1e-5, abs=1e-7)
    with pytest.raises(ProcessSettingsError, match="'precision' parameter"):
        embed_cell_model(ecoli_surrogate, s, backend="numpy", precision="float16")
