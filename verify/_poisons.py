"""Poisons as functions: the damage ``E(u)`` of one appended clean-label sequence and its gradient.

A :class:`PoisonSetting` is a clean base training set (by default the Theorem's ``{e_0}``), a
teacher (by default the Theorem's, ``K*_0 = D``, ``K*_j = 1``), an initialisation and what is
trained (A alone with B = C = 1 fixed, the theory setting; or A, B, C). Appending one sequence
``u`` of length H with its clean label ``y*(u) = sum_k K*_{H-1-k} u_k`` gives the poisoned set;
the gradient flow ``d theta/dt = -grad L_H(theta; u)`` from the initialisation converges to a
limit ``theta_inf(u)``, and the *damage* is its extrapolation error

    E(u) = max_{0<=j<J} |K_j(theta_inf(u)) - K*_j| / max_{0<=j<J} |K*_j|

(:func:`ssmpoison.theory._teacher.impulse_extrapolation_error`, the one copy). ``E(0)`` is the
clean error (a zero sequence with a zero label only slows the flow down), and ``E(-u) = E(u)``
(the loss term of ``-u`` is that of ``u``).

The gradient: forward sensitivities
-----------------------------------
The limit lies on a manifold of minimisers of ``L_H`` (every ``theta`` that fits the N + 1 labels),
and which point of it the flow reaches is decided by the whole trajectory from the
initialisation, not by a stationarity condition at the limit: the Hessian there is singular
along the manifold, so implicit differentiation of ``grad L_H = 0`` is not valid. The trajectory
is differentiated instead: ``S(t) = d theta(t)/du`` (shape ``P x H``, ``P`` the number of
trained parameters) obeys the variational equation

    dS/dt = J_theta(theta, u) S + J_u(theta, u),    S(0) = 0,

with ``J_theta`` the Jacobian of ``-grad L_H`` in the parameters
(:func:`ssmpoison.verify._kernels.jacobian_a` / :func:`~ssmpoison.verify._kernels.jacobian_abc`)
and, for the appended sequence (number N + 1 of N + 1, residual ``delta = y*(u) - y_H(u)``),

    J_u[:, k] = (2/(N+1)) [ (K*_{H-1-k} - K_{H-1-k}(theta)) grad_theta y_H(u) + delta grad_theta K_{H-1-k}(theta) ],

``grad_theta y_H(u) = sum_k u_k grad_theta K_{H-1-k}``, ``grad_a K_j = c_i b_i j a_i^(j-1)``,
``grad_b K_j = c_i a_i^j``, ``grad_c K_j = b_i a_i^j`` (the test holds ``J_u`` to the SymPy
derivation exactly). Both equations are integrated together by SEULEX
(:class:`ssmpoison.verify._seulex.Seulex`) in any precision, its linear solves with the
block-diagonal part ``I - h J_theta`` of the augmented Jacobian (extrapolation of linearly
implicit Euler is consistent for any fixed matrix). Near the limit ``theta`` approaches the
manifold like ``e^(-lambda t)`` and ``S`` like ``t e^(-lambda t)``, so the integration goes on
past the time ``t_c`` at which the loss reaches its threshold, to ``2 t_c``, where ``S`` has
converged as far as ``theta``. Then

    dE/du = sign(K_{j*} - K*_{j*}) grad_theta K_{j*}(theta_inf) S(inf) / max_j |K*_j|

at the lag ``j*`` of the maximum (``E`` is a maximum over lags: it is differentiable wherever
the maximising lag is unique).

The reported damage of a poison is certified as everywhere else: the flow of the poisoned set
run by the certified engine (:func:`ssmpoison.verify._certified_flow.certified_flows`, two
precisions that must agree), :func:`certified_damage`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ssmpoison.theory._teacher import Teacher, impulse_extrapolation_error
from ssmpoison.theory._training_set import TRAIN_CHOICES, TrainingSet
from ssmpoison.theory._validation import require_finite_sequence, require_int, require_real
from ssmpoison.verify import _kernels as kernels
from ssmpoison.verify._budget import budget_expired
from ssmpoison.verify._certification import CertificationPolicy
from ssmpoison.verify._flow import FlowOptions, FlowProblem
from ssmpoison.verify._linalg import dense_solver
from ssmpoison.verify._numbers import abs_max, require_precision_bits, to_working, working_context, working_dtype
from ssmpoison.verify._seulex import Seulex
from ssmpoison.verify._status import Status

__all__ = ["PoisonSetting", "Damage", "theory_poison_setting", "poisoned_set", "damage", "damage_fd_gradient",
           "certified_damage", "special_poison"]

_BLOWUP = FlowOptions().blowup
#: the sensitivities' absolute tolerance, relative to ``rtol``: the entries of ``theta`` get ``rtol 1e-3 max|a0|``
#: (as the flows of :mod:`ssmpoison.verify._flow`), those of ``dtheta/du`` (of order one at the limit) ``rtol 1e-2``
_SENSITIVITY_ATOL = 1e-1


@dataclass(frozen=True)
class PoisonSetting:
    """The setting a poison is appended to: clean base set, teacher, initialisation, what is trained.

    Arguments:
        base: the clean training set (N sequences of length H, clean labels from ``teacher``).
        a0: the initial diagonal of A (D entries).
        teacher: the :class:`~ssmpoison.theory._teacher.Teacher` whose labels are clean (student dimension D).
        extrapolation_length: J of the extrapolation error (>= 1).
        b, c: B and C (fixed for ``train = "a"``, initial values for ``"abc"``); default all ones.
        train: ``"a"`` (B, C fixed: the theory setting) or ``"abc"``.

    Raises:
        ValueError: a field out of range, a teacher of another dimension, or a base label that is
            not the teacher's (naming the field).
    """

    base: TrainingSet
    a0: tuple
    teacher: Teacher
    extrapolation_length: int = 20
    b: tuple | None = None
    c: tuple | None = None
    train: str = "a"

    def __post_init__(self) -> None:
        if not isinstance(self.base, TrainingSet):
            raise ValueError("base must be a TrainingSet")
        if not isinstance(self.teacher, Teacher):
            raise ValueError("teacher must be a Teacher")
        a0 = require_finite_sequence("a0", self.a0)
        D = len(a0)
        if D != self.teacher.student_dim:
            raise ValueError(f"a0 has {D} entries but the teacher is for a student of dimension {self.teacher.student_dim}")
        if self.train not in TRAIN_CHOICES:
            raise ValueError(f"train must be one of {', '.join(TRAIN_CHOICES)}, got {self.train!r}")
        for n, (row, label) in enumerate(zip(self.base.inputs, self.base.labels)):
            if Fraction(self.teacher.label(row)) != Fraction(label):
                raise ValueError(f"base: labels[{n}] = {label} is not the teacher's clean label {self.teacher.label(row)}")
        object.__setattr__(self, "a0", a0)
        object.__setattr__(self, "b", (1,) * D if self.b is None else require_finite_sequence("b", self.b, length=D))
        object.__setattr__(self, "c", (1,) * D if self.c is None else require_finite_sequence("c", self.c, length=D))
        object.__setattr__(self, "extrapolation_length",
                           require_int("extrapolation_length", self.extrapolation_length, minimum=1))

    @property
    def horizon(self) -> int:
        return self.base.horizon

    @property
    def state_dim(self) -> int:
        return len(self.a0)

    def quantity(self):
        """``quantity(a, b, c)``: the extrapolation error of a limit (for the certified engine)."""
        target = self.teacher.impulse_response(self.extrapolation_length)
        return lambda a, b, c: impulse_extrapolation_error(a, b, c, target)

    def problem(self, u) -> FlowProblem:
        """The :class:`~ssmpoison.verify._flow.FlowProblem` of the base set with ``u`` appended."""
        return FlowProblem(poisoned_set(self, u), self.a0, self.b, self.c, self.train)

    def clean_problem(self) -> FlowProblem:
        """The flow of the base set alone."""
        return FlowProblem(self.base, self.a0, self.b, self.c, self.train)


def theory_poison_setting(horizon: int = 7, state_dim: int = 10, seed: int = 242, extrapolation_length: int = 20,
                          init_scale: float | None = None, gap_exponent: float | None = None,
                          train: str = "a") -> PoisonSetting:
    """The Theorem's construction (base ``{e_0}``, teacher ``diag(1, 0)``) with the paper's initialisation.

    Arguments:
        horizon: H (>= 3).
        state_dim: D (>= 2).
        seed: the seed of the paper's initialisation (:func:`ssmpoison.theory._construction.paper_initialisation`).
        extrapolation_length: J (the paper's H' = 20).
        init_scale, gap_exponent: the initialisation's scale and gap exponent; ``None``: the theory
            row's at H (its first setting's at another H), as ``ssmpoison check`` takes them.
        train: ``"a"`` (B = C = 1 fixed) or ``"abc"`` (B, C start at one and are trained).

    Returns:
        The :class:`PoisonSetting`.

    Raises:
        ValueError: naming the parameter out of range.
    """
    from ssmpoison.theory._construction import clean_training_set, paper_initialisation
    from ssmpoison.verify._registry import row_model

    H = require_int("horizon", horizon, minimum=3)
    D = require_int("state_dim", state_dim, minimum=2)
    model = row_model("theory")
    row = model.setting(H) if H in model.horizons else model.setting(model.horizons[0])
    scale = row.init_scale if init_scale is None else float(require_real("init_scale", init_scale, positive=True))
    gap = row.gap_exponent if gap_exponent is None else float(require_real("gap_exponent", gap_exponent))
    a0 = tuple(float(v) for v in paper_initialisation(seed, D, scale, gap))
    return PoisonSetting(clean_training_set(H, D), a0, Teacher((1,), D), extrapolation_length, train=train)


def _exact_sequence(u, horizon: int) -> tuple:
    """``u`` as exact ``Fraction`` entries (binary floats are exact rationals), length ``horizon``."""
    seq = require_finite_sequence("u", u, length=horizon)
    return tuple(Fraction(v) if not isinstance(v, int) else v for v in seq)


def poisoned_set(setting: PoisonSetting, u) -> TrainingSet:
    """The base set with ``u`` appended and labelled by the teacher, exactly (entries and label as ``Fraction``).

    Raises:
        ValueError: ``u`` of the wrong length or not finite (naming ``u``).
    """
    seq = _exact_sequence(u, setting.horizon)
    return setting.base.with_sequence(seq, setting.teacher.label(seq))


def special_poison(setting: PoisonSetting, norm: float) -> tuple:
    """``norm * e_{H-2}``: the Theorem's poison at that scale (its 2-norm and max-norm are both ``norm``)."""
    rho = require_real("norm", norm)
    return tuple(float(rho) if k == setting.horizon - 2 else 0.0 for k in range(setting.horizon))


