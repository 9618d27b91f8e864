"""``mpc-bio sample`` and ``mpc-bio pfba``: sample the pFBA map, or solve and print one point."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from mpc_bio.cli import CLIError, add_worker_options, worker_count

__all__ = ["register", "CLIError"]


SAMPLE_HELP = """\
Sample the lexicographic split-flux pFBA (elastic slacks, max growth, min total flux) over a grid
or a Latin hypercube of uptake rates and write a FluxDataset (dataset.npz + dataset.json), a
growth-map figure (growth_map.png) and summary.json into --out.

MODEL is a shipped model name (e_coli_core, iJO1366, or iCH360, the paper's model) or a path to
an SBML/JSON/MAT file.
Uptakes are in mmol/gDW/h and fixed as equalities (exchange flux = -uptake).

examples:
  mpc-bio sample                                   # e_coli_core, paper grid 0-20 step 0.1 (40,401 points)
  mpc-bio sample e_coli_core --grid glucose=0:20:0.5 --grid oxygen=0:20:0.5 --out runs/coarse
  mpc-bio sample iCH360 --out runs/ich360      # all cores
  mpc-bio sample e_coli_core --workers 1 --grid glucose=0:20:1 --grid oxygen=0:20:1
  mpc-bio sample iJO1366 --lhs 200 --bounds glucose=0:20 --bounds oxygen=0:20 --seed 1
  mpc-bio sample e_coli_core --scheduler tcp://127.0.0.1:8786    # chunks on a Dask cluster
  mpc-bio sample e_coli_core --tie-break none      # raw simplex vertex among alternative optima
  mpc-bio sample e_coli_core --tie-break l2 --refine 0.005 --refine-depth 3   # + points at kinks

--refine TOL adds pFBA points where the grid misses the map: every grid cell whose centre, solved
fresh, differs from the interpolation of its corners by more than TOL x a reaction's range is split
in four (a quadtree), down to --refine-depth splits (cell edge step / 2**depth). The added points
are ordinary pFBA solutions with the same settings, stored after the grid rows in the dataset.
"""

PFBA_HELP = """\
Solve the split-flux pFBA at one point and print growth, uptakes, the main secretions, the status
and the slacks (uptakes in mmol/gDW/h, growth in 1/h).

examples:
  mpc-bio pfba                                        # e_coli_core at glucose=10, oxygen=15
  mpc-bio pfba e_coli_core -u glucose=10 -u oxygen=5
  mpc-bio pfba iJO1366 -u glucose=0.1 -u oxygen=1     # relaxed: maintenance cannot be met
  mpc-bio pfba e_coli_core -u glucose=10 -u oxygen=0 --json
"""


def _pairs(values: list[str] | None, option: str, n_parts: int, what: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in values or []:
        if "=" not in item:
            raise CLIError(f"The option {option} expects NAME={what}; got {item!r}.")
        name, rest = item.split("=", 1)
        parts = rest.split(":") if n_parts > 1 else [rest]
        if not name or len(parts) != n_parts:
            raise CLIError(f"The option {option} expects NAME={what}; got {item!r}.")
        out[name] = parts
    return out


def _floats(parts: list[str], option: str, item: str) -> list[float]:
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise CLIError(f"The option {option} expects numbers in {item!r}.") from None


def _settings(args: argparse.Namespace):
    from mpc_bio.metabolism.settings import DEFAULT_INPUTS, PFBASettings

    inputs = {k: v[0] for k, v in _pairs(args.inputs, "--inputs", 1, "EXCHANGE_ID").items()} or dict(DEFAULT_INPUTS)
    maint = None if str(args.maintenance).lower() == "none" else args.maintenance
    return PFBASettings(inputs=inputs, maintenance_id=maint, relax=not args.no_relax, tie_break=args.tie_break)


def _add_common(p: argparse.ArgumentParser) -> None:
    from mpc_bio.metabolism.settings import TIE_BREAKS, PFBASettings

    p.add_argument(
        "model",
        nargs="?",
        default="e_coli_core",
        help="bundled model name (e_coli_core, iJO1366) or model file path (default: e_coli_core)",
    )
    p.add_argument(
        "--inputs",
        action="append",
        metavar="NAME=EXCHANGE_ID",
        help="named uptake input and its exchange reaction, repeatable (default: glucose=EX_glc__D_e oxygen=EX_o2_e)",
    )
    p.add_argument(
        "--maintenance",
        default="ATPM",
        metavar="REACTION|none",
        help="maintenance reaction whose lower bound may be relaxed (default: ATPM)",
    )
    p.add_argument(
        "--no-relax",
        action="store_true",
        help="no elastic slacks: infeasible points are reported as infeasible (NaN fluxes)",
    )
    p.add_argument(
        "--tie-break",
        choices=TIE_BREAKS,
        default=PFBASettings().tie_break,
        help="among equal-total-flux optima: l2 = the minimum-norm one (unique, continuous in the "
        "uptakes), none = whichever vertex the simplex returns (faster, may jump) (default: %(default)s)",
    )


def register(subparsers: Any) -> None:
    """Add ``sample`` and ``pfba`` to the ``mpc-bio`` subcommands."""
    fmt = argparse.RawDescriptionHelpFormatter
    s = subparsers.add_parser(
        "sample", help="sample pFBA over an uptake grid into a FluxDataset", description=SAMPLE_HELP, formatter_class=fmt
    )
    _add_common(s)
    s.add_argument(
        "--grid",
        action="append",
        metavar="NAME=LOW:HIGH:STEP",
        help="grid axis in mmol/gDW/h, one per input (default: every input 0:20:0.1, the paper's grid)",
    )
    s.add_argument("--lhs", type=int, metavar="N", help="Latin hypercube of N points instead of a grid")
    s.add_argument(
        "--bounds",
        action="append",
        metavar="NAME=LOW:HIGH",
        help="Latin hypercube bounds in mmol/gDW/h, one per input (default 0:20)",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the Latin hypercube (default 0)")
    add_worker_options(s, "local worker processes (default: all cores; 1 = this process)")
    s.add_argument("--chunk-size", type=int, default=None, metavar="N", help="points per chunk (default 400)")
    s.add_argument(
        "--refine",
        type=float,
        default=None,
        metavar="TOL",
        help="after the grid, refine cells whose centre differs from the corner interpolation by more than "
        "TOL x a reaction's range (a fraction, e.g. 0.005; grids only; default: no refinement)",
    )
    s.add_argument("--refine-depth", type=int, default=3, metavar="N", help="largest number of cell splits (default 3)")
    s.add_argument("--refine-max-points", type=int, default=0, metavar="N", help="at most N added points (default 0 = no bound)")
    s.add_argument("--out", default="runs/sample", metavar="DIR", help="output directory (default runs/sample)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty --out folder")
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s.add_argument("--no-figure", action="store_true", help="skip growth_map.png")
    s.set_defaults(func=run_sample)

    p = subparsers.add_parser(
        "pfba", help="solve pFBA at one uptake point and print key fluxes", description=PFBA_HELP, formatter_class=fmt
    )
    _add_common(p)
    p.add_argument(
        "-u",
        "--uptake",
        action="append",
        metavar="NAME=VALUE",
        help="uptake rate of a named input in mmol/gDW/h, repeatable (default glucose=10 oxygen=15)",
    )
    p.add_argument("--top", type=int, default=8, help="number of secretions to print (default 8)")
    p.add_argument("--json", action="store_true", help="print the result as json")
    p.set_defaults(func=run_pfba)


# ------------------------------------------------------------------------------------------------
def run_sample(args: argparse.Namespace) -> int:
    """Run ``mpc-bio sample``: checks the output folder first, keeps every solved chunk of the
    grid in a hidden folder beside it (an interrupted run resumes from there when started again),
    and writes the dataset through a hidden folder renamed on completion."""
    import shutil
    import signal

    from mpc_bio.outputs import check_output_dir, staged_output

    job = _sample_job(args)  # bad options fail here, before anything is touched
    out = check_output_dir(args.out, overwrite=args.overwrite)
    if args.scheduler:
        from mpc_bio.cluster import connect_scheduler

        args.scheduler = connect_scheduler(args.scheduler)  # reachable before any work; reused
    chunks = out.parent / f".{out.name}.chunks"
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill PID` stops like Ctrl-C
    try:
        with staged_output(out, overwrite=args.overwrite) as tmp:
            _sample_into(args, job, tmp, out, chunks)
    except KeyboardInterrupt:
        kept = len(list(chunks.glob("chunk-*.npz"))) if chunks.is_dir() else 0
        print(
            f"mpc-bio sample: interrupted; {out} was not written. {kept} solved chunk(s) kept in {chunks}/: "
            "run the same command again to resume.",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if args.scheduler:
            args.scheduler.close()
        if chunks.is_dir() and not any(chunks.glob("chunk-*.npz")):
            shutil.rmtree(chunks, ignore_errors=True)  # nothing solved: nothing to resume from
    shutil.rmtree(chunks, ignore_errors=True)
    return 0


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _sample_job(args: argparse.Namespace) -> tuple[Any, Any, Any, int | None]:
    """``(settings, points, refine settings or None, workers)`` from the options of ``sample``."""
    from mpc_bio.metabolism.sampling import grid_points, latin_hypercube_points

    settings = _settings(args)
    names = settings.input_names
    workers = worker_count(args.workers)
    refine = None
    if args.refine is not None:
        from mpc_bio.metabolism.refinement import RefineSettings

        refine = RefineSettings(tolerance=args.refine, max_depth=args.refine_depth, max_points=args.refine_max_points)
    if args.lhs is not None:
        if args.grid:
            raise CLIError("Give either --grid or --lhs, not both.")
        if refine is not None:
            raise CLIError("The option --refine refines a grid; it cannot be combined with --lhs.")
        raw = _pairs(args.bounds, "--bounds", 2, "LOW:HIGH")
        unknown = sorted(set(raw) - set(names))
        if unknown:
            raise CLIError(f"The option --bounds names unknown inputs {unknown}; the inputs are {list(names)}.")
        bounds = {n: _floats(raw[n], "--bounds", n) if n in raw else [0.0, 20.0] for n in names}
        points = latin_hypercube_points(args.lhs, bounds, seed=args.seed)
    else:
        raw = _pairs(args.grid, "--grid", 3, "LOW:HIGH:STEP")
        unknown = sorted(set(raw) - set(names))
        if unknown:
            raise CLIError(f"The option --grid names unknown inputs {unknown}; the inputs are {list(names)}.")
        axes = {n: _floats(raw[n], "--grid", n) if n in raw else [0.0, 20.0, 0.1] for n in names}
        points = grid_points(axes)
    return settings, points, refine, workers


def _sample_into(args: argparse.Namespace, job: tuple, tmp: Path, out: Path, chunks: Path) -> None:
    """The work of ``mpc-bio sample``, written into ``tmp`` (renamed to ``out`` by the caller)."""
    from mpc_bio.metabolism.models import load_model
    from mpc_bio.metabolism.sampling import DEFAULT_CHUNK_SIZE, SOLVER_NOTES, sample_pfba

    settings, points, refine, workers = job
    t0 = time.perf_counter()
    model = load_model(args.model)
    t_load = time.perf_counter() - t0
    chunk = args.chunk_size if args.chunk_size is not None else DEFAULT_CHUNK_SIZE
    t1 = time.perf_counter()
    data = sample_pfba(
        model,
        points,
        settings,
        n_workers=workers,
        scheduler=args.scheduler,
        chunk_size=chunk,
        progress=not args.no_progress,
        checkpoint=chunks,
    )
    t_sample = time.perf_counter() - t1
    t_refine = 0.0
    if refine is not None:
        from mpc_bio.metabolism.refinement import refine_dataset

        t3 = time.perf_counter()
        data = refine_dataset(
            model, data, refine, n_workers=workers, scheduler=args.scheduler, chunk_size=chunk, progress=not args.no_progress
        )
        t_refine = time.perf_counter() - t3
    t2 = time.perf_counter()
    data.save(tmp)
    t_save = time.perf_counter() - t2
    if not args.no_figure:
        from mpc_bio.plotting.metabolism import plot_growth_map

        fig = plot_growth_map(data)
        fig.savefig(tmp / "growth_map.png", dpi=130)
        import matplotlib.pyplot as plt

        plt.close(fig)
    import numpy as np

    ok = np.isfinite(data.growth)
    summary = {
        "model_id": data.model_id,
        "model_hash": data.model_hash,
        "n_points": data.n_points,
        "n_reactions": len(data.reaction_ids),
        "status_counts": data.status_counts(),
        "growth_max_per_h": float(np.max(data.growth[ok])) if ok.any() else None,
        "workers": "all" if workers is None else workers,
        "scheduler": args.scheduler.scheduler.address if args.scheduler else None,
        "chunk_size": chunk,
        "wall_time_s": {"load_model": t_load, "sample": t_sample, "refine": t_refine, "save": t_save, "total": time.perf_counter() - t0},
        "ms_per_point": 1e3 * (t_sample + t_refine) / data.n_points,
        "refinement": (data.settings.get("sampling") or {}).get("refinement"),
        "tie_break": settings.tie_break,
        "solver_fallbacks": {k: (data.settings.get("sampling") or {}).get(k, 0) for k in SOLVER_NOTES},
        "content_hash": json.loads((tmp / "dataset.json").read_text())["content_hash"],
    }
    (tmp / "summary.json").write_text(json.dumps(summary, indent=1))
    c = summary["status_counts"]
    print(
        f"{data.model_id}: {data.n_points} points in {t_sample + t_refine:.1f} s ({summary['ms_per_point']:.3f} ms/point"
        + (f"; {data.n_points - points.values.shape[0]} added by refinement" if refine is not None else "")
        + "); "
        f"optimal {c['optimal']}, relaxed {c['relaxed']}, failed {c['failed']}, infeasible {c['infeasible']}; "
        + "".join(f"{k} {v}; " for k, v in summary["solver_fallbacks"].items() if v)
        + f"written to {out}/"
    )


def _exchange_mask(stoichiometry: Any) -> Any:
    import numpy as np

    nnz = np.diff(stoichiometry.tocsc().indptr)
    return nnz == 1


def run_pfba(args: argparse.Namespace) -> int:
    """Run ``mpc-bio pfba``."""
    import numpy as np

    from mpc_bio.metabolism.models import load_model
    from mpc_bio.metabolism.pfba import PFBASolver

    settings = _settings(args)
    names = settings.input_names
    raw = _pairs(args.uptake, "--uptake", 1, "VALUE")
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise CLIError(f"The option --uptake names unknown inputs {unknown}; the inputs are {list(names)}.")
    defaults = {"glucose": 10.0, "oxygen": 15.0}
    missing = [n for n in names if n not in raw and n not in defaults]
    if missing:
        raise CLIError(f"The option --uptake must give a value for the inputs {missing} (NAME=VALUE in mmol/gDW/h).")
    uptakes = {n: _floats(raw[n], "--uptake", n)[0] if n in raw else defaults[n] for n in names}
    solver = PFBASolver(load_model(args.model), settings)
    pt = solver.solve(uptakes)
    ex = _exchange_mask(solver.stoichiometry)
    rids = solver.reaction_ids
    sec = []
    if pt.ok:
        order = np.argsort(-pt.fluxes)
        sec = [(rids[j], float(pt.fluxes[j])) for j in order if ex[j] and pt.fluxes[j] > 1e-6][: args.top]
    result = {
        "model_id": solver.model_id,
        "status": pt.status,
        "growth_per_h": pt.growth,
        "uptakes_mmol_per_gdw_h": dict(zip(names, map(float, pt.inputs))),
        "input_exchange_fluxes": {r: (pt.flux(r) if pt.ok else math.nan) for r in solver.input_reactions},
        "secretions": dict(sec),
        "slacks": dict(zip(solver.slack_names, map(float, pt.slacks))),
        "total_flux": pt.total_flux,
        "solve_time_ms": 1e3 * pt.solve_time,
        "message": pt.message,
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return 0 if pt.ok else 1
    w = sys.stdout.write
    w(f"model {solver.model_id}: status {pt.status}" + (f" ({pt.message})" if pt.message else "") + "\n")
    w(f"  growth ({solver.objective_id}): {pt.growth:.6g} 1/h\n")
    for n, r in zip(names, solver.input_reactions):
        w(f"  {n} uptake {uptakes[n]:g} -> {r} = {result['input_exchange_fluxes'][r]:.6g} mmol/gDW/h\n")
    if sec:
        w("  secretions (mmol/gDW/h):\n")
        for r, v in sec:
            w(f"    {r:<16} {v:.6g}\n")
    nz = {k: v for k, v in result["slacks"].items() if not (v == 0)}
    w("  slacks: " + (", ".join(f"{k} = {v:.6g}" for k, v in nz.items()) if nz else "none") + "\n")
    w(f"  total split flux: {pt.total_flux:.6g} mmol/gDW/h; solve time {result['solve_time_ms']:.2f} ms\n")
    return 0 if pt.ok else 1
