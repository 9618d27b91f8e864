"""One batched torch call for many points: values, Jacobians and second derivatives of the surrogate.

Control problems evaluate the network at every collocation point of a horizon (N intervals x d
points, 40 for the default MPC). Calling torch once per point pays libtorch's dispatch overhead
and its thread start-up every time; one call for all points costs little more than one point.
This module provides that call and two ways to use it from CasADi:

* :class:`BatchedNetwork` evaluates the selected outputs of the surrogate and, in the same call,
  their Jacobians and Hessians with respect to the uptakes, by forward-mode propagation through
  the layers (k = 2 inputs: two first-order and three second-order tangents, stacked with the
  value so that each layer is one matrix product for all points), in float64 (l4casadi 2.0.0
  casts its linearisation points and batched inputs to float32).
* :func:`batched_casadi_function` wraps it as a CasADi function of an (k, n) matrix of uptakes with
  exact, block-diagonal first and second derivatives and their exact sparsity (CasADi callbacks),
  so an NLP built for it (:mod:`mpc_bio.control.network_mpc`) makes one torch call per derivative
  order and IPOPT iteration instead of one per point (value, Jacobian and Hessian of the same
  points share one call). It is the batched-external design of the network in the loop; a CasADi
  callback around the float64 evaluator is used instead of l4casadi's own ``batched=True``
  externals, which hand the network float32 inputs and return float32-accurate derivatives.
* :func:`network_taylor_function` returns the same call's values, Jacobians and second
  derivatives as plain matrices (one column per point), and :func:`network_curvature_function`
  the second derivatives weighted by the adjoints of the outputs (optionally with absolute
  eigenvalues), so an NLP's constraint Jacobian and Hessian of the Lagrangian can be assembled as
  compiled functions of these coefficients instead of CasADi's derivatives of the callback.

torch runs on cuda when it is available, else on the cpu, and in float64. Its intra-op threads are
pinned (default one) around every call by :func:`torch_threads`, which restores the previous
count: libtorch's own thread pool beside IPOPT cost several times the CPU time of the work.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

import casadi as ca
import numpy as np
import torch

__all__ = [
    "BatchedNetwork",
    "TaylorCoefficients",
    "batched_casadi_function",
    "network_curvature_function",
    "network_taylor_function",
    "torch_threads",
    "torch_device",
]


@contextlib.contextmanager
def torch_threads(n: int | None = 1) -> Iterator[None]:
    """Run the block with torch's intra-op thread count set to ``n``, then restore it.

    Parameters
    ----------
    n : int or None
        Threads for the block; ``None`` leaves torch's setting alone.
    """
    if n is None:
        yield
        return
    if int(n) < 1:
        raise ValueError(f"The thread count of torch_threads must be a positive integer. Got {n!r} instead.")
    old = torch.get_num_threads()
    if old != int(n):
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


def torch_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch device; by default cuda when available, else cpu."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TaylorCoefficients:
    """Values and derivatives of the selected outputs at n points (float64 numpy arrays).

    Attributes
    ----------
    points : ndarray, shape (n, k)
        Uptakes where the network was evaluated [mmol/gDW/h].
    values : ndarray, shape (n, r)
        Net fluxes [mmol/gDW/h] (growth in 1/h).
    jacobians : ndarray, shape (n, r, k)
        d value / d uptake [-] (growth: gDW/mmol).
    hessians : ndarray, shape (n, r, k, k) or None
        Second derivatives, symmetric in the last two axes; ``None`` for a first-order call.
    """

    __slots__ = ("points", "values", "jacobians", "hessians")

    def __init__(self, points, values, jacobians, hessians=None) -> None:
        self.points = points
        self.values = values
        self.jacobians = jacobians
        self.hessians = hessians

    def predict(self, q: np.ndarray) -> np.ndarray:
        """The Taylor model of each point evaluated at uptakes ``q`` (n, k) -> (n, r)."""
        d = np.asarray(q, dtype=float) - self.points
        out = self.values + np.einsum("nrk,nk->nr", self.jacobians, d)
        if self.hessians is not None:
            out = out + 0.5 * np.einsum("nrkl,nk,nl->nr", self.hessians, d, d)
        return out


def _activation_derivatives(name: str):
    """(sigma, sigma', sigma'') of a hidden activation as torch maps of the pre-activation."""
    if name == "silu":

        def d(a):  # a s, s (1 + a (1 - s)), s (1 - s) (2 + a (1 - 2 s)) in few tensor operations
            s = torch.sigmoid(a)
            s0 = a * s
            q = s - s * s
            return s0, torch.addcmul(s, a, q), q * (torch.add(a, s0, alpha=-2.0) + 2.0)
    elif name == "tanh":

        def d(a):
            t = torch.tanh(a)
            return t, 1 - t * t, -2 * t * (1 - t * t)
    elif name == "softplus":  # torch's beta-1 softplus, linear above 20

        def d(a):
            s = torch.sigmoid(a)
            big = a > 20.0
            return (
                torch.where(big, a, torch.log1p(torch.exp(a.clamp(max=20.0)))),
                torch.where(big, torch.ones_like(a), s),
                torch.where(big, torch.zeros_like(a), s * (1 - s)),
            )
    else:
        raise ValueError(f"The surrogate activation must be 'silu', 'tanh' or 'softplus'; got {name!r}.")
    return d


class BatchedNetwork:
    """The surrogate's selected outputs, evaluated for many points in one torch call.

    Derivatives are propagated forward through the layers with the points as the batch axis
    (value, k tangents and k x k second-order tangents: a few dense matrix products per layer),
    which is exact and, for k = 2 inputs, much cheaper than ``torch.func`` transforms of the
    module (whose per-operation dispatch dominates for small batches; forward-over-forward mode is
    also not implemented for SiLU in torch).

    Parameters
    ----------
    surrogate : mpc_bio.surrogate.Surrogate
        Trained surrogate (its float64 ``spec``: scalings and the final map folded into the layers,
        only the selected output rows kept).
    outputs : sequence of str, optional
        Reaction ids to return, in this order (default: all).
    device : str or torch.device, optional
        Default: cuda when available, else cpu.
    threads : int or None
        torch intra-op threads during each call (restored afterwards); ``None`` leaves them.
    kink_width : float or None
        Smallest width [mmol/gDW/h] of the kink features' bends (``None``: the trained network
        exactly). A kink feature bump(u) = softplus(rho u) / rho - softplus(u) bends over its sharp
        width s across its line (the pFBA map's kinks are nearly sharp: s ~ 1e-5 on the shipped
        iCH360 net); with ``kink_width = w > s`` its sharp hinge is widened to w (softplus(c u) / c,
        c = s / w) and a bump whose wide hinge is narrower than w (rho >= c) is dropped. The map
        changes by a fraction of its flux change within w of the lines; its curvature there is
        bounded by about 1 / w instead of 1 / s, which a Newton-type solver needs.

    Attributes
    ----------
    output_ids : tuple of str
    n_inputs, n_outputs : int
    n_kinks : int
        Number of kink features of the network (sharp bends of its outputs).
    kink_width : float or None
    calls : int
        Number of batched torch calls made (any order).
    wall_time : float
        Wall time spent in those calls [s].
    """

    def __init__(
        self, surrogate, outputs: Sequence[str] | None = None, *, device=None, threads: int | None = 1, kink_width: float | None = None
    ) -> None:
        from mpc_bio.embed.native import folded_layers
        from mpc_bio.embed.to_casadi import select_outputs

        ids, rows = select_outputs(surrogate, outputs)
        spec = surrogate.spec() if callable(getattr(surrogate, "spec", None)) else surrogate.spec
        self.output_ids = ids
        self.rows = rows
        self.n_inputs = len(surrogate.input_names)
        self.n_outputs = len(rows)
        self.input_names = tuple(surrogate.input_names)
        self.device = dev = torch_device(device)
        self.threads = threads
        self.domain_low = np.asarray(surrogate.domain_low, dtype=float)
        self.domain_high = np.asarray(surrogate.domain_high, dtype=float)
        layers, in_rows = folded_layers(spec, rows)

        def t(a):
            return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64, device=dev)

        self._W = [t(W) for W, _ in layers]
        self._WT = [w.T.contiguous() for w in self._W]
        self._b = [t(b) for _, b in layers]
        self._in = t(in_rows)  # (r, k)
        self._act = _activation_derivatives(spec.activation)
        k = self.n_inputs
        self._knee = t(spec.warp_knee) if spec.warped else None
        self._kM = t(spec.kink_matrix) if spec.n_kinks else None
        self._kb = t(spec.kink_bias) if spec.n_kinks else None
        self.n_kinks = int(spec.n_kinks)
        if kink_width is not None and not float(kink_width) >= 0.0:
            raise ValueError(f"The 'kink_width' parameter of BatchedNetwork must be >= 0 (mmol/gDW/h) or None. Got {kink_width!r} instead.")
        self.kink_width = None if kink_width is None else float(kink_width)
        if spec.n_kinks:
            # bump(u) = softplus(r u) / r - softplus(c u) / c, as trained c = 1 and r = rho; with a
            # kink width w, c = min(1, s / w) (s: the trained sharp width in the inputs), so that no
            # hinge bends over less than w, and r = min(rho, c)
            sharp = 1.0 / np.linalg.norm(np.asarray(spec.kink_matrix, dtype=float), axis=1)  # mmol/gDW/h
            c = np.ones_like(sharp) if not self.kink_width else np.minimum(1.0, sharp / self.kink_width)
            r = np.minimum(np.asarray(spec.kink_ratio, dtype=float), c)
            self._kc, self._kr = t(c), t(r)
            self._klive = t((r < c).astype(float))  # 0: the bump is narrower than the width and vanishes
        else:
            self._kc = self._kr = self._klive = None
        self._eye = torch.eye(k, dtype=torch.float64, device=dev)
        iu = np.triu_indices(k)
        self._pair_list = [(int(j), int(m)) for j, m in zip(*iu)]  # the input pairs j <= m of second derivatives
        self._pj_t = torch.as_tensor(iu[0], dtype=torch.long, device=dev)
        self._pm_t = torch.as_tensor(iu[1], dtype=torch.long, device=dev)
        self._pair_index = [[self._pair_list.index((min(j, m), max(j, m))) for m in range(k)] for j in range(k)]
        diag = np.zeros((k, len(self._pair_list)))
        for p_, (j, m) in enumerate(self._pair_list):
            if j == m:
                diag[j, p_] = 1.0
        self._diag_pairs = t(diag)  # (k, pairs): 1 where the pair is (j, j)
        self._kM_pairs = t(np.asarray(spec.kink_matrix)[:, iu[0]] * np.asarray(spec.kink_matrix)[:, iu[1]]) if spec.n_kinks else None
        self.calls = 0
        self.wall_time = 0.0

    def _tensor(self, q) -> torch.Tensor:
        Q = np.atleast_2d(np.asarray(q, dtype=np.float64))
        if Q.ndim != 2 or Q.shape[1] != self.n_inputs:
            raise ValueError(f"The uptakes must have {self.n_inputs} columns ({self.input_names}). Got shape {Q.shape} instead.")
        return torch.as_tensor(Q, dtype=torch.float64, device=self.device)

    def _features(self, x: torch.Tensor, order: int):
        """Features (n, F) of ``input_features``, their first (n, F, k) and second derivatives (n, F, P).

        The second derivatives are stored for the P = k (k + 1) / 2 input pairs j <= m only (``_pair_list``).
        """
        n, k = x.shape
        P = len(self._pair_list)
        vals, d1, d2 = [x], [self._eye.expand(n, k, k)], [x.new_zeros(n, k, P)]
        if self._knee is not None:
            u = x / self._knee
            root = torch.sqrt(1 + u * u)
            vals.append(torch.asinh(u))
            if order:
                d1.append(torch.diag_embed(1 / (root * self._knee)))
            if order > 1:  # d2 asinh(x_j / c_j) / dx_j^2: on the pair (j, j) of feature j only
                dd = -u / (root * root * root) / (self._knee * self._knee)  # (n, k)
                d2.append(dd[:, :, None] * self._diag_pairs)
        if self._kM is not None:
            u = x @ self._kM.T - self._kb  # (n, K)
            r, c, live = self._kr, self._kc, self._klive
            # softplus(a u) / a = max(u, 0) + log1p(exp(-a |u|)) / a: the hinges' linear parts cancel
            v = u.abs()
            vals.append(live * (torch.log1p(torch.exp(-r * v)) / r - torch.log1p(torch.exp(-c * v)) / c))
            if order:
                sr, sc = torch.sigmoid(r * u), torch.sigmoid(c * u)
                d1.append((live * (sr - sc))[:, :, None] * self._kM[None, :, :])
                if order > 1:
                    g2 = live * (r * sr * (1 - sr) - c * sc * (1 - sc))
                    d2.append(g2[:, :, None] * self._kM_pairs[None])
        if order == 0:
            return torch.cat(vals, 1), None, None
        return torch.cat(vals, 1), torch.cat(d1, 1), (torch.cat(d2, 1) if order > 1 else None)

    def _propagate(self, x: torch.Tensor, order: int):
        """Value (n, r), Jacobian (n, r, k) and Hessian (n, r, k, k) of the selected outputs.

        The value and its tangents are stacked as (n, T, width) with T = 1 (+ k (+ k (k + 1) / 2):
        the second-order tangents of the pairs j <= m only), so each layer is one matrix product
        for all of them; the pairs' products of first-order tangents are slices, not gathers.
        """
        n, k = x.shape
        h, dh, d2h = self._features(x, order)
        parts = [h[:, None, :]]
        if order:
            parts.append(dh.transpose(1, 2))  # (n, k, F)
        if order > 1:
            parts.append(d2h.transpose(1, 2))  # (n, pairs, F)
        Z = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
        last = len(self._W) - 1
        for i, (WT, b) in enumerate(zip(self._WT, self._b)):
            Z = Z @ WT
            Z[:, 0] += b
            if i == last:
                break
            s0, s1, s2 = self._act(Z[:, 0])
            if order == 0:
                Z = s0[:, None]
                continue
            da = Z[:, 1 : 1 + k]
            rows = [s0[:, None], da * s1[:, None, :]]
            if order > 1:  # s2 da_j da_m + s1 Z_jm for the pairs (j, m)
                prod = torch.index_select(da, 1, self._pj_t) * torch.index_select(da, 1, self._pm_t) * s2[:, None, :]
                rows.append(torch.addcmul(prod, Z[:, 1 + k :], s1[:, None, :]))
            Z = torch.cat(rows, 1)
        val = Z[:, 0] + x @ self._in.T
        jac = (Z[:, 1 : 1 + k].transpose(1, 2) + self._in[None]) if order else None
        hess = None
        if order > 1:
            hp = Z[:, 1 + k :].transpose(1, 2)  # (n, r, pairs)
            hess = torch.stack([torch.stack([hp[:, :, self._pair_index[j][m]] for m in range(k)], -1) for j in range(k)], -2)
        return val, jac, hess

    def values(self, q) -> np.ndarray:
        """Selected net fluxes (n, r) at uptakes ``q`` (n, k) [mmol/gDW/h]."""
        X = self._tensor(q)
        tic = time.perf_counter()
        with torch_threads(self.threads), torch.no_grad():
            out, _, _ = self._propagate(X, 0)
            out = out.cpu().numpy()
        self.calls += 1
        self.wall_time += time.perf_counter() - tic
        return out

    def taylor(self, q, order: int = 2) -> TaylorCoefficients:
        """Values, Jacobians and (``order`` 2) Hessians at the points ``q`` (n, k), one torch call.

        Parameters
        ----------
        q : array_like, shape (n, k)
            Uptakes [mmol/gDW/h].
        order : {0, 1, 2}
            Highest derivative order computed (0: Jacobians returned as zeros).
        """
        if order not in (0, 1, 2):
            raise ValueError(f"The 'order' parameter of BatchedNetwork.taylor must be 0, 1 or 2. Got {order!r} instead.")
        tic = time.perf_counter()
        X = self._tensor(q)
        with torch_threads(self.threads), torch.no_grad():
            val, jac, hess = self._propagate(X, order)
            pts = X.cpu().numpy()
            if order == 0:
                out = TaylorCoefficients(pts, val.cpu().numpy(), np.zeros((pts.shape[0], self.n_outputs, self.n_inputs)))
            else:
                out = TaylorCoefficients(pts, val.cpu().numpy(), jac.cpu().numpy(), None if hess is None else hess.cpu().numpy())
        self.calls += 1
        self.wall_time += time.perf_counter() - tic
        return out

    def in_domain(self, q, rtol: float = 1e-9) -> np.ndarray:
        """Flags (n,) that each row of ``q`` lies in the surrogate's training domain."""
        Q = np.atleast_2d(np.asarray(q, dtype=float))
        tol = rtol * (1.0 + np.abs(self.domain_high - self.domain_low))
        return np.all((Q >= self.domain_low - tol) & (Q <= self.domain_high + tol), axis=1)


