"""Gradient-flow engine: statuses, order preservation, agreement with the exact oracle, honest digits."""

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmpoison.theory import clean_training_set, extrapolation_error, poisoned_training_set
from ssmpoison.theory import clean_limit
from ssmpoison.theory import TrainingSet, impulse
from ssmpoison.verify import kernels
from ssmpoison.verify import CertificationPolicy
from ssmpoison.verify import Status
from ssmpoison.verify._certified_flow import certified_flows, oracle_applies
from ssmpoison.verify._certify import correct_digits, to_mpf
from ssmpoison.verify import ExpColl
from ssmpoison.verify._flow import FLOW_STATUSES, FlowOptions, FlowProblem, default_integrator, run_flow, run_flows
from ssmpoison.verify import Seulex


def test_status_converged_stable_flow():
    r = run_flow(FlowProblem(clean_training_set(4), (1.5, 0.2)))
    assert r.status == "converged" and r.t_converged is not None
    assert float(r.loss) <= FlowOptions().effective_loss_tol
    assert abs(float(r.a[0]) ** 3 + float(r.a[1]) ** 3 - 1) < 1e-12


def test_status_diverged_started_above_one():
    """A, B, C trained with K_0 = CB labelled 0 and K_{H-1} labelled 1: the infimum needs a -> infinity."""
    ts = TrainingSet([impulse(4, 3), impulse(4, 0)], [0, 1])
    r = run_flow(FlowProblem(ts, (1.5,), (1.0,), (1.0,), train="abc"), FlowOptions(blowup=10, rtol=1e-10))
    assert r.status == "diverged" and r.t_diverged is not None and float(r.t_diverged) > 0
    assert abs(float(r.a[0])) > 10


def test_status_time_limit_on_plateau():
    r = run_flow(FlowProblem(clean_training_set(7), (1e-2, 2e-2)), FlowOptions(t_max=1e4))
    assert r.status == "time_limit" and r.t_converged is None and float(r.t) == 1e4


@settings(max_examples=15)
@given(
    st.integers(3, 6),
    st.lists(st.floats(0.05, 0.6), min_size=2, max_size=4, unique=True),
    st.lists(st.floats(-1, 1), min_size=2, max_size=2),
)
def test_order_preserved_with_b_c_one(H, a0, y):
    """With B = C = 1 every entry obeys the same scalar ODE: a_i(0) > a_j(0) implies a_i(t) >= a_j(t).

    (Strictly greater in exact arithmetic; entries may approach each other asymptotically, so the
    numerical check allows ties at the level of the integration tolerance but no reversal. The
    property holds on every stretch of a trajectory: at most 500 accepted steps are checked, since
    some of these flows creep for tens of thousands of steps before t = 1e3.)"""
    ts = TrainingSet([impulse(H, 0), tuple(np.linspace(0.5, -0.5, H))], y)
    r = run_flow(FlowProblem(ts, tuple(a0)), FlowOptions(record=True, rtol=1e-9, t_max=1e3, max_steps=500))
    order = np.argsort(a0)
    assert len(r.trajectory) > 2
    for _, a, _, _, _ in r.trajectory:
        a = np.asarray(a, dtype=float)[order]
        assert np.all(np.diff(a) >= -1e-9 * np.max(np.abs(a)))


def test_integrator_agrees_with_exact_oracle_at_high_precision():
    """The stiff arbitrary-precision integrator reproduces the oracle's limit of a clean flow to >= 30 digits."""
    a0 = (0.31, 0.3, 0.12)
    r = run_flow(FlowProblem(clean_training_set(5), a0), FlowOptions(precision_bits=160))
    assert r.status == "converged"
    exact = clean_limit(a0, 5, precision_bits=300)
    with mpmath.workprec(300):
        err = max(abs(to_mpf(x) - e) / abs(e) for x, e in zip(r.a, exact))
    assert err < mpmath.mpf("1e-30")


def test_batched_equals_single():
    ts = poisoned_training_set(5)
    ps = [FlowProblem(ts, (0.2, 0.1, 0.05)), FlowProblem(ts, (0.3, 0.15, 0.01))]
    batch = run_flows(ps, FlowOptions(rtol=1e-11))
    for p, b in zip(ps, batch):
        single = run_flow(p, FlowOptions(rtol=1e-11))
        assert np.allclose(b.a, single.a, rtol=1e-8, atol=1e-10)


