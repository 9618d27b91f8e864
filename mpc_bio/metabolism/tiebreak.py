"""Stage (4) of the pFBA, the l2 tie-break: the minimum-norm point of the total-flux LP's optimal face.

The total-flux LP (3) can have a whole face of optima (e.g. the transhydrogenases NADTRHD/THD2 or
a cycle with equal total flux), and the simplex vertex returned then depends on the warm start, so
the sampled map jumps. The optimal face is identified from the LP's basis and reduced costs
(complementary slackness: nonbasic columns and rows with non-zero reduced cost stay at their
bounds on every optimum), its free directions are x + D y with one direction per dual-degenerate
nonbasic column or row (one sparse LU of the basis), and the point of minimum Euclidean norm
min ||x + D y||^2 subject to all bounds is a small strictly convex QP in y, solved with HiGHS. Most
points have 0 to a few such directions.

Three numerical details make the result independent of the warm start: entries of D and of A D at
round-off level are set to zero (kept, a 1e-13 entry on a reaction at its bound 0 pins the step to
zero and the vertex is returned); LP (3) runs with a primal feasibility tolerance of 1e-9 under
this rule (HiGHS's 1e-7 moves the face's minimum-norm point by ~1e-6); and the QP's answer is
refined by one exact equality-constrained solve on its active set. HiGHS's QP solver can cycle
without end on a tiny degenerate face; it runs under an iteration limit, and a QP it does not
solve is solved as a least-distance problem by Lawson and Hanson's finite NNLS algorithm
(``scipy.optimize.nnls``) instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["face_directions", "min_norm_on_face", "FACE_PRIMAL_TOLERANCE", "QP_ITERATION_LIMIT"]

_INF = np.inf
#: Entries of a face direction (or of its row activities) below this fraction of their scale are
#: round-off of the basis solve and are set to zero. Kept, such an entry on a column or row sitting
#: at its bound (e.g. 1e-13 on a blocked reaction at 0) would pin the step to zero.
_DIRECTION_NOISE = 1e-9
#: Primal feasibility tolerance of the total-flux LP (3) when the tie-break is on (HiGHS's default
#: is 1e-7).
FACE_PRIMAL_TOLERANCE = 1e-9
#: Iteration limit of HiGHS's QP solver (its default, 2^31 - 1, never stops a cycling solve). The
#: faces' QPs need tens of iterations; one that hits the limit is solved by
#: :func:`_least_distance_qp` instead.
QP_ITERATION_LIMIT = 2000


def face_directions(h: Any, A: sp.csc_matrix, bounds: tuple[np.ndarray, ...], face_tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Free directions of the optimal face of the LP just solved in ``h`` (stage 3).

    A nonbasic column or row whose reduced cost is non-zero stays at its bound on every
    optimum (complementary slackness); each dual-degenerate one (|reduced cost| <=
    ``face_tolerance``) gives one direction: move it by one unit and let the basic variables
    follow (one solve with the LP's factored basis, ``Highs.getBasisSolve``).

    Parameters
    ----------
    h : highspy.Highs
        The instance that has just solved the LP, with its basis factored.
    A : scipy.sparse.csc_matrix
        The LP's constraint matrix (rows x columns).
    bounds : tuple of ndarray
        ``(col_lo, col_hi, row_lo, row_hi)`` of the LP as solved.
    face_tolerance : float
        Reduced costs at or below this magnitude count as zero (dual degenerate).

    Returns
    -------
    x : ndarray, shape (n_col,)
        The LP's optimal vertex (split fluxes then slacks, mmol/gDW/h).
    D : ndarray, shape (n_col, d)
        Every optimum of the LP is x + D y for some y within the bounds; ``d = 0`` means the
        optimum is unique.
    """
    tol = face_tolerance
    sol = h.getSolution()
    x = np.asarray(sol.col_value, dtype=float)
    lo, hi, rl, rh = bounds
    _, bv = h.getBasicVariables()
    bv = np.asarray(bv, dtype=np.int64)
    n_col, n_row = len(x), len(rl)
    if len(bv) != n_row:
        raise RuntimeError(f"the LP basis has {len(bv)} basic variables for {n_row} rows")
    is_col = bv >= 0
    basic_cols = bv[is_col]
    nonbasic_c = np.ones(n_col, dtype=bool)
    nonbasic_c[basic_cols] = False
    nonbasic_r = np.ones(n_row, dtype=bool)
    nonbasic_r[-1 - bv[~is_col]] = False
    free_c = np.flatnonzero(nonbasic_c & (np.abs(np.asarray(sol.col_dual)) <= tol) & (hi > lo))
    free_r = np.flatnonzero(nonbasic_r & (np.abs(np.asarray(sol.row_dual)) <= tol) & (rh > rl))
    d = len(free_c) + len(free_r)
    D = np.zeros((n_col, d))
    if d == 0:
        return x, D
    rhs = np.zeros(n_row)
    for k, j in enumerate(free_c):
        rhs[:] = 0.0
        s0, s1 = A.indptr[j], A.indptr[j + 1]
        rhs[A.indices[s0:s1]] = -A.data[s0:s1]
        D[basic_cols, k] = np.asarray(h.getBasisSolve(rhs)[1])[is_col]
        D[j, k] = 1.0
    for k, i in enumerate(free_r, start=len(free_c)):
        rhs[:] = 0.0
        rhs[i] = 1.0  # the row's activity leaves its bound by one unit
        D[basic_cols, k] = np.asarray(h.getBasisSolve(rhs)[1])[is_col]
    # round-off of the LU solves (~1e-13 where the exact entry is 0) would otherwise let a
    # column at its bound block the whole direction
    D[np.abs(D) <= _DIRECTION_NOISE * np.maximum(np.abs(D).max(axis=0), 1.0)] = 0.0
    return x, D


