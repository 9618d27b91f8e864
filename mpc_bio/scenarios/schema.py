"""Validation of scenario TOML tables: unknown keys, missing keys and wrong types name the file,
the key, what was expected and what arrived."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["ScenarioError", "Field", "validate_table"]


class ScenarioError(ValueError):
    """A scenario file is malformed (unknown/missing keys, wrong types, impossible values)."""


_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a table",
}


class Field:
    """One expected key: its type(s), whether it is required, and a default.

    Parameters
    ----------
    types : type or tuple of types
        Accepted Python types after TOML parsing (``float`` also accepts integers).
    required : bool
        Whether the key must be present.
    default : Any
        Value used when absent (ignored when required).
    item : type, optional
        For lists: the type of every element.
    """

    def __init__(self, types, required: bool = False, default: Any = None, item=None) -> None:
        self.types = types if isinstance(types, tuple) else (types,)
        self.required = required
        self.default = default
        self.item = item

    def describe(self) -> str:
        """Human name of the expected type."""
        s = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in self.types)
        if self.item is not None:
            s += f" of {_TYPE_NAMES.get(self.item, self.item.__name__).split(' ', 1)[1]}s"
        return s

    def accepts(self, value: Any) -> bool:
        """True when ``value`` has an accepted type (bools are never numbers)."""

        def ok(v, types) -> bool:
            if isinstance(v, bool):
                return bool in types
            if isinstance(v, int) and float in types:
                return True
            return isinstance(v, tuple(t for t in types if t is not bool))

        if not ok(value, self.types):
            return False
        if self.item is not None and isinstance(value, list):
            return all(ok(v, (self.item,)) for v in value)
        return True


def validate_table(path: str | Path, where: str, table: Any, fields: Mapping[str, Field]) -> dict[str, Any]:
    """Check one table of a scenario file and fill defaults.

    Parameters
    ----------
    path : path
        The scenario file (for messages).
    where : str
        Dotted name of the table (``"reactor"``, ``"simulation"``; ``""`` for the top level).
    table : Any
        The parsed table.
    fields : mapping of key -> Field

    Returns
    -------
    dict
        The table with defaults filled in (absent optional keys with default None are omitted).

    Raises
    ------
    ScenarioError
        Naming the file, the key, the expected type and the value found.
    """
    loc = f"[{where}]" if where else "the top level"
    if not isinstance(table, Mapping):
        raise ScenarioError(f"{path}: {loc} must be a table; got {type(table).__name__} {table!r}.")
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ScenarioError(f"{path}: unknown key(s) {unknown} in {loc}; expected some of {sorted(fields)}.")
    out: dict[str, Any] = {}
    for key, f in fields.items():
        name = f"{where}.{key}" if where else key
        if key not in table:
            if f.required:
                raise ScenarioError(f"{path}: missing key '{name}' (expected {f.describe()}).")
            if f.default is not None:
                out[key] = f.default
            continue
        value = table[key]
        if not f.accepts(value):
            raise ScenarioError(
                f"{path}: key '{name}' must be {f.describe()}; got {type(value).__name__} {value!r}."
            )
        out[key] = float(value) if (float in f.types and isinstance(value, int) and not isinstance(value, bool) and int not in f.types) else value
    return out
