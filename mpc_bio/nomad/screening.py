"""Screening of kinetic models (NOMAD Methods, "Screening kinetic models").

Stages, each a function returning the indices that pass and its statistics:

(i) linear stability: max Re(lambda(J_r)) < 0;
(ii) dominant time constant -1/max Re(lambda) below ``time_constant_fraction`` x doubling time;
(iii) with ``nonlinear_check = "batch_data"`` (the paper's case), reproduction of the reference
     strain's batch fermentation (:mod:`mpc_bio.nomad.fermentation_data`): inoculated as in the
     data, the glucose is used up within ``max_fermentation_time`` and the final biomass and
     product titer lie within ``growth_tolerance`` and ``titer_tolerance`` of the data's (a
     quantity the data do not give is not compared); with ``"perturbation"``, the nonlinear
     return: ``n_perturbations`` random k-fold perturbations of the independent concentrations
     (dependent ones follow the moieties) decay to max |ln(x/x_ref)| <= ``return_tolerance``
     within one doubling time;
(iv) robustness: ``n_robustness`` random Vmax perturbations (x max(N(1, cv), 0.01)) in a batch
     reactor keep the biomass produced >= ``min_growth_fraction`` of the reference strain's (the
     data's final biomass minus the inoculum when the data give it, else the unperturbed model's).
     The biomass never falls (growth ``Vmax prod x/(K + x) >= 0``), so a draw is decided as soon as
     its biomass produced reaches the fraction (:func:`~mpc_bio.nomad.reactor.batch_biomass_gain`,
     checked from the time the reference strain reaches it); the models' loop stops at the first
     draw below it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mpc_bio.nomad.conservation import analyse_conservation
from mpc_bio.nomad.dynamics import simulate_relaxation
from mpc_bio.nomad.ensemble import KineticEnsemble
from mpc_bio.nomad.executor import ChunkTiming, chunk_indices, run_chunks, run_timed_chunks, stage_chunk_size
from mpc_bio.nomad.fermentation_data import FermentationData, load_fermentation_data
from mpc_bio.nomad.mca import LinearAnalysis, linearize_ensemble
from mpc_bio.nomad.network import KineticNetwork
from mpc_bio.nomad.reactor import batch_biomass_gain, simulate_batch
from mpc_bio.nomad.settings import ExecutorSettings, ScreeningSettings

__all__ = [
    "StageStatistics",
    "ScreeningResult",
    "BatchTarget",
    "batch_target",
    "doubling_time",
    "linearize_parallel",
    "screen_linear_stability",
    "screen_time_constants",
    "screen_nonlinear_return",
    "screen_batch_data",
    "batch_fit",
    "screen_robustness",
    "robustness_duration",
    "stage_names",
    "screen_ensemble",
]

STAGE_NAMES = ("linear_stability", "time_constant", "nonlinear_return", "robustness")
#: Name of stage (iii) per ``ScreeningSettings.nonlinear_check``.
STAGE3_NAMES = {"batch_data": "batch_data", "perturbation": "nonlinear_return"}


def stage_names(settings: ScreeningSettings) -> tuple[str, str, str, str]:
    """Names of stages (i)-(iv) under ``settings`` (stage iii per ``nonlinear_check``)."""
    return (STAGE_NAMES[0], STAGE_NAMES[1], STAGE3_NAMES[settings.nonlinear_check], STAGE_NAMES[3])


@dataclass(frozen=True)
class StageStatistics:
    """Counts and times of one screening stage.

    Attributes
    ----------
    name : str
    n_in, n_out : int
        Models entering and passing.
    seconds : float
        Wall time of the stage in this run (s); chunks read from a checkpoint take ~0 here.
    chunks : ChunkTiming or None
        Stages (iii)-(iv): the worker wall and CPU time of their chunks (s), those read from a
        checkpoint counted with the times recorded when an earlier run computed them, and how
        many were read back.
    """

    name: str
    n_in: int
    n_out: int
    seconds: float
    chunks: ChunkTiming | None = None

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "seconds": self.seconds,
            "pass_fraction": self.n_out / self.n_in if self.n_in else 0.0,
        }
        if self.chunks is not None:
            out.update(self.chunks.to_dict())
        return out


@dataclass(frozen=True, eq=False)
class ScreeningResult:
    """Outcome of screening an ensemble.

    Attributes
    ----------
    stages : tuple of StageStatistics
        In order (i)-(iv); skipped stages are absent.
    passed : dict of str to ndarray
        Indices (into the ensemble) passing each stage.
    linear : LinearAnalysis
        Eigenvalues of every sampled model.
    doubling_time : float
        h.
    max_time_constant : float
        Stage (ii) threshold (h).
    return_deviation : dict of int to float
        Stage (iii): worst max |ln(x/x_ref)| after one doubling time, per model screened.
    robustness_growth : dict of int to float
        Stage (iv): smallest biomass produced relative to the reference strain's, per model
        screened; for a model that passes, a lower bound (>= ``min_growth_fraction``: each draw
        stops once its biomass produced reaches the fraction).
    batch : dict of int to dict
        Stage (iii) with batch data: :func:`batch_fit` of each model screened.
    target : BatchTarget or None
        What stages (iii)-(iv) compared against (None when they did not run).
    """

    stages: tuple[StageStatistics, ...]
    passed: dict[str, np.ndarray]
    linear: LinearAnalysis
    doubling_time: float
    max_time_constant: float
    return_deviation: dict[int, float] = field(default_factory=dict)
    robustness_growth: dict[int, float] = field(default_factory=dict)
    batch: dict[int, dict] = field(default_factory=dict)
    target: "BatchTarget | None" = None

    @property
    def survivors(self) -> np.ndarray:
        """Indices passing the last stage run."""
        return self.passed[self.stages[-1].name]

    def funnel(self) -> list[dict]:
        """Per-stage counts and times as dictionaries."""
        return [s.to_dict() for s in self.stages]

    def model_table(self):
        """One row per sampled model: eigen data and the stages it passed (pandas DataFrame)."""
        import pandas as pd

        lin = self.linear
        df = pd.DataFrame({"model": lin.model_index, "max_real_eigenvalue_per_h": lin.max_real, "time_constant_h": lin.time_constant})
        for name, idx in self.passed.items():
            df[f"passed_{name}"] = np.isin(lin.model_index, idx)
        df["return_deviation"] = [self.return_deviation.get(int(m), np.nan) for m in lin.model_index]
        for key in ("fermentation_time_h", "final_biomass_gdw_per_l", "final_product_mM", "growth_error", "titer_error"):
            df[f"batch_{key}"] = [self.batch.get(int(m), {}).get(key, np.nan) for m in lin.model_index]
        df["robustness_growth_fraction"] = [self.robustness_growth.get(int(m), np.nan) for m in lin.model_index]
        return df


def doubling_time(ensemble: KineticEnsemble | KineticNetwork, settings: ScreeningSettings | None = None) -> float:
    """Doubling time (h): the setting, or ln 2 / reference growth flux of the ensemble's network (or of a network)."""
    if settings is not None and settings.doubling_time is not None:
        return float(settings.doubling_time)
    net = ensemble if isinstance(ensemble, KineticNetwork) else ensemble.network
    mu = float(net.fluxes[net.reaction_index(net.growth_reaction)])
    if mu <= 0:
        raise ValueError(f"The reference growth flux is {mu}; set screening.doubling_time explicitly.")
    return float(np.log(2.0) / mu)


