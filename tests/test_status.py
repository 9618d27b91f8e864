"""Status lines and solver warnings counted, not streamed (mpc_bio.status)."""

from __future__ import annotations

import io
import sys

import pytest

from mpc_bio.status import format_warnings, note, phase, run_log

NAN = (
    'CasADi - 2026-12-07 09:34:31 WARNING("s:nlp_f failed: NaN detected for output f, at (row {r}, col 0).") [.../oracle_function.cpp:411]'
)


def test_casadi_and_cvodes_messages_are_counted_per_phase_and_the_rest_passes(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    lines = io.StringIO()
    with run_log(show=True, stream=lines) as log:
        with phase("offline optimum") as info:
            for r in range(5):
                sys.stderr.write(NAN.format(r=r) + "\n")
            sys.stderr.write("progress 50%\r")  # a progress bar: passed on at once, not held back
            assert err.getvalue() == "progress 50%\r"
            info["note"] = "IPOPT Solve_Succeeded"
        with phase("simulation"):
            sys.stderr.write("rhs failed: KeyboardInterrupt\nAt t = 4.45, the right-hand side routine failed in an unrecoverable manner.\n")
            sys.stderr.write("CasADi - 2026-12-07 09:3")  # a warning arriving in two writes
            sys.stderr.write('4:31 WARNING("solver x failed") [file.cpp:1]\nplain line\n')
        note("extra")
    assert sys.stderr is err
    assert err.getvalue() == "progress 50%\rplain line\n"
    s = log.summary()["solver_warnings"]
    assert s["total"] == 8
    assert s["by_phase"] == {"offline optimum": 5, "simulation": 3}
    assert s["by_message"]["s:nlp_f failed: NaN detected for output f."] == 5
    out = lines.getvalue().splitlines()
    assert len(out) == 5 and out[0].endswith("offline optimum ...") and out[-1].endswith("extra")
    assert "offline optimum: done in" in out[1] and "IPOPT Solve_Succeeded, 5 solver warnings (counted, not shown)" in out[1]
    line = format_warnings(log.summary()["solver_warnings"])
    assert line.startswith("solver warnings: 8 counted, not shown (5 x 's:nlp_f failed: NaN detected for output f.'")
    assert set(log.summary()["phases_s"]) == {"offline optimum", "simulation"}


def test_a_phase_left_by_an_exception_is_remembered_and_without_log_nothing_happens():
    with run_log(show=False) as log:
        with pytest.raises(KeyboardInterrupt):
            with phase("closed loop"):
                with phase("MPC step"):
                    raise KeyboardInterrupt
    assert log.stopped_in == "MPC step" and log.phases == []
    with phase("no log") as info:  # no active log: a no-op
        info["note"] = "x"
    note("nothing")
    assert format_warnings({"total": 0}) == "solver warnings: none"


def test_messages_written_in_pieces_are_counted(monkeypatch):
    """CasADi writes "rhs failed: ", "KeyboardInterrupt", "\\n" as three writes; a real CVODES
    integrator whose right-hand side (a Python callback) raises gives exactly its two messages,
    counted and not shown; unrelated text without a newline is passed on at once."""
    import casadi as ca

    class Rhs(ca.Callback):
        def __init__(self) -> None:
            ca.Callback.__init__(self)
            self.construct("rhs_cb", {"enable_fd": True})

        def get_n_in(self) -> int:
            return 1

        def get_n_out(self) -> int:
            return 1

        def eval(self, arg):
            if float(arg[0]) > 1.5:
                raise KeyboardInterrupt  # what Ctrl-C raises inside the callback; CVODES fails
            return [ca.DM(1.0)]

    rhs = Rhs()
    x = ca.MX.sym("x")
    integrator = ca.integrator("F", "cvodes", {"x": x, "ode": rhs(x)}, 0.0, 2.0)  # x' = 1 reaches 1.5 at t = 0.5
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with run_log(show=False) as log:
        with phase("simulation"):
            for piece in ("rhs failed: ", "KeyboardInterrupt", "\n", "At t = 0.41, the right-hand side", " routine failed.", "\n"):
                sys.stderr.write(piece)
            sys.stderr.write("progress 10%")  # not the start of a counted line: passed on at once
            assert err.getvalue() == "progress 10%"
            sys.stderr.write("\n")
            with pytest.raises(RuntimeError):
                integrator(x0=1.0)
    assert err.getvalue() == "progress 10%\n"
    s = log.summary()["solver_warnings"]
    assert s["total"] == 4 and s["by_phase"] == {"simulation": 4}
    assert s["by_message"]["rhs failed: KeyboardInterrupt"] == 2