@dataclass(frozen=True)
class Damage:
    """``E(u)`` (and ``dE/du``) from one flow with forward sensitivities, in the working precision.

    ``value`` and ``gradient`` are in the working type (float64 or ``gmpy2.mpfr``); ``limit`` is
    ``theta_inf`` split as ``(a, b, c)``; ``lag`` the maximising lag ``j*``; ``status`` a flow
    status; ``t_converged`` the time the loss reached its threshold and ``t`` where the
    integration ended (``>= 2 t_converged``). ``end_value`` is the extrapolation error of the state
    where the integration ended, whatever the status (for a flow that did not converge it is not
    a damage: it says where the run was when its budget ran out).
    """

    u: tuple
    value: object
    gradient: np.ndarray | None
    status: Status
    lag: int | None
    t_converged: object | None
    t: object
    steps: int
    precision_bits: int
    limit: tuple = field(repr=False, default=())
    end_value: object = None

    def to_json(self) -> dict:
        return {
            "u": [float(v) for v in self.u],
            "damage": float(self.value),
            "damage_at_end": None if self.end_value is None else float(self.end_value),
            "gradient": None if self.gradient is None else [float(g) for g in self.gradient],
            "status": self.status,
            "lag": self.lag,
            "t_converged": None if self.t_converged is None else float(self.t_converged),
            "steps": self.steps,
            "precision_bits": self.precision_bits,
        }