def _linear_chunk(sub: KineticEnsemble) -> LinearAnalysis:
    return linearize_ensemble(sub)


def linearize_parallel(ensemble: KineticEnsemble, executor: ExecutorSettings | None = None) -> LinearAnalysis:
    """:func:`linearize_ensemble` over all models, in chunks on the executor."""
    executor = executor or ExecutorSettings()
    chunks = chunk_indices(np.arange(ensemble.n_models), executor.chunk_size)
    parts = run_chunks(_linear_chunk, [ensemble.subset(c) for c in chunks], executor, desc="linearise")
    return LinearAnalysis(
        np.concatenate(chunks),
        np.concatenate([p.eigenvalues for p in parts]),
        np.concatenate([p.max_real for p in parts]),
        np.concatenate([p.time_constant for p in parts]),
    )


def _positions(linear: LinearAnalysis, index) -> tuple[np.ndarray, np.ndarray]:
    """(index, positions of index in linear.model_index), vectorised."""
    mi = np.asarray(linear.model_index, dtype=int)
    idx = mi if index is None else np.asarray(index, dtype=int)
    order = np.argsort(mi, kind="stable")
    pos = order[np.searchsorted(mi, idx, sorter=order)] if idx.size else np.zeros(0, dtype=int)
    if idx.size and not np.array_equal(mi[pos], idx):
        raise ValueError("Some models of 'index' were not linearised (not in linear.model_index).")
    return idx, pos


