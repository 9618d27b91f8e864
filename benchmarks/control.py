"""Control-stage benchmark on the default closed-loop scenario, everything measured in one run.

Writes ``benchmarks/results/control.json``. Usage::

    python benchmarks/control.py [--scenario scenarios/closed_loop_mpc.toml] [--surrogate DIR]
                                 [--backends native_distilled,native,native_mx,l4casadi,network,network_l4casadi,network_taylor]
                                 [--steps 20] [--torch-threads 1] [--mismatch 0.75,1.4]
                                 [--estimators ekf,mhe]

Records are merged into the output file: a new record replaces the old one with the same model,
backend, estimator, plant and kind of run; the others are kept. So one scenario at a time (e.g.
``--scenario scenarios/closed_loop_ich360.toml --backends native_distilled,network --mismatch ''``),
or only some cases (``--backends '' --estimators mhe`` reruns the MHE mismatch records). Each
model's run settings are under ``runs[model]``; its targets are evaluated on its merged records.

Figures (same scenario, same run):

* offline optimum (direct collocation), checked on a fine grid against the limits
  (``offline_max_violation_frac``), and the tuned constant and exponential feeds;
* one record per (model, backend) in ``records`` (``run = "backends"``): the scenario's closed
  loop (its plant, with the scenario's Vmax scale when ``[closed_loop] plant = "perturbed"``,
  recorded as ``plant_vmax_scale``; the full surrogate as a native SX graph; same measurements,
  same estimator, same initial guess) over the **same number of MPC steps** for every backend (``--steps``, default the whole batch); MPC step
  wall time (median, p95) and CPU time of the process over the step (``mpc_step_cpu_ms_median``:
  every thread counted, libtorch's included, and less disturbed than wall time by other processes
  on the cores; the load average is recorded), IPOPT iterations, solver failures, and
  ``closed_loop_vs_offline`` (against the plant's offline optimum) when the window covers the
  batch, the estimator and its solver statuses, ``vmax_est_rel_err`` when it estimates Vmax. Backends: ``native_distilled``
  (do-mpc on the scenario's B-spline distillation of the native graph), ``native`` (do-mpc on the
  full network, SX graph), ``native_mx`` (full network, MX graph), ``l4casadi`` (full network,
  l4casadi external, MX), ``network`` (``[mpc] backend = "network"``: the network itself, one
  batched torch call per NLP evaluation; the estimator keeps the scenario's control model),
  ``network_l4casadi`` (the same NLP with that batched call compiled by L4CasADi,
  ``[mpc] network_evaluator = "l4casadi"``), ``network_taylor`` (``[mpc] backend = "network_taylor"``: the
  same NLP on per-point Taylor models of the network, re-linearised until the step converges;
  ``outer_iterations_median``, ``outer_iterations_max`` and ``outer_not_converged`` count the re-linearisations),
  ``network_taylor_rti`` (the same with one solve per step on first-order models, ``taylor_max_iter = 1``);
* mismatch records (``run = "mismatch"``): the default backend with the estimator estimating the
  glucose Vmax on plants whose Vmax is scaled (``--mismatch``), per estimator (``--estimators``): failures,
  ``vmax_est_rel_err`` at the end, and the objective against the offline optimum of the true
  plant (``closed_loop_vs_offline``; None when that optimum breaks a limit).

``--torch-threads n`` pins torch's intra-op threads (for the l4casadi backend; libtorch's own
thread pool beside IPOPT costs several times the CPU time of the work); the network backend pins
them itself (``[mpc] torch_threads``, default 1).
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
BACKENDS = {
    # name: (surrogate backend, symbolic, distill, MPC backend); None: the scenario's
    "native_distilled": ("native", "SX", True, "do-mpc"),
    "native": ("native", "SX", False, "do-mpc"),
    "native_mx": ("native", "MX", False, "do-mpc"),
    "l4casadi": ("l4casadi", "MX", False, "do-mpc"),
    "network": (None, None, None, "network"),
    "network_l4casadi": (None, None, None, {"backend": "network", "network_evaluator": "l4casadi"}),
    "network_taylor": (None, None, None, "network_taylor"),
    "network_taylor_rti": (None, None, None, {"backend": "network_taylor", "taylor_max_iter": 1}),
}


def _setup(data, backend: str, surrogate: str | None, out: Path, estimator: dict | None = None):
    from mpc_bio.scenarios.control import load_control_setup

    be, sym, distill, mpc_backend = BACKENDS[backend]
    d = copy.deepcopy(data)
    for k in ("kind", "name", "description"):
        d.pop(k, None)
    if distill is not None:
        d.setdefault("control_model", {})["distill"] = distill
    sur = d.setdefault("surrogate", {})
    if surrogate:
        sur["artifact"] = surrogate
    if be is not None:
        sur["backend"], sur["symbolic"] = be, sym
        d.setdefault("mpc", {})["symvar"] = sym
    d.setdefault("mpc", {}).update(mpc_backend if isinstance(mpc_backend, dict) else {"backend": mpc_backend})
    if estimator:
        d.setdefault("estimator", {}).update(estimator)
    return load_control_setup(Path("benchmark"), d, out, progress=False)


def _step_stats(res) -> dict:
    ms = res.step_times_ms()
    cpu = res.step_cpu_times_ms()
    ipopt_cpu = np.array([r.solver_cpu_time * 1e3 for r in res.mpc_records])
    out = {
        "mpc_step_ms_median": float(np.median(ms)),
        "mpc_step_cpu_ms_median": float(np.median(cpu)),
        "mpc_step_ms_p95": float(np.percentile(ms, 95)),
        "ipopt_cpu_ms_median": float(np.nanmedian(ipopt_cpu)),
        "mpc_iterations_median": float(np.median([r.iterations for r in res.mpc_records])),
        "mpc_steps": len(res.mpc_records),
        "solver_failures": res.solver_failures,
        "failed_steps": [[round(r.time, 3), r.status] for r in res.mpc_records if not r.success],
        "retried_steps": sum(1 for r in res.mpc_records if getattr(r, "retried", False)),
    }
    if res.mpc_records and hasattr(res.mpc_records[0], "outer_iterations"):  # network_taylor: re-linearisations per step
        outer = [r.outer_iterations for r in res.mpc_records]
        out.update(
            {
                "outer_iterations_median": float(np.median(outer)),
                "outer_iterations_max": int(max(outer)),
                "outer_not_converged": sum(1 for r in res.mpc_records if not r.outer_converged),
            }
        )
    return out


def _record_key(r: dict) -> tuple:
    """What a record measures: a newer record with the same key replaces it."""
    run = r.get("run") or ("mismatch" if _old_mismatch(r) else "backends")
    if run == "backends":  # one per (model, backend): the scenario's closed loop
        return (r.get("model"), r.get("backend"), run)
    return (r.get("model"), r.get("backend"), r.get("estimator"), r.get("plant_vmax_scale"), run)


def _old_mismatch(r: dict) -> bool:
    """Records written before ``run`` existed: mismatch records were the ones with a plant scale."""
    return r.get("plant_vmax_scale") is not None


def _scenario_scale(setup) -> float | None:
    """The scenario plant's Vmax scale (None for the nominal plant)."""
    cl = setup.closed_loop
    if cl.plant != "perturbed":
        return None
    return float(dict(cl.plant_parameter_scale).get(setup.model.roles.vmax, 1.0))


