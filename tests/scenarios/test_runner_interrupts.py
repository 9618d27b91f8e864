"""Honest outcomes of `mpc-bio run`: Ctrl-C and SIGTERM inside IPOPT and CVODES stop the run with
exit code 130 and one line, never a complete result; a failed offline solve fails the run (exit 1,
summary status "failed", no ratio); a stuck solver is ended by the watchdog; stale hidden run
folders of killed runs are removed by the next run (tests/scenarios/test_runner.py).

The subprocess tests send the signal once the run has printed the status line announcing the
solver call and used some CPU time after it (no fixed sleep), and check the outcome, not the
time it took (Linux: CPU time read from /proc).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mpc_bio.cli import main
from mpc_bio.scenarios import run_status

ROOT = Path(__file__).resolve().parents[2]
EXE = [sys.executable, "-m", "mpc_bio.cli"]

#: A small closed loop (fixed oxygen, full surrogate, no estimator) whose offline solve is capped
#: at 2 IPOPT iterations: IPOPT returns Maximum_Iterations_Exceeded.
TINY_FAILING_OFFLINE = """\
kind = "closed_loop"
name = "tiny_closed_loop"
[model]
name = "e_coli_core"
[surrogate]
artifact = "default"
backend = "native"
symbolic = "MX"
[reactor]
volume0 = 1.0
glucose0 = 10.0
biomass0 = 0.1
feed_glucose = 1000.0
products = { ac = "EX_ac_e" }
[kinetics]
glucose_vmax = 10.0
glucose_km = 1.0
oxygen = "fixed"
oxygen_uptake = 15.0
[problem]
batch_time = 2.0
objective = "biomass"
feed_max = 0.1
volume_max = 1.5
glucose_max = 50.0
acetate_max = 40.0
[mpc]
t_step = 0.5
n_horizon = 4
collocation_deg = 1
[estimator]
kind = "none"
[closed_loop]
plant = "nominal"
[offline]
compare = true
n_intervals = 4
collocation_deg = 1
max_iter = 2
"""

#: 48 h of the surrogate fed-batch through the torch-backed (l4casadi) callback at rtol 1e-13:
#: one CVODES call of about 0.5 s CPU (torch on 1 thread), announced by a status line.
LONG_CVODES = """\
kind = "simulation"
name = "long_cvodes"
[model]
name = "e_coli_core"
[surrogate]
artifact = "default"
backend = "l4casadi"
symbolic = "MX"
[reactor]
volume0 = 1.0
glucose0 = 20.0
biomass0 = 0.1
feed_glucose = 1000.0
products = { ac = "EX_ac_e" }
[kinetics]
glucose_vmax = 10.0
glucose_km = 1.0
oxygen = "fixed"
oxygen_uptake = 15.0
[feed]
times = [0.0]
rates = [0.002]
[simulation]
batch_time = 48.0
output_step = 0.1
compare_lp = false
rtol = 1e-13
atol = 1e-15
"""


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process [s] (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _interrupt_at(args: list[str], marker: str, sig: int, cwd: Path, cpu_after: float = 0.0) -> tuple[int, list[str], str]:
    """Start ``mpc-bio ARGS``; when a stderr line contains ``marker`` (the status line printed just
    before a solver call), wait until the process has used ``cpu_after`` more CPU seconds (it is
    then inside that call: measured in CPU time, not wall time, so a loaded machine only delays
    it) and send ``sig``. Returns the exit code, the stderr lines after the signal and stdout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    p = subprocess.Popen([*EXE, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    after: list[str] = []
    sent = False
    for line in p.stderr:
        if sent:
            after.append(line.rstrip("\n"))
        elif marker in line:
            c0 = _cpu_seconds(p.pid)
            while p.poll() is None and _cpu_seconds(p.pid) - c0 < cpu_after:
                time.sleep(0.01)
            p.send_signal(sig)
            sent = True
    out = p.stdout.read()
    rc = p.wait()
    assert sent, f"the run never printed {marker!r} (exit {rc})"
    return rc, after, out


def _partial(out: Path) -> dict:
    hidden = [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.incomplete-")]
    assert len(hidden) == 1, hidden
    assert not (hidden[0] / "summary.json").exists()
    return json.loads((hidden[0] / "run.json").read_text())


def _assert_honest_interrupt(rc: int, after: list[str], out_stdout: str, out: Path, sig_name: str, strict: bool = True) -> dict:
    from mpc_bio.status import _WARNING

    assert rc == 130
    # one line saying what was kept; besides it only the messages CVODES writes to the C-level
    # stderr itself ("rhs failed: KeyboardInterrupt", "At t = ..., the right-hand side routine failed").
    # strict=False: a Python callback inside CVODES (the surrogate network) interrupted mid-call makes
    # CasADi print the callback's error dump to the C-level stderr too; then only our line is checked.
    lines = [ln for ln in after if ln.strip() and not _WARNING.match(ln)]
    if not strict:
        lines = [ln for ln in lines if ln.startswith("mpc-bio")]
    assert len(lines) == 1 and lines[0] == [ln for ln in after if ln.strip()][-1], after
    assert lines[0].startswith(f"mpc-bio run: interrupted ({sig_name})")
    assert f"no result under {out}" in lines[0]
    assert not strict or "Traceback" not in "\n".join(after)
    assert "done in" not in out_stdout  # never reported as finished
    assert not out.exists() and run_status(out) is None
    rec = _partial(out)
    assert rec["status"] == "interrupted"
    return rec


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads CPU time from /proc")


@needs_proc
@pytest.mark.slow
def test_sigint_inside_ipopt_of_the_offline_optimum_stops_the_main_job(tmp_path):
    out = tmp_path / "main"
    rc, after, stdout = _interrupt_at(
        ["run", str(ROOT / "scenarios" / "closed_loop_mpc.toml"), "--out", str(out), "--no-progress"],
        "offline optimum: IPOPT solve 1",
        signal.SIGINT,
        tmp_path,
        cpu_after=0.3,
    )
    rec = _assert_honest_interrupt(rc, after, stdout, out, "SIGINT")
    assert rec["stopped_in"].startswith("offline optimum")
    # the signal came inside the IPOPT call: CasADi swallowed it (status NonIpopt_Exception_Thrown,
    # its warning counted by the run log, not shown) and check_interrupt raised it; or CasADi raised it
    tb = rec["traceback"]
    assert ("check_interrupt()" in tb and "KeyboardInterruptException" in rec["solver_warnings"]["by_message"]) or (
        "sol = solver(" in tb and "note(" not in tb
    ), tb[-1500:]


@needs_proc
@pytest.mark.slow
def test_sigterm_inside_cvodes_stops_the_run_without_a_misleading_solver_error(tmp_path):
    scen = tmp_path / "long_cvodes.toml"
    scen.write_text(LONG_CVODES)
    out = tmp_path / "sim"
    rc, after, stdout = _interrupt_at(
        ["run", str(scen), "--out", str(out), "--no-progress"],
        "surrogate fed-batch: CVODES from",
        signal.SIGTERM,
        tmp_path,
        cpu_after=0.1,
    )
    rec = _assert_honest_interrupt(rc, after, stdout, out, "SIGTERM")
    assert "CV_RHSFUNC_FAIL" not in "\n".join(after)  # the interrupt is named, not the solver's error
    assert "CV_RHSFUNC_FAIL" in rec["traceback"], rec["traceback"]  # CVODES was running when the signal came


@needs_proc
@pytest.mark.slow
def test_sigint_during_the_mpc_steps_stops_the_closed_loop(tmp_path):
    out = tmp_path / "main"
    rc, after, stdout = _interrupt_at(
        ["run", str(ROOT / "scenarios" / "closed_loop_mpc.toml"), "--out", str(out), "--no-progress"],
        "closed loop (MPC + estimator on the plant) ...",
        signal.SIGINT,
        tmp_path,
        cpu_after=0.5,
    )
    rec = _assert_honest_interrupt(rc, after, stdout, out, "SIGINT", strict=False)
    assert rec["stopped_in"].startswith("closed loop")
    # the next complete run into the same folder removes the interrupted attempt
    scen = tmp_path / "tiny.toml"
    scen.write_text(TINY_FAILING_OFFLINE.replace("max_iter = 2", "max_iter = 200"))
    assert main(["run", str(scen), "--out", str(out), "--no-progress"]) == 0
    assert run_status(out) == "complete"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".main.incomplete-")]


def test_failed_mpc_steps_mark_the_run_degraded(tmp_path, capsys):
    """MPC steps capped at one IPOPT iteration fail (the shifted previous plan is applied): the run
    completes, but its summary says "degraded" with the failed steps counted, and the exit code is 3."""
    scen = tmp_path / "tiny.toml"
    text = TINY_FAILING_OFFLINE.replace("max_iter = 2", "max_iter = 200")
    scen.write_text(text.replace("collocation_deg = 1\n[estimator]", "collocation_deg = 1\nmax_iter = 1\ncold_max_iter = 1\n[estimator]"))
    out = tmp_path / "tiny"
    assert main(["run", str(scen), "--out", str(out), "--no-progress"]) == 3
    err = capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "degraded" and s["failures"] == [] and s["offline_success"]
    assert s["solver_failures"] > 0
    assert s["failed_solves"] == [f"MPC: {s['solver_failures']} of {s['mpc_steps']} steps failed (the shifted previous plan was applied)"]
    assert "complete, but solves failed" in err and s["failed_solves"][0] in err
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "complete" and rec["result_status"] == "degraded"


def test_failed_offline_solve_fails_the_run_and_feeds_no_ratio(tmp_path, capsys):
    scen = tmp_path / "tiny.toml"
    scen.write_text(TINY_FAILING_OFFLINE)
    out = tmp_path / "tiny"
    assert main(["run", str(scen), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "result failed" in err and "Maximum_Iterations_Exceeded" in err
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "failed" and s["offline_success"] is False
    assert s["offline_status"] == "Maximum_Iterations_Exceeded"
    assert s["closed_loop_vs_offline"] is None
    assert len(s["failures"]) == 1 and "offline optimum" in s["failures"][0]
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "complete" and rec["result_status"] == "failed"
    assert set(s["phases_s"]) >= {"offline optimum (IPOPT, whole batch)", "closed loop (MPC + estimator on the plant)"}


def test_interrupt_swallowed_by_ipopt_is_raised_by_check_interrupt():
    """SIGINT sent from IPOPT's own iteration callback (iteration 3, no timing involved): CasADi
    swallows it (a status, iterations stop, no exception) and check_interrupt raises it."""
    import casadi as ca

    from mpc_bio.interrupts import catch_interrupts, check_interrupt, interrupted

    class KillAt(ca.Callback):
        def __init__(self, nx, ng, at):
            ca.Callback.__init__(self)
            self.nx, self.ng, self.at, self.k = nx, ng, at, 0
            self.construct("kill_at", {})

        def get_n_in(self):
            return ca.nlpsol_n_out()

        def get_n_out(self):
            return 1

        def get_sparsity_in(self, i):
            n = ca.nlpsol_out(i)
            if n in ("f",):
                return ca.Sparsity.scalar()
            if n in ("x", "lam_x"):
                return ca.Sparsity.dense(self.nx)
            if n in ("g", "lam_g"):
                return ca.Sparsity.dense(self.ng)
            return ca.Sparsity(0, 0)

        def eval(self, arg):
            self.k += 1
            if self.k == self.at:
                os.kill(os.getpid(), signal.SIGINT)
            return [0]

    n = 50
    x = ca.SX.sym("x", n)
    f = ca.sum1(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)  # Rosenbrock: tens of iterations
    cb = KillAt(n, 0, 3)
    solver = ca.nlpsol(
        "s", "ipopt", {"x": x, "f": f}, {"iteration_callback": cb, "ipopt.print_level": 0, "print_time": 0, "ipopt.sb": "yes"}
    )
    with catch_interrupts():
        solver(x0=-1.2 * np.ones(n))
        status = solver.stats()["return_status"]
        # swallowed: a solver status instead of the exception (which one depends on where CasADi catches it)
        assert status in ("NonIpopt_Exception_Thrown", "User_Requested_Stop") and solver.stats()["iter_count"] <= 4
        assert interrupted() == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            check_interrupt()
    assert interrupted() is None  # cleared on exit
    solver(x0=-1.2 * np.ones(n))  # without a signal the same solve succeeds
    assert solver.stats()["return_status"] == "Solve_Succeeded"


WATCHDOG_SCRIPT = """\
import multiprocessing as mp
import sys, time
from mpc_bio.interrupts import catch_interrupts, on_forced_exit


def spin(end, said):  # a computation that swallows Ctrl-C (like a solver turning it into a status) and goes on
    while True:
        try:
            if said:
                print(said, file=sys.stderr, flush=True)
                said = ""
            while time.monotonic() < end:
                time.sleep(0.05)
            return
        except KeyboardInterrupt:
            said = "swallowed"


if __name__ == "__main__":
    with catch_interrupts(grace=float(sys.argv[1]), command="demo"):
        with on_forced_exit(lambda: "clean-up ran"):
            worker = mp.get_context("fork").Process(target=time.sleep, args=(300,))  # a pool worker
            worker.start()
            spin(time.monotonic() + 120, f"ready {worker.pid}")
print("finished without being stopped", file=sys.stderr, flush=True)
"""


@needs_proc
@pytest.mark.parametrize("grace, signals", [(1.0, 1), (600.0, 2)])
def test_watchdog_ends_a_run_whose_solver_swallows_the_interrupt(tmp_path, grace, signals):
    """One signal: ended after the grace period; a second signal: ended at once (the 600 s grace
    is never reached; the script itself would spin 120 s and exit 0)."""
    script = tmp_path / "swallow.py"
    script.write_text(WATCHDOG_SCRIPT)
    p = subprocess.Popen([sys.executable, str(script), str(grace)], stderr=subprocess.PIPE, text=True)
    ready, worker = p.stderr.readline().split()
    assert ready == "ready"
    p.send_signal(signal.SIGINT)
    assert p.stderr.readline().strip() == "swallowed"
    if signals == 2:
        time.sleep(0.5)  # a second Ctrl-C, not the first one reaching several processes (0.3 s rule)
        p.send_signal(signal.SIGTERM)
    err = p.stderr.read()
    assert p.wait() == 130
    # the script may be half-way through printing "swallowed" when the process ends
    last = [ln[ln.index("demo:") :] for ln in err.splitlines() if "demo:" in ln]
    assert len(last) == 1, err
    assert last[0].startswith("demo: interrupted (SIGINT)") and last[0].endswith("stopped now; clean-up ran")
    assert ("second signal" in last[0]) == (signals == 2)
    assert "finished without being stopped" not in err and "Traceback" not in err
    # the worker died with its parent (killed, then reaped by init)
    for _ in range(500):
        if not Path(f"/proc/{worker}").exists() or "Z" in Path(f"/proc/{worker}/stat").read_text().split()[2]:
            break
        time.sleep(0.01)
    else:
        os.kill(int(worker), signal.SIGKILL)
        raise AssertionError(f"worker {worker} outlived its parent")


def test_closed_loop_on_a_perturbed_plant_is_compared_with_that_plants_offline_optimum(tmp_path):
    """On a plant with 0.7 x Vmax the ratio is taken against the plant's own offline optimum
    (the nominal one only warm-starts the first MPC solve and is reported beside it)."""
    from mpc_bio.scenarios.runner import run_scenario

    scen = tmp_path / "tiny.toml"
    scen.write_text(
        TINY_FAILING_OFFLINE.replace("max_iter = 2", "max_iter = 200").replace(
            'plant = "nominal"', 'plant = "perturbed"\nplant_parameter_scale = { vmax_glc = 0.7 }'
        )
    )
    s = run_scenario(scen, tmp_path / "out", progress=False).summary
    assert s["status"] == "ok" and s["offline_params"] == "plant" and s["offline_success"]
    assert s["offline_objective"] < s["nominal_offline_objective"]  # less glucose uptake, less biomass
    ratio = s["objective"] / s["offline_objective"]
    assert s["closed_loop_vs_offline"] == pytest.approx(ratio, rel=1e-12, abs=0)
    assert "plant's offline optimum (IPOPT, whole batch)" in s["phases_s"]
