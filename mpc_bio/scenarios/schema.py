"""One schema mechanism for every scenario file.

A scenario kind declares its tables (:class:`Table`), each a set of keys (:class:`Field`) with a
type, a unit, a default and an allowed range or set of choices; the kind's own validation code
plugs in per table (``Table.check``, e.g. building the stage's frozen settings dataclass) and per
file (``KindSchema.checks``, for infeasible combinations across tables). Validation collects
*every* problem of a file (unknown keys, missing required keys, wrong types, out-of-range values,
infeasible combinations) and raises one :class:`ScenarioError` listing, for each, the file, the
key, what was expected and what arrived. :func:`format_reference` prints every key with its
unit and default (the README's scenario file reference is generated from it).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpc_bio.errors import MpcBioError

__all__ = [
    "ScenarioError",
    "Problem",
    "Field",
    "Table",
    "KindSchema",
    "validate_table",
    "collect_table",
    "resolve_path",
    "resolve_table_paths",
    "validate_with_schema",
    "format_reference",
    "dump_toml",
    "settings_fields",
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario file.

    Attributes
    ----------
    file : str
        The scenario file.
    key : str
        Dotted key (``"reactor.volume0"``, ``"measurements.channels[2].period"``) or table name.
    expected : str
        What the schema expects there.
    got : str
        What the file holds (``"nothing"`` for a missing key).
    what : str
        The kind of problem: ``"unknown_key"``, ``"renamed_key"``, ``"renamed_value"``, ``"unknown_table"``, ``"missing_key"``,
        ``"missing_table"``, ``"type"``, ``"range"``, ``"invalid"`` (the stage's own check of a
        table) or ``"infeasible"`` (a combination of keys).
    """

    file: str
    key: str
    expected: str
    got: str
    what: str = "infeasible"

    def sentence(self) -> str:
        """The problem as one line (without the file name)."""
        w, k = self.what, self.key
        if w == "unknown_key":
            table, _, leaf = k.rpartition(".")
            where = f"in [{table}]" if table else "at the top level"
            return f"unknown key(s) [{leaf!r}] {where}; expected some of: {self.expected}"
        if w == "renamed_key":
            return f"key '{k}' was renamed: write '{self.expected}' instead"
        if w == "renamed_value":
            return f"key '{k}': the value {self.got} was renamed: write {self.expected} instead"
        if w == "unknown_table":
            return f"unknown table(s) [{k.strip('[]')!r}]; expected some of: {self.expected}"
        if w == "missing_key":
            return f"missing key '{k}' (expected {self.expected})"
        if w == "missing_table":
            return f"missing table {k} (expected {self.expected})"
        if w in ("type", "range"):
            return f"key '{k}' must be {self.expected}; got {self.got}"
        if w == "invalid":
            return f"{k}: {self.got}"
        return f"{k}: expected {self.expected}; got {self.got}"

    def __str__(self) -> str:
        return f"{self.file}: {self.sentence()}"


class ScenarioError(MpcBioError):
    """A scenario file is malformed; ``problems`` lists every problem found (possibly empty when
    the error came from a kind's runner as a plain message)."""

    def __init__(self, message: str | None = None, problems: Iterable[Problem] = ()) -> None:
        self.problems = tuple(problems)
        if message is None:
            n = len(self.problems)
            files = sorted({p.file for p in self.problems})
            head = f"{', '.join(files)}: {n} problem{'s' if n != 1 else ''} in the scenario file"
            message = head + ":\n" + "\n".join(f"  - {p.sentence()}" for p in self.problems)
        super().__init__(message)


_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a table",
}

_MISSING = object()


def _fmt(value: Any) -> str:
    """Short description of a value found in a file."""
    if isinstance(value, dict):
        return f"a table {{{', '.join(map(str, value))}}}" if value else "an empty table"
    r = repr(value)
    return f"{type(value).__name__} {r if len(r) <= 80 else r[:77] + '...'}"


def _is_type(v: Any, types: tuple) -> bool:
    if isinstance(v, bool):
        return bool in types
    if isinstance(v, int) and float in types:
        return True
    return isinstance(v, tuple(t for t in types if t is not bool))


