"""``mpc-bio run SCENARIO.toml [--out DIR]``: run a scenario file."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]

RUN_HELP = """\
Run a scenario file. The file's `kind` picks the runner (e.g. "simulation": a fed-batch with the
surrogate beside the LP-in-the-loop dFBA, paper figure 3). Every run writes into its own output
directory: figures (PNG), trajectories (CSV), events and a summary (JSON).

examples:
  mpc-bio run scenarios/paper_fig3.toml --out runs/fig3
  mpc-bio run scenarios/paper_fig3_ich360.toml          # needs ../shared/data/iCH360 or $MPC_BIO_ICH360
"""


def register(subparsers: Any) -> None:
    """Add ``run`` to the ``mpc-bio`` subcommands."""
    p = subparsers.add_parser(
        "run", help="run a scenario TOML file", description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("scenario", metavar="SCENARIO.toml", help="scenario file")
    p.add_argument("--out", default=None, metavar="DIR", help="output directory (default runs/<name>-<UTC time>)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the scenario and print where the results went."""
    from mpc_bio.scenarios.runner import run_scenario

    res = run_scenario(args.scenario, args.out, progress=not args.no_progress)
    print(f"{res.kind} scenario {res.name!r} done in {res.wall_time:.1f} s -> {res.out_dir}")
    for role, f in res.files.items():
        print(f"  {role:13s} {f}")
    for k, v in res.summary.items():
        if k not in ("kind", "name", "scenario"):
            print(f"  {k}: {v}")
    return 0
