"""The `mpc-bio` entry point: one line and exit 2 for an expected error, the traceback with --debug."""

from __future__ import annotations

import pytest

from mpc_bio import MpcBioError
from mpc_bio.cli import main


def test_error_is_one_line_and_debug_shows_the_traceback(capsys):
    assert main(["pfba", "no_such_model"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mpc-bio pfba: error:") and "Traceback" not in err
    with pytest.raises(MpcBioError, match="neither a bundled model"):
        main(["--debug", "pfba", "no_such_model"])


def test_truncated_dataset_is_one_clear_error(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["sample", "--grid", "glucose=0:4:2", "--grid", "oxygen=0:4:2", "--no-progress", "--no-figure", "--out", str(out)]) == 0
    raw = (out / "dataset.npz").read_bytes()
    (out / "dataset.npz").write_bytes(raw[: len(raw) // 2])
    assert main(["train", "--data", str(out), "--out", str(tmp_path / "sur"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "truncated or corrupted" in err and "Traceback" not in err


def test_help_and_validate_import_no_heavy_library():
    """`mpc-bio --help` and `validate` import none of cobra, torch, do-mpc, Pyomo, matplotlib, pandas (their
    imports took 5-9 s before a command started)."""
    import subprocess
    import sys

    code = (
        "import sys; from mpc_bio.cli import build_parser, main; build_parser(); "
        "main(['validate', 'scenarios/closed_loop_mpc.toml', 'scenarios/codesign_anthranilate.toml']); "
        "heavy = [m for m in ('cobra', 'torch', 'do_mpc', 'pyomo', 'l4casadi', 'matplotlib', 'pandas') if m in sys.modules]; "
        "print('HEAVY', heavy)"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout


def test_help_and_validating_a_control_scenario_import_no_numpy():
    """`mpc-bio --help` and `validate` of the process and control scenarios import neither numpy nor
    CasADi nor tqdm/asyncio (the stage packages export their names lazily)."""
    import subprocess
    import sys
    from pathlib import Path

    scenarios = ["closed_loop_mpc.toml", "closed_loop_ich360.toml", "mpc_mismatch.toml", "feed_optimization.toml", "paper_fig3.toml"]
    code = (
        "import sys; from mpc_bio.cli import build_parser, main; build_parser(); "
        f"assert main(['validate', *{[f'scenarios/{n}' for n in scenarios]}]) == 0; "
        "print('LOADED', [m for m in ('numpy', 'casadi', 'tqdm', 'asyncio', 'scipy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout, out.stdout


CHILD = """\
import atexit, sys
atexit.register(lambda: print("atexit function ran", file=sys.stderr, flush=True))
import mpc_bio.scenarios.cli as commands

def stopped(args):
    print("work written before the interrupt", flush=False)  # buffered: must still reach the pipe
    raise KeyboardInterrupt

commands.validate = stopped  # `validate` is registered with this function when the parser is built
sys.argv = ["mpc-bio", "validate", "any.toml"]
from mpc_bio.cli import main
sys.exit(main())
"""


def test_an_interrupted_program_ends_after_its_line_with_its_output_and_atexit_functions(monkeypatch, capsys):
    """Run as a program, an interrupted command prints its one line, flushes its output, runs the
    atexit functions and ends with 130 (skipping the interpreter's teardown); called in-process
    with argv it returns 130 and the caller goes on."""
    import subprocess
    import sys

    import mpc_bio.scenarios.cli as commands

    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True)
    assert out.returncode == 130, out.stderr
    assert out.stdout == "work written before the interrupt\n"
    assert out.stderr.splitlines() == ["mpc-bio validate: interrupted (SIGINT); its output was not written.", "atexit function ran"]

    def stopped(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "validate", stopped)
    assert main(["validate", "any.toml"]) == 130
    assert capsys.readouterr().err == "mpc-bio validate: interrupted (SIGINT); its output was not written.\n"