def screen_linear_stability(linear: LinearAnalysis, index=None) -> np.ndarray:
    """Stage (i): models (of ``index``, default all) with max Re(lambda) < 0."""
    idx, pos = _positions(linear, index)
    return idx[linear.max_real[pos] < 0.0].astype(int)


def screen_time_constants(linear: LinearAnalysis, index, max_time_constant: float) -> np.ndarray:
    """Stage (ii): models of ``index`` whose dominant time constant is below ``max_time_constant`` (h)."""
    idx, pos = _positions(linear, index)
    return idx[linear.time_constant[pos] < max_time_constant].astype(int)


def _perturbation(rng, x_ref, cons, fold):
    """k-fold random perturbation of the independent metabolites, dependent ones via the moieties."""
    ind = cons.independent
    u = rng.uniform(-1.0, 1.0, size=ind.size)
    for _ in range(30):
        x_ind = x_ref[ind] * fold**u
        x = x_ref + cons.link @ (x_ind - x_ref[ind])
        if np.all(x > 0):
            return x
        u = 0.5 * u
    return x_ref.copy()


def _return_chunk(args) -> dict[int, float]:
    sub, global_index, settings, t_double = args
    cons = analyse_conservation(sub.network)
    out = {}
    for k, gi in enumerate(global_index):
        rng = np.random.default_rng([settings.seed, int(gi), 3])
        x_ref = sub.concentrations[k]
        worst = 0.0
        for _ in range(settings.n_perturbations):
            x0 = _perturbation(rng, x_ref, cons, settings.perturbation_fold)
            xT, ok, _ = simulate_relaxation(sub, k, x0, t_double)
            dev = float(np.abs(np.log(xT / x_ref)).max()) if ok and np.all(xT > 0) else np.inf
            worst = max(worst, dev)
            if worst > settings.return_tolerance:
                break
        out[int(gi)] = worst
    return out


def screen_nonlinear_return(
    ensemble: KineticEnsemble,
    index,
    settings: ScreeningSettings | None = None,
    executor: ExecutorSettings | None = None,
    t_double: float | None = None,
) -> tuple[np.ndarray, dict[int, float]]:
    """Stage (iii): models of ``index`` that return from every k-fold perturbation within a doubling time.

    Returns
    -------
    passed : ndarray of int
    deviation : dict of int to float
        Worst max |ln(x/x_ref)| at the doubling time per model (inf when an integration failed;
        the loop stops at the first failed perturbation).
    """
    passed, dev, _ = _nonlinear_return(ensemble, index, settings, executor, t_double)
    return passed, dev


def _stage_chunks(func, ensemble: KineticEnsemble, index: np.ndarray, extra: tuple, executor: ExecutorSettings, desc: str):
    """Run ``func((sub-ensemble, model numbers, *extra))`` over chunks of ``index``; (merged dict, ChunkTiming)."""
    chunks = chunk_indices(index, stage_chunk_size(index.size, executor.chunk_size))
    parts, timing = run_timed_chunks(func, [(ensemble.subset(c), c, *extra) for c in chunks], executor, desc=desc)
    return {k: v for p in parts for k, v in p.items()}, timing


