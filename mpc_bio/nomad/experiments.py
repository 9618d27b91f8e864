"""The NOMAD paper's experiments on a screened ensemble: run them and write their results.

``closeness`` (:mod:`mpc_bio.nomad.closeness`, paper Fig. 3), ``strains``
(:mod:`mpc_bio.nomad.strain_comparison`, Fig. 5) and ``sensitivity``
(:mod:`mpc_bio.nomad.robustness`, Fig. 7). :func:`run_experiments` runs any of them on an
ensemble and its control coefficients with the design stage's settings (``[nomad.design]``);
``strains`` and ``sensitivity`` share one NRA enumeration and ranking (the design stage's) and
one batch verification of the reference strain. :func:`write_experiments` writes
``<name>.json``, tables and figures per experiment. ``mpc-bio nomad experiment`` chains them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from mpc_bio.nomad.experiment_settings import ClosenessSettings, RobustnessSettings, StrainComparisonSettings
from mpc_bio.nomad.nra_settings import DesignStudySettings
from mpc_bio.outputs import json_default

__all__ = ["EXPERIMENTS", "ExperimentResults", "run_experiments", "write_experiments"]

#: Experiment names, in the order they run.
EXPERIMENTS = ("closeness", "strains", "sensitivity")


@dataclass(frozen=True, eq=False)
class ExperimentResults:
    """What :func:`run_experiments` produced.

    Attributes
    ----------
    closeness : ClosenessStudy or None
    strains : StrainComparison or None
    sensitivity : RobustnessStudy or None
    ranking : dict or None
        The design ranking shared by strains and sensitivity: top designs with their mean
        predicted yield gain and feasible models (None when neither ran).
    seconds : dict of str to float
    product_mw : float
        Molar mass of the product (g/mol), for titers in g/L.
    """

    closeness: object = None
    strains: object = None
    sensitivity: object = None
    ranking: dict | None = None
    seconds: dict = field(default_factory=dict)
    product_mw: float = 137.14

    def summaries(self) -> dict:
        """Per experiment that ran, its JSON-ready summary (the ranking added to strains and sensitivity)."""
        out = {}
        for name in EXPERIMENTS:
            study = getattr(self, name)
            if study is not None:
                s = study.summary()
                if name != "closeness" and self.ranking is not None:
                    s["ranking"] = self.ranking
                out[name] = s
        return out


def run_experiments(
    names,
    ensemble,
    control,
    design: DesignStudySettings | None = None,
    *,
    closeness: ClosenessSettings | None = None,
    strains: StrainComparisonSettings | None = None,
    sensitivity: RobustnessSettings | None = None,
    on_result=None,
    cache_dir=None,
) -> ExperimentResults:
    """Run the named experiments (a subset of :data:`EXPERIMENTS`).

    Parameters
    ----------
    names : iterable of str
    ensemble : KineticEnsemble
    control : ControlCoefficients
        Of the screened models; the first ``design.max_models`` are used.
    design : DesignStudySettings, optional
    closeness, strains, sensitivity : optional
        Settings of each experiment.
    on_result : callable, optional
        Called as ``on_result(partial)`` with an :class:`ExperimentResults` of the experiments
        done so far after each one (e.g. to write partial results of a long run).
    cache_dir : str or Path, optional
        Where the NRA enumerations (the closeness groups' too) and the ranking are kept and reused
        across runs (by their inputs; :func:`~mpc_bio.nomad.design_study.rank_ensemble_designs`).
    """
    names = tuple(dict.fromkeys(names))
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown or not names:
        raise ValueError(f"The 'names' parameter must name experiments among {EXPERIMENTS}. Got {list(names)!r}.")
    design = design or DesignStudySettings()
    seconds: dict[str, float] = {}
    out: dict = {}
    if "closeness" in names:
        from mpc_bio.nomad.closeness import run_closeness_study

        t = time.perf_counter()
        out["closeness"] = run_closeness_study(ensemble, control, design, closeness, cache_dir)
        seconds["closeness"] = time.perf_counter() - t
        _report(on_result, out, None, seconds, design)
    ranking_summary = None
    if "strains" in names or "sensitivity" in names:
        from mpc_bio.nomad.design_study import design_strains, rank_ensemble_designs
        from mpc_bio.nomad.verification import verify_strains

        strains = strains or StrainComparisonSettings()
        sensitivity = sensitivity or RobustnessSettings()
        t = time.perf_counter()
        model_index, nra, problems, designs, ranking, sec = rank_ensemble_designs(ensemble, control, design, cache_dir)
        seconds.update({f"design_{k}": v for k, v in sec.items()})
        model_ids = [f"model{i}" for i in model_index]
        n_top = max(strains.top_n if "strains" in names else 0, sensitivity.top_n if "sensitivity" in names else 0)
        top = tuple(range(min(n_top, len(ranking.designs))))
        ranking_summary = {
            "designs": [{"rank": k + 1, **ranking.design_summary(i)} for k, i in enumerate(top)],
            "n_unique_designs": len(designs.unique),
            "n_designs_enumerated": int(designs.n_designs),
        }
        from mpc_bio.nomad.viability import ViabilityRule

        rule = ViabilityRule.from_nra(nra)
        ref_res = None
        if "strains" in names:
            from mpc_bio.nomad.strain_comparison import run_strain_comparison

            fold = design_strains(ensemble.network, ranking, len(problems), top[: strains.top_n])
            out["strains"] = run_strain_comparison(ensemble, model_index, fold, design, strains, rule=rule, model_ids=model_ids)
            ref_res = out["strains"].verification
            seconds["strains"] = time.perf_counter() - t
            _report(on_result, out, ranking_summary, seconds, design)
        if "sensitivity" in names:
            from mpc_bio.nomad.robustness import run_robustness_study

            t = time.perf_counter()
            if ref_res is None:
                ref_res = verify_strains(
                    ensemble, model_index, {}, settings=design.verification, model_ids=model_ids, viability=rule, n_workers=design.n_workers
                )
            out["sensitivity"] = run_robustness_study(
                ensemble,
                model_index,
                ranking,
                top[: sensitivity.top_n],
                ref_res.titer[0],
                ref_res.readout_times,
                design,
                sensitivity,
                rule=rule,
                model_ids=model_ids,
            )
            seconds["sensitivity"] = time.perf_counter() - t
    return _results(out, ranking_summary, seconds, design)


def _results(out: dict, ranking: dict | None, seconds: dict, design: DesignStudySettings) -> ExperimentResults:
    """The experiments done so far (``out``) as an :class:`ExperimentResults`."""
    return ExperimentResults(
        out.get("closeness"), out.get("strains"), out.get("sensitivity"), ranking, dict(seconds), design.verification.product_mw
    )


def _report(on_result, out: dict, ranking: dict | None, seconds: dict, design: DesignStudySettings) -> None:
    if on_result is not None:
        on_result(_results(out, ranking, seconds, design))


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def write_experiments(results: ExperimentResults, out_dir: str | Path, figures: bool = True) -> Path:
    """Write ``<experiment>.json``, a CSV table and figures per experiment that ran.

    Layout: ``closeness.json``, ``closeness_verification.csv``, ``strains.json``,
    ``strains_verification.csv``, ``sensitivity.json``, ``sensitivity.csv``, ``figures/``
    (``closeness_time_courses.png``, ``closeness_groups.png``, ``strains_titers.png``,
    ``strains_time_courses.png``, ``sensitivity_fractions.png``, ``sensitivity_d<k>.png``).
    """
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, summary in results.summaries().items():
        summary = dict(summary)
        summary["seconds_total"] = results.seconds.get(name)
        (out / f"{name}.json").write_text(json.dumps(summary, indent=2, default=json_default))
    if results.closeness is not None:
        results.closeness.verification.to_frame().to_csv(out / "closeness_verification.csv", index=False)
    if results.strains is not None:
        results.strains.verification.to_frame().to_csv(out / "strains_verification.csv", index=False)
    if results.sensitivity is not None and results.sensitivity.results:
        pd.concat([r.to_frame() for r in results.sensitivity.results], ignore_index=True).to_csv(out / "sensitivity.csv", index=False)
    if figures:
        from mpc_bio.plotting.nomad_design import plot_sensitivity_bands
        from mpc_bio.plotting.nomad_experiments import (
            plot_closeness_groups,
            plot_closeness_time_courses,
            plot_robustness_fractions,
            plot_strain_time_courses,
            plot_strain_titers,
        )

        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        summaries = results.summaries()
        if results.closeness is not None:
            _save(
                plot_closeness_time_courses(results.closeness.verification, results.closeness.groups),
                fig_dir / "closeness_time_courses.png",
            )
            _save(plot_closeness_groups(summaries["closeness"]), fig_dir / "closeness_groups.png")
        if results.strains is not None:
            st = results.strains
            _save(
                plot_strain_titers(st.titers_g_per_l(False), st.titers_g_per_l(True), summaries["strains"]["paper_median_titer_g_per_l"]),
                fig_dir / "strains_titers.png",
            )
            _save(plot_strain_time_courses(st.verification), fig_dir / "strains_time_courses.png")
        if results.sensitivity is not None and results.sensitivity.results:
            _save(plot_robustness_fractions(summaries["sensitivity"]), fig_dir / "sensitivity_fractions.png")
            for k, r in enumerate(results.sensitivity.results):
                _save(plot_sensitivity_bands(r, product_mw_g_per_mol=results.product_mw), fig_dir / f"sensitivity_d{k + 1}.png")
    return out
