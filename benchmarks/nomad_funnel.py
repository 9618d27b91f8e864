"""NOMAD funnel throughput per stage, at the size of a network (for sizing a cluster run).

For each network (default: the iCH360 trpD9923 network with the settings of
scenarios/nomad_anthranilate.toml, and the small core_shikimate one with default settings, in the
same run) it builds the network, samples reference states and kinetic models, then times every
funnel stage in this process (one core, BLAS limited to one thread): linear stability and time
constants on every model, the nonlinear return (stage iii) and batch robustness (stage iv, the
paper's 50 Vmax draws) on up to ``--stage-models`` linearly stable models whatever their time
constant (so the rate is measured even when few models pass stage ii) — once as screened (a
model stops at its first failure) and once with every perturbation and draw simulated (the cost
of a model that passes) — and control coefficients on the same models. Reports models per second with wall and CPU time, the pass counts, the
stable fraction and the ratio of the two networks' rates.

Run:  .venv/bin/python benchmarks/nomad_funnel.py [--n-models 1000] [--n-states 20] [--stage-models 10]
Writes benchmarks/results/nomad_funnel.json.
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
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mpc_bio.nomad.ensemble import sample_ensemble  # noqa: E402
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
from mpc_bio.nomad.steady_state import cofactor_ratios, sample_reference_states  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "nomad_funnel.json"
CONFIG = ROOT / "scenarios" / "nomad_anthranilate.toml"


class _Clock:
    """Wall and CPU time (this process) of a block."""

    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


def _rate(n: int, clock: _Clock) -> dict:
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
    with _Clock() as c_net:
        net = build_network(None, net_settings)
    with _Clock() as c_states:
        states = sample_reference_states(net, ss, seed=seed)
    with _Clock() as c_samp:
        ens = sample_ensemble(net, states, SamplingSettings(n_models=n_models, seed=seed))
    with _Clock() as c_lin:
        lin = linearize_parallel(ens, one)
        stable = screen_linear_stability(lin)
        fast = screen_time_constants(lin, stable, 0.2 * doubling_time(ens))
    sub = stable[:stage_models]
    screening = ScreeningSettings(n_robustness=50)
    with _Clock() as c_ret:
        ret_pass, _ = screen_nonlinear_return(ens, sub, screening, one)
    with _Clock() as c_rob:
        rob_pass, growth = screen_robustness(ens, sub, screening, one)
    # the cost of a model that passes: every perturbation and every draw simulated (no early stop)
    full = ScreeningSettings(n_robustness=50, return_tolerance=1e300, min_growth_fraction=0.0)
    with _Clock() as c_ret_full:
        screen_nonlinear_return(ens, sub, full, one)
    with _Clock() as c_rob_full:
        screen_robustness(ens, sub, full, one)
    with _Clock() as c_mca:
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-models", type=int, default=1000)
    p.add_argument("--n-states", type=int, default=20)
    p.add_argument("--stage-models", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", nargs="+", default=[DEFAULT_MODEL, SMALL_MODEL])
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    results = {m: run_network(m, args.n_states, args.n_models, args.stage_models, args.seed) for m in args.models}
    out = {
        "benchmark": "nomad_funnel",
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_avg_before": load_before,
            "load_avg_after": os.getloadavg(),
            "threads": 1,
        },
        "settings": vars(args),
        "networks": results,
    }
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
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
