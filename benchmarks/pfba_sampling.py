"""pFBA sampling throughput: mpc_bio (HiGHS, warm-started split LP) vs a loop over cobra.flux_analysis.pfba.

Same points, same run. For every model: ms per point of COBRApy's pfba loop (optlang/GLPK, timed on
an evenly spaced subset of the points, reported per point; ``cobra_n_points`` says how many), of
``sample_pfba`` in one process and with all cores (end to end: LP build, workers, solves), the
speedup, and the largest relative disagreement in growth and total split flux on the points where
COBRApy finds a solution. Relative error = |a - b| / max(|b|, 1e-6).

Points: the paper's grid (glucose and oxygen 0-20 mmol/gDW/h, step 0.1: 40,401 points) for
e_coli_core and iCH360, a coarse 9 x 6 grid (54 points) for iJO1366.

Unless ``--no-full-grid`` is given, the paper's 40,401-point grid is also sampled through the
``mpc-bio sample`` command for e_coli_core and iCH360 with all cores, and the wall times recorded.

Run:  .venv/bin/python benchmarks/pfba_sampling.py [--quick] [--no-full-grid]
Writes benchmarks/results/pfba_sampling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mpc_bio.metabolism import (  # noqa: E402
    PAPER_GRID,
    grid_points,
    load_model,
    sample_pfba,
)

OUT = ROOT / "benchmarks" / "results" / "pfba_sampling.json"
REL_FLOOR = 1e-6


def cobra_loop(model, values, objective_id, feasibility_tol=None):
    """(growth, total flux, seconds) per point with cobra.flux_analysis.pfba; NaN when infeasible.

    ``feasibility_tol`` sets GLPK's primal feasibility tolerance for the loop (restored after).
    """
    import cobra
    from cobra.flux_analysis import pfba

    tol = model.solver.configuration.tolerances
    old = tol.feasibility
    if feasibility_tol is not None:
        tol.feasibility = feasibility_tol

    glc, o2 = model.reactions.EX_glc__D_e, model.reactions.EX_o2_e
    growth = np.full(len(values), np.nan)
    total = np.full(len(values), np.nan)
    c0 = time.process_time()
    t0 = time.perf_counter()
    for i, (g, o) in enumerate(values):
        with model:
            glc.bounds = (-g, -g)
            o2.bounds = (-o, -o)
            try:
                sol = pfba(model)
            except (cobra.exceptions.Infeasible, cobra.exceptions.OptimizationError):
                continue
            if sol.status == "optimal":
                growth[i] = sol.fluxes[objective_id]
                total[i] = sol.objective_value
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    tol.feasibility = old
    return growth, total, elapsed, cpu


def rel_err(a, b):
    return np.abs(a - b) / np.maximum(np.abs(b), REL_FLOOR)


def bench_model(label, model, axes, n_cobra, workers):
    pts = grid_points(axes)
    n = len(pts)
    # mpc_bio, one process, end to end (LP build from the cobra model + all solves)
    c0 = time.process_time()
    t0 = time.perf_counter()
    ds = sample_pfba(model, pts, n_workers=1, progress=False)
    t_serial = time.perf_counter() - t0
    cpu_serial = time.process_time() - c0
    # mpc_bio, all cores (local process pool, spawn start-up included)
    t0 = time.perf_counter()
    ds_par = sample_pfba(model, pts, n_workers=workers, progress=False)
    t_par = time.perf_counter() - t0
    identical = ds_par.content_hash() == ds.content_hash()
    # COBRApy loop on an evenly spaced subset of the same points
    sub = np.unique(np.linspace(0, n - 1, min(n_cobra, n)).round().astype(int))
    # timing: COBRApy as shipped (optlang/GLPK defaults)
    cg0, ct0, t_cobra, cpu_cobra = cobra_loop(model, ds.inputs[sub], ds.objective_id)
    # accuracy reference: the same loop with GLPK's feasibility tolerance tightened to 1e-9
    cg, ct, t_tight, _ = cobra_loop(model, ds.inputs[sub], ds.objective_id, feasibility_tol=1e-9)
    mine_ok = ds.status[sub] == 0
    mine_growth = ds.growth[sub]
    mine_total = ds.split_fluxes[sub].sum(axis=1)
    feasible = np.isfinite(cg)
    both = feasible & mine_ok
    e_growth = rel_err(mine_growth[both], cg[both])
    e_total = rel_err(mine_total[both], ct[both])
    both0 = np.isfinite(cg0) & mine_ok
    e0 = max(rel_err(mine_growth[both0], cg0[both0]).max(initial=0.0), rel_err(mine_total[both0], ct0[both0]).max(initial=0.0))
    status_agree = int(np.sum(feasible == mine_ok))
    cobra_ms = 1e3 * t_cobra / len(sub)
    serial_ms = 1e3 * t_serial / n
    par_ms = 1e3 * t_par / n
    res = {
        "model": label,
        "n_reactions": len(ds.reaction_ids),
        "n_points": n,
        "grid": {k: list(v) for k, v in axes.items()},
        "cobra_n_points": int(len(sub)),
        "cobra_points": "evenly spaced subset of the same grid points (every ~%d-th point)" % max(1, n // len(sub)),
        "cobra_solver": "optlang/" + model.solver.interface.__name__.split(".")[-1].replace("_interface", ""),
        "cobra_ms_per_point": cobra_ms,
        "mpc_bio_ms_per_point": serial_ms,
        "mpc_bio_parallel_ms_per_point": par_ms,
        "mpc_bio_parallel_workers": workers,
        "speedup": cobra_ms / serial_ms,
        "cobra_cpu_ms_per_point": 1e3 * cpu_cobra / len(sub),
        "mpc_bio_cpu_ms_per_point": 1e3 * cpu_serial / n,
        "speedup_cpu_time": (cpu_cobra / len(sub)) / (cpu_serial / n),
        "parallel_speedup": cobra_ms / par_ms,
        "max_rel_err": float(max(e_growth.max(initial=0.0), e_total.max(initial=0.0))),
        "max_rel_err_growth": float(e_growth.max(initial=0.0)),
        "max_rel_err_total_flux": float(e_total.max(initial=0.0)),
        "max_rel_err_reference": "COBRApy pfba with GLPK feasibility tolerance 1e-9 (growth and total split flux)",
        "max_rel_err_vs_default_glpk": float(e0),
        "cobra_tight_ms_per_point": 1e3 * t_tight / len(sub),
        "n_compared": int(both.sum()),
        "status_agreement": f"{status_agree}/{len(sub)} points (COBRApy feasible <=> mpc_bio optimal)",
        "parallel_identical_to_serial": bool(identical),
        "mpc_bio_status_counts": ds.status_counts(),
    }
    print(
        f"{label}: {n} pts, cobra {cobra_ms:.2f} ms/pt ({len(sub)} pts), mpc_bio {serial_ms:.3f} ms/pt, "
        f"parallel {par_ms:.3f} ms/pt, speedup {res['speedup']:.1f}x, max rel err {res['max_rel_err']:.2e}, "
        f"status agree {status_agree}/{len(sub)}",
        flush=True,
    )
    return res


def full_grid_cli(model_arg, label):
    exe = Path(sys.executable).with_name("mpc-bio")
    cmd = [str(exe), "sample", str(model_arg), "--workers", "all", "--no-progress"]
    import resource

    with tempfile.TemporaryDirectory() as tmp:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([*cmd, "--out", tmp], check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        summary = json.loads((Path(tmp) / "summary.json").read_text())
    res = {
        "model": label,
        "command": " ".join(cmd + ["--out", "DIR"]),
        "n_points": summary["n_points"],
        "wall_time_s": wall,
        "cpu_time_s_all_processes": cpu,
        "loadavg_1min_after": os.getloadavg()[0],
        "sample_time_s": summary["wall_time_s"]["sample"],
        "save_time_s": summary["wall_time_s"]["save"],
        "load_model_time_s": summary["wall_time_s"]["load_model"],
        "ms_per_point_sampling": summary["ms_per_point"],
        "status_counts": summary["status_counts"],
        "content_hash": summary["content_hash"],
    }
    print(f"full grid {label}: {wall:.1f} s wall ({res['sample_time_s']:.1f} s sampling)", flush=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer COBRApy points (smoke run)")
    ap.add_argument("--no-full-grid", action="store_true", help="skip the 40,401-point CLI runs")
    args = ap.parse_args()
    workers = os.cpu_count() or 1
    q = 0.25 if args.quick else 1.0
    # e_coli_core and iCH360: the paper's full 40,401-point grid (its real workload) for mpc_bio,
    # COBRApy on an evenly spaced subset of it; iJO1366: a coarse 9 x 6 grid for both
    paper = PAPER_GRID if not args.quick else {"glucose": (0, 20, 0.4), "oxygen": (0, 20, 0.4)}
    cases = [("e_coli_core", "e_coli_core", paper, int(400 * q))]
    cases.append(("iCH360", "iCH360", paper, int(200 * q)))
    cases.append(("iJO1366", "iJO1366", {"glucose": (0, 20, 2.5), "oxygen": (0, 20, 4.0)}, int(54 * q) or 1))
    results = []
    for label, src, axes, n_cobra in cases:
        model = load_model(src)
        results.append(bench_model(label, model, axes, n_cobra, workers))
    full = []
    if not args.no_full_grid:
        full.append(full_grid_cli("e_coli_core", "e_coli_core"))
        full.append(full_grid_cli("iCH360", "iCH360"))
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = None
    payload = {
        "benchmark": "pfba_sampling",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": workers, "platform": platform.platform(), "python": platform.python_version(), "loadavg_at_end": load},
        "note": (
            "Single-process speedup = cobra_ms_per_point / mpc_bio_ms_per_point on the same grid; the COBRApy loop "
            "runs on an evenly spaced subset of those points. mpc_bio times are end to end (LP build, sampling, "
            "parallel start-up). The machine is shared, so absolute times vary with load; ratios come from one run."
        ),
        "results": results,
        "paper_grid_cli": full,
        "targets": {
            "speedup_e_coli_core": 20,
            "speedup_iCH360": 20,
            "speedup_iJO1366": 10,
            "max_rel_err": 1e-6,
            "iCH360_full_grid_wall_s": 60,
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(payload, indent=1))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
