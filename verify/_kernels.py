"""The reference formulas of the diagonal SSM in numeric code, generic over the number type.

Every numeric module computes the impulse response, the outputs, the residuals and the
negative gradient of the loss through the functions here (the fused steppers of the GD rows
are the only other copies; each is held to these by a test). They are written only with
NumPy array operations, so the same code runs on ``float64``, ``longdouble`` and ``object``
arrays of ``gmpy2.mpfr`` / ``mpmath.mpf`` / ``Fraction`` (exact). The tests hold them
against the functions generated from the SymPy derivation in :mod:`ssmpoison.theory._derivation`
(``tests/test_backends.py``).

Shapes: parameters ``a, b, c`` are ``(..., D)`` (leading batch axes allowed). The inputs are
either *shared*, ``U`` of shape ``(N, H)`` with ``U[n, k] = u^(n)_k``, or *per run*, ``U`` of
shape ``(..., N, H)`` with the batch axes of the parameters (runs with fewer sequences are
padded with zero rows and zero labels and give their own count in ``samples``). Labels and
residuals are ``(..., N)``. With ``V[..., i, j] = a_i**j``:

* impulse response ``K_j = sum_i c_i b_i a_i**j``;
* output ``y_H(u^(n)) = sum_j K_j u^(n)_{H-1-j}``, residual ``delta_n = y*_n - f(u^(n))``
  (``f = y_H`` for the bare SSM, ``f = g(y_H)`` inside a network ``g``);
* loss ``L_H = (1/N) sum_n delta_n**2``;
* weights ``w_j = (2/N) sum_n xi_n delta_n u^(n)_{H-1-j}`` (``j = 0..H-1``) and
  ``gamma^(l) = (l+1) w_{l+1} = 2(l+1)/N sum_n xi_n delta_n u^(n)_{H-2-l}`` (``l = 0..H-2``),
  with the upstream factor ``xi_n = g'(y_H(u^(n)))`` of a network (``xi = 1`` for the bare SSM);
* the negative gradient (sign convention of every function here: ``-dL/dtheta``, the
  right-hand side of the gradient flow ``dtheta/dt = -grad L_H``)

      -dL/da_i = c_i b_i sum_l gamma^(l) a_i**l,
      -dL/db_i = c_i sum_j w_j a_i**j,      -dL/dc_i = b_i sum_j w_j a_i**j;

* at a diagonal ``A``, the negative gradient with respect to the *full* recurrent matrix,
  ``-dL/dA_pq = b_p c_q sum_{m, l >= 0, m + l <= H-2} a_p**m a_q**l w_{m+l+1}``, whose diagonal
  is ``-dL/da``.

Order of operations: powers by repeated multiplication, ``c_i b_i a_i**j`` summed over i in
index order (:func:`ssmpoison.theory._teacher.impulse_extrapolation_error` evaluates ``K_j`` the
same way, so the two agree bit for bit in every number type).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "powers",
    "impulse_response",
    "response_outputs",
    "outputs",
    "residuals",
    "loss",
    "gamma_coefficients",
    "output_weights",
    "neg_grad_a",
    "neg_grad_abc",
    "neg_gradient",
    "neg_grad_a_matrix",
    "output_jacobian_a",
    "jacobian_a",
    "jacobian_abc",
]


def powers(a, count: int):
    """``V[..., i, j] = a_i**j`` for ``j = 0..count-1``, by repeated multiplication (exact in any type).

    Arguments:
        a: entries, shape ``(..., D)``.
        count: number of powers (``a**0 .. a**(count-1)``).

    Returns:
        ``V`` of shape ``(..., D, count)``.
    """
    a = np.asarray(a)
    V = np.empty(a.shape + (count,), dtype=a.dtype)
    if count:
        V[..., 0] = np.ones_like(a)
    if count > 1:
        V[..., 1] = a
    for j in range(2, count):
        np.multiply(V[..., j - 1], a, out=V[..., j])
    return V


def _reversed_inputs(U):
    """``R[..., n, j] = u^(n)_{H-1-j}``: the input that meets ``K_j``."""
    return np.asarray(U)[..., ::-1]


def _like(M, x):
    """``M`` (inputs, integer weights) converted to the number type of ``x``."""
    return np.asarray(M, dtype=np.asarray(x).dtype)


def _sample_count(U, samples, dtype):
    """``N`` per run in the number type ``dtype``: ``samples`` (shape ``(...)``) or the rows of ``U``."""
    if samples is None:
        N = np.asarray(U).shape[-2]
        return N if dtype == object else dtype.type(N)
    n = np.asarray(samples)
    return np.asarray(n, dtype=object) if dtype == object else n.astype(dtype)


def _input_sums(r, M):
    """``sum_n r[..., n] M[..., n, k]`` for shared ``M`` (N, K) or per-run ``M`` (..., N, K); shape ``(..., K)``."""
    M = np.asarray(M, dtype=object) if r.dtype == object else np.asarray(M).astype(r.dtype)
    if M.ndim == 2:
        return r @ M
    return (r[..., None, :] @ M)[..., 0, :]


def impulse_response(a, b, c, length: int):
    """The impulse response ``K_j = sum_i c_i b_i a_i**j``.

    Arguments:
        a, b, c: parameters, shape ``(..., D)``.
        length: number of lags J (``j = 0..J-1``).

    Returns:
        ``K`` of shape ``(..., J)``.
    """
    cb = np.asarray(c) * np.asarray(b)
    return (cb[..., :, None] * powers(a, length)).sum(axis=-2)


def response_outputs(K, U):
    """The outputs ``y_H(u^(n)) = sum_j K_j u^(n)_{H-1-j}`` of an impulse response.

    Arguments:
        K: ``(K_0, ..., K_{H-1})``, shape ``(..., H)``.
        U: shared inputs ``(N, H)`` or per-run inputs ``(..., N, H)``.

    Returns:
        The outputs, shape ``(..., N)``.
    """
    R = _reversed_inputs(U)
    if R.ndim == 2:
        return K @ _like(R.T, K)
    return (K[..., None, :] @ _like(np.swapaxes(R, -1, -2), K))[..., 0, :]


def outputs(a, b, c, U):
    """The outputs ``y_H(u^(n)) = sum_j K_j u^(n)_{H-1-j}`` of the SSM ``(a, b, c)``.

    Arguments:
        a, b, c: parameters, shape ``(..., D)``.
        U: shared inputs ``(N, H)`` or per-run inputs ``(..., N, H)``.

    Returns:
        The outputs, shape ``(..., N)``.
    """
    K = impulse_response(a, b, c, np.asarray(U).shape[-1])
    return response_outputs(K, U)


def residuals(a, b, c, U, y):
    """The residuals ``delta_n = y*_n - y_H(u^(n))`` of the bare SSM.

    Arguments:
        a, b, c: parameters, shape ``(..., D)``.
        U: shared ``(N, H)`` or per-run ``(..., N, H)`` inputs.
        y: labels ``y*_n``, shape ``(N,)`` or ``(..., N)``.

    Returns:
        ``delta``, shape ``(..., N)``.
    """
    out = outputs(a, b, c, U)
    return np.asarray(y).astype(out.dtype) - out


def loss(a, b, c, U, y):
    """The loss ``L_H = (1/N) sum_n delta_n**2`` of the bare SSM (N = the rows of ``U``).

    Returns:
        ``L_H``, shape ``(...)``.
    """
    d = residuals(a, b, c, U, y)
    return (d * d).sum(axis=-1) / d.shape[-1]


def _upstream(delta, xi):
    delta = np.asarray(delta)
    return delta if xi is None else delta * np.asarray(xi)


def gamma_coefficients(delta, U, xi=None, samples=None):
    """The Proposition's coefficients ``gamma^(l) = 2(l+1)/N sum_n xi_n delta_n u^(n)_{H-2-l}``, ``l = 0..H-2``.

    Arguments:
        delta: residuals ``y*_n - f(u^(n))``, shape ``(..., N)``.
        U: shared ``(N, H)`` or per-run ``(..., N, H)`` inputs.
        xi: upstream factors ``xi_n = g'(y_H(u^(n)))`` (shape ``(..., N)``); None for ``xi = 1``.
        samples: the number N of real sequences per run (shape ``(...)``); None: the rows of ``U``.

    Returns:
        ``gamma``, shape ``(..., H-1)``.
    """
    delta = _upstream(delta, xi)
    U = np.asarray(U)
    H = U.shape[-1]
    R = _reversed_inputs(U)[..., 1:]  # R[..., n, l] = u^(n)_{H-2-l}
    weights = np.arange(1, H, dtype=np.int64) * 2
    N = _sample_count(U, samples, delta.dtype)
    if samples is not None:
        N = N[..., None]
    if delta.dtype == object:
        g = _input_sums(delta, R)
        return g * np.asarray(weights, dtype=object) / N
    g = _input_sums(delta, R)
    return g * weights.astype(delta.dtype) / N


def output_weights(delta, U, xi=None, samples=None):
    """The weights ``w_j = (2/N) sum_n xi_n delta_n u^(n)_{H-1-j}``, ``j = 0..H-1``.

    Arguments and shapes as in :func:`gamma_coefficients`.

    Returns:
        ``w``, shape ``(..., H)``.
    """
    delta = _upstream(delta, xi)
    U = np.asarray(U)
    N = _sample_count(U, samples, delta.dtype)
    if samples is not None:
        N = N[..., None]
    R = _reversed_inputs(U)
    if delta.dtype == object:
        return _input_sums(delta, R) * 2 / N
    return _input_sums(delta, R) * delta.dtype.type(2) / N


def _neg_grad_a_part(b, c, V, gam):
    """``c_i b_i sum_l gamma^(l) a_i**l`` from ``V`` (``a_i**l`` for at least ``H-1`` powers) and ``gamma``."""
    L = gam.shape[-1]
    return np.asarray(c) * np.asarray(b) * (V[..., :, :L] * gam[..., None, :]).sum(axis=-1)


def neg_grad_a(a, b, c, U, y):
    """The Proposition's right-hand side ``da_i/dt = -dL/da_i = c_i b_i sum_l gamma^(l) a_i**l`` of the bare SSM.

    Arguments:
        a, b, c: parameters, shape ``(..., D)``.
        U, y: shared ``(N, H)`` or per-run ``(..., N, H)`` inputs and their labels.

    Returns:
        ``-dL/da``, shape ``(..., D)``.
    """
    U = np.asarray(U)
    H = U.shape[-1]
    delta = residuals(a, b, c, U, y)
    gam = gamma_coefficients(delta, U)
    return _neg_grad_a_part(b, c, powers(a, H - 1), gam)


def neg_gradient(a, b, c, U, delta, xi=None, samples=None):
    """``(-dL/da, -dL/db, -dL/dc)`` for given residuals, optionally through a network's factors ``xi``.

    ``-dL/da_i = c_i b_i sum_l gamma^(l) a_i**l``, ``-dL/db_i = c_i sum_j w_j a_i**j``,
    ``-dL/dc_i = b_i sum_j w_j a_i**j`` with ``gamma`` and ``w`` of :func:`gamma_coefficients`
    and :func:`output_weights`. For the bare SSM ``delta`` are its residuals and ``xi`` is None;
    for ``f = g(y_H)`` they are the network's residuals ``y*_n - f(u^(n))`` and its slopes
    ``xi_n = g'(y_H(u^(n)))``.

    Arguments:
        a, b, c: parameters, shape ``(..., D)``.
        U: shared ``(N, H)`` or per-run ``(..., N, H)`` inputs.
        delta: residuals, shape ``(..., N)`` (0 on padding rows).
        xi: upstream factors, shape ``(..., N)``, or None (``xi = 1``).
        samples: real sequences per run (shape ``(...)``), or None (the rows of ``U``).

    Returns:
        The three negative gradients stacked on axis ``-2``: shape ``(..., 3, D)``.
    """
    U = np.asarray(U)
    H = U.shape[-1]
    a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
    gam = gamma_coefficients(delta, U, xi, samples)
    w = output_weights(delta, U, xi, samples)
    V = powers(a, H)
    da = _neg_grad_a_part(b, c, V, gam)
    Vw = (V * w[..., None, :]).sum(axis=-1)
    return np.stack([da, c * Vw, b * Vw], axis=-2)


def neg_grad_abc(a, b, c, U, y):
    """``(-dL/da, -dL/db, -dL/dc)`` of the bare SSM: :func:`neg_gradient` at its own residuals.

    Arguments:
        a, b, c: parameters, shape ``(..., D)``.
        U, y: shared ``(N, H)`` or per-run ``(..., N, H)`` inputs and their labels.

    Returns:
        Shape ``(..., 3, D)``.
    """
    U = np.asarray(U)
    a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
    return neg_gradient(a, b, c, U, residuals(a, b, c, U, y))


def _hankel_index(horizon: int) -> np.ndarray:
    """``idx[m, l] = m + l + 1`` for ``m, l = 0..H-2`` (entries beyond ``H-1`` point at a zero pad)."""
    m = np.arange(horizon - 1)
    return m[:, None] + m[None, :] + 1


def neg_grad_a_matrix(a, b, c, U, delta, xi=None, samples=None):
    """``-dL/dA`` with respect to the full D×D recurrent matrix, at a diagonal ``A = diag(a)``.

    With the recurrence ``h_t = u_t B + h_{t-1} A`` (row vectors, Keras' ``SimpleRNN``) and
    ``y = h_H C``, ``y = sum_k u_k B A^(H-1-k) C``, so at ``A = diag(a)``

        -dL/dA_pq = b_p c_q sum_{m, l >= 0, m + l <= H-2} a_p**m a_q**l w_{m+l+1}

    with ``w`` of :func:`output_weights`. Its diagonal is ``-dL/da``.

    Arguments:
        as in :func:`neg_gradient` (float arrays).

    Returns:
        Shape ``(..., D, D)``.
    """
    U = np.asarray(U)
    H = U.shape[-1]
    a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
    w = output_weights(delta, U, xi, samples)
    wpad = np.zeros(w.shape[:-1] + (2 * H - 2,), dtype=w.dtype)
    wpad[..., :H] = w
    M = wpad[..., _hankel_index(H)]  # (..., H-1, H-1): M[m, l] = w_{m+l+1}
    V = powers(a, H - 1)
    return b[..., :, None] * (V @ M @ np.swapaxes(V, -1, -2)) * c[..., None, :]


def output_jacobian_a(a, b, c, U):
    """The output Jacobian ``G[..., n, i] = d y_H(u^(n)) / d a_i = c_i b_i sum_l (l+1) a_i**l u^(n)_{H-2-l}``.

    Arguments:
        a, b, c: parameters, shape ``(..., D)``.
        U: shared inputs ``(N, H)``.

    Returns:
        ``G``, shape ``(..., N, D)``.
    """
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
    """The structure of the Jacobian of ``a -> -dL/da``: ``J = diag(d) - (2/N) G^T G``.

    The low-rank part is minus ``2/N`` times the Gauss–Newton matrix; its rank is at most N.

    Arguments:
        a, b, c: parameters, shape ``(..., D)``.
        U, y: shared inputs ``(N, H)`` and labels.

    Returns:
        ``(d, G)`` with ``d_i = c_i b_i sum_l l gamma^(l) a_i**(l-1)`` (shape ``(..., D)``) and
        ``G`` of :func:`output_jacobian_a` (shape ``(..., N, D)``).
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
    """The dense Jacobian of ``theta -> -grad L`` for ``theta = (a_1..a_D, b_1..b_D, c_1..c_D)``.

    ``J = (2/N) sum_n delta_n Hess(y_n) - (2/N) sum_n grad(y_n) grad(y_n)^T``, where the
    Hessian of ``y_n = sum_i c_i b_i P_n(a_i)`` is block-diagonal over i with blocks
    ``[[c b P'', c P', b P'], [c P', 0, P], [b P', P, 0]]``.

    Arguments:
        a, b, c: parameters, shape ``(..., D)``.
        U, y: shared inputs ``(N, H)`` and labels.

    Returns:
        ``J``, shape ``(..., 3D, 3D)``.
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
