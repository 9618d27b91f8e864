"""The control model of the process ODE uses the ODE's symbol type."""

from __future__ import annotations

import pytest

from mpc_bio.control.process_adapter import control_model_from_process
from mpc_bio.process import FedBatchSettings

from .test_distill_and_adapters import _closed_form_cell


@pytest.mark.parametrize(("symvar", "expected"), [(None, "SX"), ("MX", "MX"), ("SX", "SX")])
def test_control_model_takes_the_ode_symbol_type(symvar, expected):
    """An SX cell model: SX by default, MX when asked; the right-hand side is a function of that type."""
    m = control_model_from_process(FedBatchSettings(), _closed_form_cell(), symvar=symvar)
    assert m.symvar == expected
    assert m.rhs.is_a(f"{expected}Function")
