"""Benchmark of the embedded surrogate and the fed-batch simulators (one run, ratios in it).

Measures, on the e_coli_core surrogate (the shipped default; if absent, the cached/trained test
surrogate of tests/process):

* value + Jacobian of the embedded surrogate per CasADi call (median, microseconds), for the
  native SX and MX graphs and the l4casadi backend (``exact`` and ``jac_jac`` modes), with the
  reactor's outputs (growth, glucose/oxygen exchange, acetate) and with all outputs; torch
  autograd on the same point as the baseline;
* an exact-Hessian IPOPT solve per backend (fit the two uptakes to the outputs);
* the 24 h figure-3 fed-batch: surrogate (CVODES, native MX graph, set up once) vs LP-in-the-loop
  dFBA (fast pFBA every 0.005 h, solver set up once, relaxation on so that it covers the same
  24 h), and the no-relaxation LP run (stops at the infeasible LP). ``sim_speedup`` is the ratio
  of the two best run times, measured interleaved in this run (set-up excluded on both sides;
  ``sim_speedup_median`` uses medians, ``sim_speedup_oneshot`` includes the set-up).

Writes benchmarks/results/process.json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import casadi as ca  # noqa: E402
import torch  # noqa: E402

from mpc_bio.embed import to_casadi  # noqa: E402
from mpc_bio.metabolism.models import load_model  # noqa: E402
from mpc_bio.process import (  # noqa: E402
    FedBatchSettings,
    SurrogateSimulator,
    embed_cell_model,
    simulate_dfba,
    simulate_surrogate,
)
from mpc_bio.process.cell import required_outputs  # noqa: E402


def _surrogate():
    """The shipped default surrogate, else the process tests' cached small surrogate (trained if absent)."""
    import tempfile

    from mpc_bio.surrogate import ArtifactError, default_surrogate, load_surrogate

    try:
        return default_surrogate(), "default artifact"
    except ArtifactError:
        pass
    root = os.environ.get("MPC_BIO_CACHE") or os.path.join(tempfile.gettempdir(), "mpc_bio_cache")
    cache = Path(root) / "surrogates" / "tests_e_coli_core_32x32_v1"
    if (cache / "surrogate.json").is_file():
        return load_surrogate(cache), "test surrogate (default artifact missing)"
    sys.path.insert(0, str(ROOT / "tests"))
    from process.conftest import _train_small_surrogate

    sur = _train_small_surrogate()
    sur.save(cache)
    return sur, "test surrogate trained now (default artifact missing)"


def _median_us(fun, n: int) -> float:
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fun()
        ts.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(ts)


def _eval_jac_function(f: ca.Function, symbolic: str) -> ca.Function:
    x = (ca.SX if symbolic == "SX" else ca.MX).sym("x", f.size1_in(0))
    y = f(x)
    return ca.Function("vj", [x], [y, ca.jacobian(y, x)])


def _ipopt_seconds(f: ca.Function, repeats: int = 3) -> tuple[float, str]:
    x = ca.MX.sym("x", 2)
    target = np.array(f([7.3, 12.1])).ravel()
    scale = np.maximum(np.abs(target), 1.0)
    solver = ca.nlpsol(
        "fit", "ipopt", {"x": x, "f": ca.sumsqr((f(x) - target) / scale)},
        {"ipopt.print_level": 0, "print_time": 0, "ipopt.tol": 1e-10},
    )
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        solver(x0=[10.0, 10.0], lbx=0.0, ubx=20.0)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), solver.stats()["return_status"]


