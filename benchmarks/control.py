"""Control-stage benchmark on the default closed-loop scenario, everything measured in one run.

Writes ``benchmarks/results/control.json``. Usage::

    python benchmarks/control.py [--scenario scenarios/closed_loop_mpc.toml] [--surrogate DIR]
                                 [--backends native,native_mx,l4casadi] [--l4casadi-steps 6]

Figures (same scenario, same run):

* offline optimum (direct collocation) and the tuned constant and exponential feeds, simulated
  on the same model with the same limits (``offline_vs_exp_margin``, ``offline_vs_const_margin``);
* the nominal closed loop with the default backend (MPC fed by the EKF): objective,
  ``closed_loop_vs_offline``, solver failures, estimation RMSE after ``rmse_after`` h against the
  measurement noise;
* MPC step time of the scenario's control model (by default the B-spline distillation of the
  native surrogate, :mod:`mpc_bio.control.distill`) and, as the reference in the same run, of
  the full network per embedding backend: native SX, native MX, l4casadi (MX, a few steps only):
  median and p95 of the wall time, and IPOPT's CPU time, which other processes competing for the
  cores disturb less (the load average is recorded).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "control.json"


def _setup(data, backend: str, surrogate: str | None, out: Path, distill: bool | None = None):
    from mpc_bio.scenarios.control import load_control_setup

    d = copy.deepcopy(data)
    if distill is not None:
        d.setdefault("control_model", {})["distill"] = distill
    d.pop("kind", None), d.pop("name", None), d.pop("description", None)
    sur = d.setdefault("surrogate", {})
    if surrogate:
        sur["artifact"] = surrogate
    if backend == "native_mx":
        sur["backend"], sur["symbolic"] = "native", "MX"
        d.setdefault("mpc", {})["symvar"] = "MX"
    elif backend == "l4casadi":
        sur["backend"], sur["symbolic"] = "l4casadi", "MX"
        d.setdefault("mpc", {})["symvar"] = "MX"
    else:
        sur["backend"], sur["symbolic"] = "native", "SX"
    return load_control_setup(Path("benchmark"), d, out, progress=False)


def _step_stats(res) -> dict:
    ms = res.step_times_ms()
    cpu = np.array([r.solver_cpu_time * 1e3 for r in res.mpc_records])
    return {
        "mpc_step_ms_median": float(np.median(ms)),
        "mpc_step_ms_p95": float(np.percentile(ms, 95)),
        "mpc_step_cpu_ms_median": float(np.nanmedian(cpu)),
        "mpc_iterations_median": float(np.median([r.iterations for r in res.mpc_records])),
        "mpc_steps": len(res.mpc_records),
        "solver_failures": res.solver_failures,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "closed_loop_mpc.toml"))
    ap.add_argument("--surrogate", default=None, help="surrogate artifact directory (default: the scenario's)")
    ap.add_argument("--backends", default="native,native_mx,l4casadi")
    ap.add_argument("--l4casadi-steps", type=int, default=3, help="closed-loop steps timed with l4casadi (slow)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore")
    from mpc_bio.control.baselines import tune_constant_feed, tune_exponential_feed
    from mpc_bio.control.closed_loop import run_closed_loop
    from mpc_bio.control.offline import optimize_feed_profile

    data = tomllib.loads(Path(args.scenario).read_text())
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "mpc_bio_control_bench"
    tmp.mkdir(parents=True, exist_ok=True)
    result: dict = {
        "scenario": str(Path(args.scenario).relative_to(ROOT) if Path(args.scenario).is_absolute() else args.scenario),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_start": os.getloadavg()[0],
    }
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    default = "native"
    setup = _setup(data, default, args.surrogate, tmp)
    result["backend"] = default
    result["surrogate"] = setup.surrogate_how
    result["n_horizon"] = setup.mpc.n_horizon
    result["collocation_deg"] = setup.mpc.collocation_deg
    result["t_step_h"] = setup.mpc.t_step

    t = time.perf_counter()
    off = optimize_feed_profile(setup.model, setup.problem, setup.x0, setup.offline)
    result["offline_s"] = time.perf_counter() - t
    bs = setup.baselines
    const = tune_constant_feed(setup.model, setup.problem, setup.x0, bs)
    expo = tune_exponential_feed(setup.model, setup.problem, setup.x0, bs)
    o = off.simulated.objective
    result.update(
        {
            "offline_objective": o,
            "offline_status": off.status,
            "offline_kkt": off.kkt,
            "offline_violation": off.simulated.violation,
            "exp_feed_objective": expo.objective,
            "exp_feed_best_mu_per_h": expo.parameter,
            "const_feed_objective": const.objective,
            "const_feed_best_L_per_h": const.parameter,
            "offline_vs_exp_margin": (o - expo.objective) / abs(expo.objective),
            "offline_vs_const_margin": (o - const.objective) / abs(const.objective),
        }
    )

    from mpc_bio.control.closed_loop import IntegratorPlant
    from mpc_bio.scenarios.control import offline_feed_at_steps

    guess = offline_feed_at_steps(off, setup.mpc)
    result["control_model"] = setup.extra["control_model"]
    result["distill_max_rel_error"] = setup.extra.get("distill_max_rel_error")
    res = setup.run_closed_loop(IntegratorPlant(setup.model, setup.model.param_values, setup.mpc.t_step, setup.closed_loop.plant_substeps), guess)
    rmse_after = setup.extra["rmse_after"]
    s = res.summary(rmse_after)
    noise = s["measurement_noise_std"]
    result.update(
        {
            "closed_loop_objective": res.objective,
            "closed_loop_vs_offline": res.objective / o,
            "closed_loop_violation": res.violation,
            "constraint_tolerance": setup.problem.constraint_tolerance,
            "estimator": setup.estimator.kind,
            "est_rmse_after_h": rmse_after,
            "est_rmse_biomass": s["est_rmse"].get("biomass"),
            "est_rmse_glucose": s["est_rmse"].get("glucose"),
            "est_rmse_volume": s["est_rmse"].get("volume"),
            "noise_std_biomass": noise.get("biomass"),
            "noise_std_glucose": noise.get("glucose"),
            "est_rmse_biomass_vs_noise": s["est_rmse"].get("biomass", np.nan) / noise.get("biomass", np.nan),
            "est_rmse_glucose_vs_noise": s["est_rmse"].get("glucose", np.nan) / noise.get("glucose", np.nan),
            "estimator_ms_median": s["estimator_ms_median"],
            **_step_stats(res),
        }
    )

    label = "native_distilled" if "B-spline" in setup.extra["control_model"] else "native_full"
    per_backend = {label: {**_step_stats(res), "closed_loop_objective": res.objective}}
    variants = {"native": ("native", False), "native_mx": ("native_mx", False), "l4casadi": ("l4casadi", False)}
    for b in backends:
        if b not in variants:
            per_backend[b] = {"error": f"unknown backend {b!r}"}
            continue
        be, distill = variants[b]
        key = f"{b}_full"
        try:
            t = time.perf_counter()
            sb = _setup(data, be, args.surrogate, tmp, distill=distill)
            build = time.perf_counter() - t
            n = args.l4casadi_steps if b == "l4casadi" else None
            rb = run_closed_loop(
                sb.control, sb.problem, sb.x0, mpc_settings=sb.mpc, estimator_settings=sb.estimator,
                measurement_settings=sb.measurements, settings=sb.closed_loop, n_steps=n,
                plant=IntegratorPlant(setup.model, setup.model.param_values, setup.mpc.t_step, setup.closed_loop.plant_substeps),
                guess_feed=guess,
            )
            per_backend[key] = {**_step_stats(rb), "build_s": build}
            if n is None:
                per_backend[key]["closed_loop_objective"] = rb.objective
                per_backend[key]["closed_loop_vs_offline"] = rb.objective / o
        except Exception as exc:  # a backend that cannot run here is reported, not hidden
            per_backend[key] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    result["per_backend"] = per_backend
    for b, v in per_backend.items():
        if "mpc_step_ms_median" in v:
            result[f"mpc_step_ms_median_{b}"] = v["mpc_step_ms_median"]
            result[f"mpc_step_cpu_ms_median_{b}"] = v["mpc_step_cpu_ms_median"]
    ref = result.get("mpc_step_cpu_ms_median_native_full")
    if ref:
        for b in ("native_distilled", "native_mx_full", "l4casadi_full"):
            if f"mpc_step_cpu_ms_median_{b}" in result:
                result[f"{b}_vs_native_full_cpu_ratio"] = result[f"mpc_step_cpu_ms_median_{b}"] / ref
    result["load_average_end"] = os.getloadavg()[0]
    result["targets"] = {
        "mpc_step_ms_median_le_100": result["mpc_step_ms_median"] <= 100.0,
        "mpc_step_cpu_ms_median_le_100": result["mpc_step_cpu_ms_median"] <= 100.0,
        "closed_loop_vs_offline_ge_0.97": result["closed_loop_vs_offline"] >= 0.97,
        "offline_beats_exp": result["offline_vs_exp_margin"] > 0,
        "offline_beats_const": result["offline_vs_const_margin"] > 0,
        "est_rmse_below_noise": result["est_rmse_biomass_vs_noise"] < 1 and result["est_rmse_glucose_vs_noise"] < 1,
        "no_violation_beyond_tolerance": result["closed_loop_violation"] <= setup.problem.constraint_tolerance,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=float))
    print(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
