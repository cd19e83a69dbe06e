"""The bias-free ReLU head of the "non-linear" row, with hand-written backprop.

The head maps the SSM's scalar output ``y`` to

    z1 = W1 y,   h1 = relu(z1),   z2 = W2 h1,   h2 = relu(z2),   g(y) = W3 · h2,

with ``W1`` of shape ``(width,)`` (the 1→width layer), ``W2`` of shape ``(width, width)``
(``z2_p = sum_q W2[p, q] h1_q``) and ``W3`` of shape ``(width,)`` (the linear head).
Every array may carry leading run axes ``(R, ...)``; ``y`` is ``(R, N)``.

Backprop (``relu'(z) = 1[z > 0]``), for an upstream gradient ``s_n = dL/dg(y_n)``:

    dL/dW3 = sum_n s_n h2_n,            e2 = s_n W3 * 1[z2_n > 0],
    dL/dW2[p, q] = sum_n e2_{n,p} h1_{n,q},   e1 = (W2^T e2_n) * 1[z1_n > 0],
    dL/dW1 = sum_n e1_n y_n,            dL/dy_n = W1 · e1_n = s_n g'(y_n).

The last line gives the SSM part its upstream factor ``xi_n = g'(y_H(u^(n)))``
(:func:`ssmpoison.verify._kernels.neg_gradient`). These are the reference forms; the fused
non-linear stepper (:mod:`ssmpoison.verify._gd_steppers`) repeats them in place and a test
holds it to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MLPCache", "mlp_forward", "mlp_backward", "teacher_weights"]


@dataclass(frozen=True)
class MLPCache:
    """Intermediate values of :func:`mlp_forward` needed by :func:`mlp_backward` (all ``(R, N, ...)``)."""

    y: np.ndarray
    z1: np.ndarray
    h1: np.ndarray
    z2: np.ndarray
    h2: np.ndarray


def mlp_forward(weights, y):
    """The head ``g(y) = W3 · relu(W2 relu(W1 y))`` for every run and sequence.

    Arguments:
        weights: ``(W1, W2, W3)`` with shapes ``(R, W)``, ``(R, W, W)``, ``(R, W)``.
        y: SSM outputs, shape ``(R, N)``.

    Returns:
        ``(g of shape (R, N), cache)``, the cache for :func:`mlp_backward`.
    """
    W1, W2, W3 = weights
    y = np.asarray(y)
    z1 = y[..., :, None] * W1[..., None, :]
    h1 = np.maximum(z1, 0.0)
    z2 = h1 @ np.swapaxes(W2, -1, -2)
    h2 = np.maximum(z2, 0.0)
    g = (h2 * W3[..., None, :]).sum(axis=-1)
    return g, MLPCache(y, z1, h1, z2, h2)


def mlp_backward(weights, cache: MLPCache, upstream):
    """Backprop through the head (formulas in the module docstring).

    Arguments:
        weights: as in :func:`mlp_forward`.
        cache: the cache :func:`mlp_forward` returned.
        upstream: ``upstream[r, n] = dL/dg(y_n)``, shape ``(R, N)`` (ones give ``dy = g'(y)``).

    Returns:
        ``((dL/dW1, dL/dW2, dL/dW3), dy)`` with ``dy[r, n] = dL/dy_n = upstream[r, n] g'(y_n)``.
    """
    W1, W2, W3 = weights
    s = np.asarray(upstream)[..., :, None]  # (R, N, 1)
    dW3 = (s * cache.h2).sum(axis=-2)
    e2 = s * W3[..., None, :] * (cache.z2 > 0)
    dW2 = np.swapaxes(e2, -1, -2) @ cache.h1
    e1 = (e2 @ W2) * (cache.z1 > 0)
    dW1 = (e1 * cache.y[..., :, None]).sum(axis=-2)
    dy = (e1 * W1[..., None, :]).sum(axis=-1)
    return (dW1, dW2, dW3), dy


def teacher_weights(width: int):
    """The teacher head of the non-linear row.

    Arguments:
        width: W, the head's width.

    Returns:
        ``(W1, W2, W3) = (1, I, 1/2)`` with shapes ``(W,)``, ``(W, W)``, ``(W,)``, so that
        ``g*(y) = (W/2) relu(y)``.
    """
    return np.ones(width), np.eye(width), np.full(width, 0.5)
