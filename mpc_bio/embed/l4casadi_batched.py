"""The batched network call of the MPC made by L4CasADi: one compiled libtorch call for all points.

:class:`mpc_bio.embed.batched.BatchedNetwork` evaluates the surrogate's selected outputs, their
Jacobians and Hessians at all collocation points of a horizon in one torch call from Python.
:class:`L4CasADiBatchedNetwork` makes the same call through L4CasADi: the forward-mode propagation
for a fixed number of points is traced to TorchScript and compiled into a CasADi external (one
library per derivative order, built once per network, outputs, point count and kink width, and
cached like every L4CasADi build of the package), which libtorch runs from C++ without the Python
interpreter. Calls with another number of points (e.g. the one-point simulations of a cold
start) use the Python path.

L4CasADi hands its input to the trace as float32; the uptakes therefore travel as float32-exact
pairs ``hi = floor(x 2^12) / 2^12`` and ``lo = x - hi`` and are added in float64 inside the trace
(as the ``"exact"`` mode of :mod:`mpc_bio.embed.l4casadi_backend`), and the float64 values and
derivatives come back exactly: the two paths agree to the rounding of ``lo`` (about 1e-11
mmol/gDW/h in the uptakes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import casadi as ca
import numpy as np
import torch

from mpc_bio.embed.batched import BatchedNetwork
from mpc_bio.embed.l4casadi_backend import _SPLIT, _build, default_build_dir

__all__ = ["L4CasADiBatchedNetwork"]


class _TaylorTrace(torch.nn.Module):
    """z = [hi; lo] (2 n k, 1) float32 -> [values; Jacobians; Hessians] (flattened, 1 column) float64."""

    def __init__(self, net: BatchedNetwork, n_points: int, order: int) -> None:
        super().__init__()
        self.net, self.n_points, self.order = net, n_points, order

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        z = z.to(torch.float64)[:, 0]
        m = self.n_points * self.net.n_inputs
        x = (z[:m] + z[m:]).reshape(self.n_points, self.net.n_inputs)
        val, jac, hess = BatchedNetwork._propagate(self.net, x, self.order)
        parts = [val.reshape(-1)] + [d.reshape(-1) for d in (jac, hess) if d is not None]
        return torch.cat(parts).reshape(-1, 1)


class L4CasADiBatchedNetwork(BatchedNetwork):
    """A :class:`~mpc_bio.embed.batched.BatchedNetwork` whose calls at ``n_points`` points run in L4CasADi.

    Parameters
    ----------
    surrogate : mpc_bio.surrogate.Surrogate
        Trained surrogate.
    outputs : sequence of str, optional
        Reaction ids to return, in this order (default: all).
    n_points : int
        Number of points of the compiled call (the MPC's N d collocation points).
    threads : int or None
        torch intra-op threads during each call (libtorch's pool is the one L4CasADi's library
        uses); ``None`` leaves them.
    kink_width : float or None
        See :class:`~mpc_bio.embed.batched.BatchedNetwork` [mmol/gDW/h].
    build_dir : path, optional
        Where the traces and libraries go; default a folder of
        :func:`mpc_bio.embed.l4casadi_backend.default_build_dir` named after the network.

    Notes
    -----
    Runs on the cpu (L4CasADi's library is built for the device of the trace). The first call of
    each derivative order compiles its library (tens of seconds; :meth:`compile` does all three at
    once); later runs reuse it.
    """

    def __init__(
        self,
        surrogate,
        outputs: Sequence[str] | None = None,
        *,
        n_points: int,
        threads: int | None = 1,
        kink_width: float | None = None,
        build_dir: str | Path | None = None,
    ) -> None:
        if not isinstance(n_points, (int, np.integer)) or isinstance(n_points, bool) or n_points < 1:
            raise ValueError(f"The 'n_points' parameter of L4CasADiBatchedNetwork must be a positive integer. Got {n_points!r} instead.")
        super().__init__(surrogate, outputs, device="cpu", threads=threads, kink_width=kink_width)
        self.n_points = int(n_points)
        self._tag = self._fingerprint()
        self.build_dir = Path(build_dir) if build_dir is not None else default_build_dir() / f"batched_{self._tag}"
        self._externals: dict[int, ca.Function] = {}
        self.l4casadi_calls = 0

    def _fingerprint(self) -> str:
        h = hashlib.sha256(f"{self.n_points}|{self.n_inputs}|{self.output_ids}|{self.kink_width}|{torch.__version__}".encode())
        for t in (*self._W, *self._b, self._in, self._knee, self._kM, self._kb, self._kc, self._kr):
            if t is not None:
                h.update(t.detach().cpu().numpy().tobytes())
        return h.hexdigest()[:12]

    def compile(self) -> L4CasADiBatchedNetwork:
        """Build (or load from the cache) the libraries of every derivative order now; returns self."""
        for order in (0, 1, 2):
            self._external(order)
        return self

    def _external(self, order: int) -> ca.Function:
        if order not in self._externals:
            name = f"taylor{order}_{self._tag}"
            lib = _build(_TaylorTrace(self, self.n_points, order), name, self.build_dir, 2 * self.n_points * self.n_inputs)
            self._externals[order] = ca.external(name, str(lib))
        return self._externals[order]

    def _propagate(self, x: torch.Tensor, order: int):
        n, k = x.shape
        if n != self.n_points:
            return super()._propagate(x, order)
        q = x.cpu().numpy()
        hi = np.floor(q * _SPLIT) / _SPLIT
        out = np.asarray(self._external(order)(np.r_[hi.ravel(), (q - hi).ravel()])).ravel()
        self.l4casadi_calls += 1
        r = self.n_outputs
        sizes = [n * r, n * r * k if order else 0, n * r * k * k if order > 1 else 0]
        val, jac, hess = np.split(out, np.cumsum(sizes)[:2])

        def t(a, shape):
            return torch.as_tensor(a.reshape(shape), dtype=torch.float64) if a.size else None

        return t(val, (n, r)), t(jac, (n, r, k)), t(hess, (n, r, k, k))
