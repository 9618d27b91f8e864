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


def test_repeated_and_alternating_calls_give_each_point_its_own_value(cells):
    """The numpy cell function returns the previous call's value for a repeated input (as CVODES
    makes them): repeats, alternations and a Jacobian between calls must all give each point's value."""
    _, native, fast = cells
    x = ca.MX.sym("x", 2)
    jf = ca.Function("jf", [x], [ca.jacobian(fast.function(x), x)])
    a, b = np.array([7.3, 12.1]), np.array([7.3, 12.1 + 1e-13])
    for u in (a, a, b, a, b, b):
        assert np.array(fast.function(u)).ravel() == pytest.approx(np.array(native.function(u)).ravel(), rel=1e-12, abs=1e-12)
        jf(u)
    va, vb = np.array(fast.function(a)).ravel(), np.array(fast.function(b)).ravel()
    assert np.array_equal(va, fast.batch(a[None, :])[0]) and np.array_equal(vb, fast.batch(b[None, :])[0])


def test_adams_and_bdf_simulations_agree(cells):
    """CVODES's two multistep methods on the same fed-batch, both at tight tolerances."""
    s, _, fast = cells
    s = dataclasses.replace(s, batch_time=8.0)
    a = SurrogateSimulator(s, fast, rtol=1e-10, atol=1e-12).run()
    b = SurrogateSimulator(s, fast, rtol=1e-10, atol=1e-12, multistep="adams").run()
    assert b.info["multistep"] == "adams" and a.info["multistep"] == "bdf"
    assert b.states == pytest.approx(a.states, rel=1e-7, abs=1e-9)
    with pytest.raises(ProcessSettingsError, match="'multistep' parameter must be 'bdf' or 'adams'. Got 'rk4'"):
        SurrogateSimulator(s, fast, multistep="rk4")


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


def test_numpy_cell_with_kink_features_matches_spec_evaluate():
    """The shipped iCH360 net has warped inputs and 35 kink features: the numpy cell's folded kink
    bumps (two softplus columns, weights W / rho and -W) against MLPSpec.evaluate's kink_bump,
    at random points and on the kink lines themselves (u = 0, the bump's peak)."""
    from mpc_bio.surrogate import default_surrogate

    sur = default_surrogate("iCH360")
    spec = sur.spec()
    assert spec.n_kinks > 0 and spec.warped
    s = FedBatchSettings()
    rng = np.random.default_rng(3)
    U = rng.uniform(sur.domain_low, sur.domain_high, size=(40, 2))
    # a point on each kink line a . x = c (kink_matrix row a / (|a| w), bias c / (|a| w))
    A, c = spec.kink_matrix, spec.kink_bias
    on_line = [u - (a @ u - ci) * a / (a @ a) for a, ci, u in zip(A, c, rng.uniform(sur.domain_low, sur.domain_high, (len(c), 2)))]
    U = np.vstack([U, on_line])
    f64 = embed_cell_model(sur, s, backend="numpy")
    ref = spec.evaluate(U)[:, [list(sur.reaction_ids).index(o) for o in f64.output_ids]]
    scale = np.abs(ref).max()
    assert f64.batch(U) == pytest.approx(ref, rel=1e-12, abs=1e-12 * scale)
    assert np.array(f64.function(U[0])).ravel() == pytest.approx(ref[0], rel=1e-12, abs=1e-12 * scale)
    f32 = embed_cell_model(sur, s, backend="numpy", precision="float32")
    assert f32.batch(U) == pytest.approx(ref, rel=1e-5, abs=1e-5 * scale)
