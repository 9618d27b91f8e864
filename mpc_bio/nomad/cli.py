"""``mpc-bio nomad ...``: kinetic-model ensembles (this module) and design commands (listed modules).

``mpc-bio nomad ensemble --config FILE [--out DIR]`` builds the network, samples the ensemble,
screens it, computes control coefficients and writes tables, a summary json and figures.
Other NOMAD commands (the design stage) are added by the modules in
:data:`NOMAD_COMMAND_MODULES`, each providing ``register(nomad_subparsers)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import time
from pathlib import Path

__all__ = ["NOMAD_COMMAND_MODULES", "register"]

#: Modules adding ``mpc-bio nomad`` sub-subcommands through ``register(nomad_subparsers)``.
NOMAD_COMMAND_MODULES: list[str] = ["mpc_bio.nomad.design_cli"]

ENSEMBLE_HELP = """\
Build the kinetic network (default: e_coli_core + the iJO1366 shikimate branch, anthranilate
export, no ANPRT), sample reference steady states and N kinetic models (ORACLE), screen them
((i) linear stability, (ii) time constants, (iii) nonlinear return, (iv) robustness in a batch
reactor), compute concentration and flux control coefficients of the survivors, and write
summary.json, CSV tables, the ensemble (npz + json), the control coefficients and figures.

The settings are the [nomad] tables of the TOML file ([nomad.network], [nomad.steady_state],
[nomad.sampling], [nomad.screening], [nomad.executor]); options given here override them.

examples:
  mpc-bio nomad ensemble --config scenarios/nomad_anthranilate.toml
  mpc-bio nomad ensemble --config scenarios/nomad_anthranilate.toml --n-models 500 --out runs/nomad_small
  mpc-bio nomad ensemble --config scenarios/nomad_anthranilate.toml --workers 2
  mpc-bio nomad ensemble --config scenarios/nomad_anthranilate.toml --scheduler tcp://127.0.0.1:8786
"""


def _ensemble(args: argparse.Namespace) -> int:
    from mpc_bio.nomad.settings import load_study_settings
    from mpc_bio.nomad.study import run_ensemble_study, write_ensemble_study

    settings = load_study_settings(args.config)
    if args.n_models is not None:
        settings = dataclasses.replace(settings, sampling=dataclasses.replace(settings.sampling,
                                                                              n_models=args.n_models))
    ex = settings.executor
    if args.workers is not None:
        ex = dataclasses.replace(ex, n_workers=args.workers)
    if args.scheduler is not None:
        ex = dataclasses.replace(ex, scheduler=args.scheduler)
    if args.no_progress:
        ex = dataclasses.replace(ex, progress=False)
    settings = dataclasses.replace(settings, executor=ex)
    out = Path(args.out or settings.output_dir)
    t0 = time.perf_counter()
    study = run_ensemble_study(settings)
    write_ensemble_study(study, out, figures=not args.no_figures)
    summary = study.summary()
    print(f"network {summary['network']['model_id']}: {summary['network']['n_reactions']} reactions, "
          f"{summary['network']['n_metabolites']} balanced metabolites; {summary['n_models']} models")
    for s in summary["funnel"]:
        print(f"  {s['name']:<18} {s['n_in']:>7} -> {s['n_out']:>7}  ({s['seconds']:.1f} s)")
    print(f"control coefficients of {study.control.n_models} screened models; "
          f"total {time.perf_counter() - t0:.1f} s; results in {out}")
    if args.json:
        print(json.dumps(summary, indent=1, default=float))
    return 0


def register(subparsers) -> None:
    """Add ``nomad`` with its sub-subcommands to the ``mpc-bio`` parser."""
    p = subparsers.add_parser(
        "nomad", help="NOMAD: kinetic-model ensembles, screening, MCA (and strain design)",
        description="NOMAD kinetic-model ensembles and strain design (Paper 2).",
        epilog=(
            "examples:\n"
            "  mpc-bio nomad ensemble --config scenarios/nomad_anthranilate.toml\n"
            "  mpc-bio nomad design --config scenarios/nomad_anthranilate.toml\n"
            "  mpc-bio validate scenarios/nomad_anthranilate.toml   # check the config without running"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    nomad_sub = p.add_subparsers(dest="nomad_command", metavar="NOMAD_COMMAND", required=True)
    e = nomad_sub.add_parser("ensemble", help="sample, screen and analyse a kinetic-model ensemble",
                             description=ENSEMBLE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--config", required=True, help="scenario TOML with [nomad.*] tables")
    e.add_argument("--out", default=None, help="output directory (default: [nomad] output_dir)")
    e.add_argument("--n-models", type=int, default=None, help="number of kinetic models to sample")
    e.add_argument("--workers", type=int, default=None, help="local worker processes")
    e.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://host:port)")
    e.add_argument("--no-progress", action="store_true", help="hide progress bars")
    e.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    e.add_argument("--json", action="store_true", help="also print the summary json")
    e.set_defaults(func=_ensemble)
    for name in NOMAD_COMMAND_MODULES:
        importlib.import_module(name).register(nomad_sub)