def _nonlinear_return(ensemble, index, settings, executor, t_double):
    settings = settings or ScreeningSettings()
    executor = executor or ExecutorSettings()
    t_double = t_double or doubling_time(ensemble, settings)
    index = np.asarray(index, dtype=int)
    dev, timing = _stage_chunks(_return_chunk, ensemble, index, (settings, t_double), executor, "stage iii")
    passed = np.array([i for i in index if dev[int(i)] <= settings.return_tolerance], dtype=int)
    return passed, dev, timing


@dataclass(frozen=True)
class BatchTarget:
    """The reference strain's batch fermentation as stages (iii)-(iv) use it.

    Attributes
    ----------
    strain : str
    biomass0 : float
        Inoculum, gDW/L.
    glucose0 : float or None
        Initial glucose, mM (None: the network's boundary concentration).
    final_biomass : float or None
        gDW/L (None: not in the data, not compared).
    final_product : float or None
        Product titer, mM (None: not in the data, not compared).
    source : str
        The data file.
    """

    strain: str
    biomass0: float
    glucose0: float | None
    final_biomass: float | None
    final_product: float | None
    source: str

    def to_dict(self) -> dict:
        return {
            "strain": self.strain,
            "biomass0_gdw_per_l": self.biomass0,
            "glucose0_mM": self.glucose0,
            "final_biomass_gdw_per_l": self.final_biomass,
            "final_product_mM": self.final_product,
            "source": self.source,
        }


def batch_target(settings: ScreeningSettings | None = None, data: FermentationData | None = None) -> BatchTarget:
    """The reference strain's inoculum and final values from the fermentation data.

    Parameters
    ----------
    settings : ScreeningSettings, optional
        ``reference_strain``, ``fermentation_data`` (read when ``data`` is None), ``biomass0``
        (used when the data give no biomass at time 0) and ``product_molar_mass``.
    data : FermentationData, optional
    """
    settings = settings or ScreeningSettings()
    data = data if data is not None else load_fermentation_data(settings.fermentation_data)
    s, mw = settings.reference_strain, settings.product_molar_mass
    x0 = data.value(data.initial(s, "biomass"))
    return BatchTarget(
        strain=s,
        biomass0=float(x0) if x0 else settings.biomass0,
        glucose0=data.value(data.initial(s, "glucose")),
        final_biomass=data.value(data.final(s, "biomass")),
        final_product=data.value(data.final(s, "product"), mw),
        source=data.path,
    )


def _reference_gain(target: BatchTarget, biomass_final: float) -> float:
    """Biomass the reference strain produces (gDW/L): the data's when ``target`` has it, else the model's own."""
    return target.final_biomass - target.biomass0 if target.final_biomass is not None else biomass_final - target.biomass0


