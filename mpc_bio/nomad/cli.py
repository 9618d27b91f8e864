"""``mpc-bio nomad ...``: the command line of the NOMAD stage.

``mpc-bio nomad ensemble --config FILE [--out DIR]`` builds the network, samples the ensemble,
screens it, computes control coefficients and writes tables, a summary json and figures
(:mod:`mpc_bio.nomad.study`). ``mpc-bio nomad design --config FILE`` runs the design study on
that output: NRA, ranking, MCA baseline, verification, sensitivity
(:mod:`mpc_bio.nomad.design_study`). ``mpc-bio nomad experiment NAME CONFIG --out DIR`` runs one of
the paper's experiments (:mod:`mpc_bio.nomad.experiments`). This module only parses arguments and prints.

Both refuse an existing, non-empty output folder unless ``--overwrite``, check that it can be
written before any work, and write through a hidden folder renamed on completion
(:func:`mpc_bio.outputs.staged_output`), so an interrupted or failed run never leaves a folder
that looks finished. Inside the ensemble stage every finished chunk of work (linearisation,
screening stages, control coefficients) is kept in the output's hidden sibling
``.NAME.checkpoint`` (:mod:`mpc_bio.nomad.checkpoint`) until the output is complete, so the same
command, run again after Ctrl-C or a crash, resumes there and writes the same output. The design
stage's checkpoint is the ensemble folder: when missing it is computed and written first, and a
later run reuses it; the NRA enumerations and ranking are kept in its ``.design_cache`` and reused
by every later design or experiment run on the same ensemble and settings, and the finished
verification and sensitivity simulations in the output's ``.NAME.checkpoint`` until it is complete.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["register"]

#: Seconds a computation has to return after Ctrl-C / SIGTERM before the process is ended
#: (see :mod:`mpc_bio.interrupts`; a CVODES or HiGHS call in this process may hold the signal).
INTERRUPT_GRACE_S = 5.0

ENSEMBLE_HELP = """\
Build the kinetic network (default: the paper's E. coli W3110 trpD9923 case cut from the shipped
iCH360 model, ANPRT removed, feedback inhibition of DDPA and ANS; [nomad.network] model =
"core_shikimate" gives the small e_coli_core + shikimate network), sample thermodynamically
consistent reference steady states and N kinetic models (ORACLE), screen them
((i) linear stability, (ii) time constants, (iii) nonlinear return, (iv) robustness in a batch
reactor), compute concentration and flux control coefficients of the survivors, and write
summary.json, CSV tables, the ensemble (npz + json), the control coefficients and figures.

The settings are the [nomad] tables of the TOML file ([nomad.network], [nomad.steady_state],
[nomad.sampling], [nomad.screening], [nomad.executor]); options given here override them.
An existing, non-empty --out folder is refused unless --overwrite (which also drops a design/
made from the old ensemble); results appear there only when the run completed. Finished chunks
of work are kept in the hidden folder .OUT.checkpoint beside it while the run goes on: stopped
(Ctrl-C, SIGTERM, a crash), the same command resumes from them and gives the same result.

examples:
  mpc-bio nomad ensemble --config scenarios/nomad_anthranilate.toml
  mpc-bio nomad ensemble --config scenarios/nomad_anthranilate.toml --n-models 500 --out runs/nomad_small
  mpc-bio nomad ensemble --config scenarios/nomad_anthranilate.toml --workers 2
  mpc-bio nomad ensemble --config scenarios/nomad_anthranilate.toml --scheduler tcp://127.0.0.1:8786
"""

DESIGN_HELP = """\
Design strains with Network Response Analysis (NRA) on the screened kinetic models: enumerate
all designs within a fraction of the optimum per model (integer cuts), keep those unique by
membership, enforce each in every model and rank by mean predicted yield increase, compare with
the MCA baseline (top yield control coefficients, fixed fold change), verify the top designs in
nonlinear batch and fed-batch reactor simulations, and perturb their expression levels.
Batch titers, yields and biomass are compared at the end of each model's reference-strain
fermentation ([nomad.design.verification] batch_readout). Every strain - reference, designs,
MCA baseline, sensitivity draws - is judged by the designs' NRA bounds: viable in a model when
its simulation runs and it has a stable steady state at the reference medium with every
intracellular concentration within max_concentration_fold of the model's reference and growth
>= 1 - max_growth_reduction of the reference; a non-viable strain is a loss in every comparison
and counts as zero titer in the ensemble means (means over viable models and as simulated are
printed beside them).

