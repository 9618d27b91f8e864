"""Frozen typed settings: each field declares its type, unit, range and doc in one place.

A settings class is a frozen dataclass deriving from :class:`Settings` whose fields are declared
with :func:`setting`::

    @dataclass(frozen=True)
    class UptakeKinetics(Settings):
        error: ClassVar[type] = ProcessSettingsError
        glucose_km: float = setting(1.0, unit="mmol/L", low=0, strict=True, doc="Michaelis constant.")

The type comes from the annotation (``bool``, ``int``, ``float``, ``str``, ``tuple[X, ...]``,
``tuple[tuple[str, X], ...]`` (pairs, written as a table), ``dict[str, X]``, a nested
:class:`Settings` class, ``X | None``); range, choices, unit and doc from :func:`setting`. One
check on creation (:meth:`Settings.__post_init__`) converts every field (integers to floats,
lists to tuples, tables to nested settings) and raises the class's ``error`` (a stage's
:class:`~mpc_bio.errors.MpcBioError`) with "The 'x' parameter of Cls must be <expected>. Got
<value> instead."; a class adds its cross-field checks in ``_check``. :meth:`Settings.from_dict`
refuses unknown (and renamed) keys naming them, :meth:`Settings.to_dict` inverts it (TOML- and
json-ready). The scenario schema (:mod:`mpc_bio.scenarios.kinds`) reads the same declarations
(:func:`setting_spec`), so a file is documented and checked as the stage builds it; the class's
numpydoc ``Attributes`` section is written from them too.

Names: a field's name says which quantity it is, never its unit: the unit is declared with the
field and shown in messages, docstrings and the scenario reference. One name per quantity in
every stage: ``batch_time`` (h), ``feed_glucose`` (glucose concentration of the feed, mmol/L),
``feed_min``/``feed_max`` (L/h), ``volume_max`` (L), ``glucose_max`` (mmol/L), ``progress``
(progress bars). A renamed field stays in its class's ``renamed`` mapping, so an old file gets a
message naming the new key (from :meth:`Settings.from_dict` and from ``mpc-bio validate``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import textwrap
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar

from mpc_bio.errors import MpcBioError

__all__ = ["Settings", "Spec", "setting", "setting_spec", "field_types", "describe", "plain", "POSITIVE", "FRACTION", "FOLD"]

#: ``setting(..., **POSITIVE)``: a number > 0.
POSITIVE: dict[str, Any] = {"low": 0.0, "strict": True}
#: ``setting(..., **FRACTION)``: a dimensionless number in [0, 1] (``strict``, ``high_strict`` exclude an end).
FRACTION: dict[str, Any] = {"unit": "-", "low": 0.0, "high": 1.0}
#: ``setting(..., **FOLD)``: a fold change, a ratio > 1.
FOLD: dict[str, Any] = {"unit": "-", "low": 1.0, "strict": True}


@dataclasses.dataclass(frozen=True)
class Spec:
    """What :func:`setting` records about one field (see its parameters)."""

    unit: str = ""
    doc: str = ""
    low: float | None = None
    high: float | None = None
    strict: bool = False
    high_strict: bool = False
    choices: tuple | None = None
    min_items: int = 0
    finite: bool = True
    expected: str = ""
    is_path: bool = False
    renamed_choices: tuple[tuple[Any, Any], ...] = ()


def setting(
    default: Any = dataclasses.MISSING,
    *,
    factory: Any = dataclasses.MISSING,
    unit: str = "",
    doc: str = "",
    low: float | None = None,
    high: float | None = None,
    strict: bool = False,
    high_strict: bool = False,
    choices: tuple | None = None,
    min_items: int = 0,
    finite: bool = True,
    expected: str = "",
    is_path: bool = False,
    renamed_choices: Mapping[Any, Any] | None = None,
) -> Any:
    """A settings field: default, unit, allowed range or choices and documentation.

    Parameters
    ----------
    default : Any
        Default value; a dict or list default is copied for each instance. Omit for a required field.
    factory : callable, optional
        Default factory (e.g. a nested settings class) instead of ``default``.
    unit : str
        Physical unit (``"h"``, ``"L/h"``, ``"mmol/L"``; ``"-"`` dimensionless).
    doc : str
        Documentation; its first sentence goes into the scenario reference.
    low, high : float, optional
        Allowed range of every number in the field (items of lists and values of tables too).
    strict, high_strict : bool
        Exclude ``low`` (``> low``) or ``high`` (``< high``) themselves.
    choices : tuple, optional
        Allowed values (of the value, or of every item).
    min_items : int
        Smallest length of a list or table.
    finite : bool
        Numbers must be finite (default).
    expected : str
        What the field expects, for the class's own checks' messages (default: from type and range).
    is_path : bool
        A file or directory path (made absolute in a resolved scenario when it exists beside the file).
    renamed_choices : mapping, optional
        Choices renamed in a release, old -> new: an old value is refused with a message naming the new one.
    """
    if isinstance(default, (dict, list)):
        default, factory = dataclasses.MISSING, functools.partial(type(default), default)
    spec = Spec(
        unit,
        doc,
        low,
        high,
        strict,
        high_strict,
        None if choices is None else tuple(choices),
        min_items,
        finite,
        expected,
        is_path,
        tuple((renamed_choices or {}).items()),
    )
    return dataclasses.field(default=default, default_factory=factory, metadata={"setting": spec})


def setting_spec(f: dataclasses.Field) -> Spec:
    """The :class:`Spec` of a dataclass field (an empty one for a field not declared with :func:`setting`)."""
    return f.metadata.get("setting", Spec())


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of a settings class's fields."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


@functools.cache
def _field_converters(cls: type) -> tuple:
    """(name, conversion, type, spec) of every field of a settings class, built once."""
    hints = field_types(cls)
    out = []
    for f in dataclasses.fields(cls):
        s = setting_spec(f)
        out.append((f.name, _converter(hints[f.name], s, f"{cls.__name__}.{f.name}"), hints[f.name], s))
    return tuple(out)


class _Invalid(Exception):
    """A value does not fit its field (turned into the class's error by the caller)."""


def _optional(tp: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), len(args) < len(typing.get_args(tp))
    return tp, False


def _is_pairs(tp: Any) -> bool:
    """``tuple[tuple[str, X], ...]``: pairs given and written as a table ``{name: value}``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is not tuple or len(args) != 2 or args[1] is not Ellipsis:
        return False
    inner = typing.get_args(args[0])
    return typing.get_origin(args[0]) is tuple and len(inner) == 2 and inner[0] is str and inner[1] is not Ellipsis


def _in_range(x: float, s: Spec) -> bool:
    if s.finite and not math.isfinite(x):
        return False
    if s.low is not None and (x <= s.low if s.strict else x < s.low):
        return False
    return s.high is None or (x < s.high if s.high_strict else x <= s.high)


def _fail(v: Any) -> Any:
    raise _Invalid


@functools.lru_cache(maxsize=None)
def _converter(tp: Any, s: Spec, where: str) -> Any:
    """The conversion of one field type and spec, built once (a function of the value)."""
    tp, none_ok = _optional(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    choices = s.choices

    def done(v: Any) -> Any:
        if choices is not None and v not in choices:
            raise _Invalid
        return v

    if tp is Any:
        conv = lambda v: v  # noqa: E731
    elif tp is bool:
        conv = lambda v: done(v) if isinstance(v, bool) else _fail(v)  # noqa: E731
    elif tp in (int, float):

        def conv(v: Any) -> Any:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (tp is int and not isinstance(v, int)):
                raise _Invalid
            v = tp(v)
            return done(v) if _in_range(v, s) else _fail(v)
    elif tp is str:
        conv = lambda v: done(v) if isinstance(v, str) and v else _fail(v)  # noqa: E731
    elif isinstance(tp, type) and issubclass(tp, Settings):

        def conv(v: Any) -> Any:
            if isinstance(v, Mapping):
                return tp.from_dict(v, where)
            return v if isinstance(v, tp) else _fail(v)
    elif origin is tuple:
        pairs = _is_pairs(tp)
        items = [_converter(args[0], s, where)] if args[1:] == (Ellipsis,) else [_converter(a, s, where) for a in args]

        def conv(v: Any) -> Any:
            if pairs and isinstance(v, Mapping):
                v = list(v.items())
            if not isinstance(v, (list, tuple)):
                raise _Invalid
            if args[1:] == (Ellipsis,):
                v = tuple(items[0](x) for x in v)
            elif len(v) != len(items):
                raise _Invalid
            else:
                v = tuple(c(x) for c, x in zip(items, v))
            return v if len(v) >= s.min_items else _fail(v)
    elif origin is dict:
        key, value = _converter(args[0], Spec(), where), _converter(args[1], s, where)

        def conv(v: Any) -> Any:
            if not isinstance(v, Mapping) or len(v) < s.min_items:
                raise _Invalid
            return {key(k): value(x) for k, x in v.items()}
    else:
        raise TypeError(f"{where}: settings fields of type {tp!r} are not supported.")
    if none_ok:
        return lambda v: None if v is None else conv(v)
    return lambda v: _fail(v) if v is None else conv(v)


_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a non-empty string"}


def describe(tp: Any, s: Spec = Spec()) -> str:
    """What a field of type ``tp`` and spec ``s`` expects, as a phrase (``"a finite number > 0 (h)"``)."""
    text = _describe(tp, s)
    return text + (f" ({s.unit})" if s.unit and s.unit != "-" else "")


def _describe(tp: Any, s: Spec) -> str:
    tp, none_ok = _optional(tp)
    tail = " or None" if none_ok else ""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if s.choices is not None and (tp in _NAMES or origin is None):
        return f"one of {', '.join(map(repr, s.choices))}{tail}"
    if tp in (int, float):
        name = "a number" if not s.finite else _NAMES[tp]
        lo = "" if s.low is None else f" {'>' if s.strict else '>='} {s.low:g}"
        hi = "" if s.high is None else f" {'<' if s.high_strict else '<='} {s.high:g}"
        return name + (lo + " and" + hi if lo and hi else lo or hi) + tail
    if tp in _NAMES:
        return _NAMES[tp] + tail
    if isinstance(tp, type) and issubclass(tp, Settings):
        return f"a {tp.__name__} or a table of its keys{tail}"
    at_least = f" of at least {s.min_items} item{'s' if s.min_items != 1 else ''}" if s.min_items else ""
    if _is_pairs(tp):
        return f"a table{at_least} {{name: {_describe(typing.get_args(args[0])[1], s)}}}{tail}"
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"a list{at_least}, each item {_describe(args[0], s)}{tail}"
    if origin is tuple:
        return f"a list of {len(args)} items ({', '.join(_describe(a, s) for a in args)}){tail}"
    if origin is dict:
        return f"a table{at_least} of {_describe(args[1], s)} values{tail}"
    return getattr(tp, "__name__", str(tp)) + tail


def plain(value: Any) -> Any:
    """A settings value in TOML/json form: nested settings as tables, tuples as lists (pairs as tables)."""
    if isinstance(value, Settings):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


class Settings:
    """Base of every frozen settings dataclass (see the module docstring).

    Class attributes
    ----------------
    error : type
        The stage's error raised for a bad value (a subclass of :class:`~mpc_bio.errors.MpcBioError`).
    renamed : dict of str to str
        Keys renamed in a release, old -> new: :meth:`from_dict` refuses an old key naming the new one.
    """

    error: ClassVar[type[MpcBioError]] = MpcBioError
    renamed: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Append the numpydoc ``Attributes`` section, written from the field declarations."""
        super().__init_subclass__(**kwargs)
        rows = []
        for name, ann in cls.__dict__.get("__annotations__", {}).items():
            f = cls.__dict__.get(name)
            if isinstance(f, dataclasses.Field) and "setting" in f.metadata:
                s = f.metadata["setting"]
                text = s.doc + (f" [{s.unit}]" if s.unit and s.unit != "-" else "")
                rows += [f"    {name} : {ann}", textwrap.indent(textwrap.fill(text, 92), " " * 8)]
        if rows:
            cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n    Attributes\n    ----------\n" + "\n".join(rows) + "\n"

    def __post_init__(self) -> None:
        for name, convert, tp, s in _field_converters(type(self)):
            value = getattr(self, name)
            try:
                converted = convert(value)
            except _Invalid:
                err = self.invalid(name, s.expected or describe(tp, s), value)
                renamed = dict(s.renamed_choices)
                if isinstance(value, str) and value in renamed:
                    err = self.error(f"{err} The value {value!r} was renamed: write {renamed[value]!r} instead.")
                raise err from None
            object.__setattr__(self, name, converted)
        self._check()

    def _check(self) -> None:
        """Cross-field checks and normalisations of a subclass (raise :meth:`invalid`)."""

    def invalid(self, name: str, expected: str, got: Any) -> MpcBioError:
        """The class's error for parameter ``name``: "The 'name' parameter of Cls must be ... Got ... instead."."""
        return self.error(f"The {name!r} parameter of {type(self).__name__} must be {expected}. Got {got!r} instead.")

    def _set(self, name: str, value: Any) -> None:
        """Store a normalised value in ``_check`` (the instance is frozen)."""
        object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str | None = None):
        """Build from a table (a scenario TOML table or :meth:`to_dict` output).

        Unknown keys raise the class's error naming them and ``where`` (default: the class name);
        a renamed key raises naming its new name.
        """
        where = where or cls.__name__
        if not isinstance(data, Mapping):
            raise cls.error(f"{where} must be a table of {cls.__name__} settings. Got {data!r} instead.")
        old = {k: cls.renamed[k] for k in data if k in cls.renamed}
        if old:
            raise cls.error(f"Renamed key(s) in {where}: " + ", ".join(f"{k!r} is now {v!r}" for k, v in old.items()) + ".")
        known = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise cls.error(f"Unknown key(s) {unknown} in {where}; expected some of {sorted(known)}.")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """TOML/json-ready dict that :meth:`from_dict` turns back into equal settings (a None value
        is left out when None is its default, so the dict is TOML-writable)."""
        out = {}
        hints = field_types(type(self))
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None and f.default is None:
                continue
            out[f.name] = {k: plain(x) for k, x in v} if v is not None and _is_pairs(_optional(hints[f.name])[0]) else plain(v)
        return out