class _Cache:
    """The last batched evaluation, shared by the value, Jacobian and Hessian callbacks."""

    def __init__(self, net: BatchedNetwork) -> None:
        self.net = net
        self.key: bytes | None = None
        self.coef: TaylorCoefficients | None = None
        self.order = -1
        #: whether derivatives were asked for at the cached point (a value call at a new point resets it)
        self.differentiated = True

    def get(self, Q: np.ndarray, order: int, derivative: bool = True) -> TaylorCoefficients:
        key = Q.tobytes()
        if key != self.key or order > self.order:
            if key != self.key:
                self.differentiated = False
            self.coef = self.net.taylor(Q, order)
            self.key, self.order = key, order
        self.differentiated = self.differentiated or derivative
        return self.coef


def _block_sparsity(n: int, r: int, k: int) -> ca.Sparsity:
    """Pattern of d vec(V) / d vec(Q) for V (r, n), Q (k, n): n dense (r, k) blocks on the diagonal."""
    rows, cols = [], []
    for p in range(n):
        for j in range(k):
            for i in range(r):
                rows.append(i + r * p)
                cols.append(j + k * p)
    return ca.Sparsity.triplet(r * n, k * n, rows, cols)


class _HessianCallback(ca.Callback):
    """(Q, V, J) -> (d vec(J) / d vec(Q), d vec(J) / d vec(V) = 0); structurally zero unless ``exact``."""

    def __init__(self, name, cache: _Cache, n: int, opts=None, exact: bool = True) -> None:
        ca.Callback.__init__(self)
        self.cache, self.n, self.exact = cache, n, exact
        r, k = cache.net.n_outputs, cache.net.n_inputs
        self.r, self.k = r, k
        self.jsp = _block_sparsity(n, r, k)
        # the nonzero (a, b) = (i + r p, j + k p) of J is entry a + (r n) b of vec(J); its
        # derivative with respect to Q[m, p] (entry m + k p of vec(Q)) is H[p, i, j, m]
        jr, jc = self.jsp.get_triplet()
        rows, cols, p_, i_, j_, m_ = [], [], [], [], [], []
        for a, b in zip(jr, jc):
            p, i, j = a // r, a % r, b % k
            for m in range(k):
                rows.append(a + r * n * b)
                cols.append(m + k * p)
                p_.append(p), i_.append(i), j_.append(j), m_.append(m)
        order = np.lexsort((rows, cols))  # CasADi's nonzero order (column-major)
        self._idx = tuple(np.array(v)[order] for v in (p_, i_, j_, m_))
        self.hsp = ca.Sparsity.triplet(r * n * k * n, k * n, rows, cols) if exact else ca.Sparsity(r * n * k * n, k * n)
        self.construct(name, opts or {})

    def get_n_in(self):
        return 3

    def get_n_out(self):
        return 2

    def get_sparsity_in(self, i):
        return [ca.Sparsity.dense(self.k, self.n), ca.Sparsity.dense(self.r, self.n), self.jsp][i]

    def get_sparsity_out(self, i):
        return self.hsp if i == 0 else ca.Sparsity(self.r * self.n * self.k * self.n, self.r * self.n)

    def eval(self, args):
        zero_v = ca.DM(ca.Sparsity(self.r * self.n * self.k * self.n, self.r * self.n))
        if not self.exact:
            return [ca.DM(self.hsp), zero_v]
        Q = np.asarray(args[0], dtype=float).T.copy()
        H = self.cache.get(Q, 2).hessians
        vals = H[self._idx]
        out = ca.DM(self.hsp, vals)
        return [out, zero_v]


