"""``mpc-bio run SCENARIO.toml`` and ``mpc-bio validate FILE [FILE ...]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mpc_bio.cli import add_worker_options, worker_count

__all__ = ["register", "run", "sweep", "validate", "validate_file"]

RUN_HELP = """\
Run a scenario file. The file's `kind` picks the runner:
{kinds}
The file is validated first (every problem listed at once; see `mpc-bio validate`).

Every run writes into its own output directory (default runs/<scenario stem>-<UTC time>):
the kind's figures (PNG), trajectories (CSV) and summary.json, plus scenario.toml (as given),
resolved.toml (every default filled in: `mpc-bio run resolved.toml` repeats the run) and
run.json (status, seeds, dependency versions, timings). The run is written into a temporary
sibling directory and renamed when complete, so an interrupted run never leaves a result that
looks complete. An existing directory holding a run is never replaced without --overwrite.

examples:
  mpc-bio run scenarios/paper_fig3.toml --out runs/fig3
  mpc-bio run scenarios/paper_fig3.toml --out runs/fig3 --overwrite
  mpc-bio run scenarios/closed_loop_mpc.toml            # -> runs/closed_loop_mpc-20260101-120000
  mpc-bio run scenarios/paper_fig3_ich360.toml          # figure 3 on iCH360, the paper's model
"""

SWEEP_HELP = """\
Run one scenario many times: every combination of --vary values, each with --seeds seed shifts
(run s adds s to every seed key of the scenario: measurement noise, plant draws). Each run goes
into OUT/runs/<id>/ like `mpc-bio run`; OUT/sweep_runs.csv has one row per run (the varied values,
status, error, every numeric result), OUT/sweep_summary.json the counts, the failures and the
distribution of every result, OUT/sweep.png one histogram per result. Runs go to local worker
processes, or to a Dask cluster with --scheduler (its workers must see this file system). A sweep
started again with the same arguments keeps its completed runs and runs the others.

examples:
  mpc-bio sweep scenarios/closed_loop_mpc.toml --seeds 20 --out runs/noise
  mpc-bio sweep scenarios/closed_loop_mpc.toml --vary kinetics.glucose_vmax=7,10,13 --seeds 10
  mpc-bio sweep scenarios/paper_fig3.toml --vary reactor.glucose0=10,20,40 --scheduler tcp://host:8786
"""

VALIDATE_HELP = """\
Check scenario files without running them: unknown keys, missing required keys, wrong types,
out-of-range values and infeasible combinations, all reported at once with the file, the key,
what was expected and what was found. Files without `kind` but with a [nomad] table are checked
as configs of `mpc-bio nomad ensemble/design`. Exit code 0 when every file is valid, 2 otherwise.

