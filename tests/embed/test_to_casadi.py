"""The embedded surrogate agrees with torch (float64 values, Jacobians, Hessians) and works in IPOPT."""

from __future__ import annotations

import casadi as ca
import numpy as np
import pytest
import torch

from mpc_bio.embed import EmbeddingError, select_outputs, to_casadi

from .conftest import random_surrogate, torch_value_and_jacobian

RNG_POINTS = np.random.default_rng(42).uniform(0.0, 20.0, size=(5, 2))


def _value_jac(f: ca.Function, x: np.ndarray):
    xs = ca.MX.sym("x", f.size1_in(0))
    y = f(xs)
    vj = ca.Function("vj", [xs], [y, ca.jacobian(y, xs)])
    v, J = vj(x)
    return np.array(v).ravel(), np.array(J)


@pytest.mark.parametrize("activation", ["silu", "tanh", "softplus"])
@pytest.mark.parametrize("symbolic", ["SX", "MX"])
def test_native_matches_torch_values_and_jacobians(activation, symbolic):
    sur = random_surrogate(activation=activation, mass_balance=True, seed=1)
    f = to_casadi(sur, "native", symbolic=symbolic)
    for x in RNG_POINTS:
        v0, J0 = torch_value_and_jacobian(sur, x)
        v, J = _value_jac(f, x)
        assert v == pytest.approx(v0, rel=1e-8, abs=1e-12)
        assert J.ravel() == pytest.approx(J0.ravel(), rel=1e-8, abs=1e-12)


def _on_kinks(spec) -> np.ndarray:
    """Points exactly on each kink line of a spec, and 1e-3, 30 and 1e4 sharp widths to either side
    (where an exponent overflows without care)."""
    pts = []
    for a, c in zip(spec.kink_matrix, spec.kink_bias):
        base = a * c / (a @ a)  # on the line a . x = c
        for t in (0.0, 1e-3, -1e-3, 30.0, -30.0, 1e4, -1e4):
            pts.append(base + t * a / (a @ a))
    return np.array(pts)


@pytest.mark.parametrize("symbolic", ["SX", "MX"])
def test_native_with_input_warp_and_kinks_matches_torch(symbolic):
    """Input warp asinh(x / knee) and kink bumps in the CasADi graph: values
    and Jacobians equal torch's autograd (rel 1e-8, abs 1e-12), also at x = 0 and near it, where the
    warp is steepest, and on and around each kink line, far out on both sides included; the
    Hessian of the first flux too on and next to the lines (rel 1e-8, abs 1e-10)."""
    sur = random_surrogate(activation="silu", mass_balance=True, seed=11, warp=True, kinks=3)
    assert sur.spec().warped and sur.spec().n_kinks == 3
    f = to_casadi(sur, "native", symbolic=symbolic)
    on = _on_kinks(sur.spec())
    for x in np.vstack([RNG_POINTS, [[0.0, 0.0], [0.01, 0.3]], on]):
        v0, J0 = torch_value_and_jacobian(sur, x)
        v, J = _value_jac(f, x)
        assert v == pytest.approx(v0, rel=1e-8, abs=1e-12)
        assert J.ravel() == pytest.approx(J0.ravel(), rel=1e-8, abs=1e-12)
    xs = ca.MX.sym("x", 2)
    hess = ca.Function("H", [xs], [ca.hessian(f(xs)[0], xs)[0]])
    for x in on[np.abs(on).max(axis=1) < 100]:
        H0 = torch.autograd.functional.hessian(lambda u: sur.module(u[None, :])[0, 0], torch.as_tensor(x)).numpy()
        assert np.array(hess(x)).ravel() == pytest.approx(H0.ravel(), rel=1e-8, abs=1e-10)


def test_native_hessian_matches_torch():
    sur = random_surrogate(activation="silu", mass_balance=True, seed=2)
    f = to_casadi(sur, "native", outputs=["BIOMASS"], symbolic="SX")
    x = ca.SX.sym("x", 2)
    H = ca.Function("H", [x], [ca.hessian(f(x), x)[0]])
    for xv in RNG_POINTS[:3]:
        H0 = torch.autograd.functional.hessian(lambda u: sur.module(u[None, :])[0, 0], torch.as_tensor(xv)).numpy()
        assert np.array(H(xv)).ravel() == pytest.approx(H0.ravel(), rel=1e-8, abs=1e-12)


def test_output_selection_keeps_order_and_values():
    sur = random_surrogate(seed=3)
    outs = ["R2", "BIOMASS", "EX_in1"]
    f = to_casadi(sur, "native", outputs=outs)
    v0 = sur.predict(RNG_POINTS[0], check_domain=False)
    idx = [sur.reaction_ids.index(o) for o in outs]
    assert np.array(f(RNG_POINTS[0])).ravel() == pytest.approx(v0[idx], rel=1e-12, abs=1e-13)
    assert f.size_out(0) == (3, 1)


