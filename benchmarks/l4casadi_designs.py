"""The network in the MPC loop: native graph vs Taylor models (design a) vs a batched collocation NLP (design b).

Writes ``benchmarks/results/l4casadi_designs.json``. Usage::

    python benchmarks/l4casadi_designs.py [--models e_coli_core,iCH360] [--steps 10]
                                          [--designs native_sx,taylor2,batched] [--guess-dir DIR]

For each model the problem is the fed-batch of ``scenarios/closed_loop_mpc.toml`` (reactor,
kinetics, limits, MPC settings) with the full shipped surrogate, state feedback from a CVODES
plant of the same model (no estimator: only the controller is timed), the same number of steps
for every design, torch pinned to one thread. Per design: median and p95 of the step wall time
and CPU time (``time.process_time``, all threads), IPOPT iterations, batched torch calls
(re-linearisations for design a), solver failures, and the largest difference of the applied
feed and of the first step's predicted objective from the native-graph MPC of the same run.

The first solve of every design starts from the same feed plan (``--guess-dir``/guess_<model>.npy,
e.g. the offline optimum, else guess_e_coli_core.npy, else the constant feed filling the reactor).
IPOPT may take ``--max-iter`` iterations per solve (default 1000, the same for every design).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import sys
import time
import tomllib
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "l4casadi_designs.json"


def _setup(model: str, scenario: Path, out: Path):
    from mpc_bio.scenarios.control import load_control_setup

    data = tomllib.loads(scenario.read_text())
    for key in ("kind", "name", "description"):
        data.pop(key, None)
    data = copy.deepcopy(data)
    data.setdefault("control_model", {})["distill"] = False
    data["surrogate"]["backend"], data["surrogate"]["symbolic"] = "native", "SX"
    if model != "e_coli_core":
        data["model"]["name"] = model
        data["surrogate"]["artifact"] = model
    return load_control_setup(Path("benchmark"), data, out, progress=False)


def _run(ctrl, setup, steps: int, guess):
    from mpc_bio.control.model import make_integrator

    plant = make_integrator(setup.model, setup.mpc.t_step)
    x = setup.x0.copy()
    ctrl.reset(x, guess_feed=guess)
    feeds = []
    for i in range(steps):
        f = ctrl.step(x, i * setup.mpc.t_step)
        feeds.append(f)
        x = np.maximum(np.asarray(plant(x0=x, p=np.r_[f, setup.model.param_values])["xf"]).reshape(-1), 0.0)
    return np.array(feeds)


def _stats(records) -> dict:
    wall = np.array([r.wall_time for r in records]) * 1e3
    cpu = np.array([r.cpu_time for r in records]) * 1e3
    return {
        "mpc_step_ms_median": float(np.median(wall)),
        "mpc_step_ms_p95": float(np.percentile(wall, 95)),
        "mpc_step_cpu_ms_median": float(np.median(cpu)),
        "mpc_step_cpu_ms_p95": float(np.percentile(cpu, 95)),
        "mpc_steps": len(records),
        "solver_failures": int(sum(not r.success for r in records)),
        "ipopt_iterations_median": float(np.median([r.iterations for r in records])),
        "torch_calls_median": float(np.median([r.relinearisations for r in records])),
        "network_ms_median": float(np.nanmedian([r.network_time * 1e3 for r in records])),
        "statuses": sorted({r.status for r in records}),
        "fallbacks": int(sum(bool(r.fallback) for r in records)),
        "predicted_objective_step0": float(records[0].predicted_objective),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "closed_loop_mpc.toml"))
    ap.add_argument("--models", default="e_coli_core,iCH360")
    ap.add_argument("--designs", default="native_sx,taylor2,batched")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--guess-dir", default=os.environ.get("TMPDIR", "/tmp"))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--max-iter", type=int, default=1000, help="IPOPT iterations per solve (0: the scenario's)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    import torch

    torch.set_num_threads(1)
    from mpc_bio.control.batched_nlp import build_batched_mpc
    from mpc_bio.control.taylor_mpc import build_network_mpc, split_fedbatch
    from mpc_bio.embed import to_casadi
    from mpc_bio.embed.batched import BatchedNetwork
    from mpc_bio.surrogate import default_surrogate

    out_path = Path(args.out)
    result = json.loads(out_path.read_text()) if out_path.is_file() else {}
    result.update({
        "scenario": str(Path(args.scenario).relative_to(ROOT)) if Path(args.scenario).is_absolute() else args.scenario,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": 1,
        "steps": args.steps,
    })
    records = result.setdefault("records", {})
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "mpc_bio_l4c_designs"
    tmp.mkdir(parents=True, exist_ok=True)
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        setup = _setup(model, Path(args.scenario), tmp)
        split = split_fedbatch(setup.reactor, setup.cell)
        mpc = dataclasses.replace(setup.mpc, max_iter=args.max_iter) if args.max_iter else setup.mpc
        result["max_iter"] = mpc.max_iter
        sur = default_surrogate(model)
        gpath = Path(args.guess_dir) / f"guess_{model}.npy"
        if not gpath.is_file():
            gpath = Path(args.guess_dir) / "guess_e_coli_core.npy"
        result.setdefault("guess", {})[model] = str(gpath.name) if gpath.is_file() else "filling feed"
        guess = np.load(gpath) if gpath.is_file() else None
        feeds = {}
        for design in [d.strip() for d in args.designs.split(",") if d.strip()]:
            key = f"{model}/{design}"
            load0 = os.getloadavg()[0]
            try:
                net = BatchedNetwork(sur, split.output_ids, threads=1)
                t = time.perf_counter()
                if design == "native_sx":
                    ctrl = build_network_mpc(split, setup.problem, mpc, flux="native")
                elif design == "native_mx":
                    fun = to_casadi(sur, "native", outputs=split.output_ids, symbolic="MX")
                    ctrl = build_network_mpc(split, setup.problem, mpc, flux="native", symvar="MX", cell_function=fun)
                elif design.startswith("taylor"):
                    ctrl = build_network_mpc(split, setup.problem, mpc, flux="taylor", network=net, order=int(design[-1]))
                elif design == "batched":
                    ctrl = build_batched_mpc(split, setup.problem, mpc, net)
                else:
                    raise ValueError(f"unknown design {design!r}")
                build = time.perf_counter() - t
                f = _run(ctrl, setup, args.steps, guess)
                feeds[design] = f
                rec = {"model": model, "design": design, "build_s": build, **_stats(ctrl.records),
                       "feeds": f.tolist(), "load_average": [load0, os.getloadavg()[0]]}
            except Exception as exc:  # a design that cannot run is reported, not hidden
                rec = {"model": model, "design": design, "error": f"{type(exc).__name__}: {exc}"[:500]}
            records[key] = rec
            print(json.dumps({k: v for k, v in rec.items() if k != "feeds"}), flush=True)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(result, indent=2, default=float))
        feeds = {d: np.array(r["feeds"]) for d in {k.split("/", 1)[1] for k in records if k.startswith(f"{model}/")}
                 for r in [records[f"{model}/{d}"]] if "feeds" in r}
        ref_name = "native_sx" if "native_sx" in feeds else ("native_mx" if "native_mx" in feeds else None)
        ref = feeds.get(ref_name) if ref_name else None
        for design, f in feeds.items():
            rec = records[f"{model}/{design}"]
            if ref is not None and design != ref_name:
                n = min(f.size, ref.size)
                rec["reference"] = ref_name
                rec["max_feed_diff_vs_native_L_per_h"] = float(np.max(np.abs(f[:n] - ref[:n])))
                rec["objective_step0_rel_diff_vs_native"] = abs(
                    rec["predicted_objective_step0"] / records[f"{model}/{ref_name}"]["predicted_objective_step0"] - 1.0
                )
        cpu = {d: records[f"{model}/{d}"].get("mpc_step_cpu_ms_median") for d in feeds}
        cpu = {d: v for d, v in cpu.items() if v is not None}
        if cpu:
            best = min(cpu.values())
            for d, v in cpu.items():
                records[f"{model}/{d}"]["cpu_vs_fastest"] = v / best
        out_path.write_text(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
