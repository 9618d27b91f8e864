"""Scenario sweeps: one scenario run many times (parameter values x seeds), locally or on Dask.

``mpc-bio sweep SCENARIO --vary kinetics.glucose_vmax=7,10,13 --seeds 20`` resolves the scenario
once, writes one variant per combination (every varied key set, every seed key of the scenario
shifted by the seed index), runs each with :func:`~mpc_bio.scenarios.runner.run_scenario` into
``OUT/runs/<id>/`` (local worker processes, or a Dask cluster by address), and collects one table
and one figure: the distribution of every numeric result, the failures and their messages.

A sweep folder is resumable: ``sweep.json`` records what the sweep is (scenario, values, seeds);
started again with the same arguments, runs that completed are kept and only the others run.
On a Dask cluster the workers must see the same file system as this process.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpc_bio.scenarios.schema import ScenarioError

__all__ = ["SweepResult", "run_sweep", "parse_vary"]


@dataclass(frozen=True, eq=False)
class SweepResult:
    """The runs of one sweep.

    Attributes
    ----------
    out_dir : Path
        The sweep folder (``runs/<id>/`` per run, ``sweep_runs.csv``, ``sweep_summary.json``).
    runs : pandas.DataFrame
        One row per run: ``id``, the varied keys, ``seed_index``, ``status`` (``complete``, or
        ``failed`` for a run that raised or whose summary reports failed solves), ``error``, ``wall_time_s`` and every numeric entry of the run's summary.
    metrics : tuple of str
        The numeric summary columns present in every complete run that vary between runs (the
        figure's panels; the constant ones are in ``summary["constant"]``).
    summary : dict
        Counts (``runs``, ``complete``, ``failed``, ``reused``) and, per metric, mean, std, min,
        p10, median, p90 and max over the complete runs.
    """

    out_dir: Path
    runs: Any
    metrics: tuple[str, ...]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        """Runs that raised instead of completing."""
        return int((self.runs["status"] != "complete").sum())

    def plot(self, **kwargs: Any):
        """Distribution of every metric over the runs (:func:`mpc_bio.plotting.sweep.plot_sweep`)."""
        from mpc_bio.plotting.sweep import plot_sweep

        return plot_sweep(self, **kwargs)


def parse_vary(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["table.key=v1,v2", ...]`` -> ``{"table.key": [v1, v2]}``; each value read as a TOML
    value (numbers, booleans, quoted strings; bare words are strings).

    Raises
    ------
    ScenarioError
        An item is not ``KEY=V1,V2,...`` with a dotted key and at least one value.
    """
    out: dict[str, list[Any]] = {}
    for item in items:
        key, sep, rest = item.partition("=")
        key = key.strip()
        if not sep or not key or not rest.strip():
            raise ScenarioError(f"The option --vary expects TABLE.KEY=V1,V2,...; got {item!r}.")
        if key in out:
            raise ScenarioError(f"The option --vary names {key!r} twice; give all its values in one --vary.")
        out[key] = [_value(v.strip()) for v in rest.split(",")]
    return out


def _value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set(config: dict[str, Any], dotted: str, value: Any, scenario: Path) -> None:
    keys = dotted.split(".")
    node: Any = config
    for k in keys[:-1]:
        if not isinstance(node, dict) or k not in node:
            raise ScenarioError(f"{scenario}: --vary {dotted!r}: the scenario has no table {k!r} there.")
        node = node[k]
    if not isinstance(node, dict) or keys[-1] not in node:
        raise ScenarioError(
            f"{scenario}: --vary {dotted!r}: no key {keys[-1]!r} in that table of the resolved scenario "
            "(see `mpc-bio validate --resolved`)."
        )
    node[keys[-1]] = value


def _variants(resolved: dict[str, Any], vary: Mapping[str, list[Any]], n_seeds: int, scenario: Path) -> list[dict[str, Any]]:
    from mpc_bio.scenarios.runner import find_seeds

    seeds = find_seeds(resolved)
    if n_seeds > 1 and not seeds:
        raise ScenarioError(f"{scenario}: --seeds {n_seeds} needs a seed key in the scenario; it has none.")
    out = []
    keys = list(vary)
    for combo in itertools.product(*(vary[k] for k in keys)):
        for s in range(n_seeds):
            config = json.loads(json.dumps(resolved))  # deep copy of plain TOML data
            for k, v in zip(keys, combo):
                _set(config, k, v, scenario)
            for dotted, base in seeds.items():
                if "[" not in dotted:
                    _set(config, dotted, base + s, scenario)
            out.append({"values": dict(zip(keys, combo)), "seed_index": s, "config": config})
    return out


def _run_one(scenario_path: str, out_dir: str) -> dict[str, Any]:
    """Run one variant (in a worker); never raises: failures are returned as data."""
    from mpc_bio.scenarios.runner import run_scenario

    t0 = time.perf_counter()
    try:
        res = run_scenario(scenario_path, out_dir, progress=False, overwrite=True)
        return {**_outcome(res.summary), "wall_time_s": time.perf_counter() - t0, "summary": res.summary}
    except Exception as exc:  # noqa: BLE001 - a failed run is a result of the sweep
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "wall_time_s": time.perf_counter() - t0, "summary": {}}


