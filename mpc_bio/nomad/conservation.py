"""Conserved moieties and the reduced system of independent metabolites.

With S (n_met x n_rxn) of rank r, QR with column pivoting of S^T picks r independent rows
N_r = S[independent]; the link matrix L (n_met x r) satisfies S = L N_r, and the moiety matrix
G (n_met - r x n_met) spans the left null space (G S = 0): G x is constant in time. Dependent
concentrations follow x_dep = x_dep,ref + L0 (x_ind - x_ind,ref). Reduced Jacobian:
J_r = N_r (dv/dx) L / V_cell (Reder 1988).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from mpc_bio.nomad.network import KineticNetwork

__all__ = ["ConservationAnalysis", "analyse_conservation"]


@dataclass(frozen=True, eq=False)
class ConservationAnalysis:
    """Independent metabolites, link matrix and moieties of a network.

    Attributes
    ----------
    independent : ndarray of int
        Indices (into ``metabolite_ids``) of the independent metabolites, length r.
    dependent : ndarray of int
        Indices of the dependent metabolites.
    reduced_stoichiometry : ndarray, shape (r, n_rxn)
        N_r = S[independent].
    link : ndarray, shape (n_met, r)
        L with S = L N_r (rows of independent metabolites form the identity).
    moieties : ndarray, shape (n_met - r, n_met)
        Left null space basis G, G S = 0 (rows scaled to max |entry| 1).
    """

    metabolite_ids: tuple[str, ...]
    independent: np.ndarray
    dependent: np.ndarray
    reduced_stoichiometry: np.ndarray
    link: np.ndarray
    moieties: np.ndarray

    @property
    def rank(self) -> int:
        return int(self.independent.size)

    @property
    def n_moieties(self) -> int:
        return int(self.dependent.size)

    def moiety_names(self, tol: float = 1e-9) -> list[str]:
        """Human-readable moieties, e.g. ``'nad_c + nadh_c'``."""
        names = []
        for g in self.moieties:
            parts = [f"{'' if abs(c - 1) < tol else f'{c:.3g} '}{self.metabolite_ids[i]}" for i, c in enumerate(g) if abs(c) > tol]
            names.append(" + ".join(parts))
        return names


def analyse_conservation(network: KineticNetwork | np.ndarray, tol: float = 1e-9) -> ConservationAnalysis:
    """Conservation analysis of a network (or a stoichiometric matrix).

    Parameters
    ----------
    network : KineticNetwork or ndarray (n_met, n_rxn)
    tol : float
        Relative tolerance of the rank decision (of the largest pivot).
    """
    if isinstance(network, KineticNetwork):
        S, ids = network.stoichiometry, network.metabolite_ids
    else:
        S = np.asarray(network, dtype=float)
        ids = tuple(f"m{i}" for i in range(S.shape[0]))
    n_met = S.shape[0]
    _, R, piv = scipy.linalg.qr(S.T, mode="economic", pivoting=True)
    diag = np.abs(np.diag(R))
    rank = int(np.sum(diag > tol * max(diag.max(initial=0.0), 1.0)))
    independent = np.sort(piv[:rank])
    dependent = np.array(sorted(set(range(n_met)) - set(independent.tolist())), dtype=int)
    Nr = S[independent]
    # L: solve L Nr = S in least squares (exact in exact arithmetic since rows of S lie in row space of Nr).
    L = np.linalg.lstsq(Nr.T, S.T, rcond=None)[0].T
    L[np.abs(L) < 1e-12] = 0.0
    L[independent] = np.eye(rank)
    resid = np.abs(L @ Nr - S).max(initial=0.0)
    if resid > 1e-8 * max(1.0, np.abs(S).max()):
        raise ValueError(f"Conservation analysis failed: |L N_r - S| = {resid:.3g}.")
    G = np.zeros((dependent.size, n_met))
    for k, d in enumerate(dependent):
        G[k, d] = 1.0
        G[k, independent] = -L[d]
    G /= np.abs(G).max(axis=1, keepdims=True).clip(min=1e-300)
    return ConservationAnalysis(tuple(ids), independent, dependent, Nr, L, G)
