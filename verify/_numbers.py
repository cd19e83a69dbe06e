"""Number types of the engines: the working precision in bits, its NumPy dtype, exact conversions.

A working precision of ``P`` bits selects the arithmetic:

* ``P = 53`` — ``float64``;
* ``P = 64`` — x86 ``longdouble`` (where its mantissa has 64 bits; elsewhere as below);
* any other ``P`` — ``object`` arrays of ``gmpy2.mpfr`` rounded to ``P`` bits.

The precision is always passed as one explicit parameter, ``precision_bits``; nothing here
reads it back from an ambient gmpy2 context. gmpy2 rounds the result of every operation to the
precision of the *current* context, so code that computes in ``gmpy2.mpfr`` enters
:func:`working_context` of its ``precision_bits`` (and leaves the caller's context as it was).
"""

from __future__ import annotations

import contextlib
import math
from fractions import Fraction

import gmpy2
import numpy as np

from ssmpoison.theory._validation import require_int

__all__ = [
    "MIN_PRECISION_BITS",
    "require_precision_bits",
    "working_dtype",
    "working_context",
    "precision_of",
    "to_working",
    "to_working_array",
    "all_finite",
    "abs_max",
]

#: The lowest working precision: float64's 53 mantissa bits.
MIN_PRECISION_BITS = 53


def require_precision_bits(value, *, name: str = "precision_bits", minimum: int = MIN_PRECISION_BITS) -> int:
    """The one validation of a working precision.

    Arguments:
        value: the precision in bits (an integer, or a decimal string as the CLI passes it).
        name: the parameter's name in the error message (the CLI's flag is ``precision``).
        minimum: the lowest precision accepted (53; 64 where a run must beat float64).

    Returns:
        ``value`` as an ``int``.

    Raises:
        ValueError: ``"<name> must be an integer ..."`` or ``"<name> must be >= <minimum>, got ..."``.
    """
    return require_int(name, value, minimum=minimum)


def working_dtype(precision_bits: int) -> np.dtype:
    """NumPy dtype of a working precision: float32 (24; gradient descent's precision, never a flow's),
    float64 (53), longdouble (64, where it has a 64-bit mantissa), else object (gmpy2)."""
    if precision_bits == 24:
        return np.dtype(np.float32)
    if precision_bits == 53:
        return np.dtype(np.float64)
    if precision_bits == 64 and np.finfo(np.longdouble).nmant == 63:
        return np.dtype(np.longdouble)
    return np.dtype(object)


def working_context(precision_bits: int):
    """Context manager for arithmetic at ``precision_bits``: a gmpy2 context of that precision
    when the working type is ``gmpy2.mpfr``, else nothing (float64 and longdouble do not use gmpy2)."""
    if working_dtype(precision_bits) == object:
        return gmpy2.context(precision=precision_bits)
    return contextlib.nullcontext()


def precision_of(values) -> int:
    """The working precision of an array's values: 53 (float64), the mantissa bits of a float
    dtype, or the largest precision of its ``gmpy2.mpfr`` entries (53 when it holds none)."""
    arr = np.asarray(values)
    if arr.dtype == object:
        precs = [v.precision for v in arr.ravel() if isinstance(v, gmpy2.mpfr)]
        return max(precs) if precs else MIN_PRECISION_BITS
    if arr.dtype.kind != "f":
        raise TypeError(f"unsupported working dtype {arr.dtype}; use float64, longdouble or object (gmpy2.mpfr)")
    return np.finfo(arr.dtype).nmant + 1


def to_working(x, precision_bits: int):
    """Convert a number to the working type of ``precision_bits`` without passing through float64.

    Accepts Python ints and floats, :class:`~fractions.Fraction`, numpy scalars,
    ``gmpy2.mpfr`` and decimal strings. Rational values (Fractions, numpy and mpfr scalars)
    are converted as ``numerator / denominator`` in the working type (one rounding for
    ``gmpy2.mpfr``); strings are parsed at the full working precision.
    """
    dtype = working_dtype(precision_bits)
    if isinstance(x, np.integer):
        x = int(x)
    elif isinstance(x, (np.floating, gmpy2.mpfr)) and not isinstance(x, float) and math.isfinite(float(x)):
        x = Fraction(*(int(v) for v in x.as_integer_ratio()))
    if dtype == object:
        if isinstance(x, Fraction):
            return gmpy2.mpfr(gmpy2.mpq(x.numerator, x.denominator), precision_bits)
        return gmpy2.mpfr(x, precision_bits)
    typ = dtype.type
    if isinstance(x, Fraction):
        return typ(x.numerator) / typ(x.denominator)
    return typ(x)


def to_working_array(values, precision_bits: int) -> np.ndarray:
    """An array (any shape) converted entry by entry with :func:`to_working`; a copy."""
    arr = np.asarray(values)
    dtype = working_dtype(precision_bits)
    if arr.dtype == dtype and dtype != object:
        return np.array(arr, copy=True)
    flat = [to_working(v, precision_bits) for v in arr.ravel()]
    return np.array(flat, dtype=dtype).reshape(arr.shape)


def all_finite(x) -> bool:
    """Every entry finite (float dtypes or ``gmpy2.mpfr``)."""
    x = np.asarray(x)
    if x.dtype == object:
        return all(gmpy2.is_finite(v) for v in x.flat)
    return bool(np.isfinite(x).all())


def abs_max(x):
    """Largest magnitude of the entries, in their own type."""
    return np.abs(np.asarray(x)).max()
