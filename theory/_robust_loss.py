"""The exact SymPy derivation of the robust loss of the diagonal SSM and its gradient in A (B, C fixed).

An attack with budget ``||delta||_inf <= eps`` (or ``||delta||_2 <= eps``) on the input ``u^(n)``
moves the output ``y_H(u^(n)) = sum_j K_j u^(n)_{H-1-j}`` by at most ``eps S`` with
``S = sum_j |K_j|`` (or ``S = ||K||_2``), attained (:mod:`ssmpoison.verify._robust`), so the
adversarial (worst-case) loss is the closed form

    L_rob = (1/N) sum_n (|r_n| + eps S)**2,    r_n = y_H(u^(n)) - y*_n,

which is ``L_H`` at ``eps = 0``. :func:`derive_robust` builds it for concrete ``D, H, N`` with
the symbols of :mod:`ssmpoison.theory._derivation` (``a_i``, ``b_i``, ``c_i``, ``u_{n,k}``,
``y*_n``) and a symbol ``epsilon``, differentiates it by ``sympy.diff``
(``d|x|/dx = sign(x)`` for real ``x``), and states the closed form the numeric code implements:

    -dL_rob/da_i = -(2/N) sum_n (|r_n| + eps S) (sign(r_n) G_{n,i} + eps dS/da_i),
    G_{n,i} = dy_H(u^(n))/da_i = c_i b_i sum_{j>=1} j a_i**(j-1) u^(n)_{H-1-j},
    dS/da_i = sum_{j>=1} s_j c_i b_i j a_i**(j-1),   s_j = sign(K_j) (ℓ∞) or K_j / ||K||_2 (ℓ2).

With ``smoothing = True`` every ``|x|`` is replaced by ``sqrt(x**2 + eta**2)`` (symbol ``eta``),
``sign(x)`` by ``x / sqrt(x**2 + eta**2)``; ``0 <= sqrt(x**2 + eta**2) - |x| <= eta``. ``|x|`` is
not differentiable at ``x = 0``: the exact gradient (``smoothing = False``) holds away from zero
residuals ``r_n`` and (ℓ∞) zero entries ``K_j``, where ``sign`` is the derivative.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import sympy as sp

from ssmpoison.theory._derivation import derive
from ssmpoison.theory._validation import require_int

__all__ = ["RobustDerivation", "derive_robust", "ROBUST_NORMS"]

#: the budgets of the robust loss: ``"inf"`` (S = ||K||_1) and ``"2"`` (S = ||K||_2)
ROBUST_NORMS = ("inf", "2")


@dataclass(frozen=True)
class RobustDerivation:
    """The robust loss of one shape, its gradient by ``sympy.diff`` and the closed form (module docstring)."""

    state_dim: int
    horizon: int
    samples: int
    norm: str
    smoothing: bool
    a: tuple
    b: tuple
    c: tuple
    u: tuple
    y: tuple
    epsilon: sp.Symbol
    eta: sp.Symbol | None
    impulse_response: tuple
    residuals: tuple  # r_n = y_H(u^(n)) - y*_n
    attack_size: sp.Expr  # S
    loss: sp.Expr
    neg_gradient: tuple = field(repr=False)  # -dL_rob/da_i by sympy.diff
    closed_form: tuple = field(repr=False)  # the module docstring's formula

    def verify(self) -> bool:
        """``-dL_rob/da_i`` (``sympy.diff``) minus the closed form simplifies to 0 for every i."""
        return all(sp.simplify(g - f) == 0 for g, f in zip(self.neg_gradient, self.closed_form))

    def symbols(self) -> dict:
        """The symbols by name: ``a``, ``b``, ``c`` (tuples), ``u`` (rows), ``y``, ``epsilon``, ``eta``."""
        return {"a": self.a, "b": self.b, "c": self.c, "u": self.u, "y": self.y, "epsilon": self.epsilon, "eta": self.eta}


@functools.lru_cache(maxsize=32)
def derive_robust(state_dim: int, horizon: int, samples: int = 1, norm: str = "inf", smoothing: bool = False) -> RobustDerivation:
    """The exact robust loss ``(1/N) sum_n (|r_n| + eps S)**2`` and its gradient in A (B, C fixed).

    Arguments:
        state_dim: D >= 1.
        horizon: H >= 2.
        samples: N >= 1.
        norm: ``"inf"`` (``S = sum_j |K_j|``) or ``"2"`` (``S = ||K||_2``).
        smoothing: replace ``|x|`` by ``sqrt(x**2 + eta**2)`` (module docstring).

    Returns:
        The :class:`RobustDerivation` (cached per arguments).

    Raises:
        ValueError: naming ``state_dim``, ``horizon``, ``samples`` or ``norm``.
    """
    D = require_int("state_dim", state_dim, minimum=1)
    H = require_int("horizon", horizon, minimum=2)
    N = require_int("samples", samples, minimum=1)
    if norm not in ROBUST_NORMS:
        raise ValueError(f"norm must be one of {', '.join(ROBUST_NORMS)}, got {norm!r}")
    base = derive(D, H, N, "a")
    sym = base.symbols
    eps = sp.Symbol("epsilon", nonnegative=True)
    eta = sp.Symbol("eta", positive=True) if smoothing else None

    def absolute(x):
        return sp.sqrt(x**2 + eta**2) if smoothing else sp.Abs(x)

    def sign(x):
        return x / sp.sqrt(x**2 + eta**2) if smoothing else sp.sign(x)

    K = base.impulse_response
    r = tuple(base.outputs[n] - sym.y[n] for n in range(N))
    if norm == "inf":
        S = sp.Add(*[absolute(k) for k in K])
        weights = tuple(sign(k) for k in K)
    else:
        S = sp.sqrt(sp.Add(*[k**2 for k in K]))
        weights = tuple(k / S for k in K)
    loss = sp.Rational(1, N) * sp.Add(*[(absolute(rn) + eps * S) ** 2 for rn in r])
    a, b, c = sym.a, sym.b, sym.c
    neg_gradient = tuple(-sp.diff(loss, a[i]) for i in range(D))

    def dK(j, i):
        return c[i] * b[i] * j * a[i] ** (j - 1) if j >= 1 else sp.Integer(0)

    closed = []
    for i in range(D):
        dS = sp.Add(*[weights[j] * dK(j, i) for j in range(H)])
        terms = []
        for n in range(N):
            G = sp.Add(*[dK(j, i) * sym.u[n][H - 1 - j] for j in range(H)])
            terms.append((absolute(r[n]) + eps * S) * (sign(r[n]) * G + eps * dS))
        closed.append(-sp.Rational(2, N) * sp.Add(*terms))
    return RobustDerivation(D, H, N, norm, bool(smoothing), a, b, c, sym.u, sym.y, eps, eta, K, r, S, loss,
                            neg_gradient, tuple(closed))
