"""A selective SSM small enough to analyse: an input-dependent step on a diagonal A, under ℓ∞ attack.

The model (Mamba's S6 with one input channel and a few states): with ``A = diag(A_i)``, ``A_i < 0``,

    Delta_k = softplus(w u_k + beta),   x_{k+1} = exp(Delta_k A) x_k + Delta_k B u_k,   y_H(u) = C · x_H,

``x_0 = 0``. It is not linear in ``u`` (the step multiplies the state and the input), so there is no
closed-form worst case; the attack is PGD on ``(y_H(u + delta) - y_H(u))^2`` over ``||delta||_inf <= eps``
with the gradient by reverse accumulation,

    dy/du_k = g_{k+1} · (A exp(Delta_k A) x_k Delta'_k + B (Delta'_k u_k + Delta_k)),   g_k = g_{k+1} exp(Delta_k A),
    g_H = C,   Delta'_k = w sigmoid(w u_k + beta),

and its best value over restarts is a *lower* bound on the worst case. Its LTI counterpart freezes the
step at ``Delta = softplus(beta)`` (the step of a zero input): ``K_j = sum_i C_i Delta B_i exp(Delta A_i)^j``,
worst case exactly ``eps sum_j |K_j|`` (:mod:`ssmpoison.verify._robust`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssmpoison.theory._validation import require_finite_sequence, require_int, require_real
from ssmpoison.verify._budget import budget_expired
from ssmpoison.verify._robust import require_epsilon, worst_case_error

__all__ = ["SelectiveSSM", "selective_output", "selective_input_gradient", "selective_pgd", "selective_growth",
           "fit_growth", "plot_selective_growth"]


@dataclass(frozen=True)
class SelectiveSSM:
    """``A`` (negative entries), ``B``, ``C`` (one per state), and the step's ``w``, ``beta`` (module docstring)."""

    A: tuple = (-0.02, -0.2, -1.0)
    B: tuple = (1.0, 1.0, 1.0)
    C: tuple = (1.0, 1.0, 1.0)
    w: float = 1.0
    beta: float = 0.0

    def __post_init__(self) -> None:
        A = require_finite_sequence("A", self.A)
        if not A or any(v >= 0 for v in A):
            raise ValueError("A must hold at least one entry, all negative (a stable diagonal)")
        object.__setattr__(self, "A", tuple(float(v) for v in A))
        object.__setattr__(self, "B", tuple(float(v) for v in require_finite_sequence("B", self.B, length=len(A))))
        object.__setattr__(self, "C", tuple(float(v) for v in require_finite_sequence("C", self.C, length=len(A))))
        object.__setattr__(self, "w", float(require_real("w", self.w)))
        object.__setattr__(self, "beta", float(require_real("beta", self.beta)))

    def lti_response(self, length: int) -> np.ndarray:
        """``K_j = sum_i C_i Delta_0 B_i exp(Delta_0 A_i)^j`` of the frozen step ``Delta_0 = softplus(beta)``."""
        d = np.logaddexp(0.0, self.beta)
        decay = np.exp(d * np.asarray(self.A))
        return (np.asarray(self.C) * d * np.asarray(self.B)) @ (decay[:, None] ** np.arange(length))


def _steps(model, U):
    z = model.w * U + model.beta
    return np.logaddexp(0.0, z), model.w / (1.0 + np.exp(-z))


def selective_output(model: SelectiveSSM, U) -> np.ndarray:
    """``y_H`` of each row of ``U`` (shape ``(R, H)``)."""
    U = np.atleast_2d(np.asarray(U, dtype=np.float64))
    A, B, C = (np.asarray(v) for v in (model.A, model.B, model.C))
    delta, _ = _steps(model, U)
    x = np.zeros((U.shape[0], A.size))
    for k in range(U.shape[1]):
        x = np.exp(delta[:, k, None] * A) * x + (delta[:, k] * U[:, k])[:, None] * B
    return x @ C


def selective_input_gradient(model: SelectiveSSM, U):
    """``(y_H, dy_H/du)`` for each row of ``U`` (shapes ``(R,)``, ``(R, H)``), by reverse accumulation."""
    U = np.atleast_2d(np.asarray(U, dtype=np.float64))
    A, B, C = (np.asarray(v) for v in (model.A, model.B, model.C))
    delta, slope = _steps(model, U)
    R, H = U.shape
    xs = [np.zeros((R, A.size))]
    for k in range(H):
        xs.append(np.exp(delta[:, k, None] * A) * xs[-1] + (delta[:, k] * U[:, k])[:, None] * B)
    g = np.broadcast_to(C, (R, A.size)).copy()
    grad = np.empty((R, H))
    for k in range(H - 1, -1, -1):
        decay = np.exp(delta[:, k, None] * A)
        dx = A * decay * xs[k] * slope[:, k, None] + B * (slope[:, k] * U[:, k] + delta[:, k])[:, None]
        grad[:, k] = (g * dx).sum(axis=-1)
        g = g * decay
    return xs[-1] @ C, grad


