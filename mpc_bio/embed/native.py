"""Native backend: the surrogate's MLP rebuilt as a CasADi graph from its float64 weights.

The graph is exact (same float64 arithmetic as the torch module up to summation order), so
CasADi's algorithmic differentiation gives exact first and second derivatives, it works with SX
and MX symbols, inside do-mpc models and in C code generation.

Two constructions, chosen by ``symbolic``:

* ``"SX"``: scalar expression graph. Fastest to evaluate for narrow networks, and what do-mpc's
  SX models need, but a dense layer of width n expands to n^2 scalar nodes (big NLPs, slow
  code generation for wide layers).
* ``"MX"``: matrix-valued graph, one ``mtimes`` node per layer with the weights as constant
  matrices. Compact for wide layers; evaluates through BLAS-like dense kernels.

Output selection folds the final affine map, the output scaling and the last dense layer into
one matrix restricted to the requested reactions, and the input scaling into the first layer,
so only the needed rows are ever computed.
"""

from __future__ import annotations

from collections.abc import Sequence

import casadi as ca
import numpy as np

__all__ = ["casadi_activation", "casadi_features", "native_function", "folded_layers"]


def casadi_activation(name: str):
    """The torch hidden activation ``name`` as a CasADi expression map (exact, smooth).

    ``"silu"``: x * sigmoid(x), written as x (1 + tanh(x / 2)) / 2 so that its derivatives stay
    finite for any x (x / (1 + exp(-x)) gives inf / inf = NaN in the derivative below x ~ -710,
    which sharpened networks reach); ``"tanh"``; ``"softplus"``: torch's beta-1 softplus, linear above 20
    (implemented with ``if_else`` like torch's threshold, so values match torch to rounding).
    """
    if name == "silu":
        return lambda a: 0.5 * a * (1 + ca.tanh(0.5 * a))
    if name == "tanh":
        return ca.tanh
    if name == "softplus":
        return lambda a: ca.if_else(a > 20.0, a, ca.log1p(ca.exp(ca.fmin(a, 20.0))))
    raise ValueError(f"The surrogate activation must be 'silu', 'tanh' or 'softplus' for embedding; got {name!r}.")


def casadi_features(spec, x):
    """The unscaled first-layer features of ``spec.features`` as a CasADi expression of x (k, 1).

    The kink bumps (``mpc_bio.surrogate.network.kink_bump``) are written branch-wise as there:
    f(u) above zero and f(-u) below, f(v) = log1p(exp(-rho v)) / rho - log1p(exp(-v)), each branch's
    argument clipped at -1 on the far side (both branches are evaluated: no overflow in the unused
    one, and no clip is active at u = 0), so values and derivatives are exact and finite for any u.
    """
    parts = [x]
    if spec.warped:
        parts.append(ca.asinh(x / ca.DM(spec.warp_knee)))
    if spec.n_kinks:
        u = ca.mtimes(ca.DM(spec.kink_matrix), x) - ca.DM(spec.kink_bias)
        rho = ca.DM(spec.kink_ratio)

        def f(v):
            return ca.log1p(ca.exp(-rho * v)) / rho - ca.log1p(ca.exp(-v))

        parts.append(ca.if_else(u > 0, f(ca.fmax(u, -1)), f(ca.fmax(-u, -1))))
    return ca.vertcat(*parts)


def folded_layers(spec, rows: Sequence[int]) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Fold the scalings and the final map of an ``MLPSpec`` into its dense layers.

    Parameters
    ----------
    spec : mpc_bio.surrogate.MLPSpec
        The float64 description of the surrogate.
    rows : sequence of int
        Output rows (indices into the surrogate's reaction ids) to keep.

    Returns
    -------
    layers : list of (W, b)
        Dense layers; the first takes the unscaled features of ``spec.features``: raw inputs x
        (mmol/gDW/h), asinh(x / knee) with an input warp, the kink bumps; the last returns the selected
        net fluxes minus ``in_matrix[rows] @ x``.
    in_matrix : ndarray, shape (len(rows), k)
        The direct input-to-output part of the final affine map.
    """
    rows = list(rows)
    layers = [(np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)) for W, b in spec.layers]
    # feature scalings folded into the first layer, which takes [x, asinh(x / knee), kink bumps]
    layers[0] = spec.first_layer()
    # v_sel = M (y_off + y_scale * (W_L h + b_L)) + in x + bias, M = out_matrix[rows]
    M = np.asarray(spec.out_matrix, dtype=np.float64)[rows]
    My = M * np.asarray(spec.y_scale, dtype=np.float64)[None, :]
    WL, bL = layers[-1]
    layers[-1] = (My @ WL, My @ bL + M @ np.asarray(spec.y_offset) + np.asarray(spec.out_bias)[rows])
    return layers, np.asarray(spec.in_matrix, dtype=np.float64)[rows]


def native_function(
    spec,
    rows: Sequence[int],
    *,
    symbolic: str = "SX",
    name: str = "surrogate_fluxes",
    input_name: str = "uptakes",
    output_name: str = "fluxes",
) -> ca.Function:
    """CasADi function ``uptakes (k,) -> selected net fluxes (len(rows),)`` rebuilt from a spec.

    Parameters
    ----------
    spec : mpc_bio.surrogate.MLPSpec
        Float64 weights and scalings of the surrogate.
    rows : sequence of int
        Indices of the reactions to output, in output order.
    symbolic : {"SX", "MX"}
        Scalar (SX) or matrix-valued (MX) graph; see the module docstring.
    name, input_name, output_name : str
        Names of the CasADi function and its input and output.

    Returns
    -------
    casadi.Function
        Exact in float64; AD gives exact Jacobians and Hessians.
    """
    if symbolic not in ("SX", "MX"):
        raise ValueError(f"The 'symbolic' parameter of to_casadi must be 'SX' or 'MX'; got {symbolic!r}.")
    act = casadi_activation(spec.activation)
    layers, in_rows = folded_layers(spec, rows)
    k = int(np.asarray(spec.x_offset).shape[0])
    sym = ca.SX if symbolic == "SX" else ca.MX
    x = sym.sym(input_name, k)
    h = casadi_features(spec, x)
    last = len(layers) - 1
    for i, (W, b) in enumerate(layers):
        # exact zeros (the blocks between a merged net's independent sub-networks) stay out of the graph
        h = ca.mtimes(ca.sparsify(ca.DM(W)), h) + ca.DM(b)
        if i < last:
            h = act(h)
    if np.any(in_rows != 0.0):
        h = h + ca.mtimes(ca.DM(in_rows), x)
    return ca.Function(name, [x], [h], [input_name], [output_name])
