"""``mpc-bio nomad design``: NRA designs over the screened ensemble, ranking, MCA baseline,
nonlinear batch / fed-batch verification and expression sensitivity.

The work is done by :func:`run_design_study` (returns a :class:`DesignStudy`) and written by
:func:`write_design_study`; the command reads the ensemble stage's output directory
(``[nomad] output_dir``: ``ensemble/`` and ``control_coefficients/``) and runs the ensemble
stage first when that output is missing. Settings: the ``[nomad.design]`` table and its
sub-tables ``[nomad.design.nra]``, ``.ranking``, ``.verification``, ``.sensitivity``
(see :class:`~mpc_bio.nomad.nra_settings.DesignStudySettings`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from mpc_bio.nomad.nra_settings import DesignStudySettings

__all__ = [
    "DesignStudy",
    "load_design_settings",
    "run_design_study",
    "write_design_study",
    "register",
]

DESIGN_HELP = """\
Design strains with Network Response Analysis (NRA) on the screened kinetic models: enumerate
all designs within a fraction of the optimum per model (integer cuts), keep those unique by
membership, enforce each in every model and rank by mean predicted yield increase, compare with
the MCA baseline (top yield control coefficients, fixed fold change), verify the top designs in
nonlinear batch and fed-batch reactor simulations, and perturb their expression levels.
Batch titers, yields and biomass are compared at the end of each model's reference-strain
fermentation ([nomad.design.verification] batch_readout). A strain is viable in a model when
its simulation runs and it has a stable steady state at the reference medium whose
concentrations stay inside the ensemble's physiological range widened by
viability_concentration_fold (default 3, the NRA bound); a non-viable strain is a loss in every
comparison and counts as zero titer in the ensemble means (means over viable models and as
simulated are printed beside them).

Reads the ensemble stage's output ([nomad] output_dir: ensemble/ and control_coefficients/;
runs `mpc-bio nomad ensemble` first if it is missing). Settings: [nomad.design] and its
sub-tables [nomad.design.nra], [nomad.design.ranking], [nomad.design.verification],
[nomad.design.sensitivity]. Writes designs.csv, unique_designs.csv, ranking.csv,
ranking_matrix.csv, baseline.csv, verification.csv, sensitivity.csv, summary.json and figures/.

examples:
  mpc-bio nomad design --config scenarios/nomad_anthranilate.toml
  mpc-bio nomad design --config scenarios/nomad_anthranilate.toml --max-models 5 --out runs/nomad_design_small
  mpc-bio nomad design --config scenarios/nomad_anthranilate.toml --ensemble-dir runs/nomad_anthranilate
