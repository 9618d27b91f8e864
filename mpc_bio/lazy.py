"""Lazy public names of a package: each imported from its module on first use.

A stage package lists its modules' public names and gets the module-level ``__getattr__`` and
``__dir__`` from :func:`lazy_exports`, so ``import mpc_bio.<stage>`` (and ``mpc-bio --help``)
imports no heavy library until a name that needs one is used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], eager: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping
        Module path -> tuple of its public names, or public name -> module path (module paths
        ``"mpc_bio.metabolism.pfba"``, or ``".pfba"`` relative to ``package``).
    eager : iterable of str
        Names the package imports itself (listed by ``__dir__`` too).

    ``__dir__()`` is the package's ``__all__``.
    """
    pairs = [(k, v) if isinstance(v, str) else (name, k) for k, v in exports.items() for name in ((v,) if isinstance(v, str) else v)]
    full = {name: package + mod if mod.startswith(".") else mod for name, mod in pairs}
    names = sorted({*full, *eager})

    def __getattr__(name: str) -> Any:
        module = full.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return list(names)

    return __getattr__, __dir__
