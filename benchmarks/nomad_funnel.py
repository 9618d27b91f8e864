"""NOMAD screening funnel at scale, through the executor, and the rate of every stage (for sizing a cluster run).

Default run: the network and settings of scenarios/nomad_anthranilate.toml (iCH360 trpD9923), the paper's
screen (stage iii: the shipped batch fermentation data; robustness with 50 Vmax draws), ``--n-models`` kinetic models sampled and screened by
mpc_bio.nomad.funnel.run_funnel in chunks of ``--chunk-size`` on ``--workers`` local processes (or the
Dask scheduler at ``--scheduler``), each chunk written to ``--chunks-dir`` as it finishes (a stopped run
is resumed by running the same command again; ``--read-only`` summarises the chunks written so far;
the wall time of a resumed run is the sum of its working spans, from the chunks' finishing times).
Reports the sampled count, the stable fraction, each stage's count, worker seconds and models per second
(of one worker: a cluster of c cores screens c times as many), the run's wall time, the wall and CPU
time per sampled model and the extrapolation to 100,000 linearly stable models on 2 cores. A probe
times stage (iv) on up to ``--stage-models`` models passing every stage (the cost of a model that
passes: all its draws). ``--stage-rates`` adds the older per-network stage timings
(this process, one core) of the default and the small core_shikimate network.

Run:  nice -n 10 .venv/bin/python benchmarks/nomad_funnel.py [--n-models 200000] [--workers 2] [--no-compiled]
Writes benchmarks/results/nomad_funnel.json (or ``--out``) (keys n_reactions, n_metabolites, models_sampled, funnel,
sampling_screen_s, ...).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mpc_bio.nomad.ensemble import sample_ensemble  # noqa: E402
from mpc_bio.nomad.funnel import Clock, run_funnel  # noqa: E402
from mpc_bio.nomad.mca import compute_control_coefficients  # noqa: E402
from mpc_bio.nomad.network import build_network  # noqa: E402
from mpc_bio.nomad.screening import (  # noqa: E402
    doubling_time,
    linearize_parallel,
    screen_linear_stability,
    screen_nonlinear_return,
    screen_robustness,
    screen_time_constants,
)
from mpc_bio.nomad.settings import (  # noqa: E402
    DEFAULT_MODEL,
    SMALL_MODEL,
    ExecutorSettings,
    NetworkSettings,
    SamplingSettings,
    ScreeningSettings,
    SteadyStateSettings,
    load_study_settings,
)
from mpc_bio.outputs import json_default  # noqa: E402
from mpc_bio.nomad.steady_state import cofactor_ratios, sample_reference_states, thermodynamic_data_for  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "nomad_funnel.json"
CONFIG = ROOT / "scenarios" / "nomad_anthranilate.toml"


def _rate(n: int, clock: Clock) -> dict:
    return {
        "n_models": int(n),
        "wall_s": clock.wall,
        "cpu_s": clock.cpu,
        "models_per_s_wall": n / clock.wall if clock.wall > 0 and n else None,
        "models_per_s_cpu": n / clock.cpu if clock.cpu > 0 and n else None,
    }


def run_network(model: str, n_states: int, n_models: int, stage_models: int, seed: int) -> dict:
    one = ExecutorSettings(n_workers=1, chunk_size=max(50, n_models), progress=False)
    shipped = load_study_settings(CONFIG)
    if model == shipped.network.model:  # the shipped configuration's network and state settings
        net_settings, ss = shipped.network, dataclasses.replace(shipped.steady_state, n_states=n_states)
    else:
        net_settings, ss = NetworkSettings(model=model), SteadyStateSettings(n_states=n_states)
    with Clock() as c_net:
        net = build_network(None, net_settings)
    with Clock() as c_states:
        states = sample_reference_states(net, ss, seed=seed)
    with Clock() as c_samp:
        ens = sample_ensemble(net, states, SamplingSettings(n_models=n_models, seed=seed))
    with Clock() as c_lin:
        lin = linearize_parallel(ens, one)
        stable = screen_linear_stability(lin)
        fast = screen_time_constants(lin, stable, 0.2 * doubling_time(ens))
    sub = stable[:stage_models]
    screening = ScreeningSettings(n_robustness=50, nonlinear_check="perturbation")
    with Clock() as c_ret:
        ret_pass, _ = screen_nonlinear_return(ens, sub, screening, one)
    with Clock() as c_rob:
        rob_pass, growth = screen_robustness(ens, sub, screening, one)
    # the cost of a model that passes: every perturbation and every draw simulated (no early stop)
    full = ScreeningSettings(n_robustness=50, return_tolerance=1e300, min_growth_fraction=0.0, nonlinear_check="perturbation")
    with Clock() as c_ret_full:
        screen_nonlinear_return(ens, sub, full, one)
    with Clock() as c_rob_full:
        screen_robustness(ens, sub, full, one)
    with Clock() as c_mca:
        compute_control_coefficients(ens, sub)
    tau = lin.time_constant[stable] if stable.size else np.array([np.nan])
    ratios = {k: [float(v.min()), float(np.median(v)), float(v.max())] for k, v in cofactor_ratios(net, states).items()}
    return {
        "model": model,
        "n_reactions": net.n_reactions,
        "n_metabolites": net.n_metabolites,
        "n_fixed_metabolites": net.n_fixed,
        "n_lumped_reactions": len(net.lumped_reactions),
        "n_regulation_constants": int(np.sum(np.abs(net.slot_role) >= 2)),
        "n_kinetic_parameters": net.n_slots + 2 * net.n_reactions,
        "reference_states_method": "tfa" if states.dg0 is not None else "displacement",
        "cofactor_ratios_min_median_max": ratios,
        "network_build": {"wall_s": c_net.wall, "cpu_s": c_net.cpu},
        "reference_states": {
            "n_states": n_states,
            "wall_s": c_states.wall,
            "cpu_s": c_states.cpu,
            "states_per_s_cpu": n_states / c_states.cpu if c_states.cpu > 0 else None,
        },
        "sampling": _rate(n_models, c_samp),
        "linear_screen": _rate(n_models, c_lin),
        "stable_fraction": float(stable.size / n_models),
        "time_constant_pass_fraction": float(fast.size / n_models),
        "doubling_time_h": doubling_time(ens),
        "time_constant_h_of_stable_median": float(np.median(tau)),
        "nonlinear_return": {**_rate(sub.size, c_ret), "n_passed": int(ret_pass.size)},
        "robustness_50_draws": {
            **_rate(sub.size, c_rob),
            "n_passed": int(rob_pass.size),
            "note": "loop stops at the first draw below the growth fraction",
        },
        "nonlinear_return_every_perturbation": _rate(sub.size, c_ret_full),
        "robustness_every_draw": _rate(sub.size, c_rob_full),
        "control_coefficients": _rate(sub.size, c_mca),
    }


def _load_during(res, segments: list[dict], load_log: str | None) -> dict | None:
    """1-minute load average over the run: from the chunk files, else from ``load_log`` (lines
    ``unix_time load1 load5 load15 ...``, e.g. ``date +%s`` followed by /proc/loadavg, sampled during the run)."""
    values = [v[0] for v in res.chunk_load_avg.values()]
    source = "chunk files (at each chunk's finish)"
    if load_log and segments:
        logged = []
        for line in Path(load_log).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                t, load1 = float(parts[0]), float(parts[1])
                if any(seg["start_unix"] <= t <= seg["end_unix"] for seg in segments):
                    logged.append(load1)
        if logged:
            values = values + logged
            source += f" and {load_log} ({len(logged)} samples)"
    if not values:
        return None
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values)), "n": len(values), "source": source}


def run_scale(args) -> dict:
    """The streamed funnel on the shipped configuration's network, with the rates and the extrapolation."""
    shipped = load_study_settings(CONFIG)
    with Clock() as c_net:
        net = build_network(None, shipped.network)
    ss = dataclasses.replace(shipped.steady_state, n_states=args.n_states)
    with Clock() as c_states:
        states = sample_reference_states(net, ss, seed=args.seed, thermodynamics=thermodynamic_data_for(net, ss))
    sampling = dataclasses.replace(shipped.sampling, n_models=args.n_models, seed=args.seed)
    screening = dataclasses.replace(shipped.screening, n_robustness=50, nonlinear_check="batch_data", compiled=args.compiled)
    executor = ExecutorSettings(n_workers=args.workers, chunk_size=args.chunk_size, scheduler=args.scheduler, progress=args.progress)
    with Clock() as c_run:
        res = run_funnel(net, states, sampling, screening, executor, out_dir=args.chunks_dir, read_only=args.read_only)
    funnel = res.funnel()
    n, n_stable = res.n_sampled, res.n_stable
    worker_wall = sum(w for w, _ in res.seconds.values())
    worker_cpu = sum(c for _, c in res.seconds.values())
    segments = res.wall_segments() if args.chunks_dir else []
    # a run written to --chunks-dir may span sessions: its wall time is the sum of its working spans
    wall = sum(seg["wall_s"] for seg in segments) if segments else c_run.wall
    # stage (iv) on models that pass it (every draw simulated), one process
    passing = np.sort(res.final)[: args.stage_models]
    probe = None
    if passing.size:
        sub = sample_ensemble(net, states, sampling, index=passing)
        one = ExecutorSettings(n_workers=1, chunk_size=max(1, passing.size), progress=False)
        with Clock() as c_probe:
            _, growth = screen_robustness(sub, np.arange(passing.size), screening, one)
        probe = {
            **_rate(passing.size, c_probe),
            "n_draws": screening.n_robustness,
            "min_growth_fraction_lower_bound": float(min(growth.values())),
            "note": "stage (iv) on models passing every stage (all draws simulated, each to the check where it reaches the growth "
            "fraction, the reference run included): the cost of a model that passes",
        }
    target = 100_000
    per_model_wall, per_model_cpu = (worker_wall / n, worker_cpu / n) if n else (None, None)
    need = target / (n_stable / n) if n and n_stable else None
    return {
        "model": net.model_id,
        "n_reactions": net.n_reactions,
        "n_metabolites": net.n_metabolites,
        "n_reference_states": states.n_states,
        "reference_states_s": c_states.wall,
        "network_build_s": c_net.wall,
        "models_sampled": n,
        "models_linearly_stable": n_stable,
        "stable_fraction": n_stable / n if n else None,
        "funnel": funnel,
        "n_screened": int(res.final.size),
        "screened_models": [int(m) for m in res.final],
        "sampling_screen_s": wall,
        "sampling_screen_cpu_s": worker_cpu,
        "cpu_over_wall": worker_cpu / wall if wall > 0 else None,
        "wall_segments": segments,
        "load_avg_1min_during_run": _load_during(res, segments, args.load_log),
        "sampling_screen_cpu_s_this_process": c_run.cpu,
        "worker_seconds": worker_wall,
        "worker_cpu_seconds": worker_cpu,
        "workers": args.workers if not args.scheduler else None,
        "scheduler": args.scheduler,
        "chunk_size": args.chunk_size,
        "n_chunks_resumed": res.n_chunks_resumed,
        "read_only_partial": bool(args.read_only),
        "stable_models_per_s_wall": n_stable / wall if wall > 0 else None,
        "worker_s_per_sampled_model": per_model_wall,
        "worker_cpu_s_per_sampled_model": per_model_cpu,
        "extrapolation_100k_stable": {
            "models_to_sample": need,
            "wall_h_on_2_workers_at_this_load": need * per_model_wall / 2 / 3600 if need else None,
            "wall_h_on_2_idle_cores_from_cpu": need * per_model_cpu / 2 / 3600 if need else None,
            "note": "stage (iii)/(iv) pass fractions as measured here; rates per worker scale with the cores",
        },
        "stage_iv_every_draw_probe": probe,
        "target": res.target.to_dict(),
        "batch_fits": {str(k): v for k, v in sorted(res.batch.items())[:200]},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-models", type=int, default=2000, help="kinetic models sampled and screened")
    p.add_argument("--n-states", type=int, default=20, help="reference steady states")
    p.add_argument("--workers", type=int, default=2, help="local worker processes")
    p.add_argument("--chunk-size", type=int, default=250, help="models per task")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address instead of local processes")
    p.add_argument("--chunks-dir", default=None, help="write each finished chunk here (resumable)")
    p.add_argument("--read-only", action="store_true", help="summarise the chunks already in --chunks-dir")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--load-log", default=None, help="file of 'unix_time load1 ...' lines sampled during the run (load of older chunks)")
    p.add_argument("--stage-models", type=int, default=10, help="models of the stage (iv) probe")
    p.add_argument(
        "--compiled", action=argparse.BooleanOptionalAction, default=True, help="stages (iii)-(iv) with the reactor compiled to C"
    )
    p.add_argument("--out", default=None, help=f"result file (default {OUT.relative_to(ROOT)})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stage-rates", action="store_true", help="also the per-network single-core stage timings")
    p.add_argument("--models", nargs="+", default=[DEFAULT_MODEL, SMALL_MODEL], help="networks of --stage-rates")
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    scale = run_scale(args)
    out = {
        "benchmark": "nomad_funnel",
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_avg_before": load_before,
            "load_avg_after": os.getloadavg(),
            "threads_per_worker": 1,
        },
        "settings": vars(args),
        **scale,
    }
    if args.stage_rates:
        results = {m: run_network(m, args.n_states, 1000, args.stage_models, args.seed) for m in args.models}
        out["stage_rates"] = results
        if DEFAULT_MODEL in results and SMALL_MODEL in results:
            big, small = results[DEFAULT_MODEL], results[SMALL_MODEL]
            out["rate_ratio_default_over_small_cpu"] = {
                stage: (
                    big[stage]["models_per_s_cpu"] / small[stage]["models_per_s_cpu"]
                    if big[stage]["models_per_s_cpu"] and small[stage]["models_per_s_cpu"]
                    else None
                )
                for stage in (
                    "sampling",
                    "linear_screen",
                    "nonlinear_return",
                    "robustness_50_draws",
                    "nonlinear_return_every_perturbation",
                    "robustness_every_draw",
                    "control_coefficients",
                )
            }
    dest = Path(args.out) if args.out else OUT
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1, default=json_default))
    print(
        json.dumps(
            {k: v for k, v in out.items() if k not in ("batch_fits", "screened_models", "stage_rates")}, indent=1, default=json_default
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
