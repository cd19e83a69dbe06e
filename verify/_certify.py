"""Certified significant digits: agreement between a result and an independent, more accurate one.

A result ``x`` is reported with ``d`` certified significant digits when an independent
re-run ``ref`` (higher precision and tighter tolerance, or an exact oracle) satisfies

* ``|x - ref| <= 10**(-d) * |ref|`` (relative agreement to ``d`` digits), and
* ``x`` and ``ref`` round to the same ``d``-significant-digit decimal string,

and ``d`` is at most ``cap`` (the digits the run's own arithmetic can carry). The reported
decimal string is that common rounding, so it carries exactly the certified digits.
Whether the digits are also *correct* is the same test against a far more accurate
reference value (:func:`correct_digits`); the test-suite and the benchmark use it to
check that no run claims more digits than are correct.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mpmath

__all__ = ["Certified", "certify", "correct_digits", "digits_supported", "to_mpf"]

_WORK_BITS = 2048  # exact enough to compare any value the engines produce


def to_mpf(x) -> mpmath.mpf:
    """Exact conversion of float64 / longdouble / gmpy2.mpfr / mpmath / int / Fraction / str to ``mpmath.mpf``."""
    with mpmath.workprec(_WORK_BITS):
        if isinstance(x, mpmath.mpf):
            return +x
        if type(x).__name__ == "mpfr":  # gmpy2: exact via its binary digits
            import gmpy2

            if not gmpy2.is_finite(x):
                raise ValueError(f"value must be finite, got {x}")
            mant, exp = x.as_mantissa_exp()
            return mpmath.ldexp(mpmath.mpf(int(mant)), int(exp))
        if hasattr(x, "numerator") and hasattr(x, "denominator") and not isinstance(x, float):
            return mpmath.mpf(x.numerator) / x.denominator
        import numpy as np

        if isinstance(x, np.floating) and x.dtype == np.longdouble and np.finfo(np.longdouble).nmant > 52:
            if not np.isfinite(x):
                raise ValueError(f"value must be finite, got {x}")
            mant, exp = np.frexp(x)
            hi = float(mant)  # top 53 bits
            lo = float(mant - np.longdouble(hi))
            return mpmath.ldexp(mpmath.mpf(hi) + mpmath.mpf(lo), int(exp))
        f = float(x) if not isinstance(x, str) else x
        if isinstance(f, float) and not math.isfinite(f):
            raise ValueError(f"value must be finite, got {x}")
        return mpmath.mpf(f)


def digits_supported(precision_bits: int) -> int:
    """Significant decimal digits a ``precision_bits``-bit binary float can carry, less one for rounding:
    ``floor(precision_bits * log10 2) - 1``."""
    return int(math.floor(precision_bits * math.log10(2))) - 1


def _rounded(x: mpmath.mpf, d: int) -> str:
    with mpmath.workprec(_WORK_BITS):
        return mpmath.nstr(x, d, strip_zeros=False, min_fixed=1, max_fixed=0)


def _agreement(x: mpmath.mpf, ref: mpmath.mpf, cap: int) -> int:
    with mpmath.workprec(_WORK_BITS):
        if ref == 0:
            return cap if x == 0 else 0
        rel = abs(x - ref) / abs(ref)
        d = cap if rel == 0 else min(cap, int(mpmath.floor(-mpmath.log10(rel))))
    while d > 0 and _rounded(x, d) != _rounded(ref, d):
        d -= 1
    return max(d, 0)


@dataclass(frozen=True)
class Certified:
    """A value with its certified significant digits; ``text`` carries exactly those digits."""

    value: mpmath.mpf
    digits: int
    reference: mpmath.mpf

    @property
    def text(self) -> str:
        """Decimal string with exactly ``digits`` significant digits ("" meaning nothing certified → "?")."""
        return _rounded(self.value, self.digits) if self.digits > 0 else "?"

    def __float__(self) -> float:
        return float(self.value)


def certify(x, ref, cap: int) -> Certified:
    """Certify ``x`` against an independent, more accurate ``ref``, claiming at most ``cap`` digits."""
    if cap < 0:
        raise ValueError(f"cap must be >= 0, got {cap}")
    xm, rm = to_mpf(x), to_mpf(ref)
    return Certified(xm, _agreement(xm, rm, cap), rm)


def correct_digits(text_or_value, truth) -> int:
    """Number of significant digits of a decimal string (or value) that are correct against ``truth``.

    For a string with ``d`` significant digits this is ``d`` when the string equals ``truth``
    rounded to ``d`` digits and, otherwise, the largest ``k < d`` for which the string's
    value rounded to ``k`` digits equals ``truth`` rounded to ``k`` digits and agrees to
    ``k`` digits in relative error.
    """
    truth = to_mpf(truth)
    if isinstance(text_or_value, str):
        if text_or_value == "?":
            return 0
        mant = text_or_value.lower().split("e")[0].lstrip("+-").replace(".", "").lstrip("0")
        d = len(mant)
        with mpmath.workprec(_WORK_BITS):
            value = mpmath.mpf(text_or_value)
        if _rounded(truth, d) == _rounded(value, d):
            return d
        return _agreement(value, truth, d - 1)
    return _agreement(to_mpf(text_or_value), truth, 60)