class Field:
    """One key of a table: type, whether required, default, unit, range and documentation.

    Parameters
    ----------
    types : type or tuple of types
        Accepted Python types after TOML parsing (``float`` also accepts integers, which are
        converted; booleans are never numbers).
    required : bool
        Whether the key must be present.
    default : Any
        Value used when absent (None: absent stays absent; the kind picks its own default,
        described in ``doc``).
    item : type, optional
        For lists: the type of every element (``dict`` for an array of tables, see ``fields``).
    unit : str
        Physical unit (``"h"``, ``"L/h"``, ``"mmol/L"``, ``"-"`` for dimensionless).
    doc : str
        One line of documentation.
    min, max : float, optional
        Allowed range of a number (or of every number in a list).
    min_open, max_open : bool
        Exclude the bound itself (``> min`` / ``< max``).
    choices : tuple, optional
        Allowed values.
    fields : mapping of str to Field, optional
        For an array of tables (``item=dict``): the keys of every element.
    values : type, optional
        For a free-form table (``types=dict``): the type of every value.
    min_items : int
        Smallest allowed list length.
    is_path : bool
        A file or directory path: in the resolved configuration, a relative path that exists
        beside the scenario file is made absolute (so the resolved file runs from anywhere).
    renamed_to : str, optional
        The key was renamed: giving it is a problem that names the new key (not a key of the table).
    renamed_choices : mapping, optional
        Choices renamed in a release, old -> new: giving an old one is a problem naming the new one.
    """

    def __init__(
        self,
        types,
        required: bool = False,
        default: Any = None,
        item=None,
        *,
        unit: str = "",
        doc: str = "",
        min: float | None = None,
        max: float | None = None,
        min_open: bool = False,
        max_open: bool = False,
        choices: tuple | None = None,
        fields: Mapping[str, Field] | None = None,
        values=None,
        min_items: int = 0,
        is_path: bool = False,
        renamed_to: str | None = None,
        renamed_choices: Mapping[Any, Any] | None = None,
    ) -> None:
        self.types = types if isinstance(types, tuple) else (types,)
        self.required = required
        self.default = default
        self.item = item
        self.unit = unit
        self.doc = doc
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open
        self.choices = tuple(choices) if choices is not None else None
        self.fields = dict(fields) if fields is not None else None
        self.values = values
        self.min_items = min_items
        self.is_path = is_path
        self.renamed_to = renamed_to
        self.renamed_choices = dict(renamed_choices or {})

    # ---- descriptions -------------------------------------------------------------------
    def describe(self) -> str:
        """Human name of the expected type (``"a number"``, ``"a list of numbers"``)."""
        s = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in self.types)
        if self.item is not None:
            s += f" of {_TYPE_NAMES.get(self.item, self.item.__name__).split(' ', 1)[1]}s"
        if self.values is not None:
            s += f" of {_TYPE_NAMES.get(self.values, self.values.__name__).split(' ', 1)[1]}s"
        return s

    def describe_range(self) -> str:
        """The allowed values as text (``"> 0"``, ``"in [0, 1)"``, ``"one of ('a', 'b')"``), or ``""``."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        lo = None if self.min is None else (">" if self.min_open else ">=") + f" {self.min:g}"
        hi = None if self.max is None else ("<" if self.max_open else "<=") + f" {self.max:g}"
        if lo and hi:
            return f"in {'(' if self.min_open else '['}{self.min:g}, {self.max:g}{')' if self.max_open else ']'}"
        return lo or hi or ""

    def expected(self) -> str:
        """Type, range and unit in one phrase."""
        s = self.describe()
        r = self.describe_range()
        if r:
            s += f" {r}"
        if self.unit and self.unit != "-":
            s += f" ({self.unit})"
        return s

    def accepts(self, value: Any) -> bool:
        """True when ``value`` has an accepted type (bools are never numbers)."""
        if not _is_type(value, self.types):
            return False
        if self.item is not None and isinstance(value, list):
            return all(_is_type(v, (self.item,)) for v in value)
        if self.values is not None and isinstance(value, dict):
            return all(_is_type(v, (self.values,)) for v in value.values())
        return True

    def _in_range(self, v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return True
        if not math.isfinite(v):
            return False
        if self.min is not None and (v <= self.min if self.min_open else v < self.min):
            return False
        if self.max is not None and (v >= self.max if self.max_open else v > self.max):
            return False
        return True

    # ---- checking -----------------------------------------------------------------------
    def check(self, path: str, name: str, value: Any, problems: list[Problem]) -> Any:
        """Check one value, append problems, return the normalised value (or ``_MISSING``)."""
        if not self.accepts(value):
            problems.append(Problem(path, name, self.describe(), _fmt(value), "type"))
            return _MISSING
        n0 = len(problems)
        if self.choices is not None and value not in self.choices:
            if isinstance(value, str) and value in self.renamed_choices:
                problems.append(Problem(path, name, repr(self.renamed_choices[value]), repr(value), "renamed_value"))
            else:
                problems.append(Problem(path, name, self.describe_range(), _fmt(value), "range"))
        if isinstance(value, list):
            if len(value) < self.min_items:
                problems.append(Problem(path, name, f"a list of at least {self.min_items} item(s)", f"{len(value)} item(s)", "range"))
            if self.fields is not None:
                value = [
                    collect_table(path, f"{name}[{i}]", v, self.fields, problems) if isinstance(v, Mapping) else v
                    for i, v in enumerate(value)
                ]
            else:
                bad = [v for v in value if not self._in_range(v)]
                if bad:
                    problems.append(
                        Problem(
                            path,
                            name,
                            f"a list of numbers, every item {self.describe_range() or 'finite'}{f' ({self.unit})' if self.unit and self.unit != '-' else ''}",
                            f"{bad}",
                            "range",
                        )
                    )
                if float in (self.item,) and int not in (self.item,):
                    value = [float(v) for v in value]
        elif isinstance(value, dict):
            if self.fields is not None:
                # a sub-table keeps its valid keys (bad ones are left out and reported), so the
                # file-level checks still see them
                return collect_table(path, name, value, self.fields, problems)
            elif self.values is not None:
                bad = {k: v for k, v in value.items() if not self._in_range(v)}
                if bad:
                    problems.append(
                        Problem(
                            path,
                            name,
                            f"a table of numbers, every value {self.describe_range() or 'finite'}{f' ({self.unit})' if self.unit and self.unit != '-' else ''}",
                            f"{bad}",
                            "range",
                        )
                    )
                if self.values is float:
                    value = {k: float(v) for k, v in value.items()}
        elif not self._in_range(value):
            problems.append(Problem(path, name, self.expected(), _fmt(value), "range"))
        if len(problems) > n0:
            return _MISSING
        if float in self.types and int not in self.types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        return value


def collect_table(path: str | Path, where: str, table: Any, fields: Mapping[str, Field], problems: list[Problem]) -> dict[str, Any]:
    """Check one table against its fields, appending every problem to ``problems``.

    Returns the table with defaults filled in (absent optional keys whose default is None are
    omitted; keys with problems are left out).
    """
    path = str(path)
    if not isinstance(table, Mapping):
        problems.append(Problem(path, where or "top level", "a table", _fmt(table), "type"))
        return {}
    live = sorted(k for k, f in fields.items() if f.renamed_to is None)
    for key in sorted(set(table) - set(live)):
        name = f"{where}.{key}" if where else key
        f = fields.get(key)
        if f is not None:
            problems.append(Problem(path, name, f.renamed_to, _fmt(table[key]), "renamed_key"))
        else:
            problems.append(Problem(path, name, ", ".join(live), _fmt(table[key]), "unknown_key"))
    out: dict[str, Any] = {}
    for key, f in fields.items():
        name = f"{where}.{key}" if where else key
        if f.renamed_to is not None:
            continue
        if key not in table:
            if f.required:
                problems.append(Problem(path, name, f.expected(), "nothing (missing)", "missing_key"))
            elif f.default is not None:
                out[key] = f.default
            continue
        v = f.check(path, name, table[key], problems)
        if v is not _MISSING:
            out[key] = v
    return out


def resolve_path(value: Any, scenario: str | Path) -> Any:
    """A path setting as a scenario file means it: relative to the scenario file's folder.

    A relative path that exists beside ``scenario`` is returned absolute; any other value (an
    absolute path, a relative path not found there, None) is returned as given, so a missing file
    is reported with the name the file gives.
    """
    if isinstance(value, str) and value and not Path(value).is_absolute() and (Path(scenario).parent / value).exists():
        return str((Path(scenario).parent / value).resolve())
    return value


def resolve_table_paths(scenario: str | Path, table: dict[str, Any], fields: Mapping[str, Field]) -> dict[str, Any]:
    """Apply :func:`resolve_path` to every ``is_path`` key of ``table``, in its sub-tables too (in place; returned)."""
    for key, f in fields.items():
        if key not in table:
            continue
        v = table[key]
        if f.is_path:
            table[key] = resolve_path(v, scenario)
        elif f.fields is not None and isinstance(v, dict):
            resolve_table_paths(scenario, v, f.fields)
        elif f.fields is not None and isinstance(v, list):
            for item in v:
                if isinstance(item, dict):
                    resolve_table_paths(scenario, item, f.fields)
    return table


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
        Listing every problem of the table (file, key, expected, got).
    """
    problems: list[Problem] = []
    out = collect_table(path, where, table, fields, problems)
    if problems:
        raise ScenarioError(problems=problems)
    return out


