"""l4casadi backend: the surrogate's torch module called from CasADi through L4CasADi 2.0.0.

What was measured with l4casadi 2.0.0 (the only release) and casadi 3.8.2, and what this module
does about it:

1. **float32 interface.** L4CasADi's C++ runtime hands the input to the TorchScript trace as a
   float32 tensor (a float64 module fails with "expected m1 and m2 to have the same dtype"),
   while it copies float64 outputs back exactly. Casting inside the module gives values ~1e-8
   relative off torch float64, only from rounding the input. The ``"exact"`` mode therefore
   passes each input as a float32-exact pair ``hi = floor(x * 2^12) / 2^12`` and
   ``lo = x - hi`` (``floor`` has zero derivative in CasADi, so d lo / d x = 1); the module
   adds them in float64. Values then agree with torch float64 to ~1e-13.
2. **Derivatives.** Autograd w.r.t. a float32 input returns float32 Jacobians, so L4CasADi's own
   ``jac_`` traces are only ~1e-7 accurate. ``"exact"`` builds a second L4CasADi function whose
   *value* is the float64 Jacobian (``torch.func.jacrev`` inside the module) and attaches it to
   the value function with CasADi's ``custom_jacobian`` option; second derivatives come from
   L4CasADi's trace of that Jacobian function (float32-accurate, enough for Newton steps).
3. **Exact Hessian in IPOPT.** With L4CasADi's defaults (``generate_adj1`` and
   ``generate_jac_adj1`` on), CasADi's reverse-over-reverse Hessian asks the external for
   ``jac_adj_i0_adj_o0``, which 2.0.0 does not provide ("jac_adj_i0_adj_o0 is not provided by
   L4CasADi"; fixed on l4casadi's main branch after 2.0.0, issues #61/#64). Turning the adjoint
   traces off and ``generate_jac_jac`` on makes CasADi differentiate through ``jac_`` and
   ``jac_jac_`` instead, and exact-Hessian IPOPT solves succeed. Both ``"exact"`` and
   ``"jac_jac"`` use this; ``"adjoint"`` keeps L4CasADi's defaults (first derivatives only,
   use IPOPT's limited-memory Hessian with it).
4. **MX only.** The externals cannot be called with SX symbols, so do-mpc models that use this
   backend must be MX models.
5. **Naive and real-time modes.** ``l4casadi.naive.MultiLayerPerceptron`` rebuilds the MLP as a
   CasADi MX graph (no SiLU/softplus in 2.0.0); that is what the native backend's ``"MX"`` graph
   does for any of our activations, so it is not duplicated here. ``RealTimeL4CasADi`` replaces
   the network by a first/second-order Taylor model whose parameters the user updates from
   Python at every step (acados RTI style): not an exact function, so it does not fit IPOPT
   solves of the whole horizon. ``batched=True`` only pays when one external call evaluates
   many points; do-mpc calls the model once per collocation point, so it does not apply.

6. **TorchScript optimisation.** l4casadi's ``ts_compile`` ends with
   ``torch.jit.freeze`` + ``optimize_for_inference``; in torch 2.13 freezing mis-folds the
   surrogate module's graph (shape error at run time), so both are skipped while building
   (the scripted graph is saved unfrozen).

The compiled libraries and TorchScript traces go into a cache directory (``$MPC_BIO_CACHE`` or
the system temp dir + ``mpc_bio_cache``), never into the repository; a library already built for
the same weights, outputs and mode is reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

import casadi as ca
import torch

from mpc_bio.surrogate.network import input_features

__all__ = ["L4CASADI_MODES", "l4casadi_function", "default_build_dir"]

#: Modes of the l4casadi backend (see the module docstring).
L4CASADI_MODES = ("exact", "jac_jac", "adjoint")

_SPLIT = 2.0**12  # hi = floor(x * 2^12) / 2^12 is float32-exact for |x| < 4096


def default_build_dir() -> Path:
    """Cache directory for L4CasADi builds: ``$MPC_BIO_CACHE/l4casadi`` or ``<tmp>/mpc_bio_cache/l4casadi``."""
    root = os.environ.get("MPC_BIO_CACHE") or os.path.join(tempfile.gettempdir(), "mpc_bio_cache")
    return Path(root) / "l4casadi"


class _Selected(torch.nn.Module):
    """(n, k) float64 -> selected columns (n, len(rows)) of the surrogate module, float64."""

    def __init__(self, module: torch.nn.Module, rows: Sequence[int]) -> None:
        super().__init__()
        self.module = module
        self.register_buffer("rows", torch.as_tensor(list(rows), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.module(x).index_select(1, self.rows)


class _FoldedMLP(torch.nn.Module):
    """The surrogate's MLP with scalings and final map folded in (see ``native.folded_layers``).

    Used instead of the surrogate module itself because libtorch's frozen-graph linear folding
    (run when L4CasADi loads the trace) breaks on the module's ``y @ out_matrix.T + x @ in_matrix.T``
    ("The size of tensor a (32) must match the size of tensor b (2)"). The direct input term is
    computed as a broadcast product and sum, which that pass leaves alone.
    """

    def __init__(self, spec, rows: Sequence[int]) -> None:
        super().__init__()
        from mpc_bio.embed.native import folded_layers

        layers, in_rows = folded_layers(spec, rows)
        self.linears = torch.nn.ModuleList()
        for W, b in layers:
            lin = torch.nn.Linear(W.shape[1], W.shape[0]).to(torch.float64)
            with torch.no_grad():
                lin.weight.copy_(torch.as_tensor(W))
                lin.bias.copy_(torch.as_tensor(b))
            self.linears.append(lin)
        self.act = {"silu": torch.nn.SiLU(), "tanh": torch.nn.Tanh(), "softplus": torch.nn.Softplus()}[spec.activation]
        self.register_buffer("in_t", torch.as_tensor(in_rows.T.copy()))  # (k, r)
        self.register_buffer("knee", torch.as_tensor(spec.warp_knee, dtype=torch.float64))
        self.register_buffer("kink_matrix", torch.as_tensor(spec.kink_matrix, dtype=torch.float64))
        self.register_buffer("kink_bias", torch.as_tensor(spec.kink_bias, dtype=torch.float64))
        self.register_buffer("kink_ratio", torch.as_tensor(spec.kink_ratio, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = input_features(x, self.knee, self.kink_matrix, self.kink_bias, self.kink_ratio)
        last = len(self.linears) - 1
        for i, lin in enumerate(self.linears):
            h = lin(h)
            if i < last:
                h = self.act(h)
        return h + (x.unsqueeze(-1) * self.in_t).sum(1)


class _ValueSplit(torch.nn.Module):
    """L4CasADi value model of the "exact" mode: z = [hi; lo] (2k, 1) float32 -> v (r, 1) float64."""

    def __init__(self, sel: _Selected, k: int) -> None:
        super().__init__()
        self.sel = sel
        self.k = k

    def joined(self, z: torch.Tensor) -> torch.Tensor:
        """x = hi + lo (k, 1), float64."""
        z = z.to(torch.float64)
        return z[: self.k] + z[self.k :]

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.sel(self.joined(z).T).T


class _JacobianSplit(_ValueSplit):
    """L4CasADi Jacobian model of the "exact" mode: z (2k, 1) -> dv/dx (r * k, 1) float64, row-major."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        jac = torch.func.jacrev(lambda u: self.sel(u[None, :])[0])(self.joined(z)[:, 0])
        return jac.reshape(-1, 1)