def test_flow_rhs_is_the_gradient():
    """The engine integrates -grad L: the loss decreases monotonically along the recorded trajectory."""
    r = run_flow(FlowProblem(poisoned_training_set(5), (0.2, 0.1, 0.05)), FlowOptions(record=True))
    losses = [float(L) for *_, L in r.trajectory]
    assert all(l2 <= l1 * (1 + 1e-12) for l1, l2 in zip(losses, losses[1:]))


def test_certified_digits_are_honest_and_loose_runs_report_fewer():
    """A tolerance-1e-6 run certified against a tight reference claims few digits, and none of them wrong."""
    ts = poisoned_training_set(5)
    p = FlowProblem(ts, (0.2, 0.1, 0.05))
    q = lambda a, b, c: extrapolation_error(a, b, c, 3, 20)  # noqa: E731
    truth_run = run_flow(p, FlowOptions(precision_bits=200))
    with mpmath.workprec(220):
        truth = q([to_mpf(v) for v in truth_run.a], [1] * 3, [1] * 3)
    default = certified_flows([p], q)[0]
    assert default.quantity.digits >= 8
    assert correct_digits(default.quantity.text, truth) >= default.quantity.digits
    loose = run_flow(p, FlowOptions(rtol=1e-6))
    from ssmpoison.verify import certify

    with mpmath.workprec(100):
        loose_value = q([to_mpf(v) for v in loose.a], [1] * 3, [1] * 3)
    c = certify(loose_value, default.quantity.value, 14)
    assert c.digits < default.quantity.digits
    assert correct_digits(c.text, truth) >= c.digits


def test_oracle_fast_path_applies_only_to_clean_theory_flows():
    assert oracle_applies(FlowProblem(clean_training_set(6), (0.1, 0.05)))
    assert not oracle_applies(FlowProblem(poisoned_training_set(6), (0.1, 0.05)))
    assert not oracle_applies(FlowProblem(clean_training_set(6), (0.1, -0.05)))
    assert not oracle_applies(FlowProblem(clean_training_set(6), (0.1, 0.05), b=(1, 2)))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(precision_bits=52), "precision_bits must be >= 53"),
        (dict(integrator="seulex"), "integrator must be"),
        (dict(rtol=float("nan")), "rtol must be finite"),
        (dict(t_max=-1.0), "t_max must be > 0"),
        (dict(rtol=1e-15), "rtol must be >= 1.78e-15 at 53-bit precision"),
    ],
)
def test_options_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FlowOptions(**kwargs)


def test_problem_validation():
    with pytest.raises(ValueError, match=r"a0\[1\] must be finite"):
        FlowProblem(clean_training_set(4), (0.1, float("nan")))
    with pytest.raises(ValueError, match="b must have length 2"):
        FlowProblem(clean_training_set(4), (0.1, 0.2), b=(1, 1, 1))


def test_kernels_used_by_engine_in_gmpy2_match_float64():
    import gmpy2

    with gmpy2.local_context(gmpy2.get_context(), precision=113):
        a = np.array([gmpy2.mpfr("0.3"), gmpy2.mpfr("0.1")], dtype=object)
        one = np.array([gmpy2.mpfr(1)] * 2, dtype=object)
        U = np.array([[gmpy2.mpfr(v) for v in row] for row in poisoned_training_set(4).inputs], dtype=object)
        y = np.array([gmpy2.mpfr(1), gmpy2.mpfr(1)], dtype=object)
        g = kernels.neg_grad_a(a, one, one, U, y)
    ref = kernels.neg_grad_a(np.array([0.3, 0.1]), np.ones(2), np.ones(2), np.array(U, dtype=float), np.ones(2))
    assert np.allclose(np.array(g, dtype=float), ref, rtol=1e-15)


def test_float64_convergence_time_matches_exact_quadrature():
    """The fast clean-flow time (float64 quadrature + linear tail) agrees with theory.oracle's mpmath quadrature."""
    from ssmpoison.theory import clean_convergence_time
    from ssmpoison.verify._certified_flow import _oracle_time

    a0 = (0.31, 0.3, 0.12, 0.05)
    for H, tol in ((5, 1e-20), (6, 1e-40)):
        exact = float(clean_convergence_time(a0, H, tol, precision_bits=64))
        assert abs(_oracle_time(a0, H, 1, tol) - exact) <= 1e-6 * exact


