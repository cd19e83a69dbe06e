"""Adversarial training of the diagonal SSM on its exact robust loss, as a gradient flow in A (B, C fixed).

The robust loss (derived in :mod:`ssmpoison.theory._robust_loss`, where the tests hold this
module's gradient to ``sympy.diff``) is

    L_rob(a) = (1/N) sum_n (|r_n| + eps S)**2,   r_n = y_H(u^(n)) - y*_n,
    S = sum_j |K_j| (ℓ∞ budget) or ||K||_2 (ℓ2 budget),

the loss under the worst attack of each input (:mod:`ssmpoison.verify._robust`); at ``eps = 0``
it is ``L_H``. Its negative gradient is

    -dL_rob/da_i = -(2/N) sum_n (|r_n| + eps S) (sign(r_n) G_{n,i} + eps dS/da_i)

with the output Jacobian ``G`` of :func:`ssmpoison.verify._kernels.output_jacobian_a`,
``dS/da_i = sum_j s_j dK_j/da_i``, ``dK_j/da_i = c_i b_i j a_i**(j-1)`` and ``s_j = sign(K_j)``
(ℓ∞) or ``K_j / ||K||_2`` (ℓ2); ``smoothing = eta > 0`` replaces ``|x|`` by
``sqrt(x**2 + eta**2)`` (at most ``eta`` above ``|x|``).

Non-smooth points. ``|r_n|`` is not differentiable where a residual is zero, and (ℓ∞) ``|K_j|``
where an entry of the impulse response is zero (``K_0 = sum_i c_i b_i`` does not move). The
flow :func:`robust_flow` integrates the exact vector field (``smoothing = 0``) and *stops at the
first such point* (a terminal event, located by the integrator's root finding): beyond it the
gradient flow is a Filippov sliding motion on the kink, not this vector field. At ``eps = 0``
there is no kink (``(|r|)**2 = r**2``) and the flow stops when ``L_H <= loss_tol``.

Integration: SciPy's ``solve_ivp`` (Radau, float64, ``rtol = 1e-12``), certified by agreement
with a second method (LSODA at the same tolerance): the digits reported are
``floor(-log10 max_k |x_k - x'_k| / |x_k|)`` over the learned entries, the extrapolation error
and the stopping time (capped at 12). At ``eps = 0`` the learned entries are also compared with
the project's flow engine (:func:`ssmpoison.verify._flow.run_flow`, which integrates ``L_H``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ssmpoison.theory._construction import clean_training_set, extrapolation_error, paper_initialisation, poisoned_training_set
from ssmpoison.theory._training_set import TrainingSet
from ssmpoison.theory._validation import require_finite_sequence, require_real
from ssmpoison.verify import _kernels as kernels
from ssmpoison.verify._robust import require_epsilon, require_norm

__all__ = [
    "robust_loss",
    "neg_grad_robust",
    "RobustFlowResult",
    "robust_flow",
    "robust_flow_sliding",
    "RobustTrainingRow",
    "robust_training_table",
]


def _abs(x, eta):
    if eta == 0:
        return np.abs(x)
    return np.sqrt(x * x + eta * eta) if x.dtype != object else np.array([(v * v + eta * eta) ** 0.5 for v in x], dtype=object)


def _sign(x, eta):
    if eta == 0:
        return np.array([int(v > 0) - int(v < 0) for v in x], dtype=object if x.dtype == object else x.dtype)
    return x / _abs(x, eta)


def _parts(a, b, c, U, y, epsilon, norm, smoothing):
    """``K``, ``r``, ``|r|``, ``sign r``, ``S``, ``dS/da``, ``G`` (1-D ``a``, shared inputs)."""
    a, b, c = (np.asarray(v) for v in (a, b, c))
    U = np.asarray(U)
    H = U.shape[-1]
    K = kernels.impulse_response(a, b, c, H)
    r = kernels.response_outputs(K, U) - np.asarray(y).astype(K.dtype)
    V = kernels.powers(a, H - 1)  # (D, H-1): a_i**(j-1), j = 1..H-1
    j = np.arange(1, H)
    dK = (np.asarray(c) * np.asarray(b))[:, None] * V * (j if K.dtype != object else np.asarray(j, dtype=object))
    Kt = K[1:]  # K_0 does not depend on a
    if norm == "inf":
        S = _abs(K, smoothing).sum()
        dS = dK @ _sign(Kt, smoothing)
    else:
        S = (K @ K) ** 0.5 if K.dtype == object else np.sqrt(K @ K)
        dS = dK @ Kt / S
    G = kernels.output_jacobian_a(a, b, c, U)  # (N, D)
    return K, r, _abs(r, smoothing), _sign(r, smoothing), S, dS, G


def robust_loss(a, b, c, U, y, epsilon, norm: str = "inf", smoothing=0):
    """``L_rob = (1/N) sum_n (|r_n| + eps S)**2`` (module docstring), in the number type of ``a``.

    Arguments:
        a, b, c: the SSM's entries, shape ``(D,)``.
        U: the inputs ``(N, H)``; y: the labels ``(N,)``.
        epsilon: the budget (``>= 0``); norm: ``"inf"`` or ``"2"``.
        smoothing: ``eta >= 0`` (0: the exact ``|x|``).

    Returns:
        The loss.

    Raises:
        ValueError: naming ``epsilon``, ``norm`` or ``smoothing``.
    """
    eps = require_epsilon(epsilon)
    norm = require_norm(norm)
    eta = require_real("smoothing", smoothing, nonnegative=True)
    _, r, ar, _, S, _, _ = _parts(a, b, c, U, y, eps, norm, eta)
    e = ar + eps * S
    return (e * e).sum() / r.size


def neg_grad_robust(a, b, c, U, y, epsilon, norm: str = "inf", smoothing=0):
    """``-dL_rob/da`` with B, C fixed (module docstring; ``sign(0) = 0`` at a kink when ``smoothing = 0``).

    Arguments:
        as :func:`robust_loss`.

    Returns:
        The negative gradient, shape ``(D,)``, in the number type of ``a`` (exact for Fraction
        entries, ℓ∞ and ``smoothing = 0``).
    """
    eps = require_epsilon(epsilon)
    norm = require_norm(norm)
    eta = require_real("smoothing", smoothing, nonnegative=True)
    _, r, ar, sr, S, dS, G = _parts(a, b, c, U, y, eps, norm, eta)
    N = r.size
    e = ar + eps * S
    total = (e * sr) @ G + e.sum() * eps * dS
    return -2 * total / N


@dataclass(frozen=True)
class RobustFlowResult:
    """One robust gradient flow: where it stopped, why, and what it learned.

    ``stop`` is ``"converged"`` (``L_H <= loss_tol``, at ``eps = 0``), ``"kink r_n = 0"`` (a residual
    reached zero), ``"kink K_j = 0"`` (ℓ∞: an entry of the impulse response reached zero),
    ``"time_limit"`` (``t_max`` reached, or the command's wall-clock budget passed: the last accepted state)
    or ``"failed"`` (the integrator gave up, or an event's root could not be bracketed); ``error`` is the
    extrapolation error of the Theorem's teacher over ``extrapolation_length`` lags.
    """

    epsilon: float
    norm: str
    method: str
    stop: str
    t: float
    a: np.ndarray
    robust_loss: float
    loss: float
    error: float
    steps: int

    def to_json(self) -> dict:
        return {"epsilon": self.epsilon, "norm": self.norm, "method": self.method, "stop": self.stop, "t": self.t,
                "a": [float(v) for v in self.a], "robust_loss": self.robust_loss, "loss": self.loss, "error": self.error,
                "steps": self.steps}


class _OutOfTime(Exception):
    """The command's wall-clock budget passed during an integration (raised by :func:`_clock`)."""


def _clock(last: list):
    """A ``solve_ivp`` event that never fires: it records each accepted ``(t, a)`` in ``last`` and raises
    :class:`_OutOfTime` once the command's wall-clock budget (:mod:`ssmpoison.verify._budget`) has passed."""
    from ssmpoison.verify._budget import budget_expired

    def tick(t, a):
        last[:] = [float(t), np.array(a)]
        if budget_expired():
            raise _OutOfTime
        return 1.0

    return tick


def robust_flow(training_set: TrainingSet, a0, epsilon, norm: str = "inf", *, b=None, c=None, t_max: float = 1e18,
                rtol: float = 1e-12, method: str = "Radau", loss_tol: float = 1e-20, extrapolation_length: int = 20,
                ) -> RobustFlowResult:
    """Integrate ``da/dt = -dL_rob/da`` (exact ``|x|``) until convergence, the first kink or ``t_max``.

    Arguments:
        training_set: the sequences and labels.
        a0: the initial diagonal of A (length D >= 2).
        epsilon: the budget (``>= 0``); norm: ``"inf"`` or ``"2"``.
        b, c: B and C (fixed; default all ones).
        t_max: the time limit.
        rtol: the integrator's relative tolerance (absolute ``1e-12 rtol`` times the largest ``|a0_i|``).
        method: a ``scipy.integrate.solve_ivp`` method (``"Radau"``, ``"LSODA"``, ``"BDF"``).
        loss_tol: ``L_H`` at which the flow counts as converged.
        extrapolation_length: the lags of the extrapolation error.

    Returns:
        A :class:`RobustFlowResult`.

    Raises:
        ValueError: naming the parameter.
    """
    from scipy.integrate import solve_ivp

    eps = float(require_epsilon(epsilon, floating=True))
    norm = require_norm(norm)
    a0 = np.asarray(require_finite_sequence("a0", a0), dtype=np.float64)
    D = a0.size
    b = np.ones(D) if b is None else np.asarray(require_finite_sequence("b", b, length=D), dtype=np.float64)
    c = np.ones(D) if c is None else np.asarray(require_finite_sequence("c", c, length=D), dtype=np.float64)
    U = np.asarray(training_set.inputs, dtype=np.float64)
    y = np.asarray(training_set.labels, dtype=np.float64)
    H, N = U.shape[1], U.shape[0]

    def fun(t, a):
        return neg_grad_robust(a, b, c, U, y, eps, norm)

    def converged(t, a):
        return float(kernels.loss(a, b, c, U, y)) - loss_tol

    converged.terminal, converged.direction = True, -1
    events, names = ([converged], ["converged"]) if eps == 0 else ([], [])  # eps > 0: a zero residual is a kink
    if eps > 0:
        for n in range(N):
            def residual(t, a, n=n):
                return float(kernels.residuals(a, b, c, U, y)[n])

            residual.terminal = True
            events.append(residual)
            names.append("kink r_n = 0")
        if norm == "inf":
            for j in range(1, H):
                def entry(t, a, j=j):
                    return float(kernels.impulse_response(a, b, c, H)[j])

                entry.terminal = True
                events.append(entry)
                names.append("kink K_j = 0")
    atol = 1e-12 * rtol * float(np.max(np.abs(a0)))
    last = [0.0, a0]
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            sol = solve_ivp(fun, (0.0, float(t_max)), a0, method=method, rtol=rtol, atol=atol,
                            events=events + [_clock(last)])
    except _OutOfTime:  # the command's wall-clock budget: the last accepted state
        sol, stop = None, "time_limit"
    except ValueError:  # an event's root could not be bracketed on the step's interpolant: the integrator gave up
        sol, stop = None, "failed"
    if sol is None:
        t, a, steps = last[0], last[1], 0
    else:
        t, a, steps = float(sol.t[-1]), sol.y[:, -1], int(sol.t.size - 1)
        if sol.status == 1:
            hit = [k for k, te in enumerate(sol.t_events) if len(te)]
            stop = names[hit[0]]
        elif sol.status == 0:
            stop = "time_limit"
        else:
            stop = "failed"
    err = float(extrapolation_error(a, b, c, D, extrapolation_length))
    return RobustFlowResult(eps, norm, method, stop, t, a, float(robust_loss(a, b, c, U, y, eps, norm)),
                            float(kernels.loss(a, b, c, U, y)), err, steps)


def _digits(x, y) -> int:
    x, y = np.atleast_1d(np.asarray(x, dtype=float)), np.atleast_1d(np.asarray(y, dtype=float))
    rel = np.abs(x - y) / np.maximum(np.abs(x), 1e-300)
    worst = float(np.max(rel))
    return 12 if worst == 0 else max(0, min(12, int(math.floor(-math.log10(worst)))))


@dataclass(frozen=True)
class RobustTrainingRow:
    """One cell of the robust training table: the flow (Radau) and its certified digits (agreement with LSODA)."""

    poisoned: bool
    flow: RobustFlowResult
    check: RobustFlowResult = field(repr=False)
    engine_digits: int | None = None  # eps = 0: agreement of the entries with the project's flow engine (run_flow)

    @property
    def digits(self) -> int:
        """Agreeing digits of the learned entries, the extrapolation error and the stopping time (<= 12; 0 if the
        stops differ or the integrators gave up)."""
        if self.flow.stop != self.check.stop or self.flow.stop == "failed":
            return 0
        return min(_digits(self.flow.a, self.check.a), _digits(self.flow.error, self.check.error), _digits(self.flow.t, self.check.t))

    def to_json(self) -> dict:
        return {"poisoned": self.poisoned, **self.flow.to_json(), "digits": self.digits, "engine_digits": self.engine_digits}


def robust_training_table(epsilons=(0, 1e-3, 1e-2), norms=("inf", "2"), *, horizon: int = 7, state_dim: int = 10,
                          init_scale: float = 0.001, gap_exponent: float = 5, seed: int = 242, extrapolation_length: int = 20,
                          t_max: float = 1e18) -> list[RobustTrainingRow]:
    """Robust training on the Theorem's construction from the paper's initialisation, without and with ``u† = e_{H-2}``.

    Arguments:
        epsilons: the budgets (``eps = 0`` is standard training, run once, not per norm).
        norms: the budgets' norms.
        horizon, state_dim, init_scale, gap_exponent, seed: the paper's setting (default: the theory row at
            H = 7, seed 242).
        extrapolation_length: the lags of the extrapolation error.
        t_max: the time limit of every flow.

    Returns:
        One :class:`RobustTrainingRow` per ``(eps, norm, poisoned)`` (``eps = 0`` once, with the first norm),
        without and then with the poison; fewer when the command's wall-clock budget
        (:mod:`ssmpoison.verify._budget`) passes between flows.

    Raises:
        ValueError: naming ``epsilon``, ``norm`` or a parameter of the setting.
    """
    from ssmpoison.verify._budget import budget_expired

    a0 = paper_initialisation(seed, state_dim, init_scale, gap_exponent)
    epsilons = tuple(require_epsilon(e, floating=True) for e in epsilons)
    norms = tuple(require_norm(n) for n in norms)
    rows = []
    for poisoned in (False, True):
        ts = (poisoned_training_set if poisoned else clean_training_set)(horizon, state_dim)
        for eps in epsilons:
            for norm in (norms[:1] if eps == 0 else norms):
                if budget_expired():  # the command's wall-clock budget: the rows done so far
                    return rows
                kwargs = dict(t_max=t_max, extrapolation_length=extrapolation_length)
                flow = robust_flow(ts, a0, eps, norm, method="Radau", **kwargs)
                check = robust_flow(ts, a0, eps, norm, method="LSODA", **kwargs)
                engine = None
                if eps == 0:  # L_rob = L_H: the project's engine integrates the same flow
                    from ssmpoison.verify._flow import FlowProblem, run_flow

                    engine = _digits(flow.a, run_flow(FlowProblem(ts, tuple(a0))).a)
                rows.append(RobustTrainingRow(poisoned, flow, check, engine))
    return rows


def _pieces(a, b, c, U, y, eps, norm):
    """Float64 ``K``, ``r``, ``S``, ``G`` (N, D), ``dK`` (D, H-1) of the exact robust loss."""
    H = U.shape[1]
    K = kernels.impulse_response(a, b, c, H)
    r = kernels.response_outputs(K, U) - y
    dK = (c * b)[:, None] * kernels.powers(a, H - 1) * np.arange(1, H)
    S = np.abs(K).sum() if norm == "inf" else np.sqrt(K @ K)
    return K, r, S, kernels.output_jacobian_a(a, b, c, U), dK


def _field(a, b, c, U, y, eps, norm, zero=()):
    """``-dL_rob/da`` with the signs of the kinks in ``zero`` (``("r", n)`` or ``("K", j)``) set to 0."""
    K, r, S, G, dK = _pieces(a, b, c, U, y, eps, norm)
    sr = np.sign(r)
    for kind, k in zero:
        if kind == "r":
            sr[k] = 0.0
    if norm == "inf":
        sK = np.sign(K[1:])
        for kind, k in zero:
            if kind == "K":
                sK[k - 1] = 0.0
        dS = dK @ sK
    else:
        dS = dK @ K[1:] / S
    e = np.abs(r) + eps * S
    return -2 * ((e * sr) @ G + e.sum() * eps * dS) / r.size


def _kink(a, b, c, U, y, eps, norm, which):
    """``(phi, grad phi, jump)``: the kink's function, its gradient and the field's jump coefficient across it."""
    K, r, S, G, dK = _pieces(a, b, c, U, y, eps, norm)
    N = r.size
    if which[0] == "r":
        n = which[1]
        return r[n], G[n], 2 * (abs(r[n]) + eps * S) / N
    j = which[1]
    return K[j], dK[:, j - 1], 2 * eps * (np.abs(r) + eps * S).sum() / N


def _sliding(a, b, c, U, y, eps, norm, active):
    """The sliding field on the active kinks and its multipliers over their bounds (``|lambda_k| / c_k``)."""
    f0 = _field(a, b, c, U, y, eps, norm, zero=active)
    parts = [_kink(a, b, c, U, y, eps, norm, w) for w in active]
    phi = np.array([p[0] for p in parts])
    Gk = np.array([p[1] for p in parts])
    jump = np.array([p[2] for p in parts])
    lam = np.linalg.lstsq(Gk @ Gk.T, -(Gk @ f0) - phi, rcond=None)[0]
    return f0 + lam @ Gk, np.abs(lam) / jump


def robust_flow_sliding(training_set: TrainingSet, a0, epsilon, norm: str = "inf", *, b=None, c=None, t_max: float = 1e18,
                        rtol: float = 1e-12, method: str = "LSODA", extrapolation_length: int = 20, max_segments: int = 200,
                        ) -> RobustFlowResult:
    """The robust gradient flow continued through its kinks as a Filippov solution (``eps > 0``), float64.

    Away from the kinks (zero residuals ``r_n``; ℓ∞: zero entries ``K_j``, ``j >= 1``) the field is
    :func:`neg_grad_robust`'s. Across a kink ``phi_k = 0`` the two one-sided fields are ``f0 -+ c_k grad phi_k``
    (``f0``: that sign set to 0; ``c_k = (2/N)(|r_n| + eps S)`` for a residual, ``(2/N) eps sum_n (|r_n| + eps S)``
    for an entry of ``K``), so Filippov's set is ``f0 + sum_k lambda_k grad phi_k`` with ``|lambda_k| <= c_k``.
    On an active set of kinks the flow slides with the multipliers that keep every ``phi_k`` at zero
    (``grad phi_m · f = -phi_m``, the right-hand side pulling the state back onto the kinks), as long as every
    ``|lambda_k| <= c_k``; a kink whose multiplier reaches its bound leaves the set, and a kink met is
    added unless its multiplier would exceed its bound (the flow crosses it).

    Arguments:
        as :func:`robust_flow`; ``max_segments`` bounds the number of kink events.

    Returns:
        A :class:`RobustFlowResult` whose ``stop`` is ``"time_limit"`` (off every kink at ``t_max``),
        ``"sliding at t_max"``, ``"segments"`` (more than ``max_segments`` events) or ``"failed"``.
    """
    from scipy.integrate import solve_ivp

    eps = float(require_epsilon(epsilon, floating=True))
    if not eps > 0:
        raise ValueError(f"epsilon must be > 0 for the sliding flow (eps = 0 has no kink), got {eps}")
    norm = require_norm(norm)
    a = np.asarray(require_finite_sequence("a0", a0), dtype=np.float64)
    D = a.size
    b = np.ones(D) if b is None else np.asarray(b, dtype=np.float64)
    c = np.ones(D) if c is None else np.asarray(c, dtype=np.float64)
    U = np.asarray(training_set.inputs, dtype=np.float64)
    y = np.asarray(training_set.labels, dtype=np.float64)
    H, N = U.shape[1], U.shape[0]
    kinks = [("r", n) for n in range(N)] + ([("K", j) for j in range(1, H)] if norm == "inf" else [])
    atol = 1e-12 * rtol * float(np.max(np.abs(a)))
    t, active, skip, steps, stop = 0.0, (), (), 0, "segments"
    for _ in range(max_segments):
        events = []
        for which in kinks:
            if which in active or which in skip:
                continue

            def ev(t, x, which=which):
                return float(_kink(x, b, c, U, y, eps, norm, which)[0])

            ev.terminal = True
            ev.which = ("enter", which)
            events.append(ev)
        if not active:
            def fun(t, x):
                return _field(x, b, c, U, y, eps, norm)
        else:
            def fun(t, x, active=active):
                return _sliding(x, b, c, U, y, eps, norm, active)[0]

            for k, which in enumerate(active):
                def leave(t, x, active=active, k=k):
                    return float(1.0 - _sliding(x, b, c, U, y, eps, norm, active)[1][k])

                leave.terminal = True
                leave.which = ("leave", which)
                events.append(leave)
        last = [t, a]
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                sol = solve_ivp(fun, (t, float(t_max)), a, method=method, rtol=rtol, atol=atol,
                                events=events + [_clock(last)])
        except _OutOfTime:  # the command's wall-clock budget: the last accepted state
            t, a, stop = last[0], last[1], "time_limit"
            break
        except ValueError:  # an event's root could not be bracketed (a multiplier at its bound from the start)
            stop = "failed"
            break
        steps += sol.t.size - 1
        t, a = float(sol.t[-1]), sol.y[:, -1]
        if sol.status == 0:
            stop = "time_limit" if not active else "sliding at t_max"
            break
        if sol.status < 0:
            stop = "failed"
            break
        what, which = next(ev.which for ev, te in zip(events, sol.t_events) if len(te))
        if what == "leave":
            active, skip = tuple(w for w in active if w != which), (which,)
            continue
        candidate = active + (which,)
        while candidate:
            ratio = _sliding(a, b, c, U, y, eps, norm, candidate)[1]
            if np.all(ratio <= 1.0):
                break
            candidate = tuple(w for k, w in enumerate(candidate) if k != int(np.argmax(ratio)))
        active = candidate
        skip = () if which in active else (which,)  # crossed: leave its event out of the next segment
    err = float(extrapolation_error(a, b, c, D, extrapolation_length))
    return RobustFlowResult(eps, norm, method + " sliding", stop, t, a, float(robust_loss(a, b, c, U, y, eps, norm)),
                            float(kernels.loss(a, b, c, U, y)), err, int(steps))
