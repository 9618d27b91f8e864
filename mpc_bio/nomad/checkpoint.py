"""Finished chunks of work kept on disk, so a stopped run resumes where it stopped.

While :func:`chunk_checkpoint` is active, :func:`mpc_bio.nomad.executor.run_chunks` keys every work
item by the content of its function and argument (:func:`content_key`: the arrays' bytes, the
fields of dataclasses, numbers by their exact ``repr``), reads the result of an item already
finished from the checkpoint folder, and writes every new result there as soon as it arrives
(``<function>-<key>.pkl``, written to a temporary name and renamed). The same command run again
builds the same items, finds their results and computes only the others; the results read back
are the objects computed then, so the resumed run's output equals an uninterrupted run's, bit for
bit. An item whose inputs changed (other settings, another chunking) has another key and is
computed anew. A result that arrives after Ctrl-C / SIGTERM is not kept: a solver may have turned
the signal into a failed model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["ChunkCheckpoint", "chunk_checkpoint", "active_checkpoint", "content_key", "checkpoint_dir", "kept_note", "resume_note"]

_SUFFIX = ".pkl"


def _feed(h, obj: Any) -> None:
    """Add a canonical description of ``obj`` to the hash ``h``."""
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(f"ndarray:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes() if a.dtype != object else repr(a.tolist()).encode())
    elif isinstance(obj, np.generic):
        _feed(h, obj.item())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(f"dataclass:{type(obj).__module__}.{type(obj).__qualname__}(".encode())
        for f in dataclasses.fields(obj):  # declared fields only: values cached on the object later are no input
            h.update(f"{f.name}=".encode())
            _feed(h, getattr(obj, f.name))
        h.update(b")")
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}:{len(obj)}[".encode())
        for x in obj:
            _feed(h, x)
        h.update(b"]")
    elif isinstance(obj, dict):
        h.update(f"dict:{len(obj)}{{".encode())
        for k in sorted(obj, key=repr):
            _feed(h, k)
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (set, frozenset)):
        h.update(f"set:{sorted(content_key(x) for x in obj)};".encode())
    elif isinstance(obj, Path):
        h.update(f"path:{obj};".encode())
    else:
        h.update(f"pickle:{type(obj).__module__}.{type(obj).__qualname__}:".encode())
        try:
            h.update(pickle.dumps(obj, protocol=5))
        except (pickle.PicklingError, TypeError, AttributeError):  # e.g. a lambda: a key no later run has
            h.update(f"unpicklable:{id(obj)}:{os.getpid()}:{os.urandom(8).hex()}".encode())


def content_key(obj: Any, func: Callable | None = None) -> str:
    """SHA-256 (hex, 32 characters) of ``obj``'s content (and of ``func``'s module and name).

    Equal for equal arrays, dataclass fields, containers and numbers (exact ``repr``) in any
    process; sets are sorted, so the key does not depend on string hashing. Other objects count
    by their pickle; one that cannot be pickled (a lambda) makes a key no other call has.

    Examples
    --------
    >>> content_key({"a": np.arange(3), "b": (1.5, None)}) == content_key({"b": (1.5, None), "a": np.arange(3)})
    True
    >>> content_key(np.arange(3)) == content_key(np.arange(3.0))
    False
    """
    h = hashlib.sha256()
    if func is not None:
        h.update(f"func:{func.__module__}.{func.__qualname__};".encode())
    _feed(h, obj)
    return h.hexdigest()[:32]


class ChunkCheckpoint:
    """A folder of finished work items' results, keyed by :func:`content_key`.

    Parameters
    ----------
    directory : str or Path
        Created when missing.

    Attributes
    ----------
    directory : Path
    n_reused : int
        Results read back by this process.
    n_written : int
        Results written by this process.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.n_reused = 0
        self.n_written = 0

    def _path(self, func: Callable, key: str) -> Path:
        return self.directory / f"{func.__name__.strip('_')}-{key}{_SUFFIX}"

    def key(self, func: Callable, item: Any) -> str:
        """The key of ``func(item)``."""
        return content_key(item, func)

    def load(self, func: Callable, key: str) -> tuple[bool, Any]:
        """(True, result) when the item ``key`` finished earlier, else (False, None); an unreadable
        file (a run killed while writing it cannot leave one: files are renamed into place) counts as missing."""
        path = self._path(func, key)
        if not path.is_file():
            return False, None
        try:
            with path.open("rb") as fh:
                value = pickle.load(fh)
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
            return False, None
        self.n_reused += 1
        return True, value

    def save(self, func: Callable, key: str, value: Any) -> None:
        """Keep ``value`` as the result of item ``key`` (written to a temporary name, then renamed)."""
        path = self._path(func, key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as fh:
                pickle.dump(value, fh, protocol=5)
        except (pickle.PicklingError, TypeError, AttributeError):  # a result that cannot be kept is only not kept
            tmp.unlink(missing_ok=True)
            return
        os.replace(tmp, path)
        self.n_written += 1

    def n_kept(self) -> int:
        """Finished results in the folder (of this run and earlier ones)."""
        return sum(1 for _ in self.directory.glob(f"*{_SUFFIX}")) if self.directory.is_dir() else 0


_active: list[tuple[ChunkCheckpoint, int]] = []


def active_checkpoint() -> ChunkCheckpoint | None:
    """The checkpoint of the innermost :func:`chunk_checkpoint` of this process, or None (also in
    forked worker processes, which inherit the parent's memory but must not write its checkpoint)."""
    if _active and _active[-1][1] == os.getpid():
        return _active[-1][0]
    return None


@contextmanager
def chunk_checkpoint(directory: str | Path) -> Iterator[ChunkCheckpoint]:
    """Keep the finished items of every :func:`~mpc_bio.nomad.executor.run_chunks` call in the
    enclosed code in ``directory``, and reuse those found there (see the module docstring). The
    folder is created on entry and removed on exit when nothing was kept in it.

    Examples
    --------
    >>> import tempfile
    >>> from mpc_bio.nomad.executor import run_chunks
    >>> from mpc_bio.nomad.settings import ExecutorSettings
    >>> here = ExecutorSettings(n_workers=1, progress=False)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with chunk_checkpoint(d) as cp:
    ...         first = run_chunks(abs, [-1, -2], here)
    ...     with chunk_checkpoint(d) as again:
    ...         second = run_chunks(abs, [-1, -2, -3], here)
    >>> first, second, cp.n_written, again.n_reused, again.n_written
    ([1, 2], [1, 2, 3], 2, 2, 1)
    """
    cp = ChunkCheckpoint(directory)
    _active.append((cp, os.getpid()))
    try:
        yield cp
    finally:
        _active.remove((cp, os.getpid()))
        try:
            cp.directory.rmdir()  # only when it stayed empty (nothing finished): no empty folder left behind
        except OSError:
            pass


def checkpoint_dir(out: str | Path) -> Path:
    """The checkpoint folder of the output folder ``out``: its hidden sibling ``.NAME.checkpoint``
    (removed by the command once ``out`` is complete)."""
    out = Path(out)
    return out.parent / f".{out.name}.checkpoint"


def kept_note(cp: ChunkCheckpoint) -> str:
    """One clause for an interrupt message: how many finished chunks ``cp`` keeps, and where."""
    n = cp.n_kept()
    if not n:
        return "no chunk had finished"
    return f"{n} finished chunk(s) kept in {cp.directory}; the same command resumes from them"


def resume_note(directory: str | Path) -> str | None:
    """A line saying that ``directory`` holds finished chunks of a stopped run, or None when it holds none."""
    d = Path(directory)
    n = sum(1 for _ in d.glob(f"*{_SUFFIX}")) if d.is_dir() else 0
    if not n:
        return None
    return f"resuming: {n} finished chunk(s) of a stopped run in {d} (reused where their inputs are unchanged)"
