r"""Anchored coordinates: the flow of A written relative to its largest entry.

The theory row's flows are ill-conditioned because the two largest entries start within a
relative gap of ~1e-9 (note 00 §8): in ``a``-coordinates a float64 state holds that gap to only
~7 significant digits, and every rounding of ``a_1`` and ``a_2`` perturbs it. Anchored
coordinates carry the gaps themselves,

    z_r = a_r,        z_i = a_i - a_r  (i != r),

with ``r`` the anchor (the index of the largest entry at the start), i.e. ``a = T z`` with
``T = I + 1 e_r^T - e_r e_r^T``. When every ``c_i b_i`` equals one number ``kappa`` (B, C fixed;
``kappa = 1`` in the Theorem) the Proposition gives ``da_i/dt = kappa phi(a_i)`` with
``phi(x) = sum_l gamma^(l) x^l``, so

    dz_r/dt = kappa phi(a_r),      dz_i/dt = kappa (phi(a_i) - phi(a_r)) = kappa z_i sum_{l>=1} gamma^(l) h_{l-1}(a_i, a_r),

with ``h_m(x, y) = sum_{k=0}^m x^k y^(m-k)`` (so that ``x^(m+1) - y^(m+1) = (x - y) h_m(x, y)``):
the gaps' velocities are computed as multiples of the gaps, with no cancellation.

The stiff low-rank part of the Jacobian, ``-s G^T G = -s sum_n g_n g_n^T`` in ``a`` (rows
``g_n = dy_H(u^(n))/da``, ``s = 2/N``), becomes ``T^{-1} (-s G^T G) T = -s sum_n p_n q_n^T`` with
``p_n = T^{-1} g_n`` (gaps again by divided differences) and ``q_n = T^T g_n``
(``(q_n)_r = sum_i (g_n)_i``, ``(q_n)_i = (g_n)_i``): no longer symmetric, but with the same
spectrum. :func:`anchored_linear_part` returns it as ``-sum_r mu_r p_r q_r^T`` with
bi-orthonormal ``q_r^T p_s = delta_rs`` (the images of the orthonormal eigenvectors of
``s G^T G``), the form :meth:`ssmpoison.verify._expcoll.ExpColl.integrate` accepts as ``linear_part``.
"""

from __future__ import annotations

import gmpy2
import numpy as np

from ssmpoison.verify import _kernels as kernels
from ssmpoison.verify._numbers import to_working_array

__all__ = ["anchor_index", "to_anchored", "from_anchored", "neg_grad_anchored", "anchored_linear_part", "uniform_gain"]


def uniform_gain(b, c):
    """``kappa`` when every ``c_i b_i`` equals ``kappa`` (anchored coordinates apply), else ``None``."""
    cb = [x * y for x, y in zip(c, b)]
    return cb[0] if all(v == cb[0] for v in cb) else None


def anchor_index(a0) -> np.ndarray:
    """The anchor of each flow: the index of its largest entry; shape ``a0.shape[:-1]``."""
    return np.argmax(np.asarray(np.asarray(a0), dtype=float), axis=-1)


def _mask(r, D):
    return np.arange(D) == np.asarray(r)[..., None]


def _anchor_value(z, r):
    r = np.asarray(r)
    first = r.flat[0] if r.size else 0
    if r.ndim <= z.ndim - 1 and (r.ndim == 0 or bool((r == first).all())):
        return z[..., first : first + 1]  # one anchor for every flow (a single flow): a slice, (..., 1)
    idx = np.broadcast_to(r[..., None], z.shape[:-1] + (1,))
    return np.take_along_axis(z, idx, axis=-1)  # (..., 1)


def to_anchored(a, r):
    """``z = T^{-1} a``: ``z_r = a_r``, ``z_i = a_i - a_r``."""
    a = np.asarray(a)
    return np.where(_mask(r, a.shape[-1]), a, a - _anchor_value(a, r))


def from_anchored(z, r):
    """``a = T z``: ``a_r = z_r``, ``a_i = z_r + z_i`` (rounded once in the working type)."""
    z = np.asarray(z)
    return np.where(_mask(r, z.shape[-1]), z, z + _anchor_value(z, r))


def _gaps(z, r):
    """``z`` with the anchor's entry set to 0: the gaps ``a_i - a_r``."""
    return np.where(_mask(r, z.shape[-1]), z * 0, z)


def _divided(coeffs, a, ar):
    """``sum_{l>=1} coeffs_l h_{l-1}(a_i, a_r)``, i.e. ``(P(a_i) - P(a_r)) / (a_i - a_r)`` for ``P = sum_l coeffs_l x^l``.

    ``coeffs`` has shape ``(..., K, L)`` (K polynomials of degree < L); ``a`` ``(..., D)``, ``ar`` ``(..., 1)``.
    Returns ``(..., K, D)``. Horner's scheme twice: ``b_{L-1} = c_{L-1}``, ``b_l = b_{l+1} a_r + c_l``
    (scalars: the synthetic division of P by ``x - a_r``), then the quotient
    ``sum_{l>=1} b_l a_i^(l-1)`` by Horner in ``a_i``.
    """
    L = coeffs.shape[-1]
    if L < 2:
        return np.zeros(coeffs.shape[:-1] + a.shape[-1:], dtype=a.dtype) * a[..., None, :]
    ar = ar[..., None, :]  # (..., 1, 1)
    b = [None] * L
    b[L - 1] = coeffs[..., L - 1 : L]
    for l in range(L - 2, 0, -1):
        b[l] = b[l + 1] * ar + coeffs[..., l : l + 1]  # (..., K, 1)
    x = a[..., None, :]
    q = b[L - 1] * np.ones_like(x)
    for l in range(L - 2, 0, -1):
        q = q * x + b[l]
    return q


