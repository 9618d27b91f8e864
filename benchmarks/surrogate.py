"""Surrogate vs fast pFBA: time per point (single and batched) and accuracy, same run, same points.

Writes ``benchmarks/results/surrogate.json``. Usage::

    python benchmarks/surrogate.py [--model DIR] [--n-pfba 300] [--threads 1]

The pFBA baseline is :class:`mpc_bio.metabolism.pfba.PFBASolver` (HiGHS, warm-started, one
process) solving each random point in turn; the surrogate is the shipped default (or ``--model``).
Single-point evaluation uses the numpy path of ``MLPSpec.evaluate`` (no torch dispatch);
batches use ``Surrogate.predict`` (numpy up to 64 points, else ``Surrogate.fused``: scalings folded
into the layers, ``torch.inference_mode``, float64; the keys without suffix; mass balance ~1e-12) and float32 (``*_float32``; balances
only to ~1e-5), and the unfused ``Surrogate.module`` for reference.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mpc_bio.metabolism.models import load_model
from mpc_bio.metabolism.pfba import PFBASolver
from mpc_bio.surrogate import compute_metrics, default_surrogate, load_surrogate, mass_balance_residual
from mpc_bio.surrogate.analysis import random_test_points

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
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    sur = load_surrogate(args.model) if args.model else default_surrogate()
    model = load_model(args.cobra_model)
    X = random_test_points(sur, args.n_pfba, args.seed)

    # ---- pFBA, one point after the other (same points)
    solver = PFBASolver(model)
    solver.solve(X[0])
    t = time.perf_counter()
    pts = [solver.solve(x) for x in X]
    pfba_s = (time.perf_counter() - t) / len(X)
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

    # ---- batches: the fused float64 module (exact mass balance), float32 for reference
    rng = np.random.default_rng(args.seed + 1)
    batch, batch32, batch_module = {}, {}, {}
    f32 = sur.fused(torch.float32)
    residual32 = 0.0
    for n in (1, 100, 10000):
        Xb = rng.uniform(sur.domain_low, sur.domain_high, size=(n, sur.n_inputs))
        xt = torch.as_tensor(Xb)
        xt32 = xt.float()

        def run64(Xb=Xb):
            sur.predict(Xb, check_domain=False)  # numpy for <= 64 points, fused float64 torch above

        def run32(xt32=xt32):
            with torch.inference_mode():
                f32(xt32)

        def run_module(xt=xt):
            with torch.inference_mode():
                mod(xt)

        batch[str(n)] = _time(run64, 5) / n * 1e6
        batch32[str(n)] = _time(run32, 5) / n * 1e6
        batch_module[str(n)] = _time(run_module, 5) / n * 1e6
        with torch.inference_mode():
            residual32 = max(residual32, mass_balance_residual(sur.stoichiometry, f32(xt32).double().numpy()))

    # ---- accuracy on the same random points (fresh pFBA)
    m = compute_metrics(sur, X, V)
    pfba_us = pfba_s * 1e6
    best_single = min(single_numpy, single_torch) * 1e6
    result = {
        "model": sur.model_id,
        "surrogate": {"hidden": list(spec.hidden), "activation": spec.activation, "n_parameters": spec.n_parameters(),
                      "n_fluxes": spec.n_outputs, "mass_balance": sur.settings.mass_balance},
        "n_points": len(X),
        "pfba_status_counts": {s: status.count(s) for s in sorted(set(status))},
        "pfba_ms_per_point": pfba_s * 1e3,
        "pfba_tie_break": solver.settings.tie_break,
        "surrogate_us_single": best_single,
        "surrogate_us_single_numpy": single_numpy * 1e6,
        "surrogate_us_single_torch": single_torch * 1e6,
        "surrogate_us_single_predict_with_domain_check": single_predict * 1e6,
        "surrogate_us_per_point_batch": batch,
        "surrogate_us_per_point_batch_float32": batch32,
        "surrogate_us_per_point_batch_unfused_module": batch_module,
        "mass_balance_residual_float32": residual32,
        "throughput_points_per_s": {"pfba": 1.0 / pfba_s, **{f"surrogate_batch_{k}": 1e6 / v for k, v in batch.items()}},
        "speedup_single": pfba_us / best_single,
        "speedup_batch": {k: pfba_us / v for k, v in batch.items()},
        "speedup_batch_float32": {k: pfba_us / v for k, v in batch32.items()},
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
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or platform.machine()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("pfba_ms_per_point", "surrogate_us_single", "surrogate_us_per_point_batch",
                                            "speedup_single", "speedup_batch", "growth_max_abs_err_frac",
                                            "worst_reaction_max_err_frac", "mass_balance_residual")}, indent=1))
    return result


if __name__ == "__main__":
    main()
