"""Surrogate vs fast pFBA: time per point (single and batched) and accuracy, same run, same points.

Writes ``benchmarks/results/surrogate.json`` and, after the timings, the paper's figures 2, 4, 6 and
a test-parity plot with the metrics on 1,000 more fresh points (``mpc-bio evaluate-surrogate``'s
report) to ``benchmarks/results/surrogate_<model id>_eval/`` (``--no-figures`` skips them). Usage::

    python benchmarks/surrogate.py [--model DIR] [--n-pfba 300] [--threads 1] [--no-figures]

The pFBA baseline is :class:`mpc_bio.metabolism.pfba.PFBASolver` (HiGHS, warm-started, one
process, without the tie-break stage: the fastest pFBA) solving each random point in turn; the
accuracy reference is solved with the pFBA rule of the surrogate's training data (``Surrogate.pfba_settings``,
l2 tie-break for the shipped one). The surrogate is the shipped default (or ``--model``).
Single-point evaluation uses the numpy path of ``MLPSpec.evaluate`` (no torch dispatch).
Batches of 1, 100 and 10,000 points (the same points for every variant), us per point:

- keys without suffix: ``Surrogate.predict`` in float64 (numpy up to 64 points, else
  ``Surrogate.fused("float64")``: scalings folded into the layers, the last layer factorised through
  the rank-d range of the mass-balance projector, ``torch.inference_mode``; mass balance ~1e-12);
- ``*_mixed``: ``Surrogate.fused("mixed")``, float32 hidden layers and float64 last maps
  (h -> z -> v), float64 output; mass balance as float64;
- ``*_float32``: ``Surrogate.fused("float32")`` on float32 inputs (balances only to ~1e-5);
- ``*_fused_float64`` / ``*_unfactorised``: the float64 fused module called directly, with and
  without the factorisation (the old float64 path, less its product with the all-zero input
  matrix, which is now skipped), same call as the mixed and float32 variants;
- ``*_unfused_module``: ``Surrogate.module`` (scaling and projection as separate operations).

Deviations from float64 are max |v - v_float64| per reaction over all batch points divided by
that reaction's range over the pFBA reference points (floored at 1e-3 mmol/gDW/h, as in
``compute_metrics``), maximised over reactions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mpc_bio.metabolism.models import load_model
from mpc_bio.metabolism.pfba import PFBASolver
from mpc_bio.surrogate import compute_metrics, default_surrogate, load_surrogate, mass_balance_residual
from mpc_bio.surrogate.analysis import random_test_points
from mpc_bio.surrogate.cli import write_report
from mpc_bio.surrogate.network import FACTOR_RTOL, FusedForward

OUT = Path(__file__).resolve().parent / "results" / "surrogate.json"


def _time(fn, repeat: int, min_time: float = 0.2) -> float:
    """Median seconds per call over ``repeat`` rounds of enough calls to last ``min_time``."""
    fn()
    t = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t, 1e-7)
    n = max(1, int(min_time / one))
    rounds = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - t) / n)
    return float(np.median(rounds))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="surrogate artifact dir (default: shipped e_coli_core)")
    ap.add_argument("--cobra-model", default="e_coli_core")
    ap.add_argument("--n-pfba", type=int, default=300, help="random points solved by pFBA (timing + accuracy)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, the fair single-core comparison)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--no-figures", action="store_true", help="skip the evaluation report (figures 2, 4, 6)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    sur = load_surrogate(args.model) if args.model else default_surrogate()
    model = load_model(args.cobra_model)
    X = random_test_points(sur, args.n_pfba, args.seed)

    # ---- pFBA, one point after the other (same points). The speed baseline is the fastest pFBA
    # (no tie-break stage); the accuracy reference is solved with the rule of the surrogate's
    # training data (for the shipped one the l2 tie-break, about 1.85x slower per point).
    def solve_all(settings):
        solver = PFBASolver(model, settings)
        solver.solve(X[0])
        t = time.perf_counter()
        pts = [solver.solve(x) for x in X]
        return (time.perf_counter() - t) / len(X), pts

    rule = sur.pfba_settings
    pfba_s, _ = solve_all(dataclasses.replace(rule, tie_break="none"))
    pfba_rule_s, pts = solve_all(rule)
    V = np.array([p.fluxes for p in pts])
    status = [p.status for p in pts]

    # ---- surrogate single point: numpy path, and torch path
    spec = sur.spec()
    x1 = X[0].copy()
    single_numpy = _time(lambda: spec.evaluate(x1), 7)
    single_predict = _time(lambda: sur.predict(x1), 7)
    mod = sur.module
    xt1 = torch.as_tensor(X[:1])

    def torch_single():
        with torch.inference_mode():
            mod(xt1)

    single_torch = _time(torch_single, 7)

    # ---- batches: float64 (predict), mixed and float32 fused modules; the unfactorised float64 for reference
    rng = np.random.default_rng(args.seed + 1)
    variants = ("float64", "mixed", "float32", "fused_float64", "unfactorised", "unfused_module")
    times: dict[str, dict[str, float]] = {v: {} for v in variants}
    modules = {
        "mixed": sur.fused("mixed"),
        "float32": sur.fused("float32"),
        "fused_float64": sur.fused("float64"),
        "unfactorised": FusedForward(spec, "float64", factorise=False).eval(),
        "unfused_module": mod,
    }
    outputs: dict[str, list[np.ndarray]] = {v: [] for v in ("float64", "mixed", "float32", "unfactorised")}
    for n in (1, 100, 10000):
        Xb = rng.uniform(sur.domain_low, sur.domain_high, size=(n, sur.n_inputs))
        xt = torch.as_tensor(Xb)
        inputs = {"float32": xt.float()}

        def run64(Xb=Xb):
            return sur.predict(Xb, check_domain=False)  # numpy for <= 64 points, fused float64 torch above

        def call(f, x):
            with torch.inference_mode():
                return f(x)

        times["float64"][str(n)] = _time(run64, 5) / n * 1e6
        for v, f in modules.items():
            x = inputs.get(v, xt)
            times[v][str(n)] = _time(lambda f=f, x=x: call(f, x), 5) / n * 1e6
        outputs["float64"].append(run64())
        for v in ("mixed", "float32", "unfactorised"):
            outputs[v].append(call(modules[v], inputs.get(v, xt)).double().numpy())
    V64 = {v: np.vstack(o) for v, o in outputs.items()}

    # ---- accuracy on the same random points (fresh pFBA)
    m = compute_metrics(sur, X, V)
    frange = np.maximum(m.flux_range, 1e-3)
    S = sur.stoichiometry

    def dev(v: str) -> float:
        return float(np.max(np.abs(V64[v] - V64["float64"]) / frange))

    pfba_us = pfba_s * 1e6
    best_single = min(single_numpy, single_torch) * 1e6
    batch, batch_mixed, batch32 = times["float64"], times["mixed"], times["float32"]
    result = {
        "model": sur.model_id,
        "surrogate": {
            "hidden": list(spec.hidden),
            "activation": spec.activation,
            "n_parameters": spec.n_parameters(),
            "n_fluxes": spec.n_outputs,
            "mass_balance": sur.settings.mass_balance,
            "output_rank": spec.output_rank,
            "factorised": spec.factorised,
            "factor_rtol": FACTOR_RTOL,
        },
        "n_points": len(X),
        "pfba_status_counts": {s: status.count(s) for s in sorted(set(status))},
        "pfba_ms_per_point": pfba_s * 1e3,
        "pfba_tie_break": "none",
        "reference_tie_break": rule.tie_break,
        "pfba_ms_per_point_reference_rule": pfba_rule_s * 1e3,
        "surrogate_us_single": best_single,
        "surrogate_us_single_numpy": single_numpy * 1e6,
        "surrogate_us_single_torch": single_torch * 1e6,
        "surrogate_us_single_predict_with_domain_check": single_predict * 1e6,
        "surrogate_us_per_point_batch": batch,
        "surrogate_us_per_point_batch_mixed": batch_mixed,
        "surrogate_us_per_point_batch_float32": batch32,
        "surrogate_us_per_point_batch_fused_float64": times["fused_float64"],
        "surrogate_us_per_point_batch_unfactorised": times["unfactorised"],
        "surrogate_us_per_point_batch_unfused_module": times["unfused_module"],
        "factorisation_speedup_batch": {k: times["unfactorised"][k] / v for k, v in times["fused_float64"].items()},
        "mass_balance_residual_batch": mass_balance_residual(S, V64["float64"]),
        "mass_balance_residual_mixed": mass_balance_residual(S, V64["mixed"]),
        "mass_balance_residual_float32": mass_balance_residual(S, V64["float32"]),
        "mass_balance_residual_unfactorised": mass_balance_residual(S, V64["unfactorised"]),
        "max_dev_frac_mixed": dev("mixed"),
        "max_dev_frac_float32": dev("float32"),
        "max_dev_frac_unfactorised": dev("unfactorised"),
        "throughput_points_per_s": {
            "pfba": 1.0 / pfba_s,
            **{f"surrogate_batch_{k}": 1e6 / v for k, v in batch.items()},
            **{f"surrogate_batch_{k}_mixed": 1e6 / v for k, v in batch_mixed.items()},
        },
        "speedup_single": pfba_us / best_single,
        "speedup_batch": {k: pfba_us / v for k, v in batch.items()},
        "speedup_batch_mixed": {k: pfba_us / v for k, v in batch_mixed.items()},
        "speedup_batch_float32": {k: pfba_us / v for k, v in batch32.items()},
        "speedup_batch_unfactorised": {k: pfba_us / v for k, v in times["unfactorised"].items()},
        "growth_max_abs_err_frac": m.growth_max_abs_err_frac,
        "worst_reaction": m.worst_reaction,
        "worst_reaction_max_err_frac": m.worst_reaction_max_err_frac,
        "median_r2": m.median_r2,
        "mass_balance_residual": m.mass_balance_residual,
        "mass_balance_residual_unprojected": m.mass_balance_residual_unprojected,
        "pfba_reference_mass_balance_residual": m.reference_mass_balance_residual,
        "targets": {"speedup_single": 39.0, "speedup_batch": 1000.0, **{k: v for k, v in m.targets_met().items()}},
        "paper_anchor": {"pfba_ms": 2.33, "surrogate_us": 60.0, "speedup": 39.0},
        "torch_threads": args.threads,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or platform.machine()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not args.no_figures:  # after every timing: the report solves and plots
        eval_dir = f"surrogate_{sur.model_id}_eval"
        report = write_report(sur, model, out.parent / eval_dir, n_points=1000, seed=1, pfba_settings=rule)
        result["report_test_1000"] = {
            k: report["test"][k]
            for k in (
                "growth_max_abs_err_frac",
                "worst_reaction",
                "worst_reaction_max_err_frac",
                "reactions_within_2pct",
                "points_within_2pct",
                "median_r2",
                "mass_balance_residual",
            )
        }
        result["figures"] = {k: f"{eval_dir}/{v}" for k, v in report["figures"].items()}
    out.write_text(json.dumps(result, indent=1))
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "pfba_ms_per_point",
                    "surrogate_us_single",
                    "surrogate_us_per_point_batch",
                    "surrogate_us_per_point_batch_mixed",
                    "surrogate_us_per_point_batch_float32",
                    "surrogate_us_per_point_batch_unfactorised",
                    "speedup_single",
                    "speedup_batch",
                    "speedup_batch_mixed",
                    "speedup_batch_float32",
                    "mass_balance_residual_mixed",
                    "mass_balance_residual_float32",
                    "max_dev_frac_mixed",
                    "max_dev_frac_float32",
                    "growth_max_abs_err_frac",
                    "worst_reaction_max_err_frac",
                    "mass_balance_residual",
                    "load_average",
                )
            },
            indent=1,
        )
    )
    return result


if __name__ == "__main__":
    main()