@dataclass(frozen=True)
class Table:
    """One table of a scenario kind.

    Attributes
    ----------
    fields : mapping of str to Field
        Its keys.
    doc : str
        One line of documentation.
    required : bool
        Whether the table must be present.
    check : callable, optional
        The kind's own validation of the resolved table (e.g. building its settings
        dataclass): ``check(table_dict)`` raising ``ValueError`` (or ``TypeError``) with a
        message; called only when the table has no type/range problems.
    """

    fields: Mapping[str, Field]
    doc: str = ""
    required: bool = False
    check: Callable[[dict[str, Any]], Any] | None = None


def _first_sentence(text: str) -> str:
    m = re.match(r"(.+?\.)(\s+[A-Z(\"]|$)", " ".join(text.split()))
    return (m.group(1) if m else text).strip()


def _setting_field(tp: Any, spec: Any, default: Any, required: bool) -> Field:
    """The :class:`Field` of one settings field (type from the annotation, the rest from its spec)."""
    from mpc_bio.settings import Settings, _is_pairs, _optional

    tp = _optional(tp)[0]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    kw: dict[str, Any] = {
        "unit": spec.unit,
        "doc": _first_sentence(spec.doc),
        "choices": spec.choices,
        "renamed_choices": dict(spec.renamed_choices),
        "is_path": spec.is_path,
        "min": spec.low,
        "max": spec.high,
        "min_open": spec.strict,
        "max_open": spec.high_strict,
    }
    if isinstance(tp, type) and issubclass(tp, Settings):
        return Field(dict, fields=settings_fields(tp), unit=spec.unit, doc=kw["doc"])
    if _is_pairs(tp):  # the default pairs as the table a file gives (and a resolved file holds)
        return Field(dict, required, None if default is None else dict(default), values=typing.get_args(args[0])[1], **kw)
    if origin is dict:
        return Field(dict, required, default, values=args[1], **kw)
    if origin is tuple and isinstance(args[0], type) and issubclass(args[0], Settings):  # an array of tables
        return Field(list, required, default, item=dict, fields=settings_fields(args[0]), min_items=spec.min_items, doc=kw["doc"])
    if origin is tuple:
        item = args[0] if args[0] in (bool, int, float, str) else list
        return Field(list, required, default, item=item, min_items=spec.min_items, **kw)
    return Field(tp, required, default, **kw)


