"""The co-design study: which strain, fed how, gives the best titer, over a kinetic ensemble.

Steps (:func:`run_codesign_study`):

1. screened ensemble and top NRA designs (:mod:`mpc_bio.codesign.designs`, cached);
2. the shared feed: the feed optimised for the reference strain (objective: final product
   amount n_P(T), mmol; mean or worst case over the first ``feed.n_members`` models);
3. each design's own feed: the same optimisation for the design, warm-started at the shared feed;
4. every strain (reference + designs) x NRA model simulated by the nonlinear simulator
   :func:`mpc_bio.nomad.reactor.simulate_reactor` under: ``batch`` (no feed), ``reference``
   (the piecewise-constant feed of ``[nomad.design.verification]``), ``shared`` and ``own``.

Viability: every strain x model is judged by the rule of the rest of NOMAD
(:class:`~mpc_bio.nomad.viability.ViabilityRule` from the bounds of the NRA that made the designs:
a stable steady state at the reference medium with every concentration within the NRA fold of the
model's reference and growth >= 1 - ``max_growth_reduction``), when
``[nomad.design.verification] check_steady_state`` is on. A design that breaks it in a model is
non-viable there, whatever the reactor integrates: its titer counts as zero under the rule.

Results: :meth:`CodesignStudy.table` (titer, yield, productivity, final biomass and growth rate
per strain x feed, mean / std / 10-90 % quantiles over the models as simulated; the number of
viable models and the mean titer under the rule beside them), the best strain-plus-feed pair
under the rule and its margin over the reference strain under the reference feed, and the best
pair as simulated (viability ignored) beside it (:meth:`CodesignStudy.summary`).

Checkpoints: the ensemble, the designs, every feed optimisation (steps 2-3) and each strain's
final simulations and viability checks (step 4) are cached under ``[codesign] cache_dir`` by a
hash of everything they depend on, so a study that is killed resumes after its last finished
stage, feed or strain (``sources`` in the summary says what was reused); each stage prints a
status line when it starts and ends.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mpc_bio.codesign.designs import TopDesigns, load_or_run_designs, load_or_run_ensemble
from mpc_bio.codesign.feed import optimize_feed
from mpc_bio.codesign.model import kinetic_control_model
from mpc_bio.codesign.cache import cached_entry, config_hash
from mpc_bio.codesign.optimum import FeedOptimum, feed_optimum_from_dict
from mpc_bio.codesign.settings import CodesignSettings
from mpc_bio.feed import FeedProfile
from mpc_bio.interrupts import Interrupted, check_interrupt
from mpc_bio.outputs import json_default
from mpc_bio.nomad.checkpoint import content_key
from mpc_bio.nomad.executor import progress
from mpc_bio.nomad.nra_settings import DesignStudySettings
from mpc_bio.nomad.reactor import simulate_reactor
from mpc_bio.nomad.settings import EnsembleStudySettings
from mpc_bio.nomad.viability import ViabilityRule, strain_steady_state
from mpc_bio.status import phase

__all__ = [
    "CodesignEvaluation",
    "CodesignStudy",
    "run_codesign_study",
    "write_codesign_study",
    "run_codesign_scenario",
    "load_codesign_config",
]

FEEDS = ("batch", "reference", "shared", "own")
#: reactor trajectories kept per strain x feed x model
_TRAJECTORIES = ("product", "biomass", "substrate", "volume", "feed", "growth_rate")
METRICS = {
    "titer_g_per_l": "final product titer (g/L)",
    "yield_mol_per_mol": "product per substrate consumed (mol/mol)",
    "productivity_g_per_l_h": "final titer / batch time (g/L/h)",
    "final_biomass_gdw_per_l": "final biomass (gDW/L)",
    "final_growth_rate_per_h": "final specific growth rate (1/h)",
}


@dataclass(frozen=True, eq=False)
class CodesignEvaluation:
    """Strains x feeds x models simulated in the kinetic reactor.

    Attributes
    ----------
    strains : tuple of str
        "reference" then the design labels.
    feeds : tuple of str
        Feed names (``FEEDS``).
    model_ids : tuple of str
    times : ndarray (n_t,)
        h.
    product, biomass, substrate, volume, feed : ndarray (n_strains, n_feeds, n_models, n_t)
        mM, gDW/L, mM, L, L/h; NaN where the design is infeasible in a model or CVODES failed.
    growth_rate : ndarray (n_strains, n_feeds, n_models, n_t)
        1/h.
    product_yield : ndarray (n_strains, n_feeds, n_models)
        mol/mol.
    success : ndarray of bool (n_strains, n_feeds, n_models)
    product_mw_g_per_mol : float
    viability_failure : ndarray of str (n_strains, n_models), optional
        Why each strain is not viable in each model under ``viability_rule`` ("" when it is; a
        design infeasible in a model is not viable there); None when not checked (all viable).
    viability_rule : ViabilityRule, optional
        The rule the strains were judged by (None: not checked).
    """

    strains: tuple[str, ...]
    feeds: tuple[str, ...]
    model_ids: tuple[str, ...]
    times: np.ndarray
    product: np.ndarray
    biomass: np.ndarray
    substrate: np.ndarray
    volume: np.ndarray
    feed: np.ndarray
    growth_rate: np.ndarray
    product_yield: np.ndarray
    success: np.ndarray
    product_mw_g_per_mol: float
    viability_failure: np.ndarray | None = None
    viability_rule: ViabilityRule | None = None

    @property
    def viable(self) -> np.ndarray:
        """True where the strain is viable in the model (n_strains, n_models); all True when not checked."""
        if self.viability_failure is None:
            return np.ones(self.success.shape[::2], dtype=bool)
        return self.viability_failure == ""

    def titer_under_rule(self) -> np.ndarray:
        """Final titer (g/L) per strain x feed x model with every non-viable strain x model as zero
        (a failed simulation of a viable strain stays NaN)."""
        return np.where(self.viable[:, None, :], self.metric("titer_g_per_l"), 0.0)

    def metric(self, name: str) -> np.ndarray:
        """Per strain x feed x model values of a metric of :data:`METRICS`."""
        titer = self.product[..., -1] * self.product_mw_g_per_mol / 1000.0
        if name == "titer_g_per_l":
            return titer
        if name == "yield_mol_per_mol":
            return self.product_yield
        if name == "productivity_g_per_l_h":
            return titer / self.times[-1]
        if name == "final_biomass_gdw_per_l":
            return self.biomass[..., -1]
        if name == "final_growth_rate_per_h":
            return self.growth_rate[..., -1]
        raise ValueError(f"metric must be one of {sorted(METRICS)}. Got {name!r}.")

    def bands(self, quantity: str, quantiles: tuple[float, float] = (0.1, 0.9)):
        """Mean and quantile band over the models, (n_strains, n_feeds, n_t) each."""
        a = getattr(self, quantity)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(a, axis=2), np.nanquantile(a, quantiles[0], axis=2), np.nanquantile(a, quantiles[1], axis=2)

    def pareto_points(self) -> dict[str, np.ndarray]:
        """The points of the Pareto plot, each (n_strains, n_feeds): mean and std over the models of
        the final biomass (gDW/L, as simulated), of the final titer as simulated (g/L) and of the
        final titer under the viability rule (g/L, non-viable strain x model as zero); NaN where no
        model has a finite value. ``n_viable`` (n_strains,): models where the strain is viable."""
        import warnings

        biomass, titer, ruled = self.metric("final_biomass_gdw_per_l"), self.metric("titer_g_per_l"), self.titer_under_rule()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN strain x feed -> NaN
            stats = {
                f"{name}_{stat}": fn(values, axis=2)
                for name, values in (("biomass", biomass), ("titer", titer), ("titer_rule", ruled))
                for stat, fn in (("mean", np.nanmean), ("std", np.nanstd))
            }
        return {**stats, "n_viable": self.viable.sum(axis=1)}

    def table(self):
        """One row per strain x feed: mean, std, p10, p90 over the models of every metric (as
        simulated), the number of models where the strain is viable and the mean titer under the
        viability rule (non-viable models as zero)."""
        import warnings

        import pandas as pd

        rows = []
        viable, ruled = self.viable, self.titer_under_rule()
        for s, strain in enumerate(self.strains):
            for f, feed in enumerate(self.feeds):
                row: dict[str, Any] = {"strain": strain, "feed": feed, "n_models": int(self.success[s, f].sum())}
                row["n_viable"] = int(viable[s].sum())
                r = ruled[s, f][np.isfinite(ruled[s, f])]
                row["titer_g_per_l_mean_rule"] = float(np.mean(r)) if r.size else math.nan
                for name in METRICS:
                    v = self.metric(name)[s, f]
                    v = v[np.isfinite(v)]
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        row[f"{name}_mean"] = float(np.mean(v)) if v.size else math.nan
                        row[f"{name}_std"] = float(np.std(v)) if v.size else math.nan
                        row[f"{name}_p10"] = float(np.quantile(v, 0.1)) if v.size else math.nan
                        row[f"{name}_p90"] = float(np.quantile(v, 0.9)) if v.size else math.nan
                rows.append(row)
        return pd.DataFrame(rows)

    def to_frame(self):
        """One row per strain x feed x model with every metric."""
        import pandas as pd

        rows = []
        for s, strain in enumerate(self.strains):
            for f, feed in enumerate(self.feeds):
                for m, mid in enumerate(self.model_ids):
                    row = {"strain": strain, "feed": feed, "model_id": mid, "success": bool(self.success[s, f, m])}
                    row["viable"] = bool(self.viable[s, m])
                    row["viability_failure"] = "" if self.viability_failure is None else str(self.viability_failure[s, m])
                    row.update({k: float(self.metric(k)[s, f, m]) for k in METRICS})
                    rows.append(row)
        return pd.DataFrame(rows)


@dataclass(frozen=True, eq=False)
class CodesignStudy:
    """Everything the co-design study produced.

    Attributes
    ----------
    settings : CodesignSettings
    designs : TopDesigns
    shared_feed : FeedOptimum
        Optimised for the reference strain.
    own_feeds : dict of str to FeedOptimum
        Per design label (absent when ``reoptimize`` is false or the design is infeasible in
        every model).
    reference_feed : FeedProfile
    evaluation : CodesignEvaluation
    sources : dict of str to str
        Where the ensemble and the designs came from ("nomad_output", "cache", "computed").
    seconds : dict of str to float
        Wall time per step (s).
    """

    settings: CodesignSettings
    designs: TopDesigns
    shared_feed: FeedOptimum
    own_feeds: dict
    reference_feed: FeedProfile
    evaluation: CodesignEvaluation
    sources: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def table(self):
        """The strain x feed table of :meth:`CodesignEvaluation.table`."""
        return self.evaluation.table()

    def summary(self) -> dict:
        """JSON-ready summary naming the best strain-plus-feed pair and its margin.

        ``best``: under the viability rule (the mean titer over the models with every non-viable
        strain x model as zero); ``best_as_simulated``: viability ignored. Margins are relative
        to the reference strain under the reference feed.
        """
        ev = self.evaluation
        titer = ev.metric("titer_g_per_l")
        ruled = ev.titer_under_rule()
        viable = ev.viable
        ref = (ev.strains.index("reference"), ev.feeds.index("reference"))
        rule = ev.viability_rule
        out: dict[str, Any] = {
            "objective_of_feed_optimisation": "final product amount n_P(T) in mmol, "
            f"{self.settings.feed.robust} over the first {self.settings.feed.n_members} models",
            "feed_method": self.settings.feed.method,
            "sources": self.sources,
            "designs": [
                {
                    "label": l,
                    "predicted_yield_gain": float(g),
                    "n_feasible_models": int(n),
                    "n_viable_models": int(viable[ev.strains.index(l)].sum()),
                    "viability_failures": {
                        mid: str(ev.viability_failure[ev.strains.index(l), m])
                        for m, mid in enumerate(ev.model_ids)
                        if ev.viability_failure is not None and ev.viability_failure[ev.strains.index(l), m]
                    },
                    "mean_fold_changes": self.designs.mean_fold_changes(k),
                }
                for k, (l, g, n) in enumerate(zip(self.designs.labels, self.designs.predicted_yield_gain, self.designs.n_feasible))
            ],
            "viability_rule": None
            if rule is None
            else {"concentration_fold": rule.concentration_fold, "min_growth_ratio": rule.min_growth_ratio, "label": rule.label()},
            "reference": {
                "strain": "reference",
                "feed": "reference",
                "mean_titer_g_per_l": _best_pair(ruled, ref, ref, viable)["mean_titer_g_per_l"],
                "mean_titer_g_per_l_as_simulated": _best_pair(titer, ref, ref, viable)["mean_titer_g_per_l"],
                "n_viable_models": int(viable[ref[0]].sum()),
            },
            "shared_feed": self.shared_feed.to_dict(),
            "own_feeds": {k: v.to_dict() for k, v in self.own_feeds.items()},
            "seconds": self.seconds,
            "n_models": len(ev.model_ids),
        }
        for key, values in (("best", ruled), ("best_as_simulated", titer)):
            pair = _argmax_pair(values)
            if pair is not None:
                out[key] = {"strain": ev.strains[pair[0]], "feed": ev.feeds[pair[1]], **_best_pair(values, pair, ref, viable)}
        gains = {}
        fs, fo = ev.feeds.index("shared"), ev.feeds.index("own")
        for s, strain in enumerate(ev.strains):
            if strain in self.own_feeds or strain == "reference":
                a, b = titer[s, fo], titer[s, fs]
                ok = np.isfinite(a) & np.isfinite(b)
                gains[strain] = {
                    "own_minus_shared_titer_g_per_l_mean": float(np.mean(a[ok] - b[ok])) if ok.any() else None,
                    "own_over_shared_titer_mean": float(np.mean(a[ok] / b[ok] - 1.0)) if ok.any() else None,
                    "optimised_objective_own_mmol": self.own_feeds[strain].objective
                    if strain in self.own_feeds
                    else self.shared_feed.objective,
                    "initial_guess_objective_mmol": self.own_feeds[strain].initial_objective
                    if strain in self.own_feeds
                    else self.shared_feed.initial_objective,
                }
        out["strain_specific_feed_gain"] = gains
        return out


def _mean_over_models(values: np.ndarray) -> np.ndarray:
    """Mean over the models (last axis) of the finite values; NaN where there are none."""
    ok = np.isfinite(values)
    total = np.where(ok, values, 0.0).sum(axis=-1)
    n = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _argmax_pair(values: np.ndarray) -> tuple[int, int] | None:
    """(strain, feed) with the highest mean over the models; None when no pair has a finite mean."""
    mean = _mean_over_models(values)
    cand = [(s, f) for s in range(mean.shape[0]) for f in range(mean.shape[1]) if np.isfinite(mean[s, f])]
    return max(cand, key=lambda sf: mean[sf]) if cand else None


def _best_pair(values: np.ndarray, pair: tuple[int, int], ref: tuple[int, int], viable: np.ndarray) -> dict[str, Any]:
    """Mean titer of ``pair`` over the models and its margins over ``ref`` (both from ``values``, g/L)."""
    mean = _mean_over_models(values)
    a, b = values[pair], values[ref]
    with np.errstate(divide="ignore", invalid="ignore"):
        paired = a / b - 1.0
    ok = np.isfinite(paired)
    m, r = float(mean[pair]), float(mean[ref])
    return {
        "mean_titer_g_per_l": m,
        "n_viable_models": int(viable[pair[0]].sum()),
        "margin_over_reference": m / r - 1.0 if r > 0 else None,
        "paired_margin_mean": float(np.mean(paired[ok])) if ok.any() else None,
        "paired_margin_p10": float(np.quantile(paired[ok], 0.1)) if ok.any() else None,
        "fraction_models_above_reference": float(np.mean(paired[ok] > 0)) if ok.any() else None,
    }


def run_codesign_study(
    settings: CodesignSettings,
    ensemble_settings: EnsembleStudySettings,
    design_settings: DesignStudySettings,
) -> CodesignStudy:
    """Run the whole co-design study (see the module docstring).

    Parameters
    ----------
    settings : CodesignSettings
    ensemble_settings : EnsembleStudySettings
        The ``[nomad]`` ensemble tables.
    design_settings : DesignStudySettings
        The ``[nomad.design]`` tables; ``verification`` is the reactor.

    Returns
    -------
    CodesignStudy
    """
    seconds: dict[str, float] = {}
    show = settings.progress
    t = time.perf_counter()
    with phase("co-design: screened kinetic ensemble (cached by its settings)") as info:
        ensemble, control, ens_key, ens_source = load_or_run_ensemble(
            ensemble_settings, settings.cache_dir, reuse_nomad_output=settings.reuse_nomad_output
        )
        info["note"] = f"source: {ens_source}"
    seconds["ensemble"] = time.perf_counter() - t
    t = time.perf_counter()
    with phase("co-design: NRA designs (cached by their settings)") as info:
        designs = load_or_run_designs(ensemble, control, design_settings, settings.n_designs, settings.cache_dir, ens_key)
        info["note"] = f"source: {designs.source}"
    seconds["designs"] = time.perf_counter() - t

    vs = design_settings.verification
    fset = settings.feed
    if fset.batch_time is None:
        fset = dataclasses.replace(fset, batch_time=vs.batch_time)
    vs = dataclasses.replace(vs, batch_time=fset.batch_time, n_points=settings.n_points)
    models = designs.model_index
    kw = dict(feed_glucose=vs.feed_glucose, biomass0=vs.biomass0, glucose0=vs.glucose0, volume0=vs.volume0)

    t = time.perf_counter()
    members = [int(m) for m in models[: fset.n_members]]
    feed_tag = {"ensemble": ens_key, "designs": designs.key, "feed": fset.to_dict(), "reactor": kw}
    feed_sources: dict[str, str] = {}
    with phase("co-design: shared feed (IPOPT, reference strain)") as info:
        shared, feed_sources["reference"] = _cached_feed(
            settings.cache_dir,
            {**feed_tag, "strain": "reference", "members": members},
            lambda: optimize_feed(kinetic_control_model(ensemble, members, **kw), fset, strain="reference"),
        )
        info["note"] = f"status {shared.status} ({feed_sources['reference']})"
    seconds["shared_feed"] = time.perf_counter() - t

    folds = {"reference": np.ones((models.size, ensemble.network.n_reactions))}
    for k, label in enumerate(designs.labels):
        folds[label] = designs.vmax_folds(ensemble, k)
    own: dict[str, FeedOptimum] = {}
    t = time.perf_counter()
    if fset.reoptimize:
        with phase(f"co-design: each design's own feed (IPOPT, {len(designs.labels)} designs)"):
            for label in progress(designs.labels, show, "design feeds"):
                ok = [i for i in range(models.size) if np.all(np.isfinite(folds[label][i]))][: fset.n_members]
                if not ok:
                    continue
                tag = {**feed_tag, "strain": label, "members": [int(models[i]) for i in ok], "initial_feed": shared.feed.tolist()}

                def compute(label=label, ok=ok):
                    km = kinetic_control_model(ensemble, [int(models[i]) for i in ok], vmax_folds=folds[label][ok], **kw)
                    return optimize_feed(km, fset, strain=label, initial_feed=shared.feed)

                own[label], feed_sources[label] = _cached_feed(settings.cache_dir, tag, compute)
    seconds["design_feeds"] = time.perf_counter() - t

    ref_feed = vs.feed_profile()
    strains = tuple(folds)
    nt = vs.n_points
    rule = ViabilityRule.from_nra(design_settings.nra) if vs.check_steady_state else None
    sim_tag = {"ensemble": ens_key, "designs": designs.key, "verification": vs, "models": models}
    t = time.perf_counter()
    n_jobs = len(strains) * len(FEEDS) * models.size
    feeds = {label: {name: _strain_feed(name, own.get(label, shared), ref_feed, shared) for name in FEEDS} for label in strains}
    with phase(f"co-design: {n_jobs} reactor simulations (strains x feeds x models, cached per strain)") as info:
        simulate = lambda label: _simulate_strain(ensemble, models, folds[label], feeds[label], vs, nt)
        blocks, sim_sources = _cached_per_strain(settings.cache_dir, "simulations", sim_tag, folds, show, simulate, feeds=feeds)
        info["note"] = _sources_note(sim_sources)
    arr = {k: np.stack([b[k] for b in blocks]) for k in (*_TRAJECTORIES, "product_yield", "success")}
    seconds["simulations"] = time.perf_counter() - t
    # the viability rule of the rest of NOMAD: each strain's steady state at the reference medium
    # within the bounds of the NRA that made the designs (the reference strain is held to them too)
    failure = np.full((len(strains), models.size), "", dtype=object)
    via_sources: dict[str, str] = {}
    t = time.perf_counter()
    if rule is not None:
        with phase(f"co-design: viability ({rule.label()}) of {failure.size} strains x models (cached per strain)") as info:
            judge = lambda label: {"failure": _strain_viability(ensemble, models, folds[label], rule)}
            blocks, via_sources = _cached_per_strain(settings.cache_dir, "viability", sim_tag, folds, show, judge, rule=rule)
            for s, block in enumerate(blocks):
                failure[s] = block["failure"]
            info["note"] = _sources_note(via_sources)
    seconds["viability"] = time.perf_counter() - t
    ev = CodesignEvaluation(
        strains=strains,
        feeds=FEEDS,
        model_ids=tuple(f"model{i}" for i in models),
        times=np.linspace(0.0, vs.batch_time, nt),
        product_mw_g_per_mol=vs.product_mw,
        viability_failure=failure if rule is not None else None,
        viability_rule=rule,
        **arr,
    )
    return CodesignStudy(
        settings=dataclasses.replace(settings, feed=fset),
        designs=designs,
        shared_feed=shared,
        own_feeds=own,
        reference_feed=ref_feed,
        evaluation=ev,
        sources={
            "ensemble": ens_source,
            "ensemble_key": ens_key,
            "designs": designs.source,
            "designs_key": designs.key,
            "feeds": feed_sources,
            "simulations": sim_sources,
            "viability": via_sources,
        },
        seconds=seconds,
    )


def _strain_feed(name: str, own: FeedOptimum, reference: FeedProfile, shared: FeedOptimum) -> FeedProfile | None:
    """The feed profile of feed ``name`` (one of ``FEEDS``) for a strain whose own optimum is ``own``."""
    if name == "batch":
        return None
    if name == "reference":
        return reference
    return (shared if name == "shared" else own).profile


def _simulate_strain(ensemble, models: np.ndarray, folds: np.ndarray, feeds: dict, vs, nt: int) -> dict[str, np.ndarray]:
    """One strain (Vmax x ``folds[m]`` in model ``models[m]``) under every feed: arrays (feed, model[, time])
    of the reactor trajectories, the product yield and the success flags; NaN where the design is
    infeasible in a model (not applied) or the simulation failed (yield)."""
    shape = (len(FEEDS), models.size, nt)
    block = {k: np.full(shape, np.nan) for k in _TRAJECTORIES}
    block["product_yield"] = np.full(shape[:2], np.nan)
    block["success"] = np.zeros(shape[:2], dtype=bool)
    for f, name in enumerate(FEEDS):
        for m in range(models.size):
            fold = folds[m]
            if not np.all(np.isfinite(fold)):
                continue
            sim = simulate_reactor(ensemble, int(models[m]), vmax_fold=fold, settings=vs, feed=feeds[name])
            check_interrupt()  # CVODES turns Ctrl-C into a failed simulation: never keep that as a result
            for k in _TRAJECTORIES:
                block[k][f, m] = getattr(sim, k)
            block["product_yield"][f, m] = sim.product_yield if sim.success else np.nan
            block["success"][f, m] = sim.success
    return block


def _strain_viability(ensemble, models: np.ndarray, folds: np.ndarray, rule: ViabilityRule) -> np.ndarray:
    """The viability failure of one strain in every model ("" when viable), as an array of str."""
    out = []
    for m in range(models.size):
        fold = folds[m]
        if not np.all(np.isfinite(fold)):
            out.append("design infeasible in this model (not applied)")
        else:
            out.append(rule.failure(strain_steady_state(ensemble, int(models[m]), fold)))
            check_interrupt()
    return np.array(out, dtype=str)


def _cached(cache_dir: str | None, stage: str, key: str, compute, write, read) -> tuple[Any, str]:
    """``compute()``'s result, kept in the cache entry ``<stage>-<key>`` (written by ``write(result,
    folder)``, read back by ``read(folder)``), so a killed study resumes after its last finished
    item; returns the result and ``"cache"`` or ``"computed"``."""
    if not cache_dir:
        return compute(), "computed"
    path, reused = cached_entry(cache_dir, stage, key, lambda tmp: write(compute(), tmp))
    return read(path), "cache" if reused else "computed"


def _cached_arrays(cache_dir: str | None, stage: str, tag: dict[str, Any], compute) -> tuple[dict[str, np.ndarray], str]:
    """:func:`_cached` of a dict of arrays (``arrays.npz``, a bit-exact round trip), keyed by :func:`content_key` of ``tag``."""

    def read(path: Path) -> dict[str, np.ndarray]:
        with np.load(path / "arrays.npz") as z:
            return {k: z[k] for k in z.files}

    return _cached(cache_dir, stage, content_key(tag), compute, lambda arrays, tmp: np.savez(tmp / "arrays.npz", **arrays), read)


def _cached_per_strain(cache_dir: str | None, stage: str, tag: dict, folds: dict, show: bool, compute, **per_strain):
    """``compute(label)`` (a dict of arrays) for every strain of ``folds`` in order, each a cache
    entry of ``stage`` (:func:`_cached_arrays`) keyed by ``tag``, the strain, its Vmax folds and the
    ``per_strain`` values (a dict by strain label, or one value for all): a study stopped part way
    keeps the strains it finished. Returns the blocks and, per strain, ``"cache"`` or ``"computed"``."""
    blocks, sources = [], {}
    for label in progress(tuple(folds), show, f"co-design {stage}"):
        extra = {k: v[label] if isinstance(v, dict) else v for k, v in per_strain.items()}
        key = {**tag, "strain": label, "vmax_folds": folds[label], **extra}
        block, sources[label] = _cached_arrays(cache_dir, stage, key, lambda label=label: compute(label))
        blocks.append(block)
    return blocks, sources


def _sources_note(sources: dict[str, str]) -> str:
    """``"n computed, m from the cache"`` for a phase's status line."""
    n = list(sources.values()).count("cache")
    return f"{len(sources) - n} strain(s) computed, {n} from the cache"


