"""The experimental strains against the top designs (NOMAD paper, Fig. 5).

aroG^fbr removes the feedback inhibition of DAHP synthase (DDPA) by phenylalanine
(:data:`~mpc_bio.nomad.regulation.AROG_FBR`); aroG^fbr + tktA adds a ``tkt_fold``-fold (paper:
5) transketolase activity, TKT1 and TKT2. Both are simulated in every model next to the
reference strain and the top-ranked NRA designs at their model-specific fold changes, in the
design stage's batch reactor, and compared by their titers at the end of each model's reference
fermentation. Every strain, the experimental ones included, is judged by the same viability
rule (the designs' NRA bounds); median titers are given under that rule (a non-viable strain
as zero titer) and as simulated.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from mpc_bio.nomad.experiment_settings import StrainComparisonSettings
from mpc_bio.nomad.nra_settings import DesignStudySettings
from mpc_bio.nomad.regulation import AROG_FBR, RegulationError, StrainModification, apply_strain
from mpc_bio.nomad.verification import VerificationResult, finite_mean, finite_median, verify_strains
from mpc_bio.nomad.viability import ViabilityRule

__all__ = ["StrainComparison", "experimental_strains", "run_strain_comparison"]


def experimental_strains(tkt_fold: float = 5.0) -> dict[str, StrainModification]:
    """aroG^fbr and aroG^fbr + tktA (TKT1 and TKT2 x ``tkt_fold``) by label."""
    tkta = StrainModification(
        "aroGfbr_tktA", vmax_folds=(("TKT1", float(tkt_fold)), ("TKT2", float(tkt_fold))), removed_regulations=AROG_FBR.removed_regulations
    )
    return {AROG_FBR.name: AROG_FBR, tkta.name: tkta}


@dataclass(frozen=True, eq=False)
class StrainComparison:
    """Reference, experimental strains and top designs in one batch verification.

    Attributes
    ----------
    settings : StrainComparisonSettings
    designs : tuple of str
        Labels of the compared designs (in rank order).
    rule : ViabilityRule
    verification : VerificationResult
    seconds : dict of str to float
    skipped : dict of str to str
        Experimental strains that do not fit the network (e.g. no phenylalanine feedback on
        DDPA) and why.
    """

    settings: StrainComparisonSettings
    designs: tuple[str, ...]
    rule: ViabilityRule
    verification: VerificationResult
    seconds: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)

    def titers_g_per_l(self, as_simulated: bool = False) -> dict[str, np.ndarray]:
        """Titer at each model's readout per strain (g/L), over the models where the strain was
        applied; a non-viable strain as 0 unless ``as_simulated``."""
        res = self.verification
        gpl = res.product_mw_g_per_mol / 1000.0
        out = {}
        for s, label in enumerate(res.strains):
            applied = np.array(["not applied" not in str(msg) for msg in res.messages[s]])
            t = res.titer[s] * gpl
            if not as_simulated:
                t = np.where(res.valid[s], t, 0.0)
            out[label] = t[applied]
        return out

    def summary(self) -> dict:
        """JSON-ready: median and mean titers per strain (g/L) under the rule and as simulated,
        viability counts and failures, and the paper's qualitative orderings as booleans."""
        rule_t, sim_t = self.titers_g_per_l(False), self.titers_g_per_l(True)
        res = self.verification

        strains = {}
        for s, label in enumerate(res.strains):
            strains[label] = {
                "median_titer_g_per_l": finite_median(rule_t[label]),
                "median_titer_g_per_l_as_simulated": finite_median(sim_t[label]),
                "mean_titer_g_per_l": finite_mean(rule_t[label]),
                "mean_titer_g_per_l_as_simulated": finite_mean(sim_t[label]),
                "n_models": int(rule_t[label].size),
                "n_viable": int(res.valid[s].sum()),
                "failures": {res.model_ids[m]: str(res.failure[s, m]) for m in range(len(res.model_ids)) if not res.valid[s, m]},
            }
        m = {k: v["median_titer_g_per_l"] for k, v in strains.items()}
        ms = {k: v["median_titer_g_per_l_as_simulated"] for k, v in strains.items()}

        def order(d):
            a, b, r = d.get("aroGfbr_tktA"), d.get("aroGfbr"), d.get("reference")
            if None in (a, b, r):
                return None
            return bool(a > b > r)

        def designs_above(d):
            vals = [d[k] for k in self.designs if d.get(k) is not None]
            t = d.get("aroGfbr_tktA")
            return None if not vals or t is None else bool(float(np.median(vals)) > t)

        return {
            "viability_rule": dataclasses.asdict(self.rule),
            "readout_times_h": [float(t) for t in res.readout_times],
            "strains": strains,
            "median_titer_g_per_l": m,
            "median_titer_g_per_l_as_simulated": ms,
            "designs": list(self.designs),
            "aroGfbr_tktA_above_aroGfbr_above_reference": order(m),
            "aroGfbr_tktA_above_aroGfbr_above_reference_as_simulated": order(ms),
            "top_designs_median_above_aroGfbr_tktA": designs_above(m),
            "top_designs_median_above_aroGfbr_tktA_as_simulated": designs_above(ms),
            "skipped_strains": dict(self.skipped),
            "paper_median_titer_g_per_l": {"reference": 0.31, "aroGfbr": 0.33, "aroGfbr_tktA": 0.36, "top designs": 0.4},
            "seconds": self.seconds,
        }


def run_strain_comparison(
    ensemble,
    model_index,
    design_strains: dict[str, np.ndarray],
    design: DesignStudySettings | None = None,
    settings: StrainComparisonSettings | None = None,
    *,
    rule: ViabilityRule | None = None,
    model_ids=None,
) -> StrainComparison:
    """Simulate reference, aroG^fbr, aroG^fbr + tktA and the given designs in every model.

    Parameters
    ----------
    ensemble : KineticEnsemble
    model_index : sequence of int
        Models (indices into ``ensemble``).
    design_strains : dict of str to ndarray (n_models, n_rxn)
        Vmax fold matrices of the designs (e.g. :func:`~mpc_bio.nomad.design_study.design_strains`).
    design : DesignStudySettings, optional
        Its verification settings give the reactor; its NRA settings the default rule.
    settings : StrainComparisonSettings, optional
    rule : ViabilityRule, optional
        Default :meth:`ViabilityRule.from_nra` of ``design.nra``.

    An experimental strain whose modification does not fit the network is left out and named
    in :attr:`StrainComparison.skipped`.
    """
    design = design or DesignStudySettings()
    settings = settings or StrainComparisonSettings()
    rule = rule or ViabilityRule.from_nra(design.nra)
    nm, nr = len(model_index), ensemble.network.n_reactions
    mods, skipped = {}, {}
    for label, mod in experimental_strains(settings.tkt_fold).items():
        try:
            apply_strain(ensemble.network, ensemble.km[:1], ensemble.vmax[:1], mod)
            mods[label] = mod
        except RegulationError as exc:
            skipped[label] = str(exc)
    strains = {label: np.ones((nm, nr)) for label in mods}
    strains.update(design_strains)
    t = time.perf_counter()
    res = verify_strains(
        ensemble,
        model_index,
        strains,
        settings=design.verification,
        model_ids=model_ids,
        progress=design.progress,
        viability=rule,
        modifications=mods,
        n_workers=design.n_workers,
    )
    return StrainComparison(settings, tuple(design_strains), rule, res, {"verification": time.perf_counter() - t}, skipped)
