"""The exact SymPy derivation of the diagonal SSM, its loss L_H and its gradient dynamics.

For concrete integers D (state dimension), H (horizon) and N (samples) this module
builds, with symbols a_i, b_i, c_i, inputs u_{n,k} and labels y*_n (note 00 §1–3):

* the impulse response ``K_j = sum_i c_i b_i a_i**j``,
* the outputs ``y_H(u^(n)) = sum_k K_{H-1-k} u_{n,k}`` and residuals ``delta_n = y*_n - y_H``,
* the loss ``L_H = (1/N) sum_n delta_n**2`` and its gradient by ``sympy.diff``,
* the coefficients ``gamma^(l) = 2(l+1)/N sum_n delta_n u_{n,H-2-l}`` (l = 0..H-2),
* the Proposition's right-hand sides ``da_i/dt = c_i b_i sum_l gamma^(l) a_i**l``,
  ``db_i/dt = c_i sum_j w_j a_i**j`` and ``dc_i/dt = b_i sum_j w_j a_i**j`` with
  ``w_j = 2/N sum_n delta_n u_{n,H-1-j}``,

and checks exactly (by polynomial expansion) that ``-dL/dtheta - RHS`` is zero for every
parameter. :func:`derive_nonlinear` does the same for ``f(u) = g(y_H(u))`` with an
arbitrary differentiable ``g``, where every ``delta_n`` is replaced by ``delta_n xi_n``,
``xi_n = g'(y_H(u^(n)))``.

Everything numeric in the project is generated from (or tested against) these
expressions; see :mod:`ssmpoison.verify._backends`.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import sympy as sp

from ssmpoison.theory._validation import require_int

__all__ = [
    "SSMShape",
    "SSMSymbols",
    "Derivation",
    "IdentityCheck",
    "derive",
    "derive_nonlinear",
    "TRAIN_CHOICES",
]

from ssmpoison.theory._training_set import TRAIN_CHOICES  # noqa: E402  (re-exported)


@dataclass(frozen=True)
class SSMShape:
    """Sizes of a derivation: state dimension D >= 1, horizon H >= 2, samples N >= 1.

    ``train`` is ``"a"`` (only A trained, B and C fixed) or ``"abc"`` (all trained).
    """

    state_dim: int
    horizon: int
    samples: int = 1
    train: str = "a"

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dim", require_int("state_dim", self.state_dim, minimum=1))
        object.__setattr__(self, "horizon", require_int("horizon", self.horizon, minimum=2))
        object.__setattr__(self, "samples", require_int("samples", self.samples, minimum=1))
        if self.train not in TRAIN_CHOICES:
            raise ValueError(f"train must be one of {', '.join(TRAIN_CHOICES)}, got {self.train!r}")

    @property
    def parameters(self) -> tuple[str, ...]:
        """Names of the trained parameter groups, in the order used everywhere ("a", then "b", "c")."""
        return ("a",) if self.train == "a" else ("a", "b", "c")


@dataclass(frozen=True)
class SSMSymbols:
    """The symbols of a derivation. Indices are 1-based for a, b, c and samples, 0-based for time."""

    a: tuple[sp.Symbol, ...]
    b: tuple[sp.Symbol, ...]
    c: tuple[sp.Symbol, ...]
    u: tuple[tuple[sp.Symbol, ...], ...]  # u[n][k] = u^(n+1)_k
    y: tuple[sp.Symbol, ...]  # labels y*_n
    delta: tuple[sp.Symbol, ...]  # residual placeholders, for display of the gamma-form
    gamma: tuple[sp.Symbol, ...]  # gamma^(l) placeholders, l = 0..H-2

    @classmethod
    def make(cls, shape: SSMShape) -> "SSMSymbols":
        D, H, N = shape.state_dim, shape.horizon, shape.samples
        return cls(
            a=tuple(sp.Symbol(f"a_{i}", real=True) for i in range(1, D + 1)),
            b=tuple(sp.Symbol(f"b_{i}", real=True) for i in range(1, D + 1)),
            c=tuple(sp.Symbol(f"c_{i}", real=True) for i in range(1, D + 1)),
            u=tuple(tuple(sp.Symbol(f"u_{{{n},{k}}}", real=True) for k in range(H)) for n in range(1, N + 1)),
            y=tuple(sp.Symbol(f"y^*_{n}", real=True) for n in range(1, N + 1)),
            delta=tuple(sp.Symbol(f"delta_{n}", real=True) for n in range(1, N + 1)),
            gamma=tuple(sp.Symbol(f"gamma_{l}", real=True) for l in range(H - 1)),
        )

    def parameter(self, name: str) -> tuple[sp.Symbol, ...]:
        return {"a": self.a, "b": self.b, "c": self.c}[name]


@dataclass(frozen=True)
class IdentityCheck:
    """Outcome of the exact check ``expand(-dL/dtheta_i - RHS_i) == 0`` for one parameter group."""

    parameter: str
    zero: bool
    seconds: float
    method: str = "sympy.expand of the difference of polynomials, compared with 0"


@dataclass(frozen=True)
class Derivation:
    """All exact expressions of one :class:`SSMShape` (see the module docstring)."""

    shape: SSMShape
    symbols: SSMSymbols
    impulse_response: tuple[sp.Expr, ...]  # K_0 .. K_{H-1}
    outputs: tuple[sp.Expr, ...]  # y_H(u^(n))
    residuals: tuple[sp.Expr, ...]  # delta_n
    loss: sp.Expr
    neg_gradient: dict = field(repr=False)  # name -> tuple of -dL/dtheta_i (sympy.diff of the loss)
    gamma: tuple[sp.Expr, ...]  # gamma^(l) in terms of the model (l = 0..H-2)
    gamma_form: tuple[sp.Expr, ...]  # gamma^(l) in terms of the residual symbols delta_n
    proposition: dict = field(repr=False)  # name -> tuple of closed-form RHS in terms of gamma symbols
    weights: tuple[sp.Expr, ...] = ()  # w_j (b/c dynamics), in terms of delta_n
    xi: tuple[sp.Expr, ...] | None = None  # g'(y_H(u^(n))) for the non-linear variant

    def substitute_model(self, expr: sp.Expr) -> sp.Expr:
        """Replace the placeholder symbols gamma_l, w_j and delta_n by their model expressions."""
        sym = self.symbols
        gamma_map = dict(zip(sym.gamma, self.gamma))
        delta_map = dict(zip(sym.delta, self.residuals))
        return expr.xreplace(gamma_map).xreplace(delta_map)

    def proposition_model(self, name: str) -> tuple[sp.Expr, ...]:
        """The Proposition's RHS for parameter group ``name`` with gamma and delta substituted."""
        return tuple(self.substitute_model(e) for e in self.proposition[name])

    def verify(self) -> tuple[IdentityCheck, ...]:
        """Check exactly, for every trained parameter group, that -dL/dtheta - RHS expands to 0."""
        checks = []
        for name in self.shape.parameters:
            start = time.perf_counter()
            zero = all(
                sp.expand(g - r) == 0
                for g, r in zip(self.neg_gradient[name], self.proposition_model(name))
            )
            checks.append(IdentityCheck(name, zero, time.perf_counter() - start))
        return tuple(checks)


