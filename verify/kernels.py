"""Hand-vectorised numeric kernels of the diagonal SSM, generic over the number type.

These are the fast paths used by the engines. They are written only with NumPy
array operations, so the same code runs on ``float64``, ``longdouble`` and
``object`` arrays of ``gmpy2.mpfr`` / ``mpmath.mpf`` (arbitrary precision). The
test-suite holds every function here against the functions generated from the
SymPy derivation in :mod:`theory.derivation` (see ``tests/test_backends.py``).

Shapes: parameters ``a, b, c`` are ``(..., D)`` (leading batch axes allowed);
``U`` is the ``(N, H)`` input matrix (``U[n, k] = u^(n)_k``) and ``y`` the ``(N,)``
labels. Formulas (SPEC §1–3), with ``V[..., i, j] = a_i**j``:

* impulse response ``K_j = sum_i c_i b_i a_i**j``;
* output ``y_H(u^(n)) = sum_j K_j u^(n)_{H-1-j}``, residual ``delta_n = y*_n - y_H(u^(n))``;
* loss ``L_H = mean_n delta_n**2``;
* ``gamma^(l) = 2 (l+1)/N sum_n xi_n delta_n u^(n)_{H-2-l}``, ``l = 0..H-2`` (``xi = 1`` for the bare SSM);
* ``-dL/da_i = c_i b_i sum_l gamma^(l) a_i**l``;
* ``-dL/db_i = c_i sum_j w_j a_i**j`` and ``-dL/dc_i = b_i sum_j w_j a_i**j`` with
  ``w_j = 2/N sum_n xi_n delta_n u^(n)_{H-1-j}``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "powers",
    "impulse_response",
    "outputs",
    "residuals",
    "loss",
    "gamma_coefficients",
    "output_weights",
    "neg_grad_a",
    "neg_grad_abc",
    "output_jacobian_a",
    "jacobian_a",
]


def powers(a, count: int):
    """``V[..., i, j] = a_i**j`` for ``j = 0..count-1`` by repeated multiplication (exact in any type)."""
    a = np.asarray(a)
    cols = [np.ones_like(a), a]
    for _ in range(2, count):
        cols.append(cols[-1] * a)
    return np.stack(cols[:count], axis=-1)


def _reversed_inputs(U):
    """``R[n, j] = u^(n)_{H-1-j}``: the input that meets ``K_j``."""
    return np.asarray(U)[:, ::-1]


def _like(M, x):
    """``M`` (inputs, integer weights) converted to the number type of ``x``."""
    return np.asarray(M, dtype=np.asarray(x).dtype)


def impulse_response(a, b, c, length: int):
    """``K_j = sum_i c_i b_i a_i**j`` for ``j = 0..length-1``; shape ``(..., length)``."""
    cb = np.asarray(c) * np.asarray(b)
    return (cb[..., :, None] * powers(a, length)).sum(axis=-2)


def outputs(a, b, c, U):
    """``y_H(u^(n))`` for every training sequence; shape ``(..., N)``."""
    H = np.asarray(U).shape[1]
    K = impulse_response(a, b, c, H)
    return K @ _like(_reversed_inputs(U).T, K)


def residuals(a, b, c, U, y):
    """``delta_n = y*_n - y_H(u^(n))``; shape ``(..., N)``."""
    out = outputs(a, b, c, U)
    return np.asarray(y).astype(out.dtype) - out


def loss(a, b, c, U, y):
    """``L_H = (1/N) sum_n delta_n**2``; shape ``(...)``."""
    d = residuals(a, b, c, U, y)
    return (d * d).sum(axis=-1) / d.shape[-1]


def gamma_coefficients(delta, U, xi=None):
    """``gamma^(l) = 2(l+1)/N sum_n xi_n delta_n u^(n)_{H-2-l}`` for ``l = 0..H-2``; shape ``(..., H-1)``."""
    delta = np.asarray(delta)
    if xi is not None:
        delta = delta * np.asarray(xi)
    U = np.asarray(U)
    N, H = U.shape
    R = _reversed_inputs(U)[:, 1:]  # R[n, l] = u^(n)_{H-2-l}
    weights = np.arange(1, H, dtype=np.int64) * 2
    if delta.dtype == object:
        g = delta @ np.asarray(R, dtype=object)
        return g * np.asarray(weights, dtype=object) / N
    g = delta @ R.astype(delta.dtype)
    return g * weights.astype(delta.dtype) / delta.dtype.type(N)


def output_weights(delta, U, xi=None):
    """``w_j = 2/N sum_n xi_n delta_n u^(n)_{H-1-j}`` for ``j = 0..H-1``; shape ``(..., H)``."""
    delta = np.asarray(delta)
    if xi is not None:
        delta = delta * np.asarray(xi)
    U = np.asarray(U)
    N = U.shape[0]
    R = _reversed_inputs(U)
    if delta.dtype == object:
        return (delta @ np.asarray(R, dtype=object)) * 2 / N
    return (delta @ R.astype(delta.dtype)) * delta.dtype.type(2) / delta.dtype.type(N)


def neg_grad_a(a, b, c, U, y):
    """The Proposition's right-hand side ``da_i/dt = c_i b_i sum_l gamma^(l) a_i**l``; shape ``(..., D)``."""
    U = np.asarray(U)
    H = U.shape[1]
    delta = residuals(a, b, c, U, y)
    gam = gamma_coefficients(delta, U)
    V = powers(a, H - 1)
    return np.asarray(c) * np.asarray(b) * (V * gam[..., None, :]).sum(axis=-1)