def selective_pgd(model: SelectiveSSM, u, epsilon, *, restarts: int = 20, steps: int = 100, seed: int = 0) -> float:
    """PGD's best ``|y_H(u + delta) - y_H(u)|`` over ``||delta||_inf <= eps`` (a lower bound on the worst case).

    Random starts in the box (the first at the sign of the gradient at ``u``), signed steps of size ``eps/10``,
    clipping; the best value met along every restart. The steps end early when the command's wall-clock
    budget runs out (:func:`~ssmpoison.verify._budget.budget_expired` tells the caller).
    """
    eps = float(require_epsilon(epsilon, floating=True))
    u = np.asarray(u, dtype=np.float64)
    y0 = float(selective_output(model, u[None])[0])
    rng = np.random.default_rng(require_int("seed", seed, minimum=0))
    delta = rng.uniform(-eps, eps, size=(require_int("restarts", restarts, minimum=1), u.size))
    delta[0] = eps * np.sign(selective_input_gradient(model, u[None])[1][0])
    best = 0.0
    for _ in range(require_int("steps", steps, minimum=0) + 1):
        if budget_expired():
            break
        y, grad = selective_input_gradient(model, u[None] + delta)
        best = max(best, float(np.max(np.abs(y - y0))))
        delta = np.clip(delta + eps / 10 * np.sign((y - y0)[:, None] * grad), -eps, eps)
    return best


def selective_growth(horizons=(10, 25, 50, 100, 150, 200), epsilon: float = 0.1, model: SelectiveSSM | None = None, *,
                     seed: int = 0, restarts: int = 20, steps: int = 100) -> list[dict]:
    """Worst-case error against the sequence length: the selective SSM (PGD) and its LTI counterpart (exact).

    The clean input is ``u ~ N(0, 1)`` of the longest horizon (seeded); the horizon ``H`` uses its last ``H`` entries.

    Returns:
        One row per horizon: ``{"horizon", "selective_pgd", "selective_linear" (eps sum_k |dy/du_k| at u),
        "lti_bound" (eps sum_j |K_j| of the frozen step)}``. When the command's wall-clock budget runs out
        the curve stops: the horizons whose PGD ran in full are returned.
    """
    model = SelectiveSSM() if model is None else model
    eps = float(require_epsilon(epsilon, floating=True))
    u_all = np.random.default_rng(require_int("seed", seed, minimum=0)).standard_normal(max(horizons))
    rows = []
    for H in horizons:
        u = u_all[-H:]
        _, grad = selective_input_gradient(model, u[None])
        pgd = selective_pgd(model, u, eps, restarts=restarts, steps=steps, seed=seed)
        if budget_expired():
            break
        rows.append({"horizon": H, "selective_pgd": pgd,
                     "selective_linear": eps * float(np.abs(grad).sum()),
                     "lti_bound": float(worst_case_error(model.lti_response(H), eps, "inf"))})
    return rows


def fit_growth(horizons, values) -> dict:
    """Least-squares fits of ``log v = p log H + q`` (power law) and ``v = s H + r`` (linear).

    Returns:
        ``{"power": p, "slope": s}``; ``p`` is ``None`` when a value is not positive (no power law).
    """
    H = np.asarray(horizons, dtype=float)
    v = np.asarray(values, dtype=float)
    p = float(np.polyfit(np.log(H), np.log(v), 1)[0]) if np.all(v > 0) else None
    s = float(np.polyfit(H, v, 1)[0])
    return {"power": p, "slope": s}


def plot_selective_growth(curves: dict, lti: list[dict], path: str) -> None:
    """A PNG of worst-case error against the horizon: one curve per label of ``curves`` and the LTI bound.

    Arguments:
        curves: ``{label: rows of selective_growth}``.
        lti: rows whose ``"lti_bound"`` is drawn (the frozen step's exact bound).
        path: the image file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, rows in curves.items():
        ax.plot([r["horizon"] for r in rows], [r["selective_pgd"] for r in rows], marker="o", label=label)
    ax.plot([r["horizon"] for r in lti], [r["lti_bound"] for r in lti], "k--", label="LTI (frozen step), exact")
    ax.set_xlabel("sequence length H")
    ax.set_ylabel("worst-case |y_H(u+δ) − y_H(u)|, ε = 0.1")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