def _dK(a, b, c, count: int, train: str):
    """``grad_theta K_j`` for ``j < count``, shape ``(count, P)`` (``P = D`` for ``"a"``, ``3D`` for ``"abc"``)."""
    V = kernels.powers(a, count)  # (D, count): a_i^j
    cb = c * b
    D = len(a)
    rows = []
    for j in range(count):
        da = cb * V[:, j - 1] * j if j >= 1 else np.zeros_like(a)
        if train == "a":
            rows.append(da)
        else:
            rows.append(np.concatenate([da, c * V[:, j], b * V[:, j]]))
    out = np.stack(rows)
    assert out.shape[-1] == (D if train == "a" else 3 * D)
    return out


def _system(setting: PoisonSetting, u_w, precision_bits: int, sensitivities: bool, sigma):
    """The augmented right-hand side ``Y -> Y'`` (``Y[0] = theta``, ``Y[1 + k] = sigma dtheta/du_k``), its solver and loss.

    ``sigma`` scales the sensitivities so that one absolute tolerance, made for the entries of
    ``theta`` (of the initialisation's size), asks of ``dtheta/du`` the tolerance ``atol / sigma``.
    """
    dtype = working_dtype(precision_bits)
    H, D = setting.horizon, setting.state_dim
    w = lambda x: to_working(x, precision_bits)  # noqa: E731
    base = np.array([[w(v) for v in row] for row in setting.base.inputs], dtype=dtype)
    U = np.concatenate([base, u_w[None, :]], axis=0)
    Kstar = setting.teacher.impulse_response(H)
    Kstar_w = np.array([w(v) for v in Kstar], dtype=dtype)
    y_u = sum((Kstar_w[H - 1 - k] * u_w[k] for k in range(H)), w(0))  # y*(u) in the working type
    y = np.array([w(v) for v in setting.base.labels] + [y_u], dtype=dtype)
    N = U.shape[0]
    two_over_n = w(2) / w(N)
    b0 = np.array([w(v) for v in setting.b], dtype=dtype)
    c0 = np.array([w(v) for v in setting.c], dtype=dtype)
    abc = setting.train == "abc"
    P = 3 * D if abc else D

    def split(theta):
        return (theta[:D], theta[D:2 * D], theta[2 * D:]) if abc else (theta, b0, c0)

    def jacobian(theta):
        a, b, c = split(theta)
        if abc:
            return kernels.jacobian_abc(a, b, c, U, y)
        d, G = kernels.jacobian_a(a, b, c, U, y)
        J = -two_over_n * (G.T @ G)
        J[np.arange(D), np.arange(D)] = J[np.arange(D), np.arange(D)] + d
        return J

    def neg_grad(theta):
        a, b, c = split(theta)
        if abc:
            return kernels.neg_grad_abc(a, b, c, U, y).reshape(P)
        return kernels.neg_grad_a(a, b, c, U, y)

    def forcing(theta):
        """``J_u`` as ``(H, P)``: row k is ``d(-grad L)/du_k``."""
        a, b, c = split(theta)
        dK = _dK(a, b, c, H, setting.train)  # (H, P)
        K = kernels.impulse_response(a, b, c, H)  # (H,)
        rev = u_w[::-1]  # rev[j] = u_{H-1-j}
        g = rev @ dK  # grad_theta y_H(u)
        delta = y_u - rev @ K
        return np.stack([two_over_n * ((Kstar_w[H - 1 - k] - K[H - 1 - k]) * g + delta * dK[H - 1 - k]) for k in range(H)])

    def fun(Y):
        theta = Y[0]
        F = neg_grad(theta)
        if not sensitivities:
            return F[None, :]
        J = jacobian(theta)
        dS = Y[1:] @ J.T + sigma * forcing(theta)
        return np.concatenate([F[None, :], dS], axis=0)

    def make_solver(Y):
        return dense_solver(jacobian(Y[0]))

    def loss(Y):
        a, b, c = split(Y[0])
        return kernels.loss(a, b, c, U, y)

    def initial():
        theta = np.array([w(v) for v in setting.a0] + ([w(v) for v in setting.b] + [w(v) for v in setting.c] if abc else []),
                         dtype=dtype)
        rows = H + 1 if sensitivities else 1
        Y = np.array([[w(0)] * P for _ in range(rows)], dtype=dtype)
        Y[0] = theta
        return Y

    return fun, make_solver, loss, initial, split


