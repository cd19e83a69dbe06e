"""Adaptive scaling (AdS) after an SSM on a small robust regression task, against no AdS and a fixed gain.

Model: a diagonal SSM (``a, b, c`` trained, D states) with output ``y = sum_j K_j u_{H-1-j}``, then a head

* ``none``:  ``f(y) = y``;
* ``gain``:  ``f(y) = g y`` (a trained constant scalar);
* ``ads``:   ``f(y) = 2 sigmoid(w y) y`` (the seed's ``act(W·y) ⊙ y`` for one channel, act = sigmoid,
  scaled by 2 so that ``w = 0`` is the identity; ``w`` trained).

Every head is a function of the scalar ``y``, and under ``||delta||_inf <= eps`` the attacked SSM output
ranges exactly over ``[y_0 - R, y_0 + R]``, ``R = eps sum_j |K_j|`` (:mod:`ssmpoison.verify._robust`), so
the worst case of ``(f(y) - t)^2`` is a maximum over that interval: exact at its ends for ``none`` and
``gain`` (a linear head), and for ``ads`` the maximum over a grid of the interval (``grid`` points, ends
included; a lower bound, within ``Lip * R / grid`` of the maximum). Adversarial training minimises the
mean of that worst case by Adam (Keras' defaults, the step decaying linearly to 0; standard training at
``eps = 0``); the gradient is the loss's at the maximiser ``y_0 + s R`` (Danskin),
``d/dtheta (y_0 + s R)`` through ``K``.

Task: a teacher LTI SSM with ``K*_j = 0.9^j - 0.5^j`` (H = 10), inputs ``u ~ N(0, 1)``, labels its outputs.
"""

from __future__ import annotations

import numpy as np

from ssmpoison.theory._validation import require_int
from ssmpoison.verify import _kernels as kernels
from ssmpoison.verify._robust import require_epsilon

__all__ = ["HEADS", "ads_table"]

#: the heads compared
HEADS = ("none", "gain", "ads")


def _head(kind, p, y):
    """``f(y)``, ``df/dy``, ``df/dp`` of a head with parameter ``p`` (unused for ``none``)."""
    if kind == "none":
        return y, np.ones_like(y), np.zeros_like(y)
    if kind == "gain":
        return p * y, np.full_like(y, p), y
    s = 1.0 / (1.0 + np.exp(-p * y))
    return 2 * s * y, 2 * s + 2 * s * (1 - s) * p * y, 2 * s * (1 - s) * y * y


def _worst(kind, p, y0, R, t, grid):
    """The maximiser ``s`` in ``[-1, 1]`` of ``(f(y0 + s R) - t)^2`` on the grid (ends included)."""
    s = np.linspace(-1.0, 1.0, grid)
    Y = y0[:, None] + s[None, :] * R
    f, _, _ = _head(kind, p, Y)
    return s[np.argmax((f - t[:, None]) ** 2, axis=1)]


def _data(rng, n, H):
    K = 0.9 ** np.arange(H) - 0.5 ** np.arange(H)
    U = rng.standard_normal((n, H))
    return U, kernels.response_outputs(K, U)


def _robust_gradient(kind, theta, eps, U, t, grid):
    """The mean worst-case loss and its gradient in ``(a, b, c, p)`` at the grid's maximiser (Danskin)."""
    a, b, c, p = theta
    D, H = a.size, U.shape[1]
    R_ = U[:, ::-1]
    V = kernels.powers(a, H)  # (D, H)
    K = (c * b) @ V
    y0 = R_ @ K
    R = eps * np.abs(K).sum()
    s = _worst(kind, float(p), y0, R, t, grid) if eps > 0 else np.zeros_like(y0)
    f, dfdy, dfdp = _head(kind, float(p), y0 + s * R)
    r = f - t
    up = 2 * r * dfdy / len(t)  # dL/dy per sample
    gK = up @ R_ + (up * s).sum() * eps * np.sign(K)  # dy/dK_j = u_{H-1-j} + s eps sign(K_j)
    dK_da = (c * b)[:, None] * np.concatenate([np.zeros((D, 1)), V[:, :-1] * np.arange(1, H)], axis=1)
    grads = [dK_da @ gK, c * (V @ gK), b * (V @ gK), np.array((2 * r * dfdp).mean() if kind != "none" else 0.0)]
    return float(np.mean(r * r)), grads


def _train(kind, eps, U, t, *, D, seed, epochs, lr, grid):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.1, 0.9, D)
    b = rng.normal(0.0, 0.5, D)
    c = rng.normal(0.0, 0.5, D)
    p = {"none": 0.0, "gain": 1.0, "ads": 0.0}[kind]
    theta = [a, b, c, np.array(p)]
    m = [np.zeros_like(x) for x in theta]
    v = [np.zeros_like(x) for x in theta]
    for step in range(1, epochs + 1):
        grads = _robust_gradient(kind, theta, eps, U, t, grid)[1]
        for k, g in enumerate(grads):
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            theta[k] = theta[k] - lr * (1 - (step - 1) / epochs) * (m[k] / (1 - 0.9**step)) / (np.sqrt(v[k] / (1 - 0.999**step)) + 1e-8)
        theta[0] = np.clip(theta[0], -0.999, 0.999)  # a stable diagonal
    return theta


def _errors(kind, theta, eps, U, t, grid):
    a, b, c, p = theta
    K = kernels.impulse_response(a, b, c, U.shape[1])
    y0 = kernels.response_outputs(K, U)
    clean = float(np.mean((_head(kind, float(p), y0)[0] - t) ** 2))
    R = eps * np.abs(K).sum()
    s = _worst(kind, float(p), y0, R, t, grid)
    robust = float(np.mean((_head(kind, float(p), y0 + s * R)[0] - t) ** 2))
    return clean, robust


def ads_table(train_epsilons=(0.0, 0.1), eval_epsilon: float = 0.1, *, seeds=(0, 1, 2), state_dim: int = 4,
              horizon: int = 10, samples: int = 64, epochs: int = 3000, lr: float = 0.01, grid: int = 401) -> list[dict]:
    """Clean and robust test error of each head, trained with and without adversarial training.

    Arguments:
        train_epsilons: the training budgets (0: standard training).
        eval_epsilon: the budget of the robust test error.
        seeds: the seeds (data and initialisation); the errors are averaged over them.
        state_dim, horizon, samples, epochs, lr, grid: the task's and the training's sizes (module docstring).

    Returns:
        One row per ``(head, train_epsilon)``: ``{"head", "train_epsilon", "clean", "robust", "gain"}`` with the
        mean test errors (MSE) and the mean learned head parameter.
    """
    eval_eps = float(require_epsilon(eval_epsilon, floating=True))
    D = require_int("state_dim", state_dim, minimum=1)
    H = require_int("horizon", horizon, minimum=2)
    rows = []
    for eps in train_epsilons:
        eps = float(require_epsilon(eps, floating=True))
        for kind in HEADS:
            clean, robust, params = [], [], []
            for seed in seeds:
                rng = np.random.default_rng(1000 + seed)
                U, t = _data(rng, samples, H)
                Ut, tt = _data(rng, 1000, H)
                theta = _train(kind, eps, U, t, D=D, seed=seed, epochs=epochs, lr=lr, grid=grid)
                c_, r_ = _errors(kind, theta, eval_eps, Ut, tt, grid)
                clean.append(c_)
                robust.append(r_)
                params.append(float(theta[3]))
            rows.append({"head": kind, "train_epsilon": eps, "clean": float(np.mean(clean)), "robust": float(np.mean(robust)),
                         "head_parameter": float(np.mean(params))})
    return rows