With --reference, print every scenario kind, table and key with its type, unit, default and
allowed values instead (markdown; the README's scenario file reference is generated this way).

examples:
  mpc-bio validate scenarios/*.toml
  mpc-bio validate my_scenario.toml --resolved        # also print the configuration with defaults
  mpc-bio validate --reference > docs/scenario_reference.md
  mpc-bio validate --reference --kind simulation --text
"""


#: Seconds `mpc-bio run` has to stop after Ctrl-C/SIGTERM before the process is ended (when a
#: solver is inside one long compiled call); a second Ctrl-C ends it at once.
INTERRUPT_GRACE_S = 5.0

#: One line per known kind for the help text (kinds registered later are listed by name).
KIND_HELP = {
    "simulation": "fed-batch with the surrogate beside the LP-in-the-loop dFBA (paper figure 3)",
    "closed_loop": "feed MPC + state estimator on the plant vs the offline optimum",
    "feed_optimization": "offline whole-batch feed optimum vs tuned constant/exponential feeds",
    "mpc_mismatch": "closed loop on a mismatched plant vs the offline profile open loop",
    "codesign": "strain designs x feeds in the kinetic fed-batch over the ensemble",
}


def _kinds_help() -> str:
    from mpc_bio.scenarios.runner import SCENARIO_KINDS

    return "\n".join(f"  {k:18s} {KIND_HELP.get(k, '(see mpc-bio validate --reference)')}" for k in SCENARIO_KINDS)


def register(subparsers: Any) -> None:
    """Add ``run`` and ``validate`` to the ``mpc-bio`` subcommands."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "run", help="validate and run a scenario TOML file", description=RUN_HELP.format(kinds=_kinds_help()), formatter_class=fmt
    )
    p.add_argument("scenario", metavar="SCENARIO.toml", help="scenario file")
    p.add_argument("--out", default=None, metavar="DIR", help="output directory (default runs/<stem>-<UTC time>)")
    p.add_argument("--overwrite", action="store_true", help="replace --out DIR even when it holds a complete run")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars (the status line of each phase stays)")
    p.set_defaults(func=run, interrupt_grace=INTERRUPT_GRACE_S)

    s = subparsers.add_parser(
        "sweep", help="run a scenario over parameter values and seeds (locally or on Dask)", description=SWEEP_HELP, formatter_class=fmt
    )
    s.add_argument("scenario", metavar="SCENARIO.toml", help="scenario file")
    s.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="TABLE.KEY=V1,V2,...",
        help="values of one key of the resolved scenario (repeatable: all combinations)",
    )
    s.add_argument("--seeds", type=int, default=1, metavar="N", help="runs per combination, seed keys shifted 0..N-1")
    s.add_argument("--out", default=None, metavar="DIR", help="sweep folder (default runs/<stem>-sweep-<UTC time>)")
    add_worker_options(s)
    s.add_argument("--overwrite", action="store_true", help="replace a --out folder that holds another sweep")
    s.add_argument("--no-progress", action="store_true", help="a status line per finished run instead of the progress bar")
    s.set_defaults(func=sweep)

    v = subparsers.add_parser(
        "validate",
        help="check scenario files without running them; print the key reference",
        description=VALIDATE_HELP,
        formatter_class=fmt,
    )
    v.add_argument("files", nargs="*", metavar="FILE", help="scenario TOML files")
    v.add_argument("--reference", action="store_true", help="print the reference of every kind, table and key")
    v.add_argument(
        "--kind",
        action="append",
        default=None,
        metavar="KIND",
        help='with --reference: only this kind (repeatable; "nomad" for the [nomad] configuration)',
    )
    v.add_argument("--text", action="store_true", help="with --reference: plain text instead of markdown")
    v.add_argument("--resolved", action="store_true", help="print each valid file's resolved configuration (TOML)")
    v.set_defaults(func=validate)


def run(args: argparse.Namespace) -> int:
    """Run the scenario and print where the results went; exit 1 when the summary reports failed solves."""
    from mpc_bio.scenarios.runner import RunExistsError, run_scenario
    from mpc_bio.scenarios.schema import ScenarioError

    try:
        res = run_scenario(args.scenario, args.out, progress=not args.no_progress, overwrite=args.overwrite, status=True)
    except (ScenarioError, RunExistsError) as exc:
        print(f"mpc-bio run: error: {exc}", file=sys.stderr)
        return 2
    from mpc_bio.status import format_warnings

    s = res.summary
    print(f"{res.kind} scenario {res.name!r} done in {res.wall_time:.1f} s -> {res.out_dir}")
    for role, f in res.files.items():
        print(f"  {role:13s} {f}")
    for k, val in s.items():
        if k not in ("kind", "name", "scenario", "status", "failures", "failed_solves", "solver_warnings", "phases_s"):
            print(f"  {k}: {val}")
    if "solver_warnings" in s:
        print(format_warnings(s["solver_warnings"]))
    if s.get("status", "ok") == "failed":
        print(
            f"mpc-bio run: result failed ({len(s['failures'])} failed solve(s) recorded in {res.out_dir / 'summary.json'}): "
            + "; ".join(s["failures"]),
            file=sys.stderr,
        )
        return 1
    if s.get("status", "ok") == "degraded":
        print(
            f"mpc-bio run: complete, but solves failed (see {res.out_dir / 'summary.json'}): " + "; ".join(s["failed_solves"]),
            file=sys.stderr,
        )
        return 3
    return 0


def sweep(args: argparse.Namespace) -> int:
    """Run a sweep; exit 0 when every run completed, 1 when some failed (listed)."""
    import time

    from mpc_bio.scenarios.sweep import parse_vary, run_sweep

    out = args.out or f"runs/{Path(args.scenario).stem}-sweep-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    try:
        res = run_sweep(
            args.scenario,
            out,
            vary=parse_vary(args.vary),
            seeds=args.seeds,
            n_workers=worker_count(args.workers),
            scheduler=args.scheduler,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            status=True,
        )
    except KeyboardInterrupt as exc:
        from mpc_bio.interrupts import Interrupted
        from mpc_bio.scenarios.runner import run_status

        runs = Path(out) / "runs"
        kept = sum(1 for d in runs.iterdir() if run_status(d) == "complete") if runs.is_dir() else 0
        raise Interrupted(
            f"{kept} complete run(s) kept in {runs}/; the same command resumes the sweep (the other runs start again)"
        ) from exc
    s = res.summary
    print(
        f"sweep of {args.scenario}: {s['runs']} runs, {s['complete']} complete ({s['reused']} kept from before), "
        f"{s['failed']} failed -> {res.out_dir}"
    )
    for rid, err in list(s["failures"].items())[:10]:
        print(f"  failed {rid}: {err[:160]}")
    for m in res.metrics[:8]:
        st = s["metrics"][m]
        print(f"  {m}: median {st['median']:.4g} (p10 {st['p10']:.4g}, p90 {st['p90']:.4g})")
    return 0 if s["failed"] == 0 else 1


def validate_file(path: str | Path) -> dict[str, Any]:
    """Validate one scenario file (or a ``[nomad]`` config); return its resolved configuration.

    Raises
    ------
    FileNotFoundError, ScenarioError
    """
    import tomllib

    from mpc_bio.scenarios.runner import validate_scenario

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text()) if p.is_file() else None
    except tomllib.TOMLDecodeError:
        data = None
    if data is not None and "kind" not in data and "nomad" in data:
        from mpc_bio.scenarios.nomad_config import validate_nomad_config

        return validate_nomad_config(p, data)
    return validate_scenario(p)


def validate(args: argparse.Namespace) -> int:
    """Validate files (exit 0 when all are valid, 2 otherwise) or print the key reference."""
    from mpc_bio.scenarios.schema import ScenarioError, dump_toml

    if args.reference:
        from mpc_bio.scenarios.kinds import SCENARIO_SCHEMAS, get_schema
        from mpc_bio.scenarios.schema import format_reference

        from mpc_bio.scenarios.nomad_config import nomad_config_schema

        known = [*SCENARIO_SCHEMAS, "nomad"]
        kinds = args.kind or known
        unknown = sorted(set(kinds) - set(known))
        if unknown:
            print(f"mpc-bio validate: error: no schema for kind(s) {unknown}; known: {sorted(known)}", file=sys.stderr)
            return 2
        schemas = [nomad_config_schema() if k == "nomad" else get_schema(k) for k in kinds]
        print(format_reference(schemas, markdown=not args.text))
        return 0
    if not args.files:
        print("mpc-bio validate: error: give one or more FILEs, or --reference", file=sys.stderr)
        return 2
    bad = 0
    for f in args.files:
        try:
            resolved = validate_file(f)
        except (ScenarioError, FileNotFoundError) as exc:
            bad += 1
            print(f"INVALID {f}\n{exc}\n", file=sys.stderr)
            continue
        print(f"ok      {f} (kind {resolved.get('kind', 'nomad config')!r})")
        if args.resolved:
            print(dump_toml(resolved))
    if bad:
        print(f"{bad} of {len(args.files)} file(s) invalid", file=sys.stderr)
    return 2 if bad else 0