def _outcome(summary: Mapping[str, Any]) -> dict[str, str]:
    """``status`` and ``error`` of a finished run: "failed" when its summary reports failed solves that
    invalidate its result; a "degraded" run (e.g. failed MPC steps) is complete, its failed solves counted."""
    if summary.get("status", "ok") in ("ok", "degraded"):
        return {"status": "complete", "error": ""}
    return {"status": "failed", "error": "result failed: " + "; ".join(map(str, summary.get("failures", [])))}


def _numbers(summary: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in summary.items():
        name = f"{prefix}{k}"
        if isinstance(v, bool):
            out[name] = float(v)
        elif isinstance(v, (int, float)):
            out[name] = float(v)
        elif isinstance(v, Mapping) and not prefix:
            out.update(_numbers(v, f"{name}."))
    return out


def run_sweep(
    scenario: str | Path,
    out_dir: str | Path,
    *,
    vary: Mapping[str, Sequence[Any]] | None = None,
    seeds: int = 1,
    n_workers: int | None = 1,
    scheduler: str | Any | None = None,
    overwrite: bool = False,
    progress: bool = True,
    status: bool | None = None,
) -> SweepResult:
    """Run a scenario for every combination of ``vary`` values and ``seeds`` seed shifts.

    Parameters
    ----------
    scenario : str or Path
        A scenario TOML file (any kind).
    out_dir : str or Path
        The sweep folder.
    vary : mapping, optional
        Dotted key of the resolved scenario (``"kinetics.glucose_vmax"``) -> values.
    seeds : int
        Runs per combination; run ``s`` adds ``s`` to every seed key of the scenario.
    n_workers : int or None
        Local worker processes (None: every core; 1: in this process). Ignored with ``scheduler``.
    scheduler : str or distributed.Client, optional
        Dask scheduler address: the runs go to that cluster.
    overwrite : bool
        Replace a sweep folder that holds another sweep (a folder of the same sweep is resumed).
    progress : bool
        Show a progress bar over the runs.
    status : bool, optional
        Without the progress bar, print one status line (on stderr) when the sweep starts and
        when each run ends; default ``progress``.

    Raises
    ------
    ScenarioError
        The scenario is invalid, a varied key does not exist, or a variant is invalid.
    OutputError
        ``out_dir`` holds something else and ``overwrite`` is False, or cannot be written.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from mpc_bio.outputs import OutputError, check_output_dir
    from mpc_bio.scenarios.runner import run_status, validate_scenario
    from mpc_bio.scenarios.schema import dump_toml

    scenario = Path(scenario)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ScenarioError(f"The 'seeds' parameter of run_sweep must be a positive integer; got {seeds!r}.")
    vary = {k: list(v) for k, v in (vary or {}).items()}
    resolved = validate_scenario(scenario)
    variants = _variants(resolved, vary, seeds, scenario)
    spec = {
        "scenario": str(scenario.resolve()),
        "scenario_sha256": hashlib.sha256(scenario.read_bytes()).hexdigest(),
        "vary": vary,
        "seeds": seeds,
    }
    out = Path(out_dir)
    record = out / "sweep.json"
    same = record.is_file() and json.loads(record.read_text()).get("spec") == spec
    if not same:
        check_output_dir(out, overwrite=overwrite, option="sweep output")
        if out.is_dir() and overwrite:
            shutil.rmtree(out)
    try:
        (out / "variants").mkdir(parents=True, exist_ok=True)
        (out / "runs").mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot write the sweep folder {str(out)!r}: {exc.strerror}.") from None
    record.write_text(json.dumps({"spec": spec, "n_runs": len(variants)}, indent=1))
    jobs, rows, reused = [], {}, 0
    for i, v in enumerate(variants):
        rid = f"{i:04d}"
        vpath = out / "variants" / f"{rid}.toml"
        vpath.write_text(
            f"# variant {rid} of the sweep of {scenario}: {v['values']} seed index {v['seed_index']}\n" + dump_toml(v["config"])
        )
        validate_scenario(vpath)  # a bad value fails here, before any run
        run_dir = out / "runs" / rid
        if run_status(run_dir) == "complete":
            summary = json.loads((run_dir / "summary.json").read_text())
            rows[rid] = {**_outcome(summary), "wall_time_s": summary.get("wall_time_s", float("nan")), "summary": summary}
            reused += 1
        else:
            jobs.append((rid, str(vpath), str(run_dir)))
    bar = tqdm(total=len(variants), initial=reused, disable=not progress, unit="run", desc=f"sweep {scenario.stem}")
    lines = (progress if status is None else status) and not progress
    t0 = time.perf_counter()

    def say(text: str) -> None:
        if lines:
            print(f"[{time.perf_counter() - t0:7.1f} s] sweep {scenario.stem}: {text}", file=sys.stderr, flush=True)

    say(f"{len(jobs)} run(s) to do, {reused} complete from before, {len(variants)} in all")
    try:
        for rid, res in _execute(jobs, n_workers, scheduler):
            rows[rid] = res
            bar.update(1)
            say(f"run {rid} {res['status']} in {res['wall_time_s']:.1f} s ({len(rows)} of {len(variants)} done)")
            if res["status"] != "complete" and progress:
                bar.write(f"run {rid} failed: {res['error'][:200]}")
            elif res["status"] != "complete":
                say(f"run {rid} failed: {res['error'][:200]}")
    finally:
        bar.close()
    table = []
    for i, v in enumerate(variants):
        rid = f"{i:04d}"
        res = rows[rid]
        table.append(
            {
                "id": rid,
                **v["values"],
                "seed_index": v["seed_index"],
                "status": res["status"],
                "error": res["error"],
                "wall_time_s": res["wall_time_s"],
                **_numbers(res["summary"]),
            }
        )
    runs = pd.DataFrame(table)
    fixed = {"id", "seed_index", "status", "error", "wall_time_s", *vary}
    done = runs[runs["status"] == "complete"]
    numeric = [c for c in runs.columns if c not in fixed and len(done) and done[c].notna().all() and pd.api.types.is_numeric_dtype(runs[c])]
    spread = {c: float(done[c].max() - done[c].min()) for c in numeric}
    metrics = tuple(c for c in numeric if spread[c] > 1e-9 * max(1.0, float(done[c].abs().max())))
    constant = {c: float(done[c].iloc[0]) for c in numeric if c not in metrics}
    stats = {}
    for m in metrics:
        col = done[m].astype(float)
        stats[m] = {
            "mean": col.mean(),
            "std": col.std(ddof=0),
            "min": col.min(),
            "p10": col.quantile(0.1),
            "median": col.median(),
            "p90": col.quantile(0.9),
            "max": col.max(),
        }
    summary = {
        "runs": len(runs),
        "complete": int(len(done)),
        "failed": int(len(runs) - len(done)),
        "reused": reused,
        "failures": {r["id"]: r["error"] for r in table if r["status"] != "complete"},
        "metrics": stats,
        "constant": constant,
    }
    runs.to_csv(out / "sweep_runs.csv", index=False)
    (out / "sweep_summary.json").write_text(json.dumps(summary, indent=1, default=float))
    result = SweepResult(out_dir=out, runs=runs, metrics=metrics, summary=summary)
    if metrics:
        import matplotlib.pyplot as plt

        fig = result.plot()
        fig.savefig(out / "sweep.png", dpi=120)
        plt.close(fig)
    return result


def _execute(jobs: list[tuple[str, str, str]], n_workers: int | None, scheduler: Any):
    """Yield ``(id, result)`` as runs finish: in this process, a local process pool, or Dask."""
    import os

    if not jobs:
        return
    if scheduler is not None:
        from dask.distributed import as_completed

        from mpc_bio.cluster import connect_scheduler

        client = connect_scheduler(scheduler)
        try:
            futs = {
                client.submit(_run_one, path, run_dir, pure=False, key=f"sweep-run-{rid}-{time.time_ns()}"): rid
                for rid, path, run_dir in jobs
            }
            for fut in as_completed(futs):
                yield futs[fut], fut.result()
        finally:
            if client is not scheduler:
                client.close()
        return
    workers = (os.cpu_count() or 1) if n_workers is None else int(n_workers)
    if workers <= 1 or len(jobs) == 1:
        for rid, path, run_dir in jobs:
            yield rid, _run_one(path, run_dir)
        return
    import multiprocessing as mp
    from concurrent.futures import as_completed

    from mpc_bio.interrupts import worker_pool

    # an interrupted or abandoned sweep (Ctrl-C, SIGTERM, the generator closed) kills its workers
    with worker_pool(min(workers, len(jobs)), mp.get_context("spawn")) as ex:
        futs = {ex.submit(_run_one, path, run_dir): rid for rid, path, run_dir in jobs}
        for fut in as_completed(futs):
            yield futs[fut], fut.result()
