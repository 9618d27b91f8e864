"""Co-design benchmark: feed optimisation by shooting vs collocation, and the study's stage times.

Writes ``benchmarks/results/codesign.json``. Usage::

    python benchmarks/codesign.py [--members 2] [--intervals 4] [--batch-time 8] [--elements 4]
                                  [--max-iter 30] [--study runs/codesign_anthranilate]

Figures (same tiny ensemble, same run, same start feed):

* per method ("shooting", "collocation") and mode ("mean", "worst"): wall time of the feed
  optimisation, IPOPT status and iterations, the objective (final product amount, mmol, from the
  CVODES re-simulation), the start objective, the NLP's own objective and the relative gap
  between the NLP and the re-simulation;
* ``collocation_over_shooting_time`` per mode (ratio of wall times in this run);
* with ``--study DIR`` (a finished ``mpc-bio run scenarios/codesign_anthranilate.toml``): the
  study's wall time by stage and the per-design feed optimisation times recorded there.

The tiny ensemble is the one of the co-design tests (40 sampled models, screened), built once
and cached under ``$TMPDIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "codesign.json"
sys.path.insert(0, str(ROOT))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--intervals", type=int, default=4)
    ap.add_argument("--batch-time", type=float, default=8.0)
    ap.add_argument("--elements", type=int, default=4)
    ap.add_argument("--max-iter", type=int, default=30)
    ap.add_argument("--study", default=None, help="output directory of a finished codesign run")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    from mpc_bio.codesign import (
        FeedSettings,
        kinetic_control_model,
        load_or_run_ensemble,
        optimize_feed,
    )
    from mpc_bio.nomad.settings import EnsembleStudySettings
    from tests.codesign.conftest import TINY_NOMAD

    tmp = Path(tempfile.gettempdir()) / "mpc_bio_codesign_bench"
    ens_settings = EnsembleStudySettings.from_dict({**TINY_NOMAD, "output_dir": str(tmp / "none")})
    ens, control, _, _ = load_or_run_ensemble(ens_settings, tmp / "cache", reuse_nomad_output=False)
    members = [int(i) for i in control.model_index[: args.members]]
    km = kinetic_control_model(ens, members)
    out: dict = {
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
        "members": members,
        "n_intervals": args.intervals,
        "batch_time_h": args.batch_time,
        "elements_per_interval": args.elements,
        "max_iter": args.max_iter,
        "feed": {},
    }
    for mode in ("mean", "worst"):
        times = {}
        for method in ("shooting", "collocation"):
            fs = FeedSettings(
                n_intervals=args.intervals,
                n_members=len(members),
                max_iter=args.max_iter,
                batch_time=args.batch_time,
                reltol=1e-8,
                abstol=1e-10,
                fd_step=1e-4,
                elements_per_interval=args.elements,
                method=method,
                robust=mode,
            )
            t0 = time.perf_counter()
            opt = optimize_feed(km, fs)
            times[method] = time.perf_counter() - t0
            out["feed"][f"{method}_{mode}"] = {
                "wall_s": times[method],
                "status": opt.status,
                "iterations": opt.iterations,
                "objective_mmol": opt.objective,
                "start_objective_mmol": opt.initial_objective,
                "nlp_objective_mmol": opt.nlp_objective,
                "simulation_mismatch": opt.simulation_mismatch,
                "feed_l_per_h": opt.feed.tolist(),
            }
            print(
                f"{method:12s} {mode:6s} {times[method]:7.1f} s  J={opt.objective:.4g} (start {opt.initial_objective:.4g}) "
                f"gap={opt.simulation_mismatch:.3g}  {opt.status}",
                flush=True,
            )
        out[f"collocation_over_shooting_time_{mode}"] = times["collocation"] / times["shooting"]
        a, b = out["feed"][f"collocation_{mode}"], out["feed"][f"shooting_{mode}"]
        out[f"collocation_vs_shooting_objective_{mode}"] = a["objective_mmol"] / b["objective_mmol"] - 1.0
    if args.study:
        s = json.loads((Path(args.study) / "codesign_summary.json").read_text())
        run = json.loads((Path(args.study) / "run.json").read_text())
        out["study"] = {
            "seconds_by_stage": s["seconds"],
            "total_s": run.get("timings_s", {}).get("total"),
            "feed_optimisation_s": {
                "shared": s["shared_feed"]["solve_time_s"],
                **{k: v["solve_time_s"] for k, v in s["own_feeds"].items()},
            },
            "feed_method": s["shared_feed"]["method"],
            "sources": s["sources"],
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=float))
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
