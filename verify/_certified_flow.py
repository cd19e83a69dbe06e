"""Flows with certified digits: every run is paired with an independent, more accurate re-run.

``certified_flows(problems, quantity, policy)`` integrates gradient flows and reports a
scalar ``quantity(a, b, c)`` of each limit (e.g. the extrapolation error) with its
certified significant digits (:mod:`ssmpoison.verify._certify`), under a
:class:`~ssmpoison.verify._certification.CertificationPolicy` (the precisions of the run and
of its re-run, the digit cap; its docstring states the fast path and the ``P``-bit path):

* **Exact oracle** (clean flows with B = C = 1 and the single training sequence e_0, all
  entries positive; :mod:`ssmpoison.theory._oracle`): the limit is the root of a one-dimensional
  equation, solved at the run's precision and, for the reference, at 64 more bits; both
  include the guard bits the cancellation needs. Scaled copies ``alpha_k e_0`` with labels
  ``alpha_k y`` reduce to it: their loss is ``c (S - y)^2`` with ``c = mean(alpha_k^2)``, so the
  flow is that of ``{e_0}`` with label ``y``, run ``c`` times faster (same limit; the loss
  threshold ``tol`` of the flow is ``tol / c`` on ``(S - y)^2``; note 03 §7).
* **Integration** (everything else): the gradient flows of :mod:`ssmpoison.verify._flow`, run and re-run
  at the policy's precisions. The reference also carries its own loss threshold, so the
  truncation of the flow at convergence is part of what is certified. A training set whose
  sequences are linearly dependent (e.g. ``{e_0, 2 e_0}``) is integrated with ``Seulex``, the
  flows' default there (:func:`ssmpoison.verify._flow.default_integrator`; note 03 §7).
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import math
from dataclasses import dataclass
from fractions import Fraction

import mpmath
import numpy as np

from ssmpoison.theory import _oracle as oracle
from ssmpoison.verify._certification import CertificationPolicy
from ssmpoison.verify._status import Status
from ssmpoison.verify._certify import Certified, certify, to_mpf
from ssmpoison.verify._flow import FlowOptions, FlowProblem, run_flows

__all__ = ["CertifiedRun", "certified_flows", "oracle_applies", "require_reachable", "serial_flows"]


@dataclass(frozen=True)
class CertifiedRun:
    """One flow with its certified quantity.

    ``method`` is ``"oracle"`` or ``"integration"``; ``status`` a flow status
    (:data:`ssmpoison.verify._flow.FLOW_STATUSES`); ``precision_bits`` is the run's working
    precision (53 on the fast path) and ``reference_bits`` the re-run's.
    """

    problem: FlowProblem
    method: str
    status: Status
    quantity: Certified
    t_converged: float | None
    train_loss: float
    precision_bits: int
    reference_bits: int
    limit: tuple  # the run's final a (as mpmath.mpf)
    steps: int = 0
    note: str = ""

    def value_text(self) -> str:
        """The quantity as printed everywhere: its certified digits, or why there are none.

        Returns:
            ``"<value> (<k> certified digits)"``; for a run that did not converge ``"— (<status>)"``;
            with no digit certified, both values and the bound ``|E| <= |value| + |value - re-run|``.
        """
        if self.status != Status.CONVERGED:
            return f"— ({self.status})"
        q = self.quantity
        if q.digits == 0:
            return (f"no digit certified: {float(q.value):.1e}, the re-run {float(q.reference):.1e} "
                    f"(|E| <= {float(abs(q.value) + abs(q.value - q.reference)):.1e})")
        return f"{q.text} ({q.digits} certified digits)"


def oracle_applies(problem: FlowProblem) -> bool:
    """True for the clean theory-row flow and its scalings.

    Train A only, B = C = 1, H >= 3, a0 > 0, and either one sequence e_0 with a positive label
    or sequences ``alpha_k e_0`` (``alpha_k != 0``) with labels ``alpha_k y``, one ``y > 0``
    (:func:`_oracle_reduction`).
    """
    ts = problem.training_set
    if problem.train != "a" or ts.horizon < 3:
        return False
    if any(v != 1 for v in problem.b) or any(v != 1 for v in problem.c):
        return False
    if not all(v > 0 for v in problem.a0):
        return False
    return _oracle_reduction(ts) is not None


def _oracle_reduction(ts):
    """``(y, c)`` of a set of scaled ``e_0`` with proportional labels, or ``None``.

    For inputs ``alpha_k e_0`` and labels ``y_k = alpha_k y`` the loss is
    ``(1/N) sum_k (alpha_k S - alpha_k y)^2 = c (S - y)^2`` with ``S = sum_i a_i^{H-1}`` and
    ``c = mean(alpha_k^2)``. The single sequence ``e_0`` gives ``(labels[0], 1)`` itself (the
    theory row's flow, untouched); otherwise ``y`` and ``c`` are exact ``Fraction`` values (the
    inputs' binary floats are exact rationals). ``None`` unless ``y > 0``.
    """
    H = ts.horizon
    if ts.samples == 1 and tuple(ts.inputs[0]) == tuple(1 if k == 0 else 0 for k in range(H)):
        return (ts.labels[0], 1) if ts.labels[0] > 0 else None
    alphas = []
    for row in ts.inputs:
        if any(v != 0 for v in row[1:]) or row[0] == 0:
            return None
        alphas.append(Fraction(row[0]))
    labels = [Fraction(v) for v in ts.labels]
    y = labels[0] / alphas[0]
    if y <= 0 or any(lab != alpha * y for alpha, lab in zip(alphas, labels)):
        return None
    return y, sum(alpha * alpha for alpha in alphas) / len(alphas)


def _oracle_time(a0, horizon: int, label, loss_tol: float) -> float:
    """:func:`_oracle_time_of` of the entries ``a0`` (any sequence), computed once per flow (the
    reachability check and the run both ask for it)."""
    return _oracle_time_of(tuple(a0), horizon, label, loss_tol)


@functools.lru_cache(maxsize=1024)
def _oracle_time_of(a0: tuple, horizon: int, label, loss_tol: float) -> float:
    """Time at which the clean flow's loss reaches ``loss_tol`` (float64 quadrature of the exact reduction).

    With ``x_i = a_i(0)^-p`` and ``d_i = x_i - min x`` (formed at high precision), ``w = min x - s``
    runs from ``min x`` to ``w_eta`` and ``dt = -dw / (2p(H-1)(S(w) - y*))`` with
    ``S(w) = sum (d_i + w)^-q``; substituting ``w = w* + sign e^v`` removes the endpoint
    singularity. Below ``eta_0 = 1e-9 y*`` (beyond float64 resolution of ``S - y*``) the
    approach is linear, ``S - y* ~ e^{-lambda t}`` with ``lambda = 2p(H-1) q sum (d_i + w*)^{-q-1}``,
    so the remaining time is ``ln(eta_0 / eta) / lambda``. Reported to 3 significant digits.
    """
    H = horizon
    if H == 3:
        return float(oracle.clean_convergence_time(a0, H, loss_tol, label, precision_bits=53))
    p, q = H - 3, (H - 1) / (H - 3)
    y = float(label)
    tol = mpmath.mpf(loss_tol.numerator) / loss_tol.denominator if isinstance(loss_tol, Fraction) else mpmath.mpf(loss_tol)
    eta_target = mpmath.sqrt(tol)  # loss_tol may lie below float64's range (an exact Fraction)
    eta = max(float(eta_target), 1e-9 * y)
    S0 = float(sum(mpmath.mpf(float(v)) ** (H - 1) for v in a0))
    if abs(S0 - y) <= eta:
        return 0.0
    with mpmath.workprec(256):
        x = [mpmath.mpf(float(v)) ** -p for v in a0]
        xmin = min(x)
        # S(w) <= y on the way, so t >= (w0 - w_eta) / (2p(H-1) y) with w_eta < y^(-1/q): the time is
        # at least this lower bound, which says when it lies beyond float64 (entries near the underflow)
        if xmin - y ** (-1 / q) > mpmath.mpf(2) ** 1000:
            return math.inf
        d = np.array([float(xi - xmin) for xi in x])
        w0 = float(xmin)

    def S(w):  # w: a number, or an array of points (then S at each)
        return np.sum((d + np.asarray(w)[..., None]) ** -q, axis=-1)

    def root(target):
        lo, hi = target ** (-1 / q), (len(d) / target) ** (1 / q)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if S(mid) > target:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    w_star = root(y)
    w_eta = root(y - eta if S0 < y else y + eta)
    sign = 1.0 if w0 > w_star else -1.0
    rate = 2 * p * (H - 1)
    v0, v_eta = math.log(abs(w0 - w_star)), math.log(abs(w_eta - w_star))

    def integrand(v):  # v: an array of points
        step = np.exp(v)
        return step / (rate * np.abs(S(w_star + sign * step) - y))

    t = _quadrature(integrand, v_eta, v0, rtol=1e-10)
    rate_lin = rate * q * float(np.sum((d + w_star) ** (-q - 1)))
    return t + float(mpmath.log(eta / eta_target)) / rate_lin


_GAUSS = {}


def _gauss_nodes(n: int):
    """Nodes and weights of ``n``-point Gauss–Legendre on (-1, 1) (float64, cached)."""
    if n not in _GAUSS:
        _GAUSS[n] = np.polynomial.legendre.leggauss(n)
    return _GAUSS[n]


def _quadrature(f, a: float, b: float, rtol: float, max_panels: int = 1000) -> float:
    """``int_a^b f(v) dv`` by globally adaptive Gauss–Legendre quadrature (float64).

    Each panel is integrated with 15 and with 30 nodes; ``|G30 - G15|`` bounds the error of ``G30``
    for a smooth integrand. The panel with the largest bound is halved until the bounds sum to at
    most ``rtol |total|``, or to the rounding level of float64 (``2^-46`` of ``int |f|``), or
    ``max_panels`` panels. ``f`` takes an array of points and returns their values. (SciPy's
    ``quad`` does the same job; importing ``scipy.integrate`` costs more than every use of this
    function in a command.)

    Arguments:
        f: the vectorised integrand; a, b: the limits; rtol: the relative tolerance;
        max_panels: the most panels before the estimate is returned as it stands.

    Returns:
        The integral's estimate (0 when ``a == b``; negative when ``b < a``).
    """
    if a == b:
        return 0.0
    (x15, w15), (x30, w30) = _gauss_nodes(15), _gauss_nodes(30)
    nodes = np.concatenate([x15, x30])

    def panel(lo, hi):
        c, r = 0.5 * (lo + hi), 0.5 * (hi - lo)
        values = f(c + r * nodes)
        coarse, fine = r * float(w15 @ values[:15]), r * float(w30 @ values[15:])
        return (-abs(fine - coarse), lo, hi, fine, abs(r) * float(w30 @ np.abs(values[15:])))

    heap = [panel(a, b)]
    total, error, magnitude = heap[0][3], -heap[0][0], heap[0][4]
    while len(heap) < max_panels and error > max(rtol * abs(total), 2.0**-46 * magnitude):
        worst = heapq.heappop(heap)
        mid = 0.5 * (worst[1] + worst[2])
        halves = panel(worst[1], mid), panel(mid, worst[2])
        for h in halves:
            heapq.heappush(heap, h)
        total += halves[0][3] + halves[1][3] - worst[3]
        error += worst[0] - halves[0][0] - halves[1][0]
        magnitude += halves[0][4] + halves[1][4] - worst[4]
    return math.fsum(p[3] for p in heap)


def _reachable_time(problem: FlowProblem, loss_tol, t_max: float) -> float:
    """The oracle's convergence time of a clean flow, or ``ValueError`` when it lies past ``t_max``."""
    H = problem.training_set.horizon
    y, c = _oracle_reduction(problem.training_set)
    if c == 1:
        t_converged = _oracle_time(problem.a0, H, y, loss_tol)
    else:  # the loss is c (S - y)^2: the flow of {e_0} run c times faster, stopped at (S - y)^2 <= tol / c
        t_converged = _oracle_time(problem.a0, H, y, Fraction(loss_tol) / c) / float(c)
    if t_converged > t_max:
        when = "t beyond float64's range" if math.isinf(t_converged) else f"t = {t_converged:.2e}"
        raise ValueError(
            f"initialisation: the clean flow reaches its loss tolerance only at {when}, past the flows' time "
            f"limit {t_max:.0e}: the largest initial entry {float(max(problem.a0)):.3g} is too small for H = {H} "
            "(raise --init-scale or the entries of --init)")
    return t_converged


def require_reachable(problems, policy: CertificationPolicy = CertificationPolicy(), t_max: float = 1e20) -> None:
    """Refuse, before any run, flows the exact oracle shows cannot converge within ``t_max``.

    Arguments:
        problems: the flows :func:`certified_flows` is about to run.
        policy: their certification policy (its run precision sets the loss threshold).
        t_max: the time limit of the flows.

    Raises:
        ValueError: a clean flow of the oracle's kind converges only after ``t_max`` (its initial entries
            are too small for its horizon), naming the initialisation.
    """
    loss_tol = FlowOptions(precision_bits=policy.oracle_bits[0]).effective_loss_tol
    for p in problems:
        if oracle_applies(p):
            _reachable_time(p, loss_tol, t_max)


def _oracle_runs(problems, quantity, policy: CertificationPolicy, t_max: float) -> list[CertifiedRun]:
    bits, oracle_bits, ref_bits = policy.oracle_bits
    cap = policy.digits_cap
    loss_tol = FlowOptions(precision_bits=bits).effective_loss_tol
    out = []
    for p in problems:
        H, (y, _) = p.training_set.horizon, _oracle_reduction(p.training_set)
        t_converged = _reachable_time(p, loss_tol, t_max)
        run_limit = oracle.clean_limit(p.a0, H, y, precision_bits=oracle_bits)
        ref_limit = oracle.clean_limit(p.a0, H, y, precision_bits=ref_bits)
        with mpmath.workprec(oracle_bits):
            value = quantity(run_limit, [mpmath.mpf(v) for v in p.b], [mpmath.mpf(v) for v in p.c])
        with mpmath.workprec(ref_bits):
            ref = quantity(ref_limit, [mpmath.mpf(v) for v in p.b], [mpmath.mpf(v) for v in p.c])
        out.append(
            CertifiedRun(
                problem=p,
                method="oracle",
                status=Status.CONVERGED,
                quantity=certify(value, ref, cap),
                t_converged=t_converged,
                train_loss=0.0,
                precision_bits=bits,
                reference_bits=ref_bits,
                limit=tuple(run_limit),
                note="exact one-dimensional reduction of the clean flow (conserved a_i^-(H-3) differences)",
            )
        )
    return out


def serial_flows(items) -> list:
    """Integrate ``(problem, options)`` pairs one after another in this process, one flow per integration.

    Arguments:
        items: ``(FlowProblem, FlowOptions)`` pairs.

    Returns:
        Their :class:`~ssmpoison.verify._flow.FlowResult`, in order.
    """
    # one flow per integration: batched flows share one step size, which costs more than it saves
    return [run_flows([p], options)[0] for p, options in items]


def _integration_runs(problems, quantity, policy: CertificationPolicy, t_max: float, flows=serial_flows) -> list[CertifiedRun]:
    run_opts, ref_opts = policy.run_options(t_max), policy.reference_options(t_max)
    cap = policy.digits_cap
    both = flows([(p, run_opts) for p in problems] + [(p, ref_opts) for p in problems])
    runs, refs = both[: len(problems)], both[len(problems):]
    out = [_certified(p, r, f, quantity, cap, run_opts, ref_opts) for p, r, f in zip(problems, runs, refs)]
    if policy.fast_path:
        # where float64 cannot carry the digits asked for (ill-conditioned flows), report the
        # longdouble run instead, certified by an independent re-run at more bits
        weak = [k for k, c in enumerate(out) if c.status == Status.CONVERGED and c.quantity.digits < policy.target_digits]
        if weak:
            hi_opts = policy.escalation_options(t_max)
            his = flows([(problems[k], hi_opts) for k in weak])
            for k, hi in zip(weak, his):
                better = _certified(problems[k], refs[k], hi, quantity, policy.escalation_digits_cap, ref_opts, hi_opts)
                if better.quantity.digits > out[k].quantity.digits:
                    note = (f"float64 carried only {out[k].quantity.digits} digits here (ill-conditioned flow); longdouble run, "
                            f"certified by a {hi_opts.precision_bits}-bit re-run")
                    out[k] = dataclasses.replace(better, note=note)
    return out


def _certified(problem, run, ref_run, quantity, cap, run_opts, ref_opts) -> CertifiedRun:
    value = _quantity_of(quantity, run)
    ref = _quantity_of(quantity, ref_run)
    both = run.status == Status.CONVERGED and ref_run.status == Status.CONVERGED
    return CertifiedRun(
        problem=problem,
        method="integration",
        status=run.status,
        quantity=certify(value, ref, cap if both else 0),
        t_converged=None if run.t_converged is None else float(run.t_converged),
        train_loss=float(run.loss),
        precision_bits=run_opts.precision_bits,
        reference_bits=ref_opts.precision_bits,
        limit=tuple(to_mpf(v) for v in run.a),
        steps=run.steps,
        note="" if run.status == Status.CONVERGED else f"run ended with status {run.status}",
    )


def _quantity_of(quantity, result):
    with mpmath.workprec(max(result.precision_bits, 53) + 16):
        a = [to_mpf(v) for v in result.a]
        b = [to_mpf(v) for v in result.b]
        c = [to_mpf(v) for v in result.c]
        return quantity(a, b, c)


def certified_flows(
    problems: list[FlowProblem],
    quantity,
    policy: CertificationPolicy = CertificationPolicy(),
    *,
    use_oracle: bool = True,
    t_max: float = 1e20,
    flows=serial_flows,
) -> list[CertifiedRun]:
    """Run every flow and certify ``quantity(a, b, c)`` of its limit (see the module docstring).

    Arguments:
        problems: flows; those that share training set, B, C and ``train`` are integrated together.
        quantity: function of the limit's ``a, b, c`` (sequences of ``mpmath.mpf``), evaluated under
            ``mpmath.workprec``; e.g. ``lambda a, b, c: extrapolation_error(a, b, c, D, 20)``.
        policy: the precisions of the runs and re-runs and the digit cap; the default is the fast
            path (:data:`ssmpoison.verify._certification.FAST_PATH`).
        use_oracle: use the exact oracle where it applies (else integrate every flow).
        t_max: time limit of the integrations.
        flows: integrates a list of ``(problem, options)`` pairs and returns their flow results in order
            (:func:`serial_flows`, the default, in this process; the theory row passes one that looks up
            the flows it started in worker processes).

    Returns:
        One :class:`CertifiedRun` per problem, in order.
    """
    results: dict[int, CertifiedRun] = {}
    exact = [k for k, p in enumerate(problems) if use_oracle and oracle_applies(p)]
    for k, run in zip(exact, _oracle_runs([problems[k] for k in exact], quantity, policy, t_max)):
        results[k] = run
    groups: dict[tuple, list[int]] = {}
    for k, p in enumerate(problems):
        if k not in results:
            groups.setdefault((p.training_set, p.b, p.c, p.train, p.state_dim), []).append(k)
    for members in groups.values():
        for k, run in zip(members, _integration_runs([problems[k] for k in members], quantity, policy, t_max, flows)):
            results[k] = run
    return [results[k] for k in range(len(problems))]
