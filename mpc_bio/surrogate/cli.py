"""``mpc-bio train``, ``mpc-bio evaluate-surrogate`` and ``mpc-bio build-surrogate``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mpc_bio.outputs import check_output_dir, staged_output

__all__ = ["register", "run_train", "run_evaluate", "run_build", "write_report"]

TRAIN_HELP = """\
Train a neural surrogate of the pFBA map on a FluxDataset (from `mpc-bio sample`).

The network maps the uptake inputs (mmol/gDW/h) to all net fluxes; a fixed mass-balance layer
projects its output onto S v = 0 (switch off with --no-mass-balance). Device: cuda when available,
else cpu (--device). The artifact directory holds weights.npz and surrogate.json.
Ctrl-C or SIGTERM (kill, a batch scheduler's time limit) stops training with the best weights so
far, which are saved as usual (info.interrupted in surrogate.json); a second SIGTERM while they
are saved is ignored.

example:
  mpc-bio sample e_coli_core --out runs/grid
  mpc-bio train --data runs/grid --out runs/surrogate --hidden 64,64 --evaluate 1000
"""

EVAL_HELP = """\
Evaluate a surrogate against pFBA freshly solved at random off-grid points (never the training
data), and draw paper 1's figures 2 (growth / glucose uptake vs glucose concentration with a
Michaelis-Menten reference), 4 (flux parity at glucose = oxygen = 10) and 6 (autograd
sensitivity maps of growth).

example:
  mpc-bio evaluate-surrogate --model runs/surrogate --data runs/grid --out runs/surrogate-eval
