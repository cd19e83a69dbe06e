"""Adversarial robustness of a linear time-invariant SSM: the exact worst case, and PGD against it.

The SSM ``x_{k+1} = A x_k + B u_k``, ``y = C x_H`` read at the horizon H (``x_0 = 0``) is linear
in its input,

    y_H(u) = sum_{j=0}^{H-1} K_j u_{H-1-j},    K_j = C A^j B,

so a perturbation ``delta`` of the input moves the output by ``sum_j K_j delta_{H-1-j}`` and, by
Hölder's inequality (attained), the worst-case output error against a target ``t`` is

    max_{||delta||_inf <= eps} |y_H(u + delta) - t| = |y_H(u) - t| + eps sum_j |K_j|,
        attained by delta_k = eps s sign(K_{H-1-k}),
    max_{||delta||_2 <= eps}   |y_H(u + delta) - t| = |y_H(u) - t| + eps ||K||_2,
        attained by delta_k = eps s K_{H-1-k} / ||K||_2,

with ``s = sign(y_H(u) - t)`` (``s = 1`` at a zero residual, and without a target, where the
error is the output's deviation ``|y_H(u + delta) - y_H(u)|``). Every function of the closed
form is generic over the number type: ``int``/``Fraction`` entries give exact rationals for the
ℓ∞ budget and exact SymPy numbers (a square root) for the ℓ2 budget.

Projected gradient ascent (PGD: random start in the ball, ``steps`` signed (ℓ∞) or normalised
(ℓ2) gradient steps of the squared error, each followed by the projection onto the ball; the
best of ``restarts`` starts) is the attack a deep-learning experiment would run; it is float64
and seeded. Without a random start at a zero residual the gradient of the squared error,
``2 (y_H(u + delta) - t) K_rev``, is zero at ``delta = 0``, so PGD stays there.

Inside the paper's bias-free ReLU head ``g(y) = W3 · relu(W2 relu(W1 y))``
(:mod:`ssmpoison.verify._mlp`) the attacked output ranges over the interval
``[y_H(u) - R, y_H(u) + R]`` with ``R = eps ||K||_*`` (the dual norm), exactly. Two certified
upper bounds on ``|g(y_H(u + delta)) - t|`` follow: Lipschitz,
``|g(y_0) - t| + R ||W3||_2 ||W2||_2 ||W1||_2``, and interval bound propagation of that interval
through the head. The head is positively homogeneous (``g(s y) = s g(y)`` for ``s >= 0``), hence
linear on each side of 0: the exact worst case is the largest of ``|g(y) - t|`` at the two ends
of the interval and at 0 when 0 lies inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from numbers import Rational

import numpy as np

from ssmpoison.theory._validation import require_finite_sequence, require_int, require_real
from ssmpoison.verify import _kernels as kernels
from ssmpoison.verify._budget import budget_expired
from ssmpoison.verify._status import Status

__all__ = [
    "NORMS",
    "Attack",
    "PGDResult",
    "HeadBounds",
    "lti_impulse_response",
    "worst_case_error",
    "worst_case_attack",
    "pgd_attack",
    "head_bounds",
    "random_diagonal_ssm",
    "pgd_gap_study",
    "require_epsilon",
    "require_norm",
]

#: the perturbation budgets: ``"inf"`` (||delta||_inf <= eps) and ``"2"`` (||delta||_2 <= eps)
NORMS = ("inf", "2")


#: the largest budget of the float64 computations (PGD, the robust flows): far beyond any input's scale, far
#: below where ``(|r| + eps S)^2`` or a uniform draw in ``[-eps, eps]`` overflows
FLOAT_EPSILON_MAX = 1e6


def require_epsilon(epsilon, *, floating: bool = False) -> Rational | float:
    """The budget ``epsilon`` as a finite number ``>= 0`` (int, Fraction or float).

    Arguments:
        epsilon: the budget.
        floating: the budget of a float64 computation: also at most :data:`FLOAT_EPSILON_MAX`.

    Raises:
        ValueError: naming ``epsilon``, for a negative, infinite, NaN or non-numeric value (or one above
            :data:`FLOAT_EPSILON_MAX` with ``floating``).
    """
    eps = require_real("epsilon", epsilon, nonnegative=True)
    if floating and eps > FLOAT_EPSILON_MAX:
        raise ValueError(f"epsilon must be <= {FLOAT_EPSILON_MAX:g} (a float64 computation), got {epsilon}")
    return eps


def require_norm(norm) -> str:
    """``norm`` as one of :data:`NORMS` (``"inf"`` or ``"2"``; ``inf``, ``2``, ``"l2"``, ``"linf"`` accepted).

    Raises:
        ValueError: naming ``norm``.
    """
    text = str(norm).strip().lower()
    text = {"linf": "inf", "l_inf": "inf", "infinity": "inf", "l2": "2", "l_2": "2", "2.0": "2"}.get(text, text)
    if text not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    return text


def lti_impulse_response(A, B, C, length: int) -> tuple:
    """``K_j = C A^j B`` for a (not necessarily diagonal) SSM, ``j = 0..length-1``, in the entries' number type.

    Arguments:
        A: the state matrix, ``D x D`` (nested sequences or an array).
        B: the input vector, length D.
        C: the output vector, length D.
        length: the number of lags J >= 1.

    Returns:
        ``(K_0, ..., K_{J-1})``: ``x <- A x`` from ``x = B`` by exact matrix-vector products, each
        ``K_j = sum_i C_i x_i`` summed in index order (int/Fraction entries stay exact).

    Raises:
        ValueError: shapes that do not match, or a non-finite entry (naming the parameter).
    """
    J = require_int("length", length, minimum=1)
    b = list(require_finite_sequence("B", B))
    D = len(b)
    if D < 1:
        raise ValueError("B must have at least one entry")
    c = list(require_finite_sequence("C", C, length=D))
    rows = [list(require_finite_sequence(f"A[{i}]", row, length=D)) for i, row in enumerate(A)]
    if len(rows) != D:
        raise ValueError(f"A must be {D} x {D}, got {len(rows)} rows")
    x, out = b, []
    for _ in range(J):
        out.append(_dot(c, x))
        x = [_dot(row, x) for row in rows]
    return tuple(out)


def _dot(p, q):
    total = p[0] * q[0]
    for s, t in zip(p[1:], q[1:]):
        total = total + s * t
    return total


def _sign(x) -> int:
    return int(x > 0) - int(x < 0)


def _abs_sum(K):
    total = abs(K[0])
    for k in K[1:]:
        total = total + abs(k)
    return total


def _is_exact(values) -> bool:
    return all(isinstance(v, (int, Fraction)) for v in values)


#: SymPy's exact square root factors its argument and fails beyond this many digits (numerator x denominator)
_EXACT_SQRT_DIGITS = 300


def _sqrt(x, exact: bool):
    if exact:
        import sympy  # exact square roots of rationals only

        x = Fraction(x)
        root = math.isqrt(x.numerator * x.denominator)
        if root * root == x.numerator * x.denominator:  # a rational square root: no SymPy needed
            return Fraction(root, x.denominator)
        if len(str(x.numerator * x.denominator)) > _EXACT_SQRT_DIGITS:
            raise ValueError(f"norm: the exact l2 budget needs the square root of ||K||_2^2, an irrational whose "
                             f"numerator x denominator has more than {_EXACT_SQRT_DIGITS} digits; use the inf norm, "
                             f"a shorter input or entries with fewer digits")
        return sympy.sqrt(sympy.Rational(x.numerator, x.denominator))
    try:
        return x.sqrt()  # gmpy2 / Decimal
    except AttributeError:
        pass
    if type(x).__module__.startswith("mpmath"):
        import mpmath

        return mpmath.sqrt(x)
    return math.sqrt(x)


def worst_case_error(K, epsilon, norm: str = "inf"):
    """``eps ||K||_1`` (ℓ∞ budget) or ``eps ||K||_2`` (ℓ2 budget): the largest output deviation an attack can cause.

    Arguments:
        K: the impulse response ``(K_0, ..., K_{H-1})`` (any number type).
        epsilon: the budget (``>= 0``).
        norm: ``"inf"`` or ``"2"``.

    Returns:
        ``max_{||delta|| <= eps} |sum_j K_j delta_{H-1-j}|`` in the number type of ``K`` (an exact SymPy
        number for the ℓ2 budget of rational ``K``).

    Raises:
        ValueError: naming ``epsilon`` or ``norm``.
    """
    eps = require_epsilon(epsilon)
    norm = require_norm(norm)
    K = list(K)
    if not K:
        raise ValueError("K must have at least one entry")
    if norm == "inf":
        return eps * _abs_sum(K)
    exact = _is_exact(K) and isinstance(eps, (int, Fraction))
    return eps * _sqrt(_dot(K, K), exact)


@dataclass(frozen=True)
class Attack:
    """The closed-form worst-case attack on one input (see the module docstring).

    ``perturbation[k] = delta_k``; ``error = |y_H(u + delta) - t|`` (``t`` the target, or the clean output
    ``y_H(u)`` when there is none), which equals ``clean_error + bound``; ``bound = eps ||K||_*``.
    """

    norm: str
    epsilon: object
    perturbation: tuple
    clean_output: object
    attacked_output: object
    clean_error: object
    bound: object
    error: object

    def to_json(self) -> dict:
        return {
            "norm": self.norm,
            "epsilon": float(self.epsilon),
            "perturbation": [float(v) for v in self.perturbation],
            "clean_output": float(self.clean_output),
            "attacked_output": float(self.attacked_output),
            "clean_error": float(self.clean_error),
            "bound": float(self.bound),
            "error": float(self.error),
        }


def worst_case_attack(K, u, epsilon, norm: str = "inf", target=None) -> Attack:
    """The attack ``delta`` that attains the worst case, and the errors it causes (module docstring).

    Arguments:
        K: the impulse response ``(K_0, ..., K_{H-1})`` (e.g. :func:`ssmpoison.verify._kernels.impulse_response`
            of a diagonal SSM, or :func:`lti_impulse_response`).
        u: the input ``(u_0, ..., u_{H-1})``.
        epsilon: the budget (``>= 0``).
        norm: ``"inf"`` or ``"2"``.
        target: the label ``t`` (``None``: the clean output, i.e. the output's deviation is measured).

    Returns:
        The :class:`Attack`; with exact (int/Fraction) ``K``, ``u``, ``epsilon``, ``target`` every number
        is exact (rational for ℓ∞; SymPy with one square root for ℓ2).

    Raises:
        ValueError: naming ``epsilon``, ``norm``, ``u`` or ``target``.
    """
    eps = require_epsilon(epsilon)
    norm = require_norm(norm)
    K = list(K)
    H = len(K)
    if H < 1:
        raise ValueError("K must have at least one entry")
    u = list(require_finite_sequence("u", u, length=H))
    y0 = _dot(K, u[::-1])
    t = y0 if target is None else require_real("target", target)
    r = y0 - t
    s = -1 if r < 0 else 1
    if norm == "inf":
        delta = tuple(eps * s * _sign(K[H - 1 - k]) for k in range(H))
        bound = eps * _abs_sum(K)
    else:
        exact = _is_exact(K) and isinstance(eps, (int, Fraction))
        norm_k = _sqrt(_dot(K, K), exact)
        if norm_k == 0:
            delta = tuple(eps * s if k == H - 1 else 0 * eps for k in range(H))
        else:
            delta = tuple(eps * s * K[H - 1 - k] / norm_k for k in range(H))
        bound = eps * norm_k
    attacked = _dot(K, [u[k] + delta[k] for k in range(H)][::-1])
    return Attack(norm, eps, delta, y0, attacked, abs(r), bound, abs(attacked - t))


@dataclass(frozen=True)
class PGDResult:
    """The best error PGD found over its restarts, the perturbation that gave it, and each restart's error.

    ``steps`` counts the steps taken; ``status`` is ``Status.DONE`` when all that were asked ran and
    ``Status.TIME_LIMIT`` when the command's wall-clock budget ended the run first.
    """

    norm: str
    epsilon: float
    error: float
    perturbation: np.ndarray
    restart_errors: np.ndarray = field(repr=False)
    steps: int
    random_start: bool
    status: Status = Status.DONE

    def to_json(self) -> dict:
        return {
            "norm": self.norm,
            "epsilon": self.epsilon,
            "error": self.error,
            "perturbation": [float(v) for v in self.perturbation],
            "restarts": int(self.restart_errors.size),
            "steps": self.steps,
            "random_start": self.random_start,
            "status": self.status,
        }


def _project(delta, eps, norm):
    if norm == "inf":
        return np.clip(delta, -eps, eps)
    n = np.linalg.norm(delta, axis=-1, keepdims=True)
    return delta * np.minimum(1.0, eps / np.where(n > 0, n, 1.0))


def _random_start(rng, restarts, H, eps, norm):
    if norm == "inf":
        return rng.uniform(-eps, eps, size=(restarts, H))
    g = rng.standard_normal((restarts, H))
    g /= np.linalg.norm(g, axis=-1, keepdims=True)
    return g * eps * rng.uniform(0, 1, size=(restarts, 1)) ** (1.0 / H)  # uniform in the ball


def pgd_attack(K, u, epsilon, norm: str = "inf", target=None, *, head=None, steps: int = 50, step_size=None,
               restarts: int = 50, random_start: bool = True, seed: int = 0) -> PGDResult:
    """PGD on the squared error ``(f(u + delta) - t)^2`` over ``||delta|| <= eps``, float64, seeded.

    ``f = y_H`` for the bare SSM, ``f = g(y_H)`` with ``head = (W1, W2, W3)`` the ReLU head of
    :mod:`ssmpoison.verify._mlp` (its backprop gives ``g'``). Each step is
    ``delta <- P(delta + alpha sign(grad))`` (ℓ∞) or ``delta <- P(delta + alpha grad / ||grad||_2)`` (ℓ2), ``P``
    the projection onto the ball; a zero gradient leaves ``delta`` where it is. The error kept is the
    best ``|f(u + delta) - t|`` met along every restart (all restarts run as one batch).

    Arguments:
        K: the impulse response ``(K_0, ..., K_{H-1})``.
        u: the input, length H.
        epsilon: the budget (``>= 0``).
        norm: ``"inf"`` or ``"2"``.
        target: the label ``t`` (``None``: the clean output ``f(u)``).
        head: ``(W1, W2, W3)`` of shapes ``(W,)``, ``(W, W)``, ``(W,)``, or ``None`` for the bare SSM.
        steps: gradient steps per restart (>= 0).
        step_size: ``alpha`` (default ``eps / 4`` for ℓ∞, ``eps / 2`` for ℓ2).
        restarts: independent starts (>= 1).
        random_start: start uniformly in the ball (else at ``delta = 0``).
        seed: the generator's seed.

    Returns:
        A :class:`PGDResult`.

    Raises:
        ValueError: naming the parameter.
    """
    eps = float(require_epsilon(epsilon, floating=True))
    norm = require_norm(norm)
    steps = require_int("steps", steps, minimum=0)
    restarts = require_int("restarts", restarts, minimum=1)
    seed = require_int("seed", seed, minimum=0)
    K = np.asarray([float(k) for k in K], dtype=np.float64)
    H = K.size
    u = np.asarray(require_finite_sequence("u", u, length=H), dtype=np.float64)
    alpha = (eps / 4 if norm == "inf" else eps / 2) if step_size is None else float(require_real("step_size", step_size, positive=True))
    Krev = K[::-1]  # the output's gradient w.r.t. the input: d y_H / d u_k = K_{H-1-k}

    def forward(delta):  # (R, H) -> outputs f (R,) and df/dy (R,)
        y = (u + delta) @ Krev
        if head is None:
            return y, np.ones_like(y)
        W1, W2, W3 = (np.asarray(w, dtype=np.float64)[None] for w in head)
        from ssmpoison.verify._mlp import mlp_backward, mlp_forward

        g, cache = mlp_forward((W1, W2, W3), y[None, :])
        _, dy = mlp_backward((W1, W2, W3), cache, np.ones_like(g))
        return g[0], dy[0]

    t = float(forward(np.zeros((1, H)))[0][0]) if target is None else float(require_real("target", target))
    rng = np.random.default_rng(seed)
    delta = _random_start(rng, restarts, H, eps, norm) if random_start else np.zeros((restarts, H))
    f, _ = forward(delta)
    best = np.abs(f - t)
    best_delta = delta.copy()
    taken = 0
    for _ in range(steps):
        if budget_expired():
            break
        taken += 1
        f, df = forward(delta)
        grad = (2 * (f - t) * df)[:, None] * Krev[None, :]
        if norm == "inf":
            step = np.sign(grad)
        else:
            n = np.linalg.norm(grad, axis=-1, keepdims=True)
            step = grad / np.where(n > 0, n, 1.0)
        delta = _project(delta + alpha * step, eps, norm)
        f, _ = forward(delta)
        err = np.abs(f - t)
        better = err > best
        best = np.where(better, err, best)
        best_delta[better] = delta[better]
    k = int(np.argmax(best))
    status = Status.DONE if taken == steps else Status.TIME_LIMIT
    return PGDResult(norm, eps, float(best[k]), best_delta[k].copy(), best, taken, bool(random_start), status)


@dataclass(frozen=True)
class HeadBounds:
    """Worst-case error of ``g(y_H(u + delta))`` against ``t`` inside the ReLU head (module docstring).

    ``radius`` is the exact half-width ``eps ||K||_*`` of the attacked outputs' interval; ``lipschitz``
    and ``interval`` are certified upper bounds (Lipschitz constant of the head, interval bound
    propagation); ``exact`` the worst case from the head's positive homogeneity.
    """

    norm: str
    epsilon: float
    clean_output: float
    radius: float
    lipschitz: float
    interval: float
    exact: float

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _head(head, y):
    W1, W2, W3 = head
    return float(W3 @ np.maximum(W2 @ np.maximum(W1 * y, 0.0), 0.0))


def head_bounds(K, u, epsilon, head, norm: str = "inf", target=None) -> HeadBounds:
    """Certified upper bounds and the exact worst case of the head's error under attack (float64).

    Arguments:
        K, u, epsilon, norm, target: as in :func:`worst_case_attack` (``target`` ``None``: the clean
            output ``g(y_H(u))``).
        head: ``(W1, W2, W3)`` of shapes ``(W,)``, ``(W, W)``, ``(W,)``.

    Returns:
        A :class:`HeadBounds` with ``exact <= interval`` and ``exact <= lipschitz`` (up to float64
        rounding of the last two).

    Raises:
        ValueError: naming the parameter.
    """
    eps = float(require_epsilon(epsilon, floating=True))
    norm = require_norm(norm)
    W1, W2, W3 = (np.asarray(w, dtype=np.float64) for w in head)
    K = [float(k) for k in K]
    u = [float(v) for v in require_finite_sequence("u", u, length=len(K))]
    y0 = _dot(K, u[::-1])
    g0 = _head((W1, W2, W3), y0)
    t = g0 if target is None else float(require_real("target", target))
    R = float(worst_case_error(K, eps, norm))
    lip = float(np.linalg.norm(W3) * np.linalg.norm(W2, 2) * np.linalg.norm(W1))
    lipschitz = abs(g0 - t) + R * lip
    lo1, hi1 = np.minimum(W1 * (y0 - R), W1 * (y0 + R)), np.maximum(W1 * (y0 - R), W1 * (y0 + R))
    lo1, hi1 = np.maximum(lo1, 0.0), np.maximum(hi1, 0.0)
    Wp, Wn = np.maximum(W2, 0.0), np.minimum(W2, 0.0)
    lo2, hi2 = np.maximum(Wp @ lo1 + Wn @ hi1, 0.0), np.maximum(Wp @ hi1 + Wn @ lo1, 0.0)
    Vp, Vn = np.maximum(W3, 0.0), np.minimum(W3, 0.0)
    glo, ghi = float(Vp @ lo2 + Vn @ hi2), float(Vp @ hi2 + Vn @ lo2)
    interval = max(abs(glo - t), abs(ghi - t))
    points = [y0 - R, y0 + R] + ([0.0] if y0 - R < 0 < y0 + R else [])
    exact = max(abs(_head((W1, W2, W3), y) - t) for y in points)
    return HeadBounds(norm, eps, g0, R, lipschitz, interval, exact)


def random_diagonal_ssm(rng: np.random.Generator, max_state_dim: int = 20, max_horizon: int = 40):
    """A random diagonal SSM and input: ``D ~ U{1..max_state_dim}``, ``H ~ U{2..max_horizon}``.

    ``a_i ~ U(-0.95, 0.95)``, ``b_i, c_i, u_k ~ N(0, 1)``, target ``t ~ N(0, 1)``.

    Returns:
        ``(a, b, c, u, t)`` as float64 arrays and a float.
    """
    D = int(rng.integers(1, max_state_dim + 1))
    H = int(rng.integers(2, max_horizon + 1))
    a = rng.uniform(-0.95, 0.95, D)
    b, c = rng.standard_normal(D), rng.standard_normal(D)
    return a, b, c, rng.standard_normal(H), float(rng.standard_normal())


def pgd_gap_study(count: int = 20, restarts: int = 50, steps: int = 50, epsilon: float = 0.1, seed: int = 0,
                  max_state_dim: int = 20, max_horizon: int = 40) -> list[dict]:
    """Closed form against PGD on ``count`` random diagonal SSMs (:func:`random_diagonal_ssm`), both budgets.

    Arguments:
        count: the number of SSMs.
        restarts, steps: PGD's random restarts and steps per restart.
        epsilon: the budget.
        seed: the seed of the SSMs (PGD uses ``seed + index``).
        max_state_dim, max_horizon: the largest D and H drawn.

    Returns:
        One row per SSM and budget: ``{"index", "state_dim", "horizon", "norm", "closed_form", "pgd",
        "relative_gap"}`` with ``relative_gap = (closed_form - pgd) / closed_form`` (the errors
        ``|y_H(u + delta) - t|``). When the command's wall-clock budget runs out, the study stops: the SSMs
        compared in full are returned (fewer than ``count``; a PGD cut short gives no row).
    """
    count = require_int("count", count, minimum=1)
    rng = np.random.default_rng(require_int("seed", seed, minimum=0))
    rows = []
    for i in range(count):
        a, b, c, u, t = random_diagonal_ssm(rng, max_state_dim, max_horizon)
        K = kernels.impulse_response(a, b, c, u.size)
        done = []
        for norm in NORMS:
            closed = float(worst_case_attack(K, u, epsilon, norm, target=t).error)
            pgd = pgd_attack(K, u, epsilon, norm, target=t, steps=steps, restarts=restarts, seed=seed + i)
            if pgd.status is not Status.DONE:
                return rows
            done.append({"index": i, "state_dim": a.size, "horizon": u.size, "norm": norm, "closed_form": closed,
                         "pgd": pgd.error, "relative_gap": (closed - pgd.error) / closed})
        rows.extend(done)
    return rows