def test_adaptive_quadrature_against_closed_forms():
    """The reachability time's quadrature (15/30-node Gauss–Legendre panels, the worst halved): a degree-29
    polynomial, e^v and a peak of width 1e-3 to 1e-12 relative, signed limits."""
    import math

    from ssmpoison.verify._certified_flow import _quadrature

    poly = _quadrature(lambda v: v**29 + 3 * v**2, 0.0, 2.0, rtol=1e-10)
    assert math.isclose(poly, 2.0**30 / 30 + 8.0, rel_tol=1e-12)  # the rounded nodes, amplified by the degree
    assert math.isclose(_quadrature(np.exp, -30.0, 5.0, rtol=1e-12), math.exp(5) - math.exp(-30), rel_tol=1e-12)
    eps = 1e-3
    peak = _quadrature(lambda v: 1 / (eps**2 + v * v), -1.0, 1.0, rtol=1e-12)
    assert math.isclose(peak, 2 * math.atan(1 / eps) / eps, rel_tol=1e-12)
    assert math.isclose(_quadrature(np.exp, 1.0, 0.0, rtol=1e-12), 1 - math.e, rel_tol=1e-12)
    assert _quadrature(np.exp, 0.5, 0.5, rtol=1e-12) == 0.0


def test_extrapolation_error_uses_the_kernels_impulse_response():
    """theory.construction's K_j (plain loops, exact) equals ssmpoison.verify._kernels.impulse_response."""
    from fractions import Fraction

    a, b, c = [Fraction(1, 3), Fraction(-1, 5)], [Fraction(1), Fraction(2)], [Fraction(1, 2), Fraction(3)]
    K = kernels.impulse_response(np.array(a, dtype=object), np.array(b, dtype=object), np.array(c, dtype=object), 6)
    target = (2, 1, 1, 1, 1, 1)
    expected = max(abs(k - t) for k, t in zip(K, target)) / 2
    assert extrapolation_error(a, b, c, 2, 6) == expected


def test_default_path_escalates_when_float64_cannot_carry_the_target():
    """Theory row, H = 7 poisoned, seed 242: float64 certifies 11-12 digits (anchored coordinates);
    asking for one more reports the longdouble run, certified by an 80-bit re-run, and every
    claimed digit is correct."""
    from ssmpoison.verify import published_setting
    from ssmpoison.verify._theory_row import _quantity, theory_row_problems

    # 100-bit and 128-bit runs of two integrators (expcoll, SEULEX) agree on these 25 digits
    truth = mpmath.mpf("0.04918599052835111358047012")
    p = dict(theory_row_problems(published_setting("theory", 7), True))[242]
    plain = certified_flows([p], _quantity(published_setting("theory", 7)))[0]
    assert (plain.precision_bits, plain.reference_bits) == (53, 64)
    assert correct_digits(plain.quantity.text, truth) >= plain.quantity.digits >= 10
    escalated = certified_flows([p], _quantity(published_setting("theory", 7)), CertificationPolicy(target_digits=plain.quantity.digits + 1))[0]
    assert (escalated.precision_bits, escalated.reference_bits) == (64, 80)
    assert escalated.quantity.digits >= plain.quantity.digits + 1
    assert correct_digits(escalated.quantity.text, truth) >= escalated.quantity.digits
    assert "longdouble" in escalated.note


def test_default_integrator_is_chosen_by_what_is_trained():
    assert isinstance(default_integrator("a"), ExpColl) and isinstance(default_integrator("abc"), Seulex)


def test_exponential_collocation_cannot_integrate_abc_flows():
    ts = TrainingSet([impulse(4, 3), impulse(4, 0)], [0, 1])
    with pytest.raises(ValueError, match="^integrator"):
        run_flow(FlowProblem(ts, (0.5,), (1.0,), (1.0,), train="abc"), FlowOptions(integrator=ExpColl()))


def test_seulex_integrates_a_flow_of_a_alone_like_exponential_collocation():
    """The integrator is a value: SEULEX (Woodbury solves, a-coordinates) on an A-only flow reaches the same limit."""
    p = FlowProblem(poisoned_training_set(5), (0.2, 0.1, 0.05))
    expcoll = run_flow(p, FlowOptions(rtol=1e-11))
    seulex = run_flow(p, FlowOptions(rtol=1e-11, integrator=Seulex()))
    assert expcoll.status == seulex.status == Status.CONVERGED
    assert np.allclose(np.asarray(seulex.a, dtype=float), np.asarray(expcoll.a, dtype=float), rtol=1e-8, atol=1e-10)