"""


def _hidden(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden expects comma-separated integers like 64,64; got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError("--hidden needs at least one layer width")
    return out


def _numbers(flag: str, example: str):
    """argparse type: comma-separated numbers, the error naming ``flag``."""

    def parse(text: str) -> tuple[float, ...]:
        try:
            return tuple(float(p) for p in text.split(",") if p.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} expects comma-separated numbers like {example}; got {text!r}") from None

    return parse


def _kink_line(text: str) -> tuple[float, ...]:
    try:
        out = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        out = ()
    if len(out) < 2:
        raise argparse.ArgumentTypeError(
            f"--kink-line expects comma-separated numbers A1,...,Ak,C for A . x = C, like 2.767,-1,-1.529; got {text!r}"
        )
    return out


def _reaction_weight(text: str) -> tuple[str, float]:
    rid, sep, wt = text.partition("=")
    try:
        if not (sep and rid.strip()):
            raise ValueError
        return rid.strip(), float(wt)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--reaction-weight expects ID=WEIGHT like ASNS1=10; got {text!r}") from None


def _adder(parser: argparse.ArgumentParser, defaults: Any):
    """``add(flag, field, help, **kwargs)``: an option of ``parser`` stored as ``field`` (a settings
    field), its default the field's value in ``defaults``, which ``{}`` in ``help`` shows (with a
    format spec such as ``{:g}`` too); ``field`` None: an option of the command, not of the settings."""

    def add(flag: str, field: str | None, help: str, **kwargs: Any) -> None:
        if field is not None:
            kwargs.setdefault("default", getattr(defaults, field))
            if kwargs.get("action") not in ("store_true", "append") and "choices" not in kwargs:
                kwargs.setdefault("metavar", flag[2:].upper().replace("-", "_"))
            kwargs["dest"] = field
        default = kwargs.get("default")
        parser.add_argument(flag, help=help.format(",".join(map(str, default)) if isinstance(default, tuple) else default), **kwargs)

    return add


def _output_options(add, what: str) -> None:
    """``--out`` (``what`` it holds) and ``--overwrite``."""
    add("--out", None, what, required=True, metavar="DIR")
    add("--overwrite", None, "replace an existing, non-empty --out folder", action="store_true")


def _hidden_option(add) -> None:
    add("--hidden", "hidden", "hidden widths (default {})", type=_hidden, metavar="W,W")


def register(subparsers: Any) -> None:
    """Add ``train`` and ``evaluate-surrogate`` to the ``mpc-bio`` subcommands."""
    from mpc_bio.surrogate.settings import ACTIVATIONS, DEVICES, PROJECTION_METRICS, TARGETS, SurrogateSettings

    fmt = argparse.RawDescriptionHelpFormatter
    t = subparsers.add_parser("train", help="train a pFBA surrogate on a FluxDataset", description=TRAIN_HELP, formatter_class=fmt)
    add = _adder(t, SurrogateSettings())
    add("--data", None, "FluxDataset directory (dataset.json + dataset.npz)", required=True, metavar="DIR")
    _output_options(add, "artifact directory to write")
    init = "continue training this artifact (a warm restart with --lr): same model and domain, e.g. the same data or these plus new points"
    add("--init", None, init + "; same architecture, or wider --hidden to add neurons", default=None, metavar="DIR")
    _hidden_option(add)
    add("--activation", "activation", "hidden activation (default {})", choices=ACTIVATIONS)
    add(
        "--sharpness",
        "activation_sharpness",
        "activation sharpness beta: train with act(beta a)/beta, narrower bends (default {:g})",
        type=float,
    )
    knees = "input warp: one knee per input in mmol/gDW/h (adds asinh(x/knee) features; default none)"
    add("--input-knees", "input_knees", knees, type=_numbers("--input-knees", "0.5,0.5"), metavar="K,K")
    kink_line = (
        "a known kink line A . x = C of the map (x in mmol/gDW/h, inputs in the data's order); adds a local "
        "kink feature on it (repeatable; default none; a negative first number needs --kink-line=-1,...)"
    )
    add("--kink-line", "kink_lines", kink_line, type=_kink_line, action="append", default=None, metavar="A1,A2,C")
    add("--kink-width", "kink_width", "how sharp the kink features make a kink, mmol/gDW/h (default {:g})", type=float)
    add("--kink-reach", "kink_reach", "how far from its line a kink feature reaches, mmol/gDW/h (default {:g})", type=float)
    reaches = "further reaches, mmol/gDW/h: one more kink feature per line and reach, rounded over each (default none)"
    add("--kink-extra-reaches", "kink_extra_reaches", reaches, type=_numbers("--kink-extra-reaches", "0.01,0.2"), metavar="D,D")
    add("--kink-gain", "kink_gain", "peak of the scaled kink features; larger lets their weights grow faster (default {:g})", type=float)
    add("--target", "target", "net or split fluxes (default {})", choices=TARGETS)
    add("--no-mass-balance", None, "switch the mass-balance projection off", action="store_true")
    add("--projection-metric", "projection_metric", "metric of the mass-balance projection (default {})", choices=PROJECTION_METRICS)
    epochs = "max Adam epochs on the mean squared error (default {}; 0 skips this stage, e.g. to only fine-tune an --init)"
    add("--epochs", "epochs", epochs, type=int)
    add("--batch-size", "batch_size", "points per step (default {})", type=int)
    add("--lr", "lr", "initial learning rate (default {})", type=float)
    decay = "each stage's learning rate decays by cosine to lr times this (default {:g}; 1: constant)"
    add("--lr-final-ratio", "lr_final_ratio", decay, type=float)
    add("--patience", "patience", "early-stopping patience in epochs (default {})", type=int)
    add("--val-fraction", "validation_fraction", "validation fraction (default {})", type=float)
    add("--growth-weight", "growth_weight", "loss weight of growth (default {})", type=float)
    weight = "loss weight of one reaction (default 1; repeat the option for more reactions)"
    add("--reaction-weight", "reaction_weights", weight, type=_reaction_weight, action="append", default=[], metavar="ID=W")
    add("--lbfgs-steps", "lbfgs_steps", "full-batch L-BFGS iterations after Adam (default {})", type=int)
    add("--finetune-epochs", "finetune_epochs", "Adam epochs on the L^p loss after the first stage (default {}: off)", type=int)
    power = "even exponent p of the fine-tuning loss; large p targets the worst errors (default {})"
    add("--finetune-power", "finetune_power", power, type=int)
    add("--finetune-lr-ratio", "finetune_lr_ratio", "fine-tuning learning rate as a fraction of --lr (default {})", type=float)
    add("--finetune-batch-size", "finetune_batch_size", "points per fine-tuning step (default {})", type=int)
    freeze = (
        "with --init and every --hidden layer wider than the init's: train only the added neurons, as a "
        "branch beside the init's network fitted to its residual; the init's weights stay as they are"
    )
    add("--freeze-init", "freeze_init", freeze, action="store_true")
    add("--seed", "seed", "seed (default {})", type=int)
    add("--device", "device", "training device (default auto: cuda if available)", choices=DEVICES)
    add("--threads", "num_threads", "torch CPU threads (default: torch's choice)", type=int)
    add("--evaluate", None, "also solve pFBA at N random off-grid points and record test metrics", type=int, default=0, metavar="N")
    add("--cobra-model", None, "model for --evaluate (default: the dataset's model id)", default=None, metavar="NAME|PATH")
    add("--no-progress", None, "hide the progress bar", action="store_true")
    t.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "evaluate-surrogate", help="surrogate metrics vs fresh pFBA and paper figures 2, 4, 6", description=EVAL_HELP, formatter_class=fmt
    )
    add = _adder(e, None)
    add("--model", None, "surrogate artifact directory", required=True, metavar="DIR")
    add("--data", None, "the FluxDataset the surrogate was trained on", required=True, metavar="DIR")
    _output_options(add, "output directory for metrics.json and figures")
    add("--cobra-model", None, "cobra model (default: the dataset's model id)", default=None, metavar="NAME|PATH")
    add("--n-points", None, "random off-grid test points (default {})", type=int, default=1000)
    add("--seed", None, "seed of the test points (default {})", type=int, default=1)
    add("--workers", None, "pFBA worker processes (default {})", type=int, default=1)
    add("--no-figures", None, "metrics only", action="store_true")
    e.set_defaults(func=run_evaluate)
    _register_build(subparsers)


def _cobra_model(dataset, name: str | None):
    from mpc_bio.metabolism.models import BUNDLED_MODELS, load_model, model_hash

    key = name or dataset.model_id
    if name is None and key not in BUNDLED_MODELS:
        raise ValueError(f"The dataset's model {key!r} is not a bundled model; give its file with --cobra-model PATH.")
    model = load_model(key)
    if dataset.model_hash and model_hash(model) != dataset.model_hash:
        raise ValueError(
            f"The cobra model {key!r} (hash {model_hash(model)}) is not the model of the dataset "
            f"(hash {dataset.model_hash}); pass the right one with --cobra-model."
        )
    return model


def _pfba_settings(dataset):
    from mpc_bio.metabolism.settings import PFBASettings

    d = (dataset.settings or {}).get("pfba")
    return PFBASettings.from_dict(d) if d else None


@contextlib.contextmanager
def _sigterm_stops_training():
    """SIGTERM acts as Ctrl-C while training (the best weights so far are kept and saved), so
    `kill PID` or a scheduler's time limit ends a background run without losing it. Background
    jobs started by a non-interactive shell ignore SIGINT, so SIGTERM is their way to stop.
    Only the first SIGTERM stops: later ones, until the block ends (the artifact is saved), are
    reported on stderr and ignored, so a repeated `kill` cannot abort the saving of the weights."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = []

    def interrupt(signum, frame):
        if stopping:
            print("mpc-bio train: already stopping; the best weights so far are being saved.", file=sys.stderr, flush=True)
            return
        stopping.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_train(args: argparse.Namespace) -> int:
    """Train, optionally evaluate off-grid, save the artifact; prints a summary."""
    from mpc_bio.metabolism.dataset import FluxDataset
    from mpc_bio.surrogate.analysis import evaluate_surrogate, interpolation_baseline
    from mpc_bio.surrogate.settings import SurrogateSettings
    from mpc_bio.surrogate.artifact import load_surrogate
    from mpc_bio.surrogate.training import train_surrogate

    check_output_dir(args.out, overwrite=args.overwrite)  # before hours of training
    ds = FluxDataset.load(args.data)
    fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(SurrogateSettings) if hasattr(args, f.name)}
    fields.update(kink_lines=tuple(args.kink_lines or ()), reaction_weights=tuple(args.reaction_weights))
    settings = SurrogateSettings(**fields, mass_balance=not args.no_mass_balance)
    init = load_surrogate(args.init) if args.init else None  # train_surrogate checks it was trained on ds
    with _sigterm_stops_training():
        sur = train_surrogate(
            ds, settings, init=init, progress=not args.no_progress, report=lambda line: print(line, file=sys.stderr, flush=True)
        )
        out = _save(sur, args.out)  # the trained weights are safe before anything else (e.g. the off-grid evaluation)
    if args.evaluate:
        model = _cobra_model(ds, args.cobra_model)
        ev = evaluate_surrogate(sur, model, n_points=args.evaluate, seed=settings.seed + 1, pfba_settings=_pfba_settings(ds))
        test = ev.summary()
        test["grid_interpolation_baseline"] = interpolation_baseline(ds, ev.inputs, ev.reference)
        sur = sur.with_metrics(test=test)
        out = _save(sur, args.out)
    summary = {
        "artifact": str(out),
        "training_time_s": round(sur.info["training_time_s"], 2),
        "n_parameters": sur.spec().n_parameters(),
        "metrics": {
            k: {
                kk: v[kk]
                for kk in ("growth_max_abs_err_frac", "worst_reaction", "worst_reaction_max_err_frac", "median_r2", "mass_balance_residual")
            }
            for k, v in sur.metrics.items()
        },
    }
    if "interrupted" in sur.info:  # Ctrl-C: the best weights so far were saved
        summary["interrupted"] = sur.info["interrupted"]
    print(json.dumps(summary, indent=1))
    return 0


