"""Tests of theory.oracle: the SymPy conservation proof and the exact oracle for clean flows.

The oracle is checked against an independent integration of the clean flow
``da_i/dt = -2(H-1)(S_{H-1} - y*) a_i^{H-2}`` with heyoka's Taylor integrator in
arbitrary precision (``heyoka.real``); the clean flows are not stiff, so an explicit
high-order method at 128 bits is the right independent reference.
"""

from fractions import Fraction

import gmpy2
import heyoka as hy
import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmpoison.theory import paper_initialisation
from ssmpoison.theory._oracle import DEFAULT_PRECISION_BITS, clean_convergence_time, clean_limit, conserved_quantities_proof
from ssmpoison.verify import published_setting, row_model

HEYOKA_BITS = 128


def to_mpf(value):
    """A heyoka.real (or any number) as an mpmath.mpf, via its decimal string (40+ digits)."""
    with mpmath.workprec(2 * HEYOKA_BITS):
        return mpmath.mpf(str(value))


def heyoka_clean_flow(a0, horizon, label, event_level, extra_time, prec=HEYOKA_BITS):
    """Integrate the clean flow at ``prec`` bits until ``S_{H-1} = event_level``, then ``extra_time`` more.

    Returns ``(event_time, final_state)`` as mpmath numbers.
    """
    real = hy.real
    xs = hy.make_vars(*[f"a{i}" for i in range(len(a0))])
    S = hy.sum([x ** (horizon - 1) for x in xs])
    y = hy.expression(real(str(label), prec))
    sys = [(x, -2 * (horizon - 1) * (S - y) * x ** (horizon - 2)) for x in xs]
    level = hy.expression(real(mpmath.nstr(event_level, 50), prec))
    event = hy.t_event(S - level, fp_type=real)  # terminal
    state = [real(mpmath.nstr(mpmath.mpf(v), 50), prec) for v in a0]
    ta = hy.taylor_adaptive(sys, state, fp_type=real, prec=prec, t_events=[event])
    outcome = ta.propagate_until(real("1e15", prec))[0]
    assert outcome != hy.taylor_outcome.time_limit, "the event was not reached"
    t_event = to_mpf(ta.time)
    ta.propagate_for(real(extra_time, prec))
    return t_event, [to_mpf(v) for v in ta.state]


def event_level(a0, horizon, label, threshold):
    """The value of ``S_{H-1}`` at which the loss ``(S_{H-1} - y*)^2`` equals ``threshold``."""
    with mpmath.workprec(DEFAULT_PRECISION_BITS):
        S0 = mpmath.fsum(mpmath.mpf(v) ** (horizon - 1) for v in a0)
        eta = mpmath.sqrt(mpmath.mpf(threshold))
        return label - eta if S0 < label else label + eta


def max_relative_difference(xs, ys):
    return max(abs(x - y) / abs(y) for x, y in zip(xs, ys))


def paper_run(H, seed):
    row = published_setting("theory", H)
    return paper_initialisation(seed, row.state_dim, row.init_scale, row.gap_exponent)


# --- SymPy proof ------------------------------------------------------------------------


@pytest.mark.parametrize("H", range(3, 9))
@pytest.mark.parametrize("D", [2, 3])
def test_conservation_proof_holds(H, D):
    proof = conserved_quantities_proof(H, D)
    assert proof.holds is True and bool(proof)
    assert all(r == 0 for r in proof.conserved_rates) and len(proof.conserved) == D * (D - 1) // 2
    assert proof.s_rate_residual == 0
    assert all(r == 0 for r in proof.phi_residuals + proof.reduction_residuals)
    a = sympy.symbols(f"a0:{D}", positive=True)
    y = sympy.Symbol("y", positive=True)
    assert sympy.expand(proof.phi - (-2 * (H - 1) * (sum(ai ** (H - 1) for ai in a) - y))) == 0


@pytest.mark.parametrize("H", [4, 7])
def test_conservation_proof_larger_dimension(H):
    assert conserved_quantities_proof(H, 5).holds