def neg_grad_anchored(z, r, kappa, U, y):
    """``dz/dt = T^{-1}(-dL/da)`` for ``c_i b_i = kappa`` for every i; shape of ``z``."""
    a = from_anchored(z, r)
    H = np.asarray(U).shape[1]
    # residuals with every c_i b_i = kappa: K_j = kappa sum_i a_i^j (kappa factored out of the sum: one
    # product per j, not per entry as in kernels.impulse_response), then the reference outputs
    K = kernels.powers(a, H).sum(axis=-2)
    if kappa != 1:
        K = K * kappa
    delta = np.asarray(y).astype(K.dtype) - kernels.response_outputs(K, U)
    gam = kernels.gamma_coefficients(delta, U)  # (..., H-1)
    ar = _anchor_value(a, r)
    phi_r = (kernels.powers(ar, gam.shape[-1]) * gam[..., None, :]).sum(axis=-1)  # (..., 1)
    gaps = _gaps(z, r) * _divided(gam[..., None, :], a, ar)[..., 0, :]
    return kappa * np.where(_mask(r, a.shape[-1]), phi_r, gaps)


def anchored_linear_part(z, r, kappa, U, scale, *, precision_bits: int):
    """The frozen stiff part ``-scale T^{-1} G^T G T = -sum_r mu_r p_r q_r^T`` in anchored coordinates.

    The eigenvectors ``w_r`` of the ``N x N`` Gram matrix ``scale G G^T`` (float64: any exactly
    bi-orthonormal pair is a valid splitting) give the symmetric splitting's directions
    ``v_r ~ G^T w_r`` in ``a``; they map to ``p_r = T^{-1} v_r = sum_n w_{nr} T^{-1} g_n`` (gaps
    by divided differences) and ``q_r = T^T v_r``, re-bi-orthonormalised in the working
    precision; ``mu_r = scale |G v_r|^2`` (Rayleigh quotient, working precision).

    Arguments:
        z: the state in anchored coordinates, ``(..., D)``, in the working type.
        r: the anchors (:func:`anchor_index`).
        kappa: the common gain ``c_i b_i``.
        U: the ``(N, H)`` inputs, in the working type.
        scale: the loss's weight ``2/N``, in the working type.
        precision_bits: the working precision (the float64 eigenvectors are converted to it).

    Returns:
        ``(mu, P, Q)``: ``mu`` of shape ``(..., R)``, ``P, Q`` of shape ``(..., R, D)``.
    """
    a = from_anchored(z, r)
    D = a.shape[-1]
    ones = np.ones_like(a)
    G = kernels.output_jacobian_a(a, ones * kappa, ones, U)  # (..., N, D)
    G64 = np.asarray(G, dtype=np.float64)
    _, W = np.linalg.eigh(float(scale) * np.einsum("...nd,...md->...nm", G64, G64))  # (..., N, R)
    W = np.asarray(W, dtype=G.dtype) if G.dtype != object else to_working_array(W, precision_bits)
    H = np.asarray(U).shape[1]
    Rm = kernels._reversed_inputs(U)[:, 1:] * np.arange(1, H)  # (N, H-1): coefficients of p_n'
    Rm = np.asarray(Rm, dtype=object) if a.dtype == object else np.asarray(Rm).astype(a.dtype)
    ar = _anchor_value(a, r)
    gapG = kappa * _gaps(z, r)[..., None, :] * _divided(np.broadcast_to(Rm, a.shape[:-1] + Rm.shape), a, ar)
    mask = _mask(r, D)[..., None, :]
    Pn = np.where(mask, G, gapG)  # rows T^{-1} g_n
    Qn = np.where(mask, G.sum(axis=-1, keepdims=True), G)  # rows T^T g_n
    P = (W[..., :, :, None] * Pn[..., :, None, :]).sum(axis=-3)  # (..., R, D)
    Q = (W[..., :, :, None] * Qn[..., :, None, :]).sum(axis=-3)
    P, Q = _biorthonormalise(P, Q)
    GP = (Qn[..., None, :, :] * P[..., :, None, :]).sum(axis=-1)  # (..., R, N): g_n . v_r
    mu = scale * (GP * GP).sum(axis=-1)
    return mu, P, Q


def _biorthonormalise(P, Q):
    """Gram–Schmidt for a pair: ``q_r . p_s = delta_rs`` in the working precision (rows)."""
    R = P.shape[-2]
    ps, qs = [], []
    for k in range(R):
        p, q = P[..., k, :], Q[..., k, :]
        for pp, qq in zip(ps, qs):
            p = p - (qq * p).sum(axis=-1)[..., None] * pp
            q = q - (pp * q).sum(axis=-1)[..., None] * qq
        n2 = (q * p).sum(axis=-1)
        zero = np.asarray(np.asarray(n2, dtype=float) <= 0)
        one = np.ones_like(n2)
        n2 = np.where(zero, one, n2)
        s = np.sqrt(n2) if n2.dtype != object else np.array([gmpy2.sqrt(x) for x in n2.reshape(-1)], dtype=object).reshape(n2.shape)
        p = np.where(zero[..., None], p * 0, p / s[..., None])
        q = np.where(zero[..., None], q * 0, q / s[..., None])
        ps.append(p)
        qs.append(q)
    return np.stack(ps, axis=-2), np.stack(qs, axis=-2)
