"""Gradient-flow engine: ``d theta/dt = -grad L_H(theta)`` on any training set, in any precision.

The right-hand side and its Jacobian come from :mod:`ssmpoison.verify.kernels` (held against the
SymPy derivation by the tests). The integrator is a value of the interface of
:mod:`ssmpoison.verify._integrator`, chosen with :attr:`FlowOptions.integrator`; its default,
:func:`default_integrator`, depends on what is trained:

* only A trained (B, C fixed), linearly independent sequences: exponential collocation
  (:class:`ssmpoison.verify._expcoll.ExpColl`) with the frozen stiff part ``-(2/N) G^T G`` of the
  Jacobian (rank N, exact exponential); when every ``c_i b_i`` is one number and ``D >= 2`` in
  the anchored coordinates of :mod:`ssmpoison.verify._anchored` (``FlowOptions.anchored``);
  linearly dependent sequences (rank below N): SEULEX, as below;
* A, B, C trained: SEULEX (:class:`ssmpoison.verify._seulex.Seulex`) with the dense
  ``3D x 3D`` Jacobian of :func:`ssmpoison.verify._kernels.jacobian_abc` (:mod:`ssmpoison.verify._linalg`).

SEULEX can also integrate a flow of A alone (``J = diag(d) - (2/N) G^T G``, solves by
Sherman–Morrison–Woodbury, in ``a``-coordinates); exponential collocation cannot integrate
a flow of A, B, C (its stiff part is not of that form).

The working precision ``FlowOptions.precision_bits`` selects the number type
(:mod:`ssmpoison.verify._numbers`): 53 bits → ``float64``, 64 bits → x86 ``longdouble``, anything else →
``gmpy2.mpfr`` at that precision; it is passed explicitly to the integrator. The flow runs
until the training loss falls below a threshold tied to the precision (``loss_tol``, default
``4**-(precision_bits - 8)``, i.e. residuals near ``2**-precision_bits``): status
``CONVERGED``; or until an entry's magnitude exceeds ``blowup``: ``DIVERGED`` (with the time);
or, when it starts at a zero of the vector field with the loss above the threshold (a fixed
point, e.g. ``a = 0``), at once: ``STALLED``; or until
``t_max``, the step budget or the command's wall-clock budget (:mod:`ssmpoison.verify._budget`):
``TIME_LIMIT``. Several initial points sharing a
training set and B, C can be integrated together (one shared step size): :func:`run_flows`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction

import gmpy2
import numpy as np

from ssmpoison.theory._training_set import TRAIN_CHOICES
from ssmpoison.theory._training_set import TrainingSet
from ssmpoison.theory._validation import require_finite_sequence, require_int, require_real
from ssmpoison.verify import _kernels as kernels
from ssmpoison.verify._budget import budget_expired, budget_seconds_left
from ssmpoison.verify._integrator import Integrator
from ssmpoison.verify._numbers import require_precision_bits, to_working, working_context, working_dtype
from ssmpoison.verify._status import Status
from ssmpoison.verify._anchored import anchor_index, anchored_linear_part, from_anchored, neg_grad_anchored, to_anchored, uniform_gain
from ssmpoison.verify._expcoll import ExpColl, first_step
from ssmpoison.verify._native import integrate_anchored, native_available
from ssmpoison.verify._linalg import dense_solver, diag_plus_lowrank_solver
from ssmpoison.verify._seulex import Seulex

__all__ = ["FlowProblem", "FlowOptions", "FlowResult", "run_flow", "run_flows", "default_integrator", "linearly_dependent",
           "FLOW_STATUSES"]

#: The statuses a flow ends with.
FLOW_STATUSES = (Status.CONVERGED, Status.DIVERGED, Status.STALLED, Status.TIME_LIMIT)


def default_integrator(train: str, training_set=None) -> Integrator:
    """The integrator a flow uses when :attr:`FlowOptions.integrator` is ``None``.

    Arguments:
        train: ``"a"`` (only A trained) or ``"abc"``.
        training_set: the flow's training set, or ``None`` (then taken to have linearly independent sequences).

    Returns:
        ``ExpColl()`` — exponential collocation — for ``"a"`` on linearly independent sequences
        (its stiff part is the exact low-rank ``-(2/N) G^T G``, of rank N); ``Seulex()`` for
        ``"abc"``, and for ``"a"`` on linearly dependent sequences (e.g. ``{e_0, 2 e_0}``):
        there ``G^T G`` has rank below N, and the frozen directions of its null space that the
        collocation builds from rounding noise make it converge to wrong limits.
    """
    if train != "a":
        return Seulex()
    return Seulex() if training_set is not None and linearly_dependent(training_set) else ExpColl()


def linearly_dependent(training_set) -> bool:
    """Whether the training sequences are linearly dependent (exact rank of the inputs below their number).

    Arguments:
        training_set: a :class:`ssmpoison.theory._training_set.TrainingSet`.

    Returns:
        ``True`` when ``rank(U) < N`` (never for a single non-zero sequence).
    """
    from ssmpoison.theory._proposition import sequence_rank

    return training_set.samples > 1 and sequence_rank(training_set.inputs) < training_set.samples


@dataclass(frozen=True)
class FlowProblem:
    """Gradient flow of ``L_H`` on ``training_set`` from ``a0`` (and ``b``, ``c``).

    Arguments:
        training_set: the N sequences and labels.
        a0: initial diagonal of A (length D >= 1).
        b, c: B and C (fixed when ``train == "a"``, initial values when ``"abc"``); default all ones.
        train: ``"a"`` or ``"abc"``.

    Raises:
        ValueError: a field out of range (the message names it).
    """

    training_set: TrainingSet
    a0: tuple
    b: tuple | None = None
    c: tuple | None = None
    train: str = "a"

    def __post_init__(self) -> None:
        if not isinstance(self.training_set, TrainingSet):
            raise ValueError("training_set must be a TrainingSet")
        a0 = require_finite_sequence("a0", self.a0)
        if len(a0) < 1:
            raise ValueError("a0 must have at least one entry")
        D = len(a0)
        b = (1,) * D if self.b is None else require_finite_sequence("b", self.b, length=D)
        c = (1,) * D if self.c is None else require_finite_sequence("c", self.c, length=D)
        if self.train not in TRAIN_CHOICES:
            raise ValueError(f"train must be one of {', '.join(TRAIN_CHOICES)}, got {self.train!r}")
        object.__setattr__(self, "a0", a0)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "c", c)

    @property
    def state_dim(self) -> int:
        return len(self.a0)


@dataclass(frozen=True)
class FlowOptions:
    """Precision, integrator and stopping rules of a flow (validated on construction).

    Arguments:
        precision_bits: working precision in bits (>= 53): 53 = float64, 64 = longdouble, else gmpy2.
        integrator: the integrator, a value of the interface of :mod:`ssmpoison.verify._integrator`
            (``ExpColl(...)`` or ``Seulex(...)``); ``None`` chooses :func:`default_integrator`
            of what is trained (exponential collocation for A alone, SEULEX for A, B, C).
        rtol: integrator tolerance; default ``10**-(digits - 2)`` with
            ``digits = floor(precision_bits log10 2)``.
        loss_tol: convergence threshold on the training loss; default ``4**-(precision_bits - 8)``.
        t_max: time limit (status ``TIME_LIMIT``).
        blowup: magnitude of an entry that counts as divergence.
        max_steps: step budget of the integrator (status ``TIME_LIMIT`` when exhausted).
        record: keep ``(t, theta, loss)`` after every accepted step.
        anchored: with exponential collocation, only A trained and every ``c_i b_i`` equal:
            integrate in anchored coordinates (the gaps ``a_i - a_r`` to the largest entry are
            the state, :mod:`ssmpoison.verify._anchored`), which keeps near-ties of entries at full
            relative precision. SEULEX always integrates in ``a``-coordinates.
        compiled: in anchored coordinates at 53 or 64 bits, use compiled code: for a single flow without
            ``record``, the native step loop (:mod:`ssmpoison.verify._native`, when a C++ compiler builds it
            and ``SSMPOISON_ENGINE`` is neither ``reference`` nor ``heyoka``), else the compiled engine's
            kernels (:mod:`ssmpoison.verify._compiled`, when heyoka is installed and ``SSMPOISON_ENGINE`` is
            not ``reference``); ``False`` keeps the reference path (NumPy and gmpy2). They agree to the
            certified digits, not to the last bit.
        compiled_multiprecision: with ``compiled``, in anchored coordinates at the precisions whose
            reference type is ``gmpy2.mpfr`` (all but 53 and 64 bits), use compiled code there too: the
            native step loop in MPFR for a single flow without ``record`` (:mod:`ssmpoison.verify._native`),
            else the compiled engine in heyoka's ``real`` of that precision
            (:class:`ssmpoison.verify._compiled.AnchoredEngine`); ``False`` (the default) keeps the
            reference path there.

    Raises:
        ValueError: an option out of range (the message names it).
    """

    precision_bits: int = 53
    integrator: Integrator | None = None
    rtol: float | None = None
    loss_tol: float | None = None
    t_max: float = 1e20
    blowup: float = 1e6
    max_steps: int = 200_000
    record: bool = False
    anchored: bool = True
    compiled: bool = True
    compiled_multiprecision: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision_bits", require_precision_bits(self.precision_bits))
        if self.integrator is not None and not isinstance(self.integrator, Integrator):
            raise ValueError(f"integrator must be an integrator value such as ExpColl() or Seulex(), got {self.integrator!r}")
        if self.rtol is not None:
            object.__setattr__(self, "rtol", require_real("rtol", self.rtol, positive=True))
            floor = 2.0 ** -(self.precision_bits - 4)  # 16 units in the last place: tighter cannot be met
            if self.precision_bits < 1000 and self.rtol < floor:
                raise ValueError(f"rtol must be >= {floor:.3g} at {self.precision_bits}-bit precision, got {self.rtol!r}")
        if self.loss_tol is not None:
            object.__setattr__(self, "loss_tol", require_real("loss_tol", self.loss_tol, positive=True))
        object.__setattr__(self, "t_max", require_real("t_max", self.t_max, positive=True))
        object.__setattr__(self, "blowup", require_real("blowup", self.blowup, positive=True))
        object.__setattr__(self, "max_steps", require_int("max_steps", self.max_steps, minimum=1))

    @property
    def effective_rtol(self):
        if self.rtol is not None:
            return self.rtol
        digits = int(math.floor(self.precision_bits * math.log10(2)))
        return 10.0 ** -(digits - 2) if digits - 2 <= 300 else 10.0**-300

    @property
    def effective_loss_tol(self):
        if self.loss_tol is not None:
            return self.loss_tol
        if self.precision_bits < 500:
            return 4.0 ** -(self.precision_bits - 8)
        return Fraction(1, 4 ** (self.precision_bits - 8))  # below float64's range: exact


@dataclass(frozen=True)
class FlowResult:
    """Outcome of one flow. Numbers are in the working type (float64, longdouble or gmpy2.mpfr).

    ``status`` is one of :data:`FLOW_STATUSES`; ``t_converged`` is the first accepted step with
    loss <= ``loss_tol``; ``t_diverged`` the time of a divergence; ``trajectory`` holds
    ``(t, a, b, c, loss)`` after every accepted step when recorded.
    """

    status: Status
    t: object  # time at which the integration ended
    t_converged: object | None  # first accepted step with loss <= loss_tol
    t_diverged: object | None
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    loss: object
    precision_bits: int
    steps: int
    rejected: int
    trajectory: list = field(default_factory=list, repr=False)  # [(t, a, b, c, loss)]


def lowrank_linear_part(G, scale, *, precision_bits: int):
    """Frozen linear part ``L = -scale G^T G = -sum_r mu_r v_r v_r^T`` with orthonormal ``v_r``.

    The directions come from a float64 eigendecomposition of the ``N x N`` Gram matrix and are
    re-orthonormalised in the working precision; ``mu_r`` are the Rayleigh quotients
    ``scale |G v_r|^2`` in the working precision. Any exactly symmetric ``L`` is a valid
    splitting (the integrator treats ``f - L (y - y_n)`` as the forcing), so float64 accuracy
    of the directions only moves a float64-rounding fraction of the stiffness there.

    Arguments:
        G: the output gradients, shape ``(B, N, D)``, in the working type.
        scale: the loss's weight ``2/N``, in the working type.
        precision_bits: the working precision.

    Returns:
        ``(mu, V)``: ``mu`` of shape ``(B, R)``, ``V`` of shape ``(B, R, D)``.
    """
    dtype = G.dtype
    G64 = np.asarray(G, dtype=np.float64)
    gram = float(scale) * np.einsum("bnd,bmd->bnm", G64, G64)
    _, Q = np.linalg.eigh(gram)
    V = np.einsum("bnr,bnd->brd", Q, G64)
    V = np.asarray(V, dtype=dtype) if dtype != object else np.vectorize(lambda v: to_working(float(v), precision_bits), otypes=[object])(V)
    B, R, D = V.shape
    basis = []
    for r in range(R):  # modified Gram-Schmidt in the working precision
        v = V[:, r, :]
        for u in basis:
            v = v - (v * u).sum(axis=-1)[:, None] * u
        norm = np.sqrt((v * v).sum(axis=-1)) if dtype != object else np.array([gmpy2.sqrt(x) for x in (v * v).sum(axis=-1)], dtype=object)
        zero = np.array([float(n) == 0 for n in norm])
        norm = np.where(zero, to_working(1, precision_bits), norm)
        basis.append(v / norm[:, None])
    V = np.stack(basis, axis=1)
    GV = (G[:, :, None, :] * V[:, None, :, :]).sum(axis=-1)  # (B, N, R)
    mu = scale * (GV * GV).sum(axis=1)
    return mu, V


def _working(values, precision_bits: int):
    return np.array([to_working(v, precision_bits) for v in values], dtype=working_dtype(precision_bits))


def run_flows(problems: list[FlowProblem], options: FlowOptions = FlowOptions()) -> list[FlowResult]:
    """Integrate several flows that share the training set, B, C and ``train`` (batched, one step size).

    Each result has its own convergence time; the batch runs until every member has
    converged or diverged, or the time / step limit is reached.

    Arguments:
        problems: the flows (at least one); they must share ``training_set``, ``b``, ``c``,
            ``train`` and the state dimension.
        options: precision, integrator and stopping rules.

    Returns:
        One :class:`FlowResult` per problem, in order.

    Raises:
        ValueError: no problems, problems that differ in what they must share, or an
            integrator that cannot integrate the flow (exponential collocation for A, B, C).
    """
    if not problems:
        raise ValueError("problems must not be empty")
    first = problems[0]
    for p in problems[1:]:
        if (p.training_set, p.b, p.c, p.train, p.state_dim) != (first.training_set, first.b, first.c, first.train, first.state_dim):
            raise ValueError("problems: batched flows must share training_set, b, c, train and state_dim")
    integrator = options.integrator if options.integrator is not None else default_integrator(first.train, first.training_set)
    if first.train != "a" and isinstance(integrator, ExpColl):
        raise ValueError(
            f"integrator: exponential collocation integrates flows of A alone (train='a'), not train={first.train!r}; use Seulex()"
        )
    with working_context(options.precision_bits):
        return _run(problems, options, integrator)


def run_flow(problem: FlowProblem, options: FlowOptions = FlowOptions()) -> FlowResult:
    """Integrate one gradient flow; see :class:`FlowOptions` for precision, integrator and stopping rules."""
    return run_flows([problem], options)[0]


def _run(problems, options: FlowOptions, integrator: Integrator) -> list[FlowResult]:
    """:func:`run_flows` inside the working context of ``options.precision_bits``."""
    precision_bits = options.precision_bits
    dtype = working_dtype(precision_bits)
    first = problems[0]
    ts = first.training_set
    B, D = len(problems), first.state_dim
    U = np.array([[to_working(v, precision_bits) for v in row] for row in ts.inputs], dtype=dtype)
    y = _working(ts.labels, precision_bits)
    N = ts.samples
    two_over_n = to_working(2, precision_bits) / to_working(N, precision_bits)
    a0 = np.stack([_working(p.a0, precision_bits) for p in problems])
    b0, c0 = _working(first.b, precision_bits), _working(first.c, precision_bits)
    loss_tol = to_working(options.effective_loss_tol, precision_bits)
    linear_part = make_solver = None
    extra = {}
    native = False

    use_expcoll = isinstance(integrator, ExpColl)
    kappa = uniform_gain(b0, c0) if (use_expcoll and first.train == "a" and D >= 2 and options.anchored) else None
    if kappa is not None:  # anchored coordinates: the gaps between entries are the state (verify.anchored)
        anchor = anchor_index(a0)
        theta0 = to_anchored(a0, anchor)

        def split(theta):
            return from_anchored(theta, anchor), b0, c0

        def fun(theta):
            return neg_grad_anchored(theta, anchor, kappa, U, y)

        def linear_part(theta):
            return anchored_linear_part(theta, anchor, kappa, U, two_over_n, precision_bits=precision_bits)

        # the native step loop (verify._native) runs a single flow whole; else the compiled engine's kernels
        native = (options.compiled and B == 1 and not options.record and not getattr(integrator, "fixed_step", True)
                  and native_available(precision_bits, options.compiled_multiprecision, D))
        if options.compiled and not native:
            from ssmpoison.verify._compiled import anchored_engine

            engine = anchored_engine(anchor, kappa, U, y, precision_bits, multiprecision=options.compiled_multiprecision)
            if engine is not None:
                extra["engine"] = engine

                def linear_part(theta):
                    return engine.linear_part(theta, two_over_n)

    elif first.train == "a":
        theta0 = a0

        def split(theta):
            return theta, b0, c0

        def fun(theta):
            return kernels.neg_grad_a(theta, b0, c0, U, y)

        def linear_part(theta):
            _, G = kernels.jacobian_a(theta, b0, c0, U, y)
            return lowrank_linear_part(G, two_over_n, precision_bits=precision_bits)

        def make_solver(theta):
            d, G = kernels.jacobian_a(theta, b0, c0, U, y)
            return diag_plus_lowrank_solver(d, G, Fraction(2, N))

    else:
        theta0 = np.stack([a0, np.broadcast_to(b0, a0.shape), np.broadcast_to(c0, a0.shape)], axis=-2)  # (B, 3, D)

        def split(theta):
            return theta[..., 0, :], theta[..., 1, :], theta[..., 2, :]

        def fun(theta):
            return kernels.neg_grad_abc(*split(theta), U, y)

        def make_solver(theta):
            solve = dense_solver(kernels.jacobian_abc(*split(theta), U, y))
            shape = theta.shape
            return lambda h, r: solve(h, r.reshape(shape[:-2] + (3 * D,))).reshape(shape)

    t_conv: list = [None] * B
    trajectory: list = []
    loss0 = kernels.loss(*split(theta0), U, y)
    for k in range(B):
        if loss0[k] <= loss_tol:
            t_conv[k] = to_working(0, precision_bits)
    if options.record:
        trajectory.append((to_working(0, precision_bits), *(np.array(v, copy=True) for v in split(theta0)), loss0))

    # a zero of the vector field is a fixed point (uniqueness of solutions): a member that starts at one
    # with the loss above tolerance never moves (e.g. a = 0, where every output gradient has a factor
    # a^(H-2)) and is stalled from the start. (Slow motion is not evidence of a fixed point: a flow can
    # linger near a saddle for a long time and then leave it, so nothing else is called stalled.)
    with np.errstate(over="ignore", invalid="ignore"):
        f0 = fun(theta0)
    fixed = [t_conv[k] is None and not np.any(f0[k] != 0) for k in range(B)]

    def observe(t, theta):
        L = kernels.loss(*split(theta), U, y)
        for k in range(B):
            if t_conv[k] is None and L[k] <= loss_tol:
                t_conv[k] = t
        if options.record:
            trajectory.append((t, *(np.array(v, copy=True) for v in split(theta)), L))

    def stop(t, theta):
        # the command's wall-clock budget ends the run (status TIME_LIMIT for every member not converged)
        return budget_expired() or all(tc is not None or f for tc, f in zip(t_conv, fixed))

    rtol = options.effective_rtol
    scale = max(abs(float(v)) for p in problems for v in p.a0)
    atol = rtol * 1e-3 * (scale if scale > 0 else 1.0)  # a0 = 0: the entries' scale is the labels', O(1)
    native = native and not fixed[0] and t_conv[0] is None  # else no step is taken: the reference path
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # non-finite states end as diverged
        if native:  # the whole step loop compiled (verify._native): same method, same stopping rules
            res, t_conv[0] = integrate_anchored(
                theta0[0], int(anchor[0]), kappa, U, y, precision_bits=precision_bits, nodes=integrator.node_count(precision_bits),
                max_picard=integrator.sweep_limit(precision_bits), t_end=to_working(options.t_max, precision_bits),
                rtol=to_working(rtol, precision_bits), atol=to_working(atol, precision_bits),
                initial_step=first_step(integrator, theta0, f0, rtol, atol, precision_bits), loss_tol=loss_tol,
                blowup=float(options.blowup), max_steps=options.max_steps, deadline=time.monotonic() + budget_seconds_left())
            res = replace(res, y=res.y[None])
        else:
            res = integrator.integrate(
                fun, theta0, 0, options.t_max,
                precision_bits=precision_bits, rtol=rtol, atol=atol, max_steps=options.max_steps,
                linear_part=linear_part, make_solver=make_solver,
                stop=stop, observe=observe, blowup=options.blowup, **extra,
            )
    theta = res.y
    a, b, c = split(theta)
    L = kernels.loss(a, b, c, U, y)
    diverged = res.status in (Status.BLOWUP, Status.STEP_TOO_SMALL)
    out = []
    for k in range(B):
        if t_conv[k] is not None:
            status = Status.CONVERGED
        elif diverged:
            status = Status.DIVERGED
        elif fixed[k]:
            status = Status.STALLED
        else:
            status = Status.TIME_LIMIT
        traj = [(t, aa[k], np.broadcast_to(bb, aa.shape)[k], np.broadcast_to(cc, aa.shape)[k], ll[k]) for t, aa, bb, cc, ll in trajectory]
        out.append(
            FlowResult(
                status=status,
                t=res.t,
                t_converged=t_conv[k],
                t_diverged=res.t if (diverged and t_conv[k] is None) else None,
                a=np.array(a[k]),
                b=np.array(np.broadcast_to(b, a.shape)[k]),
                c=np.array(np.broadcast_to(c, a.shape)[k]),
                loss=L[k],
                precision_bits=precision_bits,
                steps=res.n_steps,
                rejected=res.n_rejected,
                trajectory=traj,
            )
        )
    return out
