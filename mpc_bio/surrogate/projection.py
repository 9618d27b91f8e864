"""The mass-balance layer: a fixed affine projection of predicted fluxes onto S v = 0.

The paper's surrogate does not conserve mass (paper 1, Discussion). Ours projects the predicted
net fluxes onto the affine set {v : S v = 0, v[input reactions] = -x, v[pinned] = constants}, so
every intracellular balance holds to machine precision whatever the network predicts.

The projection is built once, in float64, in factored form. The pinned reactions and the inputs
are set exactly; on the other (free) reactions J the set is {S_J v_J = -S_F v_F}, and the
projection is v_J = W_J Z Z^T W_J^-1 v_hat_J + a particular solution, where Z is an orthonormal
basis of the null space of S_J W_J (W: the per-reaction metric, rows scaled to unit norm) and the
particular solution uses its pseudo-inverse, both from one singular value decomposition (which
also handles the linearly dependent rows every stoichiometric matrix has). The linear part is
thus ``left @ right`` with ``left`` (r, d) and ``right`` (d, r), d = dim null(S_J) the degrees of
freedom left: on genome-scale models with their blocked reactions pinned d is a few dozen while r
is thousands, so applying the factors costs 2 d r instead of r^2 per point, and the SVD is of
S_J alone (the pinned columns dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

__all__ = ["MassBalanceProjection", "build_projection", "mass_balance_residual"]


@dataclass(frozen=True, eq=False)
class MassBalanceProjection:
    """v_proj = left @ right @ v_hat + G @ x + c: the weighted projection onto {S v = 0, v[inputs] = -x, v[fixed] = values}.

    Attributes
    ----------
    left : ndarray, shape (r, d)
        W Z: the free directions (mmol/gDW/h per unit of z); zero rows at pinned reactions and,
        with ``fix_inputs``, at the inputs. d is the dimension of the feasible set's null space.
    right : ndarray, shape (d, r)
        Z^T W^-1: the coordinates z of a net flux vector along those directions; zero columns
        at pinned reactions and fixed inputs.
    G : ndarray, shape (r, k)
        Linear part applied to the raw inputs x (uptakes, mmol/gDW/h), enforcing v[inputs] = -x.
    c : ndarray, shape (r,)
        Constant part (nonzero only when reactions are pinned to nonzero values).
    rank : int
        Rank of the constraint matrix [S; E; F] (E selects the fixed inputs, F the pinned
        reactions): r - d.
    fix_inputs : bool
        Whether the input reactions are pinned to -x (else only S v = 0 is enforced).
    fixed_indices : ndarray of int
        Reactions pinned to constant values (e.g. fluxes that are zero at every training point).
    weights : ndarray, shape (r,)
        Per-reaction scale of the projection metric: the correction minimises
        sum_j ((v_j - v_hat_j) / weights_j)^2, so reactions with a large range absorb more.
    """

    left: np.ndarray
    right: np.ndarray
    G: np.ndarray
    c: np.ndarray
    rank: int
    fix_inputs: bool
    fixed_indices: np.ndarray
    weights: np.ndarray

    @property
    def dim(self) -> int:
        """d: the number of free directions (columns of :attr:`left`)."""
        return int(self.left.shape[1])

    @cached_property
    def N(self) -> np.ndarray:
        """The linear part as one dense (r, r) matrix, ``left @ right`` (dimensionless; built on first use)."""
        return self.left @ self.right

    def apply(self, v_hat: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Project net fluxes ``v_hat`` (n, r) for inputs ``x`` (n, k); returns (n, r)."""
        return (np.asarray(v_hat) @ self.right.T) @ self.left.T + np.asarray(x) @ self.G.T + self.c


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
        point; distinct, and not inputs when ``fix_inputs``. The pins are exact; if they are not
        quite consistent with S v = 0 (data at the LP tolerance), the balances of the free
        reactions hold in the least-squares sense.
    weights : ndarray, shape (r,), optional
        Positive per-reaction scales of the projection metric (default all ones: the Euclidean
        projection). Using each reaction's flux range spreads the correction in proportion.
    rtol : float
        Singular values of the scaled S_J below ``rtol * largest`` are treated as zero (dependent rows).

    Returns
    -------
    MassBalanceProjection
    """
    m, r = stoichiometry.shape
    idx = np.asarray(input_indices, dtype=int)
    k = idx.size
    fidx = np.asarray([] if fixed_indices is None else fixed_indices, dtype=int)
    fval = np.asarray([] if fixed_values is None else fixed_values, dtype=np.float64)
    if fval.shape != fidx.shape:
        raise ValueError(f"build_projection: fixed_values must match fixed_indices ({fidx.size}); got {fval.size}.")
    w = np.ones(r) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (r,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"build_projection: weights must be {r} positive finite numbers; got shape {w.shape}.")
    for name, ix in (("input_indices", idx), ("fixed_indices", fidx)):
        if ix.size and (ix.min() < 0 or ix.max() >= r):
            raise ValueError(f"build_projection: {name} must be column indices in [0, {r}); got {ix.min()}..{ix.max()}.")
    fixed = np.concatenate([idx, fidx]) if fix_inputs else fidx
    if np.unique(fixed).size != fixed.size:
        raise ValueError(
            "build_projection: fixed_indices must be distinct"
            + (" and not input_indices (pinned to -x)" if fix_inputs else "")
            + f"; got {fidx.size} fixed and {k} inputs with {fixed.size - np.unique(fixed).size} repeated."
        )
    free = np.setdiff1d(np.arange(r), fixed)
    S = stoichiometry.tocsc() if sp.issparse(stoichiometry) else np.asarray(stoichiometry, dtype=np.float64)

    def cols(j):
        block = S[:, j]
        return np.asarray(block.toarray() if sp.issparse(block) else block, dtype=np.float64)

    # free part with v = W u: S_J W_J u_J = b; rows scaled to unit norm for conditioning (the
    # feasible set and the minimum-norm correction are unchanged), rows without free entries dropped
    M = cols(free) * w[free][None, :]
    row_norm = np.linalg.norm(M, axis=1)
    keep = row_norm > 0
    D = 1.0 / row_norm[keep]
    M = M[keep] * D[:, None]
    if M.size:
        U, s, Vt = np.linalg.svd(M, full_matrices=True)
        rank_free = int(np.sum(s > rtol * s[0])) if s.size and s[0] > 0 else 0
    else:  # no free reaction, or none in any balance
        U, s, Vt = np.zeros((M.shape[0], 0)), np.zeros(0), np.eye(free.size)
        rank_free = 0
    Z = Vt[rank_free:].T  # (|J|, d): orthonormal basis of null(M)
    d = Z.shape[1]
    left = np.zeros((r, d))
    left[free] = w[free][:, None] * Z
    right = np.zeros((d, r))
    right[:, free] = Z.T / w[free][None, :]
    # particular solution: u_J = pinv(M) D b with b = -S_F v_F, v_inputs = -x, v_fixed = fixed_values
    pinv = (Vt[:rank_free].T / s[:rank_free][None, :]) @ U[:, :rank_free].T  # (|J|, rows kept)
    G = np.zeros((r, k))
    c = np.zeros(r)
    if fix_inputs and k:
        G[free] = w[free][:, None] * (pinv @ (cols(idx)[keep] * D[:, None]))  # b = -S_in (-x) = S_in x
        G[idx, np.arange(k)] = -1.0
    if fidx.size:
        c[free] = w[free] * (pinv @ (-(cols(fidx)[keep] @ fval) * D))
        c[fidx] = fval
    return MassBalanceProjection(left=left, right=right, G=G, c=c, rank=r - d, fix_inputs=bool(fix_inputs), fixed_indices=fidx, weights=w)


def mass_balance_residual(stoichiometry: sp.spmatrix | np.ndarray, fluxes: np.ndarray) -> float:
    """max |S v| over all points and metabolites (mmol/gDW/h); ``fluxes`` is (n, r) or (r,)."""
    V = np.atleast_2d(np.asarray(fluxes, dtype=np.float64))
    R = (stoichiometry @ V.T) if sp.issparse(stoichiometry) else np.asarray(stoichiometry) @ V.T
    return float(np.max(np.abs(R))) if R.size else 0.0