class _ValueCast(torch.nn.Module):
    """L4CasADi value model of the "jac_jac"/"adjoint" modes: x (k, 1) float32 -> v (r, 1) float64."""

    def __init__(self, sel: _Selected) -> None:
        super().__init__()
        self.sel = sel

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.sel(x.to(torch.float64).T).T


def _fingerprint(module: torch.nn.Module, rows: Sequence[int], mode: str, k: int) -> str:
    h = hashlib.sha256()
    h.update(f"{mode}|{k}|{list(rows)}|{torch.__version__}".encode())
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float64).contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def _build(
    model: torch.nn.Module, name: str, build_dir: Path, n_in: int, *, jac: bool = True, adj1: bool = True, jac_jac: bool = False
) -> Path:
    """Trace, generate and compile one L4CasADi library (skipped when already built), with the
    Jacobian (``jac``), the adjoint and its Jacobian (``adj1``) and the Hessian (``jac_jac``);
    the defaults are L4CasADi's."""
    flags = {"generate_jac": jac, "generate_adj1": adj1, "generate_jac_adj1": adj1, "generate_jac_jac": jac_jac}
    import l4casadi as l4c

    lib = build_dir / f"lib{name}.so"
    if lib.is_file():
        return lib
    build_dir.mkdir(parents=True, exist_ok=True)
    f = l4c.L4CasADi(model, name=name, build_dir=str(build_dir), **flags)
    # torch.jit.freeze (called by l4casadi's ts_compile, followed by optimize_for_inference)
    # mis-folds the surrogate module's graph (add(mm, mm) after the output scaling: "The size of
    # tensor a (32) must match the size of tensor b (2)" at run time); both are skipped.
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        mock.patch.object(torch.jit, "freeze", lambda mod, *a, **k: mod),
        mock.patch.object(torch.jit, "optimize_for_inference", lambda mod, *a, **k: mod),
    ):
        warnings.simplefilter("ignore")  # TorchScript annotation chatter
        f.build(ca.MX.sym("x", n_in, 1))
    if not lib.is_file():
        raise RuntimeError(f"L4CasADi did not produce {lib}; see the compiler output above.")
    return lib


