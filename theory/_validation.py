"""Argument validation shared by the API and the CLI.

Every public constructor validates its arguments with these helpers, so that the
Python API raises ``ValueError`` and the CLI prints exactly the same one-line
message (naming the parameter) before exiting with status 2.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from numbers import Integral, Real

__all__ = ["require_int", "require_real", "require_finite_sequence"]


_ASCII_INTEGER = re.compile(r"[+-]?[0-9]+")
#: a decimal (``0.01``, ``-1.5e-3``, ``.5``), a ratio of integers (``1/100``) or inf/nan (refused as not finite)
_ASCII_REAL = re.compile(r"[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+/[0-9]+|inf|infinity|nan)", re.IGNORECASE)


def require_int(name: str, value: object, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int`` or raise ``ValueError`` naming ``name``.

    Accepts Python/NumPy integers and ASCII decimal strings of integers (the CLI passes
    strings; ``"1_0"`` and non-ASCII digits such as ``"٣"`` are refused); rejects booleans,
    floats and anything non-integral.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not _ASCII_INTEGER.fullmatch(text):
            raise ValueError(f"{name} must be an integer (ASCII decimal digits), got {text!r}")
        if len(text) > 1000:
            raise ValueError(f"{name} must be an integer of at most 1000 digits, got {len(text)} digits")
        value = int(text)
    elif isinstance(value, Integral):
        value = int(value)
    else:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def require_real(
    name: str,
    value: object,
    *,
    positive: bool = False,
    nonnegative: bool = False,
) -> Real:
    """Return ``value`` as a finite real (int, Fraction or float) or raise ``ValueError``.

    Strings in ASCII decimal notation are parsed (integers and fractions exactly, otherwise as
    floats; ``"1_0"`` and non-ASCII digits are refused); NaN and infinities are rejected, never
    propagated.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 1000 or not _ASCII_REAL.fullmatch(text):
            raise ValueError(f"{name} must be a real number in ASCII decimal notation (e.g. 0.01, 1e-3, 1/100), "
                             f"got {text!r}")
        try:
            value = Fraction(text) if "/" in text else (int(text) if _ASCII_INTEGER.fullmatch(text) else float(text))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{name} must be a real number, got {text!r}") from None
    if isinstance(value, Integral):
        value = int(value)
    elif isinstance(value, Fraction):
        pass
    elif isinstance(value, Real):
        value = float(value)
    else:
        try:  # e.g. gmpy2.mpfr, mpmath.mpf, sympy numbers
            value = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if nonnegative and not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def require_finite_sequence(name: str, values: object, length: int | None = None) -> tuple:
    """Validate a 1-D sequence of finite reals; return it as a tuple."""
    try:
        items = list(values)  # type: ignore[call-overload]
    except TypeError:
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if length is not None and len(items) != length:
        raise ValueError(f"{name} must have length {length}, got {len(items)}")
    out = []
    for k, v in enumerate(items):
        if hasattr(v, "__len__") and not isinstance(v, str):
            raise ValueError(f"{name} must be one-dimensional (entry {k} is a sequence)")
        out.append(require_real(f"{name}[{k}]", v))
    return tuple(out)
