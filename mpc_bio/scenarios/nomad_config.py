"""Schema of the NOMAD configuration files (``[nomad]`` tables, no ``kind``).

``mpc-bio nomad ensemble --config FILE`` and ``mpc-bio nomad design --config FILE`` read the
``[nomad.*]`` tables of a TOML file (``scenarios/nomad_anthranilate.toml``). Their schema is the
``[nomad]`` table co-design scenarios use too (:func:`mpc_bio.scenarios.kinds.nomad_table`): every
key with its type, unit, range and default, and the stages' own settings classes as its check.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from mpc_bio.scenarios.kinds import nomad_table
from mpc_bio.scenarios.schema import KindSchema, validate_with_schema

__all__ = ["NOMAD_CONFIG_KIND", "nomad_config_schema", "validate_nomad_config"]

#: Name under which the NOMAD configuration appears in the reference and in messages.
NOMAD_CONFIG_KIND = "nomad config (no kind)"


@functools.cache
def nomad_config_schema() -> KindSchema:
    """The schema of a ``[nomad]`` configuration file."""
    return KindSchema(
        NOMAD_CONFIG_KIND,
        "Configuration of `mpc-bio nomad ensemble --config FILE` and `mpc-bio nomad design --config FILE` "
        "(a file without `kind` and with a `[nomad]` table).",
        {"nomad": nomad_table()},
    )


def validate_nomad_config(path: str | Path, data: dict[str, Any]) -> dict[str, Any]:
    """Validate a parsed NOMAD configuration; return it with defaults filled in.

    Raises
    ------
    ScenarioError
        Listing every problem: unknown tables and keys, wrong types, out-of-range values, then
        the stages' own checks (the settings classes ``mpc-bio nomad`` builds from the file).
    """
    return validate_with_schema(path, data, nomad_config_schema())
