"""Accuracy of a surrogate against reference pFBA fluxes: per-reaction errors, R^2, mass balance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mpc_bio.surrogate.projection import mass_balance_residual

__all__ = ["SurrogateMetrics", "compute_metrics", "TARGETS_DEFAULT"]

#: The issue's accuracy targets (fractions, and mmol/gDW/h for the residual).
TARGETS_DEFAULT = {
    "growth_max_abs_err_frac": 0.01,
    "worst_reaction_max_err_frac": 0.02,
    "median_r2": 0.999,
    "mass_balance_residual": 1e-9,
}


@dataclass(frozen=True, eq=False)
class SurrogateMetrics:
    """Errors of surrogate fluxes against reference fluxes at the same points.

    Attributes
    ----------
    n_points : int
    reaction_ids : tuple of str
    mae, max_abs_err : ndarray, shape (r,)
        Mean and max absolute error per reaction (mmol/gDW/h; growth 1/h).
    flux_range : ndarray, shape (r,)
        max - min of the reference flux per reaction over the points.
    max_err_frac : ndarray, shape (r,)
        max_abs_err / max(flux_range, range_floor).
    point_max_err_frac : ndarray, shape (n,)
        Per point, the largest over reactions of |error| / max(flux_range, range_floor): where in
        the domain the surrogate is off (``summary()["points_within_2pct"]`` counts the points at
        or below 0.02, i.e. where every reaction meets the per-reaction target).
    r2 : ndarray, shape (r,)
        Coefficient of determination per reaction (NaN for reactions constant in the reference).
    growth_max_abs_err, max_growth, growth_max_abs_err_frac : float
        Growth error (1/h), the largest reference growth (1/h) and their ratio.
    worst_reaction : str
    worst_reaction_max_err_frac : float
    median_r2 : float
        Median R^2 over the non-constant reactions.
    mass_balance_residual : float
        max |S v| of the surrogate's fluxes (mmol/gDW/h).
    mass_balance_residual_unprojected : float
        max |S v| of the bare network before the projection (mmol/gDW/h).
    reference_mass_balance_residual : float
        max |S v| of the reference fluxes themselves.
    """

    n_points: int
    reaction_ids: tuple[str, ...]
    mae: np.ndarray
    max_abs_err: np.ndarray
    flux_range: np.ndarray
    max_err_frac: np.ndarray
    point_max_err_frac: np.ndarray
    r2: np.ndarray
    growth_max_abs_err: float
    max_growth: float
    growth_max_abs_err_frac: float
    worst_reaction: str
    worst_reaction_max_err_frac: float
    median_r2: float
    mass_balance_residual: float
    mass_balance_residual_unprojected: float
    reference_mass_balance_residual: float

    def targets_met(self, targets: dict[str, float] | None = None) -> dict[str, bool]:
        """Which of the accuracy targets (default :data:`TARGETS_DEFAULT`) hold."""
        t = targets or TARGETS_DEFAULT
        return {
            "growth_max_abs_err_frac": self.growth_max_abs_err_frac <= t["growth_max_abs_err_frac"],
            "worst_reaction_max_err_frac": self.worst_reaction_max_err_frac <= t["worst_reaction_max_err_frac"],
            "median_r2": self.median_r2 >= t["median_r2"],
            "mass_balance_residual": self.mass_balance_residual <= t["mass_balance_residual"],
        }

    def worst(self, n: int = 5) -> list[tuple[str, float]]:
        """The n reactions with the largest max_err_frac."""
        order = np.argsort(-self.max_err_frac)[:n]
        return [(self.reaction_ids[i], float(self.max_err_frac[i])) for i in order]

    def summary(self) -> dict[str, Any]:
        """Json-serialisable scalar summary plus the worst reactions."""
        return {
            "n_points": self.n_points,
            "growth_max_abs_err": self.growth_max_abs_err,
            "max_growth": self.max_growth,
            "growth_max_abs_err_frac": self.growth_max_abs_err_frac,
            "worst_reaction": self.worst_reaction,
            "worst_reaction_max_err_frac": self.worst_reaction_max_err_frac,
            "median_reaction_max_err_frac": float(np.median(self.max_err_frac)),
            "median_r2": self.median_r2,
            "reactions_within_2pct": int(np.sum(self.max_err_frac <= 0.02)),
            "n_reactions": len(self.reaction_ids),
            "points_within_2pct": int(np.sum(self.point_max_err_frac <= 0.02)),
            "min_r2": float(np.nanmin(self.r2)) if np.any(np.isfinite(self.r2)) else float("nan"),
            "mass_balance_residual": self.mass_balance_residual,
            "mass_balance_residual_unprojected": self.mass_balance_residual_unprojected,
            "reference_mass_balance_residual": self.reference_mass_balance_residual,
            "worst_reactions": self.worst(5),
            "targets_met": self.targets_met(),
        }

    def per_reaction(self) -> dict[str, dict[str, float]]:
        """Per-reaction table {id: {mae, max_abs_err, range, max_err_frac, r2}}."""
        return {
            rid: {
                "mae": float(self.mae[i]),
                "max_abs_err": float(self.max_abs_err[i]),
                "range": float(self.flux_range[i]),
                "max_err_frac": float(self.max_err_frac[i]),
                "r2": float(self.r2[i]),
            }
            for i, rid in enumerate(self.reaction_ids)
        }


def compute_metrics(
    surrogate,
    inputs: np.ndarray,
    reference_fluxes: np.ndarray,
    *,
    range_floor: float = 1e-3,
    predicted: np.ndarray | None = None,
    chunk_size: int = 50_000,
) -> SurrogateMetrics:
    """Compare a surrogate with reference fluxes at the same inputs.

    Parameters
    ----------
    surrogate : Surrogate
    inputs : ndarray, shape (n, k)
        Uptakes (mmol/gDW/h) in the surrogate's input order.
    reference_fluxes : ndarray, shape (n, r)
        Reference net fluxes (e.g. freshly solved pFBA), columns in ``surrogate.reaction_ids``.
    range_floor : float
        Smallest flux range used in ``max_err_frac`` (mmol/gDW/h, default 1e-3): reactions whose
        range over the points is below it (blocked, or carrying only LP round-off of ~1e-7) are
        judged against this absolute error and left out of the median R^2.
    predicted : ndarray, optional
        Precomputed surrogate fluxes at ``inputs`` (else evaluated here).
    chunk_size : int
        Points evaluated at a time (> 0): memory stays at a few (chunk_size, r) arrays beside the
        inputs, e.g. for the 500,000 training points of an iCH360 surrogate.

    Returns
    -------
    SurrogateMetrics
    """
    if not (isinstance(chunk_size, (int, np.integer)) and chunk_size > 0):
        raise ValueError(f"The 'chunk_size' parameter of compute_metrics must be a positive integer; got {chunk_size!r}.")
    X = np.asarray(inputs, dtype=np.float64)
    R = np.asarray(reference_fluxes, dtype=np.float64)
    ok = np.all(np.isfinite(R), axis=1)
    if not ok.all():
        X, R = X[ok], R[ok]
    if X.shape[0] == 0:
        raise ValueError("compute_metrics: no reference point has finite fluxes.")
    if predicted is not None:
        predicted = np.asarray(predicted)[ok]
    n, r = R.shape
    rng = R.max(axis=0) - R.min(axis=0)
    scale = np.maximum(rng, range_floor)
    mean_ref = R.mean(axis=0)
    S = surrogate.stoichiometry
    err_sum, mx, ss_res, ss_tot = np.zeros(r), np.zeros(r), np.zeros(r), np.zeros(r)
    point_frac = np.empty(n)
    residual = residual_unprojected = residual_ref = 0.0
    for start in range(0, n, chunk_size):
        c = slice(start, min(start + chunk_size, n))
        P = surrogate.predict(X[c], check_domain=False) if predicted is None else predicted[c]
        err = np.abs(P - R[c])
        err_sum += err.sum(axis=0)
        np.maximum(mx, err.max(axis=0), out=mx)
        point_frac[c] = (err / scale).max(axis=1)
        ss_res += (err**2).sum(axis=0)
        ss_tot += ((R[c] - mean_ref) ** 2).sum(axis=0)
        residual = max(residual, mass_balance_residual(S, P))
        residual_unprojected = max(residual_unprojected, mass_balance_residual(S, surrogate.unprojected(X[c])))
        residual_ref = max(residual_ref, mass_balance_residual(S, R[c]))
    frac = mx / scale
    nonconst = rng > range_floor
    r2 = np.full(r, np.nan)
    r2[nonconst] = 1.0 - ss_res[nonconst] / ss_tot[nonconst]
    g = surrogate.growth_index
    max_growth = float(R[:, g].max())
    worst = int(np.argmax(frac))
    return SurrogateMetrics(
        n_points=int(n),
        reaction_ids=tuple(surrogate.reaction_ids),
        mae=err_sum / n,
        max_abs_err=mx,
        flux_range=rng,
        max_err_frac=frac,
        point_max_err_frac=point_frac,
        r2=r2,
        growth_max_abs_err=float(mx[g]),
        max_growth=max_growth,
        growth_max_abs_err_frac=float(mx[g] / max_growth) if max_growth > 0 else float("inf"),
        worst_reaction=surrogate.reaction_ids[worst],
        worst_reaction_max_err_frac=float(frac[worst]),
        median_r2=float(np.nanmedian(r2)) if np.any(nonconst) else float("nan"),
        mass_balance_residual=residual,
        mass_balance_residual_unprojected=residual_unprojected,
        reference_mass_balance_residual=residual_ref,
    )
