"""Scenario runner: read a TOML file, validate it, dispatch on its ``kind``, write a complete run.

Every scenario file has a top-level ``kind`` (which runner handles it), and optionally ``name``
and ``description``; the tables are validated against the kind's schema
(:mod:`mpc_bio.scenarios.kinds`) before anything runs, every problem reported at once. Kinds are
listed in :data:`SCENARIO_KINDS` as ``"module:function"`` strings, imported only when used, so
adding a kind is one line here plus its function ``run(path, data, out_dir, *, progress) ->
(files, summary)`` (and, optionally, one line in :data:`~mpc_bio.scenarios.kinds.SCENARIO_SCHEMAS`).

Output directory protocol: the run writes into a temporary sibling directory
(``.<name>.incomplete-<pid>-<n>``) whose ``run.json`` says ``"status": "running"``; only when the
kind's function returns are ``summary.json``, ``resolved.toml`` and ``run.json``
(``"status": "complete"``) written and the directory renamed to its final name. An interrupted
or failed run therefore never leaves a result under the final name; its temporary directory
keeps ``run.json`` with ``"status": "interrupted"`` or ``"failed"`` and the error for inspection
(until a later run into the same directory completes and removes it). A temporary directory
still marked ``"running"`` whose process is gone (a run killed with SIGKILL, a machine that
stopped) is reported and removed by the next run into the same parent folder. A final directory
that holds a complete run is never replaced unless ``overwrite=True``.

Honest outcomes: a kind's summary may list ``failures`` (solves whose failure invalidates a
reported result, e.g. the offline optimum a closed loop is compared with); the summary's
``status`` is then ``"failed"`` and ``mpc-bio run`` exits with code 1. It may list
``failed_solves`` (solves that failed without invalidating the result, e.g. MPC steps that applied
the shifted previous plan): ``status`` ``"degraded"``, exit code 3. Else ``"ok"``, 0. Ctrl-C
and SIGTERM stop the run even when a solver swallowed them (:mod:`mpc_bio.interrupts`): the run
is never marked complete after an interrupt. The run's phases print status lines, and the
warnings CasADi streams are counted per phase into the summary (:mod:`mpc_bio.status`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import re
import shutil
import socket
import sys
import time
import tomllib
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpc_bio.errors import MpcBioError
from mpc_bio.interrupts import Interrupted, check_interrupt, interrupted, on_forced_exit
from mpc_bio.outputs import check_output_dir, hidden_sibling, json_default, replace_dir
from mpc_bio.scenarios.schema import Problem, ScenarioError, dump_toml, validate_with_schema
from mpc_bio.status import run_log

__all__ = [
    "SCENARIO_KINDS",
    "ScenarioResult",
    "RunExistsError",
    "load_scenario",
    "validate_scenario",
    "run_scenario",
    "default_out_dir",
    "dependency_versions",
    "find_seeds",
    "run_status",
    "stale_run_folders",
]

#: kind -> "module:function" of its runner.
SCENARIO_KINDS: dict[str, str] = {
    "simulation": "mpc_bio.scenarios.simulation:run_simulation",
    "closed_loop": "mpc_bio.scenarios.control:run_closed_loop_scenario",
    "feed_optimization": "mpc_bio.scenarios.control:run_feed_optimization_scenario",
    "mpc_mismatch": "mpc_bio.scenarios.control:run_mpc_mismatch_scenario",
    "codesign": "mpc_bio.codesign.study:run_codesign_scenario",
}

_TOP_LEVEL = ("kind", "name", "description")

#: Distributions whose versions every run records.
MAIN_DEPENDENCIES = (
    "mpc_bio",
    "numpy",
    "scipy",
    "pandas",
    "torch",
    "casadi",
    "l4casadi",
    "do-mpc",
    "cobra",
    "highspy",
    "pyomo",
    "matplotlib",
)


class RunExistsError(MpcBioError):
    """The output directory already holds a complete run (pass ``overwrite=True`` to replace it)."""


@dataclass(frozen=True)
class ScenarioResult:
    """What a scenario run produced.

    Attributes
    ----------
    kind, name : str
        Scenario kind and name.
    out_dir : Path
        Output directory of this run.
    files : dict of str to Path
        Written files by role (``"figure"``, ``"trajectories"``, ``"summary"``, ``"run"``, ...).
    summary : dict
        Json-ready key figures (also written to ``summary.json``).
    wall_time : float
        Seconds for the whole run.
    """

    kind: str
    name: str
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    wall_time: float = 0.0


def load_scenario(path: str | Path) -> dict[str, Any]:
    """Parse a scenario TOML file and check its ``kind`` (tables are checked by :func:`validate_scenario`).

    Raises
    ------
    FileNotFoundError
        No such file.
    ScenarioError
        Not valid TOML, or ``kind`` missing, not a string, or unknown; ``name``/``description``
        not strings.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"Scenario file {str(p)!r} does not exist.")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(problems=[Problem(str(p), "file", "valid TOML", f"a syntax error: {exc}", "type")]) from None
    problems = []
    kinds = ", ".join(repr(k) for k in sorted(SCENARIO_KINDS))
    kind = data.get("kind")
    if kind is None:
        hint = " (a [nomad] config: run it with `mpc-bio nomad ensemble/design --config FILE`)" if "nomad" in data else ""
        problems.append(Problem(str(p), "kind", f"a string, one of {kinds}{hint}", "nothing (missing)", "missing_key"))
    elif not isinstance(kind, str) or kind not in SCENARIO_KINDS:
        problems.append(Problem(str(p), "kind", f"one of {kinds}", repr(kind), "range"))
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            problems.append(Problem(str(p), key, "a string", f"{type(data[key]).__name__} {data[key]!r}", "type"))
    if problems:
        raise ScenarioError(problems=problems)
    return data