def min_norm_on_face(
    x: np.ndarray,
    D: np.ndarray,
    bounds: tuple[np.ndarray, ...],
    A_csr: sp.csr_matrix,
    A_abs_csr: sp.csr_matrix,
    qp: Callable[[], Any],
) -> tuple[np.ndarray, str]:
    """The point of minimum Euclidean norm on the face {x + D y} within the LP's bounds.

    Parameters
    ----------
    x, D : ndarray
        The LP's optimal vertex and the face's free directions (:func:`face_directions`).
    bounds : tuple of ndarray
        ``(col_lo, col_hi, row_lo, row_hi)`` of the LP.
    A_csr, A_abs_csr : scipy.sparse.csr_matrix
        The LP's constraint matrix and its element-wise absolute value.
    qp : callable
        Returns the HiGHS instance for the QP with several directions (built on first use).

    Returns
    -------
    (x, message)
        The minimum-norm point (the vertex when the face is a single point) and an empty message,
        or the vertex and a message saying why it was kept.
    """
    import highspy as hp

    lo, hi, rl, rh = bounds
    d = D.shape[1]
    if d == 0:
        return x, ""
    # constraints on y: column bounds of every moving column, row bounds of every moving row
    AD = A_csr @ D
    # a row activity that cancels to round-off (e.g. a mass balance, or the growth row fixed
    # on the face) does not move: zero it rather than let its sign block the step
    AD[np.abs(AD) <= _DIRECTION_NOISE * (A_abs_csr @ np.abs(D))] = 0.0
    ract = A_csr @ x
    scale = 1e-12 * max(1.0, float(np.abs(x).max()))
    cm = np.flatnonzero(np.abs(D).max(axis=1) > 0.0)
    rm = np.flatnonzero((np.abs(AD).max(axis=1) > 0.0) & ((rl > -_INF) | (rh < _INF)))
    G = np.vstack([D[cm], AD[rm]])
    g_lo = np.concatenate([np.minimum(lo[cm] - x[cm], 0.0), np.minimum(rl[rm] - ract[rm], 0.0)])
    g_hi = np.concatenate([np.maximum(hi[cm] - x[cm], 0.0), np.maximum(rh[rm] - ract[rm], 0.0)])
    # rows that are tight on both sides (fixed) keep y in their null space exactly
    g_lo[np.abs(g_lo) < scale] = 0.0
    g_hi[np.abs(g_hi) < scale] = 0.0
    keep = (g_lo > -_INF) | (g_hi < _INF)
    G, g_lo, g_hi = G[keep], g_lo[keep], g_hi[keep]
    H = D.T @ D  # 1/2 ||x + D y||^2 = 1/2 y'Hy + (D'x)'y + const; H is positive definite
    c = D.T @ x
    # constraints tight on both sides (e.g. basic columns fixed at 0) confine y to a subspace N
    eq = (g_lo == 0.0) & (g_hi == 0.0)
    N = np.eye(d)
    if eq.any():
        Ge = G[eq]
        _, sv, Vt = np.linalg.svd(Ge, full_matrices=Ge.shape[0] < d)  # Vt is d x d either way
        rank = int(np.sum(sv > 1e-10 * max(float(sv.max(initial=0.0)), 1.0)))
        N = Vt[rank:].T
    if N.shape[1] == 0:
        return x, ""  # the face is the vertex itself
    Gi, lo_i, hi_i = G[~eq] @ N, g_lo[~eq], g_hi[~eq]
    z = np.linalg.solve(N.T @ H @ N, -(N.T @ c))
    slack = 1e-9 * max(1.0, float(np.abs(x).max()))
    Gz = Gi @ z
    if np.all(Gz >= lo_i - slack) and np.all(Gz <= hi_i + slack):
        return x + D @ (N @ z), ""  # the unconstrained minimiser lies on the face
    if N.shape[1] == 1:  # one direction: the minimiser of a convex parabola on an interval
        a = Gi[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.where(a > 0, hi_i / a, np.where(a < 0, lo_i / a, _INF))
            down = np.where(a > 0, lo_i / a, np.where(a < 0, hi_i / a, -_INF))
        y_lo, y_hi = float(np.max(down, initial=-_INF)), float(np.min(up, initial=_INF))
        if not y_lo <= y_hi + 1e-12:
            return x, "tie-break (stage 4): empty interval on the face; the LP vertex is kept"
        zz = min(max(float(z[0]), y_lo), y_hi)
        return x + D @ (N[:, 0] * zz), ""
    # several directions and a bound in the way: a small dense QP in z (y = N z), solved by HiGHS
    q = qp()
    nz, m = N.shape[1], Gi.shape[0]
    Hz = N.T @ H @ N
    lp = hp.HighsLp()
    lp.num_col_ = nz
    lp.num_row_ = m
    lp.col_cost_ = N.T @ c
    lp.col_lower_ = np.full(nz, -_INF)
    lp.col_upper_ = np.full(nz, _INF)
    lp.row_lower_ = lo_i
    lp.row_upper_ = hi_i
    lp.a_matrix_.format_ = hp.MatrixFormat.kColwise  # dense, column by column
    lp.a_matrix_.start_ = np.arange(0, m * nz + 1, m, dtype=np.int32)
    lp.a_matrix_.index_ = np.tile(np.arange(m, dtype=np.int32), nz)
    lp.a_matrix_.value_ = np.ascontiguousarray(Gi.T).ravel()
    q.clearModel()
    q.passModel(lp)
    rows, cols = np.tril_indices(nz)  # lower triangle, column-wise
    order = np.lexsort((rows, cols))
    rows, cols = rows[order], cols[order]
    q.passHessian(
        nz,
        len(rows),
        hp.HessianFormat.kTriangular,
        np.searchsorted(cols, np.arange(nz + 1)).astype(np.int32),
        rows.astype(np.int32),
        Hz[rows, cols].astype(np.float64),
    )
    q.run()
    st = q.getModelStatus()
    if st == hp.HighsModelStatus.kOptimal:
        sol = q.getSolution()
        zq, dual = np.asarray(sol.col_value, dtype=float), np.asarray(sol.row_dual, dtype=float)
    else:
        # e.g. HiGHS cycling on a degenerate vertex (iteration limit): the finite NNLS route
        ld = _least_distance_qp(Hz, N.T @ c, Gi, lo_i, hi_i, slack)
        if ld is None:
            return x, (f"tie-break (stage 4) QP: {q.modelStatusToString(st)}, and the least-distance solve failed; the LP vertex is kept")
        zq, dual = ld
    zq = _polish_active_set(Hz, N.T @ c, Gi, lo_i, hi_i, zq, dual, slack)
    return x + D @ (N @ zq), ""


def _polish_active_set(
    H: np.ndarray,
    c: np.ndarray,
    G: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    z: np.ndarray,
    dual: np.ndarray,
    slack: float,
) -> np.ndarray:
    """Refine a QP solution of min 1/2 z'Hz + c'z s.t. lo <= Gz <= hi to linear-algebra precision.

    The QP solver stops at its own tolerances; near the minimiser the objective is flat (a step of
    1e-6 changes it by ~1e-12 of ~1e4), so its ``z`` is only good to ~1e-6. The constraints with a
    non-zero multiplier ``dual`` are held at their nearer bound and the equality-constrained
    problem is solved exactly (null-space method, rank-revealing). The refined point is returned
    when it is feasible within ``slack`` and either its multipliers have the signs of an optimum
    (the KKT conditions, which prove it the minimiser of this convex QP) or its objective is not
    worse than that of ``z``; otherwise ``z`` itself.
    """
    grad_scale = max(1.0, float(np.abs(H @ z + c).max(initial=0.0)))
    act = np.flatnonzero(np.abs(dual) > 1e-9 * grad_scale)
    Ga = G[act]
    b = lo[act]
    if len(act):
        gz = Ga @ z
        upper = np.abs(gz - hi[act]) < np.abs(gz - lo[act])
        b = np.where(upper, hi[act], lo[act])
        _, sv, Vt = np.linalg.svd(Ga, full_matrices=True)
        rank = int(np.sum(sv > 1e-10 * max(float(sv.max(initial=0.0)), 1.0)))
        zp = np.linalg.lstsq(Ga, b, rcond=None)[0]
        Na = Vt[rank:].T
    else:
        zp, Na = np.zeros_like(z), np.eye(len(z))
    if Na.shape[1]:
        zp = zp + Na @ np.linalg.solve(Na.T @ H @ Na, -(Na.T @ (H @ zp + c)))
    gp = G @ zp
    if not (np.all(np.isfinite(zp)) and np.all(gp >= lo - slack) and np.all(gp <= hi + slack)):
        return z
    if len(act):
        # stationarity H z + c + Ga' mu = 0: mu >= 0 on rows held at their upper bound, <= 0 at lower
        mu = np.linalg.lstsq(Ga.T, -(H @ zp + c), rcond=None)[0]
        stationary = np.abs(H @ zp + c + Ga.T @ mu).max() <= 1e-9 * grad_scale
        signed = np.where(lo[act] == hi[act], np.abs(mu), np.where(upper, mu, -mu))  # equality: any sign
        if stationary and np.all(signed >= -1e-9 * grad_scale):
            return zp
    else:
        return zp  # the unconstrained minimiser, feasible

    def f(v: np.ndarray) -> float:
        return 0.5 * float(v @ H @ v) + float(c @ v)

    return zp if f(zp) <= f(z) + 1e-12 * max(1.0, abs(f(z))) else z


def _least_distance_qp(
    H: np.ndarray, c: np.ndarray, G: np.ndarray, lo: np.ndarray, hi: np.ndarray, slack: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Solve min 1/2 z'Hz + c'z s.t. lo <= Gz <= hi (H positive definite) by a finite algorithm.

    With H = R'R and w = Rz + R^-T c the problem is the least-distance problem min ||w|| s.t.
    E w >= f (one row per finite bound), solved through the non-negative least-squares problem
    min ||[E'; f'] u - e_(n+1)||, u >= 0 (Lawson and Hanson, "Solving Least Squares Problems",
    1974, ch. 23; ``scipy.optimize.nnls``). Degenerate and repeated rows do not make it cycle.

    Returns
    -------
    (z, dual) or None
        The minimiser and one multiplier per row of ``G`` (lower-bound minus upper-bound
        multiplier; non-zero on the rows held at a bound), or None when H is not positive
        definite, the constraints are infeasible, NNLS does not converge, or the answer violates a
        bound by more than ``slack``.
    """
    from scipy.optimize import nnls

    try:
        R = np.linalg.cholesky(H).T  # H = R'R
    except np.linalg.LinAlgError:
        return None
    n = len(c)
    Hc = np.linalg.solve(H, c)
    GR = np.linalg.solve(R.T, G.T).T  # G R^-1
    shift = G @ Hc
    has_lo, has_hi = np.isfinite(lo), np.isfinite(hi)
    E = np.vstack([GR[has_lo], -GR[has_hi]])
    f = np.concatenate([lo[has_lo] + shift[has_lo], -hi[has_hi] - shift[has_hi]])
    M = np.vstack([E.T, f[None, :]])
    e = np.zeros(n + 1)
    e[n] = 1.0
    try:
        u, _ = nnls(M, e, maxiter=max(100, 10 * M.shape[1]))
    except RuntimeError:
        return None
    res = M @ u - e
    if not res[n] < -1e-12:  # the residual vanishes only when the constraints are infeasible
        return None
    w = -res[:n] / res[n]
    z = np.linalg.solve(R, w) - Hc
    gz = G @ z
    if not (np.all(np.isfinite(z)) and np.all(gz >= lo - slack) and np.all(gz <= hi + slack)):
        return None
    lam = u / -res[n]  # multipliers of E w >= f
    dual = np.zeros(len(lo))
    dual[has_lo] += lam[: int(has_lo.sum())]
    dual[has_hi] -= lam[int(has_lo.sum()) :]
    return z, dual