def _cached_feed(cache_dir: str | None, tag: dict[str, Any], compute) -> tuple[FeedOptimum, str]:
    """:func:`_cached` of a feed optimum (``feed.json``), keyed by a hash of ``tag`` (everything it depends on)."""
    return _cached(
        cache_dir,
        "feed",
        config_hash(tag),
        compute,
        lambda opt, tmp: (tmp / "feed.json").write_text(json.dumps(opt.to_dict(), default=json_default)),
        lambda path: feed_optimum_from_dict(json.loads((path / "feed.json").read_text())),
    )


def write_codesign_study(study: CodesignStudy, out_dir: str | Path, figures: bool = True) -> dict[str, Path]:
    """Write ``codesign_table.csv``, ``codesign_runs.csv``, ``feeds.csv``, ``codesign_summary.json`` and figures."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "table": out / "codesign_table.csv",
        "runs": out / "codesign_runs.csv",
        "feeds": out / "feeds.csv",
        "codesign_summary": out / "codesign_summary.json",
    }
    study.table().to_csv(files["table"], index=False)
    study.evaluation.to_frame().to_csv(files["runs"], index=False)
    rows = []
    for opt in [study.shared_feed, *study.own_feeds.values()]:
        for k in range(opt.feed.size):
            rows.append(
                {
                    "strain": opt.strain,
                    "feed": "shared" if opt is study.shared_feed else "own",
                    "t_start_h": opt.edges[k],
                    "t_end_h": opt.edges[k + 1],
                    "feed_l_per_h": opt.feed[k],
                }
            )
    pd.DataFrame(rows).to_csv(files["feeds"], index=False)
    files["codesign_summary"].write_text(json.dumps(study.summary(), indent=2, default=json_default))
    if figures:
        import matplotlib.pyplot as plt

        from mpc_bio.plotting.codesign import plot_feed_profiles, plot_pareto, plot_time_courses

        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        for name, fig in (
            ("pareto", plot_pareto(study.evaluation)),
            ("titer_time_courses", plot_time_courses(study.evaluation)),
            ("biomass_time_courses", plot_time_courses(study.evaluation, quantity="biomass")),
            ("feeds", plot_feed_profiles(study)),
        ):
            path = fig_dir / f"{name}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
            files[f"figure_{name}"] = path
    return files


def load_codesign_config(data: dict[str, Any]) -> tuple[CodesignSettings, EnsembleStudySettings, DesignStudySettings]:
    """Settings from a parsed scenario body (tables ``[nomad]`` and ``[codesign]``); unknown keys raise."""
    extra = sorted(set(data) - {"nomad", "codesign"})
    if extra:
        raise ValueError(f"Unknown top-level table(s) {extra} in a codesign scenario; expected 'nomad' and 'codesign'.")
    nomad = dict(data.get("nomad", {}))
    design = nomad.pop("design", {})
    ens = EnsembleStudySettings.from_dict(nomad)
    return CodesignSettings.from_dict(data.get("codesign", {})), ens, DesignStudySettings.from_dict(design)


def cache_note(cache_dir: str | Path) -> str:
    """One clause saying what finished work the co-design cache holds (complete entries per stage)."""
    root = Path(cache_dir)
    counts: dict[str, int] = {}
    for entry in sorted(root.glob("*-*")) if root.is_dir() else []:
        if (entry / ".complete").is_file():
            stage = entry.name.rsplit("-", 1)[0]
            counts[stage] = counts.get(stage, 0) + 1
    if not counts:
        return f"the co-design cache {root} holds no finished stage yet"
    held = ", ".join(f"{stage} {n}" for stage, n in counts.items())
    return f"the co-design cache {root} keeps its finished work ({held}); the same command resumes there"


def run_codesign_scenario(path: Path, data: dict[str, Any], out_dir: Path, *, progress: bool = True):
    """Runner of ``kind = "codesign"`` scenarios (registered in :data:`mpc_bio.scenarios.runner.SCENARIO_KINDS`).

    Relative ``cache_dir`` and ``[nomad] output_dir`` are taken relative to the working directory.
    Returns ``(files, summary)``.
    """
    settings, ens, design = load_codesign_config(data)
    if not progress:
        settings = dataclasses.replace(settings, progress=False)
    ens = dataclasses.replace(ens, executor=dataclasses.replace(ens.executor, progress=settings.progress and ens.executor.progress))
    design = dataclasses.replace(design, progress=settings.progress)
    try:
        study = run_codesign_study(settings, ens, design)
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted) or not settings.cache_dir:
            raise
        raise Interrupted(cache_note(settings.cache_dir)) from exc
    files = write_codesign_study(study, out_dir, figures=settings.figures)
    s = study.summary()
    keys = ("best", "best_as_simulated", "viability_rule", "reference", "sources", "seconds", "strain_specific_feed_gain", "n_models")
    summary = {k: s[k] for k in keys if k in s}
    return files, summary
