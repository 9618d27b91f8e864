"""One call from a cobra model to a control-ready surrogate: sample, find the kinks, train, test.

:func:`build_surrogate` runs the whole recipe within a stated time budget, with nothing typed in for
a particular model:

1. a pilot of pFBA solves measures the cost of a point; the grid over the box is as fine as the
   sampling share of the budget allows (at most the paper's 201 values per input);
2. :func:`mpc_bio.metabolism.switches.find_kink_lines` reads where the solution's active set changes
   between neighbouring grid points, bisects there on fresh solves and keeps the straight phase
   boundaries: the kink lines of the map;
3. the grid is refined where interpolation misses pFBA (the quadtree of
   :func:`mpc_bio.metabolism.refine_cells`), level by level until the refinement share of the
   budget is spent;
4. a network with those lines as kink features (their widths in units of the grid step, the input
   knees a fraction of the box) is trained for the rest of the budget, a mean-squared-error stage
   and then an L^p stage for the worst case, sharing the time in the ratio of their epochs (a
   pilot of 1 and 4 epochs bounds the epochs; the time limit of the training ends each stage with
   its learning rate decayed, so a slower machine gives fewer epochs, never a skipped stage);
5. fresh pFBA solves at Latin-hypercube points off the training data (another seed) judge it.

Every constant is a default of :class:`BuildSettings`, relative to the box, the grid step or the
flux ranges; nothing is specific to a model.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mpc_bio.interrupts import check_interrupt
from mpc_bio.metabolism.settings import DEFAULT_INPUTS, TIE_BREAKS, PFBASettings, SettingsError
from mpc_bio.settings import POSITIVE, Settings, setting
from mpc_bio.surrogate.settings import DEVICES

if TYPE_CHECKING:
    import numpy as np

__all__ = ["BuildSettings", "BuildResult", "build_surrogate", "choose_batch_size", "fresh_point_errors"]


_BOX_ROWS = "(name, low, high) rows of an input name and two finite numbers >= 0 (mmol/gDW/h)"
_SHARES = ("grid_share", "kink_share", "refine_share", "eval_share")
_SHARE = {"unit": "-", "low": 0.0}


@dataclass(frozen=True)
class BuildSettings(Settings):
    """How :func:`build_surrogate` turns a model into a surrogate (general defaults, no model constants);
    each field is documented where it is declared. ``grid_share + kink_share + refine_share +
    eval_share`` must stay below 0.9 (training gets the rest of the budget)."""

    error: ClassVar[type] = SettingsError

    inputs: tuple[tuple[str, str], ...] = setting(
        DEFAULT_INPUTS, min_items=1, doc="Named uptake inputs, (name, exchange reaction id) pairs (a mapping is accepted)."
    )
    box: tuple[tuple[str, float, float], ...] = setting(
        (),
        unit="mmol/gDW/h",
        low=0.0,
        expected=_BOX_ROWS,
        doc=(
            "(name, low, high) per input: the training domain (0 <= low < high; a mapping {name: (low, high)} is "
            "accepted). Inputs not named get 0-20 mmol/gDW/h, the paper's box."
        ),
    )
    time_budget_min: float = setting(
        30.0,
        unit="min",
        **POSITIVE,
        high=1e5,
        high_strict=True,
        expected="a positive number of minutes",
        doc=(
            "Wall-time budget of the whole build. The grid and the refinement points are sized to it from measured "
            "costs; training runs under a time limit (the rest of the budget less the fresh-point test). The report "
            "says whether the budget was exceeded."
        ),
    )
    seed: int = setting(
        0,
        low=0,
        doc=(
            "Seed of the training (weights, split, batches) and of the kink search; the fresh test points use "
            "seed + 7919 (never the training's)."
        ),
    )
    tie_break: str = setting("l2", choices=TIE_BREAKS, doc='pFBA tie-break rule of every solve ("l2": unique, continuous in the inputs).')
    grid_share: float = setting(0.1, **_SHARE, doc="Fraction of the budget for the pFBA grid.")
    kink_share: float = setting(0.1, **_SHARE, doc="Fraction of the budget for the kink search.")
    refine_share: float = setting(0.15, **_SHARE, doc="Fraction of the budget for the refinement.")
    eval_share: float = setting(0.05, **_SHARE, doc="Fraction of the budget for the fresh-point test.")
    grid_max_per_axis: int = setting(201, low=0, doc="Largest number of grid values per input (the paper's grid has 201).")
    grid_min_per_axis: int = setting(21, low=0, doc="Smallest number of grid values per input (>= 2, <= grid_max_per_axis).")
    refine_tolerance: float = setting(
        0.005,
        unit="-",
        **POSITIVE,
        doc=(
            "A cell is refined where multilinear interpolation misses pFBA by more than this fraction of a reaction's "
            "range (see RefineSettings)."
        ),
    )
    refine_depth: int = setting(4, low=0, doc="Largest number of refinement levels.")
    max_kink_lines: int = setting(32, low=0, doc="Largest number of kink lines (the sharpest kinks first).")
    min_kink_jump: float = setting(
        0.01,
        unit="-",
        low=0.0,
        doc=(
            "Kink lines whose change of slope over one grid step is below this fraction of every reaction's range are "
            "left out (min_jump of find_kink_lines)."
        ),
    )
    kink_width_steps: float = setting(
        2e-3, unit="grid steps", **POSITIVE, doc="kink_width of the surrogate (in the largest grid step over the inputs)."
    )
    kink_reach_steps: float = setting(
        0.5,
        unit="grid steps",
        **POSITIVE,
        doc=(
            "kink_reach of the surrogate (> kink_width_steps; in the largest grid step over the inputs: a kink feature "
            "narrower than the data's spacing across its line is unconstrained between the points and can spike)."
        ),
    )
    kink_extra_reach_steps: tuple[float, ...] = setting(
        (0.05, 0.15, 1.5, 5.0),
        unit="grid steps",
        **POSITIVE,
        doc="Further kink reaches (SurrogateSettings.kink_extra_reaches); those at most kink_width_steps are left out.",
    )
    knee_fraction: float = setting(
        0.025, unit="-", **POSITIVE, doc="Input knees (SurrogateSettings.input_knees) as a fraction of each input's span."
    )
    hidden: tuple[int, ...] = setting((64, 64, 64), low=1, min_items=1, unit="neurons", doc="Hidden layer widths.")
    activation_sharpness: float = setting(30.0, unit="-", **POSITIVE, doc="SurrogateSettings.activation_sharpness.")
    growth_weight: float = setting(10.0, unit="-", **POSITIVE, doc="Loss weight of growth relative to other reactions.")
    batch_size: int = setting(
        1024,
        low=1,
        doc=(
            "Largest number of points per Adam step of the mean-squared-error stage; the build halves it (see "
            "choose_batch_size) while an epoch would have fewer than min_steps_per_epoch steps or the training time "
            "fewer than min_adam_steps steps at the cost per step measured by the training pilot. The fine-tuning "
            "stage uses twice the chosen batch (at most SurrogateSettings.finetune_batch_size)."
        ),
    )
    min_batch_size: int = setting(32, low=1, doc="Smallest batch the rule of batch_size may choose (<= batch_size).")
    min_adam_steps: int = setting(
        20000,
        low=0,
        doc=(
            "Adam steps the mean-squared-error stage should get within its time (an optimisation need independent of "
            "the model: below a few thousand steps a net has not left its coarse fit)."
        ),
    )
    min_steps_per_epoch: int = setting(
        16,
        low=0,
        doc="Adam steps each epoch should have (few points: smaller batches, so an epoch is not one or two steps of nearly all the data).",
    )
    finetune_share: float = setting(
        0.3, unit="-", low=0.0, high=1.0, high_strict=True, doc="Fraction of the training epochs spent in the L^p stage."
    )
    finetune_power: int = setting(8, choices=(2, 4, 6, 8, 10, 12, 14, 16), doc="Even exponent p of the fine-tuning loss.")
    n_fresh_points: int = setting(2000, low=1, doc="Fresh Latin-hypercube pFBA points of the final test.")
    n_workers: int = setting(1, low=1, doc="pFBA worker processes.")
    num_threads: int = setting(1, low=0, doc="torch CPU threads (0 keeps torch's default).")
    device: str = setting("auto", choices=DEVICES, doc='"auto", "cpu" or "cuda".')

    def __post_init__(self) -> None:
        if isinstance(self.box, Mapping):  # {name: (low, high)} -> (name, low, high) rows
            rows = []
            for name, pair in self.box.items():
                if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                    raise self.invalid("box", _BOX_ROWS, self.box)
                rows.append((name, *pair))
            object.__setattr__(self, "box", tuple(rows))
        super().__post_init__()

    def _check(self) -> None:
        try:
            pfba = PFBASettings(inputs=self.inputs, tie_break=self.tie_break)
        except SettingsError as exc:
            raise SettingsError(f"BuildSettings: {exc}") from None
        self._set("inputs", pfba.inputs)
        names = [n for n, _ in pfba.inputs]
        box = {}
        for name, lo, hi in self.box:
            if name not in names:
                raise self.invalid("box", f"rows naming the inputs {names}", name)
            if not lo < hi:
                raise self.invalid("box", f"a non-empty range 0 <= low < high (mmol/gDW/h) for {name!r}", (lo, hi))
            box[name] = (lo, hi)
        self._set("box", tuple((n, *box.get(n, (0.0, 20.0))) for n in names))
        shares = tuple(getattr(self, n) for n in _SHARES)
        if sum(shares) >= 0.9:
            raise self.invalid(", ".join(_SHARES), "non-negative fractions summing below 0.9", shares)
        if not 2 <= self.grid_min_per_axis <= self.grid_max_per_axis:
            raise self.invalid(
                "grid_min_per_axis", f"an integer in [2, grid_max_per_axis = {self.grid_max_per_axis}]", self.grid_min_per_axis
            )
        if self.min_batch_size > self.batch_size:
            raise self.invalid("min_batch_size", f"an integer in [1, batch_size = {self.batch_size}]", self.min_batch_size)
        if self.kink_reach_steps <= self.kink_width_steps:
            raise self.invalid("kink_reach_steps", f"larger than kink_width_steps = {self.kink_width_steps}", self.kink_reach_steps)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.inputs)

    def pfba_settings(self) -> PFBASettings:
        """The :class:`PFBASettings` of every solve of the build."""
        return PFBASettings(inputs=self.inputs, tie_break=self.tie_break)

    def to_dict(self) -> dict[str, Any]:
        """Json-serialisable form (tuples become lists; ``inputs`` as ``[name, reaction]`` pairs, as
        earlier build reports have them); :meth:`from_dict` inverts it."""
        d = super().to_dict()
        d["inputs"] = [list(p) for p in self.inputs]
        return d


@dataclass(frozen=True, eq=False)
class BuildResult:
    """What :func:`build_surrogate` made.

    Attributes
    ----------
    surrogate : Surrogate
        The trained surrogate (also saved in ``out_dir`` when one was given).
    report : dict
        Json-serialisable report (also ``build_report.json``): plan, timings, kink lines and the
        fresh-point errors (fractions of growth's maximum and of each reaction's range).
    dataset : FluxDataset
        The training data (grid and refinement).
    out_dir : Path or None
    """

    surrogate: Any
    report: dict[str, Any]
    dataset: Any
    out_dir: Path | None = None


def fresh_point_errors(surrogate, reference, ranges: np.ndarray, *, range_floor_frac: float = 1e-3) -> dict[str, Any]:
    """Errors of ``surrogate`` at the points of a fresh pFBA ``reference`` dataset.

    Parameters
    ----------
    surrogate : Surrogate
    reference : FluxDataset
        Fresh pFBA solves (usable rows are judged).
    ranges : ndarray, shape (r,)
        Each reaction's flux range over the training data (mmol/gDW/h); errors are fractions of
        max(range, range_floor_frac * largest range), as in training.
    range_floor_frac : float
        Floor of the ranges as a fraction of the largest range.

    Returns
    -------
    dict
        ``growth_max_abs_err_frac`` (max |growth error| / max training growth),
        ``worst_reaction``, ``worst_reaction_max_err_frac``, ``frac_points_beyond_2pct``,
        ``frac_points_beyond_5pct``, ``n_fresh_points``, the ten worst reactions and the
        worst point.
    """
    import numpy as np

    ok = reference.usable_rows()
    X = np.asarray(reference.inputs)[ok]
    V = np.asarray(reference.fluxes)[ok]
    P = surrogate.predict(X, check_domain=False)
    scale = np.maximum(ranges, range_floor_frac * float(ranges.max()))
    E = np.abs(P - V) / scale
    g = list(surrogate.reaction_ids).index(surrogate.objective_id)
    gmax = float(ranges[g]) if ranges[g] > 0 else 1.0
    per_reaction = E.max(axis=0)
    worst = np.argsort(-per_reaction)[:10]
    point = E.max(axis=1)
    i = int(np.argmax(point))
    rids = surrogate.reaction_ids
    return {
        "n_fresh_points": int(ok.sum()),
        "n_fresh_unusable": int((~ok).sum()),
        "growth_max_abs_err": float(np.abs(P[:, g] - V[:, g]).max()),
        "growth_max_abs_err_frac": float(np.abs(P[:, g] - V[:, g]).max() / gmax),
        "worst_reaction": rids[int(worst[0])],
        "worst_reaction_max_err_frac": float(per_reaction[worst[0]]),
        "worst_reactions": {rids[int(j)]: float(per_reaction[j]) for j in worst},
        "frac_points_beyond_2pct": float(np.mean(point > 0.02)),
        "frac_points_beyond_5pct": float(np.mean(point > 0.05)),
        "median_point_max_err_frac": float(np.median(point)),
        "worst_point": {"inputs": X[i].tolist(), "reaction": rids[int(np.argmax(E[i]))], "err_frac": float(point[i])},
        "targets_met": {
            "every_reaction_within_5pct": bool(per_reaction.max() <= 0.05),
            "growth_within_1pct": bool(np.abs(P[:, g] - V[:, g]).max() / gmax <= 0.01),
        },
    }


class _Stages:
    """One progress display for the whole build: a bar over the budget's seconds, one stage at a time."""

    def __init__(self, budget_s: float, progress: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=round(budget_s),
            unit="s",
            desc="build-surrogate",
            disable=not progress,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s budget [{elapsed}] {postfix}",
        )
        self.t0 = time.perf_counter()
        self.load = [os.getloadavg()[0]] if hasattr(os, "getloadavg") else []
        self.times: dict[str, float] = {}
        self._stage: str | None = None
        self._start = 0.0
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        ticks = 0
        while not self._stop.wait(2.0):
            self.bar.n = min(self.elapsed(), self.bar.total)
            self.bar.refresh()
            ticks += 1
            if self.load and ticks % 15 == 0:  # the machine's load every 30 s
                self.load.append(os.getloadavg()[0])

    def machine_load(self) -> dict[str, Any]:
        """The 1-minute load average sampled every 30 s over the build (mean, max) and the cores."""
        if not self.load:
            return {"cpus": os.cpu_count()}
        return {
            "cpus": os.cpu_count(),
            "loadavg_1min_mean": sum(self.load) / len(self.load),
            "loadavg_1min_max": max(self.load),
            "n_samples": len(self.load),
        }

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def start(self, name: str, note: str = "") -> None:
        self.end()
        self._stage, self._start = name, time.perf_counter()
        self.bar.set_postfix_str(f"{name}{': ' + note if note else ''}")

    def end(self) -> None:
        if self._stage is not None:
            self.times[self._stage] = time.perf_counter() - self._start
            self._stage = None

    def close(self) -> None:
        self.end()
        self._stop.set()
        if self.load:
            self.load.append(os.getloadavg()[0])
        self.bar.n = min(self.elapsed(), self.bar.total)
        self.bar.close()