def validate_scenario(path: str | Path) -> dict[str, Any]:
    """Load and fully validate a scenario file without running it.

    Returns
    -------
    dict
        The resolved configuration (every table of the kind with its defaults filled in; a kind
        without a registered schema returns the file as parsed).

    Raises
    ------
    FileNotFoundError, ScenarioError
        ScenarioError lists every problem of the file at once.
    """
    from mpc_bio.scenarios.kinds import get_schema

    try:
        data = load_scenario(path)
    except ScenarioError as exc:
        # a bad kind hides the tables' problems; report what can be reported
        raise exc from None
    schema = get_schema(data["kind"])
    if schema is None:
        return dict(data)
    return validate_with_schema(path, data, schema)


def default_out_dir(path: str | Path, root: str | Path = "runs") -> Path:
    """``runs/<scenario stem>-<UTC timestamp>``: a fresh directory for each run."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = Path(root) / f"{Path(path).stem}-{stamp}"
    out, i = base, 1
    while out.exists():
        out = base.with_name(f"{base.name}-{i}")
        i += 1
    return out


def run_status(out_dir: str | Path) -> str | None:
    """Status recorded in ``out_dir/run.json`` (``"complete"``, ``"running"``, ``"failed"``), or None."""
    p = Path(out_dir) / "run.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text()).get("status")
    except (json.JSONDecodeError, OSError):
        return "unreadable"


def dependency_versions() -> dict[str, str | None]:
    """Installed versions of the main dependencies (None when not installed), without importing them."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in MAIN_DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def find_seeds(config: Any, prefix: str = "") -> dict[str, int]:
    """Every key named ``seed`` (or ending in ``_seed``) in a resolved configuration, by dotted path."""
    out: dict[str, int] = {}
    if isinstance(config, Mapping):
        for k, v in config.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if (k == "seed" or str(k).endswith("_seed")) and isinstance(v, int) and not isinstance(v, bool):
                out[name] = v
            else:
                out.update(find_seeds(v, name))
    elif isinstance(config, list):
        for i, v in enumerate(config):
            out.update(find_seeds(v, f"{prefix}[{i}]"))
    return out


def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _write_json(p: Path, obj: Any) -> None:
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=json_default))
    os.replace(tmp, p)


