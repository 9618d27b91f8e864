"""Output folders written safely: checked before any work, staged in a hidden folder, renamed whole.

Every command that writes a folder (``sample``, ``train``, ``nomad ensemble``, ``run``, ...) goes
through :func:`staged_output`: an existing, non-empty output is refused unless ``overwrite``; the
folder's parent must be writable, checked before the work starts; the files are written into a
hidden sibling ``.NAME.incomplete-PID-N`` and renamed to ``NAME`` only when everything succeeded,
so an interrupted or failed command never leaves a folder that looks finished.
:func:`read_saved` opens such a folder again.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mpc_bio.errors import MpcBioError

__all__ = ["OutputError", "check_output_dir", "staged_output", "hidden_sibling", "replace_dir", "json_default", "read_saved"]


class OutputError(MpcBioError):
    """An output folder exists already (and overwriting was not asked for) or cannot be written."""


def check_output_dir(out: str | Path, *, overwrite: bool = False, option: str = "--out") -> Path:
    """Refuse an output folder that cannot be (re)written, before any work is done.

    Parameters
    ----------
    out : str or Path
        The output folder.
    overwrite : bool
        Allow replacing an existing, non-empty folder.
    option : str
        How the caller names the folder in messages (e.g. ``"--out"``).

    Returns
    -------
    Path
        ``out`` as a Path; its parent exists.

    Raises
    ------
    OutputError
        ``out`` is a file, or a non-empty folder while ``overwrite`` is False, or its parent
        cannot be created or written.
    """
    out = Path(out)
    if out.is_file():
        raise OutputError(f"The {option} path {str(out)!r} is a file; expected a folder (new, empty, or with --overwrite).")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(
            f"The {option} folder {str(out)!r} exists and is not empty; pass --overwrite to replace it, or choose another folder."
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in out.parents if p.is_file()), None)
        why = f"{str(blocker)!r} is a file, not a folder" if blocker is not None else exc.strerror
        raise OutputError(f"Cannot create the parent of the {option} folder {str(out)!r}: {why}.") from None
    probe = out.parent / f".{out.name}.write-test-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise OutputError(f"Cannot write into {str(out.parent)!r} (for the {option} folder): {exc.strerror}.") from None
    return out


def hidden_sibling(out: Path) -> Path:
    """A new, empty hidden folder ``.NAME.incomplete-PID-N`` beside ``out`` (its parent is created)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    i = 0
    while True:
        tmp = out.parent / f".{out.name}.incomplete-{os.getpid()}-{i}"
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            i += 1


def replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished folder ``tmp`` to ``out``, replacing what is there in one rename."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.replaced-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_output(out: str | Path, *, overwrite: bool = False, option: str = "--out") -> Iterator[Path]:
    """Write a folder through a hidden temporary sibling, renamed to ``out`` on success.

    Yields the temporary folder to write into. On any exception (``KeyboardInterrupt`` included)
    the temporary folder is removed and ``out`` is left as it was.
    """
    out = check_output_dir(out, overwrite=overwrite, option=option)
    tmp = hidden_sibling(out)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, out)


def json_default(o: Any) -> Any:
    """``json.dumps(..., default=json_default)``: numpy scalars and arrays as numbers and lists,
    tuples and sets as lists, paths and anything else as their string."""
    import numpy as np

    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (tuple, set, frozenset)):
        return list(o)
    return str(o)


def read_saved(path: str | Path, json_name: str, npz_name: str, fmt: str, error: type[Exception], what: str) -> tuple[Path, Path, dict]:
    """The json and npz files of a saved folder (``path``: the folder or its json file) and the parsed
    json, whose ``format`` must be ``fmt``; a missing file, invalid json or another format raises
    ``error`` naming ``what`` the folder should hold."""
    p = Path(path)
    d = p.parent if p.suffix == ".json" else p
    jpath, npath = d / json_name, d / npz_name
    for f in (jpath, npath):
        if not f.is_file():
            raise error(f"No {what} at {str(d)!r}: {f.name} is missing.")
    try:
        meta = json.loads(jpath.read_text())
    except json.JSONDecodeError as exc:
        raise error(f"{jpath} is not valid json ({exc}): the {what} is corrupted.") from None
    if meta.get("format") != fmt:
        raise error(f"{jpath} is not an mpc_bio {what} (format {meta.get('format')!r}, expected {fmt!r}).")
    return jpath, npath, meta
