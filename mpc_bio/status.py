"""Status lines for the phases of a long run, and solver warnings counted instead of streamed.

A :class:`RunLog` is made active with :func:`run_log` around a whole run (``mpc-bio run`` does
this); code anywhere below marks its long phases with ``with phase("offline optimum"): ...``
(a no-op when no log is active). Each phase prints one line when it starts and one when it ends
(elapsed time of the run, the phase's own time, the solver warnings it produced), on stderr.

While the log is active, the warnings CasADi writes to ``sys.stderr`` (``CasADi - <time>
WARNING("...")``, e.g. ``nlp_f failed: NaN detected`` at every IPOPT trial point outside a
model's domain), and the messages of CVODES (``At t = ..., the right-hand side routine
failed ...``, ``rhs failed: ...``) are not shown: they are counted per phase and per message
(numbers replaced by ``#``) and reported by :meth:`RunLog.summary` and :func:`format_warnings`. Every other
output passes through unchanged. CasADi writes a message in pieces (``"rhs failed: "``,
``"KeyboardInterrupt"``, ``"\\n"``), so text without its newline that could still become a counted
line is held back until the line is complete; anything else (a progress bar's ``\\r`` update)
is passed on at once.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["RunLog", "run_log", "phase", "note", "format_warnings"]

_WARNING = re.compile(
    r"^(CasADi - \S+ \S+ WARNING\((?P<msg>.*)\)\s*(\[[^\]]*\])?"  # CasADi's warnings
    r"|(?P<sundials>At t ?= ?\S+,? .*)"  # SUNDIALS (CVODES) error messages
    r"|(?P<callback>(rhs|jtimes|jac|psetup|psolve|lsetup|lsolve)\w* failed: .*))\s*$"  # CasADi's CVODES interface: "rhs failed: ..."
)
#: How the counted lines start: an unfinished line that starts so (or is a start of one of these)
#: waits for its end before it is counted or passed on.
_STARTS = ("CasADi - ", "At t", "rhs", "jtimes", "jac", "psetup", "psolve", "lsetup", "lsolve")
_active: list[RunLog] = []


def _may_be_counted(tail: str) -> bool:
    """True when ``tail`` (text after the last newline) can still become a counted line."""
    return "\r" not in tail and any(tail.startswith(s) or s.startswith(tail) for s in _STARTS)


def _key(msg: str) -> str:
    """A warning's message without its numbers and quotes (so repeats of one kind count together)."""
    msg = msg.strip().strip('"')
    msg = re.sub(r", at \(row \d+, col \d+\)", "", msg)
    return re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", msg)[:160]