def damage(setting: PoisonSetting, u, precision_bits: int = 53, *, gradient: bool = True, rtol: float | None = None,
           max_steps: int = 20_000) -> Damage:
    """``E(u)`` and (with ``gradient``) ``dE/du`` by forward sensitivities (module docstring).

    Arguments:
        setting: the :class:`PoisonSetting`.
        u: the appended sequence (H finite numbers; its label is the teacher's).
        precision_bits: the working precision (53 float64, 64 longdouble, else gmpy2).
        gradient: integrate the sensitivities too (``False``: the flow of ``theta`` alone).
        rtol: SEULEX's tolerance; ``None``: :class:`~ssmpoison.verify._flow.FlowOptions`' default
            at that precision.
        max_steps: SEULEX's step budget (an exhausted budget ends the run with ``MAX_STEPS``).

    Returns:
        The :class:`Damage` (``value`` NaN and ``gradient`` ``None`` unless the flow converged; the
        command's wall-clock budget, :mod:`ssmpoison.verify._budget`, ends it with ``TIME_LIMIT``;
        reaching ``t_max`` with the loss above its threshold with ``STALLED``, a blow-up or a
        vanishing step with ``DIVERGED``).

    Raises:
        ValueError: ``u`` of the wrong length or not finite, a bad precision (naming the parameter).
    """
    bits = require_precision_bits(precision_bits)
    seq = require_finite_sequence("u", u, length=setting.horizon)
    options = FlowOptions(precision_bits=bits, rtol=rtol)
    with working_context(bits):
        u_w = np.array([to_working(Fraction(v), bits) for v in seq], dtype=working_dtype(bits))
        scale = max(abs(float(v)) for v in setting.a0) or 1.0
        sigma = to_working(scale * _SENSITIVITY_ATOL, bits)
        fun, make_solver, loss, initial, split = _system(setting, u_w, bits, gradient, sigma)
        Y0 = initial()
        loss_tol = to_working(options.effective_loss_tol, bits)
        t_conv = []

        def stop(t, Y):
            if not t_conv and loss(Y) <= loss_tol:
                t_conv.append(t)
            return budget_expired() or (bool(t_conv) and t >= 2 * t_conv[0])

        rtol_w = options.effective_rtol
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            res = Seulex().integrate(fun, Y0, 0, options.t_max, precision_bits=bits, rtol=rtol_w, atol=rtol_w * 1e-3 * scale,
                                     max_steps=max_steps, make_solver=make_solver, stop=stop, blowup=_BLOWUP)
        Y = res.y
        a, b, c = split(Y[0])
        if res.status == Status.STOPPED and t_conv and res.t >= 2 * t_conv[0]:
            status = Status.CONVERGED
        elif res.status in (Status.BLOWUP, Status.STEP_TOO_SMALL):
            status = Status.DIVERGED
        elif res.status == Status.MAX_STEPS:
            status = Status.MAX_STEPS
        elif res.status == Status.T_END:  # t_max reached above the loss threshold: the state stopped moving
            status = Status.STALLED
        else:
            status = Status.TIME_LIMIT
        J = setting.extrapolation_length
        target = setting.teacher.impulse_response(J)
        finite = all(np.isfinite(float(v)) for part in (a, b, c) for v in part)
        end_value = impulse_extrapolation_error(list(a), list(b), list(c), target) if finite else float("nan")
        if status != Status.CONVERGED:
            return Damage(seq, float("nan"), None, status, None, t_conv[0] if t_conv else None, res.t, res.n_steps, bits,
                          (a, b, c), end_value)
        value = end_value
        K = kernels.impulse_response(a, b, c, J)
        gaps = [abs(K[j] - target[j]) for j in range(J)]
        lag = max(range(J), key=lambda j: gaps[j])
        grad = None
        if gradient:
            dK = _dK(a, b, c, J, setting.train)[lag]
            sign = 1 if K[lag] - target[lag] >= 0 else -1
            scale_star = max(abs(v) for v in target)
            grad = np.array([sign * (dK * Y[1 + k]).sum() / (scale_star * sigma) for k in range(setting.horizon)], dtype=Y.dtype)
        return Damage(seq, value, grad, status, lag, t_conv[0], res.t, res.n_steps, bits, (a, b, c), value)