def run_scenario(
    path: str | Path,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    overwrite: bool = False,
    status: bool | None = None,
) -> ScenarioResult:
    """Validate and run one scenario file; write a complete, self-describing output directory.

    Parameters
    ----------
    path : path
        Scenario TOML file.
    out_dir : path, optional
        Output directory; default :func:`default_out_dir` (``runs/<stem>-<UTC time>``).
    progress : bool
        Show progress bars.
    overwrite : bool
        Replace ``out_dir`` when it already holds a complete run (or any other content).
    status : bool, optional
        Print a status line (on stderr) at the start and end of each long phase; default
        ``progress``.

    Returns
    -------
    ScenarioResult

    Raises
    ------
    ScenarioError
        The file is invalid (every problem listed) or the kind's runner rejected it.
    RunExistsError
        ``out_dir`` exists and is not empty, and ``overwrite`` is False.
    mpc_bio.outputs.OutputError
        ``out_dir`` is a file, or its parent cannot be created or written (checked before any work).

    Notes
    -----
    Files written besides the kind's own: ``scenario.toml`` (the file as given),
    ``resolved.toml`` (with every default filled in), ``summary.json`` (key figures) and
    ``run.json`` (status, kind, name, the scenario's SHA-256, seeds, dependency versions,
    Python and platform, command line, start/end times and timings, the list of files).
    """
    t0 = time.perf_counter()
    started = _utc()
    path = Path(path)
    resolved = validate_scenario(path)  # the file is read and validated once; the kind runs on the resolved tables
    t_valid = time.perf_counter() - t0
    data = resolved
    kind = data["kind"]
    name = data.get("name", path.stem)
    out = Path(out_dir) if out_dir is not None else default_out_dir(path)
    check_output_dir(out, overwrite=True)  # a file in the way, an unwritable parent: refused before any work
    if out.exists() and not overwrite:
        status = run_status(out)
        if status == "complete":
            raise RunExistsError(
                f"{out} already holds a complete run of {name!r}; pass --overwrite (overwrite=True) to replace it, or choose another --out."
            )
        if out.is_file() or any(out.iterdir()):
            raise RunExistsError(
                f"{out} exists and is not empty (run status: {status}); pass --overwrite to replace it, or choose another --out."
            )
    raw = path.read_bytes()
    stale = stale_run_folders(out.parent)
    if stale:
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        print(
            f"mpc-bio run: removed {len(stale)} unfinished run folder(s) of runs whose process is gone "
            f"(status 'running', killed without clean-up): {', '.join(p.name for p in stale)}",
            file=sys.stderr,
        )
    record: dict[str, Any] = {
        "status": "running",
        "kind": kind,
        "name": name,
        "scenario": str(path),
        "scenario_sha256": hashlib.sha256(raw).hexdigest(),
        "out_dir": str(out),
        "started_utc": started,
        "seeds": find_seeds(resolved),
        "versions": dependency_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "argv": list(sys.argv),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    tmp = hidden_sibling(out)
    log = None
    try:
        (tmp / "scenario.toml").write_bytes(raw)
        (tmp / "resolved.toml").write_text(
            f"# Resolved configuration of {path} (every default filled in); run with: mpc-bio run resolved.toml\n" + dump_toml(resolved)
        )
        _write_json(tmp / "run.json", record)
        mod_name, func_name = SCENARIO_KINDS[kind].split(":")
        runner = getattr(importlib.import_module(mod_name), func_name)
        body = {k: v for k, v in data.items() if k not in _TOP_LEVEL}
        t1 = time.perf_counter()

        def forced_exit() -> str:
            # the watchdog ends the process while a solver is stuck in compiled code (mpc_bio.interrupts)
            _write_json(
                tmp / "run.json",
                {
                    **record,
                    "status": "interrupted",
                    "finished_utc": _utc(),
                    "error": "forced exit: the interrupt was not handled in time",
                    "stopped_in": log.current if log is not None else None,
                },
            )
            return f"no result under {out}; partial folder {tmp} (run.json status 'interrupted')"

        with run_log(show=progress if status is None else status) as log, on_forced_exit(forced_exit):
            files, summary = runner(path, body, tmp, progress=progress)
        check_interrupt()  # a solver may have swallowed Ctrl-C/SIGTERM: never mark such a run complete
        t_run = time.perf_counter() - t1
        wall = time.perf_counter() - t0
        failures = [str(f) for f in summary.pop("failures", None) or []]
        failed_solves = [str(f) for f in summary.pop("failed_solves", None) or []]
        summary = {
            "kind": kind,
            "name": name,
            "scenario": str(path),
            "status": "failed" if failures else "degraded" if failed_solves else "ok",
            "failures": failures,
            "failed_solves": failed_solves,
            "wall_time_s": wall,
            **summary,
            **log.summary(),
        }
        _write_json(tmp / "summary.json", _relocate(summary, tmp, out))
        files = {role: out / Path(f).relative_to(tmp) if _inside(f, tmp) else Path(f) for role, f in files.items()}
        files.update(
            {"summary": out / "summary.json", "scenario": out / "scenario.toml", "resolved": out / "resolved.toml", "run": out / "run.json"}
        )
        record.update(
            {
                "status": "complete",
                "result_status": summary["status"],
                "failures": failures,
                "finished_utc": _utc(),
                "timings_s": {"validate": t_valid, "run": t_run, "total": time.perf_counter() - t0},
                "files": {role: str(f) for role, f in files.items()},
            }
        )
        _write_json(tmp / "run.json", record)
        replace_dir(tmp, out)
        _remove_failed_attempts(out)
    except BaseException as exc:
        stopped = isinstance(exc, KeyboardInterrupt) or interrupted() is not None
        record.update(
            {
                "status": "interrupted" if stopped else "failed",
                "finished_utc": _utc(),
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        )
        if log is not None:
            record["stopped_in"] = log.stopped_in
            record["solver_warnings"] = log.summary()["solver_warnings"]  # e.g. IPOPT's KeyboardInterruptException
        try:
            _write_json(tmp / "run.json", record)
        except OSError:
            pass
        if stopped:
            where = f" during {log.stopped_in}" if log is not None and log.stopped_in else ""
            elapsed = time.perf_counter() - t0
            kept = str(exc) if isinstance(exc, Interrupted) and str(exc) else "unfinished runs keep nothing"  # e.g. a co-design cache
            raise Interrupted(
                f"run of {name!r} stopped{where} after {elapsed:.0f} s; no result under {out} ({kept}); its partial "
                f"folder {tmp} (run.json status 'interrupted') is removed by the next complete run there"
            ) from exc
        raise
    summary = _relocate(summary, tmp, out)
    return ScenarioResult(kind=kind, name=name, out_dir=out, files=files, summary=summary, wall_time=time.perf_counter() - t0)


def _remove_failed_attempts(out: Path) -> None:
    """Delete the temporary directories of earlier failed or interrupted attempts at ``out`` (a
    directory still "running" may belong to a live process and is left alone)."""
    for p in out.parent.glob(f".{out.name}.incomplete-*"):
        if p.is_dir() and run_status(p) in ("failed", "interrupted"):
            shutil.rmtree(p, ignore_errors=True)


def _process_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process (another run in a thread of it) is alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists (owned by another user) or cannot tell
    return False


def stale_run_folders(parent: str | Path) -> list[Path]:
    """Hidden run folders ``.NAME.incomplete-PID-N`` in ``parent`` still marked ``"running"``
    whose process (on this host) no longer exists: runs killed without clean-up (SIGKILL).

    Folders written on another host (a Dask worker sharing the file system) are never listed.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return []
    out = []
    host = socket.gethostname()
    for p in sorted(parent.glob(".*.incomplete-*")):
        m = re.search(r"\.incomplete-(\d+)-\d+$", p.name)
        if not (p.is_dir() and m and run_status(p) == "running"):
            continue
        try:
            rec = json.loads((p / "run.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if rec.get("host", host) != host:
            continue
        if _process_gone(int(rec.get("pid", m.group(1)))):
            out.append(p)
    return out


def _inside(f: Any, root: Path) -> bool:
    try:
        Path(f).relative_to(root)
        return True
    except ValueError:
        return False


def _relocate(obj: Any, tmp: Path, out: Path) -> Any:
    """Replace the temporary directory by the final one in paths inside a json-ready object."""
    if isinstance(obj, Mapping):
        return {k: _relocate(v, tmp, out) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_relocate(v, tmp, out) for v in obj]
    if isinstance(obj, Path):
        return out / obj.relative_to(tmp) if _inside(obj, tmp) else obj
    if isinstance(obj, str) and str(tmp) in obj:
        return obj.replace(str(tmp), str(out))
    return obj
