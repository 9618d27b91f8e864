"""The ``mpc-bio`` command line: one entry point, a subcommand per stage.

Each stage's subcommands live beside the stage (``mpc_bio/<stage>/cli.py``) and are added here
by a ``register(subparsers)`` function, so this file only lists them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from mpc_bio.errors import MpcBioError

# Modules that provide `register(subparsers)`; each adds its own subcommands.
COMMAND_MODULES = [
    "mpc_bio.metabolism.cli",
    "mpc_bio.surrogate.cli",
    "mpc_bio.nomad.cli",
    "mpc_bio.scenarios.cli",
]


class CLIError(MpcBioError):
    """A command-line value has the wrong form."""


def add_worker_options(parser: argparse.ArgumentParser, workers_help: str = "local worker processes (default: all cores)") -> None:
    """``--workers N|all`` (read it with :func:`worker_count`) and ``--scheduler ADDRESS``."""
    parser.add_argument("--workers", default="all", metavar="N|all", help=workers_help)
    parser.add_argument("--scheduler", metavar="ADDRESS", help="Dask distributed scheduler address, e.g. tcp://host:8786")


def worker_count(value: str) -> int | None:
    """The ``--workers`` value: None for ``all`` (or 0: every core), else a positive integer."""
    if str(value).lower() in ("all", "0"):
        return None
    if not str(value).isdigit():
        raise CLIError(f"The option --workers expects a positive integer or 'all'; got {value!r}.")
    return int(value)


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
            "  mpc-bio build-surrogate e_coli_core --out runs/auto --time-budget 30\n"
            "  mpc-bio validate scenarios/*.toml\n"
            "  mpc-bio run scenarios/closed_loop_mpc.toml --out runs/main\n"
            "  mpc-bio nomad ensemble --config scenarios/nomad_anthranilate.toml\n\n"
            "Run `mpc-bio COMMAND --help` for a command's options and examples."
        ),
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mpc-bio``; returns the process exit code.

    0 success, 1 a result that did not succeed (the command says which), 2 an error (one line:
    bad input, settings, files, unreachable scheduler, ...; ``--debug`` shows the traceback),
    130 interrupted (Ctrl-C or SIGTERM, which stops a command like Ctrl-C does, also inside
    IPOPT and CVODES: see :mod:`mpc_bio.interrupts`), with one line saying what was kept.

    Run as a program (``argv`` None), an interrupted command ends its process right after that
    line (:func:`_end_interrupted_process`); called with ``argv`` it returns 130.
    """
    import zipfile

    from mpc_bio.interrupts import Interrupted, catch_interrupts, interrupted

    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures go to files, never to a window (no import here)
    with catch_interrupts(getattr(args, "interrupt_grace", None), f"mpc-bio {args.command}"):
        try:
            code = int(args.func(args) or 0)
            # a command that handled its interrupt itself (e.g. `sample` keeping its chunks) returns 130
            return _end_interrupted_process() if code == 130 and argv is None else code
        except KeyboardInterrupt as exc:
            # a command that keeps something says so (Interrupted); the others write their output only on completion
            detail = f": {exc}" if isinstance(exc, Interrupted) and str(exc) else "; its output was not written."
            print(f"mpc-bio {args.command}: interrupted ({interrupted() or 'SIGINT'}){detail}", file=sys.stderr)
            return _end_interrupted_process() if argv is None else 130
        except (ValueError, OSError, RuntimeError, zipfile.BadZipFile) as exc:
            if interrupted():  # a solver turned the interrupt into its own error (e.g. CVODES CV_RHSFUNC_FAIL)
                print(f"mpc-bio {args.command}: interrupted ({interrupted()}); its output was not written.", file=sys.stderr)
                return _end_interrupted_process() if argv is None else 130
            if args.debug:
                raise
            print(f"mpc-bio {args.command}: error: {exc}", file=sys.stderr)
            return 2


def _end_interrupted_process() -> NoReturn:
    """End this process with exit code 130 now that the interrupt's line is printed.

    The output streams are flushed and the ``atexit`` functions run (Dask clients, temporary
    folders, multiprocessing's clean-up); the interpreter's own teardown of the loaded modules is
    skipped: with torch, CasADi and cobra loaded it takes 1-3 s (more on a busy machine), during
    which Ctrl-C seemed not to have worked. Everything the command keeps is written and closed
    before its interrupt line is printed.
    """
    import atexit

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    atexit._run_exitfuncs()  # noqa: SLF001 - the documented handlers, run as at a normal exit
    os._exit(130)


if __name__ == "__main__":
    sys.exit(main())
