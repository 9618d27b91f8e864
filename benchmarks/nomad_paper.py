"""The NOMAD paper's evidence on the default case: network size, funnel, designs and the three experiments.

Writes ``benchmarks/results/nomad_paper.json``. Usage::

    python benchmarks/nomad_paper.py [--config scenarios/nomad_anthranilate.toml] [--workers 2]
                                     [--ensemble-dir runs/nomad_paper_bench] [--n-draws 10]

In one run on the default config (``scenarios/nomad_anthranilate.toml``):

* the ensemble stage's output (``--ensemble-dir``; run first when missing, as ``mpc-bio nomad
  ensemble``): network size (``n_reactions``, ``n_metabolites``) next to the paper's 196/159;
* the large funnel (``models_sampled``, ``funnel``, ``sampling_screen_s``) read from
  ``benchmarks/results/nomad_funnel.json`` (written by ``benchmarks/nomad_funnel.py``);
* the experiments of :mod:`mpc_bio.nomad.experiments` (as ``mpc-bio nomad experiment all``;
  the NRA enumeration and ranking are kept in ``ENSEMBLE_DIR/.design_cache`` and reused by the next
  run, ``design_cache_before_run`` in the run's record says what was there):
  the closeness study (2/3/10/20-fold groups and the MCA baseline, 48 h batch), the experimental
  strains aroG^fbr and aroG^fbr + tktA against the top 5 designs, and the +-50 % sensitivity
  (10 draws per model) of all members together and of each member alone (``--all-members-only``:
  together only, about a quarter of the simulations for three-enzyme designs);
* the paper's qualitative claims as booleans with the numbers beside them, each under the
  viability rule (non-viable strains as zero titer) and as simulated;
* the MCA baseline's titer as simulated and under the viability rule side by side (the
  log-linear prediction of the baseline is not a gain and is not reported as one).

The machine is shared: the load average is recorded and CPU times are given beside wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "nomad_paper.json"
FUNNEL = ROOT / "benchmarks" / "results" / "nomad_funnel.json"


def _cpu() -> float:
    """CPU seconds of this process and its finished children."""
    me, ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime


def _funnel() -> dict:
    """models_sampled, funnel and sampling_screen_s of the funnel benchmark (None when absent)."""
    if not FUNNEL.is_file():
        return {"models_sampled": None, "funnel": None, "sampling_screen_s": None, "funnel_source": None}
    d = json.loads(FUNNEL.read_text())
    return {
        "models_sampled": d.get("models_sampled"),
        "models_linearly_stable": d.get("models_linearly_stable"),
        "funnel": d.get("funnel"),
        "sampling_screen_s": d.get("sampling_screen_s"),
        "sampling_screen_cpu_s": d.get("sampling_screen_cpu_s", d.get("worker_cpu_seconds")),
        "funnel_load_avg_1min": d.get("load_avg_1min_during_run"),
        "funnel_source": str(FUNNEL.relative_to(ROOT)),
        "funnel_model": d.get("model"),
    }


def build_result(res, net, args, design, ens_s: float, ens_cpu: float, exp_s: float, exp_cpu: float, load0: list) -> dict:
    """The benchmark's json from an ExperimentResults (parts that did not run yet are None)."""
    from mpc_bio.nomad.experiment_settings import ClosenessSettings, StrainComparisonSettings

    s = res.summaries()
    close, strains, sens = s.get("closeness"), s.get("strains"), s.get("sensitivity")
    top = [d["design"] for d in res.ranking["designs"]] if res.ranking else []
    ddpa_all = (bool(top) and all("DDPA" in d.split("+") for d in top)) if res.ranking else None
    result = {
        "benchmark": "nomad_paper",
        "complete": all(x is not None for x in (close, strains, sens)),
        "config": args.config,
        "n_reactions": net.n_reactions,
        "n_metabolites": net.n_metabolites,
        "paper_network": {"n_reactions": 196, "n_metabolites": 159},
        **_funnel(),
        "top_designs": top,
        "ddpa_in_all_top_designs": ddpa_all,
    }
    targets: dict = {"ddpa_in_every_top_design": {"value": ddpa_all, "top_designs": top}}
    if close is not None:
        groups = close["groups"]
        cmt = {g: groups[g]["mean_titer_g_per_l"] for g in groups}
        cmt_sim = {g: groups[g]["mean_titer_g_per_l_as_simulated"] for g in groups}

        def closer_higher(t):
            near = [t.get(g) for g in ("2-fold", "3-fold")]
            far = [t.get(g) for g in ("10-fold", "20-fold")]
            if None in near or None in far:
                return None
            return {"means": bool(np.mean(near) > np.mean(far)), "every_pair": bool(min(near) > max(far))}

        ch, ch_sim = closer_higher(cmt), closer_higher(cmt_sim)
        cv = res.closeness.verification
        base_stats = cv.titer_statistics("MCA") if "MCA" in cv.strains else None
        result.update(
            {
                "n_screened_models_used": close["n_models"],
                "closeness_mean_titer": cmt,
                "closeness_mean_titer_as_simulated": cmt_sim,
                "closeness_reference_mean_titer": close["reference"]["mean_titer_g_per_l"],
                "closeness_reference_mean_exhaustion_time_h": close["reference"]["mean_exhaustion_time_h"],
                "closeness_groups": groups,
            }
        )
        if base_stats is not None:
            b = groups["MCA"]
            result["baseline_titer_as_simulated"] = {
                "mean_titer_g_per_l": b["mean_titer_g_per_l_as_simulated"],
                "titer_ratio_to_reference_mean": base_stats["as_simulated"]["mean"],
                "titer_ratio_to_reference_median": base_stats["as_simulated"]["median"],
            }
            result["baseline_titer_viability_rule"] = {
                "mean_titer_g_per_l": b["mean_titer_g_per_l"],
                "titer_ratio_to_reference_mean": base_stats["failures_as_zero"]["mean"],
                "titer_ratio_to_reference_median": base_stats["failures_as_zero"]["median"],
                "n_viable": b["n_viable"],
                "n_models": b["n_strains"],
                "rule": b["viability_rule"],
                "failures": b["failures"],
            }
        targets["closer_groups_higher_mean_titer"] = {
            "value": None if ch is None else ch["means"],
            "every_pair": None if ch is None else ch["every_pair"],
            "value_as_simulated": None if ch_sim is None else ch_sim["means"],
            "every_pair_as_simulated": None if ch_sim is None else ch_sim["every_pair"],
            "mean_titer_g_per_l": cmt,
            "mean_titer_g_per_l_as_simulated": cmt_sim,
        }
    if strains is not None:
        smt, smt_sim = strains["median_titer_g_per_l"], strains["median_titer_g_per_l_as_simulated"]
        sv = res.strains.verification
        best = next((k for k in sv.strains if k.startswith("d-1 ")), None)
        result.update(
            {
                "strain_median_titer_g_per_l": smt,
                "strain_median_titer_g_per_l_as_simulated": smt_sim,
                "strain_viable": {k: f"{v['n_viable']}/{v['n_models']}" for k, v in strains["strains"].items()},
                "strain_failures": {k: v["failures"] for k, v in strains["strains"].items() if v["failures"]},
                "paper_median_titer_g_per_l": strains["paper_median_titer_g_per_l"],
            }
        )
        if best is not None:
            st = sv.titer_statistics(best)
            result["best_design_titer_ratio_to_reference"] = {
                "design": best,
                "as_simulated_mean": st["as_simulated"]["mean"],
                "viability_rule_mean": st["failures_as_zero"]["mean"],
                "n_viable": int(sv.valid[sv.strains.index(best)].sum()),
            }
        labels = top_labels(smt)
        targets["aroGfbr_tktA_above_aroGfbr_above_reference"] = {
            "value": strains["aroGfbr_tktA_above_aroGfbr_above_reference"],
            "value_as_simulated": strains["aroGfbr_tktA_above_aroGfbr_above_reference_as_simulated"],
            "median_titer_g_per_l": {k: smt.get(k) for k in ("reference", "aroGfbr", "aroGfbr_tktA")},
            "median_titer_g_per_l_as_simulated": {k: smt_sim.get(k) for k in ("reference", "aroGfbr", "aroGfbr_tktA")},
        }
        targets["top_designs_median_above_aroGfbr_tktA"] = {
            "value": strains["top_designs_median_above_aroGfbr_tktA"],
            "value_as_simulated": strains["top_designs_median_above_aroGfbr_tktA_as_simulated"],
            "median_of_design_medians_g_per_l": float(np.median([smt[k] for k in labels])) if labels else None,
            "median_of_design_medians_g_per_l_as_simulated": float(np.median([smt_sim[k] for k in labels])) if labels else None,
            "aroGfbr_tktA_g_per_l": smt.get("aroGfbr_tktA"),
            "aroGfbr_tktA_g_per_l_as_simulated": smt_sim.get("aroGfbr_tktA"),
        }
    if sens is not None:
        frac = {k: v["modes"]["all"]["fraction_draws_mean_above_reference"] for k, v in sens["designs"].items()}
        frac_sim = {k: v["modes"]["all"]["fraction_draws_mean_above_reference_as_simulated"] for k, v in sens["designs"].items()}
        result.update(
            {
                "sensitivity_frac_above_reference": frac,
                "sensitivity_frac_above_reference_as_simulated": frac_sim,
                "sensitivity_frac_responses_above_reference": {
                    k: {m: x["fraction_above_reference"] for m, x in v["modes"].items()} for k, v in sens["designs"].items()
                },
                "sensitivity_frac_responses_above_reference_as_simulated": {
                    k: {m: x["fraction_above_reference_as_simulated"] for m, x in v["modes"].items()} for k, v in sens["designs"].items()
                },
                # each member alone (the paper's per-enzyme sensitivity) beside all members together
                "sensitivity_frac_above_reference_by_mode": {
                    k: {m: x["fraction_draws_mean_above_reference"] for m, x in v["modes"].items()} for k, v in sens["designs"].items()
                },
                "sensitivity_frac_above_reference_by_mode_as_simulated": {
                    k: {m: x["fraction_draws_mean_above_reference_as_simulated"] for m, x in v["modes"].items()}
                    for k, v in sens["designs"].items()
                },
                "sensitivity_modes": sorted({m for v in sens["designs"].values() for m in v["modes"]}),
                "sensitivity_n_viable_all_mode": {
                    k: f"{v['modes']['all']['n_viable']}/{v['modes']['all']['n_responses']}" for k, v in sens["designs"].items()
                },
                "sensitivity_frac_above_reference_definition": (
                    'mode "all": fraction of the draws whose mean titer over the models (non-viable draws as zero titer) at the '
                    "reference end beats the reference strain's mean titer; per-response fractions beside it"
                ),
            }
        )
        vals, vals_sim = list(frac.values()), list(frac_sim.values())
        targets["top_designs_robust_to_50_percent"] = {
            "value": None if not vals or None in vals else bool(all(v >= 0.9 for v in vals)),
            "value_as_simulated": None if not vals_sim or None in vals_sim else bool(all(v >= 0.9 for v in vals_sim)),
            "fraction_draws_mean_above_reference": frac,
            "fraction_draws_mean_above_reference_as_simulated": frac_sim,
            "threshold": 0.9,
        }
    result["targets"] = targets
    result["seconds"] = {
        "ensemble_load_or_run_wall": ens_s,
        "ensemble_load_or_run_cpu": ens_cpu,
        "experiments_wall": exp_s,
        "experiments_cpu_incl_finished_workers": exp_cpu,
        **{f"experiment_{k}_wall": v for k, v in res.seconds.items()},
    }
    result["ratios"] = {
        "sensitivity_share_of_experiments_wall": res.seconds.get("sensitivity", 0.0) / exp_s if exp_s > 0 else None,
        "closeness_share_of_experiments_wall": res.seconds.get("closeness", 0.0) / exp_s if exp_s > 0 else None,
        "cpu_per_wall_experiments": exp_cpu / exp_s if exp_s > 0 else None,
    }
    result["settings"] = {
        "workers": args.workers,
        "n_draws": args.n_draws,
        "sensitivity_each_enzyme": not args.all_members_only,
        "experiments": list(args.experiments),
        "max_models": design.max_models,
        "closeness": ClosenessSettings().to_dict(),
        "strains": StrainComparisonSettings().to_dict(),
    }
    result["machine"] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_start": load0,
        "load_average_end": list(os.getloadavg()),
    }
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="scenarios/nomad_anthranilate.toml")
    ap.add_argument("--ensemble-dir", default=str(ROOT / "runs" / "nomad_paper_bench"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n-draws", type=int, default=10, help="sensitivity draws per design x model x mode (paper: 10)")
    ap.add_argument("--max-models", type=int, default=None, help="first N screened models (default [nomad.design] max_models)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--figures", default=None, help="also write the experiments' output (JSON, tables, figures) here")
    ap.add_argument("--experiments", nargs="+", default=["closeness", "strains", "sensitivity"], help="experiments to run")
    ap.add_argument("--all-members-only", action="store_true", help='sensitivity: mode "all" only (no member alone)')
    ap.add_argument(
        "--refresh-funnel",
        action="store_true",
        help="only re-read the funnel keys from benchmarks/results/nomad_funnel.json into the existing --out json (runs nothing)",
    )
    ap.add_argument(
        "--resume",
        action="store_true",
        help="merge into the existing --out json: keys of experiments not run now are kept from it (each run recorded in 'runs')",
    )
    args = ap.parse_args(argv)
    if args.refresh_funnel:
        out = Path(args.out)
        result = {**json.loads(out.read_text()), **_funnel()}
        out.write_text(json.dumps(result, indent=2, default=float))
        print(json.dumps({k: result.get(k) for k in ("models_sampled", "models_linearly_stable", "sampling_screen_s")}, indent=1))
        return 0

    import dataclasses

    from mpc_bio.nomad.design_study import design_cache_dir, load_design_settings, load_or_run_ensemble_output
    from mpc_bio.nomad.experiment_settings import ClosenessSettings, RobustnessSettings, StrainComparisonSettings
    from mpc_bio.nomad.experiments import run_experiments, write_experiments

    config = args.config if Path(args.config).is_file() else str(ROOT / args.config)
    load0 = list(os.getloadavg())
    design, _ = load_design_settings(config)
    design = dataclasses.replace(design, n_workers=args.workers, progress=False)
    if args.max_models is not None:
        design = dataclasses.replace(design, max_models=args.max_models)
    w0, c0 = time.perf_counter(), _cpu()
    ensemble, control = load_or_run_ensemble_output(config, args.ensemble_dir, False)
    ens_s, ens_cpu = time.perf_counter() - w0, _cpu() - c0
    net = ensemble.network
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    w1, c1 = time.perf_counter(), _cpu()

    prev = json.loads(out.read_text()) if args.resume and out.is_file() else None
    cache = design_cache_dir(args.ensemble_dir)
    # what the NRA cache held when this run started: its enumeration and ranking times are then reads, not solves
    cached_before = {
        "dir": str(cache),
        "model_enumerations": len(list(cache.glob("enumerate_model_designs-*.pkl"))),
        "rankings": len(list(cache.glob("rank_designs-*.pkl"))),
    }

    def write(res):
        result = build_result(res, net, args, design, ens_s, ens_cpu, time.perf_counter() - w1, _cpu() - c1, load0)
        record = {"experiments": list(args.experiments), "seconds": result["seconds"], "machine": result["machine"]}
        record["settings"] = result["settings"]
        record["design_cache_before_run"] = cached_before
        if prev is not None:
            merged = dict(prev)
            for k, v in result.items():
                if k == "targets":
                    merged[k] = {**prev.get(k, {}), **v}
                elif v is not None or k not in prev:
                    merged[k] = v
            runs = prev.get("runs") or [{"experiments": "earlier run", "seconds": prev.get("seconds"), "machine": prev.get("machine")}]
            merged["runs"] = runs + [record]
            result = merged
        else:
            result["runs"] = [record]
        result["complete"] = all(
            result.get(k) is not None for k in ("closeness_mean_titer", "strain_median_titer_g_per_l", "sensitivity_frac_above_reference")
        )
        out.write_text(json.dumps(result, indent=2, default=float))
        return result

    def write_partial(res):
        try:
            write(res)
        except Exception:  # a partial record must not end the long run; the final write raises
            import traceback

            traceback.print_exc()

    res = run_experiments(
        tuple(args.experiments),
        ensemble,
        control,
        design,
        closeness=ClosenessSettings(),
        strains=StrainComparisonSettings(),
        sensitivity=RobustnessSettings(n_draws=args.n_draws, n_workers=args.workers, each_enzyme=not args.all_members_only),
        on_result=write_partial,  # partial results after each experiment (complete: false)
        cache_dir=cache,  # the NRA enumeration (~800 s) and ranking, reused by the next run
    )
    result = write(res)
    if args.figures:
        write_experiments(res, args.figures)
    keys = (
        "n_reactions",
        "n_metabolites",
        "models_sampled",
        "sampling_screen_s",
        "ddpa_in_all_top_designs",
        "closeness_mean_titer",
        "strain_median_titer_g_per_l",
        "sensitivity_frac_above_reference",
        "baseline_titer_as_simulated",
        "baseline_titer_viability_rule",
    )
    print(json.dumps({k: result.get(k) for k in keys}, indent=1, default=float))
    print(json.dumps(result["targets"], indent=1, default=float))
    return 0


def top_labels(medians: dict) -> list[str]:
    """The design labels ('d-1 ...') among the strains."""
    return [k for k in medians if k.startswith("d-") and medians[k] is not None]


if __name__ == "__main__":
    sys.exit(main())
