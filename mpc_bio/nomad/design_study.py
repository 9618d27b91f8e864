"""The NOMAD design study: NRA designs over the screened ensemble, ranking, MCA baseline,
nonlinear batch / fed-batch verification and expression sensitivity.

:func:`run_design_study` does the work on an ensemble and its control coefficients and returns
a :class:`DesignStudy`; :func:`write_design_study` writes its tables, summary and figures.
:func:`load_design_settings` reads the ``[nomad.design]`` table and its sub-tables
``[nomad.design.nra]``, ``.ranking``, ``.verification``, ``.sensitivity`` of a scenario file
(see :class:`~mpc_bio.nomad.nra_settings.DesignStudySettings`), and
:func:`load_or_run_ensemble_output` reads the ensemble stage's output directory (``ensemble/``
and ``control_coefficients/``), running that stage first when the output is missing. The
command ``mpc-bio nomad design`` (:mod:`mpc_bio.nomad.cli`) chains them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mpc_bio.feed import FeedProfile
from mpc_bio.outputs import json_default
from mpc_bio.nomad.nra_settings import DesignStudySettings, NRASettings
from mpc_bio.nomad.reactor import vmax_fold_from_log_changes
from mpc_bio.nomad.sensitivity import expression_sensitivities
from mpc_bio.nomad.verification import verify_strains
from mpc_bio.nomad.viability import ViabilityRule

__all__ = [
    "DesignStudy",
    "design_problems",
    "design_strains",
    "design_vmax_folds",
    "rank_ensemble_designs",
    "enumerate_model_designs",
    "enumerate_ensemble_designs",
    "mca_baselines",
    "load_design_settings",
    "ensemble_output_note",
    "load_or_run_ensemble_output",
    "run_design_study",
    "design_cache_dir",
    "write_design_study",
]


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
            "ranking": [{"rank": k + 1, **rk.design_summary(k)} for k in range(min(10, len(rk.designs)))],
            "baseline": {
                # exp(mean ln yield change) - 1, as the ranking's mean_predicted_yield_gain
                "mean_predicted_yield_gain": float(np.expm1(np.mean([b.objective for b in self.baseline]))) if self.baseline else None,
                "predicted_yield_gain_per_model": {b.model_id: b.yield_gain for b in self.baseline},
                "designs": {b.model_id: b.label for b in self.baseline},
                "max_concentration_violation_ln": float(max((v["concentration"] for v in self.baseline_violations), default=0.0)),
                "n_models_violating_nra_constraints": int(sum(1 for v in self.baseline_violations if max(v.values()) > 1e-6)),
            },
            "verified_designs": labels,
            "viability_rule": dataclasses.asdict(ViabilityRule.from_nra(self.settings.nra)),
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
            out[name] = {
                "strains": per,
                "n_simulations": res.n_simulations,
                "seconds": res.seconds,
                "readout": res.mode == "batch" and self.settings.verification.batch_readout or "batch_time",
                "readout_times_h": {m: float(t) for m, t in zip(res.model_ids, res.readout_times)}
                if res.readout_times is not None
                else None,
                "simulations_per_s": res.n_simulations / res.seconds if res.seconds > 0 else None,
            }
        out["sensitivity"] = {s.design: s.summary() for s in self.sensitivity}
        return out


def enumerate_model_designs(task: tuple) -> object:
    """NRA designs of one model: ``task`` is ``(problem, settings)``; a module-level function
    so that process pools can pickle it.

    Returns
    -------
    DesignEnumeration
        :func:`mpc_bio.nomad.nra.enumerate_designs` of the problem.
    """
    from mpc_bio.nomad.nra import enumerate_designs

    problem, settings = task
    return enumerate_designs(problem, settings)


def enumerate_ensemble_designs(
    tasks: Sequence[tuple], settings: DesignStudySettings, cache_dir: str | Path | None = None, desc: str = "NRA per model"
) -> tuple:
    """:func:`enumerate_model_designs` of every ``(problem, NRA settings)`` task, in order, on
    ``settings.n_workers`` processes (:func:`~mpc_bio.nomad.executor.run_chunks`).

    With ``cache_dir`` each enumeration is kept there as it finishes, keyed by its inputs
    (:mod:`mpc_bio.nomad.checkpoint`), and those found are read back instead of solved; without it,
    in the active :func:`~mpc_bio.nomad.checkpoint.chunk_checkpoint` if there is one.

    Returns
    -------
    tuple of DesignEnumeration
    """
    from contextlib import nullcontext

    from mpc_bio.nomad.checkpoint import chunk_checkpoint
    from mpc_bio.nomad.executor import run_chunks
    from mpc_bio.nomad.settings import ExecutorSettings

    ex = ExecutorSettings(n_workers=max(1, settings.n_workers), progress=settings.progress)
    with chunk_checkpoint(cache_dir) if cache_dir is not None else nullcontext():
        return tuple(run_chunks(enumerate_model_designs, list(tasks), ex, desc=desc))


def mca_baselines(network, problems: Sequence, nra: NRASettings, settings: DesignStudySettings) -> tuple[list, list, np.ndarray]:
    """The MCA baseline of every problem (:func:`~mpc_bio.nomad.ranking.mca_baseline`: the
    ``settings.baseline_size`` enzymes of highest yield control coefficient changed
    ``settings.baseline_fold``, ``nra.excluded_enzymes`` left out).

    Returns
    -------
    baselines : list of NRADesign
    violations : list of dict
        How far each baseline violates the NRA constraints (ln units).
    folds : ndarray (n_problems, n_rxn)
        The baselines as Vmax fold matrix of ``network`` (a strain of :func:`verify_strains`).
    """
    from mpc_bio.nomad.ranking import mca_baseline

    pairs = [
        mca_baseline(p, fold=settings.baseline_fold, size=settings.baseline_size, excluded=nra.excluded_enzymes, settings=nra)
        for p in problems
    ]
    baselines = [b for b, _ in pairs]
    folds = np.array([vmax_fold_from_log_changes(network, p.enzyme_ids, b.log_changes) for p, b in zip(problems, baselines)])
    return baselines, [v for _, v in pairs], folds


def design_problems(ensemble, control, settings: DesignStudySettings) -> tuple[np.ndarray, NRASettings, list]:
    """The NRA problems of a design study and the NRA settings to solve them with.

    The first ``settings.max_models`` screened models (all when None) give one problem each
    (model id ``model<index>``); the lumped growth reaction, and with
    ``settings.exclude_transport`` every mass-action transport, join the excluded enzymes: they
    are no engineering targets.

    Returns
    -------
    model_index : ndarray of int
        Ensemble indices of the models used.
    nra : NRASettings
        ``settings.nra`` with those exclusions added.
    problems : list of NRAProblem
    """
    from mpc_bio.nomad.nra import nra_problems_from_control_coefficients

    rows = np.arange(control.n_models)
    if settings.max_models is not None:
        rows = rows[: settings.max_models]
    if rows.size == 0:
        raise ValueError("No screened models: the ensemble stage left no model with control coefficients.")
    cc = control.select(rows)
    model_index = np.asarray(cc.model_index, dtype=int)
    nra = settings.nra
    extra = [cc.growth_reaction]  # the lumped growth reaction is not an enzyme that can be engineered
    if settings.exclude_transport:
        net = ensemble.network
        extra += [r for r, law in zip(net.reaction_ids, net.rate_laws) if law == "mass_action"]
    extra = [e for e in extra if e in cc.enzyme_ids and e not in nra.excluded_enzymes]
    if extra:
        nra = dataclasses.replace(nra, excluded_enzymes=nra.excluded_enzymes + tuple(dict.fromkeys(extra)))
    return model_index, nra, nra_problems_from_control_coefficients(cc, model_ids=[f"model{i}" for i in model_index])


def rank_ensemble_designs(ensemble, control, settings: DesignStudySettings, cache_dir: str | Path | None = None) -> tuple:
    """NRA enumeration in every model (``settings.n_workers`` processes) and the ranking of the
    unique designs over all models.

    Parameters
    ----------
    ensemble : KineticEnsemble
    control : ControlCoefficients
    settings : DesignStudySettings
    cache_dir : str or Path, optional
        Keep each model's enumeration and the ranking here, keyed by their inputs (the NRA
        problem and settings; :mod:`mpc_bio.nomad.checkpoint`), and reuse those found: a second
        experiment on the same ensemble and settings, or a run stopped during the enumeration,
        does not enumerate again what was done.

    Returns
    -------
    model_index : ndarray of int
    nra : NRASettings
        The NRA settings used (exclusions added, see :func:`design_problems`).
    problems : list of NRAProblem
    designs : EnsembleDesigns
    ranking : DesignRanking
    seconds : dict of str to float
        Wall time of the enumeration and the ranking (s), the cached work read back included.
    """
    from contextlib import nullcontext

    from mpc_bio.interrupts import check_interrupt
    from mpc_bio.nomad.checkpoint import chunk_checkpoint
    from mpc_bio.nomad.ranking import EnsembleDesigns, rank_designs, unique_designs

    model_index, nra, problems = design_problems(ensemble, control, settings)
    seconds: dict[str, float] = {}
    show = settings.progress
    with chunk_checkpoint(cache_dir) if cache_dir is not None else nullcontext() as cp:
        t = time.perf_counter()
        enums = enumerate_ensemble_designs([(p, nra) for p in problems], settings)  # in cp
        seconds["enumeration"] = time.perf_counter() - t
        designs = EnsembleDesigns(enums, unique_designs(enums), seconds["enumeration"])
        t = time.perf_counter()
        key = None if cp is None else cp.key(rank_designs, (problems, designs.unique, nra, settings.ranking))
        found, ranking = (False, None) if cp is None else cp.load(rank_designs, key)
        if not found:
            ranking = rank_designs(problems, designs.unique, nra, settings.ranking, progress=show)
            if cp is not None:
                check_interrupt()  # a ranking finished after Ctrl-C may hold LPs failed by it
                cp.save(rank_designs, key, ranking)
        seconds["ranking"] = time.perf_counter() - t
    return model_index, nra, problems, designs, ranking, seconds


def design_vmax_folds(network, enzyme_ids: Sequence[str], log_changes: np.ndarray) -> np.ndarray:
    """Vmax fold matrix (n_models, n_rxn) of one design from its NRA log fold changes per model
    (``log_changes``: n_models x len(enzyme_ids), ln units); NaN rows where the design is
    infeasible in a model (non-finite changes)."""
    out = np.full((len(log_changes), network.n_reactions), np.nan)
    for m, d in enumerate(log_changes):
        if np.all(np.isfinite(d)):
            out[m] = vmax_fold_from_log_changes(network, enzyme_ids, d)
    return out


def design_strains(network, ranking, n_models: int, top: Sequence[int]) -> dict[str, np.ndarray]:
    """Vmax fold matrices (n_models, n_rxn) of the ranked designs at positions ``top``, labelled
    'd-1 DDPA+...', with the model-specific NRA fold changes; NaN rows where a design is
    infeasible in a model."""
    return {
        f"d-{k + 1} {ranking.designs[i].label}": design_vmax_folds(network, ranking.enzyme_ids, ranking.log_changes[i, :n_models])
        for k, i in enumerate(top)
    }


def run_design_study(
    ensemble,
    control,
    settings: DesignStudySettings | None = None,
    *,
    feed: FeedProfile | Callable[[float], float] | None = None,
    cache_dir: str | Path | None = None,
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
        Fed-batch feed; default the piecewise-constant feed of ``settings.verification``, whose
        ``feed_glucose`` is the feed's glucose in either case.
        An optimised feed from the control layer can be passed here.
    cache_dir : str or Path, optional
        Where the NRA enumeration and ranking are kept and reused (:func:`rank_ensemble_designs`).

    Every strain (reference, designs, MCA baseline) is judged by one viability rule, the bounds
    of the NRA that made the designs (:meth:`ViabilityRule.from_nra`), in the verification and
    in the sensitivity draws.

    Returns
    -------
    DesignStudy
    """
    settings = settings or DesignStudySettings()
    model_index, nra, problems, designs, ranking, seconds = rank_ensemble_designs(ensemble, control, settings, cache_dir)
    model_ids = [f"model{i}" for i in model_index]
    show = settings.progress
    rule = ViabilityRule.from_nra(nra)

    net = ensemble.network
    baseline, violations, baseline_folds = mca_baselines(net, problems, nra, settings)
    top = tuple(range(min(settings.ranking.top_n, len(ranking.designs))))
    strains = design_strains(net, ranking, len(problems), top)
    strains["MCA baseline"] = baseline_folds

    t = time.perf_counter()
    vs = settings.verification
    common = dict(model_ids=model_ids, progress=show, viability=rule, n_workers=settings.n_workers)
    batch = verify_strains(ensemble, model_index, strains, settings=vs, **common)
    seconds["verification_batch"] = time.perf_counter() - t
    t = time.perf_counter()
    fed = verify_strains(ensemble, model_index, strains, settings=vs, feed=feed if feed is not None else vs.feed_profile(), **common)
    seconds["verification_fed_batch"] = time.perf_counter() - t

    t = time.perf_counter()
    designs_to_perturb = []
    for k, i in enumerate(top):
        mean = ranking.mean_fold_changes(i)
        if all(math.isfinite(v) for v in mean.values()):
            designs_to_perturb.append((f"d-{k + 1} {ranking.designs[i].label}", tuple(mean), tuple(mean.values())))
    sens = expression_sensitivities(  # tasks of (design, chunk of models) on the workers
        ensemble,
        model_index,
        designs_to_perturb,
        settings=settings.sensitivity,
        verification=vs,
        reference_titer=batch.titer[0],
        readout_times=batch.readout_times,
        **common,
    )
    seconds["sensitivity"] = time.perf_counter() - t
    return DesignStudy(
        settings, model_index, tuple(problems), designs, ranking, tuple(baseline), tuple(violations), top, batch, fed, tuple(sens), seconds
    )


