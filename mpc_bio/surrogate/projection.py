"""The mass-balance layer: a fixed affine projection of predicted fluxes onto S v = 0.

The paper's surrogate does not conserve mass (paper 1, Discussion). Ours projects the predicted
net fluxes onto the affine set {v : S v = 0, v[input reactions] = -x}, so every intracellular
balance holds to machine precision whatever the network predicts. The projection is computed
once, in float64, from a singular value decomposition (a well-conditioned pseudo-inverse that
also handles the linearly dependent rows every stoichiometric matrix has).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["MassBalanceProjection", "build_projection", "mass_balance_residual"]


@dataclass(frozen=True, eq=False)
class MassBalanceProjection:
    """v_proj = N @ v_hat + G @ x + c: the weighted projection onto {S v = 0, v[inputs] = -x, v[fixed] = values}.

    Attributes
    ----------
    N : ndarray, shape (r, r)
        Linear part applied to the predicted net fluxes (dimensionless).
    G : ndarray, shape (r, k)
        Linear part applied to the raw inputs x (uptakes, mmol/gDW/h), enforcing v[inputs] = -x.
    rank : int
        Rank of the constraint matrix [S; E] (E selects the input reactions).
    c : ndarray, shape (r,)
        Constant part (nonzero only when reactions are pinned to nonzero values).
    fix_inputs : bool
        Whether the input reactions are pinned to -x (else only S v = 0 is enforced).
    fixed_indices : ndarray of int
        Reactions pinned to constant values (e.g. fluxes that are zero at every training point).
    weights : ndarray, shape (r,)
        Per-reaction scale of the projection metric: the correction minimises
        sum_j ((v_j - v_hat_j) / weights_j)^2, so reactions with a large range absorb more.
    """

    N: np.ndarray
    G: np.ndarray
    c: np.ndarray
    rank: int
    fix_inputs: bool
    fixed_indices: np.ndarray
    weights: np.ndarray

    def apply(self, v_hat: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Project net fluxes ``v_hat`` (n, r) for inputs ``x`` (n, k); returns (n, r)."""
        return np.asarray(v_hat) @ self.N.T + np.asarray(x) @ self.G.T + self.c


def build_projection(
    stoichiometry: sp.spmatrix | np.ndarray,
    input_indices: np.ndarray | list[int],
    *,
    fix_inputs: bool = True,
    fixed_indices: np.ndarray | list[int] | None = None,
    fixed_values: np.ndarray | list[float] | None = None,
    weights: np.ndarray | None = None,
    rtol: float = 1e-10,
) -> MassBalanceProjection:
    """Build the affine projection onto {v : S v = 0, v[input_indices] = -x, v[fixed_indices] = fixed_values}.

    Parameters
    ----------
    stoichiometry : sparse or dense matrix, shape (m, r)
        Stoichiometric matrix S (metabolites x reactions); exchange reactions have no boundary
        metabolite, so S v = 0 are exactly the intracellular balances.
    input_indices : sequence of int
        Column index of the exchange reaction of each input; its flux is pinned to -x_j.
    fix_inputs : bool
        Also pin the input exchange fluxes (default); False enforces S v = 0 only, with G = 0.
    fixed_indices, fixed_values : sequences, optional
        Reactions pinned to constants (mmol/gDW/h), e.g. fluxes that are zero at every sample
        point; the constraints must be consistent with S v = 0.
    weights : ndarray, shape (r,), optional
        Positive per-reaction scales of the projection metric (default all ones: the Euclidean
        projection). Using each reaction's flux range spreads the correction in proportion.
    rtol : float
        Singular values below ``rtol * largest`` are treated as zero (dependent rows).

    Returns
    -------
    MassBalanceProjection
    """
    S = stoichiometry.toarray() if sp.issparse(stoichiometry) else np.asarray(stoichiometry, dtype=float)
    S = np.asarray(S, dtype=np.float64)
    m, r = S.shape
    idx = np.asarray(input_indices, dtype=int)
    k = idx.size
    fidx = np.asarray([] if fixed_indices is None else fixed_indices, dtype=int)
    fval = np.asarray([] if fixed_values is None else fixed_values, dtype=np.float64)
    if fval.shape != fidx.shape:
        raise ValueError(f"build_projection: fixed_values must match fixed_indices ({fidx.size}); got {fval.size}.")
    w = np.ones(r) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (r,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"build_projection: weights must be {r} positive finite numbers; got shape {w.shape}.")
    # Constraint rows A v = B x + c0.
    blocks_A, blocks_B, blocks_c = [S], [np.zeros((m, k))], [np.zeros(m)]
    if fix_inputs:
        E = np.zeros((k, r))
        E[np.arange(k), idx] = 1.0
        blocks_A.append(E)
        blocks_B.append(-np.eye(k))
        blocks_c.append(np.zeros(k))
    if fidx.size:
        F = np.zeros((fidx.size, r))
        F[np.arange(fidx.size), fidx] = 1.0
        blocks_A.append(F)
        blocks_B.append(np.zeros((fidx.size, k)))
        blocks_c.append(fval)
    A, B, c0 = np.vstack(blocks_A), np.vstack(blocks_B), np.concatenate(blocks_c)
    # Weighted projection: with v = W u, minimise ||u - u_hat|| s.t. (A W) u = b; rows scaled to
    # unit norm for conditioning (the feasible set and the minimum-norm correction are unchanged).
    AW = A * w[None, :]
    row_norm = np.linalg.norm(AW, axis=1)
    keep = row_norm > 0
    D = 1.0 / row_norm[keep]
    AW, B, c0 = AW[keep] * D[:, None], B[keep] * D[:, None], c0[keep] * D
    U, s, Vt = np.linalg.svd(AW, full_matrices=False)
    rank = int(np.sum(s > rtol * s[0])) if s.size else 0
    U, s, Vt = U[:, :rank], s[:rank], Vt[:rank]
    P_row = Vt.T @ Vt
    N = np.eye(r) - (w[:, None] * P_row) / w[None, :]
    pinv = (Vt.T / s[None, :]) @ U.T  # (r, rows)
    G = w[:, None] * (pinv @ B)
    c = w * (pinv @ c0)
    return MassBalanceProjection(N=N, G=G, c=c, rank=rank, fix_inputs=bool(fix_inputs), fixed_indices=fidx, weights=w)


def mass_balance_residual(stoichiometry: sp.spmatrix | np.ndarray, fluxes: np.ndarray) -> float:
    """max |S v| over all points and metabolites (mmol/gDW/h); ``fluxes`` is (n, r) or (r,)."""
    V = np.atleast_2d(np.asarray(fluxes, dtype=np.float64))
    R = (stoichiometry @ V.T) if sp.issparse(stoichiometry) else np.asarray(stoichiometry) @ V.T
    return float(np.max(np.abs(R))) if R.size else 0.0
