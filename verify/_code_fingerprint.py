"""A fingerprint of the project code a computation ran on, so that a saved result can say which code made it.

A replayed flow reproduces its saved numbers bit for bit only on the same code: any change to
the integrator moves the last digits of a float64 result. The fingerprint is the SHA-256 of
the source of every ``ssmpoison.theory``/``ssmpoison.verify`` module reachable from the given root modules through
their module-level names (imported modules, and the modules of imported functions and
classes), in name order, with the files a module lists in ``_FINGERPRINT_FILES`` (the C++ source of
the native step loop); it changes exactly when one of those sources does. It is computed
once per process (the sources are read at the first call).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import types

__all__ = ["code_fingerprint"]

_PACKAGES = ("ssmpoison.theory", "ssmpoison.verify")


def _project_module(value) -> str | None:
    name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
    if isinstance(name, str) and ".".join(name.split(".")[:2]) in _PACKAGES:
        return name
    return None


@functools.lru_cache(maxsize=None)
def code_fingerprint(*roots: str) -> str:
    """The fingerprint of the project code reachable from ``roots`` (module docstring).

    Arguments:
        roots: names of project modules (e.g. ``"ssmpoison.verify._search"``).

    Returns:
        The first 16 hex digits of the SHA-256 of ``name \\0 source \\0`` (then ``file \\0`` for each of its
        ``_FINGERPRINT_FILES``) over every reachable ``ssmpoison.theory``/``ssmpoison.verify`` module, in name order.

    Raises:
        ModuleNotFoundError: a root is not an importable module.
    """
    seen, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        module = importlib.import_module(name)
        for value in vars(module).values():
            reached = _project_module(value)
            if reached is not None and reached not in seen:
                stack.append(reached)
    digest = hashlib.sha256()
    for name in sorted(seen):
        module = importlib.import_module(name)
        digest.update(name.encode() + b"\0" + inspect.getsource(module).encode() + b"\0")
        for path in getattr(module, "_FINGERPRINT_FILES", ()):  # compiled sources the module builds and runs
            with open(path, "rb") as fh:
                digest.update(fh.read() + b"\0")
    return digest.hexdigest()[:16]
