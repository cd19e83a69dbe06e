"""Optimisers of the GD rows in reference form: one state per run, frozen runs left untouched.

The fused steppers (:mod:`ssmpoison.verify._gd_steppers`) apply the same updates in place on
one contiguous array; tests hold them to these. Both optimisers keep their state in the type of
the parameters (float64, or float32 for the paper's arithmetic); their constants are Python
numbers, which numpy applies in that type.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["AdaptiveStep", "Adam"]


def _where(active, new, old):
    """``new`` for active runs, ``old`` for frozen ones (broadcast over trailing axes)."""
    return np.where(active.reshape(active.shape + (1,) * (new.ndim - 1)), new, old)


class AdaptiveStep:
    """The adaptive step of Cohen-Karlik et al. (appendix D.2), one state per run.

    ``g_t = beta g_{t-1} + (1-beta) sum_p ||dL/dp||`` (``g_{-1} = 0``),
    ``lr_t = lr / (sqrt(g_t / (1 - beta^(t+1))) + eps)``, ``p <- p - lr_t dL/dp``.

    Arguments:
        runs: R, the number of runs.
        lr, beta, eps: the step's constants.
        dtype: the type of the state ``g`` (that of the parameters: ``"float64"`` or ``"float32"``).
    """

    def __init__(self, runs: int, lr: float, beta: float = 0.8, eps: float = 1e-6, dtype: str = "float64"):
        self.lr, self.beta, self.eps = lr, beta, eps
        self.g = np.zeros(runs, dtype=dtype)

    def step_sizes(self, grads, t: int, active, norms=None):
        """Update ``g`` for the active runs and return ``lr_t`` per run.

        Arguments:
            grads: ``dL/dp`` for each parameter p, each ``(R, ...)``.
            t: the step (0 for the first update).
            active: ``(R,)`` booleans; frozen runs keep ``g``.
            norms: ``(R,)`` replacing ``sum_p ||dL/dp||`` (e.g. with the full-matrix norm of the
                recurrent matrix's gradient), or None.

        Returns:
            ``lr_t``, shape ``(R,)``.
        """
        if norms is None:
            norms = sum(np.sqrt((gr * gr).reshape(len(gr), -1).sum(axis=1)) for gr in grads)
        self.g = np.where(active, self.beta * self.g + (1 - self.beta) * norms, self.g)
        return self.lr / (np.sqrt(self.g / (1 - self.beta ** (t + 1))) + self.eps)

    def step(self, params, grads, t: int, active, norms=None):
        """One update ``p <- p - lr_t dL/dp`` of the active runs.

        Returns:
            The new parameters (a list, one array per parameter).
        """
        lr_t = self.step_sizes(grads, t, active, norms)
        return [_where(active, p - lr_t.reshape((-1,) + (1,) * (p.ndim - 1)) * gr, p) for p, gr in zip(params, grads)]


class Adam:
    """Adam in Keras' form, one state per run.

    ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``,
    ``p <- p - lr sqrt(1-b2^(t+1))/(1-b1^(t+1)) m / (sqrt(v) + eps)``: the "epsilon-hat" form, with
    ``eps`` added to ``sqrt(v)`` rather than to the bias-corrected ``sqrt(v_hat)`` (Keras' default
    ``eps = 1e-7``). Float32 parameters take the step in TensorFlow's float32 order of operations
    (:func:`ssmpoison.verify._gd_steppers.keras_adam_step`).

    Arguments:
        params: the initial parameters (shapes and type of the state).
        lr, beta1, beta2, eps: Adam's constants.
    """

    def __init__(self, params, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, params, grads, t: int, active):
        """One update of the active runs at step ``t`` (0 for the first).

        Returns:
            The new parameters (a list).
        """
        if all(p.dtype == np.float32 for p in params):  # TensorFlow's float32 kernel, operation by operation
            from ssmpoison.verify._gd_steppers import keras_adam_step

            out = []
            for k, (p, gr) in enumerate(zip(params, grads)):
                new, m, v, g = p.copy(), self.m[k].copy(), self.v[k].copy(), gr.copy()
                keras_adam_step(new, m, v, g, t, self.lr, self.beta1, self.beta2, self.eps)
                self.m[k], self.v[k] = _where(active, m, self.m[k]), _where(active, v, self.v[k])
                out.append(_where(active, new, p))
            return out
        scale = self.lr * math.sqrt(1 - self.beta2 ** (t + 1)) / (1 - self.beta1 ** (t + 1))
        out = []
        for k, (p, gr) in enumerate(zip(params, grads)):
            self.m[k] = _where(active, self.beta1 * self.m[k] + (1 - self.beta1) * gr, self.m[k])
            self.v[k] = _where(active, self.beta2 * self.v[k] + (1 - self.beta2) * gr * gr, self.v[k])
            out.append(_where(active, p - scale * self.m[k] / (np.sqrt(self.v[k]) + self.eps), p))
        return out