class _Filter:
    """A text stream that counts and drops CasADi warning lines and passes everything else on."""

    def __init__(self, stream: TextIO, log: RunLog) -> None:
        self._stream = stream
        self._log = log
        self._pending = ""

    def write(self, text: str) -> int:
        buf = self._pending + text
        self._pending = ""
        lines = buf.split("\n")
        for line in lines[:-1]:
            m = _WARNING.match(line)
            if m:
                self._log._count(m.group("msg") or m.group("sundials") or m.group("callback"))
            else:
                self._stream.write(line + "\n")
        tail = lines[-1]
        if tail and _may_be_counted(tail):
            self._pending = tail  # maybe the start of a counted line: wait for its end
        elif tail:
            self._stream.write(tail)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def close_pending(self) -> None:
        if self._pending:
            self._stream.write(self._pending)
            self._pending = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class RunLog:
    """Phases of one run (name, seconds, warnings) and the solver warnings counted in it.

    Parameters
    ----------
    show : bool
        Print a status line at the start and at the end of every phase.
    stream : text stream, optional
        Where the status lines go (default ``sys.stderr`` at the time of each line).
    """

    def __init__(self, show: bool = True, stream: TextIO | None = None) -> None:
        self.show = show
        self.stream = stream
        self.t0 = time.perf_counter()
        self.phases: list[dict[str, Any]] = []
        self.warnings: Counter[str] = Counter()
        self.warnings_by_phase: Counter[str] = Counter()
        self._stack: list[str] = []
        self.stopped_in: str | None = None

    def _count(self, msg: str) -> None:
        self.warnings[_key(msg)] += 1
        self.warnings_by_phase[self._stack[-1] if self._stack else "(outside phases)"] += 1

    def _print(self, text: str) -> None:
        if self.show:
            out = self.stream or sys.stderr
            out.write(f"[{time.perf_counter() - self.t0:7.1f} s] {text}\n")
            out.flush()

    def elapsed(self) -> float:
        """Seconds since the log started."""
        return time.perf_counter() - self.t0

    @property
    def current(self) -> str | None:
        """Name of the innermost phase running now."""
        return self._stack[-1] if self._stack else None

    @contextmanager
    def phase(self, name: str) -> Iterator[dict[str, Any]]:
        """Mark a phase: a status line at its start and end; yields a dict whose ``"note"`` entry
        (a short text, e.g. the solver status) is appended to the end line."""
        self._print(f"{name} ...")
        self._stack.append(name)
        n0 = sum(self.warnings.values())
        t = time.perf_counter()
        info: dict[str, Any] = {}
        try:
            yield info
        except BaseException:
            if self.stopped_in is None:
                self.stopped_in = name  # the innermost phase an exception (or interrupt) left
            raise
        finally:
            self._stack.pop()
        dt = time.perf_counter() - t
        nw = sum(self.warnings.values()) - n0
        self.phases.append({"phase": name, "seconds": dt, "solver_warnings": nw})
        extra = "".join(f", {v}" for v in [info.get("note")] if v)
        extra += f", {nw} solver warnings (counted, not shown)" if nw else ""
        self._print(f"{name}: done in {dt:.1f} s{extra}")

    def summary(self) -> dict[str, Any]:
        """``phases_s`` (seconds per phase) and ``solver_warnings`` (``total``, ``by_phase``,
        ``by_message``), json-ready."""
        phases: dict[str, float] = {}
        for p in self.phases:
            phases[p["phase"]] = phases.get(p["phase"], 0.0) + p["seconds"]
        return {
            "phases_s": phases,
            "solver_warnings": {
                "total": int(sum(self.warnings.values())),
                "by_phase": dict(self.warnings_by_phase),
                "by_message": dict(self.warnings.most_common()),
            },
        }


def format_warnings(counts: dict[str, Any]) -> str:
    """One line from the ``solver_warnings`` entry of :meth:`RunLog.summary`."""
    total = int(counts.get("total", 0))
    if not total:
        return "solver warnings: none"
    by_msg = counts.get("by_message", {})
    msg, n = max(by_msg.items(), key=lambda kv: kv[1]) if by_msg else ("?", total)
    more = f" and {len(by_msg) - 1} other kind(s)" if len(by_msg) > 1 else ""
    return f"solver warnings: {total} counted, not shown ({n} x {msg!r}{more}; per phase in summary.json)"


@contextmanager
def run_log(show: bool = True, stream: TextIO | None = None) -> Iterator[RunLog]:
    """Make a :class:`RunLog` active: CasADi warnings on ``sys.stderr`` are counted, not shown,
    and :func:`phase` reports to it."""
    log = RunLog(show, stream)
    flt = _Filter(sys.stderr, log)
    old = sys.stderr
    sys.stderr = flt
    _active.append(log)
    try:
        yield log
    finally:
        _active.remove(log)
        flt.close_pending()
        sys.stderr = old


def note(text: str) -> None:
    """A status line in the active :class:`RunLog` (e.g. the start of a long solver call); a no-op
    without one."""
    if _active:
        _active[-1]._print(text)


@contextmanager
def phase(name: str) -> Iterator[dict[str, Any]]:
    """A phase of the active :class:`RunLog` (see :meth:`RunLog.phase`); a no-op without one."""
    if not _active:
        yield {}
        return
    with _active[-1].phase(name) as info:
        yield info
