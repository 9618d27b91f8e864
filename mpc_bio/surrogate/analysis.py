"""Evaluation of a surrogate against fresh pFBA solves, and the data behind paper 1's figures 2, 4 and 6.

Every function here computes; :mod:`mpc_bio.plotting.surrogate` only draws the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mpc_bio.surrogate.metrics import SurrogateMetrics, compute_metrics

__all__ = [
    "SurrogateEvaluation",
    "UptakeResponse",
    "FluxComparison",
    "SensitivityMap",
    "GLYCOLYSIS_REACTIONS",
    "random_test_points",
    "solve_reference",
    "evaluate_surrogate",
    "uptake_response",
    "compare_fluxes",
    "sensitivity_map",
    "michaelis_menten",
    "interpolation_baseline",
]

#: Glycolysis reactions (paper 1, figure 5), BiGG ids as in e_coli_core and iCH360.
GLYCOLYSIS_REACTIONS = ("GLCpts", "PGI", "PFK", "FBA", "TPI", "GAPD", "PGK", "PGM", "ENO", "PYK")


def michaelis_menten(concentration: np.ndarray, vmax: float = 10.0, km: float = 1.0) -> np.ndarray:
    """Uptake q = vmax * c / (km + c): c in mmol/L, vmax in mmol/gDW/h, km in mmol/L."""
    c = np.asarray(concentration, dtype=np.float64)
    return vmax * c / (km + c)


def _index(names: tuple[str, ...], want: str, fallback: int) -> int:
    return names.index(want) if want in names else fallback


def random_test_points(surrogate, n_points: int, seed: int = 0, *, grid_step: float | None = 0.1) -> np.ndarray:
    """Uniform random points in the surrogate's domain, none on the training grid.

    Points that fall within 1e-6 of a multiple of ``grid_step`` in every coordinate are redrawn,
    so the test set is off-grid (never the training data).
    """
    rng = np.random.default_rng(seed)
    lo, hi = surrogate.domain_low, surrogate.domain_high
    pts = rng.uniform(lo, hi, size=(n_points, lo.size))
    if grid_step:
        for _ in range(10):
            on = np.all(np.abs(pts / grid_step - np.round(pts / grid_step)) < 1e-6, axis=1)
            if not on.any():
                break
            pts[on] = rng.uniform(lo, hi, size=(int(on.sum()), lo.size))
    return pts


def solve_reference(model, points: np.ndarray, pfba_settings=None, *, n_workers: int = 1, progress: bool = False):
    """Fresh pFBA solutions at ``points`` (n, k) as a FluxDataset (the metabolism layer's fast sampler,
    :func:`mpc_bio.metabolism.sampling.sample_pfba`)."""
    from mpc_bio.metabolism.sampling import sample_pfba

    kwargs: dict[str, Any] = {"n_workers": n_workers, "progress": progress}
    if pfba_settings is not None:
        kwargs["settings"] = pfba_settings
    return sample_pfba(model, np.asarray(points, dtype=np.float64), **kwargs)


@dataclass(frozen=True, eq=False)
class SurrogateEvaluation:
    """A surrogate compared with fresh pFBA solves at random off-grid points.

    Attributes
    ----------
    inputs : ndarray (n, k)
        Test uptakes (mmol/gDW/h).
    reference : ndarray (n, r)
        pFBA net fluxes at the test points.
    predicted : ndarray (n, r)
        Surrogate net fluxes at the same points.
    status : ndarray (n,)
        pFBA status codes (0 optimal, 1 relaxed, ...).
    metrics : SurrogateMetrics
    reaction_ids : tuple of str
    objective_id : str
        The growth reaction.
    """

    inputs: np.ndarray
    reference: np.ndarray
    predicted: np.ndarray
    status: np.ndarray
    metrics: SurrogateMetrics
    reaction_ids: tuple[str, ...]
    objective_id: str

    def summary(self) -> dict[str, Any]:
        """Json-serialisable metrics summary with the status counts."""
        out = self.metrics.summary()
        out["status_counts"] = {str(c): int(np.sum(self.status == c)) for c in np.unique(self.status)}
        return out


def evaluate_surrogate(
    surrogate,
    model,
    *,
    n_points: int = 1000,
    seed: int = 0,
    pfba_settings=None,
    n_workers: int = 1,
    progress: bool = False,
) -> SurrogateEvaluation:
    """Metrics of ``surrogate`` against pFBA freshly solved at ``n_points`` random off-grid points.

    Parameters
    ----------
    surrogate : Surrogate
    model : cobra.Model or str or Path
        The model the surrogate was trained on (checked by reaction ids).
    n_points : int
        Number of random test points in the training domain.
    seed : int
        Seed of the test points.
    pfba_settings : PFBASettings, optional
        Must be the settings of the training data (inputs, relaxation weights).
    """
    X = random_test_points(surrogate, n_points, seed)
    ref = solve_reference(model, X, pfba_settings, n_workers=n_workers, progress=progress)
    if tuple(ref.reaction_ids) != tuple(surrogate.reaction_ids):
        raise ValueError(
            "evaluate_surrogate: the model's reactions differ from the surrogate's outputs; pass the model the surrogate was trained on."
        )
    P = surrogate.predict(X, check_domain=False)
    m = compute_metrics(surrogate, X, ref.fluxes, predicted=P)
    return SurrogateEvaluation(
        inputs=X,
        reference=ref.fluxes,
        predicted=P,
        status=ref.status,
        metrics=m,
        reaction_ids=tuple(surrogate.reaction_ids),
        objective_id=surrogate.objective_id,
    )


@dataclass(frozen=True, eq=False)
class UptakeResponse:
    """Growth and glucose uptake vs extracellular glucose (paper 1, figure 2).

    Attributes
    ----------
    concentration : ndarray (c,)
        Extracellular glucose (mmol/L).
    glucose_input : ndarray (c,)
        Michaelis-Menten glucose uptake given to the surrogate (mmol/gDW/h).
    oxygen_uptakes : ndarray (o,)
        Fixed oxygen uptakes (mmol/gDW/h), one curve each.
    growth : ndarray (o, c)
        Surrogate growth (1/h).
    glucose_uptake : ndarray (o, c)
        Surrogate glucose uptake, -v(glucose exchange) (mmol/gDW/h).
    reference_growth, reference_glucose_uptake : ndarray (o, c) or None
        pFBA at the same inputs, when a model was given.
    vmax, km : float
        Michaelis-Menten parameters (mmol/gDW/h, mmol/L).
    """

    concentration: np.ndarray
    glucose_input: np.ndarray
    oxygen_uptakes: np.ndarray
    growth: np.ndarray
    glucose_uptake: np.ndarray
    reference_growth: np.ndarray | None
    reference_glucose_uptake: np.ndarray | None
    vmax: float
    km: float


def uptake_response(
    surrogate,
    *,
    concentration: np.ndarray | None = None,
    oxygen_uptakes: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0),
    vmax: float = 10.0,
    km: float = 1.0,
    glucose_input: str = "glucose",
    oxygen_input: str = "oxygen",
    model=None,
    pfba_settings=None,
) -> UptakeResponse:
    """Figure-2 curves: glucose uptake from Michaelis-Menten kinetics, oxygen fixed per curve.

    With ``model`` given, pFBA is solved at the same inputs for reference markers.
    """
    c = np.linspace(0.0, 5.0, 101) if concentration is None else np.asarray(concentration, dtype=np.float64)
    q = michaelis_menten(c, vmax, km)
    ig = _index(surrogate.input_names, glucose_input, 0)
    io = _index(surrogate.input_names, oxygen_input, 1)
    o2 = np.asarray(oxygen_uptakes, dtype=np.float64)
    X = np.zeros((o2.size * c.size, surrogate.n_inputs))
    X[:, ig] = np.tile(q, o2.size)
    X[:, io] = np.repeat(o2, c.size)
    V = surrogate.predict(X, check_domain=True)
    j_glc = surrogate.index(surrogate.input_reactions[ig])
    growth = V[:, surrogate.growth_index].reshape(o2.size, c.size)
    upt = -V[:, j_glc].reshape(o2.size, c.size)
    rg = ru = None
    if model is not None:
        ref = solve_reference(model, X, pfba_settings)
        rg = ref.fluxes[:, surrogate.growth_index].reshape(o2.size, c.size)
        ru = -ref.fluxes[:, j_glc].reshape(o2.size, c.size)
    return UptakeResponse(c, q, o2, growth, upt, rg, ru, float(vmax), float(km))


@dataclass(frozen=True, eq=False)
class FluxComparison:
    """Surrogate vs pFBA fluxes at one input point (paper 1, figure 4).

    Attributes
    ----------
    inputs : ndarray (k,)
        The point (mmol/gDW/h), e.g. glucose = oxygen = 10.
    reaction_ids : tuple of str
    reference, predicted : ndarray (r,)
        Net fluxes from pFBA and from the surrogate (mmol/gDW/h).
    glycolysis_ids : tuple of str
        The glycolysis reactions present in the model (figure 5).
    total_reference, total_predicted : float
        Sum of |v| over all reactions (mmol/gDW/h).
    glycolysis_reference, glycolysis_predicted : float
        Sum of |v| over the glycolysis reactions.
    """

    inputs: np.ndarray
    reaction_ids: tuple[str, ...]
    reference: np.ndarray
    predicted: np.ndarray
    glycolysis_ids: tuple[str, ...]
    total_reference: float
    total_predicted: float
    glycolysis_reference: float
    glycolysis_predicted: float

    def glycolysis(self) -> tuple[np.ndarray, np.ndarray]:
        """(reference, predicted) fluxes of the glycolysis reactions."""
        idx = [self.reaction_ids.index(g) for g in self.glycolysis_ids]
        return self.reference[idx], self.predicted[idx]


def compare_fluxes(
    surrogate,
    model,
    point: tuple[float, ...] = (10.0, 10.0),
    *,
    glycolysis: tuple[str, ...] = GLYCOLYSIS_REACTIONS,
    pfba_settings=None,
) -> FluxComparison:
    """Figure-4 data: surrogate and freshly solved pFBA fluxes at one point (default glucose = oxygen = 10)."""
    x = np.asarray(point, dtype=np.float64)
    ref = solve_reference(model, x[None, :], pfba_settings)
    vr = ref.fluxes[0]
    vp = surrogate.predict(x[None, :])[0]
    gly = tuple(g for g in glycolysis if g in surrogate.reaction_ids)
    gi = [surrogate.index(g) for g in gly]
    return FluxComparison(
        inputs=x,
        reaction_ids=tuple(surrogate.reaction_ids),
        reference=vr,
        predicted=vp,
        glycolysis_ids=gly,
        total_reference=float(np.abs(vr).sum()),
        total_predicted=float(np.abs(vp).sum()),
        glycolysis_reference=float(np.abs(vr[gi]).sum()),
        glycolysis_predicted=float(np.abs(vp[gi]).sum()),
    )


@dataclass(frozen=True, eq=False)
class SensitivityMap:
    """d(growth)/d(uptake) over the input grid by autograd (paper 1, figure 6).

    Attributes
    ----------
    glucose, oxygen : ndarray (a,), (b,)
        Grid axes (mmol/gDW/h).
    d_growth_d_glucose, d_growth_d_oxygen : ndarray (b, a)
        Sensitivities in (1/h) per (mmol/gDW/h); rows follow oxygen, columns glucose.
    growth : ndarray (b, a)
        Surrogate growth (1/h) on the grid.
    """

    glucose: np.ndarray
    oxygen: np.ndarray
    d_growth_d_glucose: np.ndarray
    d_growth_d_oxygen: np.ndarray
    growth: np.ndarray


def sensitivity_map(surrogate, *, n: int = 101, glucose_input: str = "glucose", oxygen_input: str = "oxygen") -> SensitivityMap:
    """Figure-6 maps on an n x n grid spanning the training domain."""
    ig = _index(surrogate.input_names, glucose_input, 0)
    io = _index(surrogate.input_names, oxygen_input, 1)
    a = np.linspace(surrogate.domain_low[ig], surrogate.domain_high[ig], n)
    b = np.linspace(surrogate.domain_low[io], surrogate.domain_high[io], n)
    A, B = np.meshgrid(a, b)
    X = np.zeros((A.size, surrogate.n_inputs))
    X[:, ig] = A.ravel()
    X[:, io] = B.ravel()
    if surrogate.n_inputs > 2:
        X[:, [j for j in range(surrogate.n_inputs) if j not in (ig, io)]] = (
            0.5 * (surrogate.domain_low + surrogate.domain_high)[[j for j in range(surrogate.n_inputs) if j not in (ig, io)]]
        )
    G = surrogate.growth_sensitivity(X)
    g = surrogate.predict_growth(X)
    return SensitivityMap(
        glucose=a,
        oxygen=b,
        d_growth_d_glucose=G[:, ig].reshape(A.shape),
        d_growth_d_oxygen=G[:, io].reshape(A.shape),
        growth=g.reshape(A.shape),
    )


def interpolation_baseline(dataset, inputs: np.ndarray, reference: np.ndarray, *, range_floor: float = 1e-3) -> dict[str, Any] | None:
    """Errors of piecewise-linear interpolation of the training grid at the test points.

    A refined grid (grid plus points added by :func:`mpc_bio.metabolism.refinement.refine_dataset`)
    is interpolated linearly on the Delaunay triangulation of all its points (2 or 3 inputs).

    The data limit of any surrogate trained on that grid: where the pFBA map has kinks sharper
    than the grid spacing, even exact interpolation of the grid misses the fresh solutions.
    Returns ``None`` when some flux is not finite, or the points are neither a complete regular grid nor 2-3 inputs.

    Returns
    -------
    dict
        ``growth_max_abs_err_frac``, ``worst_reaction``, ``worst_reaction_max_err_frac``,
        ``median_r2``, ``reactions_within_2pct`` (count), ``worst_reactions`` (5 pairs).
    """
    from scipy.interpolate import LinearNDInterpolator, RegularGridInterpolator

    Xd = np.asarray(dataset.inputs, dtype=np.float64)
    axes = [np.unique(Xd[:, j]) for j in range(Xd.shape[1])]
    if not np.all(np.isfinite(dataset.fluxes)):
        return None
    if int(np.prod([a.size for a in axes])) == Xd.shape[0]:
        pos = [np.searchsorted(a, Xd[:, j]) for j, a in enumerate(axes)]
        F = np.empty((*[a.size for a in axes], dataset.fluxes.shape[1]))
        F[tuple(pos)] = dataset.fluxes
        interp = RegularGridInterpolator(tuple(axes), F)
    elif 2 <= Xd.shape[1] <= 3:  # a refined grid (extra points): linear interpolation on its Delaunay triangulation
        interp = LinearNDInterpolator(Xd, dataset.fluxes)
    else:
        return None
    X = np.asarray(inputs, dtype=np.float64)
    R = np.asarray(reference, dtype=np.float64)
    ok = np.all(np.isfinite(R), axis=1)
    P, R = interp(X[ok]), R[ok]
    rng = R.max(axis=0) - R.min(axis=0)
    frac = np.abs(P - R).max(axis=0) / np.maximum(rng, range_floor)
    nonconst = rng > range_floor
    r2 = 1.0 - ((P - R) ** 2).sum(axis=0)[nonconst] / ((R - R.mean(axis=0)) ** 2).sum(axis=0)[nonconst]
    g = dataset.reaction_ids.index(dataset.objective_id)
    order = np.argsort(-frac)
    return {
        "growth_max_abs_err_frac": float(np.abs(P[:, g] - R[:, g]).max() / R[:, g].max()),
        "worst_reaction": dataset.reaction_ids[int(order[0])],
        "worst_reaction_max_err_frac": float(frac[order[0]]),
        "median_r2": float(np.median(r2)) if r2.size else float("nan"),
        "reactions_within_2pct": int(np.sum(frac <= 0.02)),
        "n_reactions": int(frac.size),
        "worst_reactions": [(dataset.reaction_ids[i], float(frac[i])) for i in order[:5]],
    }
