"""The README's benchmark table, rendered from the JSON figures in ``benchmarks/results/``.

Usage::

    python benchmarks/report.py            # print the markdown table
    python benchmarks/report.py --readme   # rewrite the table between the README's markers

Every row names the script that reproduces it. Missing files or keys show as "-" (a benchmark
that has not been run yet), never as an error, so the table can be regenerated after any subset.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BEGIN = "<!-- benchmark-table:begin (python benchmarks/report.py --readme) -->"
END = "<!-- benchmark-table:end -->"


def _load(name: str) -> dict[str, Any]:
    p = RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def _pfba(model: str) -> dict[str, Any]:
    for row in _load("pfba_sampling").get("results", []):
        if row.get("model") == model:
            return row
    return {}


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _row(what: str, fn: Callable[[], str], target: str, script: str) -> str:
    try:
        measured = fn()
    except (AttributeError, KeyError, TypeError, ValueError, ZeroDivisionError):
        measured = "-"
    return f"| {what} | {measured} | {target} | `python benchmarks/{script}` |"


def table() -> str:
    """The markdown table of the headline figures."""
    s, si, p, c = _load("surrogate"), _load("surrogate_ich360"), _load("process"), _load("control")
    ne, nn = _load("nomad_ensemble"), _load("nomad_nra")
    rows = ["| figure | measured | target / paper | reproduce |", "|---|---|---|---|"]
    for model, target in (("e_coli_core", "≥ 20×"), ("iCH360", "≥ 20×"), ("iJO1366", "≥ 10×")):
        r = _pfba(model)
        rows.append(
            _row(
                f"pFBA sampling speedup vs COBRApy `pfba` loop, {model} (1 process)",
                lambda r=r: (
                    f"{r['speedup']:.1f}× ({r['mpc_bio_ms_per_point']:.3g} vs {r['cobra_ms_per_point']:.3g} ms/point; "
                    f"max rel. disagreement {r['max_rel_err']:.1g})"
                ),
                target,
                "pfba_sampling.py",
            )
        )
    grid = _load("pfba_sampling").get("paper_grid_cli", [])
    rows.append(
        _row(
            "`mpc-bio sample` on the paper's 40,401-point grid, 2 cores (sampling / wall)",
            lambda: "; ".join(
                f"{g['model']} {g['sample_time_s']:.1f} / {g['wall_time_s']:.1f} s (load {g['loadavg_1min_after']:.1f})" for g in grid
            ),
            "iCH360 < 60 s",
            "pfba_sampling.py",
        )
    )
    rows.append(
        _row(
            "surrogate single point vs fast pFBA (e_coli_core)",
            lambda: f"{s['speedup_single']:.0f}× ({s['surrogate_us_single']:.1f} µs vs {s['pfba_ms_per_point']:.3g} ms)",
            "≥ 39× (paper: 60 µs, 39×)",
            "surrogate.py",
        )
    )
    rows.append(
        _row(
            "surrogate batch of 10,000 vs fast pFBA (float64 / mixed / float32; mass balance of mixed)",
            lambda: (
                f"{s['speedup_batch']['10000']:.0f}× / {s['speedup_batch_mixed']['10000']:.0f}× / "
                f"{s['speedup_batch_float32']['10000']:.0f}×; {s['mass_balance_residual_mixed']:.1e}"
            ),
            "≥ 1000×",
            "surrogate.py",
        )
    )
    for name, d, script in (("e_coli_core", s, "surrogate.py"), ("iCH360", si, "surrogate_ich360.py")):
        rows.append(
            _row(
                f"surrogate accuracy, {name} (fresh off-grid pFBA points)",
                lambda d=d: (
                    f"growth {100 * d['growth_max_abs_err_frac']:.2f} %; worst reaction {d['worst_reaction']} "
                    f"{100 * d['worst_reaction_max_err_frac']:.2f} %; median R² {d['median_r2']:.5f}; "
                    f"mass balance {d['mass_balance_residual']:.1e}"
                ),
                "growth ≤ 1 %, every reaction ≤ 2 % of range, R² ≥ 0.999, ≤ 1e-9",
                script,
            )
        )
    bs = _load("build_surrogate")
    rows.append(
        _row(
            "`mpc-bio build-surrogate`, one command, no hand constants (fresh off-grid pFBA points): growth error / worst "
            "reaction, share of its range / fresh points beyond 2 % / wall time on 2 shared cores",
            lambda: "; ".join(
                f"{r['case']}: {100 * r['growth_max_abs_err_frac']:.2f} % / {r['worst_reaction']} "
                f"{100 * r['worst_reaction_max_err_frac']:.1f} % / {100 * r['frac_points_beyond_2pct']:.2f} % / {r['wall_s'] / 60:.0f} min"
                for r in bs["results"]
            ),
            "growth ≤ 1 %, every reaction ≤ 5 %; iCH360 < 3 h",
            "build_surrogate.py",
        )
    )
    rows.append(
        _row(
            "embedded value + Jacobian (native SX / native MX / l4casadi)",
            lambda: (
                f"{p['casadi_eval_jac_us_native']:.0f} / {p['casadi_eval_jac_us_native_mx']:.0f} / "
                f"{p['casadi_eval_jac_us_l4casadi']:.0f} µs"
            ),
            "-",
            "process.py",
        )
    )
    for r in p.get("records", []):
        rows.append(
            _row(
                f"24 h figure-3 simulation, {r['model']}: surrogate vs the accurate LP reference, both within "
                f"{r['matched_accuracy']:g} of a tight run (wall / CPU)",
                lambda r=r: (
                    f"{r['sim_speedup']:.0f}× / {r['sim_speedup_cpu']:.0f}× ({1e3 * r['sim_surrogate_cpu_s']:.0f} ms "
                    f"vs {r['sim_lp_cpu_s']:.2f} s CPU; {r['surrogate_backend']}); fixed-step LP "
                    f"{r['sim_speedup_vs_fixed_step']:.0f}× slower than the surrogate"
                ),
                "≥ 50×",
                "process.py",
            )
        )
    recs = {
        (r["backend"], r["estimator"], r.get("plant_vmax_scale")): r
        for r in c.get("records", [])
        if r.get("model", "e_coli_core") == "e_coli_core"
    }
    dflt = c.get("default_backend", "native_distilled")
    main = recs.get(("native_distilled", "ekf", None), {})
    rows.append(
        _row(
            "MPC step CPU median (wall p95), main job (kLa oxygen), same 20 steps per backend",
            lambda: (
                f"2-D spline {main['mpc_step_cpu_ms_median']:.0f} ms ({main['mpc_step_ms_p95']:.0f} ms); full network: "
                + ", ".join(
                    f"{name} {recs[(b, 'ekf', None)]['mpc_step_cpu_ms_median']:.0f} ms"
                    for b, name in (
                        ("native", "native SX"),
                        ("native_mx", "native MX"),
                        ("l4casadi", "l4casadi in do-mpc"),
                        ("network", "network (batched torch)"),
                        ("network_l4casadi", "network (batched L4CasADi)"),
                    )
                )
            ),
            "e_coli_core ≤ 50 ms",
            "control.py",
        )
    )
    rows.append(
        _row(
            "closed loop / offline optimum; offline limit violation on a 0.01 h grid; offline vs exponential / constant feed",
            lambda: (
                f"{main['closed_loop_vs_offline']:.3f} ({main['solver_failures']} failures); "
                f"{100 * c['offline_max_violation_frac']:.2f} %; +{100 * c['offline_vs_exp_margin']:.0f} % / "
                f"+{100 * c['offline_vs_const_margin']:.0f} %"
            ),
            "≥ 0.97, 0 failures; ≤ 0.5 %",
            "control.py",
        )
    )
    rows.append(
        _row(
            "EKF RMSE biomass [gDW/L] / glucose [mmol/L], main job",
            lambda: f"{main['est_rmse']['biomass']:.3f} / {main['est_rmse']['glucose']:.2f}",
            "below the noise std (0.1 / 0.5)",
            "control.py",
        )
    )
    rows.append(
        _row(
            f"perturbed plant (Vmax ×k), e_coli_core, {dflt} MPC, Vmax estimated: failed MPC steps, closed loop / the plant's "
            "offline optimum, Vmax estimate error at the end, largest limit violation [robust feed cap: CPU per step]",
            lambda: "; ".join(
                f"{est.upper()} ×{k}: {r['solver_failures']}, {_fmt(r['closed_loop_vs_offline'], '.3f')}, "
                f"{100 * r['vmax_est_rel_err']:.1f} %, {100 * r['closed_loop_violation']:.1f} %{_cap(r)}"
                for est in ("ekf", "mhe")
                for k in (0.75, 1.4)
                if (dflt, est, k) in recs
                for r in [recs[(dflt, est, k)]]
            ),
            "0, ≥ 0.97, ≤ 5 %",
            "control.py",
        )
    )
    ich = [r for r in c.get("records", []) if r.get("model") == "iCH360" and r.get("run", "backends") == "backends" and "error" not in r]
    ich_run = c.get("runs", {}).get("iCH360", {})
    rows.append(
        _row(
            f"iCH360 closed loop (kLa oxygen, {str(ich[0]['estimator']).upper() if ich else '-'} estimating Vmax, plant Vmax "
            f"×{_fmt((ich[0].get('plant_vmax_scale') or 1) if ich else None, 'g')}), same {_fmt(ich_run.get('mpc_steps_per_backend'), 'd')} "
            "steps per backend: MPC step CPU median, failed steps, closed loop / the plant's offline optimum, Vmax estimate error, "
            "largest limit violation [robust feed cap: CPU per step]",
            lambda: (
                "; ".join(
                    f"{r['backend']} {r['mpc_step_cpu_ms_median']:.0f} ms, {r['solver_failures']}, "
                    f"{_fmt(r.get('closed_loop_vs_offline'), '.3f')}, {_fmt(None if r.get('vmax_est_rel_err') is None else 100 * r['vmax_est_rel_err'], '.1f')} %, "
                    f"{100 * r['closed_loop_violation']:.1f} %{_cap(r)}"
                    for r in ich
                )
                or "-"
            ),
            "network ≤ 200 ms; 0, ≥ 0.97, ≤ 5 %",
            "control.py --scenario scenarios/closed_loop_ich360.toml",
        )
    )
    rows.append(
        _row(
            "kinetic models sampled + linearly screened + MCA",
            lambda: (
                f"{ne['n_models']:,} models in {ne['target_sample_screen_mca_seconds_all_cores']:.1f} s "
                f"({ne['models_per_s_sampling']:.0f} / {ne['models_per_s_linear_screen']:.0f} / {ne['models_per_s_mca']:.0f} per s)"
            ),
            "10,000 in < 10 min",
            "nomad_ensemble.py",
        )
    )
    nf = _load("nomad_funnel")
    rows.append(
        _row(
            "NOMAD funnel on the trpD9923 network, 2 local workers: sampled -> linearly stable -> time constant -> batch data "
            "-> robust (50 draws); wall (CPU)",
            lambda: (
                " -> ".join(f"{st['n_out']:,}" for st in nf["funnel"])
                + f" in {nf['sampling_screen_s'] / 3600:.2f} h at load ~{nf['load_avg_1min_during_run']['mean']:.1f} "
                f"({nf['sampling_screen_cpu_s'] / 3600:.2f} h CPU over {nf['workers']} workers)"
            ),
            "10^5 stable < 2 h on 2 cores",
            "nomad_funnel.py",
        )
    )
    rows.append(
        _row(
            "NRA: MILP median; all designs within 5 % for the models",
            lambda: f"{nn['milp_solve_s_median']:.2f} s; {nn['designs_enumerated']} designs in {nn['enumeration_s']:.0f} s",
            "10 models < 2 min (paper: ~1 h with CPLEX)",
            "nomad_nra.py",
        )
    )
    rows.append(
        _row(
            "NRA best predicted yield gain (log-linear, within the NRA bounds)",
            lambda: f"{100 * nn['best_yield_gain']:.0f} %",
            "-",
            "nomad_nra.py",
        )
    )
    rows.append(
        _row(
            "verified batch titer at reference end, non-viable strains as zero: best design / MCA baseline vs reference "
            "(models above reference; design above baseline) [baseline titer ratio as simulated, viability ignored]",
            lambda: (
                f"{100 * nn['best_verified_titer_gain_batch']:+.0f} % / {100 * (nn['baseline_titer_ratio_batch']['viability_rule'] - 1):+.0f} % "
                f"[{100 * (nn['baseline_titer_ratio_batch']['as_simulated'] - 1):+.0f} %] "
                f"({100 * list(nn['fraction_models_titer_above_reference_batch'].values())[0]:.0f} % / "
                f"{100 * nn['fraction_models_titer_above_reference_batch']['MCA baseline']:.0f} %; "
                f"{100 * list(nn['fraction_models_titer_above_baseline_batch'].values())[0]:.0f} %)"
            ),
            "beat reference and baseline",
            "nomad_nra.py",
        )
    )
    npp = _load("nomad_paper")
    rows.append(
        _row(
            "NOMAD paper claims under the viability rule [as simulated]: DDPA in every top design; 2-/3-fold above "
            "10-/20-fold; aroG^fbr+tktA > aroG^fbr > reference; designs > aroG^fbr+tktA; robust to +-50 %; reference titer",
            lambda: (
                " / ".join(
                    f"{t['value']} [{t.get('value_as_simulated', t['value'])}]"
                    for t in (
                        npp["targets"][k]
                        for k in (
                            "ddpa_in_every_top_design",
                            "closer_groups_higher_mean_titer",
                            "aroGfbr_tktA_above_aroGfbr_above_reference",
                            "top_designs_median_above_aroGfbr_tktA",
                            "top_designs_robust_to_50_percent",
                        )
                    )
                )
                + f"; {npp['strain_median_titer_g_per_l_as_simulated']['reference']:.2f} g/L"
            ),
            "all true; 0.31 g/L (paper)",
            "nomad_paper.py",
        )
    )
    cd = _load("codesign")
    rows.append(
        _row(
            "co-design feed optimisation (mean over 2 models): shooting vs collocation",
            lambda: (
                f"{cd['feed']['shooting_mean']['wall_s']:.0f} s, {cd['feed']['shooting_mean']['objective_mmol']:.2f} mmol vs "
                f"{cd['feed']['collocation_mean']['wall_s']:.0f} s, {cd['feed']['collocation_mean']['objective_mmol']:.2f} mmol"
            ),
            "-",
            "codesign.py",
        )
    )
    rows.append(_row("co-design study with the ensemble reused", lambda: f"{cd['study']['total_s']:.0f} s", "-", "codesign.py"))
    return "\n".join(rows)


def _cap(r: dict) -> str:
    """The robust feed cap's CPU time per step of a control record, when it ran."""
    ms = r.get("feed_cap_cpu_ms_median")
    return "" if ms is None else f" [{ms:.0f} ms]"


def update_readme(readme: Path = ROOT / "README.md") -> bool:
    """Replace the table between the README's markers; True when the file changed."""
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme}: the markers {BEGIN!r} ... {END!r} are missing.")
    new = pattern.sub(lambda _: f"{BEGIN}\n{table()}\n{END}", text)
    if new != text:
        readme.write_text(new)
    return new != text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readme", action="store_true", help="rewrite the README's table in place")
    args = ap.parse_args()
    if args.readme:
        print("README.md updated" if update_readme() else "README.md already up to date")
    else:
        print(table())


if __name__ == "__main__":
    main()
