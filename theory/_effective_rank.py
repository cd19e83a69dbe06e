"""Effective rank of the diagonal transition matrix A (note 00 §3, as used by the paper's figures).

For ``A = diag(a_1, ..., a_D)`` with ``a != 0``,

    erank(A) = exp(H(p)),   p_i = |a_i| / sum_j |a_j|,   H(p) = -sum_i p_i ln p_i   (0 ln 0 = 0).

It is the exponential of the Shannon entropy of the normalised magnitudes (for a diagonal
matrix the singular values are the ``|a_i|``), so ``1 <= erank(A) <= D``: it equals 1
exactly when one entry is non-zero, and D exactly when all ``|a_i|`` are equal; a matrix
with k equal non-zero entries and the rest zero has effective rank k. It is continuous in
``a`` away from 0 and invariant under scaling and permuting the entries.

For the zero matrix p is undefined; its effective rank is taken to be 0 (its rank).
"""

from __future__ import annotations

import numpy as np

__all__ = ["effective_rank"]


def effective_rank(a) -> np.ndarray | float:
    """``exp(-sum_i p_i ln p_i)`` with ``p_i = |a_i| / sum_j |a_j|`` over the last axis of ``a``.

    ``a`` has shape ``(..., D)`` (leading batch axes allowed) and any real number type
    (float64, longdouble, ``gmpy2.mpfr`` / ``mpmath.mpf`` objects); the result is float64,
    a Python ``float`` for a single vector. Raises ``ValueError`` (naming ``a``) for an empty
    or non-finite ``a``; an all-zero vector gives 0.
    """
    try:
        mags = np.abs(np.asarray(a, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"a must be an array of real numbers, got {a!r}") from None
    if mags.ndim == 0 or mags.shape[-1] == 0:
        raise ValueError("a must hold at least one entry")
    if not np.isfinite(mags).all():
        raise ValueError("a must be finite")
    # Scale by the largest magnitude first: p is unchanged, and the sum cannot underflow or overflow.
    top = mags.max(axis=-1, keepdims=True)
    zero = top[..., 0] == 0
    scaled = mags / np.where(top == 0, 1.0, top)
    p = scaled / np.where(zero, 1.0, scaled.sum(axis=-1))[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    out = np.where(zero, 0.0, np.exp(-terms.sum(axis=-1)))
    return float(out) if out.ndim == 0 else out