def write_report(
    surrogate,
    model,
    out_dir: str | Path,
    *,
    pfba_settings=None,
    n_points: int = 1000,
    seed: int = 1,
    n_workers: int = 1,
    figures: bool = True,
    dataset=None,
) -> dict[str, Any]:
    """Evaluate off-grid, write ``metrics.json`` and the figures into ``out_dir``; returns the metrics dict.

    With the training ``dataset`` (a regular grid), the report also gives the errors of linear
    interpolation of that grid at the same test points: the data limit of any surrogate.
    """
    import matplotlib.pyplot as plt

    from mpc_bio.plotting import surrogate as plots
    from mpc_bio.surrogate.analysis import (
        compare_fluxes,
        evaluate_surrogate,
        interpolation_baseline,
        sensitivity_map,
        uptake_response,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ev = evaluate_surrogate(surrogate, model, n_points=n_points, seed=seed, pfba_settings=pfba_settings, n_workers=n_workers)
    result: dict[str, Any] = {
        "test": ev.summary(),
        "per_reaction": ev.metrics.per_reaction(),
        "architecture": {
            "hidden": list(surrogate.spec().hidden),
            "activation": surrogate.spec().activation,
            "n_parameters": surrogate.spec().n_parameters(),
            "target": surrogate.settings.target,
            "mass_balance": surrogate.settings.mass_balance,
        },
        "training_time_s": surrogate.info.get("training_time_s"),
        "training_data_hash": surrogate.training_data_hash,
    }
    if dataset is not None:
        result["grid_interpolation_baseline"] = interpolation_baseline(dataset, ev.inputs, ev.reference)
    if figures:
        resp = uptake_response(surrogate, model=model, pfba_settings=pfba_settings)
        lo, hi = surrogate.domain_low, surrogate.domain_high
        point = tuple(min(max(10.0, lo[j]), hi[j]) for j in range(surrogate.n_inputs))
        cmp_ = compare_fluxes(surrogate, model, point, pfba_settings=pfba_settings)
        figures = {
            "fig2": ("fig2_uptake_response.png", lambda: plots.plot_uptake_response(resp)),
            "fig4": ("fig4_flux_comparison.png", lambda: plots.plot_flux_comparison(cmp_)),
            "fig6": ("fig6_sensitivity.png", lambda: plots.plot_sensitivity_map(sensitivity_map(surrogate))),
            "parity": ("test_parity.png", lambda: plots.plot_test_parity(ev)),
        }
        for file, draw in figures.values():
            fig = draw()
            fig.savefig(out / file, dpi=120)
            plt.close(fig)
        result["figures"] = {key: file for key, (file, _) in figures.items()}
        result["flux_comparison"] = {
            "point": list(point),
            "total_abs_flux": {"pfba": cmp_.total_reference, "surrogate": cmp_.total_predicted},
            "glycolysis_abs_flux": {"pfba": cmp_.glycolysis_reference, "surrogate": cmp_.glycolysis_predicted},
        }
    result["evaluation_time_s"] = time.perf_counter() - t0
    (out / "metrics.json").write_text(json.dumps(result, indent=1, default=float))
    return result


def _save(sur, out: str) -> Path:
    """Save an artifact through a hidden folder renamed whole (the caller checked ``out`` first)."""
    with staged_output(out, overwrite=True) as tmp:
        sur.save(tmp)
    return Path(out)


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a surrogate artifact against fresh pFBA and write metrics + figures."""
    from mpc_bio.metabolism.dataset import FluxDataset
    from mpc_bio.surrogate.artifact import load_surrogate

    check_output_dir(args.out, overwrite=args.overwrite)
    ds = FluxDataset.load(args.data)
    sur = load_surrogate(args.model, dataset=ds)
    model = _cobra_model(ds, args.cobra_model)
    with staged_output(args.out, overwrite=args.overwrite) as tmp:
        res = write_report(
            sur,
            model,
            tmp,
            pfba_settings=_pfba_settings(ds),
            n_points=args.n_points,
            seed=args.seed,
            n_workers=args.workers,
            figures=not args.no_figures,
            dataset=ds,
        )
    t = res["test"]
    print(
        json.dumps(
            {
                k: t[k]
                for k in (
                    "n_points",
                    "growth_max_abs_err_frac",
                    "worst_reaction",
                    "worst_reaction_max_err_frac",
                    "median_r2",
                    "mass_balance_residual",
                    "mass_balance_residual_unprojected",
                    "targets_met",
                )
            },
            indent=1,
        )
    )
    print(f"wrote {Path(args.out) / 'metrics.json'} and figures")
    return 0


BUILD_HELP = """\
Turn a cobra model into a control-ready surrogate in one command, within a time budget.

Prints the plan and the budget first, then shows one progress display: a pFBA grid over the box
(as fine as the budget allows, at most 201 values per input), the kink lines of the map found by
bisection where the solution's active set changes between neighbouring grid points, refinement
where interpolation misses pFBA, training with those lines as kink features (epochs sized to the
budget from a measured pilot), and a test on fresh Latin-hypercube pFBA points (another seed).
Writes the artifact (loads with load_surrogate) and build_report.json into --out. No constant is
specific to a model: widths are in grid steps, knees a fraction of the box.

examples:
  mpc-bio build-surrogate e_coli_core --out runs/ecoli_auto --time-budget 30
  mpc-bio build-surrogate textbook --out runs/tb_nh4 --inputs glucose=EX_glc__D_e \\
      --inputs ammonium=EX_nh4_e --box glucose=0:20 --box ammonium=0:10 --time-budget 20
"""


def _pair(flag: str, example: str):
    def parse(text: str) -> tuple[str, str]:
        name, sep, value = text.partition("=")
        if not (sep and name.strip() and value.strip()):
            raise argparse.ArgumentTypeError(f"{flag} expects NAME=VALUE like {example}; got {text!r}")
        return name.strip(), value.strip()

    return parse


def _register_build(subparsers: Any) -> None:
    from mpc_bio.surrogate.build import BuildSettings

    b = subparsers.add_parser(
        "build-surrogate",
        help="one command: model -> sampled, kink-aware, tested surrogate within a time budget",
        description=BUILD_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = _adder(b, BuildSettings())
    add("model", None, "bundled model name (e_coli_core, textbook, iJO1366, iCH360) or a model file", metavar="MODEL")
    _output_options(add, "directory for the artifact and build_report.json")
    inputs = "an uptake input and its exchange reaction (repeatable; default glucose=EX_glc__D_e, oxygen=EX_o2_e)"
    add("--inputs", "inputs", inputs, type=_pair("--inputs", "glucose=EX_glc__D_e"), action="append", default=None, metavar="NAME=EXCHANGE")
    box = "training range of an input in mmol/gDW/h (repeatable; default 0:20)"
    add("--box", "box", box, type=_pair("--box", "glucose=0:20"), action="append", default=[], metavar="NAME=LOW:HIGH")
    budget = "wall-time budget in minutes; grid, refinement and epochs scale to it (default {:g})"
    add("--time-budget", "time_budget_min", budget, type=float, metavar="MIN")
    add("--seed", "seed", "seed of training and kink search; the test uses seed + 7919 (default {})", type=int)
    _hidden_option(add)
    add("--fresh-points", "n_fresh_points", "fresh pFBA test points (default {})", type=int, metavar="N")
    add("--workers", "n_workers", "pFBA worker processes (default {})", type=int)
    add("--threads", "num_threads", "torch CPU threads (default {}; 0: torch's choice)", type=int)
    add("--device", "device", "training device (default auto)", choices=("auto", "cpu", "cuda"))
    add("--no-progress", None, "no plan text and no progress display", action="store_true")
    b.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    """Build a surrogate from a model (see :func:`mpc_bio.surrogate.build.build_surrogate`); prints the report's summary."""
    from mpc_bio.surrogate.build import BuildSettings, build_surrogate

    inputs = tuple(args.inputs) if args.inputs else BuildSettings().inputs
    box = []
    for name, text in args.box:
        lo, sep, hi = text.partition(":")
        try:
            if not sep:
                raise ValueError
            box.append((name, float(lo), float(hi)))
        except ValueError:
            raise ValueError(f"--box expects NAME=LOW:HIGH in mmol/gDW/h like glucose=0:20; got {name}={text!r}") from None
    fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(BuildSettings) if hasattr(args, f.name)}
    settings = BuildSettings(**{**fields, "inputs": inputs, "box": tuple(box)})
    res = build_surrogate(args.model, settings, args.out, progress=not args.no_progress, overwrite=args.overwrite)
    r = res.report
    keys = (
        "model",
        "wall_s",
        "time_budget_s",
        "budget_hit",
        "n_pfba_points",
        "growth_max_abs_err_frac",
        "worst_reaction",
        "worst_reaction_max_err_frac",
        "frac_points_beyond_2pct",
        "n_fresh_points",
        "targets_met",
    )
    print(json.dumps({**{k: r[k] for k in keys}, "n_kink_lines": len(r["kink_lines"]), "out": str(res.out_dir)}, indent=1))
    return 0