def neg_grad_abc(a, b, c, U, y):
    """``(-dL/da, -dL/db, -dL/dc)`` stacked on a new axis ``-2``; shape ``(..., 3, D)``."""
    U = np.asarray(U)
    H = U.shape[1]
    a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
    delta = residuals(a, b, c, U, y)
    gam = gamma_coefficients(delta, U)
    w = output_weights(delta, U)
    V = powers(a, H)
    da = c * b * (V[..., :, : H - 1] * gam[..., None, :]).sum(axis=-1)
    Vw = (V * w[..., None, :]).sum(axis=-1)
    return np.stack([da, c * Vw, b * Vw], axis=-2)


def output_jacobian_a(a, b, c, U):
    """``G[..., n, i] = d y_H(u^(n)) / d a_i = c_i b_i sum_l (l+1) a_i**l u^(n)_{H-2-l}``; shape ``(..., N, D)``."""
    U = np.asarray(U)
    H = U.shape[1]
    a = np.asarray(a)
    V = powers(a, H - 1)  # (..., D, H-1)
    R = _reversed_inputs(U)[:, 1:] * np.arange(1, H)  # (N, H-1): (l+1) u_{H-2-l}
    R = np.asarray(R, dtype=object) if a.dtype == object else R.astype(a.dtype)
    P = V @ R.T  # (..., D, N)
    cb = np.asarray(c) * np.asarray(b)
    return np.swapaxes(P * cb[..., :, None], -1, -2)


def jacobian_a(a, b, c, U, y):
    """Structure of the Jacobian of ``a -> -dL/da``: ``J = diag(d) - (2/N) G^T G``.

    Returns ``(d, G)`` with ``d_i = c_i b_i sum_l l gamma^(l) a_i**(l-1)`` (shape ``(..., D)``)
    and ``G`` from :func:`output_jacobian_a` (shape ``(..., N, D)``). The low-rank part
    is minus ``2/N`` times the Gauss–Newton matrix; its rank is at most N.
    """
    U = np.asarray(U)
    H = U.shape[1]
    a = np.asarray(a)
    delta = residuals(a, b, c, U, y)
    gam = gamma_coefficients(delta, U)  # (..., H-1)
    # d_i = cb_i * sum_{l>=1} l gamma_l a_i^(l-1)
    if H - 1 > 1:
        V = powers(a, H - 2)  # a^0 .. a^(H-3)
        lg = gam[..., 1:] * (np.arange(1, H - 1).astype(object) if a.dtype == object else np.arange(1, H - 1).astype(a.dtype))
        d = (V * lg[..., None, :]).sum(axis=-1)
    else:
        d = np.zeros_like(a)
    d = np.asarray(c) * np.asarray(b) * d
    return d, output_jacobian_a(a, b, c, U)


def _poly_and_derivatives(a, U):
    """``P[..., n, i] = sum_j a_i**j u^(n)_{H-1-j}`` and its first two derivatives in ``a_i``."""
    U = np.asarray(U)
    H = U.shape[1]
    a = np.asarray(a)
    obj = a.dtype == object
    R = _reversed_inputs(U)  # R[n, j] = u_{H-1-j}
    j = np.arange(H)
    cast = (lambda M: np.asarray(M, dtype=object)) if obj else (lambda M: M.astype(a.dtype))
    V = powers(a, H)  # (..., D, H)
    P0 = V @ cast(R.T)
    P1 = V[..., : H - 1] @ cast((R[:, 1:] * j[1:]).T) if H > 1 else np.zeros_like(P0)
    P2 = V[..., : H - 2] @ cast((R[:, 2:] * (j[2:] * (j[2:] - 1))).T) if H > 2 else np.zeros_like(P0)
    return tuple(np.swapaxes(P, -1, -2) for P in (P0, P1, P2))  # each (..., N, D)


def jacobian_abc(a, b, c, U, y):
    """Dense Jacobian of ``theta -> -grad L`` for ``theta = (a_1..a_D, b_1..b_D, c_1..c_D)``; shape ``(..., 3D, 3D)``.

    ``J = (2/N) sum_n delta_n Hess(y_n) - (2/N) sum_n grad(y_n) grad(y_n)^T``, where the
    Hessian of ``y_n = sum_i c_i b_i P_n(a_i)`` is block-diagonal over i with blocks
    ``[[c b P'', c P', b P'], [c P', 0, P], [b P', P, 0]]``.
    """
    a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
    U = np.asarray(U)
    N = U.shape[0]
    D = a.shape[-1]
    P0, P1, P2 = _poly_and_derivatives(a, U)
    delta = residuals(a, b, c, U, y)  # (..., N)
    b_, c_ = b[..., None, :], c[..., None, :]
    grad = np.concatenate([c_ * b_ * P1, c_ * P0, b_ * P0], axis=-1)  # (..., N, 3D)
    two_over_n = (np.asarray(2, dtype=object) / N) if a.dtype == object else a.dtype.type(2) / a.dtype.type(N)
    J = -two_over_n * (np.swapaxes(grad, -1, -2) @ grad)
    wd = lambda P: (delta[..., :, None] * P).sum(axis=-2) * two_over_n  # noqa: E731  sum_n (2/N) delta_n P_n
    haa, hab, hac, hbc = wd(c_ * b_ * P2), wd(c_ * P1), wd(b_ * P1), wd(P0)
    idx = np.arange(D)
    for (r, s), block in {(0, 0): haa, (0, 1): hab, (1, 0): hab, (0, 2): hac, (2, 0): hac, (1, 2): hbc, (2, 1): hbc}.items():
        J[..., r * D + idx, s * D + idx] = J[..., r * D + idx, s * D + idx] + block
    return J