def _plant(setup, scale: float = 1.0):
    from mpc_bio.control.closed_loop import IntegratorPlant

    p = setup.model.params_with({setup.model.roles.vmax: scale}) if scale != 1.0 else setup.model.param_values
    return IntegratorPlant(setup.model, p, setup.mpc.t_step, setup.closed_loop.plant_substeps)


def _ratio(objective, off, problem):
    if off is None or off.max_violation_frac > problem.constraint_tolerance:
        return None
    return float(objective / off.simulated.objective)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "closed_loop_mpc.toml"))
    ap.add_argument("--surrogate", default=None, help="surrogate artifact directory (default: the scenario's)")
    ap.add_argument("--backends", default="native_distilled,native,native_mx,l4casadi,network,network_l4casadi,network_taylor")
    ap.add_argument("--steps", type=int, default=None, help="MPC steps per backend, the same for all (default: the whole batch)")
    ap.add_argument("--torch-threads", type=int, default=None, help="pin torch's intra-op threads (l4casadi backend)")
    ap.add_argument("--mismatch", default="0.75,1.4", help="plant Vmax scales of the mismatch runs ('' for none)")
    ap.add_argument("--estimators", default="ekf,mhe", help="estimators of the mismatch runs (ekf, mhe)")
    ap.add_argument("--mismatch-backend", default=None, help="backend of the mismatch runs (default: the scenario's)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore")
    from mpc_bio.control.baselines import tune_constant_feed, tune_exponential_feed
    from mpc_bio.scenarios.control import _offline, offline_feed_at_steps

    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    data = tomllib.loads(Path(args.scenario).read_text())
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "mpc_bio_control_bench"
    tmp.mkdir(parents=True, exist_ok=True)
    scen = Path(args.scenario).resolve()
    result: dict = {
        "scenario": str(scen.relative_to(ROOT)) if scen.is_relative_to(ROOT) else str(scen),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_start": os.getloadavg()[0],
        "torch_threads": args.torch_threads,
    }
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise SystemExit(f"--backends: unknown backend(s) {unknown}; expected some of {sorted(BACKENDS)}.")
    if data.get("mpc", {}).get("backend") in ("network", "network_taylor"):
        default = data["mpc"]["backend"]
    else:
        default = "native_distilled" if data.get("control_model", {}).get("distill", False) else "native"
    setup = _setup(data, default, args.surrogate, tmp)
    model_name = data.get("model", {}).get("name", "custom")
    oxygen = setup.reactor.kinetics.oxygen
    n_batch = int(round(setup.problem.batch_time / setup.mpc.t_step))
    steps = n_batch if args.steps is None else min(int(args.steps), n_batch)
    result.update(
        {
            "model": model_name,
            "default_backend": default,
            "oxygen_mode": oxygen,
            "surrogate": setup.surrogate_how,
            "n_horizon": setup.mpc.n_horizon,
            "collocation_deg": setup.mpc.collocation_deg,
            "t_step_h": setup.mpc.t_step,
            "mpc_steps_per_backend": steps,
            "control_model": setup.extra["control_model"],
            "distill_max_rel_error": setup.extra.get("distill_max_rel_error"),
        }
    )

    t = time.perf_counter()
    off = _offline(setup)
    result["offline_s"] = time.perf_counter() - t
    bs = setup.baselines
    const = tune_constant_feed(setup.model, setup.problem, setup.x0, bs)
    expo = tune_exponential_feed(setup.model, setup.problem, setup.x0, bs)
    o = off.simulated.objective
    result.update(
        {
            "offline_model": setup.offline.model,
            "offline_objective": o,
            "offline_status": off.status,
            "offline_kkt": off.kkt,
            "offline_max_violation_frac": off.max_violation_frac,
            "offline_backoff": off.backoff,
            "offline_rounds": off.rounds,
            "exp_feed_objective": expo.objective,
            "exp_feed_best_mu_per_h": expo.parameter,
            "const_feed_objective": const.objective,
            "const_feed_best_L_per_h": const.parameter,
            "offline_vs_exp_margin": (o - expo.objective) / abs(expo.objective),
            "offline_vs_const_margin": (o - const.objective) / abs(const.objective),
        }
    )
    guess = offline_feed_at_steps(off, setup.mpc)
    plant_scale = _scenario_scale(setup)  # the scenario's plant (None: nominal)
    off_plant = off
    off_by_scale = {1.0: off}
    if plant_scale is not None:
        off_plant = off_by_scale[plant_scale] = _offline(setup, params=setup.model.params_with({setup.model.roles.vmax: plant_scale}))
        result["plant_offline_objective"] = off_plant.simulated.objective
        result["plant_offline_max_violation_frac"] = off_plant.max_violation_frac

    from mpc_bio.control.closed_loop import run_closed_loop
    from mpc_bio.control.network_mpc import build_network_mpc

    def closed_loop(sb, scale=1.0, n=None):
        mpc = build_network_mpc(sb.reactor, sb.surrogate, sb.problem, sb.mpc) if sb.mpc.backend in ("network", "network_taylor") else None
        return run_closed_loop(
            sb.control,
            sb.problem,
            sb.x0,
            mpc=mpc,
            mpc_settings=sb.mpc,
            estimator_settings=sb.estimator,
            measurement_settings=sb.measurements,
            settings=sb.closed_loop,
            n_steps=n,
            plant=_plant(setup, scale),
            guess_feed=guess,
        )

    def estimator_fields(res, s=None) -> dict:
        s = s or res.summary(setup.extra["rmse_after"])
        return {
            "vmax_est_rel_err": res.info.get("vmax_est_rel_err"),
            "vmax_estimate_final": res.info.get("vmax_estimate_final"),
            "vmax_plant": res.info.get("vmax_plant"),
            "est_rmse": s["est_rmse"],
            "estimator_solves": s["estimator_solves"],
            "estimator_statuses": s["estimator_statuses"],
            "estimator_failures": s["estimator_failures"],
        }

    def cap_fields(res) -> dict:
        """The robust feed cap (MPCSettings.robust_std): its CPU time per step, beside the MPC's, and the steps it cut."""
        return {
            "feed_cap_cpu_ms_median": res.info.get("feed_cap_cpu_ms_median"),
            "capped_feeds": len(res.info.get("capped_feeds") or []),
        }

    records = []
    for b in backends:
        rec = {
            "model": model_name,
            "backend": b,
            "run": "backends",
            "oxygen_mode": oxygen,
            "estimator": setup.estimator.kind,
            "estimate_vmax": setup.estimator.estimate_vmax,
            "plant_vmax_scale": plant_scale,
        }
        try:
            t = time.perf_counter()
            sb = setup if b == default else _setup(data, b, args.surrogate, tmp)
            rec["build_s"] = time.perf_counter() - t
            res = closed_loop(sb, plant_scale or 1.0, n=steps)
            rec.update(_step_stats(res))
            rec["closed_loop_objective"] = res.objective if steps == n_batch else None
            rec["closed_loop_vs_offline"] = _ratio(res.objective, off_plant, setup.problem) if steps == n_batch else None
            rec["offline_max_violation_frac"] = off_plant.max_violation_frac
            rec["closed_loop_violation"] = res.violation
            rec.update(estimator_fields(res))
            rec.update(cap_fields(res))
            rec["control_model"] = sb.extra["control_model"]
        except Exception as exc:  # a backend that cannot run here is reported, not hidden
            rec["error"] = f"{type(exc).__name__}: {exc}"[:500]
        rec["load_average"] = os.getloadavg()[0]
        records.append(rec)
        print(json.dumps(rec, default=float), flush=True)

    scales = [float(v) for v in args.mismatch.split(",") if v.strip()]
    estimators = [e.strip() for e in args.estimators.split(",") if e.strip()]
    mismatch_backend = args.mismatch_backend or default
    if mismatch_backend not in BACKENDS:
        raise SystemExit(f"--mismatch-backend: unknown backend {mismatch_backend!r}; expected one of {sorted(BACKENDS)}.")
    for est in estimators:
        sb = _setup(data, mismatch_backend, args.surrogate, tmp, estimator={"kind": est, "estimate_vmax": True})
        for scale in scales:
            rec = {
                "model": model_name,
                "backend": mismatch_backend,
                "run": "mismatch",
                "oxygen_mode": oxygen,
                "estimator": est,
                "estimate_vmax": True,
                "plant_vmax_scale": scale,
            }
            try:
                if scale not in off_by_scale:  # each plant's offline optimum solved once
                    off_by_scale[scale] = _offline(setup, params=setup.model.params_with({setup.model.roles.vmax: scale}))
                off_p = off_by_scale[scale]
                res = closed_loop(sb, scale, n=steps)
                rec.update(_step_stats(res))
                rec["closed_loop_objective"] = res.objective if steps == n_batch else None
                rec["closed_loop_vs_offline"] = _ratio(res.objective, off_p, setup.problem) if steps == n_batch else None
                rec["offline_max_violation_frac"] = off_p.max_violation_frac
                rec["closed_loop_violation"] = res.violation
                rec.update(estimator_fields(res))
                rec.update(cap_fields(res))
            except Exception as exc:
                rec["error"] = f"{type(exc).__name__}: {exc}"[:500]
            rec["load_average"] = os.getloadavg()[0]
            records.append(rec)
            print(json.dumps(rec, default=float), flush=True)

    out = Path(args.out)
    old = json.loads(out.read_text()) if out.is_file() else {}
    new_keys = {_record_key(r) for r in records}
    kept = [r for r in old.get("records", []) if _record_key(r) not in new_keys]
    for r in kept:  # records written before "run" existed
        r.setdefault("run", _record_key(r)[-1])
    mine = [r for r in kept if r.get("model") == model_name] + records  # this model's merged records
    nominal = {r["backend"]: r for r in mine if r.get("run") == "backends" and "mpc_step_cpu_ms_median" in r}
    if nominal:
        fastest = min(v["mpc_step_cpu_ms_median"] for v in nominal.values())
        for b, r in nominal.items():
            r["cpu_vs_fastest"] = r["mpc_step_cpu_ms_median"] / fastest
    d = nominal.get(default, {})
    # the network-in-the-loop designs: the fastest one whose closed loop meets the targets (no solver failure, >= 97 %
    # of the offline optimum when the window covers the batch) counts; the fastest of all when none does
    nets = [nominal[b] for b in ("network", "network_taylor", "network_taylor_rti") if b in nominal]
    good = [r for r in nets if r.get("solver_failures") == 0 and (r.get("closed_loop_vs_offline") or 1.0) >= 0.97]
    net = min(good or nets, key=lambda r: r["mpc_step_cpu_ms_median"]) if nets else {}
    l4c = [b for b in ("l4casadi", "network_l4casadi") if b in nominal]  # the two l4casadi designs
    step_target = {"e_coli_core": 50.0, "iCH360": 200.0}.get(model_name)
    mism = [r for r in mine if r.get("run") == "mismatch"]
    result["load_average_end"] = os.getloadavg()[0]
    result["targets"] = {
        "network_step_cpu_ms_target": step_target,
        "network_backend": net.get("backend"),
        "network_step_cpu_within_target": (net.get("mpc_step_cpu_ms_median", np.inf) <= step_target) if step_target and net else None,
        "network_within_2x_fastest": (net["cpu_vs_fastest"] <= 2.0) if net else None,
        "closed_loop_vs_offline_ge_0.97": (d.get("closed_loop_vs_offline") or 0.0) >= 0.97,
        "no_solver_failures": all(r.get("solver_failures", 1) == 0 for r in mine if "error" not in r),
        "offline_max_violation_le_0.005": off.max_violation_frac <= 0.005,
        "vmax_est_within_5pct": all(
            (r.get("vmax_est_rel_err") if r.get("vmax_est_rel_err") is not None else 1.0) <= 0.05
            for r in mine
            if r.get("run") == "mismatch" or r.get("estimate_vmax")
        )
        if mism or any(r.get("estimate_vmax") for r in mine)
        else None,
        "l4casadi_within_2x_fastest": (min(nominal[b]["cpu_vs_fastest"] for b in l4c) <= 2.0) if l4c else None,
        "offline_beats_exp": result["offline_vs_exp_margin"] > 0,
    }
    runs = {**old.get("runs", {})}
    runs[model_name] = {**runs.get(model_name, {}), **result}
    # top level: the main job's (e_coli_core) run settings, as before; every model's under runs
    total = {**runs.get("e_coli_core", result), "runs": runs}
    total["records"] = [r for r in kept if r.get("model") in runs] + records
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(total, indent=2, default=float))
    print(json.dumps(result["targets"], indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
