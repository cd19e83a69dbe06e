"""Lazy public surfaces: a package re-exports names of its private modules, imported on first use.

Importing ``ssmpoison.theory`` or ``ssmpoison.verify`` (or any private module under them) then costs
nothing beyond the modules actually used: the command line's numeric paths do not pay SymPy's or
matplotlib's import.
"""

from __future__ import annotations

import importlib

__all__ = ["lazy_surface"]


def lazy_surface(package: str, exports: dict[str, tuple[str, ...]]):
    """Module-level ``__getattr__`` and ``__dir__`` for ``package`` re-exporting ``exports``.

    Arguments:
        package: the package's dotted name (its ``__name__``).
        exports: private module name (relative, e.g. ``"_flow"``) → the public names it provides. A
            name equal to the module's own name without its underscore exports the module itself.

    Returns:
        ``(__getattr__, __dir__, __all__)`` to assign in the package's ``__init__``.
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        mod = importlib.import_module(f"{package}.{module}")
        value = mod if module == "_" + name and not hasattr(mod, name) else getattr(mod, name)
        globals_of_package = importlib.import_module(package).__dict__
        globals_of_package[name] = value
        return value

    def __dir__():
        return sorted(set(importlib.import_module(package).__dict__) | set(where))

    return __getattr__, __dir__, list(where)
