"""The ``mpc-bio`` command line: one entry point, a subcommand per stage.

Each stage's subcommands live beside the stage (``mpc_bio/<stage>/cli.py``) and are added here
by a ``register(subparsers)`` function, so this file only lists them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that provide `register(subparsers)`; each adds its own subcommands.
COMMAND_MODULES = [
    "mpc_bio.metabolism.cli",
    "mpc_bio.surrogate.cli",
    "mpc_bio.nomad.cli",
    "mpc_bio.scenarios.cli",
]


def build_parser() -> argparse.ArgumentParser:
    """The full ``mpc-bio`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="mpc-bio",
        description=(
            "Genome-scale metabolism inside bioprocess control: pFBA sampling, neural surrogates, "
            "embedded fed-batch models, MPC and state estimation, NOMAD strain design."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  mpc-bio pfba e_coli_core -u glucose=10 -u oxygen=15\n"
            "  mpc-bio sample e_coli_core --out runs/sample\n"
            "  mpc-bio train --data runs/sample --out runs/surrogate\n"
            "  mpc-bio validate scenarios/*.toml\n"
            "  mpc-bio run scenarios/closed_loop_mpc.toml --out runs/main\n"
            "  mpc-bio nomad ensemble --config scenarios/nomad_anthranilate.toml\n\n"
            "Run `mpc-bio COMMAND --help` for a command's options and examples."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mpc-bio``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")  # the CLI writes figures to files and never opens a window
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"mpc-bio {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