def _reversed(seq, j):
    """Input that meets K_j in a sequence of length H: u_{H-1-j}."""
    return seq[len(seq) - 1 - j]


def _build(shape: SSMShape, g: sp.Function | None) -> Derivation:
    sym = SSMSymbols.make(shape)
    D, H, N = shape.state_dim, shape.horizon, shape.samples
    a, b, c = sym.a, sym.b, sym.c
    K = tuple(sp.Add(*[c[i] * b[i] * a[i] ** j for i in range(D)]) for j in range(H))
    outputs = tuple(sp.Add(*[K[j] * _reversed(sym.u[n], j) for j in range(H)]) for n in range(N))
    if g is None:
        predictions, xi = outputs, None
    else:
        predictions = tuple(g(o) for o in outputs)
        x = sp.Dummy("x")
        xi = tuple(sp.Subs(sp.Derivative(g(x), x), x, o) for o in outputs)
    residuals = tuple(sym.y[n] - predictions[n] for n in range(N))
    loss = sp.Rational(1, N) * sp.Add(*[r**2 for r in residuals])

    neg_gradient = {name: tuple(-sp.diff(loss, p) for p in sym.parameter(name)) for name in shape.parameters}

    scaled = sym.delta if xi is None else tuple(d * x_ for d, x_ in zip(sym.delta, xi))
    gamma_form = tuple(
        sp.Rational(2 * (l + 1), N) * sp.Add(*[scaled[n] * sym.u[n][H - 2 - l] for n in range(N)])
        for l in range(H - 1)
    )
    delta_map = dict(zip(sym.delta, residuals))
    gamma = tuple(e.xreplace(delta_map) for e in gamma_form)
    weights = tuple(
        sp.Rational(2, N) * sp.Add(*[scaled[n] * _reversed(sym.u[n], j) for n in range(N)]) for j in range(H)
    )
    poly_gamma = [sp.Add(*[sym.gamma[l] * a[i] ** l for l in range(H - 1)]) for i in range(D)]
    poly_w = [sp.Add(*[weights[j] * a[i] ** j for j in range(H)]) for i in range(D)]
    proposition = {"a": tuple(c[i] * b[i] * poly_gamma[i] for i in range(D))}
    if shape.train == "abc":
        proposition["b"] = tuple(c[i] * poly_w[i] for i in range(D))
        proposition["c"] = tuple(b[i] * poly_w[i] for i in range(D))
    return Derivation(
        shape=shape,
        symbols=sym,
        impulse_response=K,
        outputs=outputs,
        residuals=residuals,
        loss=loss,
        neg_gradient=neg_gradient,
        gamma=gamma,
        gamma_form=gamma_form,
        proposition=proposition,
        weights=weights,
        xi=xi,
    )


@functools.lru_cache(maxsize=64)
def _derive_cached(state_dim: int, horizon: int, samples: int, train: str) -> Derivation:
    return _build(SSMShape(state_dim, horizon, samples, train), None)


def derive(state_dim: int, horizon: int, samples: int = 1, train: str = "a") -> Derivation:
    """The exact derivation for the bare SSM (cached per shape). Raises ``ValueError`` on bad sizes."""
    shape = SSMShape(state_dim, horizon, samples, train)
    return _derive_cached(shape.state_dim, shape.horizon, shape.samples, shape.train)


def derive_nonlinear(state_dim: int, horizon: int, samples: int = 1, train: str = "a") -> Derivation:
    """The derivation for ``f(u) = g(y_H(u))`` with an undefined differentiable function ``g``.

    The loss is ``(1/N) sum_n (y*_n - g(y_H(u^(n))))**2``; the Proposition holds with
    ``delta_n`` replaced by ``delta_n xi_n``, ``xi_n = g'(y_H(u^(n)))`` (note 00 §3).
    """
    shape = SSMShape(state_dim, horizon, samples, train)
    return _build(shape, sp.Function("g"))