def write_design_study(study: DesignStudy, out_dir: str | Path, figures: bool = True) -> Path:
    """Write tables, ``summary.json`` and figures of a :class:`DesignStudy` into ``out_dir``."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study.designs.to_frame().to_csv(out / "designs.csv", index=False)
    pd.DataFrame(
        [
            {
                "design": u.label,
                "count": u.count,
                "source_models": " ".join(sorted(set(u.source_models))),
                "best_objective_ln": u.best_objective,
                "best_yield_gain": math.expm1(u.best_objective),
            }
            for u in study.designs.unique
        ]
    ).to_csv(out / "unique_designs.csv", index=False)
    study.ranking.to_frame().to_csv(out / "ranking.csv", index=False)
    study.ranking.matrix_frame().to_csv(out / "ranking_matrix.csv", index_label="design")
    pd.DataFrame(
        [
            {
                "model_id": b.model_id,
                "design": b.label,
                "predicted_yield_gain": b.yield_gain,
                **{f"violation_{k}_ln": v for k, v in viol.items()},
            }
            for b, viol in zip(study.baseline, study.baseline_violations)
        ]
    ).to_csv(out / "baseline.csv", index=False)
    frames = [r.to_frame() for r in (study.batch, study.fed_batch) if r is not None]
    if frames:
        pd.concat(frames, ignore_index=True).to_csv(out / "verification.csv", index=False)
    if study.sensitivity:
        pd.concat([s.to_frame() for s in study.sensitivity], ignore_index=True).to_csv(out / "sensitivity.csv", index=False)
    (out / "summary.json").write_text(json.dumps(study.summary(), indent=2, default=json_default))
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
        items = [
            ("design_membership", plot_design_membership, study.designs),
            ("ranking", plot_design_ranking, study.ranking),
            ("titer_batch", plot_titer_time_courses, study.batch),
            ("titer_fed_batch", plot_titer_time_courses, study.fed_batch),
        ]
        mw = study.settings.verification.product_mw  # titers in g/L, as in the co-design figures
        items += [
            (f"sensitivity_d{k + 1}", lambda r: plot_sensitivity_bands(r, product_mw_g_per_mol=mw), s)
            for k, s in enumerate(study.sensitivity)
        ]
        for name, fn, obj in items:
            if obj is None:
                continue
            fig = fn(obj)
            fig.savefig(fig_dir / f"{name}.png", dpi=120, bbox_inches="tight")
            plt.close(fig)
    return out


def load_design_settings(path: str | Path) -> tuple[DesignStudySettings, str]:
    """Read ``[nomad.design]`` (and ``[nomad] output_dir``) of a scenario TOML file.

    Returns
    -------
    settings : DesignStudySettings
    ensemble_dir : str
        The ensemble stage's output directory (``[nomad] output_dir``, default "runs/nomad").
    """
    from mpc_bio.nomad.settings import read_nomad_table

    nomad = read_nomad_table(path) or {}
    design = nomad.get("design", {})
    if not isinstance(design, dict):
        raise ValueError(f"[nomad.design] in {str(path)!r} must be a table.")
    return DesignStudySettings.from_dict(design), str(nomad.get("output_dir", "runs/nomad"))


def ensemble_output_note(config: str | Path, ensemble_dir: str | Path) -> str | None:
    """One line saying that the ensemble output in ``ensemble_dir`` is stale, or None.

    Stale: the ``[nomad]`` settings recorded in its ``summary.json`` differ in value from those
    of the scenario file ``config`` (output folder and executor aside), e.g. after the config was
    edited or the ensemble was run with ``--n-models``. The record is read through the settings
    classes first, so a value written in another form (pairs as ``[[key, value], ...]`` as older
    versions wrote them, not as a table) is not a difference. Settings the record lacks (written
    by an older mpc_bio that did not have them) and recorded keys that are no settings any more
    are named as such. The output is still usable: the line names the first differences and how
    to refresh it.
    """
    from mpc_bio.errors import MpcBioError
    from mpc_bio.nomad.settings import EnsembleStudySettings, load_study_settings
    from mpc_bio.settings import Settings, field_types

    ensemble_dir = Path(ensemble_dir)
    try:
        recorded = json.loads((ensemble_dir / "summary.json").read_text())["settings"]
        if not isinstance(recorded, dict):
            raise TypeError(type(recorded).__name__)
    except (OSError, KeyError, ValueError, TypeError):
        return (
            f"note: {ensemble_dir} has no readable summary.json; its ensemble cannot be checked against "
            f"{config} (run `mpc-bio nomad ensemble --overwrite` to refresh it)"
        )

    def flat(d: dict, pre: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{pre}{k}."))
            else:
                out[f"{pre}{k}"] = json.loads(json.dumps(v, default=str))
        return out

    def in_record(key: str) -> bool:  # the setting holding this flattened key is in the record
        node: object = recorded
        cls: type = EnsembleStudySettings
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            tp = field_types(cls).get(part)
            if not (isinstance(tp, type) and issubclass(tp, Settings)):
                return True  # a value (a pairs table included): recorded, compared below
            node, cls = node[part], tp
        return True

    gone: list[str] = []

    def prune(d: dict, cls: type, pre: str = "") -> dict:  # the record without keys that are no settings any more
        hints = field_types(cls)
        out = {}
        for k, v in d.items():
            tp = hints.get(k)
            if tp is None:
                gone.append(f"{pre}{k}")
            elif isinstance(v, dict) and isinstance(tp, type) and issubclass(tp, Settings):
                out[k] = prune(v, tp, f"{pre}{k}.")
            else:
                out[k] = v
        return out

    skip = ("output_dir", "executor")
    mine = {k: v for k, v in flat(load_study_settings(config).to_dict()).items() if not k.startswith(skip)}
    raw = flat(recorded)
    try:  # the record read as settings: the same value written in another form reads the same
        known = EnsembleStudySettings.from_dict(prune(recorded, EnsembleStudySettings))
        theirs = {k: v for k, v in flat(known.to_dict()).items() if not k.startswith(skip)}
    except (MpcBioError, TypeError):  # a value this version refuses: compare as written
        theirs = {k: v for k, v in raw.items() if not k.startswith(skip)}
    gone = [k for k in gone if not k.startswith(skip)]
    missing = sorted(k for k in mine if not in_record(k))
    differ = sorted(k for k in set(mine) | set(theirs) if k not in gone and k not in missing and mine.get(k) != theirs.get(k))
    if not (differ or missing or gone):
        return None
    parts = [f"{k} {theirs.get(k)!r} there, {mine.get(k)!r} in the config" for k in differ]
    parts += [f"{k} not recorded there (an older mpc_bio), {mine[k]!r} in the config" for k in missing]
    parts += [f"{k} {raw.get(k, '(a table)')!r} there, no setting of this version" for k in gone]
    more = f" (+{len(parts) - 3} more)" if len(parts) > 3 else ""
    if differ:
        what = f"is stale: made with other [nomad] settings than {config}"
    else:
        what = f"may be stale: every value it records equals {config}'s, but it was written by another mpc_bio version"
    return (
        f"note: the ensemble in {ensemble_dir} {what} ({'; '.join(parts[:3])}{more}); using it as it is "
        "(run `mpc-bio nomad ensemble --overwrite` to refresh it)"
    )


def design_cache_dir(ensemble_dir: str | Path) -> Path:
    """Where the design stage and the experiments keep the NRA enumeration and ranking of an
    ensemble output: its hidden subfolder ``.design_cache`` (replaced with the ensemble by
    ``mpc-bio nomad ensemble --overwrite``)."""
    return Path(ensemble_dir) / ".design_cache"


def load_or_run_ensemble_output(config: str | Path, ensemble_dir: str | Path, show: bool = True):
    """The ensemble and control coefficients written by the ensemble stage in ``ensemble_dir``.

    When that output is missing, the ensemble stage runs first with the ``[nomad]`` tables of
    the scenario file ``config`` (progress bars when ``show``) and writes it there, through a
    hidden folder renamed on completion: it is the design stage's checkpoint, reused by the next
    run if this one is stopped later. The ensemble stage's finished chunks are kept meanwhile in
    the hidden sibling ``.NAME.checkpoint`` (:mod:`mpc_bio.nomad.checkpoint`), so a run stopped
    inside it resumes there. Either case is said in one printed line (missing; or
    stale, see :func:`ensemble_output_note`).

    Returns
    -------
    (KineticEnsemble, ControlCoefficients)

    Raises
    ------
    mpc_bio.outputs.OutputError
        The output is missing and ``ensemble_dir`` holds something else, or cannot be written.
    """
    ensemble_dir = Path(ensemble_dir)
    from mpc_bio.nomad.ensemble import load_ensemble
    from mpc_bio.nomad.mca import load_control_coefficients

    if (ensemble_dir / "ensemble" / "ensemble.json").is_file() and (
        ensemble_dir / "control_coefficients" / "control_coefficients.json"
    ).is_file():
        note = ensemble_output_note(config, ensemble_dir)
        if note:
            print(note)
        return load_ensemble(ensemble_dir / "ensemble"), load_control_coefficients(ensemble_dir / "control_coefficients")
    from mpc_bio.interrupts import check_interrupt
    from mpc_bio.nomad.checkpoint import checkpoint_dir, chunk_checkpoint, resume_note
    from mpc_bio.nomad.settings import load_study_settings
    from mpc_bio.nomad.study import run_ensemble_study, write_ensemble_study
    from mpc_bio.outputs import OutputError, check_output_dir, staged_output

    ens_settings = load_study_settings(config)
    if ensemble_dir.is_dir() and any(p.name != "design" for p in ensemble_dir.iterdir()):
        raise OutputError(
            f"The ensemble folder {str(ensemble_dir)!r} holds no complete ensemble output (ensemble/ensemble.json and "
            "control_coefficients/control_coefficients.json) but other files; run `mpc-bio nomad ensemble --out "
            f"{ensemble_dir} --overwrite` first, or choose another --ensemble-dir."
        )
    check_output_dir(ensemble_dir, overwrite=True, option="ensemble")  # writable, before the work
    print(f"no ensemble output in {ensemble_dir}; running the ensemble stage first")
    ckpt = checkpoint_dir(ensemble_dir)
    resumed = resume_note(ckpt)
    if resumed:
        print(resumed)
    if not show:
        ens_settings = dataclasses.replace(ens_settings, executor=dataclasses.replace(ens_settings.executor, progress=False))
    with chunk_checkpoint(ckpt):
        study = run_ensemble_study(ens_settings)
        check_interrupt()
        with staged_output(ensemble_dir, overwrite=True, option="ensemble") as tmp:  # at most an old design/ there
            write_ensemble_study(study, tmp)
    shutil.rmtree(ckpt, ignore_errors=True)
    return study.ensemble, study.control
