"""The screening funnel streamed over a large population of kinetic models, chunk by chunk.

Each chunk of model numbers is one task on the executor (:func:`mpc_bio.nomad.executor.run_chunks`:
this process, local processes or a Dask cluster): the task samples its models
(:func:`~mpc_bio.nomad.ensemble.sample_ensemble` with ``index``: model m is the same whichever
chunk holds it), linearises them and runs screening stages (i)-(iv) on them
(:mod:`mpc_bio.nomad.screening`), and returns only counts, timings, the eigen summary of every model
and the numbers of the models passing stage (ii) and beyond. No task holds more than one chunk of
parameters, so memory does not grow with the population; the survivors are sampled again from
their numbers (:meth:`FunnelResult.survivor_ensemble`).

With an output directory, every finished chunk is written there at once
(``chunks/chunk_<first model>.npz`` and ``.json``) under a manifest of the settings
(``funnel_manifest.json``); run again with the same settings, the funnel reads the chunks already
done and computes only the others, so an interrupted run loses at most the chunks in flight. The
population size is not part of the settings checked: a run extends to more models, and its
first chunks read back as a smaller run.

Timing: per stage, the worker time spent (wall and CPU, summed over tasks) and models per second
of worker time (``n_in / seconds``), the rate one core sustains, from which a cluster run is sized:
``models / (rate x cores)``. Every chunk records when it finished and the machine's load average
then, so the wall time of a run stopped and resumed is the sum of its working spans
(:meth:`FunnelResult.wall_segments`), the pauses between sessions left out.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mpc_bio.nomad.ensemble import KineticEnsemble, sample_ensemble
from mpc_bio.nomad.executor import chunk_indices, run_chunks
from mpc_bio.nomad.mca import linearize_ensemble
from mpc_bio.nomad.network import KineticNetwork
from mpc_bio.nomad.screening import (
    BatchTarget,
    _batch_chunk,
    _default_target,
    _return_chunk,
    _reference_fits,
    _robust_chunk,
    doubling_time,
    robustness_duration,
    stage_names,
)
from mpc_bio.nomad.settings import ExecutorSettings, NomadSettingsError, SamplingSettings, ScreeningSettings
from mpc_bio.nomad.steady_state import ReferenceStates
from mpc_bio.outputs import json_default

__all__ = ["Clock", "FunnelResult", "run_funnel", "FUNNEL_STAGES"]

#: Steps timed per chunk, in order (stage iii is named per ``nonlinear_check``).
FUNNEL_STAGES = ("sampling", "linear_stability", "time_constant", "stage_iii", "robustness")
_MANIFEST = "funnel_manifest.json"
_FORMAT = "mpc_bio.nomad.funnel/1"


class Clock:
    """Wall and CPU time of a ``with`` block, in this process.

    Attributes
    ----------
    wall : float
        Elapsed wall-clock time (s, :func:`time.perf_counter`), set when the block ends.
    cpu : float
        CPU time of this process, all threads (s, :func:`time.process_time`), set when the block ends.

    Examples
    --------
    >>> with Clock() as c:
    ...     _ = sum(range(1000))
    >>> c.wall >= 0.0 and c.cpu >= 0.0
    True
    """

    def __enter__(self) -> Clock:
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self._wall0, time.process_time() - self._cpu0


def _chunk_task(args) -> dict:
    """Sample, linearise and screen the models numbered ``index``; return counts, times and survivors."""
    network, states, sampling, screening, t_double, target, index, stages = args
    index = np.asarray(index, dtype=int)
    times: dict[str, tuple[float, float]] = {}
    counts: dict[str, tuple[int, int]] = {}
    with Clock() as c:
        ens = sample_ensemble(network, states, sampling, index=index)
    times["sampling"], counts["sampling"] = (c.wall, c.cpu), (index.size, index.size)
    with Clock() as c:
        lin = linearize_ensemble(ens)
        stable = lin.max_real < 0.0
    times["linear_stability"], counts["linear_stability"] = (c.wall, c.cpu), (index.size, int(stable.sum()))
    out = {
        "index": index,
        "max_real": lin.max_real,
        "time_constant": lin.time_constant,
        "passed": {"linear_stability": int(stable.sum())},
        "survivors": {},
        "batch": {},
        "return_deviation": {},
        "robustness_growth": {},
    }
    current = np.flatnonzero(stable)
    if stages >= 2:
        with Clock() as c:
            fast = current[lin.time_constant[current] < screening.time_constant_fraction * t_double]
        times["time_constant"], counts["time_constant"] = (c.wall, c.cpu), (current.size, fast.size)
        current = fast
        out["survivors"]["time_constant"] = index[current]
    if stages >= 3:
        with Clock() as c:
            n_in = current.size
            if current.size and screening.nonlinear_check == "batch_data":
                fit = _batch_chunk((ens.subset(current), index[current], screening, target))
                out["batch"] = fit
                current = np.array([k for k in current if fit[int(index[k])]["passed"]], dtype=int)
            elif current.size and screening.n_perturbations > 0:
                dev = _return_chunk((ens.subset(current), index[current], screening, t_double))
                out["return_deviation"] = dev
                current = np.array([k for k in current if dev[int(index[k])] <= screening.return_tolerance], dtype=int)
        times["stage_iii"], counts["stage_iii"] = (c.wall, c.cpu), (n_in, current.size)
        out["survivors"]["stage_iii"] = index[current]
    if stages >= 4:
        with Clock() as c:
            n_in = current.size
            if current.size and screening.n_robustness > 0:
                duration = robustness_duration(network, screening)
                reference = _reference_fits(screening, duration, out["batch"])
                growth = _robust_chunk((ens.subset(current), index[current], screening, duration, target, reference))
                out["robustness_growth"] = growth
                current = np.array([k for k in current if growth[int(index[k])] >= screening.min_growth_fraction], dtype=int)
        times["robustness"], counts["robustness"] = (c.wall, c.cpu), (n_in, current.size)
        out["survivors"]["robustness"] = index[current]
    out["times"], out["counts"] = times, counts
    return out


@dataclass(frozen=True, eq=False)
class FunnelResult:
    """Counts, rates and survivors of a streamed funnel.

    Attributes
    ----------
    network : KineticNetwork
    states : ReferenceStates
    sampling : SamplingSettings
    screening : ScreeningSettings
    stage_names : tuple of str
        Names of the timed steps (``sampling``, then the stages run).
    counts : dict of str to (int, int)
        (models in, models out) per step.
    seconds : dict of str to (float, float)
        Worker (wall, CPU) seconds per step, summed over chunks.
    wall_seconds : float
        Wall time of the whole run in this process (s), chunks read back from disk included as 0.
    survivors : dict of str to ndarray of int
        Model numbers passing stage (ii) and each later stage.
    max_real, time_constant : ndarray (n_models,)
        Largest eigenvalue real part (1/h) and dominant time constant (h) of every model, by number.
    batch : dict of int to dict
        Stage (iii) readout per model screened (:func:`~mpc_bio.nomad.screening.batch_fit`).
    return_deviation, robustness_growth : dict of int to float
    doubling_time : float
        h.
    target : BatchTarget
    n_chunks_resumed : int
        Chunks read from an earlier run's files.
    span_seconds : float or None
        With an output directory: from the run's first start (the manifest) to the last chunk
        written (s); pauses between a stopped run and its resumption included.
    started_unix : float or None
        With an output directory: when the run first started (the manifest; s since the epoch).
    chunk_finished_unix : dict of int to float
        First model number of each chunk -> when it finished (s since the epoch).
    chunk_load_avg : dict of int to tuple of float
        First model number of each chunk -> the machine's 1-, 5- and 15-minute load average when
        it finished (chunks written by older versions have none).
    """

    network: KineticNetwork
    states: ReferenceStates
    sampling: SamplingSettings
    screening: ScreeningSettings
    stage_names: tuple[str, ...]
    counts: dict[str, tuple[int, int]]
    seconds: dict[str, tuple[float, float]]
    wall_seconds: float
    survivors: dict[str, np.ndarray]
    max_real: np.ndarray
    time_constant: np.ndarray
    doubling_time: float
    target: BatchTarget
    batch: dict[int, dict] = field(default_factory=dict)
    return_deviation: dict[int, float] = field(default_factory=dict)
    robustness_growth: dict[int, float] = field(default_factory=dict)
    n_chunks_resumed: int = 0
    span_seconds: float | None = None
    started_unix: float | None = None
    chunk_finished_unix: dict[int, float] = field(default_factory=dict)
    chunk_load_avg: dict[int, tuple[float, float, float]] = field(default_factory=dict)

    @property
    def n_sampled(self) -> int:
        return int(self.counts["sampling"][0])

    @property
    def n_stable(self) -> int:
        return int(self.counts["linear_stability"][1])

    @property
    def final(self) -> np.ndarray:
        """Model numbers passing the last stage run."""
        last = [k for k in ("robustness", "stage_iii", "time_constant") if k in self.survivors]
        return self.survivors[last[0]] if last else np.flatnonzero(self.max_real < 0)

    def survivor_ensemble(self, stage: str | None = None) -> KineticEnsemble:
        """The models passing ``stage`` (default the last), sampled again from their numbers."""
        idx = self.final if stage is None else self.survivors[stage]
        return sample_ensemble(self.network, self.states, self.sampling, index=np.sort(idx))

    # per chunk (first model -> value), filled by run_funnel
    _chunk_wall: dict[int, float] = field(default_factory=dict, repr=False)
    _chunk_size: dict[int, int] = field(default_factory=dict, repr=False)

    def funnel(self) -> list[dict]:
        """One dictionary per step: name, n_in, n_out, worker seconds (wall, CPU) and models per second of worker time."""
        rows = []
        for key, name in zip(FUNNEL_STAGES, self.stage_names):
            if key not in self.counts:
                continue
            (n_in, n_out), (wall, cpu) = self.counts[key], self.seconds[key]
            rows.append(
                {
                    "name": name,
                    "n_in": int(n_in),
                    "n_out": int(n_out),
                    "count": int(n_out),
                    "seconds": wall,
                    "cpu_seconds": cpu,
                    "models_per_s": n_in / wall if wall > 0 and n_in else None,
                    "models_per_s_cpu": n_in / cpu if cpu > 0 and n_in else None,
                    "pass_fraction": n_out / n_in if n_in else None,
                }
            )
        return rows

    def chunk_worker_seconds(self, start: int) -> float:
        """Worker wall time (s) of the chunk whose first model is ``start``."""
        return float(self._chunk_wall.get(start, 0.0))

    def wall_segments(self, max_gap: float = 600.0) -> list[dict]:
        """The spans in which the run worked, from the chunks' finishing times.

        Chunks finishing within ``max_gap`` s of the previous one belong to one span. The first
        span starts at :attr:`started_unix` (when known); a later span (a resumed run) starts when
        its first chunk started (its finishing time less its worker wall time), so the start-up of
        a resumption (network and reference states, ~15 s) is not counted.

        Parameters
        ----------
        max_gap : float
            s; longer than the slowest chunk takes.

        Returns
        -------
        list of dict
            ``start_unix``, ``end_unix``, ``wall_s``, ``n_chunks``, ``n_models`` and, when the chunks
            recorded it, ``load_avg_1min`` (mean, min, max over the span's chunks), in time order.
        """
        order = sorted(self.chunk_finished_unix.items(), key=lambda kv: kv[1])
        groups: list[list[tuple[int, float]]] = []
        for start, t in order:
            if groups and t - groups[-1][-1][1] <= max_gap:
                groups[-1].append((start, t))
            else:
                groups.append([(start, t)])
        out = []
        for g, chunks in enumerate(groups):
            first_start, first_end = chunks[0]
            t0 = first_end - self.chunk_worker_seconds(first_start)
            if g == 0 and self.started_unix is not None:
                t0 = min(t0, self.started_unix)
            t1 = chunks[-1][1]
            load = [self.chunk_load_avg[k][0] for k, _ in chunks if k in self.chunk_load_avg]
            sizes = self._chunk_size
            out.append(
                {
                    "start_unix": t0,
                    "end_unix": t1,
                    "wall_s": t1 - t0,
                    "n_chunks": len(chunks),
                    "n_models": int(sum(sizes.get(k, 0) for k, _ in chunks)),
                    "load_avg_1min": {"mean": float(np.mean(load)), "min": float(min(load)), "max": float(max(load)), "n_chunks": len(load)}
                    if load
                    else None,
                }
            )
        return out

    def summary(self) -> dict:
        """JSON-ready: sizes, the funnel, the stable fraction, wall time and the reference strain's target."""
        worker = sum(w for w, _ in self.seconds.values())
        return {
            "format": _FORMAT,
            "n_reactions": self.network.n_reactions,
            "n_metabolites": self.network.n_metabolites,
            "models_sampled": self.n_sampled,
            "models_linearly_stable": self.n_stable,
            "stable_fraction": self.n_stable / self.n_sampled if self.n_sampled else None,
            "n_reference_states": self.states.n_states,
            "doubling_time_h": self.doubling_time,
            "funnel": self.funnel(),
            "n_screened": int(self.final.size),
            "screened_models": [int(m) for m in self.final],
            "wall_seconds": self.wall_seconds,
            "worker_seconds": worker,
            "parallel_efficiency_wall": worker / self.wall_seconds if self.wall_seconds > 0 else None,
            "n_chunks_resumed": self.n_chunks_resumed,
            "span_seconds": self.span_seconds,
            "wall_segments": self.wall_segments(),
            "target": self.target.to_dict(),
            "screening": self.screening.to_dict(),
            "sampling": self.sampling.to_dict(),
        }


def _fingerprint(network, states, sampling, screening, stages: int, chunk_size: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(network.to_dict(), sort_keys=True, default=json_default).encode())
    for a in (states.concentrations, states.ln_keq, states.state_fluxes, states.fixed_concentrations):
        h.update(np.ascontiguousarray(a, dtype=float).tobytes())
    # the population size is left out: model m is the same in any population, so a run can be
    # extended to more models, or its first chunks read as a smaller run
    population = {k: v for k, v in sampling.to_dict().items() if k != "n_models"}
    h.update(json.dumps([population, screening.to_dict(), stages, chunk_size], sort_keys=True, default=json_default).encode())
    return h.hexdigest()


def _write_chunk(directory: Path, res: dict) -> None:
    start = int(res["index"][0])
    stem = directory / f"chunk_{start:010d}"
    tmp = stem.with_suffix(".tmp.npz")
    np.savez(tmp, index=res["index"], max_real=res["max_real"], time_constant=res["time_constant"])
    meta = {k: res[k] for k in ("counts", "times", "batch", "return_deviation", "robustness_growth", "passed", "finished_unix", "load_avg")}
    meta["survivors"] = {k: [int(i) for i in v] for k, v in res["survivors"].items()}
    stem.with_suffix(".tmp.json").write_text(json.dumps(meta, default=json_default))
    tmp.replace(stem.with_suffix(".npz"))
    stem.with_suffix(".tmp.json").replace(stem.with_suffix(".json"))


def _read_chunk(directory: Path, start: int) -> dict | None:
    stem = directory / f"chunk_{start:010d}"
    if not (stem.with_suffix(".npz").is_file() and stem.with_suffix(".json").is_file()):
        return None
    with np.load(stem.with_suffix(".npz")) as z:
        res = {k: z[k] for k in z.files}
    meta = json.loads(stem.with_suffix(".json").read_text())
    res.update({k: meta[k] for k in ("counts", "times", "return_deviation", "robustness_growth", "passed")})
    res["batch"] = {int(k): v for k, v in meta["batch"].items()}
    res["return_deviation"] = {int(k): v for k, v in meta["return_deviation"].items()}
    res["robustness_growth"] = {int(k): v for k, v in meta["robustness_growth"].items()}
    res["survivors"] = {k: np.asarray(v, dtype=int) for k, v in meta["survivors"].items()}
    res["finished_unix"] = meta.get("finished_unix")
    res["load_avg"] = meta.get("load_avg")
    return res


def run_funnel(
    network: KineticNetwork,
    states: ReferenceStates,
    sampling: SamplingSettings | None = None,
    screening: ScreeningSettings | None = None,
    executor: ExecutorSettings | None = None,
    out_dir: str | Path | None = None,
    stages: int = 4,
    read_only: bool = False,
) -> FunnelResult:
    """Sample ``sampling.n_models`` models and screen them, streamed in chunks of ``executor.chunk_size``.

    Parameters
    ----------
    network : KineticNetwork
    states : ReferenceStates
    sampling : SamplingSettings, optional
        Population size, saturation bounds, seed.
    screening : ScreeningSettings, optional
        Stages (ii)-(iv) (``max_nonlinear_models`` does not apply: every chunk screens all its models).
    executor : ExecutorSettings, optional
        Local processes or a Dask scheduler; ``chunk_size`` models per task.
    out_dir : str or Path, optional
        Chunks are written here as they finish (and read back when the run is repeated with the
        same settings).
    stages : int
        Last stage run (1-4).
    read_only : bool
        Only read the chunks already written to ``out_dir`` (the result of a run stopped part way:
        counts and rates of the chunks it finished); compute nothing.

    Raises
    ------
    NomadSettingsError
        If ``stages`` is not 1-4, or ``out_dir`` holds a funnel run with other settings.
    """
    sampling = sampling or SamplingSettings()
    screening = screening or ScreeningSettings()
    executor = executor or ExecutorSettings()
    if stages not in (1, 2, 3, 4):
        raise NomadSettingsError(f"The 'stages' parameter of run_funnel must be 1, 2, 3 or 4. Got {stages!r} instead.")
    t_start = time.perf_counter()
    t_double = doubling_time(network, screening)
    target = (
        _default_target(screening) if stages >= 3 else BatchTarget(screening.reference_strain, screening.biomass0, None, None, None, "")
    )
    chunks = chunk_indices(np.arange(sampling.n_models), executor.chunk_size)
    done: dict[int, dict] = {}
    directory = None
    if out_dir is not None:
        out = Path(out_dir)
        directory = out / "chunks"
        directory.mkdir(parents=True, exist_ok=True)
        fp = _fingerprint(network, states, sampling, screening, stages, executor.chunk_size)
        manifest = out / _MANIFEST
        if manifest.is_file():
            old = json.loads(manifest.read_text()).get("fingerprint")
            if old != fp:
                raise NomadSettingsError(
                    f"{str(out)!r} holds a funnel run with other settings (fingerprint {old!r}, expected {fp!r}); "
                    f"use another output directory or remove it."
                )
        else:
            manifest.write_text(
                json.dumps(
                    {
                        "format": _FORMAT,
                        "fingerprint": fp,
                        "started_unix": time.time(),
                        "chunk_size": executor.chunk_size,
                        "stages": stages,
                        "sampling": sampling.to_dict(),
                        "screening": screening.to_dict(),
                    },
                    indent=1,
                    default=json_default,
                )
            )
        for c in chunks:
            res = _read_chunk(directory, int(c[0]))
            if res is not None and np.array_equal(res["index"], c):  # a last, shorter chunk of a smaller run is redone
                done[int(c[0])] = res
    if read_only and directory is None:
        raise NomadSettingsError("run_funnel(read_only=True) needs the out_dir of an earlier run.")
    todo = [] if read_only else [c for c in chunks if int(c[0]) not in done]

    def _save(k: int, res: dict) -> None:
        res["finished_unix"], res["load_avg"] = time.time(), list(os.getloadavg())
        if directory is not None:
            _write_chunk(directory, res)

    items = [(network, states, sampling, screening, t_double, target, c, stages) for c in todo]
    results = run_chunks(_chunk_task, items, executor, desc="funnel", on_result=_save)
    span = started = None
    if directory is not None:
        started = json.loads((Path(out_dir) / _MANIFEST).read_text()).get("started_unix")
        ends = [r.get("finished_unix") for r in done.values()] + ([time.time()] if results else [])
        ends = [e for e in ends if e is not None]
        span = max(ends) - started if ends and started else None
    all_res = sorted(list(done.values()) + results, key=lambda r: int(r["index"][0]))
    counts: dict[str, list[int]] = {}
    seconds: dict[str, list[float]] = {}
    survivors: dict[str, list[np.ndarray]] = {}
    batch, dev, growth = {}, {}, {}
    all_res = [r for r in all_res if int(r["index"][0]) < sampling.n_models]
    for r in all_res:
        for k, (a, b) in r["counts"].items():
            counts.setdefault(k, [0, 0])
            counts[k][0] += int(a)
            counts[k][1] += int(b)
        for k, (w, c) in r["times"].items():
            seconds.setdefault(k, [0.0, 0.0])
            seconds[k][0] += float(w)
            seconds[k][1] += float(c)
        for k, v in r["survivors"].items():
            survivors.setdefault(k, []).append(np.asarray(v, dtype=int))
        batch.update(r["batch"])
        dev.update(r["return_deviation"])
        growth.update(r["robustness_growth"])
    max_real = np.concatenate([r["max_real"] for r in all_res]) if all_res else np.zeros(0)
    tau = np.concatenate([r["time_constant"] for r in all_res]) if all_res else np.zeros(0)
    names = ("sampling",) + stage_names(screening)
    return FunnelResult(
        network=network,
        states=states,
        sampling=sampling,
        screening=screening,
        stage_names=names,
        counts={k: (v[0], v[1]) for k, v in counts.items()},
        seconds={k: (v[0], v[1]) for k, v in seconds.items()},
        wall_seconds=time.perf_counter() - t_start,
        survivors={k: np.concatenate(v) for k, v in survivors.items()},
        max_real=max_real,
        time_constant=tau,
        doubling_time=t_double,
        target=target,
        batch=batch,
        return_deviation=dev,
        robustness_growth=growth,
        n_chunks_resumed=len(done),
        span_seconds=span,
        started_unix=started,
        chunk_finished_unix={int(r["index"][0]): float(r["finished_unix"]) for r in all_res if r.get("finished_unix") is not None},
        chunk_load_avg={int(r["index"][0]): tuple(float(x) for x in r["load_avg"]) for r in all_res if r.get("load_avg") is not None},
        _chunk_wall={int(r["index"][0]): float(sum(w for w, _ in r["times"].values())) for r in all_res},
        _chunk_size={int(r["index"][0]): int(len(r["index"])) for r in all_res},
    )
