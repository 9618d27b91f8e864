"""Where a reaction switches on: points on the phase boundaries of the pFBA map, and the lines through them.

The pFBA map is piecewise smooth; its kinks lie where a reaction switches on or off (a phase
boundary of the linear programme), and on genome-scale models such boundaries are often straight
lines in the uptake plane (iCH360: sulfate uptake starts along oxygen = 2.7642 glucose + 1.5308,
glutamate synthase along oxygen = 2.7674 glucose + 1.5293). :func:`switch_points` locates a boundary
by bisection of fresh pFBA solves along one input; :func:`fit_hyperplane` fits the line (hyperplane)
through the points, ready for ``SurrogateSettings.kink_lines``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mpc_bio.metabolism.pfba import PFBASolver
from mpc_bio.metabolism.settings import PFBASettings

__all__ = ["switch_points", "fit_hyperplane"]


def switch_points(
    model,
    reaction: str,
    along: str,
    points: Sequence[Sequence[float]] | np.ndarray,
    low: float,
    high: float,
    *,
    settings: PFBASettings | None = None,
    flux_tol: float = 1e-6,
    xtol: float = 1e-10,
    n_scan: int = 64,
) -> np.ndarray:
    """Points where ``reaction`` switches between zero and non-zero flux, by bisection along one input.

    For every row of ``points``, the input ``along`` (the other inputs keep the row's values) is
    first scanned from ``low`` to ``high`` in ``n_scan`` equal steps; the first step across which
    |v_reaction| crosses ``flux_tol`` is then bisected until it is narrower than ``xtol``. Rows
    without a switch in [low, high] come back as NaN; a switch on and off again within one scan
    step is missed (use more steps or a narrower bracket).

    Parameters
    ----------
    model : cobra.Model or PFBASolver
        The model (a solver is built with ``settings``) or a ready solver (then no ``settings``).
    reaction : str
        Reaction id whose switch is located.
    along : str
        Input name bisected (e.g. ``"oxygen"``).
    points : array-like, shape (n, k)
        Input values in the solver's ``input_names`` order (mmol/gDW/h); the ``along`` column is ignored.
    low, high : float
        Bracket of the ``along`` input (mmol/gDW/h), low < high.
    settings : PFBASettings, optional
        pFBA settings when ``model`` is a cobra model (use the training data's, e.g. the l2 tie-break).
    flux_tol : float
        |flux| above this counts as switched on (mmol/gDW/h).
    xtol : float
        Width of the final bracket (mmol/gDW/h).
    n_scan : int
        Scan steps; each row costs n_scan + 1 + log2((high - low) / (n_scan xtol)) pFBA solves.

    Returns
    -------
    ndarray, shape (n, k)
        The switch points (mmol/gDW/h), NaN rows where the bracket holds no switch.
    """
    if isinstance(model, PFBASolver) and settings is not None:
        raise ValueError(
            "The 'settings' parameter of switch_points applies only to a cobra model; a PFBASolver brings its own "
            f"({model.problem.settings!r}). Pass one or the other."
        )
    solver = model if isinstance(model, PFBASolver) else PFBASolver(model, settings)
    names = tuple(solver.input_names)
    if along not in names:
        raise ValueError(f"The 'along' parameter of switch_points must be one of the inputs {names}; got {along!r}.")
    if reaction not in solver.problem.reaction_ids:
        raise ValueError(f"The 'reaction' parameter of switch_points must be a reaction of the model; got {reaction!r}.")
    P = np.array(points, dtype=np.float64, ndmin=2)
    if P.ndim != 2 or P.shape[1] != len(names):
        raise ValueError(f"The 'points' parameter of switch_points must have shape (n, {len(names)}); got {P.shape}.")
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"The 'low' and 'high' parameters of switch_points must be finite with low < high; got {low}, {high}.")
    if not (flux_tol > 0 and xtol > 0):
        raise ValueError(f"The 'flux_tol' and 'xtol' parameters of switch_points must be positive; got {flux_tol}, {xtol}.")
    if isinstance(n_scan, bool) or not isinstance(n_scan, int) or n_scan < 1:
        raise ValueError(f"The 'n_scan' parameter of switch_points must be a positive integer; got {n_scan!r}.")
    j, col = solver.problem.reaction_ids.index(reaction), names.index(along)

    def is_on(x: np.ndarray, value: float) -> bool:
        x = x.copy()
        x[col] = value
        point = solver.solve(x)
        if not np.all(np.isfinite(point.fluxes)):
            raise RuntimeError(f"switch_points: pFBA failed at {dict(zip(names, x))} (status {point.status!r}).")
        return bool(abs(point.fluxes[j]) > flux_tol)

    out = np.full_like(P, np.nan)
    grid = np.linspace(float(low), float(high), n_scan + 1)
    for i, x in enumerate(P):
        on_lo = is_on(x, grid[0])
        step = next((s for s in range(n_scan) if is_on(x, grid[s + 1]) != on_lo), None)
        if step is None:
            continue
        lo, hi = float(grid[step]), float(grid[step + 1])
        while hi - lo > xtol:
            mid = 0.5 * (lo + hi)
            if is_on(x, mid) == on_lo:
                lo = mid
            else:
                hi = mid
        out[i] = x
        out[i, col] = 0.5 * (lo + hi)
    return out


def fit_hyperplane(points: Sequence[Sequence[float]] | np.ndarray) -> tuple[tuple[float, ...], float]:
    """The hyperplane a . x = c closest to the points (total least squares), for ``kink_lines``.

    Parameters
    ----------
    points : array-like, shape (n, k)
        Points on a boundary, e.g. from :func:`switch_points` (NaN rows are skipped); n >= k.

    Returns
    -------
    line : tuple of float
        ``(a_1, ..., a_k, c)`` with |a| = 1 and the largest |a_i| positive.
    max_distance : float
        Largest distance of a point from the hyperplane (mmol/gDW/h): how straight the boundary is.
    """
    P = np.array(points, dtype=np.float64, ndmin=2)
    P = P[np.all(np.isfinite(P), axis=1)] if P.ndim == 2 else P
    if P.ndim != 2 or P.shape[0] < P.shape[1] or P.shape[1] < 2:
        raise ValueError(
            f"The 'points' parameter of fit_hyperplane must hold at least k >= 2 finite points of k inputs; got shape {P.shape}."
        )
    mean = P.mean(axis=0)
    normal = np.linalg.svd(P - mean)[2][-1]
    normal = normal * np.sign(normal[np.argmax(np.abs(normal))])
    distance = np.abs((P - mean) @ normal)
    return (*map(float, normal), float(normal @ mean)), float(distance.max())