def main() -> dict:
    torch.set_num_threads(1)
    sur, origin = _surrogate()
    settings = FedBatchSettings()
    reactor_outs = required_outputs(settings, sur.objective_id)
    x0 = np.array([7.3, 12.1])
    res: dict = {
        "surrogate": origin,
        "surrogate_hidden": list((sur.spec() if callable(sur.spec) else sur.spec).hidden),
        "n_reactions": len(sur.reaction_ids),
        "reactor_outputs": list(reactor_outs),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0]},
    }
    n_calls = 2000
    # torch autograd baseline: value + Jacobian at one point, float64
    xt = torch.as_tensor(x0)
    rows = torch.as_tensor([sur.reaction_ids.index(o) for o in reactor_outs])

    def torch_vj():
        with torch.no_grad():
            sur.module(xt[None, :])
        torch.func.jacrev(lambda u: sur.module(u[None, :])[0, rows])(xt)

    res["torch_eval_jac_us"] = _median_us(torch_vj, 300)
    variants = {
        "native": dict(backend="native", symbolic="SX"),
        "native_mx": dict(backend="native", symbolic="MX"),
        "l4casadi": dict(backend="l4casadi", l4casadi_mode="exact"),
        "l4casadi_jac_jac": dict(backend="l4casadi", l4casadi_mode="jac_jac"),
    }
    for key, opts in variants.items():
        for outs, suffix in ((reactor_outs, ""), (None, "_all_outputs")):
            t0 = time.perf_counter()
            f = to_casadi(sur, outputs=outs, name=f"bench_{key}{suffix}", **opts)
            build = time.perf_counter() - t0
            vj = _eval_jac_function(f, opts.get("symbolic", "MX"))
            n = n_calls if key.startswith("native") else 300
            res[f"casadi_eval_jac_us_{key}{suffix}"] = _median_us(lambda: vj(x0), n)
            if not suffix:
                res[f"build_s_{key}"] = build
                sec, status = _ipopt_seconds(f)
                res[f"ipopt_exact_hessian_s_{key}"] = sec
                res[f"ipopt_exact_hessian_status_{key}"] = status
    res["l4casadi_over_native_eval_jac"] = res["casadi_eval_jac_us_l4casadi"] / res["casadi_eval_jac_us_native"]

    # 24 h figure-3 simulation: surrogate vs LP in the loop, both set up once (simulator with its
    # CVODES integrators; pFBA solver with its HiGHS instances), then timed on the run alone.
    from mpc_bio.metabolism.pfba import PFBASolver
    from mpc_bio.metabolism.settings import PFBASettings

    # the matrix-valued (MX) graph integrates ~2x faster than the scalar SX graph in CVODES
    # CVODES at rtol 1e-6 / atol 1e-8 is still ~1000x more accurate than the dFBA's frozen-flux
    # step (O(1e-3) relative), so the ratio compares runs of (at least) matched accuracy.
    cell = embed_cell_model(sur, settings, symbolic="MX")
    sim = SurrogateSimulator(settings, cell, rtol=1e-6, atol=1e-8)
    t0 = time.perf_counter()
    # the right-hand side and its Jacobian compiled to C (CasADi JIT, gcc): ~1.3 s more set-up
    sim_jit = SurrogateSimulator(settings, cell, rtol=1e-6, atol=1e-8, jit=True)
    res["sim_surrogate_jit_setup_s"] = time.perf_counter() - t0
    tight = SurrogateSimulator(settings, cell, rtol=1e-8, atol=1e-10)
    res["sim_surrogate_tight_s"] = statistics.median([tight.run().wall_time for _ in range(3)])
    sim_sx = SurrogateSimulator(settings, embed_cell_model(sur, settings, symbolic="SX"), rtol=1e-6, atol=1e-8)
    res["sim_surrogate_sx_s"] = statistics.median([sim_sx.run().wall_time for _ in range(3)])
    res["sim_surrogate_setup_s"] = sim.setup_time
    res["sim_surrogate_oneshot_s"] = simulate_surrogate(settings, cell, rtol=1e-6, atol=1e-8).wall_time  # set-up included
    model = load_model("e_coli_core")
    t0 = time.perf_counter()
    solver = PFBASolver(model, PFBASettings(relax=True))
    res["sim_lp_setup_s"] = time.perf_counter() - t0
    # the machine is shared: interleave the two simulators and keep each one's best time
    sur_ts, jit_ts, lp_ts = [], [], []
    for _ in range(3):
        sur_ts += [sim.run().wall_time for _ in range(5)]
        jit_ts += [sim_jit.run().wall_time for _ in range(5)]
        lp = simulate_dfba(settings, solver, relax=True)
        lp_ts.append(lp.wall_time)
    res["sim_surrogate_s"] = min(sur_ts)
    res["sim_surrogate_median_s"] = statistics.median(sur_ts)
    res["sim_lp_s"] = min(lp_ts)
    res["sim_lp_median_s"] = statistics.median(lp_ts)
    res["sim_lp_solves"] = lp.info["lp_solves"]
    res["sim_lp_us_per_solve"] = 1e6 * res["sim_lp_s"] / lp.info["lp_solves"]
    res["sim_lp_completed"] = lp.completed
    res["sim_speedup"] = res["sim_lp_s"] / res["sim_surrogate_s"]
    res["sim_surrogate_jit_s"] = min(jit_ts)
    res["sim_speedup_jit"] = res["sim_lp_s"] / res["sim_surrogate_jit_s"]
    res["sim_speedup_median"] = res["sim_lp_median_s"] / res["sim_surrogate_median_s"]
    res["sim_speedup_oneshot"] = (res["sim_lp_s"] + res["sim_lp_setup_s"]) / res["sim_surrogate_oneshot_s"]
    lp0 = simulate_dfba(settings, PFBASolver(model, PFBASettings(relax=False)), relax=False)
    res["sim_lp_norelax_s"] = lp0.wall_time
    res["sim_lp_norelax_stop_h"] = None if lp0.stop_event is None else lp0.stop_event.time
    l4sim = SurrogateSimulator(settings, embed_cell_model(sur, settings, backend="l4casadi"), rtol=1e-6, atol=1e-8)
    res["sim_surrogate_l4casadi_s"] = statistics.median([l4sim.run().wall_time for _ in range(3)])
    res["target_sim_speedup"] = 100.0
    out = ROOT / "benchmarks" / "results" / "process.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=float))
    print(json.dumps(res, indent=2, default=float))
    return res


if __name__ == "__main__":
    main()