def damage_fd_gradient(setting: PoisonSetting, u, step: float, precision_bits: int = 53, **kwargs) -> np.ndarray:
    """``dE/du`` by central finite differences, ``(E(u + s e_k) - E(u - s e_k)) / (2 s)``: 2H flows.

    Arguments:
        setting, u, precision_bits: as in :func:`damage`.
        step: the difference step ``s > 0`` (an exact binary float; ``u +- s e_k`` are formed exactly).
        kwargs: passed to :func:`damage` (``rtol``, ``max_steps``).

    Returns:
        The H differences, in the working type.
    """
    s = Fraction(require_real("step", step, positive=True))
    seq = [Fraction(v) for v in require_finite_sequence("u", u, length=setting.horizon)]
    out = []
    with working_context(precision_bits):
        for k in range(setting.horizon):
            plus, minus = list(seq), list(seq)
            plus[k] += s
            minus[k] -= s
            ep = damage(setting, plus, precision_bits, gradient=False, **kwargs).value
            em = damage(setting, minus, precision_bits, gradient=False, **kwargs).value
            out.append((ep - em) / to_working(2 * s, precision_bits))
    return np.array(out, dtype=working_dtype(precision_bits))


def certified_damage(setting: PoisonSetting, u, policy: CertificationPolicy = CertificationPolicy()):
    """The damage of ``u`` from the certified engine: the poisoned set's flow run and re-run at two precisions.

    Arguments:
        setting: the :class:`PoisonSetting`.
        u: the appended sequence (``None``: the base set alone, the clean error).
        policy: the :class:`~ssmpoison.verify._certification.CertificationPolicy` (default the fast path).

    Returns:
        The :class:`~ssmpoison.verify._certified_flow.CertifiedRun` (its ``quantity`` is ``E`` with
        its certified digits).
    """
    from ssmpoison.verify._certified_flow import certified_flows

    problem = setting.clean_problem() if u is None else setting.problem(u)
    return certified_flows([problem], setting.quantity(), policy)[0]
