"""One command from a cobra model to a tested surrogate (``mpc-bio build-surrogate``), per model.

Writes ``benchmarks/results/build_surrogate.json``: one record per model with ``model``, the
inputs and box, the time budget, ``wall_s``, ``cpu_s``, ``n_pfba_points``,
``growth_max_abs_err_frac`` (max |growth error| / max growth), ``worst_reaction_max_err_frac``
(largest error of any reaction as a fraction of its range over the training data),
``frac_points_beyond_2pct`` (share of fresh points where some reaction errs by more than 2 % of its
range), ``n_fresh_points``, the kink lines found and ``hand_constants`` (0: the recipe has no
model-specific constant), plus the machine. Usage::

    python benchmarks/build_surrogate.py                     # every case below, its budget
    python benchmarks/build_surrogate.py --cases e_coli_core --budget 25
    python benchmarks/build_surrogate.py --from-reports runs/build_ecoli_25 runs/build_textbook_nh4_20
    python benchmarks/build_surrogate.py --cases iCH360 --budget 95 --merge   # add one case to the file

``--from-reports`` collects the ``build_report.json`` of builds already made (e.g. by the CLI)
instead of building again; each record's ``case`` is then the build directory's name. The machine is shared, so the budget is wall time under its load; the
record says whether the budget was hit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

#: The cases: e_coli_core on the paper's box, a model the recipe was never tuned on (the textbook
#: model with glucose and ammonium as inputs, oxygen free), the paper's iCH360 and the genome-scale
#: iJO1366 over a smaller box (2,583 reactions). Budgets in minutes.
CASES = {
    "e_coli_core": {
        "model": "e_coli_core",
        "inputs": {"glucose": "EX_glc__D_e", "oxygen": "EX_o2_e"},
        "box": {"glucose": (0, 20), "oxygen": (0, 20)},
        "budget": 25.0,
    },
    "textbook_glc_nh4": {
        "model": "textbook",
        "inputs": {"glucose": "EX_glc__D_e", "ammonium": "EX_nh4_e"},
        "box": {"glucose": (0, 20), "ammonium": (0, 10)},
        "budget": 20.0,
    },
    "iCH360": {
        "model": "iCH360",
        "inputs": {"glucose": "EX_glc__D_e", "oxygen": "EX_o2_e"},
        "box": {"glucose": (0, 20), "oxygen": (0, 20)},
        "budget": 180.0,
    },
    "iJO1366_small": {
        "model": "iJO1366",
        "inputs": {"glucose": "EX_glc__D_e", "oxygen": "EX_o2_e"},
        "box": {"glucose": (0, 10), "oxygen": (0, 10)},
        "budget": 25.0,
    },
}

KEYS = (
    "model",
    "wall_s",
    "cpu_s",
    "time_budget_s",
    "budget_hit",
    "n_pfba_points",
    "n_training_points",
    "n_grid_points",
    "growth_max_abs_err_frac",
    "worst_reaction",
    "worst_reaction_max_err_frac",
    "frac_points_beyond_2pct",
    "frac_points_beyond_5pct",
    "n_fresh_points",
    "targets_met",
    "hand_constants",
    "machine_load",
)


def record(report: dict, case: str | None = None, out_dir: str | None = None) -> dict:
    """The benchmark record of one ``build_report.json``.

    ``model`` is the name the case builds from (``CASES``; e.g. ``textbook``) and ``model_id`` the
    id of the cobra model the report records: the bundled ``textbook`` is read as ``e_coli_core``
    (the same file, see :data:`mpc_bio.metabolism.models.BUNDLED_MODELS`), so the report alone
    cannot tell the two cases apart.
    """
    s = report["settings"]
    rec = {k: report.get(k) for k in KEYS}
    rec["model"] = CASES.get(case, {}).get("model", report["model"])
    rec["model_id"] = report["model"]
    rec.update(
        case=case or report["model"],
        inputs=dict(map(tuple, s["inputs"])),
        box={b[0]: [b[1], b[2]] for b in s["box"]},
        time_budget_min=s["time_budget_min"],
        seed=s["seed"],
        n_kink_lines=len(report["kink_lines"]),
        kink_lines=[{"line": k["line"], "features": k["features"][:6], "n_edges": k["n_edges"]} for k in report["kink_lines"]],
        stage_seconds=report.get("stage_seconds"),
        plan=report.get("plan"),
        training=report.get("training"),
        worst_point=report.get("worst_point"),
        artifact=out_dir,
    )
    return rec


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES), help="cases to build")
    ap.add_argument("--budget", type=float, default=None, help="time budget in minutes for every case (default: per case)")
    ap.add_argument("--runs", default="runs/bench_build", help="directory for the artifacts")
    ap.add_argument("--from-reports", nargs="*", default=None, metavar="DIR", help="collect existing build directories instead")
    ap.add_argument("--note", action="append", default=[], metavar="CASE=TEXT", help="a note on one record (repeatable)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument(
        "--merge", action="store_true", help="keep the records of other cases already in --out (a record of the same case is replaced)"
    )
    ap.add_argument("--out", default=str(RESULTS / "build_surrogate.json"))
    args = ap.parse_args(argv)

    records = []
    if args.from_reports is not None:
        for d in args.from_reports:
            rep = json.loads((Path(d) / "build_report.json").read_text())
            records.append(record(rep, case=Path(d).name, out_dir=str(d)))
    else:
        from mpc_bio.surrogate.build import BuildSettings, build_surrogate

        for case in args.cases:
            c = CASES[case]
            settings = BuildSettings(
                inputs=c["inputs"],
                box=tuple((n, *b) for n, b in c["box"].items()),
                time_budget_min=args.budget or c["budget"],
                num_threads=args.threads,
            )
            out = Path(args.runs) / case
            res = build_surrogate(c["model"], settings, out, progress=True)
            records.append(record(res.report, case, str(out)))
    notes = dict(n.split("=", 1) for n in args.note)
    for r in records:
        if r["case"] in notes:
            r["note"] = notes[r["case"]]
    if args.merge and Path(args.out).exists():
        new = {r["case"] for r in records}
        records = [r for r in json.loads(Path(args.out).read_text()).get("results", []) if r.get("case") not in new] + records
    result = {
        "benchmark": "build_surrogate",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_at_end": list(os.getloadavg()),
        },
        "note": (
            "`mpc-bio build-surrogate MODEL --out DIR --time-budget MIN`: grid, automatic kink lines, refinement, "
            "training, fresh Latin-hypercube test (seed + 7919), one worker and one torch thread on a shared 2-core "
            "machine. Errors are fractions of growth's maximum and of each reaction's range over the training data "
            "(floor 1e-3 of the largest range). Targets (issue 25): every reaction within 5 %, growth within 1 %."
        ),
        "targets": {"worst_reaction_max_err_frac": 0.05, "growth_max_abs_err_frac": 0.01},
        "results": records,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    print(
        json.dumps(
            [
                {
                    k: r[k]
                    for k in (
                        "case",
                        "wall_s",
                        "cpu_s",
                        "time_budget_min",
                        "budget_hit",
                        "growth_max_abs_err_frac",
                        "worst_reaction_max_err_frac",
                        "frac_points_beyond_2pct",
                    )
                }
                for r in records
            ],
            indent=1,
        )
    )
    return result


if __name__ == "__main__":
    main()