def test_bad_requests_raise_clear_errors():
    sur = random_surrogate(seed=4)
    with pytest.raises(EmbeddingError, match="EX_nope"):
        select_outputs(sur, ["BIOMASS", "EX_nope"])
    with pytest.raises(EmbeddingError, match="'backend'"):
        to_casadi(sur, "onnx")
    with pytest.raises(EmbeddingError, match="'symbolic'"):
        to_casadi(sur, "native", symbolic="DM")
    with pytest.raises(EmbeddingError, match="repeat"):
        select_outputs(sur, ["BIOMASS", "BIOMASS"])


@pytest.mark.parametrize(("mode", "warp"), [("exact", False), ("jac_jac", False), ("exact", True)])
def test_l4casadi_matches_torch(mode, warp, tmp_path_factory):
    """With ``warp`` also two kink bumps."""
    sur = random_surrogate(activation="silu", mass_balance=True, seed=5, warp=warp, kinks=2 if warp else 0)
    f = to_casadi(sur, "l4casadi", l4casadi_mode=mode, name=f"t_{mode}{'_warp' if warp else ''}")
    for x in RNG_POINTS:
        v0, J0 = torch_value_and_jacobian(sur, x)
        v, J = _value_jac(f, x)
        # "jac_jac" passes the input through L4CasADi's float32 interface and uses its own
        # float32 Jacobian trace (see the backend docs): ~1e-7 relative, hence the looser bound.
        rel = 1e-8 if mode == "exact" else 1e-5
        assert v == pytest.approx(v0, rel=rel, abs=1e-12)
        assert J.ravel() == pytest.approx(J0.ravel(), rel=rel, abs=rel * np.abs(J0).max())


def _recover_inputs(f: ca.Function, x_true: np.ndarray, hessian: str = "exact") -> tuple[np.ndarray, str]:
    """Least-squares fit of the inputs from the outputs, IPOPT with the given Hessian option."""
    x = ca.MX.sym("x", 2)
    target = np.array(f(x_true)).ravel()
    obj = ca.sumsqr(f(x) - target)
    solver = ca.nlpsol(
        "fit",
        "ipopt",
        {"x": x, "f": obj},
        {"ipopt.print_level": 0, "print_time": 0, "ipopt.hessian_approximation": hessian, "ipopt.tol": 1e-12},
    )
    sol = solver(x0=[10.0, 10.0], lbx=0.0, ubx=20.0)
    return np.array(sol["x"]).ravel(), solver.stats()["return_status"]


@pytest.mark.parametrize(
    ("backend", "opts"),
    [
        ("native", {"symbolic": "SX"}),
        ("native", {"symbolic": "MX"}),
        ("l4casadi", {"l4casadi_mode": "exact"}),
        ("l4casadi", {"l4casadi_mode": "jac_jac"}),
    ],
)
def test_ipopt_exact_hessian_solves(backend, opts):
    sur = random_surrogate(hidden=(16, 16), activation="tanh", n_out=6, seed=6)
    f = to_casadi(sur, backend, name=f"ipopt_{backend}_{'_'.join(opts.values())}", **opts)
    x_true = np.array([7.3, 12.1])
    x_hat, status = _recover_inputs(f, x_true, "exact")
    assert status == "Solve_Succeeded"
    assert x_hat == pytest.approx(x_true, rel=1e-6, abs=1e-6)


def test_backends_agree_with_each_other():
    sur = random_surrogate(activation="softplus", mass_balance=True, seed=7)
    fn = to_casadi(sur, "native")
    fl = to_casadi(sur, "l4casadi", name="agree")
    for x in RNG_POINTS:
        vn, Jn = _value_jac(fn, x)
        vl, Jl = _value_jac(fl, x)
        assert vl == pytest.approx(vn, rel=1e-8, abs=1e-12)
        assert Jl.ravel() == pytest.approx(Jn.ravel(), rel=1e-8, abs=1e-12)


def test_casadi_silu_derivatives_finite_at_large_arguments():
    """Sharpened networks reach pre-activations beyond -710, where exp(-a) overflows: the CasADi
    SiLU and its first and second derivatives stay finite and equal torch's autograd there
    (rel 1e-12, abs 1e-15 for the values; abs 1e-12 for the derivatives)."""
    from mpc_bio.embed import casadi_activation

    a = ca.SX.sym("a")
    y = casadi_activation("silu")(a)
    f = ca.Function("f", [a], [y, ca.gradient(y, a), ca.hessian(y, a)[0]])
    for av in (-1000.0, -750.0, -40.0, -1.0, 0.0, 0.5, 40.0, 1000.0):
        t = torch.tensor(av, dtype=torch.float64, requires_grad=True)
        yt = torch.nn.functional.silu(t)
        (g,) = torch.autograd.grad(yt, t, create_graph=True)
        (h,) = torch.autograd.grad(g, t)
        v, d1, d2 = (float(z) for z in f(av))
        assert np.isfinite([v, d1, d2]).all(), av
        assert v == pytest.approx(float(yt.detach()), rel=1e-12, abs=1e-15)
        assert d1 == pytest.approx(float(g.detach()), rel=1e-12, abs=1e-12)
        assert d2 == pytest.approx(float(h), rel=1e-10, abs=1e-12)