def settings_fields(
    cls: type, *, skip: Iterable[str] = (), only: Iterable[str] | None = None, required: Iterable[str] = ()
) -> dict[str, Field]:
    """The keys of a table built by a :class:`mpc_bio.settings.Settings` class: type, default, unit,
    range, choices and doc of each field, as the class declares them.

    Parameters
    ----------
    cls : Settings subclass
    skip : iterable of str
        Fields that are not keys of this table (e.g. set from another table).
    only : iterable of str, optional
        Take only these fields (in this order).
    required : iterable of str
        Fields the table must give although the class has a default.
    """
    from mpc_bio.settings import field_types, plain, setting_spec

    hints, skip, required = field_types(cls), set(skip), set(required)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    names = list(only) if only is not None else [n for n in by_name if n not in skip]
    out = {}
    for name in names:
        f = by_name[name]
        if f.default is not dataclasses.MISSING:
            default = plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            made = f.default_factory()  # type: ignore[misc]
            default = None if dataclasses.is_dataclass(made) else plain(made)
        else:
            default, required = None, required | {name}
        out[name] = _setting_field(hints[name], setting_spec(f), None if name in required else default, name in required)
    for old, new in getattr(cls, "renamed", {}).items():
        if new in names:
            out[old] = Field(object, renamed_to=new, doc=f"renamed to {new!r}")
    return out


