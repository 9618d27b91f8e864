"""Scenario runner: read a TOML file, dispatch on its ``kind``, write results to an output directory.

Every scenario file has a top-level ``kind`` (which runner handles it), and optionally ``name``
and ``description``; the rest is validated by the kind's runner. Kinds are listed in
:data:`SCENARIO_KINDS` as ``"module:function"`` strings, imported only when used, so adding a
kind is one line here plus its function ``run(path, data, out_dir) -> ScenarioResult``.
"""

from __future__ import annotations

import importlib
import json
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpc_bio.scenarios.schema import ScenarioError

__all__ = ["SCENARIO_KINDS", "ScenarioResult", "load_scenario", "run_scenario", "default_out_dir"]

#: kind -> "module:function" of its runner.
SCENARIO_KINDS: dict[str, str] = {
    "simulation": "mpc_bio.scenarios.simulation:run_simulation",
    "closed_loop": "mpc_bio.control.scenario_kinds:run_closed_loop_scenario",
    "feed_optimization": "mpc_bio.control.scenario_kinds:run_feed_optimization_scenario",
    "mpc_mismatch": "mpc_bio.control.scenario_kinds:run_mpc_mismatch_scenario",
}

_TOP_LEVEL = ("kind", "name", "description")


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
        Written files by role (``"figure"``, ``"trajectories"``, ``"summary"``, ...).
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
    """Parse a scenario TOML file and check its ``kind``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ScenarioError
        Not valid TOML, or ``kind`` missing, not a string, or unknown.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"Scenario file {str(p)!r} does not exist.")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{p}: not valid TOML: {exc}") from None
    kind = data.get("kind")
    if kind is None:
        raise ScenarioError(f"{p}: missing key 'kind' (expected a string, one of {sorted(SCENARIO_KINDS)}).")
    if not isinstance(kind, str):
        raise ScenarioError(f"{p}: key 'kind' must be a string, one of {sorted(SCENARIO_KINDS)}; got {kind!r}.")
    if kind not in SCENARIO_KINDS:
        raise ScenarioError(f"{p}: key 'kind' must be one of {sorted(SCENARIO_KINDS)}; got {kind!r}.")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise ScenarioError(f"{p}: key '{key}' must be a string; got {type(data[key]).__name__} {data[key]!r}.")
    return data


def default_out_dir(path: str | Path) -> Path:
    """``runs/<scenario stem>-<UTC timestamp>``: a fresh directory for each run."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = Path("runs") / f"{Path(path).stem}-{stamp}"
    out, i = base, 1
    while out.exists():
        out = base.with_name(f"{base.name}-{i}")
        i += 1
    return out


def run_scenario(path: str | Path, out_dir: str | Path | None = None, *, progress: bool = True) -> ScenarioResult:
    """Run one scenario file and write its outputs.

    Parameters
    ----------
    path : path
        Scenario TOML file.
    out_dir : path, optional
        Output directory (created); default :func:`default_out_dir`.
    progress : bool
        Show progress bars.

    Returns
    -------
    ScenarioResult
    """
    t0 = time.perf_counter()
    data = load_scenario(path)
    kind = data["kind"]
    out = Path(out_dir) if out_dir is not None else default_out_dir(path)
    out.mkdir(parents=True, exist_ok=True)
    mod_name, func_name = SCENARIO_KINDS[kind].split(":")
    runner = getattr(importlib.import_module(mod_name), func_name)
    body = {k: v for k, v in data.items() if k not in _TOP_LEVEL}
    name = data.get("name", Path(path).stem)
    files, summary = runner(Path(path), body, out, progress=progress)
    wall = time.perf_counter() - t0
    summary = {"kind": kind, "name": name, "scenario": str(path), "wall_time_s": wall, **summary}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    files = {**files, "summary": out / "summary.json"}
    return ScenarioResult(kind=kind, name=name, out_dir=out, files=files, summary=summary, wall_time=wall)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)
