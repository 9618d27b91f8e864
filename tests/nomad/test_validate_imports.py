"""Validating a NOMAD or co-design scenario imports no numpy: the settings classes read the
regulation kinds without the numerical code of :mod:`mpc_bio.nomad.regulation` (which imports
numpy where it is used; its functions are tested in test_regulation.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_validating_nomad_and_codesign_scenarios_imports_no_numpy():
    code = (
        "import sys; from mpc_bio.cli import main; "
        "assert main(['validate', 'scenarios/nomad_anthranilate.toml', 'scenarios/codesign_anthranilate.toml']) == 0; "
        "print('LOADED', [m for m in ('numpy', 'scipy', 'casadi', 'cobra', 'pandas') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout, out.stdout