def batch_fit(sim, target: BatchTarget, settings: ScreeningSettings) -> dict:
    """Stage (iii) readout of one batch simulation against ``target``.

    Returns
    -------
    dict
        ``fermentation_time_h`` (first time glucose < ``glucose_exhausted_fraction`` of the initial,
        linearly interpolated; inf when never), ``final_biomass_gdw_per_l`` and ``final_product_mM``
        (at the end of the simulation), ``growth_error`` and ``titer_error`` (final / data - 1; NaN
        when the data lack the quantity), ``min_growth_time_h`` (the first output time at which the
        biomass produced reaches ``min_growth_fraction`` of the reference strain's, where stage (iv)
        first checks its draws; NaN when never) and ``passed``.
    """
    if not sim.success:
        return {
            "fermentation_time_h": np.inf,
            "final_biomass_gdw_per_l": np.nan,
            "final_product_mM": np.nan,
            "growth_error": np.nan,
            "titer_error": np.nan,
            "min_growth_time_h": np.nan,
            "passed": False,
        }
    s, t = np.asarray(sim.substrate), np.asarray(sim.times)
    limit = settings.glucose_exhausted_fraction * s[0]
    below = np.flatnonzero(s < limit)
    if below.size == 0:
        t_end = np.inf
    elif below[0] == 0:
        t_end = 0.0
    else:
        k = below[0]
        t_end = float(t[k - 1] + (t[k] - t[k - 1]) * (s[k - 1] - limit) / (s[k - 1] - s[k]))
    xf, pf = float(sim.biomass[-1]), float(sim.product[-1])
    ge = xf / target.final_biomass - 1.0 if target.final_biomass else np.nan
    te = pf / target.final_product - 1.0 if target.final_product else np.nan
    ok = bool(t_end < settings.max_fermentation_time)
    ok &= target.final_biomass is None or abs(ge) <= settings.growth_tolerance
    ok &= target.final_product is None or abs(te) <= settings.titer_tolerance
    produced = np.asarray(sim.biomass) - sim.biomass[0]
    reached = np.flatnonzero(produced >= settings.min_growth_fraction * _reference_gain(target, xf))
    return {
        "fermentation_time_h": t_end,
        "final_biomass_gdw_per_l": xf,
        "final_product_mM": pf,
        "growth_error": ge,
        "titer_error": te,
        "min_growth_time_h": float(t[reached[0]]) if reached.size else np.nan,
        "passed": ok,
    }


def _batch_chunk(args) -> dict[int, dict]:
    sub, global_index, settings, target = args
    out = {}
    for k, gi in enumerate(global_index):
        sim = simulate_batch(
            sub,
            k,
            settings.max_fermentation_time,
            target.biomass0,
            initial_substrate=target.glucose0,
            n_points=settings.batch_points,
            compiled=settings.compiled,
        )
        out[int(gi)] = batch_fit(sim, target, settings)
    return out


def screen_batch_data(
    ensemble: KineticEnsemble,
    index,
    settings: ScreeningSettings | None = None,
    executor: ExecutorSettings | None = None,
    target: BatchTarget | None = None,
) -> tuple[np.ndarray, dict[int, dict]]:
    """Stage (iii): models of ``index`` reproducing the reference strain's batch fermentation.

    Parameters
    ----------
    ensemble : KineticEnsemble
    index : array of int
    settings : ScreeningSettings, optional
        Tolerances, fermentation time limit, data file.
    executor : ExecutorSettings, optional
    target : BatchTarget, optional
        Default :func:`batch_target` of ``settings``.

    Returns
    -------
    passed : ndarray of int
    fit : dict of int to dict
        :func:`batch_fit` per model.
    """
    passed, fit, _ = _batch_data(ensemble, index, settings, executor, target)
    return passed, fit


def _batch_data(ensemble, index, settings, executor, target):
    settings = settings or ScreeningSettings()
    executor = executor or ExecutorSettings()
    target = target or batch_target(settings)
    index = np.asarray(index, dtype=int)
    fit, timing = _stage_chunks(_batch_chunk, ensemble, index, (settings, target), executor, "stage iii")
    passed = np.array([i for i in index if fit[int(i)]["passed"]], dtype=int)
    return passed, fit, timing


#: Stage (iv) checks a draw's biomass at t* (1 + CHECK_STEP (2^k - 1)), k = 0, 1, ..., t* = the
#: reference strain's ``min_growth_time_h``.
CHECK_STEP = 0.05


def _check_times(t_first: float, duration: float) -> list[float]:
    """Stage (iv) check times (h): from ``t_first`` with doubling steps, else eighths of ``duration``."""
    if not (np.isfinite(t_first) and 0.0 < t_first < duration):
        return [duration * k / 8 for k in range(1, 8)]
    out, k = [], 0
    while (t := t_first * (1.0 + CHECK_STEP * (2**k - 1))) < duration:
        out.append(t)
        k += 1
    return out