Reads the ensemble stage's output ([nomad] output_dir: ensemble/ and control_coefficients/;
runs the ensemble stage first if it is missing, and says so when it was made with other
[nomad] settings than the config). Settings: [nomad.design] and its
sub-tables [nomad.design.nra], [nomad.design.ranking], [nomad.design.verification],
[nomad.design.sensitivity]. Writes designs.csv, unique_designs.csv, ranking.csv,
ranking_matrix.csv, baseline.csv, verification.csv, sensitivity.csv, summary.json and figures/
(titers in g/L); an existing, non-empty --out folder is refused unless --overwrite. The NRA
enumeration and ranking are kept in ENSEMBLE_DIR/.design_cache (keyed by their inputs) and reused
by the next design or experiment run on the same ensemble; the finished verification and
sensitivity simulations in the hidden .OUT.checkpoint beside --out until the output is complete:
stopped (Ctrl-C, SIGTERM), the same command resumes there with the same result.

examples:
  mpc-bio nomad design --config scenarios/nomad_anthranilate.toml
  mpc-bio nomad design --config scenarios/nomad_anthranilate.toml --max-models 5 --out runs/nomad_design_small
  mpc-bio nomad design --config scenarios/nomad_anthranilate.toml --ensemble-dir runs/nomad_anthranilate
