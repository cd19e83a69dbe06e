"""Reference objectives of the GD rows: the loss of a padded batch and its gradient, from :mod:`ssmpoison.verify._kernels`.

A batch holds R runs with per-run inputs ``U`` (R, N_max, H), labels ``y`` (R, N_max) and a
``mask`` (1 on the ``N_r`` real sequences of run r, 0 on padding). The loss of run r is

    L_r = (1/N_r) sum_n (f_r(u^(r,n)) - y*^(r,n))^2,

``f = y_H`` for the bare SSM and ``f = g(y_H)`` for the SSM inside the ReLU head g. The SSM's
part of the gradient is ``-``:func:`ssmpoison.verify._kernels.neg_gradient` with the run's
residuals and, in the network, the head's slopes ``xi_n = g'(y_H(u^(n)))``; the head's from
:func:`ssmpoison.verify._mlp.mlp_backward`. These are what the optimisers take (``dL/dtheta``,
not its negative). The fused steppers (:mod:`ssmpoison.verify._gd_steppers`) do the same
arithmetic in fewer operations; tests hold them to these.
"""

from __future__ import annotations

import numpy as np

from ssmpoison.verify import _kernels as kernels
from ssmpoison.verify._mlp import mlp_backward, mlp_forward

__all__ = ["beyond_objective", "nonlinear_objective"]


def beyond_objective(params, U, y, mask):
    """Loss and gradient of the bare SSM for every run of a padded batch.

    Arguments:
        params: ``[a, b, c]``, each ``(R, D)``.
        U: inputs ``(R, N_max, H)``, zero on padding rows.
        y: labels ``(R, N_max)``, zero on padding rows.
        mask: ``(R, N_max)``, 1 on real rows.

    Returns:
        ``(loss of shape (R,), [dL/da, dL/db, dL/dc])``.
    """
    a, b, c = params
    n = mask.sum(axis=1)
    delta = (y - kernels.outputs(a, b, c, U)) * mask
    loss = (delta * delta).sum(axis=1) / n
    neg = kernels.neg_gradient(a, b, c, U, delta, samples=n)
    return loss, [-neg[..., k, :] for k in range(3)]


def nonlinear_objective(params, U, y, mask):
    """Loss and gradient of the SSM + ReLU head for every run of a padded batch.

    The SSM's gradient is the bare SSM's with ``delta_n`` replaced by ``delta_n xi_n``,
    ``xi_n = g'(y_H(u^(n)))``.

    Arguments:
        params: ``[a, b, c, W1, W2, W3]`` with shapes ``(R, D)`` ×3, ``(R, W)``, ``(R, W, W)``, ``(R, W)``.
        U, y, mask: as in :func:`beyond_objective`.

    Returns:
        ``(loss of shape (R,), [dL/da, dL/db, dL/dc, dL/dW1, dL/dW2, dL/dW3])``.
    """
    a, b, c, *weights = params
    n = mask.sum(axis=1)
    f, cache = mlp_forward(weights, kernels.outputs(a, b, c, U))
    delta = (y - f) * mask
    loss = (delta * delta).sum(axis=1) / n
    dweights, _ = mlp_backward(weights, cache, -2.0 * delta / n[:, None])
    _, xi = mlp_backward(weights, cache, np.ones_like(f))
    neg = kernels.neg_gradient(a, b, c, U, delta, xi, samples=n)
    return loss, [*(-neg[..., k, :] for k in range(3)), *dweights]