"""


@dataclass(frozen=True, eq=False)
class DesignStudy:
    """Everything the design stage produced.

    Attributes
    ----------
    settings : DesignStudySettings
    model_index : ndarray of int
        Ensemble indices of the models used.
    problems : tuple of NRAProblem
    designs : EnsembleDesigns
    ranking : DesignRanking
    baseline : tuple of NRADesign
        MCA baseline design per model.
    baseline_violations : tuple of dict
        How far each baseline violates the NRA constraints (ln units).
    top : tuple of int
        Ranking positions of the verified designs.
    batch, fed_batch : VerificationResult
    sensitivity : tuple of SensitivityResult
    seconds : dict of str to float
        Wall time per step (s).
    """

    settings: DesignStudySettings
    model_index: np.ndarray
    problems: tuple
    designs: object
    ranking: object
    baseline: tuple
    baseline_violations: tuple
    top: tuple[int, ...]
    batch: object
    fed_batch: object
    sensitivity: tuple
    seconds: dict[str, float] = field(default_factory=dict)

    def strain_labels(self) -> list[str]:
        """Labels of the verified designs, e.g. 'd-1 DDPA+GLUDy+PGI'."""
        return [f"d-{k + 1} {self.ranking.designs[i].label}" for k, i in enumerate(self.top)]

    def summary(self) -> dict:
        """JSON-ready summary of the study."""
        enums = self.designs.enumerations
        solve_times = np.concatenate([e.solve_times_s for e in enums]) if enums else np.zeros(0)
        rk = self.ranking
        labels = self.strain_labels()
        out = {
            "n_models": len(self.problems),
            "model_index": [int(i) for i in self.model_index],
            "nra": {
                "status_per_model": {e.model_id: e.status for e in enums},
                "designs_per_model": {e.model_id: len(e.designs) for e in enums},
                "optimum_yield_gain_per_model": {e.model_id: (math.expm1(e.optimum) if math.isfinite(e.optimum) else None) for e in enums},
                "truncated": [e.model_id for e in enums if e.truncated],
                "designs_enumerated": int(self.designs.n_designs),
                "unique_by_membership": len(self.designs.unique),
                "milp_solves": int(solve_times.size),
                "milp_solve_s_median": float(np.median(solve_times)) if solve_times.size else None,
                "enumeration_s": float(self.designs.time_s),
            },
            "ranking": [
                {
                    "rank": k + 1,
                    "design": rk.designs[k].label,
                    "mean_predicted_yield_gain": float(rk.mean_yield_gain[k]),
                    "n_feasible_models": int(rk.n_feasible[k]),
                    "mean_fold_changes": rk.mean_fold_changes(k),
                }
                for k in range(min(10, len(rk.designs)))
            ],
            "baseline": {
                # exp(mean ln yield change) - 1, as the ranking's mean_predicted_yield_gain
                "mean_predicted_yield_gain": float(np.expm1(np.mean([b.objective for b in self.baseline]))) if self.baseline else None,
                "predicted_yield_gain_per_model": {b.model_id: b.yield_gain for b in self.baseline},
                "designs": {b.model_id: b.label for b in self.baseline},
                "max_concentration_violation_ln": float(max((v["concentration"] for v in self.baseline_violations), default=0.0)),
                "n_models_violating_nra_constraints": int(sum(1 for v in self.baseline_violations if max(v.values()) > 1e-6)),
            },
            "verified_designs": labels,
            "seconds": self.seconds,
            "settings": dataclasses.asdict(self.settings),
        }
        for name, res in (("batch", self.batch), ("fed_batch", self.fed_batch)):
            if res is None:
                continue
            per = res.summary()
            for label in list(labels) + (["MCA baseline"] if "MCA baseline" in res.strains else []):
                if label not in res.strains:
                    continue
                per[label]["fraction_models_above_reference"] = per[label]["vs_reference"]["fraction_models_titer_higher"]
                if "MCA baseline" in res.strains and label != "MCA baseline":
                    vs_b = res.compare(label, "MCA baseline")
                    per[label]["vs_baseline"] = vs_b
                    per[label]["fraction_models_above_baseline"] = vs_b["fraction_models_titer_higher"]
            out[name] = {"strains": per, "n_simulations": res.n_simulations, "seconds": res.seconds,
                         "readout": res.mode == "batch" and self.settings.verification.batch_readout or "t_end",
                         "readout_times_h": {m: float(t) for m, t in zip(res.model_ids, res.readout_times)}
                         if res.readout_times is not None else None,
                         "simulations_per_s": res.n_simulations / res.seconds if res.seconds > 0 else None}
        out["sensitivity"] = {s.design: s.summary() for s in self.sensitivity}
        return out


def _enumerate_one(args):
    from mpc_bio.nomad.nra import enumerate_designs

    problem, settings = args
    return enumerate_designs(problem, settings)


def run_design_study(
    ensemble,
    control,
    settings: DesignStudySettings | None = None,
    *,
    feed: Callable[[float], float] | None = None,
) -> DesignStudy:
    """Run NRA, ranking, baseline, verification and sensitivity on screened models.

    Parameters
    ----------
    ensemble : KineticEnsemble
        All sampled models (the ensemble stage's output).
    control : ControlCoefficients
        Control coefficients of the screened models (``control.model_index`` into ``ensemble``).
    settings : DesignStudySettings, optional
    feed : FeedProfile or callable t (h) -> F (L/h), optional
        Fed-batch feed; default the piecewise-constant feed of ``settings.verification``.
        An optimised feed from the control layer can be passed here.

    Returns
    -------
    DesignStudy
    """
    from mpc_bio.nomad.nra import nra_problems_from_control_coefficients
    from mpc_bio.nomad.ranking import (
        EnsembleDesigns,
        mca_baseline,
        rank_designs,
        unique_designs,
    )
    from mpc_bio.nomad.verification import (
        FeedProfile,
        expression_sensitivity,
        verify_strains,
    )

    settings = settings or DesignStudySettings()
    if control.n_models == 0:
        raise ValueError("No screened models: the ensemble stage left no model with control coefficients.")
    rows = np.arange(control.n_models)
    if settings.max_models is not None:
        rows = rows[: settings.max_models]
    cc = control.select(rows)
    model_index = np.asarray(cc.model_index, dtype=int)
    model_ids = [f"model{i}" for i in model_index]
    nra = settings.nra
    extra = [cc.growth_reaction]  # the lumped growth reaction is not an enzyme that can be engineered
    if settings.exclude_transport:
        net = ensemble.network
        extra += [r for r, law in zip(net.reaction_ids, net.rate_laws) if law == "mass_action"]
    extra = [e for e in extra if e in cc.enzyme_ids and e not in nra.excluded_enzymes]
    if extra:
        nra = dataclasses.replace(nra, excluded_enzymes=nra.excluded_enzymes + tuple(dict.fromkeys(extra)))
    problems = nra_problems_from_control_coefficients(cc, model_ids=model_ids)
    seconds: dict[str, float] = {}
    show = settings.show_progress

    t = time.perf_counter()
    args = [(p, nra) for p in problems]
    if settings.n_workers > 1 and len(problems) > 1:
        with ProcessPoolExecutor(max_workers=settings.n_workers) as pool:
            it = pool.map(_enumerate_one, args)
            if show:
                from tqdm.auto import tqdm

                it = tqdm(it, total=len(args), desc="NRA per model", leave=False)
            enums = tuple(it)
    else:
        it = args
        if show:
            from tqdm.auto import tqdm

            it = tqdm(args, desc="NRA per model", leave=False)
        enums = tuple(_enumerate_one(a) for a in it)
    seconds["enumeration"] = time.perf_counter() - t
    designs = EnsembleDesigns(enums, unique_designs(enums), seconds["enumeration"])

    t = time.perf_counter()
    ranking = rank_designs(problems, designs.unique, nra, settings.ranking, show_progress=show)
    seconds["ranking"] = time.perf_counter() - t

    excluded = set(nra.excluded_enzymes)
    baseline, violations = [], []
    for p in problems:
        b, v = mca_baseline(p, fold=settings.baseline_fold, size=settings.baseline_size, excluded=tuple(excluded), settings=nra)
        baseline.append(b)
        violations.append(v)

    from mpc_bio.nomad.verification import vmax_fold_from_log_changes

    net = ensemble.network
    top = tuple(range(min(settings.ranking.top_n, len(ranking.designs))))
    strains: dict[str, np.ndarray] = {}
    for k, i in enumerate(top):
        label = f"d-{k + 1} {ranking.designs[i].label}"
        fold = np.full((len(problems), net.n_reactions), np.nan)
        for m in range(len(problems)):
            d = ranking.log_changes[i, m]
            if np.all(np.isfinite(d)):
                fold[m] = vmax_fold_from_log_changes(net, ranking.enzyme_ids, d)
        strains[label] = fold
    strains["MCA baseline"] = np.array([vmax_fold_from_log_changes(net, p.enzyme_ids, b.log_changes) for p, b in zip(problems, baseline)])

    t = time.perf_counter()
    vs = settings.verification
    batch = verify_strains(ensemble, model_index, strains, settings=vs, model_ids=model_ids, show_progress=show)
    seconds["verification_batch"] = time.perf_counter() - t
    t = time.perf_counter()
    fed = verify_strains(
        ensemble, model_index, strains, settings=vs, feed=feed if feed is not None else FeedProfile.from_settings(vs),
        model_ids=model_ids, show_progress=show,
    )
    seconds["verification_fed_batch"] = time.perf_counter() - t

    t = time.perf_counter()
    sens = []
    ref_titer = batch.titer[0]
    for k, i in enumerate(top):
        mean = ranking.mean_fold_changes(i)
        if not all(math.isfinite(v) for v in mean.values()):
            continue
        sens.append(
            expression_sensitivity(
                ensemble, model_index, f"d-{k + 1} {ranking.designs[i].label}", tuple(mean), tuple(mean.values()),
                settings=settings.sensitivity, verification=vs, model_ids=model_ids, reference_titer=ref_titer,
                readout_times=batch.readout_times, show_progress=show,
            )
        )
    seconds["sensitivity"] = time.perf_counter() - t
    return DesignStudy(settings, model_index, tuple(problems), designs, ranking, tuple(baseline), tuple(violations),
                       top, batch, fed, tuple(sens), seconds)


def write_design_study(study: DesignStudy, out_dir: str | Path, figures: bool = True) -> Path:
    """Write tables, ``summary.json`` and figures of a :class:`DesignStudy` into ``out_dir``."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study.designs.to_frame().to_csv(out / "designs.csv", index=False)
    pd.DataFrame(
        [{"design": u.label, "count": u.count, "source_models": " ".join(sorted(set(u.source_models))),
          "best_objective_ln": u.best_objective, "best_yield_gain": math.expm1(u.best_objective)} for u in study.designs.unique]
    ).to_csv(out / "unique_designs.csv", index=False)
    study.ranking.to_frame().to_csv(out / "ranking.csv", index=False)
    study.ranking.matrix_frame().to_csv(out / "ranking_matrix.csv", index_label="design")
    pd.DataFrame(
        [{"model_id": b.model_id, "design": b.label, "predicted_yield_gain": b.yield_gain,
          **{f"violation_{k}_ln": v for k, v in viol.items()}} for b, viol in zip(study.baseline, study.baseline_violations)]
    ).to_csv(out / "baseline.csv", index=False)
    frames = [r.to_frame() for r in (study.batch, study.fed_batch) if r is not None]
    if frames:
        pd.concat(frames, ignore_index=True).to_csv(out / "verification.csv", index=False)
    if study.sensitivity:
        pd.concat([s.to_frame() for s in study.sensitivity], ignore_index=True).to_csv(out / "sensitivity.csv", index=False)
    (out / "summary.json").write_text(json.dumps(study.summary(), indent=2, default=_json_default))
    if figures:
        import matplotlib.pyplot as plt

        from mpc_bio.plotting.nomad_design import (
            plot_design_membership,
            plot_design_ranking,
            plot_sensitivity_bands,
            plot_titer_time_courses,
        )

        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        items = [("design_membership", plot_design_membership, study.designs), ("ranking", plot_design_ranking, study.ranking),
                 ("titer_batch", plot_titer_time_courses, study.batch), ("titer_fed_batch", plot_titer_time_courses, study.fed_batch)]
        items += [(f"sensitivity_d{k + 1}", plot_sensitivity_bands, s) for k, s in enumerate(study.sensitivity)]
        for name, fn, obj in items:
            if obj is None:
                continue
            fig = fn(obj)
            fig.savefig(fig_dir / f"{name}.png", dpi=120, bbox_inches="tight")
            plt.close(fig)
    return out


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def load_design_settings(path: str | Path) -> tuple[DesignStudySettings, str]:
    """Read ``[nomad.design]`` (and ``[nomad] output_dir``) of a scenario TOML file.

    Returns
    -------
    settings : DesignStudySettings
    ensemble_dir : str
        The ensemble stage's output directory (``[nomad] output_dir``, default "runs/nomad").
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"The scenario file {str(path)!r} does not exist.")
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    nomad = data.get("nomad", {})
    design = nomad.get("design", {})
    if not isinstance(design, dict):
        raise ValueError(f"[nomad.design] in {str(path)!r} must be a table.")
    return DesignStudySettings.from_dict(design), str(nomad.get("output_dir", "runs/nomad"))


def _load_or_run_ensemble(config: str, ensemble_dir: Path, show: bool):
    from mpc_bio.nomad.ensemble import load_ensemble
    from mpc_bio.nomad.mca import load_control_coefficients

    if (ensemble_dir / "ensemble" / "ensemble.json").is_file() and (ensemble_dir / "control_coefficients" / "control_coefficients.json").is_file():
        return load_ensemble(ensemble_dir / "ensemble"), load_control_coefficients(ensemble_dir / "control_coefficients")
    from mpc_bio.nomad.settings import load_study_settings
    from mpc_bio.nomad.study import run_ensemble_study, write_ensemble_study

    print(f"no ensemble output in {ensemble_dir}; running the ensemble stage first")
    ens_settings = load_study_settings(config)
    if not show:
        ens_settings = dataclasses.replace(ens_settings, executor=dataclasses.replace(ens_settings.executor, progress=False))
    study = run_ensemble_study(ens_settings)
    write_ensemble_study(study, ensemble_dir)
    return study.ensemble, study.control


def _design(args: argparse.Namespace) -> int:
    settings, ens_dir = load_design_settings(args.config)
    if args.max_models is not None:
        settings = dataclasses.replace(settings, max_models=args.max_models or None)
    if args.workers is not None:
        settings = dataclasses.replace(settings, n_workers=args.workers)
    if args.no_progress:
        settings = dataclasses.replace(settings, show_progress=False)
    ens_dir = Path(args.ensemble_dir or ens_dir)
    out = Path(args.out or (ens_dir / "design"))
    t0 = time.perf_counter()
    ensemble, control = _load_or_run_ensemble(args.config, ens_dir, settings.show_progress)
    study = run_design_study(ensemble, control, settings)
    write_design_study(study, out, figures=not args.no_figures)
    s = study.summary()
    print(f"NRA on {s['n_models']} models: {s['nra']['designs_enumerated']} designs "
          f"({s['nra']['unique_by_membership']} unique by membership), {s['nra']['milp_solves']} MILP solves, "
          f"median {s['nra']['milp_solve_s_median']:.2f} s, enumeration {s['nra']['enumeration_s']:.1f} s")
    for r in s["ranking"][:5]:
        print(f"  #{r['rank']} {r['design']:<32} predicted yield +{100 * r['mean_predicted_yield_gain']:.0f}% "
              f"(feasible in {r['n_feasible_models']} models)")
    for mode in ("batch", "fed_batch"):
        strains = s[mode]["strains"]
        print(f"{mode} (read at {s[mode]['readout']}): titer / reference, mean over all models with non-viable "
              f"strains as 0 | over viable models | as simulated (viability ignored); median (non-viable as 0)")
        for label, v in strains.items():
            if label == "reference":
                continue
            st = v["titer_ratio_vs_reference"]
            fmt = lambda x: "n/a" if x is None else f"{x:.2f}"
            print(f"  {label:<36} {fmt(st['failures_as_zero']['mean'])} | {fmt(st['valid']['mean'])} | "
                  f"{fmt(st['as_simulated']['mean'])}; median {fmt(st['failures_as_zero']['median'])}; "
                  f"viable in {v['n_valid']}/{v['n_models']}")
        print(f"{mode}: mean titer gain vs reference over viable models")
        for label, v in strains.items():
            if label == "reference":
                continue
            g = v["mean_titer_gain"]
            extra = f", valid in {v['n_valid']}/{v['n_models']}"
            if v.get("fraction_models_above_reference") is not None:
                extra += f", above reference in {100 * v['fraction_models_above_reference']:.0f}%"
            if v.get("fraction_models_above_baseline") is not None:
                extra += f", above baseline in {100 * v['fraction_models_above_baseline']:.0f}%"
            if v.get("fraction_models_growth_kept") is not None:
                extra += f", biomass >= 80% of reference in {100 * v['fraction_models_growth_kept']:.0f}%"
            print(f"  {label:<36} {'n/a' if g is None else f'{100 * g:+.1f}%'}{extra} of models")
    print(f"total {time.perf_counter() - t0:.1f} s; results in {out}")
    if args.json:
        print(json.dumps(s, indent=1, default=_json_default))
    return 0


def register(nomad_subparsers) -> None:
    """Add ``design`` to the ``mpc-bio nomad`` sub-commands."""
    d = nomad_subparsers.add_parser(
        "design", help="NRA strain designs, ranking, MCA baseline, nonlinear verification, sensitivity",
        description=DESIGN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("--config", required=True, help="scenario TOML with [nomad] and [nomad.design] tables")
    d.add_argument("--ensemble-dir", default=None, help="ensemble stage output (default: [nomad] output_dir)")
    d.add_argument("--out", default=None, help="output directory (default: ENSEMBLE_DIR/design)")
    d.add_argument("--max-models", type=int, default=None, help="use the first N screened models (0 = all)")
    d.add_argument("--workers", type=int, default=None, help="processes for the per-model NRA enumeration")
    d.add_argument("--no-progress", action="store_true", help="hide progress bars")
    d.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    d.add_argument("--json", action="store_true", help="also print the summary json")
    d.set_defaults(func=_design)
