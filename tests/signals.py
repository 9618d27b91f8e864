"""Run a command in a subprocess and send it a signal once its stderr shows a marker."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

#: Runs ``mpc_bio.cli.main`` on the arguments that follow, as the ``mpc-bio`` script does.
CLI = [sys.executable, "-c", "import sys; from mpc_bio.cli import main; sys.exit(main(sys.argv[1:]))"]


def signal_when(args: list[str], marker: str, signum: int, *, guard_s: float = 900.0) -> tuple[int, str, str]:
    """Run ``mpc-bio ARGS``, send ``signum`` once ``marker`` appears on its stderr, and wait for it.

    Returns (exit code, stdout, stderr). ``guard_s`` guards against a hang (a failure message, not a
    speed limit): the marker must appear, and the process end, within it.
    """
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    seen = threading.Event()

    def read_stderr():
        for chunk in iter(lambda: proc.stderr.read(64), ""):
            err.append(chunk)
            if marker in "".join(err[-3:]):
                seen.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    if not seen.wait(timeout=guard_s):
        proc.kill()
        raise AssertionError(f"{marker!r} never appeared on stderr: {''.join(err)[-2000:]}")
    os.kill(proc.pid, signum)
    out = proc.stdout.read()  # stderr stays with the reader thread until its end
    proc.wait(timeout=guard_s)
    reader.join(timeout=guard_s)
    return proc.returncode, out, "".join(err)
