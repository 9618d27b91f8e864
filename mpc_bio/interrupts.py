"""Ctrl-C and SIGTERM that no solver can swallow or delay.

IPOPT (through CasADi) and CVODES check for Ctrl-C themselves: CasADi turns the
``KeyboardInterrupt`` raised by Python's signal handler into a solver status
(``NonIpopt_Exception_Thrown``) or a ``RuntimeError`` (``CV_RHSFUNC_FAIL``), and the caller would
go on with a broken result. While :func:`catch_interrupts` is active, SIGINT and SIGTERM are
recorded before the ``KeyboardInterrupt`` is raised, so code after a solver call asks
:func:`check_interrupt` (raises ``KeyboardInterrupt`` again when a signal came) and a
``RuntimeError`` caused by the signal is recognised by :func:`interrupted`.

Python runs its signal handler only between bytecodes: inside one long compiled call (an IPOPT
iteration on a large expanded graph, a HiGHS solve) nothing happens until the call returns. With
``grace`` set, a watchdog thread (woken by the signal through :func:`signal.set_wakeup_fd`)
ends the process when the interrupt has not been handled within ``grace`` seconds, or at
once on a second signal (more than 0.3 s after the first): it kills the worker processes of
this process (:func:`multiprocessing.active_children`), calls the functions registered with
:func:`on_forced_exit` (e.g. marking a run folder as interrupted), prints their one-line
messages and exits with code 130.

Worker pools die with their parent: :func:`worker_pool` is a process pool that, when the code
using it is left by an exception (an interrupt included), cancels what is queued and kills its
workers at once instead of waiting for their running tasks.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

__all__ = ["catch_interrupts", "check_interrupt", "interrupted", "on_forced_exit", "Interrupted", "worker_pool"]

_received: list[int] = []  # signal numbers received while catch_interrupts is active
_cleanups: list[Callable[[], str | None]] = []
#: Signals within this time of the first count as the same one (Ctrl-C in a terminal reaches every
#: process of the group, and forked workers share the wake-up socket).
_SAME_SIGNAL_S = 0.3


class Interrupted(KeyboardInterrupt):
    """An interrupt (Ctrl-C or SIGTERM) with a message saying what was kept."""


def _handler(signum: int, frame: object) -> None:
    _received.append(signum)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def interrupted() -> str | None:
    """Name of the first signal received under :func:`catch_interrupts` (``"SIGINT"``,
    ``"SIGTERM"``), or None."""
    return signal.Signals(_received[0]).name if _received else None


def check_interrupt() -> None:
    """Raise ``KeyboardInterrupt`` when a signal was received, even if a solver swallowed it.

    Call it after every solver call (IPOPT, CVODES) whose failure would otherwise be handled as
    an ordinary solver failure (fallback, retry, status recorded and the run continued).
    """
    if _received:
        raise KeyboardInterrupt(interrupted())


@contextmanager
def on_forced_exit(cleanup: Callable[[], str | None]) -> Iterator[None]:
    """Register ``cleanup`` for the enclosed code: called by the watchdog before it ends the
    process (see the module docstring); it returns a one-line message or None. It runs in the
    watchdog's thread while the main thread is stuck in compiled code: keep it to file writes."""
    _cleanups.append(cleanup)
    try:
        yield
    finally:
        _cleanups.remove(cleanup)


def _force_exit(why: str, command: str, signum: int) -> None:
    import multiprocessing

    for child in multiprocessing.active_children():  # worker pools die with their parent
        try:
            child.kill()
        except (OSError, ValueError, AttributeError):
            pass
    lines = []
    for f in list(_cleanups):
        try:
            msg = f()
        except Exception as exc:  # noqa: BLE001 - the process ends anyway; say what failed
            msg = f"clean-up failed: {exc}"
        if msg:
            lines.append(msg)
    err = sys.__stderr__
    if err is not None:
        err.write(
            f"{command}: interrupted ({interrupted() or signal.Signals(signum).name}): {why}; stopped now"
            + "".join(f"; {m}" for m in lines)
            + "\n"
        )
        err.flush()
    os._exit(130)