@pytest.mark.parametrize("H", [4, 6])
def test_conservation_proof_negative_control(H):
    """The same derivative along the flow is not zero for a wrong exponent (the proof is not vacuous)."""
    proof = conserved_quantities_proof(H, 2)
    a = sympy.symbols("a0:2", positive=True)
    wrong = a[0] ** -(H - 2) - a[1] ** -(H - 2)
    rate = sympy.simplify(sum(sympy.diff(wrong, ai) * r for ai, r in zip(a, proof.rhs)))
    assert rate != 0


def test_conservation_proof_validation():
    with pytest.raises(ValueError, match="horizon"):
        conserved_quantities_proof(2, 3)
    with pytest.raises(ValueError, match="state_dim"):
        conserved_quantities_proof(5, 1)


# --- limit: precision and consistency --------------------------------------------------


@pytest.mark.parametrize("H, seed", [(row.horizon, s) for row in row_model("theory").settings() for s in row.seeds])
def test_limit_solves_the_label_equation_and_is_precision_stable(H, seed):
    a0 = paper_run(H, seed)
    lim64 = clean_limit(a0, H, precision_bits=64)  # the guard bits absorb the ~40-46 cancelled bits
    lim200 = clean_limit(a0, H, precision_bits=200)
    lim400 = clean_limit(a0, H, precision_bits=400)
    with mpmath.workprec(420):
        assert max_relative_difference(lim64, lim400) <= mpmath.mpf(2) ** -63
        assert max_relative_difference(lim200, lim400) <= mpmath.mpf(2) ** -199
        S = mpmath.fsum(v ** (H - 1) for v in lim400)
        assert abs(S - 1) <= mpmath.mpf(2) ** -395
    assert all(x > y for x, y in zip(lim400, lim400[1:]))  # ordering kept
    assert 0.99 < lim400[0] < 1 and lim400[1] < 0.2  # the greedy race: one entry escapes


@pytest.mark.parametrize("H", [3, 4, 5, 8])
@pytest.mark.parametrize("label", [1, Fraction(5, 2), 0.3])
def test_limit_general_label(H, label):
    a0 = [0.2, 0.15, 0.05]
    lim = clean_limit(a0, H, label=label, precision_bits=150)
    with mpmath.workprec(160):
        y = mpmath.mpf(label.numerator) / label.denominator if isinstance(label, Fraction) else mpmath.mpf(label)
        assert abs(mpmath.fsum(v ** (H - 1) for v in lim) - y) <= y * mpmath.mpf(2) ** -145


def test_limit_h3_closed_form():
    a0 = [0.3, 0.2, 0.1, 0.05]
    lim = clean_limit(a0, 3, label=2, precision_bits=120)
    with mpmath.workprec(120):
        factor = mpmath.sqrt(2 / mpmath.fsum(mpmath.mpf(v) ** 2 for v in a0))
        assert max_relative_difference(lim, [mpmath.mpf(v) * factor for v in a0]) <= mpmath.mpf(2) ** -118


def test_limit_number_types_agree():
    a0 = [0.5, 0.375, 0.125]  # dyadic: exact in every type
    reference = clean_limit(a0, 6, precision_bits=160)
    with mpmath.workprec(160), gmpy2.context(precision=160):
        for variant in (
            np.array(a0),
            [Fraction(v) for v in a0],
            [mpmath.mpf(v) for v in a0],
            [gmpy2.mpfr(v) for v in a0],
            ["0.5", "0.375", "0.125"],
        ):
            assert clean_limit(variant, 6, precision_bits=160) == reference


def test_limit_keeps_high_precision_inputs():
    """An mpf input finer than float64 is used at full precision, not rounded to float."""
    with mpmath.workprec(200):
        a0 = [mpmath.mpf(1) / 3, mpmath.mpf(1) / 7]
        lim = clean_limit(a0, 5, precision_bits=180)
        lim_float = clean_limit([float(v) for v in a0], 5, precision_bits=180)
        assert lim != lim_float
        S = mpmath.fsum(v**4 for v in lim)
        assert abs(S - 1) < mpmath.mpf(2) ** -175


