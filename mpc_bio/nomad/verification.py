"""Nonlinear verification of strain designs in batch and fed-batch reactors.

NOMAD (Methods, "In silico design verification and sensitivity analysis"): NRA predicts with a
log-linear model around the reference state; here each design is applied to every kinetic
model as Vmax_j x fold_j and the full nonlinear model is integrated in the kinetic reactor
(:func:`mpc_bio.nomad.reactor.simulate_reactor`), batch or fed under a
:class:`~mpc_bio.feed.FeedProfile` or any callable of time.

Comparison protocol (:func:`verify_strains`): the cells start at the reference steady state
with the medium's reference glucose; all strains of one model are compared at one fixed time,
the end of that model's reference-strain batch fermentation (glucose below 1% of the initial;
paper: titers compared at the end of the fermentation period, slower designs reaching them only
later). Growth loss feeds back into the titer through the biomass X in dP/dt = v_product X:
a slower strain has made less product by then. Reading at a late t_end instead (every strain
has exhausted its glucose) measures the overall yield only. A strain counts as a failure in a
model when its design is not applicable there, the integration fails, or it is not viable
under its :class:`~mpc_bio.nomad.viability.ViabilityRule` (the steady state at the reference
medium, :func:`~mpc_bio.nomad.viability.strain_steady_state`, must exist, be stable, keep every
intracellular concentration within the NRA concentration bound of the model's reference and the
growth at or above the NRA growth bound; every strain is judged, the reference and the designs
included). Failures are losses in every comparison (:meth:`VerificationResult.compare`), never
dropped, and count as zero titer in the ensemble means of
:meth:`VerificationResult.titer_statistics`, which gives the means over viable models and as
simulated beside them.

Strains may also change kinetic constants (e.g. aroG^fbr: DDPA's feedback inhibition removed):
``verify_strains(..., modifications={label: StrainModification})``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from mpc_bio.feed import FeedProfile
from mpc_bio.nomad.ensemble import KineticEnsemble
from mpc_bio.nomad.executor import run_chunks
from mpc_bio.nomad.nra_settings import VerificationSettings
from mpc_bio.nomad.reactor import simulate_reactor
from mpc_bio.nomad.regulation import StrainModification, apply_strain
from mpc_bio.nomad.settings import ExecutorSettings
from mpc_bio.nomad.viability import ViabilityRule, strain_steady_state

__all__ = ["VerificationResult", "exhaustion_time", "verify_strains", "finite_mean", "finite_median"]


def finite_mean(a: np.ndarray) -> float | None:
    """Mean of the finite entries of ``a``; None when there are none."""
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else None


def finite_median(a: np.ndarray) -> float | None:
    """Median of the finite entries of ``a``; None when there are none."""
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else None


def exhaustion_time(times: np.ndarray, substrate: np.ndarray, fraction: float) -> float:
    """First time (h) the substrate falls to ``fraction`` of its initial value, linearly
    interpolated between the two output points around the crossing; NaN if it never does or
    the course is not finite."""
    sub = np.asarray(substrate, dtype=float)
    if sub.size == 0 or not np.isfinite(sub[0]):
        return math.nan
    level = fraction * sub[0]
    done = np.flatnonzero(sub <= level)
    if not len(done):
        return math.nan
    k = int(done[0])
    if k > 0 and sub[k - 1] != sub[k]:
        return float(times[k - 1] + (times[k] - times[k - 1]) * (sub[k - 1] - level) / (sub[k - 1] - sub[k]))
    return float(times[k])


@dataclass(frozen=True, eq=False)
class VerificationResult:
    """Strains x models in one reactor mode.

    Attributes
    ----------
    mode : str
        "batch" or "fed-batch".
    strains : tuple of str
        Strain labels (reference first, then designs, then baselines).
    model_ids : tuple of str
    times : ndarray (n_t,)
        h.
    product, biomass, substrate, volume : ndarray (n_strains, n_models, n_t)
        mM, gDW/L, mM, L; NaN where a strain was not applied (design infeasible in that model)
        or the integration failed.
    product_yield : ndarray (n_strains, n_models)
        mol product / mol substrate consumed over the whole run.
    success : ndarray of bool (n_strains, n_models)
        The reactor simulation ran to the end.
    messages : ndarray of str (n_strains, n_models)
    product_mw_g_per_mol : float
    seconds : float
        Wall time of all simulations (s).
    n_simulations : int
    readout_times : ndarray (n_models,)
        Time at which the strains of each model are compared (h): the end of the reference
        strain's batch fermentation, or batch_time (see ``VerificationSettings.batch_readout``).
    steady_state : ndarray of object (n_strains, n_models)
        :class:`StrainSteadyState` per strain and model (None where not checked / not applied).
    physiological_range : (float, float) or None
        Absolute concentration range (mM) the steady states were checked against; None (the
        rules in ``viability`` apply, relative to each model's reference).
    viability : tuple of ViabilityRule or None
        Rule per strain (None entries: the steady state's own ``valid`` flag).
    """

    mode: str
    strains: tuple[str, ...]
    model_ids: tuple[str, ...]
    times: np.ndarray
    product: np.ndarray
    biomass: np.ndarray
    substrate: np.ndarray
    volume: np.ndarray
    product_yield: np.ndarray
    success: np.ndarray
    messages: np.ndarray
    product_mw_g_per_mol: float
    seconds: float
    n_simulations: int
    readout_times: np.ndarray | None = None
    steady_state: np.ndarray | None = None
    physiological_range: tuple[float, float] | None = None
    viability: tuple | None = None
    exhausted_fraction: float = 0.01

    @property
    def exhaustion_times(self) -> np.ndarray:
        """Time at which each strain's medium glucose first falls below ``exhausted_fraction`` of
        its initial value (n_strains, n_models), h, linearly interpolated between output points;
        NaN where it never does within the run or the strain was not simulated."""
        out = np.full(self.substrate.shape[:2], np.nan)
        for s in range(out.shape[0]):
            for m in range(out.shape[1]):
                out[s, m] = exhaustion_time(self.times, self.substrate[s, m], self.exhausted_fraction)
        return out

    def _at_readout(self, a: np.ndarray) -> np.ndarray:
        t_r = self.readout_times if self.readout_times is not None else np.full(len(self.model_ids), self.times[-1])
        out = np.full(a.shape[:2], np.nan)
        for m, t in enumerate(t_r):
            for s in range(a.shape[0]):
                if np.all(np.isfinite(a[s, m])):
                    out[s, m] = float(np.interp(t, self.times, a[s, m]))
        return out

    @property
    def final_titer(self) -> np.ndarray:
        """Product titer at the end of the run (n_strains, n_models), mM."""
        return self.product[:, :, -1]

    @property
    def titer(self) -> np.ndarray:
        """Product titer at each model's readout time (n_strains, n_models), mM."""
        return self._at_readout(self.product)

    @property
    def biomass_at_readout(self) -> np.ndarray:
        """Biomass at each model's readout time (n_strains, n_models), gDW/L."""
        return self._at_readout(self.biomass)

    @property
    def yield_at_readout(self) -> np.ndarray:
        """Product formed per substrate consumed up to the readout time (n_strains, n_models), mol/mol.

        Batch only (constant volume); a fed-batch is read at its end, where this equals
        :attr:`product_yield`.
        """
        if self.mode != "batch":
            return self.product_yield.copy()
        p, s = self._at_readout(self.product), self._at_readout(self.substrate)
        consumed = self.substrate[:, :, 0] - s
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(consumed > 0, (p - self.product[:, :, 0]) / consumed, np.nan)

    @property
    def titer_gain(self) -> np.ndarray:
        """Titer at readout relative to the reference strain in the same model, minus 1 (fraction)."""
        t = self.titer
        with np.errstate(divide="ignore", invalid="ignore"):
            return t / t[0][None, :] - 1.0

    @property
    def failure(self) -> np.ndarray:
        """Why each strain x model is not a valid comparison ("" when it is), (n_strains, n_models).

        A strain fails in a model when it was not applied there (design infeasible), the
        reactor integration failed, or (when checked) it has no steady state, an unstable one,
        or one outside :attr:`physiological_range`.
        """
        out = np.full(self.success.shape, "", dtype=object)
        for s in range(self.success.shape[0]):
            for m in range(self.success.shape[1]):
                if not self.success[s, m]:
                    out[s, m] = str(self.messages[s, m]) or "simulation failed"
                elif self.steady_state is not None and self.steady_state[s, m] is not None:
                    ss = self.steady_state[s, m]
                    rule = self.viability[s] if self.viability is not None else None
                    if rule is not None:
                        out[s, m] = rule.failure(ss)
                    elif not ss.valid:
                        out[s, m] = ss.message
        return out

    @property
    def valid(self) -> np.ndarray:
        """True where the strain ran and (when checked) has a stable steady state (n_strains, n_models)."""
        return self.failure == ""

    def bands(self, quantity: str = "product", quantiles: tuple[float, float] = (0.1, 0.9)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean and quantile band over models of a time course, per strain.

        Parameters
        ----------
        quantity : str
            "product", "biomass", "substrate" or "volume".
        quantiles : (float, float)
            Lower and upper quantile (fractions).

        Returns
        -------
        mean, low, high : ndarray (n_strains, n_t)
        """
        if quantity not in ("product", "biomass", "substrate", "volume"):
            raise ValueError(f"quantity must be product, biomass, substrate or volume. Got {quantity!r}.")
        a = getattr(self, quantity)
        out = []
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out.append(np.nanmean(a, axis=1))
                out.append(np.nanquantile(a, quantiles[0], axis=1))
                out.append(np.nanquantile(a, quantiles[1], axis=1))
        return out[0], out[1], out[2]

    def to_frame(self):
        """Tidy table: one row per strain x model with titers, yields, biomass, gains and validity."""
        import pandas as pd

        rows = []
        titer, gain, yld, bio = self.titer, self.titer_gain, self.yield_at_readout, self.biomass_at_readout
        failure = self.failure
        t_r = self.readout_times if self.readout_times is not None else np.full(len(self.model_ids), self.times[-1])
        for s, label in enumerate(self.strains):
            for m, mid in enumerate(self.model_ids):
                ss = self.steady_state[s, m] if self.steady_state is not None else None
                rows.append(
                    {
                        "mode": self.mode,
                        "strain": label,
                        "model_id": mid,
                        "readout_time_h": float(t_r[m]),
                        "titer_mM": float(titer[s, m]),
                        "titer_g_per_l": float(titer[s, m]) * self.product_mw_g_per_mol / 1000.0,
                        "titer_gain": float(gain[s, m]),
                        "yield_mol_per_mol": float(yld[s, m]),
                        "biomass_gdw_per_l": float(bio[s, m]),
                        "final_titer_mM": float(self.final_titer[s, m]),
                        "final_biomass_gdw_per_l": float(self.biomass[s, m, -1]),
                        "product_yield_mol_per_mol": float(self.product_yield[s, m]),
                        "steady_state_growth_ratio": ss.growth_ratio if ss is not None else math.nan,
                        "steady_state_yield_ratio": ss.yield_ratio if ss is not None else math.nan,
                        "steady_state_max_real_eigenvalue": ss.max_real_eigenvalue if ss is not None else math.nan,
                        "steady_state_min_concentration_mM": ss.min_concentration if ss is not None else math.nan,
                        "steady_state_max_concentration_mM": ss.max_concentration if ss is not None else math.nan,
                        "steady_state_max_abs_ln_concentration_change": ss.max_abs_log_concentration_change if ss is not None else math.nan,
                        "success": bool(self.success[s, m]),
                        "valid": failure[s, m] == "",
                        "failure": str(failure[s, m]),
                        "message": str(self.messages[s, m]),
                    }
                )
        return pd.DataFrame(rows)

    def compare(self, strain: str, other: str = "reference", growth_kept_fraction: float = 0.8) -> dict:
        """Statistics of ``strain`` against ``other`` over all models, failures counted.

        Titer, yield and biomass are read at each model's readout time. A model counts as a
        win for ``strain`` only when both strains are valid there and ``strain`` is strictly
        better; a model where ``strain`` is invalid (not applied, failed simulation, no stable
        steady state inside the physiological range) counts as a loss, one where only ``other`` is invalid as a win. Ratios
        (mean, standard deviation, min, max) are over the models where both are valid.

        Returns
        -------
        dict
            n_models, n_valid_both, fraction_models_titer_higher / _yield_higher /
            _biomass_higher, titer_ratio / yield_ratio / biomass_ratio statistics
            (strain / other, ratios), and fraction_models_growth_kept (strain biomass >=
            ``growth_kept_fraction`` x other's, failures counted as not kept).
        """
        i, j = self.strains.index(strain), self.strains.index(other)
        valid = self.valid
        n = len(self.model_ids)
        both = valid[i] & valid[j]
        out: dict = {"n_models": n, "n_valid_both": int(both.sum()), "n_invalid": int((~valid[i]).sum())}
        for name, arr in (("titer", self.titer), ("yield", self.yield_at_readout), ("biomass", self.biomass_at_readout)):
            a, b = arr[i], arr[j]
            win = np.where(both, a > b, valid[i] & ~valid[j])
            out[f"fraction_models_{name}_higher"] = float(np.mean(win)) if n else None
            with np.errstate(divide="ignore", invalid="ignore"):
                r = a[both] / b[both]
            r = r[np.isfinite(r)]
            out[f"{name}_ratio"] = (
                {
                    "mean": float(r.mean()),
                    "std": float(r.std()),
                    "min": float(r.min()),
                    "median": float(np.median(r)),
                    "max": float(r.max()),
                }
                if r.size
                else None
            )
        x = self.biomass_at_readout
        kept = np.where(both, x[i] >= growth_kept_fraction * x[j], valid[i] & ~valid[j])
        out["fraction_models_growth_kept"] = float(np.mean(kept)) if n else None
        return out

    def titer_statistics(self, strain: str, other: str = "reference") -> dict:
        """Titer of ``strain`` relative to ``other`` over the models, under three conventions.

        Per model the ratio r_m = titer(strain) / titer(other) at the readout time. Only models
        where ``other`` is valid enter (the denominator must be a viable strain).

        * ``failures_as_zero``: every such model counts; where ``strain`` is not viable (not
          applied, failed simulation, no stable steady state, steady state outside the
          physiological range) r_m = 0, as the paper counts designs that fail to grow or
          produce.
        * ``valid``: only models where ``strain`` is viable too.
        * ``as_simulated``: every model whose simulation ran, viability ignored (what the
          reactor integrates, including strains without a steady state).

        Returns
        -------
        dict
            For each convention ``mean``, ``median``, ``n`` (ratios); ``wins`` and ``n_models``
            (models where ``strain`` is viable and beats ``other``, or only ``strain`` is
            viable), and ``per_model`` {model_id: {"ratio", "valid", "failure"}}.
        """
        i, j = self.strains.index(strain), self.strains.index(other)
        valid, failure, titer = self.valid, self.failure, self.titer
        with np.errstate(divide="ignore", invalid="ignore"):
            r = titer[i] / titer[j]
        ok_other = valid[j] & np.isfinite(titer[j]) & (titer[j] > 0)

        def _stats(a):
            return {"mean": finite_mean(a), "median": finite_median(a), "n": int(np.isfinite(a).sum())}

        as_zero = np.where(valid[i], r, 0.0)[ok_other]
        win = np.where(valid[i] & valid[j], titer[i] > titer[j], valid[i] & ~valid[j])
        return {
            "failures_as_zero": _stats(as_zero),
            "valid": _stats(r[ok_other & valid[i]]),
            "as_simulated": _stats(r[self.success[i] & self.success[j]]),
            "wins": int(win.sum()),
            "n_models": len(self.model_ids),
            "per_model": {
                mid: {"ratio": float(r[m]), "valid": bool(valid[i, m]), "failure": str(failure[i, m])}
                for m, mid in enumerate(self.model_ids)
            },
        }

    def summary(self, growth_kept_fraction: float = 0.8) -> dict:
        """Per strain: readout titer, yield and biomass over the models, validity and failures.

        Means are over the models where the strain is valid, with ``n_valid`` beside them;
        ``fraction_models_*`` against the reference count failures as losses (see
        :meth:`compare`); ``failures`` lists the reason per failed model.
        """
        out = {}
        titer, yld, bio = self.titer, self.yield_at_readout, self.biomass_at_readout
        gain = self.titer_gain
        valid, failure = self.valid, self.failure

        for s, label in enumerate(self.strains):
            v = valid[s]
            cmp = self.compare(label, "reference", growth_kept_fraction) if label != "reference" else None
            out[label] = {
                "n_models": len(self.model_ids),
                "n_valid": int(v.sum()),
                "n_success": int(self.success[s].sum()),
                "failures": {self.model_ids[m]: str(failure[s, m]) for m in range(len(self.model_ids)) if not v[m]},
                "mean_titer_mM": finite_mean(titer[s][v]),
                "mean_titer_gain": finite_mean(gain[s][v & valid[0]]),
                "std_titer_gain": float(np.nanstd(gain[s][v & valid[0]])) if np.any(v & valid[0]) else None,
                "mean_yield_mol_per_mol": finite_mean(yld[s][v]),
                "mean_biomass_gdw_per_l": finite_mean(bio[s][v]),
                "mean_final_titer_mM": finite_mean(self.final_titer[s][v]),
                "fraction_models_growth_kept": cmp["fraction_models_growth_kept"] if cmp else 1.0,
                "vs_reference": cmp,
                "titer_ratio_vs_reference": self.titer_statistics(label, "reference") if label != "reference" else None,
            }
        return out


def _simulate_strain(task: tuple):
    """Reactor simulation and (when checked) steady state of one strain in one model; ``task`` is
    (ensemble of that one model, vmax fold, settings, feed). Module level for process pools."""
    from mpc_bio.interrupts import check_interrupt

    ens, fold, settings, feed = task
    sim = simulate_reactor(ens, 0, vmax_fold=fold, settings=settings, feed=feed)
    check_interrupt()  # CVODES turns Ctrl-C into a failed simulation: never return that as a result
    ss = strain_steady_state(ens, 0, fold) if settings.check_steady_state else None
    check_interrupt()
    return sim, ss


def verify_strains(
    ensemble: KineticEnsemble,
    models: Sequence[int],
    strains: Mapping[str, np.ndarray],
    *,
    settings: VerificationSettings | None = None,
    feed: FeedProfile | Callable[[float], float] | None = None,
    model_ids: Sequence[str] | None = None,
    progress: bool = False,
    viability: ViabilityRule | Mapping[str, ViabilityRule] | None = None,
    modifications: Mapping[str, StrainModification] | None = None,
    n_workers: int = 1,
) -> VerificationResult:
    """Simulate every strain in every model (batch when ``feed`` is None, else fed-batch).

    Parameters
    ----------
    ensemble : KineticEnsemble
    models : sequence of int
        Model indices into ``ensemble``.
    strains : mapping of str to ndarray (n_models, n_rxn)
        Vmax fold matrix per strain (row k for ``models[k]``); a row with NaN means the strain
        does not exist in that model (e.g. design infeasible there) and is skipped. The
        reference strain (all ones) is added first if no strain is called "reference".
    settings : VerificationSettings, optional
    feed : FeedProfile or callable, optional
        Fed-batch feed rate (h -> L/h); its glucose concentration is
        ``settings.feed_glucose``. None: batch.
    model_ids : sequence of str, optional
    progress : bool
    viability : ViabilityRule or mapping of str to ViabilityRule, optional
        The rule every strain is judged by (one for all, or one per label; labels not in the
        mapping get the default). Default: ``settings.viability_concentration_fold`` and
        ``settings.viability_min_growth_ratio``.
    modifications : mapping of str to StrainModification, optional
        Strains whose kinetic constants change too (removed regulation, Vmax folds), applied
        to every model on top of the strain's Vmax fold matrix.
    n_workers : int
        Processes for the simulations (1 = in-process; a feed that is neither None nor a
        :class:`~mpc_bio.feed.FeedProfile` always runs in-process). Results do not depend on it.

    Notes
    -----
    Each strain x model is one task of :func:`~mpc_bio.nomad.executor.run_chunks`: inside a
    :func:`~mpc_bio.nomad.checkpoint.chunk_checkpoint` the finished ones are kept as they arrive
    and a stopped verification, run again, computes only the others.

    Returns
    -------
    VerificationResult
    """
    settings = settings or VerificationSettings()
    models = [int(m) for m in models]
    nm, nr = len(models), ensemble.network.n_reactions
    strains = dict(strains)
    if "reference" not in strains:
        strains = {"reference": np.ones((nm, nr)), **strains}
    for label, fold in strains.items():
        if np.shape(fold) != (nm, nr):
            raise ValueError(f"Strain {label!r} needs a Vmax fold matrix of shape {(nm, nr)}. Got {np.shape(fold)}.")
    labels = tuple(strains)
    default_rule = ViabilityRule(settings.viability_concentration_fold, settings.viability_min_growth_ratio)
    if isinstance(viability, ViabilityRule) or viability is None:
        rules = tuple((viability or default_rule) for _ in labels)
    else:
        unknown = sorted(set(viability) - set(labels))
        if unknown:
            raise ValueError(f"The 'viability' parameter names strains that are not verified: {unknown}; strains: {list(labels)}.")
        rules = tuple(viability.get(k, default_rule) for k in labels)
    modifications = dict(modifications or {})
    unknown = sorted(set(modifications) - set(labels))
    if unknown:
        raise ValueError(f"The 'modifications' parameter names strains that are not verified: {unknown}; strains: {list(labels)}.")
    used = ensemble.subset(np.asarray(models, dtype=int))
    strain_ensemble = {}
    for label, mod in modifications.items():
        K, vm = apply_strain(used.network, used.km, used.vmax, mod)
        strain_ensemble[label] = dataclasses.replace(used, km=K, vmax=vm)
    ns, nt = len(labels), settings.n_points
    arr = {k: np.full((ns, nm, nt), np.nan) for k in ("product", "biomass", "substrate", "volume")}
    yld = np.full((ns, nm), np.nan)
    success = np.zeros((ns, nm), dtype=bool)
    messages = np.full((ns, nm), "", dtype=object)
    times = np.linspace(0.0, settings.batch_time, nt)
    t0 = time.perf_counter()
    count = 0
    mode = "batch" if feed is None else "fed-batch"
    steady = np.full((ns, nm), None, dtype=object)
    one = {}  # (strain ensemble, model) -> that model alone: only it travels to a worker and keys the task
    tasks, where = [], []
    for s in range(ns):
        for m in range(nm):
            fold = np.asarray(strains[labels[s]][m], dtype=float)
            if not np.all(np.isfinite(fold)):
                messages[s, m] = "not applied (design infeasible in this model)"
                continue
            ens = strain_ensemble.get(labels[s], used)
            if (id(ens), m) not in one:
                one[id(ens), m] = ens.subset([m])
            tasks.append((one[id(ens), m], fold, settings, feed))
            where.append((s, m))
    parallel = feed is None or isinstance(feed, FeedProfile)
    ex = ExecutorSettings(n_workers=max(1, int(n_workers)) if parallel else 1, progress=progress)
    done = run_chunks(_simulate_strain, tasks, ex, desc=f"verification ({mode})")
    for (s, m), (sim, ss) in zip(where, done):
        count += 1
        for k in arr:
            arr[k][s, m] = getattr(sim, k)
        yld[s, m] = sim.product_yield if sim.success else np.nan
        success[s, m] = sim.success
        messages[s, m] = sim.message
        steady[s, m] = ss
    readout = np.full(nm, float(settings.batch_time))
    if mode == "batch" and settings.batch_readout == "reference_end":
        ref = labels.index("reference")
        for m in range(nm):
            t_ex = exhaustion_time(times, arr["substrate"][ref, m], settings.glucose_exhausted_fraction)
            if math.isfinite(t_ex):
                readout[m] = t_ex
    return VerificationResult(
        mode=mode,
        strains=labels,
        model_ids=tuple(model_ids) if model_ids is not None else tuple(f"model{m}" for m in models),
        times=times,
        product=arr["product"],
        biomass=arr["biomass"],
        substrate=arr["substrate"],
        volume=arr["volume"],
        product_yield=yld,
        success=success,
        messages=messages,
        product_mw_g_per_mol=settings.product_mw,
        seconds=time.perf_counter() - t0,
        n_simulations=count,
        readout_times=readout,
        steady_state=steady if settings.check_steady_state else None,
        physiological_range=None,
        viability=rules if settings.check_steady_state else None,
        exhausted_fraction=settings.glucose_exhausted_fraction,
    )
