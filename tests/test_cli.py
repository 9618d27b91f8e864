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