@given(
    H=st.integers(min_value=3, max_value=8),
    a0=st.lists(
        st.floats(min_value=1e-3, max_value=1.5, allow_nan=False, allow_infinity=False),
        min_size=2,
        max_size=6,
        unique=True,
    ),
    label=st.sampled_from([1, 0.5, 3]),
)
@settings(max_examples=60, deadline=None)
def test_limit_preserves_ordering(H, a0, label):
    lim = clean_limit(a0, H, label=label, precision_bits=64)
    assert all(v > 0 for v in lim)
    for i in range(len(a0)):
        for j in range(len(a0)):
            if a0[i] > a0[j]:
                assert lim[i] > lim[j]


# --- independent reference: heyoka in arbitrary precision -------------------------------


@pytest.mark.parametrize(
    "a0, H, label",
    [
        ([0.1, 0.08, 0.06, 0.03], 6, 1),  # converges at t ~ 34
        ([0.3, 0.2, 0.15, 0.1], 5, 1),
        ([1.2, 0.9, 0.5, 0.2], 5, 1),  # starts above the label: the flow shrinks the entries
        ([0.3, 0.2, 0.1, 0.05], 3, 2),  # H = 3: closed forms
    ],
)
def test_oracle_matches_heyoka(a0, H, label):
    threshold = "1e-30"
    t_event, state = heyoka_clean_flow(a0, H, label, event_level(a0, H, label, threshold), extra_time=40)
    lim = clean_limit(a0, H, label=label)
    t_oracle = clean_convergence_time(a0, H, threshold, label=label, precision_bits=113)
    with mpmath.workprec(DEFAULT_PRECISION_BITS):
        assert max_relative_difference(state, lim) <= mpmath.mpf("1e-25")
        assert abs(t_event - t_oracle) <= mpmath.mpf("1e-12") * t_oracle
        assert 1 < t_oracle < 1e4


def test_oracle_matches_heyoka_paper_run_h7():
    """Note 00 §8: 128-bit integrations reproduce the oracle to >= 29 digits on the paper's runs."""
    H, seed = 7, 242
    a0 = paper_run(H, seed)
    t_event, state = heyoka_clean_flow(a0, H, 1, event_level(a0, H, 1, "1e-30"), extra_time=100)
    lim = clean_limit(a0, H)
    t_oracle = clean_convergence_time(a0, H, "1e-30", precision_bits=113)
    with mpmath.workprec(DEFAULT_PRECISION_BITS):
        assert max_relative_difference(state, lim) <= mpmath.mpf("1e-29")
        assert abs(t_event - t_oracle) <= mpmath.mpf("1e-20") * t_oracle


@pytest.mark.slow
def test_oracle_matches_heyoka_paper_run_h9():
    H, seed = 9, 342
    a0 = paper_run(H, seed)
    t_event, state = heyoka_clean_flow(a0, H, 1, event_level(a0, H, 1, "1e-30"), extra_time=100)
    lim = clean_limit(a0, H)
    t_oracle = clean_convergence_time(a0, H, "1e-30", precision_bits=113)
    with mpmath.workprec(DEFAULT_PRECISION_BITS):
        assert max_relative_difference(state, lim) <= mpmath.mpf("1e-25")
        assert abs(t_event - t_oracle) <= mpmath.mpf("1e-20") * t_oracle


# --- convergence time -------------------------------------------------------------------


def test_convergence_time_plausible_for_paper_runs():
    """Note 00 §8: the clean flows converge at about 4e10 (H = 7) and 1e12 (H = 9)."""
    t7 = clean_convergence_time(paper_run(7, 242), 7, 1e-30, precision_bits=53)
    t9 = clean_convergence_time(paper_run(9, 342), 9, 1e-30, precision_bits=53)
    assert 2e10 < t7 < 8e10
    assert 5e11 < t9 < 2e12
    assert t7 < published_setting("theory", 7).final_time_clean and t9 < published_setting("theory", 9).final_time_clean