def _watch(sock: socket.socket, grace: float, stop: threading.Event, command: str) -> None:
    first = None
    first_sig = signal.SIGINT
    while not stop.is_set():
        wait = 0.25 if first is None else min(0.25, max(0.0, first + grace - time.monotonic()))
        try:
            ready, _, _ = select.select([sock], [], [], wait)
        except (OSError, ValueError):  # the socket was closed: the context ended
            return
        if stop.is_set():
            return
        if ready:
            try:
                data = sock.recv(64)
            except OSError:
                data = b""
            sigs = [b for b in data if b in (signal.SIGINT, signal.SIGTERM)]
            if sigs and first is None:
                first, first_sig = time.monotonic(), sigs[0]
            elif sigs and time.monotonic() - first > _SAME_SIGNAL_S:
                _force_exit("a second signal came before the first was handled", command, first_sig)
        if first is not None and time.monotonic() - first >= grace:
            _force_exit(f"the running computation did not return within {grace:g} s", command, first_sig)


@contextmanager
def catch_interrupts(grace: float | None = None, command: str = "mpc-bio") -> Iterator[None]:
    """Record SIGINT and SIGTERM (both then raise ``KeyboardInterrupt``) for the enclosed code.

    Parameters
    ----------
    grace : float, optional
        Seconds the enclosed code has to handle an interrupt before the process is ended (exit
        code 130, after the :func:`on_forced_exit` clean-ups); a second signal ends it at once.
        None (default): never forced, for commands that keep working after Ctrl-C on purpose
        (e.g. saving what was trained).
    command : str
        How the forced-exit line names the command (e.g. ``"mpc-bio run"``).

    Notes
    -----
    The record is cleared on entry and on exit. Outside the main thread signal handlers cannot
    be set; the context then only clears the record.
    """
    _received.clear()
    main = threading.current_thread() is threading.main_thread()
    previous = {}
    stop = threading.Event()
    pair = None
    old_fd = None
    if main:
        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.signal(s, _handler)
        if grace is not None:
            pair = socket.socketpair()
            pair[0].setblocking(False)
            pair[1].setblocking(False)
            old_fd = signal.set_wakeup_fd(pair[1].fileno(), warn_on_full_buffer=False)
            threading.Thread(
                target=_watch, args=(pair[0], float(grace), stop, command), daemon=True, name="mpc-bio-interrupt-watchdog"
            ).start()
    try:
        yield
    finally:
        stop.set()
        if pair is not None:
            signal.set_wakeup_fd(old_fd if old_fd is not None else -1)
            for sk in pair:
                sk.close()
        for s, h in previous.items():
            signal.signal(s, h)
        _received.clear()


@contextmanager
def worker_pool(max_workers: int, mp_context=None, **kwargs) -> Iterator[ProcessPoolExecutor]:
    """A :class:`concurrent.futures.ProcessPoolExecutor` whose workers die with the enclosed code.

    Left normally, the pool shuts down and waits for its workers. Left by an exception
    (``KeyboardInterrupt`` from Ctrl-C or SIGTERM included) the queued tasks are cancelled and the
    workers killed at once (their running tasks are lost; the caller keeps what it had stored),
    and the exception propagates without waiting for them, so no worker outlives the command
    and the parent never hangs in the pool's shutdown.

    Parameters
    ----------
    max_workers : int
        Number of worker processes.
    mp_context : multiprocessing context, optional
        How the workers start (``multiprocessing.get_context("spawn")``, ...).
    **kwargs
        Passed to ``ProcessPoolExecutor`` (``initializer``, ``initargs``).
    """
    from concurrent.futures import ProcessPoolExecutor

    ex = ProcessPoolExecutor(max_workers=max_workers, mp_context=mp_context, **kwargs)
    try:
        yield ex
    except BaseException:
        procs = list((getattr(ex, "_processes", None) or {}).values())
        for proc in procs:
            try:
                proc.kill()
            except (OSError, ValueError, AttributeError):
                pass
        ex.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            try:
                proc.join(timeout=5)
            except (OSError, ValueError, AssertionError):
                pass
        raise
    ex.shutdown(wait=True)