def _say(text: str, progress: bool) -> None:
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(text)


def _adam_step_seconds(sub, sur_settings, s: BuildSettings) -> dict[int, float]:
    """Seconds per Adam step on the pilot dataset ``sub`` at the largest and the smallest batch.

    A step costs c0 + c1 * batch (c0: the optimizer and the per-step overhead, which dominate when
    the net's outputs are many), so the batch choice can trade steps against points per step. Each
    batch is timed over 1 and 4 epochs; the difference leaves out the set-up and the metrics. The
    mass-balance map is left out (its set-up, an SVD of S, is paid once by the real run).
    """
    from mpc_bio.surrogate.training import train_surrogate

    n_sub_train = max(1, round(sub.n_points * (1 - sur_settings.validation_fraction)))
    step_s = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in sorted({min(s.batch_size, n_sub_train), min(max(s.min_batch_size, s.batch_size // 16), n_sub_train)}):
            timings = []
            for pilot_epochs in (1, 4):
                t = time.perf_counter()
                train_surrogate(
                    sub,
                    _replace(sur_settings, batch_size=b, epochs=pilot_epochs, patience=pilot_epochs, mass_balance=False),
                    progress=False,
                )
                check_interrupt()  # the training keeps its weights on Ctrl-C; the build stops
                timings.append(time.perf_counter() - t)
            b_run = min(b, n_sub_train)
            step_s[b_run] = max(timings[1] - timings[0], 0.25 * timings[1]) / (3 * math.ceil(n_sub_train / b_run))
    return step_s


def build_surrogate(
    model, settings: BuildSettings | None = None, out_dir: str | Path | None = None, *, progress: bool = True, overwrite: bool = False
) -> BuildResult:
    """Turn a cobra model into a tested surrogate of its pFBA map within a time budget.

    Parameters
    ----------
    model : cobra.Model, str or Path
        The model (never modified), a bundled model name or a model file.
    settings : BuildSettings, optional
        Inputs, box, budget and the general defaults of the recipe.
    out_dir : str or Path, optional
        Directory for the artifact (``weights.npz``, ``surrogate.json``; loads with
        :func:`~mpc_bio.surrogate.load_surrogate`) and ``build_report.json``.
    progress : bool
        Print the plan and show one progress display over the budget.
    overwrite : bool
        Replace an existing, non-empty ``out_dir`` (checked before any work; the files are
        written through a hidden folder renamed on completion).

    Returns
    -------
    BuildResult

    Raises
    ------
    mpc_bio.metabolism.InputError
        An input names a reaction the model does not have, or the model has no single objective.
    SettingsError
        Invalid settings (e.g. an empty box).
    """
    import numpy as np
    import torch

    from mpc_bio.metabolism.models import load_model
    from mpc_bio.metabolism.pfba import build_problem
    from mpc_bio.metabolism.refinement import RefineSettings
    from mpc_bio.metabolism.sampling import SamplePoints, grid_points, latin_hypercube_points, sample_pfba
    from mpc_bio.metabolism.switches import find_kink_lines
    from mpc_bio.surrogate.settings import SurrogateSettings
    from mpc_bio.outputs import check_output_dir, json_default, staged_output
    from mpc_bio.surrogate.training import train_surrogate

    if out_dir is not None:
        check_output_dir(out_dir, overwrite=overwrite)

    s = settings or BuildSettings()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    budget = 60.0 * s.time_budget_min
    cobra_model = load_model(model) if isinstance(model, (str, Path)) else model
    problem = build_problem(cobra_model, s.pfba_settings())  # raises on unknown exchanges
    names = s.input_names
    lows = np.array([b[1] for b in s.box])
    highs = np.array([b[2] for b in s.box])
    span = highs - lows
    k = len(names)
    if progress:
        _say(
            f"build-surrogate {problem.model_id}: {problem.n_reactions} reactions, inputs "
            + ", ".join(f"{n} = {r} in [{lo:g}, {hi:g}]" for (n, r), lo, hi in zip(s.inputs, lows, highs))
            + f" mmol/gDW/h.\nBudget {s.time_budget_min:g} min: grid {s.grid_share:.0%}, kink lines {s.kink_share:.0%}, "
            f"refinement {s.refine_share:.0%}, fresh-point test {s.eval_share:.0%}, training the rest. "
            f"Plan: pFBA grid over the box -> kink lines by bisection -> refinement -> {len(s.hidden)}x{max(s.hidden)} "
            f"net with kink features -> test on {s.n_fresh_points} fresh pFBA points (seed {s.seed + 7919}).",
            progress,
        )
    stages = _Stages(budget, progress)
    plan: dict[str, Any] = {}
    report: dict[str, Any] = {"model": problem.model_id, "model_hash": problem.model_hash, "settings": s.to_dict()}
    old_threads = torch.get_num_threads()
    try:
        if s.num_threads:
            torch.set_num_threads(s.num_threads)
        # ---- 1. pilot and grid
        stages.start("pilot", "timing pFBA")
        pilot = latin_hypercube_points(max(50, 20 * k), dict(zip(names, zip(lows, highs))), seed=s.seed + 104729)
        # two calls, so the fixed cost of a call (building the LP) drops out of the cost per point
        n_first = max(1, len(pilot) // 5)
        t = time.perf_counter()
        sample_pfba(problem, SamplePoints(pilot.names, pilot.values[:n_first]), n_workers=1, progress=False)
        t_first = time.perf_counter() - t
        t = time.perf_counter()
        sample_pfba(problem, pilot, n_workers=1, progress=False)
        t_all = time.perf_counter() - t
        t_point = max((t_all - t_first) / (len(pilot) - n_first), 0.2 * t_all / len(pilot)) / max(1, min(s.n_workers, 2))
        per_axis = int(np.clip(np.floor((s.grid_share * budget / t_point) ** (1.0 / k)), s.grid_min_per_axis, s.grid_max_per_axis))
        step = span / (per_axis - 1)
        plan.update(seconds_per_point=t_point, grid_per_axis=per_axis, grid_step=step.tolist())
        stages.start("grid", f"{per_axis**k} pFBA points")
        grid = sample_pfba(
            problem,
            grid_points({n: (lo, hi, st) for n, lo, hi, st in zip(names, lows, highs, step)}),
            n_workers=s.n_workers,
            progress=False,
        )
        # the kink features' unit: the largest step, so no feature is narrower than the data's spacing
        # across its line (on a box with unequal steps a line across the coarse axis sees that axis' step)
        h = float(step.max())
        plan["kink_unit_step"] = h
        # the grid's own wall time per point (the machine's load now) sizes the later stages
        t_point = (time.perf_counter() - stages._start) / grid.n_points
        plan["seconds_per_point_grid"] = t_point
        # ---- 2. kink lines
        stages.start("kink lines", "bisection on pFBA")
        max_solves = int(s.kink_share * budget / t_point)
        kink_s = max(0.5 * s.kink_share * budget, min(s.kink_share * budget, budget * (s.grid_share + s.kink_share) - stages.elapsed()))
        kinks = find_kink_lines(
            problem,
            grid,
            max_lines=s.max_kink_lines,
            min_jump=s.min_kink_jump,
            max_solves=max_solves,
            max_seconds=kink_s,
            seed=s.seed,
            progress=False,
        )
        plan.update(kink_max_solves=max_solves, kink_max_seconds=kink_s)
        # ---- 3. refinement
        stages.start("refine", "where interpolation misses pFBA")
        left = budget - stages.elapsed()
        refine_s = max(0.0, min(s.refine_share * budget, 0.3 * left))
        data = _refine_within(problem, grid, RefineSettings(tolerance=s.refine_tolerance, max_depth=s.refine_depth), refine_s, s.n_workers)
        plan["refine_seconds"] = refine_s
        # ---- 4. training: epochs from a pilot of the network's cost
        sur_settings = SurrogateSettings(
            hidden=s.hidden,
            activation_sharpness=s.activation_sharpness,
            input_knees=tuple(float(v) for v in s.knee_fraction * span),
            kink_lines=kinks.kink_lines,
            kink_width=s.kink_width_steps * h,
            kink_reach=s.kink_reach_steps * h,
            kink_extra_reaches=tuple(
                v * h for v in s.kink_extra_reach_steps if abs(v - s.kink_reach_steps) > 1e-12 and v > s.kink_width_steps
            )
            if kinks.kink_lines
            else (),
            growth_weight=s.growth_weight,
            batch_size=s.batch_size,
            finetune_power=s.finetune_power,
            seed=s.seed,
            device=s.device,
            num_threads=s.num_threads,
        )
        stages.start("training pilot", "timing Adam steps")
        n_data = int(data.usable_rows().sum())
        t_eval = s.n_fresh_points * t_point * 1.2 + 5.0
        sub = _subset(data, min(n_data, 8 * s.batch_size), s.seed)
        step_s = _adam_step_seconds(sub, sur_settings, s)
        n_train = max(1, int(n_data * (1 - sur_settings.validation_fraction)))
        train_s = max(0.0, budget - stages.elapsed() - t_eval - 0.02 * budget)
        step_seconds = _step_cost(step_s)
        bs = choose_batch_size(
            n_train,
            (1 - s.finetune_share) * train_s,
            step_seconds,
            max_batch=s.batch_size,
            min_batch=s.min_batch_size,
            min_steps=s.min_adam_steps,
            min_steps_per_epoch=s.min_steps_per_epoch,
        )
        epoch_s = math.ceil(n_train / min(bs, n_train)) * step_seconds(min(bs, n_train))
        # the epochs are an upper bound (four times the pilot's estimate: the load changes, and the
        # pilot's short runs carry fixed costs); the time limit of the training shares the time
        # between the stages and ends them (learning rate decayed)
        epochs_total = max(4, int(4.0 * train_s / epoch_s))
        ft = int(round(s.finetune_share * epochs_total))
        sur_settings = _replace(
            sur_settings,
            batch_size=bs,
            finetune_batch_size=min(sur_settings.finetune_batch_size, 2 * bs),
            epochs=epochs_total - ft,
            patience=epochs_total,
            finetune_epochs=ft,
        )
        plan.update(
            seconds_per_step={str(b): v for b, v in step_s.items()},
            seconds_per_point_epoch=epoch_s / n_train,
            batch_size=bs,
            finetune_batch_size=sur_settings.finetune_batch_size,
            adam_steps_planned=int((1 - s.finetune_share) * train_s / step_seconds(min(bs, n_train))),
            training_points=n_data,
            epochs=epochs_total - ft,
            finetune_epochs=ft,
            training_seconds_planned=train_s,
        )
        stages.start("training", f"{epochs_total - ft} + {ft} epochs on {n_data} points")
        deadline = max(1.0, budget - stages.elapsed() - t_eval)
        with _stop_training_at(1.05 * deadline + 10.0), warnings.catch_warnings():  # a safety net only
            warnings.simplefilter("ignore", RuntimeWarning)
            sur = train_surrogate(data, sur_settings, progress=False, time_limit_s=deadline)
        check_interrupt()  # a Ctrl-C or SIGTERM (not the budget's alarm) stops the build here, nothing written
        stopped = sur.info.get("interrupted")
        # ---- 5. fresh points
        stages.start("fresh-point test", f"{s.n_fresh_points} pFBA points")
        fresh = latin_hypercube_points(s.n_fresh_points, dict(zip(names, zip(lows, highs))), seed=s.seed + 7919)
        ref = sample_pfba(problem, fresh, n_workers=s.n_workers, progress=False)
        errors = fresh_point_errors(sur, ref, data.flux_ranges())
        sur = sur.with_metrics(build_fresh_points=errors)
    finally:
        stages.close()
        if s.num_threads:
            torch.set_num_threads(old_threads)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    report.update(
        wall_s=wall,
        cpu_s=cpu,
        time_budget_s=budget,
        budget_hit=bool(wall > budget or stopped),
        training_stopped_at_budget=stopped,
        stage_seconds=stages.times,
        machine_load=stages.machine_load(),
        plan=plan,
        n_pfba_points=int(grid.n_points + (data.n_points - grid.n_points) + kinks.n_solves + len(pilot) + ref.n_points),
        n_training_points=int(data.n_points),
        n_grid_points=int(grid.n_points),
        n_kink_solves=int(kinks.n_solves),
        kink_lines=[{k_: v for k_, v in line.to_dict().items() if k_ != "points"} for line in kinks.lines],
        kink_search={k_: v for k_, v in kinks.to_dict().items() if k_ not in ("lines", "curved")}
        | {"n_curved_candidates": len(kinks.curved)},
        surrogate_settings=sur.settings.to_dict(),
        training={
            k_: sur.info.get(k_)
            for k_ in ("training_time_s", "adam_epochs", "best_epoch", "finetune_epochs_run", "finetune_best_epoch", "time_limit")
        }
        | {"n_pinned_constant_reactions": len(sur.info.get("pinned_constant_reactions") or [])},
        **errors,
        hand_constants=0,
    )
    out = None
    if out_dir is not None:
        with staged_output(out_dir, overwrite=overwrite) as tmp:
            sur.save(tmp)
            (tmp / "build_report.json").write_text(json.dumps(report, indent=1, default=json_default))
        out = Path(out_dir)
    if progress:
        _say(
            f"done in {wall / 60:.1f} min (budget {s.time_budget_min:g}{', hit' if report['budget_hit'] else ''}): "
            f"{len(kinks.lines)} kink lines, {report['n_pfba_points']} pFBA solves; on {errors['n_fresh_points']} fresh points "
            f"growth error {errors['growth_max_abs_err_frac']:.2%} of its max, worst reaction {errors['worst_reaction']} "
            f"{errors['worst_reaction_max_err_frac']:.2%} of its range, {errors['frac_points_beyond_2pct']:.1%} of points beyond 2 %"
            + (f"; wrote {out}" if out else ""),
            progress,
        )
    return BuildResult(surrogate=sur, report=report, dataset=data, out_dir=out)


def choose_batch_size(
    n_train: int,
    train_s: float,
    step_seconds,
    *,
    max_batch: int = 1024,
    min_batch: int = 32,
    min_steps: int = 20000,
    min_steps_per_epoch: int = 16,
) -> int:
    """Points per Adam step from the data size and the time: the largest of ``max_batch``,
    ``max_batch / 2``, ``max_batch / 4``, ... (not below ``min_batch``) that gives an epoch at least
    ``min_steps_per_epoch`` steps and the training at least ``min_steps`` steps.

    Parameters
    ----------
    n_train : int
        Training points (after the validation split).
    train_s : float
        Wall time of the Adam stage (s).
    step_seconds : callable
        Seconds per Adam step as a function of the batch (measured by a pilot, e.g. the
        :func:`_step_cost` line through two batch sizes).
    max_batch, min_batch : int
        Largest and smallest batch (points).
    min_steps : int
        Adam steps wanted within ``train_s``.
    min_steps_per_epoch : int
        Adam steps wanted per epoch.

    Returns
    -------
    int
        The batch (points); ``min_batch`` when neither wish can be met (few points, little time).

    Notes
    -----
    A smaller batch buys steps at the cost of noisier gradients. The optimisation needs steps (a
    net of a few thousand parameters needs some ten thousand Adam steps to leave its coarse fit,
    whatever the data), while a batch beyond a sixteenth of few training points adds little
    information per step; on many points and cheap steps the largest batch is kept.
    """
    if min_batch < 1 or max_batch < min_batch:
        raise ValueError(f"choose_batch_size needs 1 <= min_batch <= max_batch; got min_batch={min_batch!r}, max_batch={max_batch!r}.")
    b = max_batch
    while b > min_batch and (n_train / b < min_steps_per_epoch or train_s / step_seconds(b) < min_steps):
        b = max(min_batch, b // 2)
    return b


def _step_cost(measured: dict[int, float]):
    """Seconds per Adam step as a function of the batch: the line c0 + c1 * batch through the
    measured (batch, seconds) pairs (c0, c1 >= 0; one pair: proportional to the batch)."""
    (b0, t0), *rest = sorted(measured.items())
    if not rest:
        return lambda b: t0 * b / b0
    b1, t1 = rest[-1]
    c1 = max(0.0, (t1 - t0) / (b1 - b0))
    c0 = max(0.0, t0 - c1 * b0)
    if c0 == 0.0 and c1 == 0.0:
        c1 = t1 / b1
    return lambda b: c0 + c1 * b


def _refine_within(problem, grid, settings, seconds: float, n_workers: int):
    """:func:`~mpc_bio.metabolism.refine_dataset` within a wall-time limit.

    The refinement's levels are solved in chunks; once ``seconds`` have passed, the points still
    asked for come back as NaN, which the refinement never splits, and they are left out of the
    data. The cells tested first (the coarse levels) are refined completely.
    """
    import numpy as np
    from mpc_bio.metabolism.refinement import _append, refine_cells
    from mpc_bio.metabolism.sampling import sample_pfba

    t0 = time.perf_counter()
    solved = []
    chunk = 2000

    def solve(points: np.ndarray) -> np.ndarray:
        out = np.full((points.shape[0], problem.n_reactions), np.nan)
        for i in range(0, points.shape[0], chunk):
            if time.perf_counter() - t0 >= seconds:
                break
            d = sample_pfba(problem, points[i : i + chunk], n_workers=n_workers, progress=False)
            solved.append(d)
            out[i : i + chunk] = d.fluxes
        return out

    V = grid.fluxes
    with np.errstate(invalid="ignore"):
        rng = np.nanmax(V, axis=0) - np.nanmin(V, axis=0)
    scale = np.maximum(np.nan_to_num(rng, nan=0.0), settings.range_floor)
    res = refine_cells(solve, grid.inputs, V, scale, settings, progress=False)
    n_added = sum(d.n_points for d in solved)
    record = {
        "settings": settings.to_dict(),
        "n_grid_points": grid.n_points,
        "n_added_points": int(n_added),
        "levels": res.levels,
        "time_limit_s": float(seconds),
        "n_asked_after_time_limit": int(res.points.shape[0] - n_added),
    }
    sampling = dict(grid.settings.get("sampling") or {})
    return _append(grid, solved, {**sampling, "refinement": record})


#: Frames that run only inside the epoch loops of :func:`~mpc_bio.surrogate.training.train_surrogate`
#: (optimizer steps, back-propagation, the training loss), where a Ctrl-C keeps the best weights.
_IN_EPOCH = frozenset({"step", "backward", "batch", "full_batch_backward"})


@contextlib.contextmanager
def _stop_training_at(seconds: float):
    """Stop :func:`train_surrogate` after ``seconds`` of wall time as a Ctrl-C would (best weights kept).

    A SIGALRM handler raises KeyboardInterrupt only while an epoch loop runs (the training catches
    it there); elsewhere (set-up, metrics, a validation pass) it waits 0.2 s and looks again. Outside
    the main thread, or where SIGALRM does not exist, the budget is not enforced (the plan alone
    holds it).
    """
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        names = set()
        while frame is not None:
            names.add(frame.f_code.co_name)
            frame = frame.f_back
        if "_train" in names and names & _IN_EPOCH and "validation" not in names:
            raise KeyboardInterrupt
        signal.setitimer(signal.ITIMER_REAL, 0.2)

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _replace(settings, **changes):
    import dataclasses

    return dataclasses.replace(settings, **changes)


def _subset(dataset, n: int, seed: int):
    """A random subset of ``n`` usable rows of ``dataset`` (for the training pilot)."""
    import numpy as np

    rows = np.flatnonzero(dataset.usable_rows())
    return dataset.rows(np.sort(np.random.default_rng(seed).choice(rows, size=min(n, rows.size), replace=False)))