def test_convergence_time_monotone_and_zero_when_converged():
    a0 = [0.1, 0.08, 0.06, 0.03]
    times = [clean_convergence_time(a0, 6, 10.0**-e, precision_bits=64) for e in (4, 10, 20, 30)]
    assert all(s < t for s, t in zip(times, times[1:]))
    assert clean_convergence_time(clean_limit(a0, 6), 6, 1e-30) == 0
    assert clean_convergence_time(a0, 6, 10.0) == 0  # the initial loss is below 10


def test_convergence_time_precision_stable():
    a0 = paper_run(7, 243)
    t113 = clean_convergence_time(a0, 7, 1e-30, precision_bits=113)
    t200 = clean_convergence_time(a0, 7, 1e-30, precision_bits=200)
    with mpmath.workprec(200):
        assert abs(t113 - t200) <= t200 * mpmath.mpf(2) ** -100


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a0",
    [
        [0.1, 0.0],
        [0.1, -0.2],
        [0.1, float("nan")],
        [float("inf"), 0.1],
        [],
        [[0.1, 0.2]],
        5,
        ["x"],
    ],
)
def test_oracle_rejects_bad_initialisation(a0):
    for call in (lambda: clean_limit(a0, 5), lambda: clean_convergence_time(a0, 5, 1e-10)):
        with pytest.raises(ValueError, match=r"^a0") as info:
            call()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(horizon=2), "horizon"),
        (dict(horizon=4.5), "horizon"),
        (dict(label=0), "label"),
        (dict(label=float("nan")), "label"),
        (dict(precision_bits=8), "precision_bits"),
        (dict(loss_threshold=0), "loss_threshold"),
        (dict(loss_threshold=-1e-10), "loss_threshold"),
    ],
)
def test_oracle_argument_validation(kwargs, name):
    args = dict(a0=[0.1, 0.05], horizon=5, loss_threshold=1e-10) | kwargs
    with pytest.raises(ValueError, match=rf"^{name}"):
        clean_convergence_time(**args)
    if "loss_threshold" not in kwargs:
        del args["loss_threshold"]
        with pytest.raises(ValueError, match=rf"^{name}"):
            clean_limit(**args)


def test_newtons_float64_start_changes_no_root(monkeypatch):
    """The root's float64 start only saves iterations: from it and from the lower bound ``lo`` the certified
    limits are the same numbers (drawn initialisations and two fixed ones, H = 4 to 12, 53 to 200 bits), and
    the start is the root to float64's accuracy."""
    import random

    from ssmpoison.theory import _oracle

    rng = random.Random(11)
    cases = [([rng.uniform(0.05, 1.5) * 10 ** rng.uniform(-2, 0.3) for _ in range(rng.randint(2, 20))], rng.choice([4, 5, 7, 9, 12]))
             for _ in range(12)]
    cases += [([0.3, 0.2999, 0.1, 0.05, 0.01], 7), ([0.9, 0.5, 0.2, 0.1, 0.05, 0.02], 9)]
    with_start = [_oracle.clean_limit(a0, H, precision_bits=bits) for a0, H in cases for bits in (53, 128, 200)]
    monkeypatch.setattr(_oracle._Reduction, "_float_start", lambda self, target, lo, hi: lo)
    from_lo = [_oracle.clean_limit(a0, H, precision_bits=bits) for a0, H in cases for bits in (53, 128, 200)]
    assert with_start == from_lo
    monkeypatch.undo()
    red = _oracle._Reduction([0.3, 0.2999, 0.1, 0.05, 0.01], 7, 160)
    with mpmath.workprec(160):
        target, q = mpmath.mpf(1), mpmath.mpf(6) / 4
        lo, hi = target ** (-1 / q), (5 / target) ** (1 / q)
        start, root = red._float_start(target, lo, hi), red.solve(target)
        assert lo < start < hi and abs(start - root) <= 1e-13 * root  # a float64 root: Newton ends in two steps
