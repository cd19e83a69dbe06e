"""Numeric functions generated from the SymPy derivation (:mod:`ssmpoison.theory._derivation`).

``generated_functions(D, H, N, train, backend)`` lambdifies the exact expressions of
one shape once (cached) and returns a :class:`GeneratedFunctions` whose methods take
NumPy-style arguments:

* ``a, b, c``: shape ``(..., D)`` — any leading batch axes (float64 backend), or a
  1-D sequence of ``mpmath.mpf`` (mpmath backend);
* ``U``: ``(N, H)`` inputs; ``y``: ``(N,)`` labels.

Backends: ``"float64"`` (NumPy, vectorised over the batch axes) and ``"mpmath"``
(evaluated under ``mpmath.workprec(precision_bits)``; pass ``precision_bits=``). :func:`exact_values`
evaluates the same expressions in exact rational arithmetic. The numeric code computes
with the reference formulas of :mod:`ssmpoison.verify._kernels`; these generated functions
are what the tests hold the kernels against (``tests/test_backends.py``).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import mpmath
import numpy as np
import sympy as sp

from ssmpoison.theory._derivation import Derivation, derive

__all__ = ["GeneratedFunctions", "generated_functions", "exact_values", "BACKENDS"]

BACKENDS = ("float64", "mpmath")
_QUANTITIES = ("impulse_response", "outputs", "loss", "gamma", "neg_gradient")


def _flat_symbols(d: Derivation) -> list[sp.Symbol]:
    s = d.symbols
    return [*s.a, *s.b, *s.c, *(x for row in s.u for x in row), *s.y]


def _quantity_exprs(d: Derivation, name: str) -> list[sp.Expr]:
    if name == "impulse_response":
        return list(d.impulse_response)
    if name == "outputs":
        return list(d.outputs)
    if name == "loss":
        return [d.loss]
    if name == "gamma":
        return list(d.gamma)
    if name == "neg_gradient":
        return [e for p in d.shape.parameters for e in d.neg_gradient[p]]
    raise KeyError(name)


def _check_finite(name: str, values) -> None:
    for v in values:
        if isinstance(v, (float, np.floating)) and not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v!r}")
        if isinstance(v, mpmath.mpf) and not mpmath.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v!r}")


class GeneratedFunctions:
    """Lambdified L_H, -grad L_H, gamma^(l), K_j and y_H for one shape and backend."""

    def __init__(self, derivation: Derivation, backend: str):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.derivation = derivation
        self.backend = backend
        args = _flat_symbols(derivation)
        module = "numpy" if backend == "float64" else "mpmath"
        self._funcs = {
            q: sp.lambdify(args, _quantity_exprs(derivation, q), modules=module, cse=True) for q in _QUANTITIES
        }

    # -- argument handling -------------------------------------------------
    def _args(self, a, b, c, U, y):
        sh = self.derivation.shape
        D, H, N = sh.state_dim, sh.horizon, sh.samples
        if self.backend == "float64":
            a, b, c = (np.asarray(v, dtype=np.float64) for v in (a, b, c))
            for name, v in (("a", a), ("b", b), ("c", c)):
                if v.shape[-1:] != (D,):
                    raise ValueError(f"{name} must have last axis of length state_dim={D}, got shape {v.shape}")
                if not np.all(np.isfinite(v)):
                    raise ValueError(f"{name} must be finite")
            U = np.asarray(U, dtype=np.float64)
            y = np.asarray(y, dtype=np.float64)
            if U.shape != (N, H):
                raise ValueError(f"U must have shape (samples, horizon)=({N}, {H}), got {U.shape}")
            if y.shape != (N,):
                raise ValueError(f"y must have shape (samples,)=({N},), got {y.shape}")
            if not (np.all(np.isfinite(U)) and np.all(np.isfinite(y))):
                raise ValueError("U and y must be finite")
            self._batch = np.broadcast_shapes(a.shape[:-1], b.shape[:-1], c.shape[:-1])
            cols = [a[..., i] for i in range(D)] + [b[..., i] for i in range(D)] + [c[..., i] for i in range(D)]
            return cols + [float(v) for v in U.ravel()] + [float(v) for v in y]
        conv = [mpmath.mpf(v) for v in (*a, *b, *c)]
        flatU = [mpmath.mpf(v) for row in U for v in row]
        ys = [mpmath.mpf(v) for v in y]
        if len(conv) != 3 * D or len(flatU) != N * H or len(ys) != N:
            raise ValueError(f"expected a, b, c of length {D}, U of shape ({N}, {H}) and y of length {N}")
        _check_finite("parameters", conv + flatU + ys)
        return conv + flatU + ys

    def _call(self, q, a, b, c, U, y, precision_bits):
        if self.backend == "float64":
            out = self._funcs[q](*self._args(a, b, c, U, y))
            out = [np.broadcast_to(np.asarray(o, dtype=np.float64), self._batch) for o in out]
            return np.stack(out, axis=-1)
        with mpmath.workprec(precision_bits):
            return list(self._funcs[q](*self._args(a, b, c, U, y)))

    # -- public quantities --------------------------------------------------
    def impulse_response(self, a, b, c, U, y, precision_bits: int = 53):
        """The impulse response ``K_0 .. K_{H-1}``, ``K_j = sum_i c_i b_i a_i^j``.

        Arguments:
            a, b, c, U, y: as described in the module docstring.
            precision_bits: working precision of the mpmath backend.

        Returns:
            float64: shape ``(..., H)``; mpmath: a list of ``mpf``.
        """
        return self._call("impulse_response", a, b, c, U, y, precision_bits)

    def outputs(self, a, b, c, U, y, precision_bits: int = 53):
        """The outputs ``y_H(u^(n)) = sum_j K_j u^(n)_{H-1-j}``, n = 1..N (arguments as :meth:`impulse_response`)."""
        return self._call("outputs", a, b, c, U, y, precision_bits)

    def loss(self, a, b, c, U, y, precision_bits: int = 53):
        """The loss ``L_H = (1/N) sum_n (y_H(u^(n)) - y*_n)^2`` (float64: shape of the batch; mpmath: one ``mpf``)."""
        out = self._call("loss", a, b, c, U, y, precision_bits)
        return out[..., 0] if self.backend == "float64" else out[0]

    def gamma(self, a, b, c, U, y, precision_bits: int = 53):
        """The Proposition's ``gamma^(l) = 2(l+1)/N sum_n delta_n u^(n)_{H-2-l}``, l = 0..H-2."""
        return self._call("gamma", a, b, c, U, y, precision_bits)

    def neg_gradient(self, a, b, c, U, y, precision_bits: int = 53):
        """``-dL/da`` (then ``-dL/db``, ``-dL/dc`` when ``train="abc"``), concatenated: length D or 3D."""
        return self._call("neg_gradient", a, b, c, U, y, precision_bits)


