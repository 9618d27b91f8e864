"""NOMAD ensemble throughput: sampling, linear screening (stages i-ii) and MCA, one core vs all cores.

Same run, same models. The batched path (one CasADi graph mapped over models, numpy-batched
eigenvalues and solves) is compared with a per-model loop over the same functions (the baseline:
what a model-by-model implementation costs) on a subset. "One core" is one process with BLAS
limited to one thread; "all cores" is ``ExecutorSettings(n_workers=os.cpu_count())`` (local
processes). Also reports the wall time of the target: N models sampled, linearly screened and
analysed (control coefficients of the stable models) with all cores.

Run:  .venv/bin/python benchmarks/nomad_ensemble.py [--n-models 10000] [--baseline-models 200]
Writes benchmarks/results/nomad_ensemble.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mpc_bio.nomad import (  # noqa: E402
    ExecutorSettings,
    SamplingSettings,
    analyse_conservation,
    build_network,
    compute_control_coefficients,
    compute_control_coefficients_parallel,
    evaluate_rate_jacobian,
    kinetic_functions,
    sample_ensemble,
    sample_reference_states,
)
from mpc_bio.nomad.screening import (  # noqa: E402
    doubling_time,
    linearize_parallel,
    screen_linear_stability,
    screen_time_constants,
)

OUT = ROOT / "benchmarks" / "results" / "nomad_ensemble.json"


def _linear_screen(ens, executor):
    lin = linearize_parallel(ens, executor)
    stable = screen_linear_stability(lin)
    fast = screen_time_constants(lin, stable, 0.2 * doubling_time(ens))
    return lin, stable, fast


def _per_model_loop(ens, index):
    """Baseline: one model at a time (single CasADi call, one eig, one solve per model)."""
    net = ens.network
    cons = analyse_conservation(net)
    fns = kinetic_functions(net)
    Nr, L = cons.reduced_stoichiometry, cons.link
    x, xf, K, lk, vm = ens.parameters(index)
    t0 = time.perf_counter()
    maxre = []
    for k in range(len(index)):
        E = np.asarray(fns.rate_jacobian(x[k], xf, K[k], lk[k], vm[k]))
        maxre.append(np.linalg.eigvals(Nr @ E @ L / ens.cell_volume).real.max())
    t_lin = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k in range(len(index)):
        E = np.asarray(fns.rate_jacobian(x[k], xf, K[k], lk[k], vm[k]))
        dx = -L @ np.linalg.solve(Nr @ E @ L, Nr * net.fluxes[None, :])
        _ = np.eye(net.n_reactions) + (E @ dx) / net.fluxes[:, None]
    t_mca = time.perf_counter() - t0
    return np.array(maxre), t_lin, t_mca


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-models", type=int, default=10000)
    ap.add_argument("--baseline-models", type=int, default=200)
    ap.add_argument("--n-states", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n_cores = os.cpu_count() or 1
    one = ExecutorSettings(n_workers=1, chunk_size=1000, progress=False)
    allc = ExecutorSettings(n_workers=n_cores, chunk_size=max(100, args.n_models // (2 * n_cores)), progress=False)

    t0 = time.perf_counter()
    net = build_network()
    t_network = time.perf_counter() - t0
    kinetic_functions(net)  # build the CasADi graph once (also inherited by forked workers)

    t0 = time.perf_counter()
    states = sample_reference_states(net, n_states=args.n_states, seed=args.seed)
    ens = sample_ensemble(net, states, SamplingSettings(n_models=args.n_models, seed=args.seed))
    t_sampling = time.perf_counter() - t0

    t0 = time.perf_counter()
    lin1, stable1, fast1 = _linear_screen(ens, one)
    t_lin_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    lin, stable, fast = _linear_screen(ens, allc)
    t_lin_all = time.perf_counter() - t0
    assert np.array_equal(stable1, stable) and np.array_equal(fast1, fast)

    t0 = time.perf_counter()
    cc1 = compute_control_coefficients_parallel(ens, stable, one)
    t_mca_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    cc = compute_control_coefficients_parallel(ens, stable, allc)
    t_mca_all = time.perf_counter() - t0
    assert np.allclose(cc1.flux, cc.flux, rtol=1e-12, atol=1e-12)

    # baseline: per-model loop on a subset of the stable models; agreement with the batched path
    sub = stable[: args.baseline_models]
    maxre_loop, t_lin_loop, t_mca_loop = _per_model_loop(ens, sub)
    pos = {m: k for k, m in enumerate(lin.model_index)}
    lin_agree = float(np.abs(maxre_loop - lin.max_real[[pos[m] for m in sub]]).max() / np.abs(lin.max_real[[pos[m] for m in sub]]).max())
    t0 = time.perf_counter()
    _ = compute_control_coefficients(ens, sub)
    t_mca_batched_sub = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluate_rate_jacobian(net, *ens.parameters(sub))
    t_jac_batched_sub = time.perf_counter() - t0

    summation = float(np.abs(cc.flux.sum(axis=2) - 1).max())
    target_s = t_sampling + t_lin_all + t_mca_all
    result = {
        "n_reactions": net.n_reactions,
        "n_metabolites": net.n_metabolites,
        "n_fixed_metabolites": net.n_fixed,
        "n_independent_metabolites": analyse_conservation(net).rank,
        "n_kinetic_parameters": net.n_slots + 2 * net.n_reactions,
        "n_models": args.n_models,
        "n_cores": n_cores,
        "models_per_s_sampling": args.n_models / t_sampling,
        "models_per_s_sampling_note": "vectorised in one process (one core); the all-cores figure is the same path",
        "models_per_s_sampling_one_core": args.n_models / t_sampling,
        "models_per_s_linear_screen": args.n_models / t_lin_all,
        "models_per_s_linear_screen_one_core": args.n_models / t_lin_one,
        "models_per_s_mca": stable.size / t_mca_all,
        "models_per_s_mca_one_core": stable.size / t_mca_one,
        "n_stable": int(stable.size),
        "n_time_constant_pass": int(fast.size),
        "seconds": {
            "network": t_network,
            "sampling": t_sampling,
            "linear_screen_one_core": t_lin_one,
            "linear_screen_all_cores": t_lin_all,
            "mca_one_core": t_mca_one,
            "mca_all_cores": t_mca_all,
        },
        "target_sample_screen_mca_seconds_all_cores": target_s,
        "target_met_10k_in_600s": bool(args.n_models >= 10000 and target_s < 600),
        "baseline_per_model_loop": {
            "n_models": int(sub.size),
            "models_per_s_linear_screen": sub.size / t_lin_loop,
            "models_per_s_mca": sub.size / t_mca_loop,
            "batched_jacobian_s": t_jac_batched_sub,
            "batched_mca_s": t_mca_batched_sub,
            "speedup_linear_screen_one_core": (args.n_models / t_lin_one) / (sub.size / t_lin_loop),
            "speedup_mca_one_core": (stable.size / t_mca_one) / (sub.size / t_mca_loop),
            "max_rel_diff_max_real_eigenvalue": lin_agree,
        },
        "summation_theorem_max_error": summation,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
