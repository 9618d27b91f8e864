"""Schema of the NOMAD configuration files (``[nomad]`` tables, no ``kind``).

``mpc-bio nomad ensemble --config FILE`` and ``mpc-bio nomad design --config FILE`` read the
``[nomad.*]`` tables of a TOML file (``scenarios/nomad_anthranilate.toml``). Their schema is built
here from the NOMAD stages' frozen settings dataclasses, like the scenario kinds in
:mod:`mpc_bio.scenarios.kinds`: every key with its type and default, unknown keys and wrong types
reported all at once, and the stages' own loaders as the final check (ranges, infeasible
combinations). The nested TOML tables are validated under their dotted names (``[nomad.network]``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from mpc_bio.scenarios.kinds import fields_from_settings
from mpc_bio.scenarios.schema import Field, KindSchema, Problem, ScenarioError, Table, validate_with_schema

__all__ = ["NOMAD_CONFIG_KIND", "nomad_config_schema", "validate_nomad_config"]

#: Name under which the NOMAD configuration appears in the reference and in messages.
NOMAD_CONFIG_KIND = "nomad config (no kind)"

#: dotted table -> (module, settings class); nested settings fields are their own tables.
_TABLES = {
    "nomad.network": ("mpc_bio.nomad.settings", "NetworkSettings", "kinetic network and reference fluxes"),
    "nomad.steady_state": ("mpc_bio.nomad.settings", "SteadyStateSettings", "reference concentrations and displacements (mM)"),
    "nomad.sampling": ("mpc_bio.nomad.settings", "SamplingSettings", "ORACLE ensemble sampling"),
    "nomad.screening": ("mpc_bio.nomad.settings", "ScreeningSettings", "screening stages (i)-(iv)"),
    "nomad.executor": ("mpc_bio.nomad.settings", "ExecutorSettings", "local processes or a Dask scheduler"),
    "nomad.design": ("mpc_bio.nomad.nra_settings", "DesignStudySettings", "design study (mpc-bio nomad design)"),
    "nomad.design.nra": ("mpc_bio.nomad.nra_settings", "NRASettings", "NRA MILP and enumeration"),
    "nomad.design.ranking": ("mpc_bio.nomad.nra_settings", "RankingSettings", "ranking over the ensemble"),
    "nomad.design.verification": ("mpc_bio.nomad.nra_settings", "VerificationSettings", "nonlinear batch and fed-batch verification"),
    "nomad.design.sensitivity": ("mpc_bio.nomad.nra_settings", "SensitivitySettings", "expression sensitivity"),
}


@functools.cache
def nomad_config_schema() -> KindSchema:
    """The schema of a ``[nomad]`` configuration file (tables under dotted names)."""
    import dataclasses
    import importlib

    tables: dict[str, Table] = {
        "nomad": Table({"output_dir": Field(str, default="runs/nomad",
                                            doc="directory of the ensemble results; the design stage writes output_dir/design")},
                       "where the NOMAD stages write", required=True),
    }
    for name, (module, cls_name, doc) in _TABLES.items():
        cls = getattr(importlib.import_module(module), cls_name)
        nested = [f.name for f in dataclasses.fields(cls)
                  if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory)]
        tables[name] = Table(fields_from_settings(cls, skip=nested), doc)
    return KindSchema(
        NOMAD_CONFIG_KIND,
        "Configuration of `mpc-bio nomad ensemble --config FILE` and `mpc-bio nomad design --config FILE` "
        "(a file without `kind` and with a `[nomad]` table). Units: concentrations mM, fluxes mmol/gDW/h, time h.",
        tables,
    )


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    """``{"nomad": {"network": {...}}}`` -> ``{"nomad": {...scalars}, "nomad.network": {...}}``."""
    out: dict[str, Any] = {k: v for k, v in data.items() if k != "nomad"}
    stack = [("nomad", data.get("nomad", {}))]
    while stack:
        name, table = stack.pop()
        if not isinstance(table, dict):
            out[name] = table
            continue
        sub = {k: v for k, v in table.items() if isinstance(v, dict) and f"{name}.{k}" in _TABLES}
        out[name] = {k: v for k, v in table.items() if k not in sub}
        stack.extend((f"{name}.{k}", v) for k, v in sub.items())
    return out


def validate_nomad_config(path: str | Path, data: dict[str, Any]) -> dict[str, Any]:
    """Validate a parsed NOMAD configuration; return it with defaults filled in (dotted tables).

    Raises
    ------
    ScenarioError
        Listing every problem: unknown tables and keys, wrong types, then the stages' own checks
        (value ranges, infeasible combinations) as the loaders of ``mpc-bio nomad`` apply them.
    """
    from mpc_bio.nomad.design_cli import load_design_settings
    from mpc_bio.nomad.settings import load_study_settings

    resolved = validate_with_schema(path, _flatten(data), nomad_config_schema())
    problems = []
    for table, loader in (("[nomad]", load_study_settings), ("[nomad.design]", load_design_settings)):
        try:
            loader(path)
        except (ValueError, TypeError, KeyError) as exc:
            stage = "design" if "design" in table else "ensemble"
            problems.append(Problem(str(path), table, f"valid settings of `mpc-bio nomad {stage}`", str(exc), "invalid"))
    if problems:
        raise ScenarioError(problems=problems)
    return resolved
