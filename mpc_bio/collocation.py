"""Radau IIA direct collocation: the element equations of the offline feed optimiser and co-design.

On an element of length h starting at state z_0, the states at the Radau points tau_1 < ... <
tau_d = 1 (``casadi.collocation_points(d, "radau")``) are unknowns z_1..z_d of a polynomial
through z_0..z_d; the equations require its derivative to match the right-hand side at each point,
h f(z_j) = sum_r C[r, j] z_r, with C from ``casadi.collocation_coeff``. The last point is the
element's end, so continuity joins z_d to the next element's z_0. Radau IIA of degree d is of
order 2d - 1 and stiffly accurate.
"""

from __future__ import annotations

from collections.abc import Callable

import casadi as ca
import numpy as np

from mpc_bio.errors import MpcBioError

__all__ = ["radau_points", "radau_residuals"]


def radau_points(deg: int) -> np.ndarray:
    """Radau points tau_1..tau_deg in (0, 1] of one element (the last is 1), dimensionless."""
    if isinstance(deg, bool) or not isinstance(deg, int) or not 1 <= deg <= 9:
        raise MpcBioError(f"The 'deg' parameter of radau_points must be an integer in [1, 9]. Got {deg!r} instead.")
    return np.asarray(ca.collocation_points(deg, "radau"), dtype=float)


def radau_residuals(rhs: Callable, z_start, z_points: list, h: float) -> list:
    """Collocation residuals of one element, ``h f(z_j) - sum_r C[r, j] z_r`` for j = 1..d.

    Parameters
    ----------
    rhs : callable
        ``rhs(z_j, j)`` -> dz/dt at point j (0-based over ``z_points``), in the units of ``z`` per
        hour; CasADi expressions.
    z_start : casadi expression
        State at the element's start.
    z_points : list of casadi expressions
        States at the d Radau points (the last is the element's end).
    h : float
        Element length (h).

    Returns
    -------
    list of casadi expressions
        d residual vectors, in the units of ``z`` (zero on the collocation polynomial).
    """
    d = len(z_points)
    C, _, _ = ca.collocation_coeff(ca.collocation_points(d, "radau"))
    C = np.asarray(ca.DM(C))
    z = [z_start, *z_points]
    out = []
    for j in range(d):
        poly = sum(float(C[r, j]) * z[r] for r in range(d + 1) if C[r, j] != 0.0)
        out.append(h * rhs(z_points[j], j) - poly)
    return out