def _robust_chunk(args) -> dict[int, float]:
    """Stage (iv) of the models of one chunk: smallest biomass produced relative to the reference strain's.

    ``args`` = (sub-ensemble, model numbers, settings, duration, target[, reference]); ``reference``
    maps a model number to its stage (iii) :func:`batch_fit` when that batch is the reference
    strain's run here (same duration and inoculum); other models run it here.
    """
    sub, global_index, settings, duration, target = args[:5]
    reference = args[5] if len(args) > 5 and args[5] is not None else {}
    out = {}
    n_rxn = sub.network.n_reactions
    x0, s0 = target.biomass0, target.glucose0
    f = settings.min_growth_fraction
    for k, gi in enumerate(global_index):
        rng = np.random.default_rng([settings.seed, int(gi), 4])
        fit = reference.get(int(gi))
        if fit is None:
            sim = simulate_batch(sub, k, duration, x0, initial_substrate=s0, n_points=settings.batch_points, compiled=settings.compiled)
            fit = batch_fit(sim, target, settings) if sim.success else None
        if fit is None or not np.isfinite(fit["final_biomass_gdw_per_l"]):
            gained_ref = 0.0
        else:
            gained_ref = _reference_gain(target, fit["final_biomass_gdw_per_l"])
        if gained_ref <= 0:
            out[int(gi)] = 0.0
            continue
        checks = _check_times(fit["min_growth_time_h"], duration)
        worst = np.inf
        for _ in range(settings.n_robustness):
            fold = np.maximum(rng.normal(1.0, settings.vmax_cv, size=n_rxn), 0.01)
            run = batch_biomass_gain(
                sub,
                k,
                duration,
                x0,
                stop_gain=f * gained_ref,
                check_times=checks,
                vmax_fold=fold,
                initial_substrate=s0,
                compiled=settings.compiled,
            )
            ratio = run.gain / gained_ref if run.success else 0.0
            worst = min(worst, float(ratio))
            if worst < f:
                break
        out[int(gi)] = float(worst) if np.isfinite(worst) else 1.0
    return out


def robustness_duration(ensemble, settings: ScreeningSettings) -> float:
    """Stage (iv) batch length (h): ``batch_time``, else the fermentation limit with batch data, else one doubling time."""
    if settings.batch_time:
        return float(settings.batch_time)
    if settings.nonlinear_check == "batch_data":
        return float(settings.max_fermentation_time)
    return doubling_time(ensemble, settings)


def _default_target(settings: ScreeningSettings) -> BatchTarget:
    if settings.nonlinear_check == "batch_data":
        return batch_target(settings)
    return BatchTarget(settings.reference_strain, settings.biomass0, None, None, None, "")


def screen_robustness(
    ensemble: KineticEnsemble,
    index,
    settings: ScreeningSettings | None = None,
    executor: ExecutorSettings | None = None,
    target: BatchTarget | None = None,
) -> tuple[np.ndarray, dict[int, float]]:
    """Stage (iv): models of ``index`` whose batch growth stays >= the fraction under Vmax perturbations.

    The batch (:func:`robustness_duration`) starts from ``target``'s
    inoculum and glucose; the biomass produced is compared with the reference strain's: the
    data's final biomass minus the inoculum when ``target`` has it, else the unperturbed model's.

    Parameters
    ----------
    target : BatchTarget, optional
        Default :func:`batch_target` of ``settings`` with ``nonlinear_check = "batch_data"``;
        with ``"perturbation"`` the inoculum ``biomass0``, the network's glucose and the
        unperturbed model as reference.

    Returns
    -------
    passed : ndarray of int
    growth : dict of int to float
        Smallest biomass produced relative to the reference strain's per model (the loop stops
        at the first perturbation below the threshold; a draw stops once it reaches the
        threshold, so for a model that passes this is a lower bound >= ``min_growth_fraction``).
    """
    passed, growth, _ = _robustness(ensemble, index, settings, executor, target)
    return passed, growth


def _reference_fits(settings: ScreeningSettings, duration: float, fit: dict[int, dict] | None) -> dict[int, dict] | None:
    """Stage (iii)'s batch fits when stage (iv)'s reference run is the same batch (batch data, same length), else None."""
    if fit and settings.nonlinear_check == "batch_data" and duration == float(settings.max_fermentation_time):
        return fit
    return None


