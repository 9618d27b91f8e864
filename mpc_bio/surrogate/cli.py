"""``mpc-bio train``, ``mpc-bio evaluate-surrogate`` and ``mpc-bio build-surrogate``."""

from __future__ import annotations

import argparse
import contextlib
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


def register(subparsers: Any) -> None:
    """Add ``train`` and ``evaluate-surrogate`` to the ``mpc-bio`` subcommands."""
    from mpc_bio.surrogate.settings import (
        ACTIVATIONS,
        DEVICES,
        PROJECTION_METRICS,
        TARGETS,
        SurrogateSettings,
    )

    d = SurrogateSettings()
    fmt = argparse.RawDescriptionHelpFormatter
    t = subparsers.add_parser("train", help="train a pFBA surrogate on a FluxDataset", description=TRAIN_HELP, formatter_class=fmt)
    t.add_argument("--data", required=True, metavar="DIR", help="FluxDataset directory (dataset.json + dataset.npz)")
    t.add_argument("--out", required=True, metavar="DIR", help="artifact directory to write")
    t.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty --out folder")
    t.add_argument(
        "--init",
        default=None,
        metavar="DIR",
        help="continue training this artifact (a warm restart with --lr): same model and domain, e.g. the same data or these plus new points; same architecture, or wider --hidden to add neurons",
    )
    t.add_argument(
        "--hidden", type=_hidden, default=d.hidden, metavar="W,W", help=f"hidden widths (default {','.join(map(str, d.hidden))})"
    )
    t.add_argument("--activation", choices=ACTIVATIONS, default=d.activation, help=f"hidden activation (default {d.activation})")
    t.add_argument(
        "--sharpness",
        type=float,
        default=d.activation_sharpness,
        help=f"activation sharpness beta: train with act(beta a)/beta, narrower bends (default {d.activation_sharpness:g})",
    )
    t.add_argument(
        "--input-knees",
        type=_numbers("--input-knees", "0.5,0.5"),
        default=d.input_knees,
        metavar="K,K",
        help="input warp: one knee per input in mmol/gDW/h (adds asinh(x/knee) features; default none)",
    )
    t.add_argument(
        "--kink-line",
        type=_kink_line,
        action="append",
        default=None,
        metavar="A1,A2,C",
        help="a known kink line A . x = C of the map (x in mmol/gDW/h, inputs in the data's order); adds a local "
        "kink feature on it (repeatable; default none; a negative first number needs --kink-line=-1,...)",
    )
    t.add_argument(
        "--kink-width",
        type=float,
        default=d.kink_width,
        help=f"how sharp the kink features make a kink, mmol/gDW/h (default {d.kink_width:g})",
    )
    t.add_argument(
        "--kink-reach",
        type=float,
        default=d.kink_reach,
        help=f"how far from its line a kink feature reaches, mmol/gDW/h (default {d.kink_reach:g})",
    )
    t.add_argument(
        "--kink-extra-reaches",
        type=_numbers("--kink-extra-reaches", "0.01,0.2"),
        default=d.kink_extra_reaches,
        metavar="D,D",
        help="further reaches, mmol/gDW/h: one more kink feature per line and reach, rounded over each (default none)",
    )
    t.add_argument(
        "--kink-gain",
        type=float,
        default=d.kink_gain,
        help=f"peak of the scaled kink features; larger lets their weights grow faster (default {d.kink_gain:g})",
    )
    t.add_argument("--target", choices=TARGETS, default=d.target, help=f"net or split fluxes (default {d.target})")
    t.add_argument("--no-mass-balance", action="store_true", help="switch the mass-balance projection off")
    t.add_argument(
        "--projection-metric",
        choices=PROJECTION_METRICS,
        default=d.projection_metric,
        help=f"metric of the mass-balance projection (default {d.projection_metric})",
    )
    t.add_argument(
        "--epochs",
        type=int,
        default=d.epochs,
        help=f"max Adam epochs on the mean squared error (default {d.epochs}; 0 skips this stage, e.g. to only fine-tune an --init)",
    )
    t.add_argument("--batch-size", type=int, default=d.batch_size, help=f"points per step (default {d.batch_size})")
    t.add_argument("--lr", type=float, default=d.lr, help=f"initial learning rate (default {d.lr})")
    t.add_argument(
        "--lr-final-ratio",
        type=float,
        default=d.lr_final_ratio,
        help=f"each stage's learning rate decays by cosine to lr times this (default {d.lr_final_ratio:g}; 1: constant)",
    )
    t.add_argument("--patience", type=int, default=d.patience, help=f"early-stopping patience in epochs (default {d.patience})")
    t.add_argument(
        "--val-fraction", type=float, default=d.validation_fraction, help=f"validation fraction (default {d.validation_fraction})"
    )
    t.add_argument("--growth-weight", type=float, default=d.growth_weight, help=f"loss weight of growth (default {d.growth_weight})")
    t.add_argument(
        "--reaction-weight",
        type=_reaction_weight,
        action="append",
        default=[],
        metavar="ID=W",
        help="loss weight of one reaction (default 1; repeat the option for more reactions)",
    )
    t.add_argument(
        "--lbfgs-steps", type=int, default=d.lbfgs_steps, help=f"full-batch L-BFGS iterations after Adam (default {d.lbfgs_steps})"
    )
    t.add_argument(
        "--finetune-epochs",
        type=int,
        default=d.finetune_epochs,
        help=f"Adam epochs on the L^p loss after the first stage (default {d.finetune_epochs}: off)",
    )
    t.add_argument(
        "--finetune-power",
        type=int,
        default=d.finetune_power,
        help=f"even exponent p of the fine-tuning loss; large p targets the worst errors (default {d.finetune_power})",
    )
    t.add_argument(
        "--finetune-lr-ratio",
        type=float,
        default=d.finetune_lr_ratio,
        help=f"fine-tuning learning rate as a fraction of --lr (default {d.finetune_lr_ratio})",
    )
    t.add_argument(
        "--finetune-batch-size",
        type=int,
        default=d.finetune_batch_size,
        help=f"points per fine-tuning step (default {d.finetune_batch_size})",
    )
    t.add_argument(
        "--freeze-init",
        action="store_true",
        help="with --init and every --hidden layer wider than the init's: train only the added neurons, as a "
        "branch beside the init's network fitted to its residual; the init's weights stay as they are",
    )
    t.add_argument("--seed", type=int, default=d.seed, help=f"seed (default {d.seed})")
    t.add_argument("--device", choices=DEVICES, default=d.device, help="training device (default auto: cuda if available)")
    t.add_argument("--threads", type=int, default=d.num_threads, help="torch CPU threads (default: torch's choice)")
    t.add_argument(
        "--evaluate", type=int, default=0, metavar="N", help="also solve pFBA at N random off-grid points and record test metrics"
    )
    t.add_argument("--cobra-model", default=None, metavar="NAME|PATH", help="model for --evaluate (default: the dataset's model id)")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "evaluate-surrogate", help="surrogate metrics vs fresh pFBA and paper figures 2, 4, 6", description=EVAL_HELP, formatter_class=fmt
    )
    e.add_argument("--model", required=True, metavar="DIR", help="surrogate artifact directory")
    e.add_argument("--data", required=True, metavar="DIR", help="the FluxDataset the surrogate was trained on")
    e.add_argument("--out", required=True, metavar="DIR", help="output directory for metrics.json and figures")
    e.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty --out folder")
    e.add_argument("--cobra-model", default=None, metavar="NAME|PATH", help="cobra model (default: the dataset's model id)")
    e.add_argument("--n-points", type=int, default=1000, help="random off-grid test points (default 1000)")
    e.add_argument("--seed", type=int, default=1, help="seed of the test points (default 1)")
    e.add_argument("--workers", type=int, default=1, help="pFBA worker processes (default 1)")
    e.add_argument("--no-figures", action="store_true", help="metrics only")
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
    settings = SurrogateSettings(
        hidden=args.hidden,
        activation=args.activation,
        activation_sharpness=args.sharpness,
        input_knees=args.input_knees,
        kink_lines=tuple(args.kink_line or ()),
        kink_width=args.kink_width,
        kink_reach=args.kink_reach,
        kink_extra_reaches=args.kink_extra_reaches,
        kink_gain=args.kink_gain,
        target=args.target,
        mass_balance=not args.no_mass_balance,
        projection_metric=args.projection_metric,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_final_ratio=args.lr_final_ratio,
        patience=args.patience,
        validation_fraction=args.val_fraction,
        growth_weight=args.growth_weight,
        reaction_weights=tuple(args.reaction_weight),
        lbfgs_steps=args.lbfgs_steps,
        finetune_epochs=args.finetune_epochs,
        finetune_power=args.finetune_power,
        finetune_lr_ratio=args.finetune_lr_ratio,
        finetune_batch_size=args.finetune_batch_size,
        freeze_init=args.freeze_init,
        seed=args.seed,
        device=args.device,
        num_threads=args.threads,
    )
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
        files = {}
        resp = uptake_response(surrogate, model=model, pfba_settings=pfba_settings)
        fig = plots.plot_uptake_response(resp)
        files["fig2"] = "fig2_uptake_response.png"
        fig.savefig(out / files["fig2"], dpi=120)
        plt.close(fig)
        lo, hi = surrogate.domain_low, surrogate.domain_high
        point = tuple(min(max(10.0, lo[j]), hi[j]) for j in range(surrogate.n_inputs))
        cmp_ = compare_fluxes(surrogate, model, point, pfba_settings=pfba_settings)
        fig = plots.plot_flux_comparison(cmp_)
        files["fig4"] = "fig4_flux_comparison.png"
        fig.savefig(out / files["fig4"], dpi=120)
        plt.close(fig)
        smap = sensitivity_map(surrogate)
        fig = plots.plot_sensitivity_map(smap)
        files["fig6"] = "fig6_sensitivity.png"
        fig.savefig(out / files["fig6"], dpi=120)
        plt.close(fig)
        fig = plots.plot_test_parity(ev)
        files["parity"] = "test_parity.png"
        fig.savefig(out / files["parity"], dpi=120)
        plt.close(fig)
        result["figures"] = files
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

    d = BuildSettings()
    b = subparsers.add_parser(
        "build-surrogate",
        help="one command: model -> sampled, kink-aware, tested surrogate within a time budget",
        description=BUILD_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("model", metavar="MODEL", help="bundled model name (e_coli_core, textbook, iJO1366, iCH360) or a model file")
    b.add_argument("--out", required=True, metavar="DIR", help="directory for the artifact and build_report.json")
    b.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty --out folder")
    b.add_argument(
        "--inputs",
        type=_pair("--inputs", "glucose=EX_glc__D_e"),
        action="append",
        default=None,
        metavar="NAME=EXCHANGE",
        help="an uptake input and its exchange reaction (repeatable; default glucose=EX_glc__D_e, oxygen=EX_o2_e)",
    )
    b.add_argument(
        "--box",
        type=_pair("--box", "glucose=0:20"),
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH",
        help="training range of an input in mmol/gDW/h (repeatable; default 0:20)",
    )
    b.add_argument(
        "--time-budget",
        type=float,
        default=d.time_budget_min,
        metavar="MIN",
        help=f"wall-time budget in minutes; grid, refinement and epochs scale to it (default {d.time_budget_min:g})",
    )
    b.add_argument(
        "--seed", type=int, default=d.seed, help=f"seed of training and kink search; the test uses seed + 7919 (default {d.seed})"
    )
    b.add_argument(
        "--hidden", type=_hidden, default=d.hidden, metavar="W,W", help=f"hidden widths (default {','.join(map(str, d.hidden))})"
    )
    b.add_argument(
        "--fresh-points", type=int, default=d.n_fresh_points, metavar="N", help=f"fresh pFBA test points (default {d.n_fresh_points})"
    )
    b.add_argument("--workers", type=int, default=d.n_workers, help=f"pFBA worker processes (default {d.n_workers})")
    b.add_argument("--threads", type=int, default=d.num_threads, help=f"torch CPU threads (default {d.num_threads}; 0: torch's choice)")
    b.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device, help="training device (default auto)")
    b.add_argument("--no-progress", action="store_true", help="no plan text and no progress display")
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
    settings = BuildSettings(
        inputs=inputs,
        box=tuple(box),
        time_budget_min=args.time_budget,
        seed=args.seed,
        hidden=args.hidden,
        n_fresh_points=args.fresh_points,
        n_workers=args.workers,
        num_threads=args.threads,
        device=args.device,
    )
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