class _JacobianCallback(ca.Callback):
    """(Q, V) -> d vec(V) / d vec(Q), block diagonal."""

    def __init__(self, name, cache: _Cache, n: int, opts=None, exact: bool = True) -> None:
        ca.Callback.__init__(self)
        self.cache, self.n, self.exact = cache, n, exact
        self.r, self.k = cache.net.n_outputs, cache.net.n_inputs
        self.jsp = _block_sparsity(n, self.r, self.k)
        jr, jc = self.jsp.get_triplet()
        r, k = self.r, self.k
        self._rows, self._cols = jr, jc
        self._src = [(a // r, a % r, b % k) for a, b in zip(jr, jc)]
        self._p = np.array([s[0] for s in self._src])
        self._i = np.array([s[1] for s in self._src])
        self._j = np.array([s[2] for s in self._src])
        self._hess = None
        self.construct(name, opts or {})

    def get_n_in(self):
        return 2

    def get_n_out(self):
        return 1

    def get_sparsity_in(self, i):
        return ca.Sparsity.dense(self.k, self.n) if i == 0 else ca.Sparsity.dense(self.r, self.n)

    def get_sparsity_out(self, i):
        return self.jsp

    def eval(self, args):
        Q = np.asarray(args[0], dtype=float).T.copy()
        # second order at once: IPOPT asks for the Hessian at the point of every Jacobian
        c = self.cache.get(Q, 2 if self.exact else 1)
        vals = c.jacobians[self._p, self._i, self._j]
        return [ca.DM(self.jsp, vals)]  # the triplets of jsp are in its nonzero order

    def has_jac_sparsity(self, oind, iind):
        return True

    def get_jac_sparsity(self, oind, iind, symmetric):
        # nonzero a of J, at (i + r p, j + k p), depends on Q[:, p] only (not on V)
        if iind == 1 or not self.exact:
            return ca.Sparsity(self.jsp.nnz(), self.r * self.n if iind == 1 else self.k * self.n)
        k = self.k
        rows = [a for a in range(len(self._p)) for _ in range(k)]
        cols = [m + k * int(p) for p in self._p for m in range(k)]
        return ca.Sparsity.triplet(self.jsp.nnz(), k * self.n, rows, cols)

    def has_jacobian(self):
        return True

    def get_jacobian(self, name, inames, onames, opts):
        self._hess = _HessianCallback(name, self.cache, self.n, opts, self.exact)
        return self._hess


class _ValueCallback(ca.Callback):
    """Q (k, n) -> V (r, n): the selected outputs of the network at n points."""

    def __init__(self, name, net: BatchedNetwork, n: int, opts=None, exact_hessian: bool = True, prefetch: bool | str = False) -> None:
        ca.Callback.__init__(self)
        self.cache = _Cache(net)
        self.exact, self.prefetch = exact_hessian, prefetch
        self.n, self.r, self.k = n, net.n_outputs, net.n_inputs
        self._jac = None
        self.construct(name, opts or {})

    def get_n_in(self):
        return 1

    def get_n_out(self):
        return 1

    def get_sparsity_in(self, i):
        return ca.Sparsity.dense(self.k, self.n)

    def get_sparsity_out(self, i):
        return ca.Sparsity.dense(self.r, self.n)

    def eval(self, args):
        Q = np.asarray(args[0], dtype=float).T.copy()
        full = 2 if self.exact else 1
        if self.prefetch == "adaptive":  # derivatives with the value unless the last point went without them
            return [ca.DM(self.cache.get(Q, full if self.cache.differentiated else 0, derivative=False).values.T)]
        if self.prefetch:  # the derivatives of an accepted point come in the same call
            return [ca.DM(self.cache.get(Q, full, derivative=False).values.T)]
        key = Q.tobytes()
        if self.cache.key == key and self.cache.coef is not None:
            return [ca.DM(self.cache.coef.values.T)]
        return [ca.DM(self.cache.net.values(Q).T)]

    def has_jac_sparsity(self, oind, iind):
        return True

    def get_jac_sparsity(self, oind, iind, symmetric):
        return _block_sparsity(self.n, self.r, self.k)  # each point's outputs depend on its inputs only

    def has_jacobian(self):
        return True

    def get_jacobian(self, name, inames, onames, opts):
        self._jac = _JacobianCallback(name, self.cache, self.n, opts, self.exact)
        return self._jac


def batched_casadi_function(
    net: BatchedNetwork,
    n_points: int,
    *,
    name: str = "surrogate_batched",
    exact_hessian: bool = True,
    prefetch: bool | str = False,
) -> ca.Function:
    """CasADi function ``Q (k, n) -> V (r, n)`` evaluating ``net`` at n points in one torch call.

    Parameters
    ----------
    net : BatchedNetwork
        The batched evaluator (device and thread pinning are its own).
    n_points : int
        n, the number of points (columns) per call.
    name : str
        Name of the CasADi function.
    exact_hessian : bool
        Exact second derivatives of the network (one torch call gives value, Jacobian and
        Hessian). ``False``: the second derivative of the network is structurally zero (a
        Gauss-Newton-like Hessian of the Lagrangian: the curvature of the rest of the model is
        kept, the network's is dropped) and the torch calls compute first derivatives only.
    prefetch : bool or "adaptive"
        ``True``: compute the derivatives with every value (one torch call per point set instead
        of one for the value and one for the derivatives when the point is accepted): cheaper
        when most evaluated points are also differentiated (an interior-point method's full
        steps). ``"adaptive"``: with the value only when the derivatives of the previous point
        were asked for (the first trial point of an iteration, after an accepted one), the value
        alone at the next points of a backtracking line search (most of them are rejected, their
        derivatives would be wasted). ``False``: values alone.

    Returns
    -------
    casadi.Callback
        Callable with DM or MX arguments (not SX); its Jacobian is block diagonal and exact, and
        its Jacobian's Jacobian gives exact second derivatives (IPOPT's exact Hessian works). The
        value, Jacobian and Hessian of the same Q share one torch call (cached). Keep the returned
        object alive as long as any function built from it is used.
    """
    if int(n_points) < 1:
        raise ValueError(f"The 'n_points' parameter of batched_casadi_function must be positive. Got {n_points!r} instead.")
    if prefetch not in (True, False, "adaptive"):
        raise ValueError(
            f"The 'prefetch' parameter of batched_casadi_function must be True, False or 'adaptive'. Got {prefetch!r} instead."
        )
    return _ValueCallback(
        name, net, int(n_points), exact_hessian=bool(exact_hessian), prefetch=prefetch if prefetch == "adaptive" else bool(prefetch)
    )


def _pairs(k: int) -> list[tuple[int, int]]:
    """The input pairs (j, m), j <= m, of second derivatives, in the order of ``BatchedNetwork``."""
    return [(int(j), int(m)) for j, m in zip(*np.triu_indices(k))]


class _TaylorCallback(ca.Callback):
    """Q (k, n) -> V (r, n), J (r k, n) and (order 2) H (r P, n), from the shared cache.

    Column p holds point p: ``J[i + r j, p] = dV[i, p] / dQ[j, p]`` and ``H[i + r s, p] =
    d2 V[i, p] / dQ[j, p] dQ[m, p]`` for the s-th input pair (j, m), j <= m.
    """

    def __init__(self, name, cache: _Cache, n: int, order: int, fetch: int, opts=None) -> None:
        ca.Callback.__init__(self)
        self.cache, self.n, self.order, self.fetch = cache, n, order, fetch
        self.r, self.k = cache.net.n_outputs, cache.net.n_inputs
        pairs = _pairs(self.k)
        self._pj, self._pm = np.array([j for j, _ in pairs]), np.array([m for _, m in pairs])
        self.construct(name, opts or {})

    def get_n_in(self):
        return 1

    def get_n_out(self):
        return 1 + self.order

    def get_sparsity_in(self, i):
        return ca.Sparsity.dense(self.k, self.n)

    def get_sparsity_out(self, i):
        return ca.Sparsity.dense([self.r, self.r * self.k, self.r * len(self._pj)][i], self.n)

    def eval(self, args):
        Q = np.asarray(args[0], dtype=float).T.copy()
        c = self.cache.get(Q, self.fetch)
        n = self.n
        out = [ca.DM(c.values.T), ca.DM(c.jacobians.transpose(0, 2, 1).reshape(n, -1).T)]
        if self.order == 2:
            out.append(ca.DM(c.hessians[:, :, self._pj, self._pm].transpose(0, 2, 1).reshape(n, -1).T))
        return out


def _taylor_by_differentiation(fun: ca.Function, order: int, name: str) -> ca.Function:
    """:func:`network_taylor_function` of any CasADi function of a (k, n) matrix whose column p of
    the output depends on column p of the input only (CasADi's own derivatives, dense: for tests
    and small n)."""
    k, n = fun.size_in(0)
    r = fun.size1_out(0)
    Q = ca.MX.sym("Q", k, n)
    V = fun(Q)
    Jf = ca.densify(ca.jacobian(ca.vec(V), ca.vec(Q)))  # (r n, k n)
    Jv = ca.vec(Jf)[[(i + r * p) + r * n * (j + k * p) for p in range(n) for j in range(k) for i in range(r)]]
    out = [V, ca.reshape(Jv, r * k, n)]
    if order == 2:
        Hf = ca.densify(ca.jacobian(Jv, ca.vec(Q)))  # row (i + r j) + r k p, column m + k p
        pairs = _pairs(k)
        idx = [((i + r * j) + r * k * p) + r * k * n * (m + k * p) for p in range(n) for j, m in pairs for i in range(r)]
        out.append(ca.reshape(ca.vec(Hf)[idx], r * len(pairs), n))
    return ca.Function(name, [Q], out)


def network_taylor_function(fun, *, order: int = 2, name: str = "network_taylor") -> ca.Function:
    """The network's values and derivatives at n points as matrices: ``Q (k, n) -> V, J[, H]``.

    For derivatives of an NLP assembled by hand (:mod:`mpc_bio.control.network_mpc`): column p of
    ``V`` (r, n) is the output at ``Q[:, p]``, of ``J`` (r k, n) its Jacobian (row ``i + r j``:
    d V_i / d q_j), of ``H`` (r P, n) its second derivatives for the P = k (k + 1) / 2 input pairs
    (j, m), j <= m (row ``i + r s`` for the s-th pair, in the order of ``numpy.triu_indices(k)``).

    Parameters
    ----------
    fun : casadi.Function
        A function made by :func:`batched_casadi_function` (its torch calls and cache are shared:
        the derivatives of a point whose value was just computed come from the same call), or any
        CasADi function of a (k, n) matrix whose column p depends on the input's column p only
        (differentiated by CasADi).
    order : {1, 2}
        1: ``V, J``; 2: ``V, J, H``.
    name : str

    Returns
    -------
    casadi.Function
        Callable with DM or MX arguments; keep it alive as long as functions built from it are used.
    """
    if order not in (1, 2):
        raise ValueError(f"The 'order' parameter of network_taylor_function must be 1 or 2. Got {order!r} instead.")
    if isinstance(fun, _ValueCallback):
        # with exact second derivatives the Hessian is asked for at the point of every Jacobian: one call
        return _TaylorCallback(name, fun.cache, fun.n, order, fetch=2 if fun.exact else order)
    return _taylor_by_differentiation(fun, order, name)


class _CurvatureCallback(ca.Callback):
    """(H (r P, n), W (r, n)) -> M (P, n): per point, sum_i W[i] H_i on the input pairs, optionally with
    the absolute values of its eigenvalues."""

    def __init__(self, name, r: int, k: int, n: int, convexify: bool, opts=None) -> None:
        ca.Callback.__init__(self)
        self.r, self.k, self.n, self.convexify = r, k, n, convexify
        pairs = _pairs(k)
        self.P = len(pairs)
        self._pj, self._pm = np.array([j for j, _ in pairs]), np.array([m for _, m in pairs])
        self.construct(name, opts or {})

    def get_n_in(self):
        return 2

    def get_n_out(self):
        return 1

    def get_sparsity_in(self, i):
        return ca.Sparsity.dense(self.r * self.P if i == 0 else self.r, self.n)

    def get_sparsity_out(self, i):
        return ca.Sparsity.dense(self.P, self.n)

    def eval(self, args):
        n, r = self.n, self.r
        H = np.asarray(args[0], dtype=float).T.reshape(n, self.P, r)
        W = np.asarray(args[1], dtype=float).T  # (n, r)
        M = np.einsum("nsr,nr->ns", H, W)
        if self.convexify:  # each eigenvalue replaced by its absolute value
            F = np.zeros((n, self.k, self.k))
            F[:, self._pj, self._pm] = M
            F[:, self._pm, self._pj] = M
            lam, U = np.linalg.eigh(F)
            F = np.einsum("nab,nb,ncb->nac", U, np.abs(lam), U)
            M = F[:, self._pj, self._pm]
        return [ca.DM(M.T)]


def network_curvature_function(r: int, k: int, n: int, *, convexify: bool = False, name: str = "network_curvature") -> ca.Function:
    """``(H, W) -> M``: the network's second derivatives at n points weighted by the adjoints of its outputs.

    For a Hessian of a Lagrangian assembled by hand (e.g. IPOPT's ``hess_lag``): with ``W`` (r, n)
    the multipliers (adjoints) of the network's r outputs at each point and ``H`` (r P, n) their
    second derivatives as returned by :func:`network_taylor_function`, ``M`` (P, n) holds per point
    p the entries (j, m), j <= m, of the k x k matrix ``sum_i W[i, p] d2 V_i / dq2``, the network's
    contribution in the space of its inputs.

    Parameters
    ----------
    r, k, n : int
        Outputs, inputs and points.
    convexify : bool
        Replace each point's k x k matrix by its absolute value (the same eigenvectors, each
        eigenvalue by its absolute value; Nocedal & Wright, Numerical Optimization, 2nd ed., sec.
        3.4): the network adds no negative curvature, so the interior-point method needs no large
        Hessian regularisation where the network bends sharply (kink features), and a direction of
        strong negative curvature keeps a curvature of the same magnitude, which bounds the step
        along it (setting such eigenvalues to zero leaves the step along them unbounded but for
        the variable bounds). The KKT conditions, hence the solutions, are unchanged.
    name : str

    Returns
    -------
    casadi.Callback
        Keep it alive as long as functions built from it are used.
    """
    for label, v in (("r", r), ("k", k), ("n", n)):
        if int(v) < 1:
            raise ValueError(f"The '{label}' parameter of network_curvature_function must be a positive integer. Got {v!r} instead.")
    return _CurvatureCallback(name, int(r), int(k), int(n), bool(convexify))