def _robustness(ensemble, index, settings, executor, target, fit=None):
    settings = settings or ScreeningSettings()
    executor = executor or ExecutorSettings()
    target = target or _default_target(settings)
    duration = robustness_duration(ensemble, settings)
    index = np.asarray(index, dtype=int)
    reference = _reference_fits(settings, duration, fit)
    chunks = chunk_indices(index, stage_chunk_size(index.size, executor.chunk_size))
    items = [
        (ensemble.subset(c), c, settings, duration, target, None if reference is None else {int(m): reference[int(m)] for m in c})
        for c in chunks
    ]
    parts, timing = run_timed_chunks(_robust_chunk, items, executor, desc="stage iv")
    growth = {k: v for p in parts for k, v in p.items()}
    passed = np.array([i for i in index if growth[int(i)] >= settings.min_growth_fraction], dtype=int)
    return passed, growth, timing


def screen_ensemble(
    ensemble: KineticEnsemble,
    settings: ScreeningSettings | None = None,
    executor: ExecutorSettings | None = None,
    stages: int = 4,
    linear: LinearAnalysis | None = None,
) -> ScreeningResult:
    """Run screening stages (i) to ``stages`` (1-4) on every model of ``ensemble``.

    Parameters
    ----------
    ensemble : KineticEnsemble
    settings : ScreeningSettings, optional
    executor : ExecutorSettings, optional
    stages : int
        Last stage to run (2 = linear screening only).
    linear : LinearAnalysis, optional
        Precomputed eigenvalues of all models.
    """
    settings = settings or ScreeningSettings()
    executor = executor or ExecutorSettings()
    if stages not in (1, 2, 3, 4):
        raise ValueError(f"The 'stages' parameter of screen_ensemble must be 1, 2, 3 or 4. Got {stages!r} instead.")
    t_double = doubling_time(ensemble, settings)
    names = stage_names(settings)
    target = _default_target(settings) if stages >= 3 else None
    stats: list[StageStatistics] = []
    passed: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    if linear is None:
        linear = linearize_parallel(ensemble, executor)
    p1 = screen_linear_stability(linear)
    stats.append(StageStatistics(STAGE_NAMES[0], ensemble.n_models, p1.size, time.perf_counter() - t0))
    passed[STAGE_NAMES[0]] = p1
    dev: dict[int, float] = {}
    growth: dict[int, float] = {}
    fit: dict[int, dict] = {}
    current = p1
    if stages >= 2:
        t0 = time.perf_counter()
        current = screen_time_constants(linear, p1, settings.time_constant_fraction * t_double)
        stats.append(StageStatistics(STAGE_NAMES[1], p1.size, current.size, time.perf_counter() - t0))
        passed[STAGE_NAMES[1]] = current
    if stages >= 3:
        if settings.max_nonlinear_models is not None:
            current = current[: settings.max_nonlinear_models]
        t0 = time.perf_counter()
        n_in = current.size
        timing = None
        if settings.nonlinear_check == "batch_data":
            current, fit, timing = _batch_data(ensemble, current, settings, executor, target)
        elif settings.n_perturbations > 0:
            current, dev, timing = _nonlinear_return(ensemble, current, settings, executor, t_double)
        stats.append(StageStatistics(names[2], n_in, current.size, time.perf_counter() - t0, timing))
        passed[names[2]] = current
    if stages >= 4:
        t0 = time.perf_counter()
        n_in = current.size
        timing = None
        if settings.n_robustness > 0:
            current, growth, timing = _robustness(ensemble, current, settings, executor, target, fit)
        stats.append(StageStatistics(STAGE_NAMES[3], n_in, current.size, time.perf_counter() - t0, timing))
        passed[STAGE_NAMES[3]] = current
    return ScreeningResult(tuple(stats), passed, linear, t_double, settings.time_constant_fraction * t_double, dev, growth, fit, target)