@functools.lru_cache(maxsize=32)
def generated_functions(state_dim: int, horizon: int, samples: int = 1, train: str = "a", backend: str = "float64"):
    """The lambdified quantities of one shape and backend (cached).

    Arguments:
        state_dim, horizon, samples: D, H and N.
        train: ``"a"`` or ``"abc"`` (the trained parameters).
        backend: ``"float64"`` or ``"mpmath"``.

    Returns:
        A :class:`GeneratedFunctions`.

    Raises:
        ValueError: an unknown backend (and the derivation's errors for a bad shape).
    """
    return GeneratedFunctions(derive(state_dim, horizon, samples, train), backend)


def exact_values(derivation: Derivation, quantity: str, a, b, c, U, y) -> list:
    """Evaluate a quantity of the derivation exactly at rational points.

    Arguments:
        derivation: the :class:`ssmpoison.theory._derivation.Derivation` of the shape.
        quantity: ``"impulse_response"``, ``"outputs"``, ``"loss"``, ``"gamma"`` or ``"neg_gradient"``.
        a, b, c, U, y: ints, Fractions or floats (converted exactly).

    Returns:
        A list of ``sympy.Rational``.

    Raises:
        ValueError: a non-finite float.
    """

    def rat(v):
        if isinstance(v, Fraction):
            return sp.Rational(v.numerator, v.denominator)
        if isinstance(v, float):
            if not math.isfinite(v):
                raise ValueError(f"exact evaluation needs finite numbers, got {v!r}")
            return sp.Rational(*v.as_integer_ratio())
        return sp.Rational(v)

    values = [rat(v) for v in (*a, *b, *c)] + [rat(v) for row in U for v in row] + [rat(v) for v in y]
    mapping = dict(zip(_flat_symbols(derivation), values))
    return [sp.expand(e.xreplace(mapping)) for e in _quantity_exprs(derivation, quantity)]
