"""The +-50 % expression robustness of the top designs (NOMAD paper, Fig. 7C-F).

For each design the mean NRA fold change of every member over the models is perturbed by
U(1 - a, 1 + a) (paper: a = 0.5), all members together and each alone with the others at their
mean, ``n_draws`` times per model (paper: 10 x 10 models), and simulated in the design stage's
batch reactor (:func:`~mpc_bio.nomad.sensitivity.expression_sensitivities`). Titers are read at the
end of each model's reference fermentation and every draw is judged by the design's viability
rule (a non-viable draw as zero titer). A design is robust when, in mode "all", the mean titer
over the models beats the reference strain's in at least ``robust_fraction`` of the draws.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np

from mpc_bio.nomad.experiment_settings import RobustnessSettings
from mpc_bio.nomad.nra_settings import DesignStudySettings, SensitivitySettings
from mpc_bio.nomad.sensitivity import SensitivityResult, expression_sensitivities
from mpc_bio.nomad.viability import ViabilityRule

__all__ = ["RobustnessStudy", "run_robustness_study"]


@dataclass(frozen=True, eq=False)
class RobustnessStudy:
    """Sensitivity results of the top designs.

    Attributes
    ----------
    settings : RobustnessSettings
    rule : ViabilityRule
    results : tuple of SensitivityResult
        One per design (designs whose mean fold change is undefined are left out).
    skipped : dict of str to str
        Designs not perturbed and why.
    seconds : dict of str to float
    """

    settings: RobustnessSettings
    rule: ViabilityRule
    results: tuple[SensitivityResult, ...]
    skipped: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-ready: per design its mean folds, per mode the statistics of
        :meth:`SensitivityResult.summary`, and ``robust`` (mode "all", rule applied)."""
        designs = {}
        for r in self.results:
            s = r.summary()
            frac = s["all"]["fraction_draws_mean_above_reference"]
            designs[r.design] = {
                "mean_fold": {e: float(f) for e, f in zip(r.enzymes, r.mean_fold)},
                "modes": s,
                "robust": None if frac is None else bool(frac >= self.settings.robust_fraction),
                "robust_as_simulated": None
                if s["all"]["fraction_draws_mean_above_reference_as_simulated"] is None
                else bool(s["all"]["fraction_draws_mean_above_reference_as_simulated"] >= self.settings.robust_fraction),
                "seconds": r.seconds,
            }
        return {
            "perturbation": self.settings.perturbation,
            "n_draws": self.settings.n_draws,
            "robust_fraction": self.settings.robust_fraction,
            "viability_rule": dataclasses.asdict(self.rule),
            "designs": designs,
            "skipped": dict(self.skipped),
            "seconds": self.seconds,
        }


def run_robustness_study(
    ensemble,
    model_index,
    ranking,
    top,
    reference_titer: np.ndarray,
    readout_times: np.ndarray,
    design: DesignStudySettings | None = None,
    settings: RobustnessSettings | None = None,
    *,
    rule: ViabilityRule | None = None,
    model_ids=None,
) -> RobustnessStudy:
    """Perturb the mean fold changes of the ranked designs ``top`` in every model.

    Parameters
    ----------
    ensemble : KineticEnsemble
    model_index : sequence of int
    ranking : DesignRanking
    top : sequence of int
        Ranking positions; labelled 'd-1 ...', 'd-2 ...' in this order.
    reference_titer, readout_times : ndarray (n_models,)
        Reference-strain titer (mM) at each model's readout time (h), e.g. from the batch
        verification of the same models.
    design : DesignStudySettings, optional
        Its verification settings give the reactor; its NRA the default rule.
    settings : RobustnessSettings, optional
    rule : ViabilityRule, optional
    """
    design = design or DesignStudySettings()
    settings = settings or RobustnessSettings()
    rule = rule or ViabilityRule.from_nra(design.nra)
    sens = SensitivitySettings(perturbation=settings.perturbation, n_draws=settings.n_draws, seed=settings.seed)
    designs, skipped = [], {}
    for k, i in enumerate(top):
        label = f"d-{k + 1} {ranking.designs[i].label}"
        mean = ranking.mean_fold_changes(i)
        if not all(math.isfinite(v) for v in mean.values()):
            skipped[label] = "infeasible in every model (no mean fold change)"
            continue
        designs.append((label, tuple(mean), tuple(mean.values())))
    t = time.perf_counter()
    # tasks of (design, chunk of models), so that every worker stays busy
    results = expression_sensitivities(
        ensemble,
        list(model_index),
        designs,
        settings=sens,
        verification=design.verification,
        model_ids=model_ids,
        reference_titer=reference_titer,
        readout_times=readout_times,
        viability=rule,
        each_enzyme=settings.each_enzyme,
        n_workers=settings.n_workers,
    )
    return RobustnessStudy(settings, rule, results, skipped, {"simulation": time.perf_counter() - t})
