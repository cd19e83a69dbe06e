"""Fused batched steppers of the GD rows: the reference objectives and optimisers in a few numpy calls per step.

A stepper holds every run of a batch in one contiguous parameter array ``theta`` (run r is
``theta[r]``) and exposes what the training loop (:mod:`ssmpoison.verify._gd_training`) needs:

* ``loss_and_grad()``: the loss of every run at ``theta`` (shape ``(R,)``), with ``dL/dtheta``
  written into the preallocated ``grad``;
* ``update(t)``: the optimiser's step ``t`` in place;
* ``keep(idx)``: drop finished runs from the batch; ``params_of(theta)``: split ``theta`` into
  the parameters; ``a_bound_ok()``: which runs are finite with ``|a_i| <= diverge_bound``.

They do the arithmetic of :func:`ssmpoison.verify._gd_objectives.beyond_objective` /
``nonlinear_objective`` with :class:`~ssmpoison.verify._gd_optimisers.AdaptiveStep` / ``Adam``
(the formulas of :mod:`ssmpoison.verify._kernels`, written here with ``s_n = dL/dy_n`` and
``q_j = sum_n s_n u^(n)_{H-1-j} = -w_j``): ``dL/da_i = c_i b_i sum_{j>=1} j q_j a_i^(j-1)``,
``dL/db_i = c_i sum_j q_j a_i^j``, ``dL/dc_i = b_i sum_j q_j a_i^j``. One product of ``s`` with
the data columns of :func:`data_columns` gives every data-side sum of a step. They are the only
copies of these formulas besides the kernels: ``benchmarks/gd_rows.py`` measures what they buy
and ``tests/test_gd.py`` holds them to the reference objectives and optimisers.

The beyond row's step (the adaptive step normalised, as in the paper's code, by the norm of
the gradient of the *whole* recurrent matrix when ``full_matrix_norm``:
:func:`ssmpoison.verify._kernels.neg_grad_a_matrix`; B and C set back to ones after it when
``fix_bc``) and the non-linear row's Adam step are applied to every run still in the batch. The
teacher enters through the labels only.

Every array a stepper holds or makes (parameters, data columns, labels, optimiser state, work
arrays, losses, gradients) is of its config's ``dtype``: float64, or float32 for the paper's
arithmetic (the optimisers' constants enter as Python numbers, which numpy applies in the
arrays' type).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ssmpoison.verify._kernels import _hankel_index

if TYPE_CHECKING:  # the configs live in ssmpoison.verify._gd_config
    from ssmpoison.verify._gd_config import BeyondConfig, NonlinearConfig

__all__ = ["data_columns", "keras_adam_step", "BeyondStepper", "NonlinearStepper"]


def data_columns(Ur):
    """``[Ur | Ur' | Uh]`` for reversed inputs ``Ur`` (R, N, H), so that one product with the
    upstream gradient ``s`` gives every data-side sum a step needs:

    * ``s @ Ur = q`` with ``q_j = sum_n s_n u_{H-1-j}``;
    * ``s @ Ur' = q'`` with ``q'_m = (m+1) q_{m+1}`` (``m <= H-2``; 0 for ``m = H-1``), so that
      ``V @ q'`` is ``sum_j j q_j a^(j-1)``;
    * ``s @ Uh`` is the Hankel matrix ``M[m, l] = q_{m+l+1}`` (``m, l = 0..H-2``, zero beyond
      ``H-1``), flattened, used by the full-matrix gradient norm.
    """
    R, N, H = Ur.shape
    shifted = np.zeros_like(Ur)
    shifted[..., : H - 1] = Ur[..., 1:] * np.arange(1.0, H, dtype=Ur.dtype)
    pad = np.concatenate([Ur, np.zeros((R, N, H - 2), dtype=Ur.dtype)], axis=-1)  # column k = Ur[:, k] or 0
    hankel = pad[..., _hankel_index(H).ravel()]
    return np.ascontiguousarray(np.concatenate([Ur, shifted, hankel], axis=-1))


def keras_adam_step(theta, m, v, grad, t: int, lr: float, beta1: float, beta2: float, eps: float, scratch=None):
    """One float32 Adam step in place, in the order of operations of TensorFlow's ``ApplyAdam`` kernel (Keras' Adam).

    With every constant rounded to float32 (``b1 = fl32(beta1)``, ...) and ``p_k = b_k^(t+1)`` (float32 powers):
    ``alpha = (lr sqrt(1 - p_2)) / (1 - p_1)``, ``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``,
    ``theta -= (m alpha) / (sqrt(v) + eps)``: the "epsilon-hat" form of :class:`ssmpoison.verify._gd_optimisers.Adam`,
    whose float64 order of operations differs (the same numbers up to rounding).

    Arguments:
        theta, m, v: parameters and Adam's moments (float32 arrays of one shape), updated in place.
        grad: ``dL/dtheta`` (float32, same shape); overwritten.
        t: the step (0 for the first).
        lr, beta1, beta2, eps: Adam's constants.
        scratch: a work array like ``theta``, or None.
    """
    f = np.float32
    one, b1, b2 = f(1), f(beta1), f(beta2)
    alpha = f(lr) * np.sqrt(one - b2 ** f(t + 1)) / (one - b1 ** f(t + 1))
    tmp = np.empty_like(theta) if scratch is None else scratch
    np.subtract(grad, m, out=tmp)
    tmp *= one - b1
    m += tmp
    np.multiply(grad, grad, out=grad)
    grad -= v
    grad *= one - b2
    v += grad
    np.sqrt(v, out=grad)
    grad += f(eps)
    np.multiply(m, alpha, out=tmp)
    tmp /= grad
    theta -= tmp


class _FullBatchData:
    """Data columns shared by the steppers: reversed inputs, labels and the 2/N of each run."""

    def _set_data(self, Ucat, y, two_over_n):
        H = self.exponents.shape[0]
        self.Ucat, self.y, self.two_over_n = Ucat, y, two_over_n
        self.Ur = Ucat[..., :H]
        self.half_two_over_n = 0.5 * two_over_n
        self.grad = np.empty_like(self.theta)


class BeyondStepper(_FullBatchData):
    """A, B, C of the bare SSM with the adaptive step; ``theta[r] = (a, b, c)`` of shape ``(3, D)``."""

    def __init__(self, config: BeyondConfig, params, U, y, mask):
        self.cfg = config
        dt = np.dtype(config.dtype)
        self.theta = np.ascontiguousarray(np.stack(params, axis=1), dtype=dt)  # (R, 3, D)
        self.g = np.zeros(self.theta.shape[0], dtype=dt)
        self.exponents = np.arange(U.shape[-1], dtype=dt)
        Ucat = data_columns(np.ascontiguousarray(U[..., ::-1], dtype=dt))
        self._set_data(Ucat, y.astype(dt), (2.0 / mask.sum(axis=1)).astype(dt))

    def keep(self, idx):
        self.theta = self.theta[idx]
        self.g = self.g[idx]
        self._set_data(self.Ucat[idx], self.y[idx], self.two_over_n[idx])

    def params_of(self, theta):
        return tuple(theta[:, k].copy() for k in range(3))

    def loss_and_grad(self):
        """Loss of every run at the current parameters; the gradient goes to ``self.grad``."""
        th = self.theta
        R, H = th.shape[0], self.exponents.shape[0]
        V = self.V = np.power(th[:, 0, :, None], self.exponents)  # (R, D, H): a_i^j
        cb = th[:, 1] * th[:, 2]
        K = np.matmul(cb[:, None, :], V)  # (R, 1, H)
        err = np.matmul(self.Ur, K.transpose(0, 2, 1))[..., 0]  # (R, N): outputs
        err -= self.y
        loss = np.matmul(err[:, None, :], err[:, :, None])[:, 0, 0]
        loss *= self.half_two_over_n
        err *= self.two_over_n[:, None]  # s_n = dL/dy_n
        self.sums = sums = np.matmul(err[:, None, :], self.Ucat)[:, 0, :]  # (q, q', Hankel)
        PdP = np.matmul(V, sums[:, : 2 * H].reshape(R, 2, H).transpose(0, 2, 1))  # (R, D, 2)
        grad = self.grad
        np.multiply(cb, PdP[..., 1], out=grad[:, 0])
        np.multiply(th[:, :0:-1], PdP[:, None, :, 0], out=grad[:, 1:])  # (c P, b P)
        return loss

    def update(self, t: int):
        cfg, grad, th = self.cfg, self.grad, self.theta
        R, H = th.shape[0], self.exponents.shape[0]
        sq = np.matmul(grad, grad.transpose(0, 2, 1)).diagonal(axis1=1, axis2=2)  # (R, 3): squared norms
        norms = np.sqrt(sq)
        if cfg.full_matrix_norm:
            Vm = self.V[..., : H - 1]
            G = np.matmul(np.matmul(Vm, self.sums[:, 2 * H :].reshape(R, H - 1, H - 1)), Vm.transpose(0, 2, 1))
            G *= th[:, 1, :, None]
            G *= th[:, 2, None, :]  # dL/dA_ij = b_i c_j (V M V^T)_ij
            G = G.reshape(R, 1, -1)
            norms[:, 0] = np.sqrt(np.matmul(G, G.transpose(0, 2, 1))[:, 0, 0])
        g = self.g
        g *= cfg.beta
        g += (1.0 - cfg.beta) * norms.sum(axis=1)
        lr_t = np.sqrt(g * (1.0 / (1.0 - cfg.beta ** (t + 1))))
        lr_t += cfg.lr_eps
        np.divide(cfg.lr, lr_t, out=lr_t)
        grad *= lr_t[:, None, None]
        th -= grad
        if cfg.fix_bc:  # the paper's fix_B_C: B and C back to ones after every update
            th[:, 1:] = 1.0

    def a_bound_ok(self):
        th = self.theta
        return np.isfinite(th).all(axis=(1, 2)) & (np.abs(th[:, 0]) <= self.cfg.diverge_bound).all(axis=1)


class NonlinearStepper(_FullBatchData):
    """SSM + ReLU head with Adam; ``theta[r]`` is the flat vector ``(a, b, c, W1, W2, W3)``."""

    def __init__(self, config: NonlinearConfig, params, U, y, mask):
        self.cfg = config
        dt = self.dtype = np.dtype(config.dtype)
        R = params[0].shape[0]
        self.shapes = [p.shape[1:] for p in params]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.theta = np.ascontiguousarray(np.concatenate([p.reshape(R, -1) for p in params], axis=1), dtype=dt)
        self.m = np.zeros_like(self.theta)
        self.v = np.zeros_like(self.theta)
        H = U.shape[-1]
        self.exponents = np.arange(H, dtype=dt)
        Ucat = data_columns(np.ascontiguousarray(U[..., ::-1], dtype=dt))[..., : 2 * H]  # (q, q') only
        self._set_data(np.ascontiguousarray(Ucat), y.astype(dt, copy=False), (2.0 / mask.sum(axis=1)).astype(dt))

    def _views(self, flat):
        out, start = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            out.append(flat[:, start : start + size].reshape((flat.shape[0],) + shape))
            start += size
        return out

    def _set_data(self, Ucat, y, two_over_n):
        super()._set_data(Ucat, y, two_over_n)
        self.scratch = np.empty_like(self.theta)
        self.p = self._views(self.theta)
        self.gp = self._views(self.grad)
        # work arrays of the forward and backward passes, reused every step (allocating them
        # afresh costs more than the arithmetic once a batch holds tens of runs)
        R, N = y.shape
        W, dt = self.shapes[3][0], self.dtype
        self.yH, self.f = np.empty((R, N, 1), dtype=dt), np.empty((R, N, 1), dtype=dt)
        self.z1, self.h1, self.z2, self.h2, self.e1, self.e2 = (np.empty((R, N, W), dtype=dt) for _ in range(6))
        self.active_unit = np.empty((R, N, W), dtype=bool)

    def keep(self, idx):
        self.theta, self.m, self.v = self.theta[idx], self.m[idx], self.v[idx]
        self._set_data(self.Ucat[idx], self.y[idx], self.two_over_n[idx])

    def params_of(self, theta):
        return tuple(p.copy() for p in self._views(theta))

    def loss_and_grad(self):
        a, b, c, W1, W2, W3 = self.p
        ga, gb, gc, gW1, gW2, gW3 = self.gp
        R, H = a.shape[0], self.exponents.shape[0]
        V = np.power(a[:, :, None], self.exponents)  # (R, D, H): a_i^j
        cb = b * c
        K = np.matmul(cb[:, None, :], V)  # (R, 1, H)
        yH = np.matmul(self.Ur, K.transpose(0, 2, 1), out=self.yH)  # (R, N, 1)
        z1 = np.multiply(yH, W1[:, None, :], out=self.z1)  # (R, N, W)
        h1 = np.maximum(z1, 0.0, out=self.h1)
        z2 = np.matmul(h1, W2.transpose(0, 2, 1), out=self.z2)
        h2 = np.maximum(z2, 0.0, out=self.h2)
        err = np.matmul(h2, W3[:, :, None], out=self.f)[..., 0]  # (R, N): f
        err -= self.y
        loss = np.matmul(err[:, None, :], err[:, :, None])[:, 0, 0]
        loss *= self.half_two_over_n
        err *= self.two_over_n[:, None]  # s_n = dL/df_n
        np.matmul(err[:, None, :], h2, out=gW3[:, None, :])
        on = self.active_unit
        e2 = np.multiply(err[:, :, None], W3[:, None, :], out=self.e2)
        e2 *= np.greater(z2, 0.0, out=on)
        np.matmul(e2.transpose(0, 2, 1), h1, out=gW2)
        e1 = np.matmul(e2, W2, out=self.e1)
        e1 *= np.greater(z1, 0.0, out=on)
        np.matmul(yH.transpose(0, 2, 1), e1, out=gW1[:, None, :])
        dy = np.matmul(e1, W1[:, :, None], out=self.yH)  # (R, N, 1): s_n xi_n (yH is no longer needed)
        sums = np.matmul(dy.transpose(0, 2, 1), self.Ucat)  # (R, 1, 2H): (q, q')
        PdP = np.matmul(V, sums.reshape(R, 2, H).transpose(0, 2, 1))  # (R, D, 2)
        np.multiply(cb, PdP[..., 1], out=ga)
        np.multiply(c, PdP[..., 0], out=gb)
        np.multiply(b, PdP[..., 0], out=gc)
        return loss

    def update(self, t: int):
        if self.dtype == np.float32:
            self._keras_update(t)
            return
        cfg, grad, m, v = self.cfg, self.grad, self.m, self.v
        scale = cfg.lr * math.sqrt(1 - cfg.beta2 ** (t + 1)) / (1 - cfg.beta1 ** (t + 1))
        tmp = self.scratch
        m *= cfg.beta1
        m += np.multiply(grad, 1.0 - cfg.beta1, out=tmp)
        grad *= grad
        grad *= 1.0 - cfg.beta2
        v *= cfg.beta2
        v += grad
        np.sqrt(v, out=grad)
        grad += cfg.eps
        np.divide(m, grad, out=grad)
        grad *= scale
        self.theta -= grad

    def _keras_update(self, t: int):
        """Adam's step ``t`` in float32 as TensorFlow's kernel (``ApplyAdam``) computes it, operation by operation:
        ``alpha = lr sqrt(1 - b2^(t+1)) / (1 - b1^(t+1))``, ``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``,
        ``theta -= (m alpha) / (sqrt(v) + eps)``, every constant a float32 (:func:`keras_adam_step`)."""
        keras_adam_step(self.theta, self.m, self.v, self.grad, t, self.cfg.lr, self.cfg.beta1, self.cfg.beta2,
                        self.cfg.eps, self.scratch)

    def a_bound_ok(self):
        th = self.theta
        D = self.shapes[0][0]
        return np.isfinite(th).all(axis=1) & (np.abs(th[:, :D]) <= self.cfg.diverge_bound).all(axis=1)