"""


@contextmanager
def _interrupt_says(kept: str | Callable[[], str]) -> Iterator[None]:
    """Turn Ctrl-C / SIGTERM in the enclosed code into :class:`~mpc_bio.interrupts.Interrupted`
    whose message (printed by ``mpc-bio`` as its one line) says what was kept (``kept`` or, when
    callable, what it returns then)."""
    from mpc_bio.interrupts import Interrupted

    try:
        yield
    except Interrupted:
        raise
    except KeyboardInterrupt:
        raise Interrupted(kept() if callable(kept) else kept) from None


def _ensemble_kept(ens_dir: Path) -> str:
    """What a stopped design or experiment run keeps of the ensemble stage (its output or its finished chunks)."""
    from mpc_bio.nomad.checkpoint import ChunkCheckpoint, checkpoint_dir, kept_note

    if (ens_dir / "ensemble" / "ensemble.json").is_file():
        return f"the ensemble output in {ens_dir} is kept and reused by the next run"
    ckpt = checkpoint_dir(ens_dir)
    return f"the ensemble stage: {kept_note(ChunkCheckpoint(ckpt))}" if ckpt.is_dir() else "the ensemble stage had kept nothing"


def _design_kept(ens_dir: Path, out: Path) -> str:
    """What a stopped design or experiment run keeps of its own work: NRA enumerations and rankings
    in the ensemble's design cache, finished verification and sensitivity tasks in the output's checkpoint."""
    from mpc_bio.nomad.checkpoint import ChunkCheckpoint, checkpoint_dir
    from mpc_bio.nomad.design_study import design_cache_dir

    parts = []
    cache = design_cache_dir(ens_dir)
    if cache.is_dir() and (n := ChunkCheckpoint(cache).n_kept()):
        parts.append(f"{n} NRA enumeration(s) / ranking(s) in {cache}")
    ckpt = checkpoint_dir(out)
    if ckpt.is_dir() and (n := ChunkCheckpoint(ckpt).n_kept()):
        parts.append(f"{n} finished verification / sensitivity task(s) in {ckpt}")
    return f"; kept for the next run: {', '.join(parts)}" if parts else ""


def _ensemble(args: argparse.Namespace) -> int:
    from mpc_bio.interrupts import check_interrupt
    from mpc_bio.nomad.checkpoint import checkpoint_dir, chunk_checkpoint, kept_note, resume_note
    from mpc_bio.nomad.settings import load_study_settings
    from mpc_bio.nomad.study import run_ensemble_study, write_ensemble_study
    from mpc_bio.outputs import check_output_dir, staged_output

    settings = load_study_settings(args.config)
    if args.n_models is not None:
        settings = dataclasses.replace(settings, sampling=dataclasses.replace(settings.sampling, n_models=args.n_models))
    ex = settings.executor
    if args.workers is not None:
        ex = dataclasses.replace(ex, n_workers=args.workers)
    if args.scheduler is not None:
        ex = dataclasses.replace(ex, scheduler=args.scheduler)
    if args.no_progress:
        ex = dataclasses.replace(ex, progress=False)
    settings = dataclasses.replace(settings, executor=ex)
    out = check_output_dir(args.out or settings.output_dir, overwrite=args.overwrite)  # before any work
    if ex.scheduler:
        from mpc_bio.cluster import connect_scheduler

        connect_scheduler(ex.scheduler).close()  # reachable, checked with a short time-out
    t0 = time.perf_counter()
    ckpt = checkpoint_dir(out)
    resumed = resume_note(ckpt)
    if resumed:
        print(resumed)
    with chunk_checkpoint(ckpt) as cp, _interrupt_says(lambda: f"{out} was not written (left as it was); {kept_note(cp)}"):
        study = run_ensemble_study(settings)
        check_interrupt()  # a signal a solver turned into a failed model must not end as a complete run
        with staged_output(out, overwrite=args.overwrite) as tmp:
            write_ensemble_study(study, tmp, figures=not args.no_figures)
    shutil.rmtree(ckpt, ignore_errors=True)  # the output is complete: its chunks are no longer needed
    summary = study.summary()
    nw, rs = summary["network"], summary["reference_states"]
    print(
        f"network {nw['model_id']}: {nw['n_reactions']} reactions ({nw['n_transport_reactions']} transports), "
        f"{nw['n_metabolites']} balanced metabolites in {nw['n_compartments_balanced']} compartments, "
        f"{nw['n_lumped_reactions']} reactions lumped into growth, {nw['n_regulation_slots']} regulation constants "
        f"(NOMAD paper: 196 reactions, 81 transports, 159 metabolites, 2 compartments); {summary['n_models']} models"
    )
    if nw["unapplied_regulations"]:
        print(f"  regulations not in this network (skipped): {nw['unapplied_regulations']}")
    ranges = ", ".join(f"{k} {v[0]:.3g}-{v[2]:.3g}" for k, v in rs.items() if isinstance(v, list))
    print(f"reference states ({rs['method']}, {summary['n_reference_states']} states): {ranges}")
    for s in summary["funnel"]:
        print(f"  {s['name']:<18} {s['n_in']:>7} -> {s['n_out']:>7}  ({s['seconds']:.1f} s)")
    print(f"control coefficients of {study.control.n_models} screened models; total {time.perf_counter() - t0:.1f} s; results in {out}")
    print(f"work chunks: {cp.n_written} computed, {cp.n_reused} read from the checkpoint of a stopped run")
    if args.json:
        print(json.dumps(summary, indent=1, default=float))
    return 0


def _design_settings(args: argparse.Namespace, config: str):
    """The design settings of ``config`` with the options of ``args`` applied, and the ensemble folder of the config."""
    from mpc_bio.nomad.design_study import load_design_settings

    settings, ens_dir = load_design_settings(config)
    changes = {"max_models": args.max_models or None} if args.max_models is not None else {}
    if args.workers is not None:
        changes["n_workers"] = args.workers
    if args.no_progress:
        changes["progress"] = False
    return dataclasses.replace(settings, **changes), ens_dir


def _on_ensemble(args: argparse.Namespace, config: str, ens_dir: Path, out: Path, show: bool, run, write):
    """The work of ``mpc-bio nomad design`` / ``experiment``: the ensemble output of ``ens_dir``
    (made first when missing), ``run(ensemble, control, cache_dir)`` with its finished verification
    and sensitivity tasks kept in the checkpoint of ``out`` and the NRA in the ensemble's design cache, and
    ``write(result, folder, figures=...)`` into ``out`` (staged); returns the result."""
    from mpc_bio.interrupts import check_interrupt
    from mpc_bio.nomad.checkpoint import checkpoint_dir, chunk_checkpoint, resume_note
    from mpc_bio.nomad.design_study import design_cache_dir, load_or_run_ensemble_output
    from mpc_bio.outputs import staged_output

    with _interrupt_says(lambda: f"{out} was not written; {_ensemble_kept(ens_dir)}{_design_kept(ens_dir, out)}"):
        ensemble, control = load_or_run_ensemble_output(config, ens_dir, show)
        resumed = resume_note(checkpoint_dir(out))
        if resumed:
            print(resumed)
        with chunk_checkpoint(checkpoint_dir(out)):  # the verification and sensitivity tasks
            result = run(ensemble, control, design_cache_dir(ens_dir))
        check_interrupt()
        with staged_output(out, overwrite=args.overwrite) as tmp:
            write(result, tmp, figures=not args.no_figures)
    shutil.rmtree(checkpoint_dir(out), ignore_errors=True)
    return result


def _design(args: argparse.Namespace) -> int:
    from mpc_bio.outputs import check_output_dir, json_default
    from mpc_bio.nomad.design_study import run_design_study, write_design_study

    settings, ens_dir = _design_settings(args, args.config)
    ens_dir = Path(args.ensemble_dir or ens_dir)
    out = check_output_dir(args.out or (ens_dir / "design"), overwrite=args.overwrite)  # before any work
    t0 = time.perf_counter()
    run = lambda ensemble, control, cache: run_design_study(ensemble, control, settings, cache_dir=cache)
    study = _on_ensemble(args, args.config, ens_dir, out, settings.progress, run, write_design_study)
    s = study.summary()
    print(
        f"NRA on {s['n_models']} models: {s['nra']['designs_enumerated']} designs "
        f"({s['nra']['unique_by_membership']} unique by membership), {s['nra']['milp_solves']} MILP solves, "
        f"median {s['nra']['milp_solve_s_median']:.2f} s, enumeration {s['nra']['enumeration_s']:.1f} s"
    )
    for r in s["ranking"][:5]:
        print(
            f"  #{r['rank']} {r['design']:<32} predicted yield +{100 * r['mean_predicted_yield_gain']:.0f}% "
            f"(feasible in {r['n_feasible_models']} models)"
        )
    for mode in ("batch", "fed_batch"):
        strains = s[mode]["strains"]
        print(
            f"{mode} (read at {s[mode]['readout']}): titer / reference, mean over all models with non-viable "
            f"strains as 0 | over viable models | as simulated (viability ignored); median (non-viable as 0)"
        )
        for label, v in strains.items():
            if label == "reference":
                continue
            st = v["titer_ratio_vs_reference"]
            fmt = lambda x: "n/a" if x is None else f"{x:.2f}"
            print(
                f"  {label:<36} {fmt(st['failures_as_zero']['mean'])} | {fmt(st['valid']['mean'])} | "
                f"{fmt(st['as_simulated']['mean'])}; median {fmt(st['failures_as_zero']['median'])}; "
                f"viable in {v['n_valid']}/{v['n_models']}"
            )
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
        print(json.dumps(s, indent=1, default=json_default))
    return 0


EXPERIMENT_HELP = """\
Run one of the NOMAD paper's experiments on the screened ensemble ([nomad] output_dir, run
first when missing) with the design stage's settings ([nomad.design]: NRA bounds, reactor,
baseline), and write its JSON result, tables and figures to --out:

  closeness    NRA design groups with 2-, 3-, 10- and 20-fold concentration bounds (paper Fig. 3)
               and the MCA baseline, verified in batch: mean titer at the end of the reference
               fermentation, biomass, time to glucose exhaustion, viability per group
  strains      aroG^fbr (DDPA's feedback inhibition by phenylalanine removed) and aroG^fbr + tktA
               (TKT1, TKT2 x5) against the top 5 designs (paper Fig. 5): median titers (g/L)
  sensitivity  +-50 % perturbation of the top designs' mean fold changes, all members together
               and each alone, 10 draws per model (paper Fig. 7): fraction of draws above the
               reference strain
  all          the three, sharing one NRA enumeration and ranking

The NRA enumerations (of every closeness bound too) and the ranking are kept in
ENSEMBLE_DIR/.design_cache (keyed by their inputs) and reused by the next experiment or design run
on the same ensemble; the finished simulations in the hidden .OUT.checkpoint beside --out until the
output is complete: stopped (Ctrl-C, SIGTERM), the same command resumes there with the same result.

Every strain - reference, designs, MCA baseline, experimental strains, sensitivity draws - is
judged by one viability rule: a stable steady state at the reference medium with every
intracellular concentration within the NRA concentration bound of the model's reference and
growth >= the NRA growth bound (a closeness group by its own bound). Statistics are given under
the rule (non-viable strains as zero titer) and as simulated, side by side.

examples:
  mpc-bio nomad experiment closeness scenarios/nomad_anthranilate.toml --out runs/nomad_closeness
  mpc-bio nomad experiment strains scenarios/nomad_anthranilate.toml --out runs/nomad_strains
  mpc-bio nomad experiment sensitivity scenarios/nomad_anthranilate.toml --out runs/nomad_sens --workers 2
  mpc-bio nomad experiment closeness scenarios/nomad_anthranilate.toml --folds 2 3 10 20 --batch-time 48
"""


def _experiment(args: argparse.Namespace) -> int:
    from mpc_bio.nomad.experiment_settings import ClosenessSettings, RobustnessSettings, StrainComparisonSettings
    from mpc_bio.nomad.experiments import EXPERIMENTS, run_experiments, write_experiments
    from mpc_bio.outputs import check_output_dir

    config = args.config_file or args.config
    if config is None:
        raise SystemExit("mpc-bio nomad experiment: give the scenario file (CONFIG or --config).")
    settings, ens_dir = _design_settings(args, config)
    close = ClosenessSettings()
    if args.folds:
        close = dataclasses.replace(close, concentration_folds=tuple(args.folds))
    if args.batch_time is not None:
        close = dataclasses.replace(close, batch_time=args.batch_time)
    close = ClosenessSettings.from_dict(close.to_dict())  # checked
    strains = StrainComparisonSettings(top_n=args.top_n) if args.top_n else StrainComparisonSettings()
    robust = RobustnessSettings(n_workers=settings.n_workers, **({"top_n": args.top_n} if args.top_n else {}))
    if args.n_draws is not None:
        robust = dataclasses.replace(robust, n_draws=args.n_draws)
        robust = RobustnessSettings.from_dict(robust.to_dict())
    names = EXPERIMENTS if args.experiment == "all" else (args.experiment,)
    ens_dir = Path(args.ensemble_dir or ens_dir)
    out = check_output_dir(args.out or (ens_dir / f"experiment_{args.experiment}"), overwrite=args.overwrite)
    t0 = time.perf_counter()
    opts = dict(closeness=close, strains=strains, sensitivity=robust)
    run = lambda ensemble, control, cache: run_experiments(names, ensemble, control, settings, **opts, cache_dir=cache)
    res = _on_ensemble(args, config, ens_dir, out, settings.progress, run, write_experiments)
    s = res.summaries()
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"
    if "closeness" in s:
        c = s["closeness"]
        print(f"closeness ({c['n_models']} models): reference titer {fmt(c['reference']['mean_titer_g_per_l'])} g/L at the reference end")
        for g, v in c["groups"].items():
            print(
                f"  {g:<8} titer {fmt(v['mean_titer_g_per_l'])} g/L (non-viable as 0) | {fmt(v['mean_titer_g_per_l_as_simulated'])} "
                f"as simulated; biomass {fmt(v['mean_biomass_gdw_per_l'])} gDW/L; exhaustion {fmt(v['mean_exhaustion_time_h'])} h "
                f"({v['n_not_exhausted']} not exhausted); viable {v['n_viable']}/{v['n_strains']}"
            )
    if "strains" in s:
        st = s["strains"]
        for k, why in st["skipped_strains"].items():
            print(f"  {k} left out: {why}")
        print("strains: median titer g/L (non-viable as 0 | as simulated), viable models")
        for k, v in st["strains"].items():
            print(
                f"  {k:<36} {fmt(v['median_titer_g_per_l'])} | {fmt(v['median_titer_g_per_l_as_simulated'])}  "
                f"{v['n_viable']}/{v['n_models']}"
            )
    if "sensitivity" in s:
        se = s["sensitivity"]
        print(
            f"sensitivity (+-{100 * se['perturbation']:.0f} %, {se['n_draws']} draws per model): draws whose mean titer beats the reference"
        )
        for k, v in se["designs"].items():
            a = v["modes"]["all"]
            print(
                f"  {k:<36} {fmt(a['fraction_draws_mean_above_reference'])} (rule) | "
                f"{fmt(a['fraction_draws_mean_above_reference_as_simulated'])} (as simulated); robust {v['robust']}"
            )
    print(f"total {time.perf_counter() - t0:.1f} s; results in {out}")
    return 0


def _parser(subparsers, name: str, help: str, description: str, func) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help=help, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func, interrupt_grace=INTERRUPT_GRACE_S)
    return p


def _output_options(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--out", default=None, help=f"output directory (default: {out})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty --out folder")


def _design_options(p: argparse.ArgumentParser, out: str, workers: str) -> None:
    """The ensemble folder, the output and the design settings' options of ``design`` and ``experiment``."""
    p.add_argument("--ensemble-dir", default=None, help="ensemble stage output (default: [nomad] output_dir)")
    _output_options(p, out)
    p.add_argument("--max-models", type=int, default=None, help="use the first N screened models (0 = all)")
    p.add_argument("--workers", type=int, default=None, help=workers)


def _run_options(p: argparse.ArgumentParser, json: bool = True) -> None:
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    if json:
        p.add_argument("--json", action="store_true", help="also print the summary json")


def register(subparsers) -> None:
    """Add ``nomad`` with its sub-subcommands to the ``mpc-bio`` parser."""
    p = subparsers.add_parser(
        "nomad",
        help="NOMAD: kinetic-model ensembles, screening, MCA (and strain design)",
        description="NOMAD kinetic-model ensembles and strain design (Paper 2).",
        epilog=(
            "examples:\n"
            "  mpc-bio nomad ensemble --config scenarios/nomad_anthranilate.toml\n"
            "  mpc-bio nomad design --config scenarios/nomad_anthranilate.toml\n"
            "  mpc-bio nomad experiment closeness scenarios/nomad_anthranilate.toml --out runs/nomad_closeness\n"
            "  mpc-bio validate scenarios/nomad_anthranilate.toml   # check the config without running"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="nomad_command", metavar="NOMAD_COMMAND", required=True)
    e = _parser(sub, "ensemble", "sample, screen and analyse a kinetic-model ensemble", ENSEMBLE_HELP, _ensemble)
    e.add_argument("--config", required=True, help="scenario TOML with [nomad.*] tables")
    _output_options(e, "[nomad] output_dir")
    e.add_argument("--n-models", type=int, default=None, help="number of kinetic models to sample")
    e.add_argument("--workers", type=int, default=None, help="local worker processes")
    e.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://host:port)")
    _run_options(e)

    d = _parser(sub, "design", "NRA strain designs, ranking, MCA baseline, nonlinear verification, sensitivity", DESIGN_HELP, _design)
    d.add_argument("--config", required=True, help="scenario TOML with [nomad] and [nomad.design] tables")
    _design_options(d, "ENSEMBLE_DIR/design", "processes for the per-model NRA enumeration")
    _run_options(d)

    x = _parser(
        sub,
        "experiment",
        "the paper's experiments: closeness groups, experimental strains, +-50 %% sensitivity",
        EXPERIMENT_HELP,
        _experiment,
    )
    x.add_argument("experiment", choices=("closeness", "strains", "sensitivity", "all"), help="which experiment")
    x.add_argument("config_file", nargs="?", default=None, metavar="CONFIG", help="scenario TOML with [nomad] and [nomad.design] tables")
    x.add_argument("--config", default=None, help="the scenario TOML (instead of CONFIG)")
    _design_options(x, "ENSEMBLE_DIR/experiment_<name>", "processes for the NRA enumeration and the sensitivity")
    x.add_argument("--folds", type=float, nargs="+", default=None, help="closeness: concentration bounds (default 2 3 10 20)")
    x.add_argument("--batch-time", type=float, default=None, help="closeness: simulated batch time in h (default 48)")
    x.add_argument("--top-n", type=int, default=None, help="strains / sensitivity: number of top designs (default 5)")
    x.add_argument("--n-draws", type=int, default=None, help="sensitivity: draws per design x model x mode (default 10)")
    _run_options(x, json=False)
