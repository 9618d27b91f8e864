"""The cell model seen by the reactor: a CasADi flux function plus what its inputs and outputs mean."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import casadi as ca
import numpy as np

from mpc_bio.numeric_function import NumericFunction
from mpc_bio.process.settings import FedBatchSettings, ProcessSettingsError

__all__ = ["CellFluxModel", "embed_cell_model", "required_outputs"]


@dataclass(frozen=True, eq=False)
class CellFluxModel:
    """A CasADi function from uptake rates to the net fluxes the reactor needs.

    Attributes
    ----------
    function : casadi.Function
        ``f(uptakes[k]) -> fluxes[len(output_ids)]``, mmol/gDW/h (growth in 1/h).
    input_names : tuple of str
        Input order (e.g. ``("glucose", "oxygen")``), uptake rates in mmol/gDW/h.
    input_reactions : tuple of str
        Exchange reaction fixed by each input.
    output_ids : tuple of str
        Reaction id of each output.
    growth_id : str
        Output id of the growth (biomass) reaction.
    domain_low, domain_high : ndarray, shape (k,)
        Box of inputs where the function is valid (the surrogate's training domain), mmol/gDW/h.
    backend : str
        How ``function`` was made (``"native"``, ``"numpy"``, ``"l4casadi"`` or ``"custom"``).
    symbolic : str
        Symbol types the function accepts: ``"SX"`` (SX and MX) or ``"MX"`` (MX only).
    batch : callable, optional
        The same map evaluated at many points at once, ``batch(U[n, k]) -> fluxes[n, r]``
        (mmol/gDW/h, numpy float64); the simulators use it to record outputs along a trajectory
        in one call. None: they call ``function`` point by point.
    """

    function: ca.Function
    input_names: tuple[str, ...]
    input_reactions: tuple[str, ...]
    output_ids: tuple[str, ...]
    growth_id: str
    domain_low: np.ndarray
    domain_high: np.ndarray
    backend: str = "custom"
    symbolic: str = "SX"
    batch: Callable[[np.ndarray], np.ndarray] | None = None

    def __post_init__(self) -> None:
        f = self.function
        k, r = len(self.input_names), len(self.output_ids)
        if not isinstance(f, ca.Function) or f.n_in() != 1 or f.n_out() != 1:
            raise ProcessSettingsError("CellFluxModel.function must be a casadi.Function with one input and one output.")
        if f.size_in(0) != (k, 1) or f.size_out(0) != (r, 1):
            raise ProcessSettingsError(
                f"CellFluxModel.function must map ({k}, 1) uptakes to ({r}, 1) fluxes. Got {f.size_in(0)} -> {f.size_out(0)} instead."
            )
        if self.growth_id not in self.output_ids:
            raise ProcessSettingsError(f"The growth reaction {self.growth_id!r} is not among the outputs {list(self.output_ids)}.")
        object.__setattr__(self, "domain_low", np.asarray(self.domain_low, dtype=float).reshape(k))
        object.__setattr__(self, "domain_high", np.asarray(self.domain_high, dtype=float).reshape(k))

    def output_index(self, reaction_id: str) -> int:
        """Position of an output reaction id."""
        try:
            return self.output_ids.index(reaction_id)
        except ValueError:
            raise ProcessSettingsError(f"The cell model has no output {reaction_id!r}; its outputs are {list(self.output_ids)}.") from None

    def input_index(self, name: str) -> int:
        """Position of a named input."""
        try:
            return self.input_names.index(name)
        except ValueError:
            raise ProcessSettingsError(f"The cell model has no input {name!r}; its inputs are {list(self.input_names)}.") from None

    def in_domain(self, u: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
        """Flags (n,) that each row of uptakes ``u`` (n, k) lies in the validity box."""
        U = np.atleast_2d(np.asarray(u, dtype=float))
        tol = rtol * (1.0 + np.abs(self.domain_high - self.domain_low))
        return np.all((U >= self.domain_low - tol) & (U <= self.domain_high + tol), axis=1)


def required_outputs(settings: FedBatchSettings, growth_id: str) -> tuple[str, ...]:
    """Output reactions the reactor needs: growth, the glucose and oxygen exchanges, the products."""
    return (growth_id, settings.glucose_exchange, settings.oxygen_exchange, *settings.products.values())


def embed_cell_model(
    surrogate,
    settings: FedBatchSettings,
    backend: str = "native",
    symbolic: str = "SX",
    **to_casadi_options,
) -> CellFluxModel:
    """Embed a surrogate with only the outputs the reactor of ``settings`` needs.

    Parameters
    ----------
    surrogate : mpc_bio.surrogate.Surrogate
        Trained surrogate.
    settings : FedBatchSettings
        Names of the glucose/oxygen inputs and exchanges and of the tracked products.
    backend : {"native", "l4casadi", "numpy"}
        ``"native"`` and ``"l4casadi"``: :func:`mpc_bio.embed.to_casadi`. ``"numpy"``: the network's
        float64 layers evaluated by numpy (BLAS) inside a ``casadi.Callback`` (MX only), with its
        Jacobian by forward differences of relative step ``fd_step`` (default 1e-8, about the
        square root of the float64 precision: ~1e-7 relative error in the Jacobian; values exact).
        For simulation: integrators use the Jacobian only in their Newton iterations, and a wide
        network evaluates several times faster through BLAS than through CasADi's sparse matrix
        kernels. Not for optimisation (no second derivatives). Option ``precision="float32"``:
        hidden layers in single precision (fluxes within ~1e-6 relative of float64; default
        ``fd_step`` 1e-4), for simulations whose tolerances are looser than that.
    symbolic, **to_casadi_options
        Passed to :func:`mpc_bio.embed.to_casadi` (``fd_step``, ``precision`` for ``"numpy"``).

    Raises
    ------
    ProcessSettingsError
        When the surrogate lacks the glucose or oxygen input, or an exchange the reactor tracks.
    """
    from mpc_bio.embed import to_casadi

    names, rxns = tuple(surrogate.input_names), tuple(surrogate.input_reactions)
    for label, name, rxn in (
        ("glucose", settings.glucose_input, settings.glucose_exchange),
        ("oxygen", settings.oxygen_input, settings.oxygen_exchange),
    ):
        if name not in names:
            raise ProcessSettingsError(
                f"The surrogate has no {label} input {name!r} (its inputs are {list(names)}); set '{label}_input' in the reactor settings."
            )
        if rxns[names.index(name)] != rxn:
            raise ProcessSettingsError(
                f"The surrogate's {label} input {name!r} fixes {rxns[names.index(name)]!r}, but the reactor "
                f"settings say '{label}_exchange' = {rxn!r}."
            )
    if len(names) != 2:
        raise ProcessSettingsError(
            f"The fed-batch model drives exactly two surrogate inputs (glucose, oxygen); this surrogate has {list(names)}."
        )
    outs = required_outputs(settings, surrogate.objective_id)
    missing = [o for o in outs if o not in surrogate.reaction_ids]
    if missing:
        raise ProcessSettingsError(
            f"The surrogate does not predict the reaction(s) {missing} that the reactor needs "
            f"(growth, glucose/oxygen exchange, tracked products {dict(settings.products)})."
        )
    rows = [list(surrogate.reaction_ids).index(o) for o in outs]
    spec = getattr(surrogate, "spec", None)
    spec = spec() if callable(spec) else spec
    batch = _BatchNet(spec, rows) if spec is not None and hasattr(spec, "fused_maps") else None
    if backend == "numpy":
        if batch is None:
            raise ProcessSettingsError(
                "The 'numpy' backend of embed_cell_model needs the surrogate's float64 layers (surrogate.spec); "
                f"got a {type(surrogate).__name__} without them."
            )
        unknown = sorted(set(to_casadi_options) - {"fd_step", "precision", "l4casadi_mode"})
        if unknown:
            raise ProcessSettingsError(f"Unknown option(s) {unknown} for the 'numpy' backend; it takes 'fd_step' and 'precision'.")
        precision = to_casadi_options.get("precision", "float64")
        if precision not in ("float64", "float32"):
            raise ProcessSettingsError(
                f"The 'precision' parameter of the 'numpy' backend must be 'float64' or 'float32'. Got {precision!r} instead."
            )
        fd_step = float(to_casadi_options.get("fd_step", 1e-8 if precision == "float64" else 1e-4))
        if not (np.isfinite(fd_step) and 0 < fd_step < 1e-2):
            raise ProcessSettingsError(f"The 'fd_step' parameter must be a number in (0, 0.01). Got {fd_step!r} instead.")
        if precision == "float32":
            batch = _BatchNet(spec, rows, dtype=np.float32)
        fun = _batch_net_function("surrogate_fluxes_numpy", batch, fd_step)
        symbolic = "MX"
    else:
        fun = to_casadi(surrogate, backend=backend, outputs=outs, symbolic=symbolic, **to_casadi_options)
    return CellFluxModel(
        function=fun,
        input_names=names,
        input_reactions=rxns,
        output_ids=outs,
        growth_id=surrogate.objective_id,
        domain_low=surrogate.domain_low,
        domain_high=surrogate.domain_high,
        backend=backend,
        symbolic="MX" if (backend == "l4casadi" or symbolic == "MX") else "SX",
        batch=batch,
    )


class _BatchNet:
    """The surrogate's MLP restricted to some output rows, evaluated by numpy (BLAS) in batches.

    ``v = sum_chains last_c @ h_c(features(x)) + bias + in_matrix @ x`` with the factorised head and
    the row selection folded into each chain's last map (float64, same arithmetic as
    :meth:`mpc_bio.surrogate.MLPSpec.evaluate` up to summation order and the kink-bump fold below).
    Independent sub-networks (chains) of equal depth are merged into block-diagonal layers when the
    zero blocks at most double the multiply-adds: one matrix product and one activation call per
    layer instead of one per chain (for a single point, numpy's per-call cost exceeds that of the
    extra zeros). ``dtype=float32`` runs the hidden layers in single precision (half the memory
    traffic of the weights, which bounds a single-point evaluation); features, bias and output stay
    float64.

    The input features (x; asinh(x / warp_knee); the kink bumps, see :class:`mpc_bio.surrogate.MLPSpec`)
    come from one product ``x @ feature_t - feature_offset`` and a few in-place ufuncs: a bump
    ``f(|u|) = log1p(exp(-rho |u|)) / rho - log1p(exp(-|u|))`` is two columns ``log1p(exp(-|rho u|))`` and
    ``log1p(exp(-|u|))`` whose weights ``W / rho`` and ``-W`` are folded into the first layer (both
    terms are at most log 2 / rho: no cancellation of large numbers). For one point, numpy's
    per-call cost is most of the work, so fewer calls is what makes it fast.
    """

    def __init__(self, spec, rows, dtype=np.float64) -> None:
        fm = spec.fused_maps()
        self.dtype = np.dtype(dtype)
        rows = list(rows)
        k, n_warp, rho = int(spec.n_inputs), int(spec.warp_knee.shape[0]), np.asarray(spec.kink_ratio, dtype=np.float64)
        q = rho.shape[0]
        # features F = [x, asinh(u_warp), log1p(exp(-|u_kink|))] with u = x @ feature_t - feature_offset
        A, c = np.asarray(spec.kink_matrix, dtype=np.float64), np.asarray(spec.kink_bias, dtype=np.float64)
        rows_u = [np.diag(1.0 / np.asarray(spec.warp_knee, dtype=np.float64)), rho[:, None] * A, A]
        self.feature_t = np.ascontiguousarray(np.vstack(rows_u).T) if n_warp or q else None
        self.feature_offset = np.concatenate([np.zeros(n_warp), rho * c, c])
        self.n_in, self.n_warp, self.n_features = k, n_warp, k + n_warp + 2 * q

        def first(W):  # columns [x, warp, bump] -> [x, warp, wide hinge, sharp hinge]
            W = np.asarray(W, dtype=np.float64)
            Wk = W[:, k + n_warp :]
            return np.hstack([W[:, : k + n_warp], Wk / rho[None, :], -Wk])

        chains = fm.chains or ((fm.hidden, fm.last),)
        head = None if fm.head is None else np.asarray(fm.head)[rows]
        parts = []
        for hidden, last in chains:
            last_sel = np.asarray(last)[rows] if head is None else head @ np.asarray(last)
            layers = [(np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)) for W, b in hidden]
            layers[0] = (first(layers[0][0]), layers[0][1])
            parts.append((layers, last_sel))
        if len(parts) > 1 and len({len(h) for h, _ in parts}) == 1:
            blocks = sum(W.size for h, _ in parts for W, _ in h[1:])
            widths = [[W.shape[0] for W, _ in h] for h, _ in parts]
            dense = sum(sum(w[i] for w in widths) * sum(w[i - 1] for w in widths) for i in range(1, len(widths[0])))
            if dense <= 2 * blocks:
                from scipy.linalg import block_diag

                depth = len(parts[0][0])
                merged = [(np.vstack([h[0][0] for h, _ in parts]), np.concatenate([h[0][1] for h, _ in parts]))]
                for i in range(1, depth):
                    merged.append((block_diag(*[h[i][0] for h, _ in parts]), np.concatenate([h[i][1] for h, _ in parts])))
                parts = [(merged, np.hstack([last for _, last in parts]))]
        dt = self.dtype
        # float32: silu(a) = z (1 + tanh z) with z = a / 2, the halving folded into W and b (numpy's
        # tanh is several times cheaper than the logistic function); float64 keeps the logistic form,
        # bit for bit the arithmetic that distillation tables and controllers were built with
        self.silu = fm.activation == "silu" and self.dtype == np.float32
        half = 0.5 if self.silu else 1.0
        self.chains = [
            (
                [(np.ascontiguousarray(half * W.T, dtype=dt), (half * b).astype(dt)) for W, b in h],
                np.ascontiguousarray(last.T, dtype=dt),
            )
            for h, last in parts
        ]
        self.bias = np.asarray(fm.bias)[rows]
        self.in_t = None if fm.in_matrix is None else np.ascontiguousarray(np.asarray(fm.in_matrix)[rows].T)
        self.act = fm.act
        self.n_out = len(rows)

    def features(self, X: np.ndarray) -> np.ndarray:
        """The first layer's input (n, k + n_warp + 2 q) at uptakes X (n, k), float64."""
        if self.feature_t is None:
            return X
        k, w = self.n_in, self.n_warp
        U = X @ self.feature_t
        U -= self.feature_offset
        F = np.empty((X.shape[0], self.n_features))
        F[:, :k] = X
        if w:
            np.arcsinh(U[:, :w], out=F[:, k : k + w])
        if self.n_features > k + w:
            B = F[:, k + w :]
            np.abs(U[:, w:], out=B)
            np.negative(B, out=B)
            np.exp(B, out=B)
            np.log1p(B, out=B)
        return F

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Selected net fluxes (n, r), mmol/gDW/h, at uptakes X (n, k), mmol/gDW/h."""
        Fx = self.features(X)
        if self.dtype != Fx.dtype:
            Fx = Fx.astype(self.dtype)
        v = None
        for hidden, last_t in self.chains:
            h = Fx
            for Wt, b in hidden:
                z = h @ Wt
                z += b
                if self.silu:
                    h = np.tanh(z)
                    h += 1.0
                    h *= z
                else:
                    h = self.act(z)
            v = h @ last_t if v is None else v + h @ last_t
        v = v.astype(np.float64) if v.dtype != np.float64 else v
        v += self.bias
        if self.in_t is not None:
            v += X @ self.in_t
        return v


def _batch_net_function(name: str, net: _BatchNet, step: float) -> NumericFunction:
    """A :class:`_BatchNet` as a CasADi function of one column of uptakes (value by numpy/BLAS); its
    Jacobian (r, k) by forward differences from the nominal output (CasADi passes it), the k shifted
    points in one batch, relative step ``step`` x max(1, |x|). A call with the same uptakes as the
    call before returns that call's value (CVODES evaluates the right-hand side, then its Jacobian
    at the same state, whose graph evaluates the value again)."""

    def jacobian(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        k = x.size
        h = step * np.maximum(1.0, np.abs(x))
        X = np.repeat(x[None, :], k, axis=0)
        X[np.arange(k), np.arange(k)] += h
        return ((net(X) - y[None, :]) / h[:, None]).T

    last = None  # (x, value): an integrator's Jacobian evaluation repeats the value call it just made

    def value(x: np.ndarray) -> np.ndarray:
        nonlocal last
        cached = last
        if cached is not None and np.array_equal(cached[0], x):
            return cached[1]
        y = net(x.reshape(1, -1))[0]
        last = (x.copy(), y)
        return y

    return NumericFunction(name, net.n_in, net.n_out, value, jacobian)