#: A file-level check: ``check(resolved) -> iterable of (key, expected, got)`` for infeasible
#: combinations across keys and tables; it only runs when every table is free of problems.
FileCheck = Callable[[dict[str, Any]], Iterable[tuple[str, str, str]]]
# (file-level checks run even when some tables have problems: they see the valid keys and use
# defaults for the others, so they must not assume a table or key is present)


@dataclass(frozen=True)
class KindSchema:
    """The tables of one scenario kind, its cross-table checks and its documentation."""

    kind: str
    doc: str
    tables: Mapping[str, Table]
    checks: tuple[FileCheck, ...] = field(default_factory=tuple)


#: Keys every scenario file may have at its top level.
TOP_LEVEL = {
    "kind": Field(str, required=True, doc="which runner handles the file (see the kinds below)"),
    "name": Field(str, doc="run name (default: the file's stem)"),
    "description": Field(str, doc="free text"),
}


def validate_with_schema(path: str | Path, data: Mapping[str, Any], schema: KindSchema) -> dict[str, Any]:
    """Validate a parsed scenario file against its kind's schema; collect every problem.

    Returns
    -------
    dict
        The resolved configuration: top-level keys and every table with defaults filled in.

    Raises
    ------
    ScenarioError
        Listing every problem (unknown/missing keys and tables, wrong types, out-of-range
        values, the kind's own checks, infeasible combinations).
    """
    path = str(path)
    problems: list[Problem] = []
    resolved: dict[str, Any] = {k: data[k] for k in TOP_LEVEL if k in data}
    for key in sorted(set(data) - set(TOP_LEVEL) - set(schema.tables)):
        problems.append(
            Problem(
                path,
                f"[{key}]",
                f"{', '.join(schema.tables)} (tables of kind {schema.kind!r}) and kind, name, description",
                _fmt(data[key]),
                "unknown_table",
            )
            if isinstance(data[key], dict)
            else Problem(path, key, f"kind, name, description and the tables {', '.join(schema.tables)}", _fmt(data[key]), "unknown_key")
        )
    for name, tab in schema.tables.items():
        if name not in data:
            if tab.required:
                req = [k for k, f in tab.fields.items() if f.required]
                problems.append(
                    Problem(
                        path,
                        f"[{name}]",
                        f"a table: {tab.doc}; required keys: {', '.join(req) or 'none'}",
                        "nothing (missing table)",
                        "missing_table",
                    )
                )
                continue
        n0 = len(problems)
        resolved[name] = collect_table(path, name, data.get(name, {}), tab.fields, problems)
        resolve_table_paths(path, resolved[name], tab.fields)
        if len(problems) == n0 and tab.check is not None:
            try:
                tab.check(resolved[name])
            except (ValueError, TypeError) as exc:
                problems.append(Problem(path, f"[{name}]", "a consistent table", str(exc), "invalid"))
    for check in schema.checks:
        # file-level checks see the tables with their valid keys (defaults stand in for bad ones)
        try:
            found = list(check(resolved))
        except (KeyError, TypeError, ValueError):
            found = [] if problems else [("file", "a file the kind's checks can read", "an unreadable combination")]
        problems.extend(Problem(path, key, expected, got) for key, expected, got in found)
    if problems:
        raise ScenarioError(problems=problems)
    return resolved


