"""Structured linear solves ``x = (I - h J)^{-1} r``, generic over the number type.

The stiff integrator :class:`ssmpoison.verify._seulex.Seulex` needs, at every sub-step, the solution of
``(I - h J) x = r`` for the Jacobian ``J`` frozen at the start of a macro-step and
a few different values of ``h``. Everything here is written with NumPy elementwise
operations, ``@`` and sums only, so it runs unchanged on ``float64``,
``longdouble`` and ``object`` arrays of ``gmpy2.mpfr`` (``numpy.linalg`` accepts
none of the latter two). Leading batch axes are allowed everywhere and are
processed in one vectorised pass.

Two solver factories share the interface ``solve = factory(...); x = solve(h, r)``:

* :func:`diag_plus_lowrank_solver` for ``J = diag(d) - s G^T G`` (the structure of
  the SSM gradient flow, see :func:`ssmpoison.verify._kernels.jacobian_a`). With
  ``Delta = 1 - h d`` one has ``I - h J = diag(Delta) + (h s) G^T G`` and the
  Sherman–Morrison–Woodbury identity

      (diag(Delta) + h s G^T G)^{-1}
          = Delta^{-1} - Delta^{-1} G^T C^{-1} G Delta^{-1},
      C = I_N / (h s) + G Delta^{-1} G^T,

  reduces the ``D x D`` solve to the ``N x N`` capacitance matrix ``C``:
  cost ``O(D N^2 + N^3)`` per new ``h`` and ``O(D N)`` per right-hand side.
  The formula needs every ``Delta_i = 1 - h d_i`` to be non-zero; if one
  vanishes the result is not finite, which the integrator treats as a failed
  step (it then retries with another ``h``).
* :func:`dense_solver` for a general ``M x M`` Jacobian.

Both factor once per distinct ``h`` and keep the factorisations for the lifetime
of the returned ``solve`` (the integrator makes one per macro-step and calls it
with a handful of step sizes, many right-hand sides each).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

__all__ = ["gauss_solve", "inverse", "diag_plus_lowrank_solver", "dense_solver"]


def gauss_solve(A, B):
    """Solve ``A X = B`` by Gaussian elimination with partial (row) pivoting.

    ``A`` has shape ``(..., N, N)`` and ``B`` shape ``(..., N, K)``; the leading
    axes broadcast against each other and every batch element is pivoted on its
    own. Works for any dtype whose elements support ``+ - * /``, ``abs`` and
    ordering (``float64``, ``longdouble``, ``object`` of ``gmpy2.mpfr``).
    A singular matrix produces non-finite entries (division by a zero pivot).
    """
    A, B = np.asarray(A), np.asarray(B)
    batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    A = np.broadcast_to(A, batch + A.shape[-2:]).copy()
    B = np.broadcast_to(B, batch + B.shape[-2:]).copy()
    n = A.shape[-1]
    if A.shape[-2] != n or B.shape[-2] != n:
        raise ValueError(f"gauss_solve: shapes {A.shape} and {B.shape} do not match")
    for k in range(n - 1):
        piv = k + np.argmax(np.abs(A[..., k:, k]), axis=-1)[..., None, None]  # (..., 1, 1)
        for M in (A, B):
            row_k = M[..., k : k + 1, :].copy()
            row_p = np.take_along_axis(M, np.broadcast_to(piv, batch + (1, M.shape[-1])), axis=-2)
            np.put_along_axis(M, np.broadcast_to(piv, batch + (1, M.shape[-1])), row_k, axis=-2)
            M[..., k : k + 1, :] = row_p
        factor = A[..., k + 1 :, k : k + 1] / A[..., k : k + 1, k : k + 1]  # (..., n-k-1, 1)
        A[..., k + 1 :, k:] -= factor * A[..., k : k + 1, k:]
        B[..., k + 1 :, :] -= factor * B[..., k : k + 1, :]
    X = B
    for k in range(n - 1, -1, -1):
        if k < n - 1:
            X[..., k, :] -= (A[..., k, k + 1 :, None] * X[..., k + 1 :, :]).sum(axis=-2)
        X[..., k, :] /= A[..., k, k : k + 1]
    return X


def inverse(A):
    """``A^{-1}`` for ``A`` of shape ``(..., N, N)`` via :func:`gauss_solve`."""
    A = np.asarray(A)
    n = A.shape[-1]
    eye = _identity(n, A)
    return gauss_solve(A, eye)


def _identity(n: int, like):
    """The ``n x n`` identity in the dtype of ``like`` (exact integers 0/1 for ``object``)."""
    return np.eye(n, dtype=like.dtype)


def _cached_by_h(factor):
    """Wrap ``factor(h) -> apply(r)`` into ``solve(h, r)``, factorising once per distinct ``h``.

    The cache lives as long as the returned ``solve`` (one macro-step of the
    integrator, which uses a handful of step sizes many times each).
    """
    cache = {}

    def solve(h, r):
        apply = cache.get(h)
        if apply is None:
            apply = cache[h] = factor(h)
        return apply(np.asarray(r))

    return solve


def diag_plus_lowrank_solver(d, G, scale):
    """Return ``solve(h, r) = (I - h J)^{-1} r`` for ``J = diag(d) - scale * G^T G``.

    Uses the Sherman–Morrison–Woodbury identity described in the module docstring; the
    ``N x N`` capacitance matrix is inverted by :func:`inverse` once per ``h``.

    Arguments:
        d: array ``(..., D)``, the diagonal part of the Jacobian.
        G: array ``(..., N, D)``, the low-rank factor; ``G^T G`` has rank at most ``N``.
        scale: positive weight of the low-rank part (``2/N`` for the mean-squared loss). An
            ``int`` or :class:`fractions.Fraction` is exact in every working type; a ``float``
            is used with its binary value.

    Returns:
        ``solve(h, r)`` for ``h`` a scalar of the working type and ``r`` of shape ``(..., D)``
        (broadcasting against the batch axes of ``d`` and ``G``).

    Raises:
        ValueError: ``G`` does not match ``d``, or ``scale`` is not positive.
    """
    d, G = np.asarray(d), np.asarray(G)
    if G.shape[-1] != d.shape[-1]:
        raise ValueError(f"diag_plus_lowrank_solver: G {G.shape} does not match d {d.shape}")
    if not scale > 0:
        raise ValueError("diag_plus_lowrank_solver: scale must be positive")
    # A Fraction is applied as numerator/denominator so no precision is lost in any type.
    num, den = (scale.numerator, scale.denominator) if isinstance(scale, Fraction) else (scale, 1)
    N = G.shape[-2]
    eye = _identity(N, d)
    Gt = np.swapaxes(G, -1, -2)

    def factor(h):
        inv_delta = 1 / (1 - h * d)  # (..., D)
        G_inv_delta = G * inv_delta[..., None, :]  # G Delta^{-1}, (..., N, D)
        cap = eye * den / (h * num) + G_inv_delta @ Gt  # (..., N, N)
        cap_inv = inverse(cap)

        def apply(r):
            u = inv_delta * r  # Delta^{-1} r
            z = (cap_inv @ (G @ u[..., None]))[..., 0]  # C^{-1} G Delta^{-1} r, (..., N)
            return u - (z[..., None, :] @ G_inv_delta)[..., 0, :]

        return apply

    return _cached_by_h(factor)


def dense_solver(J):
    """Return ``solve(h, r) = (I - h J)^{-1} r`` for a dense ``J`` of shape ``(..., M, M)``.

    ``(I - h J)`` is inverted by :func:`inverse` (Gaussian elimination with
    partial pivoting) once per ``h``; each right-hand side ``r`` of shape
    ``(..., M)`` then costs one matrix–vector product.
    """
    J = np.asarray(J)
    eye = _identity(J.shape[-1], J)

    def factor(h):
        inv = inverse(eye - h * J)
        return lambda r: (inv @ r[..., None])[..., 0]

    return _cached_by_h(factor)