def l4casadi_function(
    module: torch.nn.Module,
    n_inputs: int,
    rows: Sequence[int],
    *,
    mode: str = "exact",
    name: str = "surrogate_fluxes",
    build_dir: str | Path | None = None,
    input_name: str = "uptakes",
    output_name: str = "fluxes",
) -> ca.Function:
    """CasADi function ``uptakes (k,) -> selected net fluxes`` calling the torch module via L4CasADi.

    Parameters
    ----------
    module : torch.nn.Module
        Maps raw uptakes (n, k) in mmol/gDW/h to net fluxes (n, r), float64.
    n_inputs : int
        k.
    rows : sequence of int
        Output columns to keep, in order.
    mode : {"exact", "jac_jac", "adjoint"}
        ``"exact"`` (float64 values and Jacobians, exact Hessians in IPOPT), ``"jac_jac"``
        (L4CasADi's own traces, float32-accurate derivatives, exact Hessians work) or
        ``"adjoint"`` (L4CasADi's defaults; exact Hessians fail in 2.0.0). See the module docstring.
    name : str
        Base name of the CasADi function; a fingerprint of weights, outputs and mode is appended
        to the library names so different surrogates never overwrite each other.
    build_dir : path, optional
        Where L4CasADi writes traces and libraries; default :func:`default_build_dir`.

    Returns
    -------
    casadi.Function
        An MX function (externals cannot be called with SX symbols).
    """
    if mode not in L4CASADI_MODES:
        raise ValueError(f"The 'l4casadi_mode' parameter must be one of {L4CASADI_MODES}; got {mode!r}.")
    module = module.to(torch.float64).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    k, r = int(n_inputs), len(rows)
    spec_of = getattr(module, "to_spec", None)
    sel = (_FoldedMLP(spec_of(), rows) if callable(spec_of) else _Selected(module, rows)).eval()
    for p in sel.parameters():
        p.requires_grad_(False)
    tag = _fingerprint(module, rows, mode, k)
    base = f"{name}_{tag}"
    bdir = Path(build_dir) if build_dir is not None else default_build_dir() / base
    x = ca.MX.sym(input_name, k)
    if mode == "exact":
        val_lib = _build(_ValueSplit(sel, k), f"{base}_v", bdir, 2 * k, jac=False, adj1=False)
        jac_lib = _build(_JacobianSplit(sel, k), f"{base}_j", bdir, 2 * k, adj1=False)
        ext_v = ca.external(f"{base}_v", str(val_lib))
        ext_j = ca.external(f"{base}_j", str(jac_lib))
        z = ca.MX.sym("z", 2 * k)
        out = ca.MX.sym("out", r)
        jz = ca.reshape(ext_j(z), k, r).T  # torch row-major (r, k) -> CasADi (r, k)
        inner_name = f"{base}_split"
        jac = ca.Function(f"jac_{inner_name}", [z, out], [ca.horzcat(jz, jz)])
        inner = ca.Function(inner_name, [z], [ext_v(z)], {"custom_jacobian": jac, "jac_penalty": 0, "never_inline": True})
        hi = ca.floor(x * _SPLIT) / _SPLIT
        v = inner(ca.vertcat(hi, x - hi))
        return ca.Function(name, [x], [v], [input_name], [output_name])
    lib = _build(_ValueCast(sel), f"{base}_c", bdir, k, adj1=mode == "adjoint", jac_jac=mode == "jac_jac")
    ext = ca.external(f"{base}_c", str(lib))
    return ca.Function(name, [x], [ext(x)], [input_name], [output_name])