def test_integrator_takes_precision_bits_explicitly_without_ambient_context():
    """Must-show 6: ``precision_bits=128`` reaches the integrator as an argument; no gmpy2 context is set
    around the call (the default 53 bits before and after) and the result has >= 30 correct digits
    against the exact oracle."""
    import gmpy2

    from ssmpoison.verify import kernels
    from ssmpoison.verify._anchored import anchor_index, anchored_linear_part, from_anchored, neg_grad_anchored, to_anchored

    H, a0 = 5, (0.31, 0.3, 0.12)
    assert gmpy2.get_context().precision == 53
    # the clean flow in anchored coordinates, built in float64 (U, y exact; the integrator converts y0)
    ts = clean_training_set(H)
    U = np.array(ts.inputs, dtype=object)
    y = np.array(ts.labels, dtype=object)
    a = np.array([a0])
    ones = np.ones(len(a0), dtype=object)
    anchor = anchor_index(a)
    res = ExpColl().integrate(
        lambda z: neg_grad_anchored(z, anchor, 1, U, y),
        to_anchored(a, anchor),
        0,
        float("inf"),
        precision_bits=128,
        rtol=1e-34,
        atol=1e-37,
        linear_part=lambda z: anchored_linear_part(z, anchor, 1, U, gmpy2.mpfr(2, 128), precision_bits=128),
        stop=lambda t, z: kernels.loss(from_anchored(z, anchor), ones, ones, U, y)[0] < gmpy2.mpfr("1e-70", 128),
    )
    assert gmpy2.get_context().precision == 53
    assert res.status == Status.STOPPED
    assert all(isinstance(v, gmpy2.mpfr) and v.precision == 128 for v in res.y.ravel())
    exact = clean_limit(a0, H, precision_bits=300)
    with mpmath.workprec(300):  # back to a-coordinates outside the integrator: in mpmath, not at gmpy2's 53 bits
        limit = from_anchored(np.vectorize(to_mpf, otypes=[object])(res.y), anchor)[0]
        err = max(abs(x - e) / abs(e) for x, e in zip(limit, exact))
    assert err < mpmath.mpf("1e-30"), err


def test_flow_statuses_are_status_members():
    ts = TrainingSet([impulse(4, 3), impulse(4, 0)], [0, 1])
    results = [
        run_flow(FlowProblem(clean_training_set(4), (1.5, 0.2))),
        run_flow(FlowProblem(ts, (1.5,), (1.0,), (1.0,), train="abc"), FlowOptions(blowup=10, rtol=1e-10)),
        run_flow(FlowProblem(clean_training_set(7), (1e-2, 2e-2)), FlowOptions(t_max=1e4, precision_bits=64)),
    ]
    assert [r.status for r in results] == [Status.CONVERGED, Status.DIVERGED, Status.TIME_LIMIT]
    assert all(type(r.status) is Status and r.status in FLOW_STATUSES for r in results)


def test_dependent_sequences_flow_like_their_independent_equivalent():
    """{e_0, 2 e_0, u} with clean labels has the loss (1/3)(5 r_0^2 + r_u^2); {sqrt(5) e_0, u} has
    (1/2)(5 r_0^2 + r_u^2): the same trajectory, run 3/2 times faster, so the same limit. The default
    integrator (Seulex on the dependent set, exponential collocation on the independent one) must
    find that limit from both."""
    from ssmpoison.theory import teacher_label
    from ssmpoison.verify._flow import linearly_dependent

    H, D, a0 = 4, 3, (0.01, 0.005, 0.002)
    e0, u = impulse(H, 0), tuple(0.5 * v for v in impulse(H, H - 2))
    dependent = TrainingSet([e0, tuple(2 * v for v in e0), u], [teacher_label(s, D) for s in (e0, tuple(2 * v for v in e0), u)])
    root5 = tuple(np.sqrt(5.0) * v for v in e0)
    independent = TrainingSet([root5, u], [teacher_label(s, D) for s in (root5, u)])
    assert linearly_dependent(dependent) and not linearly_dependent(independent)
    assert isinstance(default_integrator("a", dependent), Seulex) and isinstance(default_integrator("a", independent), ExpColl)
    r_dep, r_ind = run_flow(FlowProblem(dependent, a0)), run_flow(FlowProblem(independent, a0))
    assert r_dep.status == r_ind.status == "converged"
    assert np.allclose(np.asarray(r_dep.a, float), np.asarray(r_ind.a, float), rtol=1e-9, atol=1e-12)