def format_reference(schemas: Iterable[KindSchema], *, markdown: bool = True) -> str:
    """A reference of every kind, table and key with its type, unit, default and allowed values.

    Parameters
    ----------
    schemas : iterable of KindSchema
    markdown : bool
        Markdown tables (for the README) or plain text.
    """
    lines: list[str] = []
    lines.append(
        "Every scenario file has a top-level `kind` (which runner handles it), and optionally `name` "
        "and `description`. Units: time h, volume L, feed L/h, concentrations mmol/L (biomass gDW/L), "
        'specific rates mmol/gDW/h. A key marked "required" must be given; a key with '
        'default "-" is optional and, when absent, takes the default described in its text.'
    )
    lines.append("")
    shared: dict[int, str] = {}
    for s in schemas:
        if lines[-1]:
            lines.append("")
        lines.append(f'### kind = "{s.kind}"' if markdown else f"kind = {s.kind!r}")
        lines.append("")
        lines.append(s.doc)
        lines.append("")
        for tname, tab in s.tables.items():
            head = f"[{tname}]" + (" (required)" if tab.required else "")
            if id(tab) in shared:
                lines.append(f'- `{head}`: as in kind "{shared[id(tab)]}".' if markdown else f"  {head}: as in kind {shared[id(tab)]!r}")
                continue
            shared[id(tab)] = s.kind
            if lines[-1]:
                lines.append("")
            lines.append(f"#### `{head}` {tab.doc}" if markdown else f"  {head}  {tab.doc}")
            lines.append("")
            if markdown:
                lines.append("| key | type | unit | default | allowed | meaning |")
                lines.append("|---|---|---|---|---|---|")
            for key, f in _flatten(tab.fields):
                if f.renamed_to is not None:
                    lines.append(
                        f"| `{key}` | - | - | - | - | renamed: write `{f.renamed_to}` |"
                        if markdown
                        else f"    {key:26s} renamed: write {f.renamed_to}"
                    )
                    continue
                default = "required" if f.required else ("-" if f.default is None else _toml_value(f.default))
                unit = f.unit or "-"
                if markdown:
                    lines.append(
                        f"| `{key}` | {f.describe()} | {unit} | {default} | {f.describe_range() or '-'} | {f.doc} |".replace("\n", " ")
                    )
                else:
                    lines.append(f"    {key:26s} {f.describe():22s} {unit:12s} default {default:10s} {f.describe_range()}  {f.doc}")
            lines.append("")
    return "\n".join(lines)


def _flatten(fields: Mapping[str, Field], prefix: str = "") -> list[tuple[str, Field]]:
    out = []
    for k, f in fields.items():
        out.append((prefix + k, f))
        if f.fields is not None:
            out.extend(_flatten(f.fields, prefix + k + ("[]." if f.item is dict else ".")))
    return out


# ---- TOML writing (tomllib only reads) -----------------------------------------------------------
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    if isinstance(v, Path):
        return json.dumps(str(v))
    raise TypeError(f"Cannot write {type(v).__name__} {v!r} to TOML.")


def _toml_key(k: str) -> str:
    return k if k and all(c.isalnum() or c in "_-" for c in k) else json.dumps(k)


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, Mapping) for x in v)


def _is_subtable(v: Any) -> bool:
    return isinstance(v, Mapping) and any(isinstance(x, Mapping) or _is_table_array(x) for x in v.values())


def dump_toml(data: Mapping[str, Any]) -> str:
    """Write a nested dict as TOML (top-level dicts become tables, lists of dicts arrays of
    tables, dicts of scalars inside a table inline tables). Readable back by ``tomllib``."""
    lines: list[str] = []

    def emit(table: Mapping[str, Any], prefix: str, top: bool) -> None:
        for k, v in table.items():
            if (top and isinstance(v, Mapping)) or _is_subtable(v) or _is_table_array(v):
                continue
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
        for k, v in table.items():
            name = f"{prefix}{_toml_key(k)}"
            if _is_table_array(v):
                for item in v:
                    lines.append("")
                    lines.append(f"[[{name}]]")
                    emit(item, name + ".", False)
            elif (top and isinstance(v, Mapping)) or _is_subtable(v):
                lines.append("")
                lines.append(f"[{name}]")
                emit(v, name + ".", False)

    emit(data, "", True)
    return "\n".join(lines) + "\n"
