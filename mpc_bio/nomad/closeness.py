"""The phenotype-closeness study (NOMAD paper, Fig. 3): how far a design may move the cell.

For each concentration bound f (paper: 2, 3, 10 and 20 fold) NRA designs every model with
``max_concentration_fold = f`` (all other NRA settings as the design stage: 5-fold enzymes, 3
interventions, 20 % growth reduction); the model's best design(s) form the f-fold group. With
the unconstrained MCA baseline (top yield control coefficients changed ``baseline_fold``) as a
further group, every strain is simulated in a batch reactor long enough for slow strains to
exhaust their glucose, and each group is summarised by its titer and biomass at the end of the
reference strain's fermentation (the paper's comparison time), its time to glucose exhaustion
and its viability. Each design is held to the bounds of its own NRA
(:meth:`~mpc_bio.nomad.viability.ViabilityRule.from_nra`: f-fold concentrations, growth >= 0.8
of the reference); the MCA baseline to the design stage's bound, and its statistics are given
as simulated and under that rule side by side.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mpc_bio.nomad.experiment_settings import ClosenessSettings
from mpc_bio.nomad.nra_settings import DesignStudySettings
from mpc_bio.nomad.reactor import vmax_fold_from_log_changes
from mpc_bio.nomad.verification import VerificationResult, finite_mean, verify_strains
from mpc_bio.nomad.viability import ViabilityRule

__all__ = ["ClosenessStudy", "group_label", "run_closeness_study"]

MCA_GROUP = "MCA"


def group_label(fold: float) -> str:
    """Name of the design group with concentration bound ``fold``, e.g. "3-fold"."""
    return f"{fold:g}-fold"


@dataclass(frozen=True, eq=False)
class ClosenessStudy:
    """Design groups and their batch verification.

    Attributes
    ----------
    settings : ClosenessSettings
    groups : dict of str to list of str
        Group name -> strain labels of ``verification`` (one per design rank per model).
    designs : dict of str to list
        Group name -> per model the list of its designs (NRADesign; the MCA group's baseline).
    rules : dict of str to ViabilityRule
        The rule each group is judged by.
    verification : VerificationResult
        Batch simulation of the reference and every group's strains.
    seconds : dict of str to float
    """

    settings: ClosenessSettings
    groups: dict
    designs: dict
    rules: dict
    verification: VerificationResult
    seconds: dict = field(default_factory=dict)

    def group_summary(self, name: str) -> dict:
        """Titer (g/L) and biomass (gDW/L) at each model's readout, time to exhaustion (h),
        steady-state growth ratio and viability of one group.

        ``mean_titer_g_per_l``: over the group's applied strains, a non-viable strain as zero
        titer; ``*_as_simulated``: viability ignored; ``*_viable``: viable strains only.
        ``mean_exhaustion_time_h`` is over the strains that exhausted the glucose within the
        run (``n_not_exhausted`` did not).
        """
        res = self.verification
        gpl = res.product_mw_g_per_mol / 1000.0
        titer, bio, t_ex = res.titer * gpl, res.biomass_at_readout, res.exhaustion_times
        growth = np.full(res.success.shape, np.nan)
        if res.steady_state is not None:
            for s in range(growth.shape[0]):
                for m in range(growth.shape[1]):
                    ss = res.steady_state[s, m]
                    growth[s, m] = ss.growth_ratio if ss is not None else math.nan
        rows = [res.strains.index(label) for label in self.groups[name]]
        applied = [(s, m) for s in rows for m in range(len(res.model_ids)) if "not applied" not in str(res.messages[s, m])]

        def pick(a, mode):
            out = []
            for s, m in applied:
                v = a[s, m]
                if mode == "rule" and not res.valid[s, m]:
                    v = 0.0
                elif mode == "viable" and not res.valid[s, m]:
                    continue
                out.append(v)
            return np.asarray(out, dtype=float)

        t_all = pick(t_ex, "sim")
        rule = self.rules[name]
        return {
            "viability_rule": dataclasses.asdict(rule),
            "n_strains": len(applied),
            "n_viable": int(sum(bool(res.valid[s, m]) for s, m in applied)),
            "mean_titer_g_per_l": finite_mean(pick(titer, "rule")),
            "mean_titer_g_per_l_as_simulated": finite_mean(pick(titer, "sim")),
            "mean_titer_g_per_l_viable": finite_mean(pick(titer, "viable")),
            "median_titer_g_per_l": float(np.median(pick(titer, "rule"))) if applied else None,
            "mean_biomass_gdw_per_l": finite_mean(pick(bio, "rule")),
            "mean_biomass_gdw_per_l_as_simulated": finite_mean(pick(bio, "sim")),
            "mean_exhaustion_time_h": finite_mean(t_all),
            "n_not_exhausted": int(np.sum(~np.isfinite(t_all))),
            "mean_steady_state_growth_ratio": finite_mean(pick(growth, "sim")),
            "failures": {f"{res.strains[s]} / {res.model_ids[m]}": str(res.failure[s, m]) for s, m in applied if not res.valid[s, m]},
        }

    def summary(self) -> dict:
        """JSON-ready summary: per group (reference included) the statistics of
        :meth:`group_summary`, the NRA status per model and the predicted yield gains."""
        res = self.verification
        gpl = res.product_mw_g_per_mol / 1000.0
        ref = 0
        t_ex = res.exhaustion_times[ref]
        reference = {
            "mean_titer_g_per_l": float(np.nanmean(res.titer[ref])) * gpl,
            "mean_biomass_gdw_per_l": float(np.nanmean(res.biomass_at_readout[ref])),
            "mean_exhaustion_time_h": float(np.nanmean(t_ex)) if np.any(np.isfinite(t_ex)) else None,
        }
        groups = {}
        for name in self.groups:
            g = self.group_summary(name)
            per_model = self.designs[name]
            g["designs"] = {res.model_ids[m]: [d.label for d in ds] if ds else [] for m, ds in enumerate(per_model)}
            gains = [d.yield_gain for ds in per_model for d in ds]
            g["mean_predicted_yield_gain"] = float(np.mean(gains)) if gains else None
            g["n_models_without_design"] = int(sum(1 for ds in per_model if not ds))
            groups[name] = g
        return {
            "concentration_folds": list(self.settings.concentration_folds),
            "designs_per_model": self.settings.designs_per_model,
            "n_models": len(res.model_ids),
            "model_ids": list(res.model_ids),
            "readout": "end of each model's reference batch fermentation (glucose below the exhausted fraction)",
            "readout_times_h": [float(t) for t in res.readout_times],
            "batch_time_h": float(res.times[-1]),
            "reference": reference,
            "groups": groups,
            "seconds": self.seconds,
        }


def run_closeness_study(
    ensemble,
    control,
    design: DesignStudySettings | None = None,
    settings: ClosenessSettings | None = None,
    cache_dir: str | Path | None = None,
) -> ClosenessStudy:
    """NRA design groups at each concentration bound, verified in one batch simulation set.

    Parameters
    ----------
    ensemble : KineticEnsemble
    control : ControlCoefficients
        Of the screened models (the first ``design.max_models`` are used).
    design : DesignStudySettings, optional
        NRA, verification reactor and baseline settings (``[nomad.design]``).
    settings : ClosenessSettings, optional
    cache_dir : str or Path, optional
        Keep each model's enumeration at each bound here, keyed by its inputs, and reuse those
        found (:func:`~mpc_bio.nomad.design_study.enumerate_ensemble_designs`): a run stopped
        during the enumeration does not enumerate again what was done.

    Returns
    -------
    ClosenessStudy
    """
    from mpc_bio.nomad.design_study import design_problems, enumerate_ensemble_designs, mca_baselines

    design = design or DesignStudySettings()
    settings = settings or ClosenessSettings()
    model_index, nra, problems = design_problems(ensemble, control, design)
    model_ids = [f"model{i}" for i in model_index]
    net = ensemble.network
    nm = len(problems)
    seconds: dict[str, float] = {}
    strains: dict[str, np.ndarray] = {}
    groups: dict[str, list[str]] = {}
    designs: dict[str, list] = {}
    rules: dict[str, ViabilityRule] = {}
    t = time.perf_counter()
    bounds = {
        group_label(f): dataclasses.replace(nra, max_concentration_fold=float(f), max_designs=settings.designs_per_model)
        for f in settings.concentration_folds
    }
    # every bound's enumerations in one pass over the workers: (bound, model) tasks, bound by bound
    enums = enumerate_ensemble_designs(
        [(p, nra_f) for nra_f in bounds.values() for p in problems], design, cache_dir, "NRA closeness groups"
    )
    for g, (name, nra_f) in enumerate(bounds.items()):
        rules[name] = ViabilityRule.from_nra(nra_f)
        per_model = [list(e.designs[: settings.designs_per_model]) for e in enums[g * nm : (g + 1) * nm]]
        designs[name] = per_model
        labels = []
        for k in range(settings.designs_per_model):
            label = f"{name} #{k + 1}" if settings.designs_per_model > 1 else name
            fold = np.full((nm, net.n_reactions), np.nan)
            for m, (p, ds) in enumerate(zip(problems, per_model)):
                if k < len(ds):
                    fold[m] = vmax_fold_from_log_changes(net, p.enzyme_ids, ds[k].log_changes)
            strains[label] = fold
            labels.append(label)
        groups[name] = labels
    seconds["nra"] = time.perf_counter() - t
    if settings.include_mca:
        base, _, strains[MCA_GROUP] = mca_baselines(net, problems, nra, design)
        groups[MCA_GROUP] = [MCA_GROUP]
        designs[MCA_GROUP] = [[b] for b in base]
        rules[MCA_GROUP] = ViabilityRule.from_nra(nra)
    viability = {label: rules[name] for name, labels in groups.items() for label in labels}
    vs = dataclasses.replace(design.verification, batch_time=settings.batch_time, n_points=settings.n_points, batch_readout="reference_end")
    t = time.perf_counter()
    res = verify_strains(
        ensemble,
        model_index,
        strains,
        settings=vs,
        model_ids=model_ids,
        progress=design.progress,
        viability=viability,
        n_workers=design.n_workers,
    )
    seconds["verification"] = time.perf_counter() - t
    return ClosenessStudy(settings, groups, designs, rules, res, seconds)
