"""The compiled engine (verify/_compiled.py) against the reference path: same certified digits.

The reference path (NumPy and gmpy2) stays the implementation the compiled one is held to: on the
theory row's flows and on problems drawn by the search's strategies, a certified value computed with
the compiled engine has the same decimal string and the same number of certified digits as the one
computed with the reference path (``SSMPOISON_ENGINE=reference``). The kernels themselves are checked
against the reference formulas on random stages and rates.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings

pytest.importorskip("heyoka")

from ssmpoison.theory._construction import extrapolation_error  # noqa: E402
from ssmpoison.verify import row_model  # noqa: E402
from ssmpoison.verify import _compiled  # noqa: E402
from ssmpoison.verify._anchored import anchor_index, anchored_linear_part, neg_grad_anchored, to_anchored  # noqa: E402
from ssmpoison.verify._certification import SEARCH_CERTIFICATION, CertificationPolicy  # noqa: E402
from ssmpoison.verify._certified_flow import certified_flows  # noqa: E402
from ssmpoison.verify._expcoll import _frozen_weights, _nodes_tables, _cast_table, _GUARD, default_nodes  # noqa: E402
from ssmpoison.verify._numbers import to_working_array  # noqa: E402
from ssmpoison.verify._flow import FlowOptions, FlowProblem, run_flow, run_flows  # noqa: E402
from ssmpoison.verify._status import Status  # noqa: E402
from ssmpoison.verify._strategies import clean_problems  # noqa: E402
from ssmpoison.verify._theory_row import theory_row_problems  # noqa: E402
from ssmpoison.theory._construction import poisoned_training_set  # noqa: E402

import gmpy2  # noqa: E402
from fractions import Fraction  # noqa: E402


def _both(problems, quantity, monkeypatch, policy=CertificationPolicy(), engine="native"):
    """Certified runs of ``problems`` with a compiled engine (``"native"``: the native step loop of
    verify/_native.py, the default for a single flow; ``"heyoka"``: heyoka's kernels) and with the
    reference path forced."""
    with monkeypatch.context() as m:
        m.setenv("SSMPOISON_ENGINE", "heyoka" if engine == "heyoka" else "")
        compiled = certified_flows(problems, quantity, policy)
    with monkeypatch.context() as m:
        m.setenv("SSMPOISON_ENGINE", "reference")
        reference = certified_flows(problems, quantity, policy)
    return compiled, reference


def _assert_same_certified(compiled, reference):
    for c, r in zip(compiled, reference):
        assert (c.status, c.quantity.text, c.quantity.digits, c.precision_bits, c.reference_bits) == (
            r.status, r.quantity.text, r.quantity.digits, r.precision_bits, r.reference_bits)


def _assert_agree_to_certified(compiled, reference):
    """The two paths' certified values are consistent: each claims ``|x - truth| <= 10^-d |truth|``, so
    they must lie within ``10^-d_c + 10^-d_r`` (relative) of each other. (Digit counts may differ: a count
    is where a run and its re-run stop agreeing, and a re-run that errs more in one path certifies fewer
    digits there.)"""
    for c, r in zip(compiled, reference):
        if Status.TIME_LIMIT in (c.status, r.status):
            continue  # the step budget ran out in one path (where it runs out moves with the last bits)
        assert (c.status, c.precision_bits, c.reference_bits) == (r.status, r.precision_bits, r.reference_bits)
        dc, dr = c.quantity.digits, r.quantity.digits
        if dc and dr:
            gap = abs(c.quantity.value - r.quantity.value)
            assert gap <= (mpmath.mpf(10) ** -dc + mpmath.mpf(10) ** -dr) * abs(r.quantity.value)


def _row_cases(horizons, poisoned_only):
    model = row_model("theory")
    cases = []
    for setting in model.settings(horizons):
        D, J = setting.state_dim, setting.extrapolation_length
        for poisoned in ((True,) if poisoned_only else (False, True)):
            problems = [p for _, p in theory_row_problems(setting, poisoned)]
            cases.append((problems, lambda a, b, c, D=D, J=J: extrapolation_error(a, b, c, D, J)))
    return cases


def test_engine_off_when_forced_or_not_fixed_width(monkeypatch):
    assert _compiled.engine_available(53) and _compiled.engine_available(64)
    assert not _compiled.engine_available(80) and not _compiled.engine_available(113)
    monkeypatch.setenv("SSMPOISON_ENGINE", "reference")
    assert not _compiled.engine_available(53)
    assert _compiled.anchored_engine(np.array([0]), 1.0, np.eye(2, 3), np.ones(2), 53) is None


@pytest.mark.parametrize("precision_bits", [53, 64])
def test_stage_kernel_matches_reference_formulas(precision_bits, row_state):
    _, U, y, r, z = row_state(precision_bits)
    rng = np.random.default_rng(1)
    M = 7
    two_over_n = U.dtype.type(2) / U.dtype.type(U.shape[0])
    mu, P, Q = anchored_linear_part(z, r, 1, U, two_over_n, precision_bits=precision_bits)
    stages = z[None] * (1 + 1e-3 * rng.standard_normal((M,) + z.shape)).astype(z.dtype)
    engine = _compiled.AnchoredEngine(r, 1, U, y, precision_bits)
    A = np.zeros((M + 1, M), dtype=z.dtype)
    W_minus_A = np.zeros(mu.shape + (M + 1, M), dtype=z.dtype)
    _, G, VG = engine.step(z, mu, P, Q, W_minus_A, A, z.dtype.type(1))(stages)
    F = neg_grad_anchored(stages, r, 1, U, y)
    VS = (Q[None] * (stages - z[None])[:, :, None, :]).sum(axis=-1)
    G_ref = F + (mu[None, :, :, None] * VS[..., None] * P[None]).sum(axis=2)
    scale = np.abs(G_ref).max()
    eps = np.finfo(z.dtype).eps
    assert np.abs(G - G_ref).max() <= 64 * eps * scale
    VG_ref = (Q[None] * G_ref[:, :, None, :]).sum(axis=-1)
    assert np.abs(VG - VG_ref).max() <= 64 * eps * np.abs(VG_ref).max()


@pytest.mark.parametrize("precision_bits, M", [(53, 7), (64, 8), (53, 3)])
def test_weight_kernel_matches_guarded_weights(precision_bits, M):
    dtype = np.float64 if precision_bits == 53 else np.longdouble
    mu = np.array([[0.0, 1e-30, 1e-8, 0.3, 1.0, M - 1e-9, float(M), M + 1e-9, 20.0, 1e3, 1e9]], dtype=dtype)
    h = dtype(1)
    engine = _compiled.AnchoredEngine(np.array([0]), 1, np.eye(2, 3), np.ones(2), precision_bits)
    W = engine.weights(M, h, mu)
    with gmpy2.context(precision=precision_bits):
        W_ref = _frozen_weights(M, precision_bits, h, mu, np.dtype(dtype))
    rows = np.abs(W_ref).max(axis=-1, keepdims=True)
    # the longdouble recurrences lose at most the monomial basis's cancellation (under 2^17 for M <= 8)
    assert np.all(np.abs(W - W_ref) <= 2.0**-45 * rows)
    A = _cast_table(_nodes_tables(M, precision_bits + _GUARD)[3], np.dtype(dtype), precision_bits)
    assert np.allclose(np.asarray(W[0, 0], dtype=float), np.asarray(A, dtype=float), rtol=0, atol=1e-15)  # z = 0


def test_compiled_and_reference_flows_agree_near_rounding(monkeypatch):
    monkeypatch.setenv("SSMPOISON_ENGINE", "heyoka")  # heyoka's kernels (tests/test_native.py: the native loop)
    setting = row_model("theory").settings((7,))[0]
    _, problem = theory_row_problems(setting, True)[0]
    for bits in (53, 64):
        c = run_flow(problem, FlowOptions(precision_bits=bits))
        r = run_flow(problem, FlowOptions(precision_bits=bits, compiled=False))
        assert c.status == r.status
        a_c, a_r = np.asarray(c.a, dtype=np.longdouble), np.asarray(r.a, dtype=np.longdouble)
        assert np.abs(a_c - a_r).max() <= 1e-12 * np.abs(a_r).max()
        assert not np.array_equal(a_c, a_r) or bits == 64  # the compiled path ran (it rounds differently)


@pytest.mark.parametrize("engine", ["native", "heyoka"])
def test_theory_row_h7_poisoned_same_certified_digits(monkeypatch, engine):
    (problems, quantity), = _row_cases((7,), poisoned_only=True)
    _assert_same_certified(*_both(problems[:2], quantity, monkeypatch, engine=engine))


def test_theory_row_every_flow_same_certified_digits_native(monkeypatch):
    for problems, quantity in _row_cases((7, 9), poisoned_only=False):
        _assert_same_certified(*_both(problems, quantity, monkeypatch))


@pytest.mark.slow
def test_theory_row_every_flow_same_certified_digits_heyoka(monkeypatch):
    for problems, quantity in _row_cases((7, 9), poisoned_only=False):
        _assert_same_certified(*_both(problems, quantity, monkeypatch, engine="heyoka"))


def _extrapolated(H):
    """``K_{H+4} = sum_i c_i b_i a_i^(H+4)``: the impulse response four steps past the horizon."""
    return lambda a, b, c: mpmath.fsum(ci * bi * ai ** (H + 4) for ai, bi, ci in zip(a, b, c))


# a step budget like the search's (a flow of the greedy regime can take 10^4 steps): both paths end
# the flows they cannot finish with the same status and nothing certified
_RANDOM_POLICY = CertificationPolicy(max_steps=600)


def _random_problems_agree(monkeypatch, count, engine):
    @settings(max_examples=count, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(clean_problems(max_state_dim=5, max_horizon=6, max_samples=3))
    def check(problem):
        flow = problem.flow_problem()
        assert isinstance(flow, FlowProblem)
        _assert_agree_to_certified(*_both([flow], _extrapolated(problem.horizon), monkeypatch, _RANDOM_POLICY, engine))

    check()


@pytest.mark.parametrize("engine", ["native", "heyoka"])
def test_random_problems_same_certified_digits(monkeypatch, engine):
    _random_problems_agree(monkeypatch, 3, engine)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["native", "heyoka"])
def test_twenty_random_problems_same_certified_digits(monkeypatch, engine):
    _random_problems_agree(monkeypatch, 20, engine)


def test_batched_flows_with_different_anchors_agree():
    ts = poisoned_training_set(6)
    problems = [FlowProblem(ts, (0.003, 0.001, -0.002, 0.0025)), FlowProblem(ts, (0.001, 0.004, -0.002, 0.0025)),
                FlowProblem(ts, (0.001, 0.002, -0.002, 0.0045))]  # anchors 0, 1 and 3: one step for all three
    for bits in (53, 64):
        compiled = run_flows(problems, FlowOptions(precision_bits=bits))
        reference = run_flows(problems, FlowOptions(precision_bits=bits, compiled=False))
        for c, r in zip(compiled, reference):
            a_c, a_r = np.asarray(c.a, dtype=np.longdouble), np.asarray(r.a, dtype=np.longdouble)
            assert c.status == r.status
            eps = np.finfo(np.asarray(r.a).dtype).eps  # of the working type
            assert np.abs(a_c - a_r).max() <= 64 * eps * np.abs(a_r).max()


@pytest.mark.parametrize("precision_bits", [53, 64])
def test_linear_kernel_gives_the_reference_stiff_part(precision_bits, row_state):
    _, U, y, r, z = row_state(precision_bits)
    two_over_n = U.dtype.type(2) / U.dtype.type(U.shape[0])
    engine = _compiled.AnchoredEngine(r, 1, U, y, precision_bits)
    mu, P, Q = engine.linear_part(z, two_over_n)
    mu_r, P_r, Q_r = anchored_linear_part(z, r, 1, U, two_over_n, precision_bits=precision_bits)
    eps = np.finfo(z.dtype).eps
    assert np.abs(mu - mu_r).max() <= 64 * eps * np.abs(mu_r).max()
    # L = -sum_r mu_r p_r q_r^T does not depend on the eigenvectors' signs
    L = np.einsum("br,brd,bre->bde", mu, P, Q)
    L_r = np.einsum("br,brd,bre->bde", mu_r, P_r, Q_r)
    assert np.abs(L - L_r).max() <= 1e-12 * np.abs(L_r).max()
    assert np.abs(np.einsum("brd,bsd->brs", Q, P) - np.eye(P.shape[1])).max() <= 64 * eps  # bi-orthonormal


# ---- the multiprecision engine (heyoka ``real``): the 128-bit theory row -------------------------------

_BITS = 128
_POLICY_128 = CertificationPolicy(precision_bits=_BITS)

# the certified values of the 128-bit row's poisoned flows on the reference path (``reproduce --row theory
# --precision 128`` with SSMPOISON_ENGINE=reference): (horizon, seed) -> (text, digits)
_REFERENCE_128 = {
    (7, 242): ("4.9185990528351113580470200e-2", 26), (7, 243): ("4.5842089653167333316170976e-2", 26),
    (7, 244): ("5.4312395501391911096230122e-2", 26), (7, 246): ("5.1078952549449315401721209e-2", 26),
    (9, 342): ("3.50122318857674102711945102e-2", 27), (9, 344): ("3.52753537556526719490784476e-2", 27),
    (9, 345): ("3.49454103265002252922811121e-2", 27), (9, 346): ("3.52599534718333519851051774e-2", 27),
}


def test_multiprecision_engine_only_where_asked(monkeypatch):
    assert not _compiled.engine_available(_BITS)  # FlowOptions' default: the reference path
    assert _compiled.engine_available(_BITS, multiprecision=True)
    assert _compiled.engine_available(_compiled.MULTIPRECISION_MAX_BITS, multiprecision=True)
    assert not _compiled.engine_available(_compiled.MULTIPRECISION_MAX_BITS + 1, multiprecision=True)  # its memory grows with the work
    assert _POLICY_128.run_options().compiled_multiprecision and _POLICY_128.reference_options().compiled_multiprecision
    assert not CertificationPolicy().escalation_options().compiled_multiprecision  # the fast path's 80-bit re-run
    assert not SEARCH_CERTIFICATION.flow_options(113).compiled_multiprecision  # the search's reports stay bit for bit
    monkeypatch.setenv("SSMPOISON_ENGINE", "reference")
    assert not _compiled.engine_available(_BITS, multiprecision=True)


def test_real_numbers_convert_exactly():
    numbers = _compiled._RealNumbers(_BITS)
    with gmpy2.context(precision=_BITS):
        values = [gmpy2.mpfr(1) / 3, -(gmpy2.mpfr(2) ** -300) / 7, gmpy2.mpfr("1e300") / 7, gmpy2.mpfr(0), gmpy2.mpfr(5)]
        third = gmpy2.mpfr(1) / 3
    back = numbers.export(numbers.array(np.array(values, dtype=object)))
    assert all(a == b and a.precision == _BITS for a, b in zip(values, back))
    assert numbers.export_scalar(numbers.scalar(Fraction(1, 3))) == third  # rounded once
    assert numbers.export_scalar(numbers.scalar(0.1)) == gmpy2.mpfr(0.1, _BITS)  # a float is exact
    with gmpy2.context(precision=_BITS + 64):
        wide = gmpy2.mpfr(1) / 3
    assert numbers.export_scalar(numbers.scalar(wide)) == third  # more bits: rounded once


def _real_state():
    """The theory row's first poisoned flow (H = 7) at 128 bits, in the reference's gmpy2 arrays."""
    setting = row_model("theory").settings((7,))[0]
    ts = poisoned_training_set(setting.horizon)
    _, problem = theory_row_problems(setting, True)[0]
    U = to_working_array(ts.inputs, _BITS)
    y = to_working_array(ts.labels, _BITS)
    a0 = to_working_array([problem.a0], _BITS)
    r = anchor_index(a0)
    return U, y, r, to_anchored(a0, r)


def test_real_weights_match_guarded_weights():
    M = default_nodes(_BITS)
    engine = _compiled.AnchoredEngine(np.array([0]), 1, np.eye(2, 3), np.ones(2), _BITS)
    numbers = engine.numbers
    rates = [0.0, 1e-30, 1e-8, 0.3, 1 - 1e-9, 1.0, 1.5, M - 1e-9, float(M), M + 1e-9, 20.0, 1e3, 1e9]
    with gmpy2.context(precision=_BITS):
        mu = to_working_array([rates], _BITS)
        h = gmpy2.mpfr(1)
        W_ref = _frozen_weights(M, _BITS, h, mu, np.dtype(object))
    W = numbers.export(engine.weights(M, numbers.scalar(h), numbers.array(mu)))
    rows = np.array([[max(abs(v) for v in row)] * M for row in W_ref.reshape(-1, M)]).reshape(W_ref.shape)
    # both rounded once to 128 bits, from 256 (reference) and 192 guarded bits (less the basis's cancellation)
    assert all(abs(a - b) <= gmpy2.mpfr(2) ** -124 * s for a, b, s in zip(W.reshape(-1), W_ref.reshape(-1), rows.reshape(-1)))


def test_sweep_kernel_matches_reference_formulas():
    U, y, r, z = _real_state()
    M = default_nodes(_BITS)
    rng = np.random.default_rng(3)
    with gmpy2.context(precision=_BITS):
        two_over_n = gmpy2.mpfr(2) / U.shape[0]
        mu, P, Q = anchored_linear_part(z, r, 1, U, two_over_n, precision_bits=_BITS)
        h = gmpy2.mpfr("0.01")
        stages = z[None] * (1 + to_working_array(1e-3 * rng.standard_normal((M,) + z.shape), _BITS))
        W = _frozen_weights(M, _BITS, h, mu, np.dtype(object))
        A = _cast_table(_nodes_tables(M, _BITS + _GUARD)[3], np.dtype(object), _BITS + _GUARD) * 1  # 128 bits
        W_minus_A = W - A[None, None]
        F = neg_grad_anchored(stages, r, 1, U, y)
        VS = (Q[None] * (stages - z[None])[:, :, None, :]).sum(axis=-1)
        G_ref = F + (mu[None, :, :, None] * VS[..., None] * P[None]).sum(axis=2)
        VG_ref = (Q[None] * G_ref[:, :, None, :]).sum(axis=-1)
        corr = (W_minus_A * VG_ref.transpose(1, 2, 0)[:, :, None, :]).sum(axis=-1)
        incr = h * (np.tensordot(A, G_ref, axes=([1], [0])) + (corr.transpose(2, 0, 1)[..., None] * P[None]).sum(axis=2))
        new_ref = z[None] + incr
    engine = _compiled.AnchoredEngine(r, 1, U, y, _BITS)
    n = engine.numbers
    sweep = engine.step(n.array(z), n.array(mu), n.array(P), n.array(Q), n.array(W_minus_A), n.array(A), n.scalar(h))
    new, end_incr, G, VG = (n.export(v) for v in sweep(n.array(stages)))
    ulp = gmpy2.mpfr(2) ** -(_BITS - 6)  # 64 units in the last place of the largest entry
    for got, want in ((G, G_ref), (VG, VG_ref), (new, new_ref), (end_incr, incr[M])):
        assert np.abs(got - want).max() <= ulp * np.abs(want).max()


def _certified_128(problems, quantity):
    return certified_flows(problems, quantity, _POLICY_128)


@pytest.mark.parametrize("engine", ["native", "heyoka"])
def test_128_bit_row_h7_poisoned_engine_keeps_reference_digits(monkeypatch, engine):
    """The engine's certified values of two 128-bit H = 7 poisoned flows are the reference path's (recorded):
    the native loop's (MPFR, the default) and heyoka's ``real`` kernels'."""
    monkeypatch.setenv("SSMPOISON_ENGINE", "heyoka" if engine == "heyoka" else "")
    (problems, quantity), = _row_cases((7,), poisoned_only=True)
    seeds = [seed for seed, _ in theory_row_problems(row_model("theory").settings((7,))[0], True)]
    for seed, run in zip(seeds[:2], _certified_128(problems[:2], quantity)):
        assert run.precision_bits == _BITS and run.reference_bits == _BITS + 32
        assert (run.quantity.text, run.quantity.digits) == _REFERENCE_128[(7, seed)]


@pytest.mark.slow
def test_128_bit_row_h9_poisoned_native_keeps_reference_digits():
    """The native loop's certified values of the four 128-bit H = 9 poisoned flows are the reference path's."""
    (problems, quantity), = _row_cases((9,), poisoned_only=True)
    seeds = [seed for seed, _ in theory_row_problems(row_model("theory").settings((9,))[0], True)]
    for seed, run in zip(seeds, _certified_128(problems, quantity)):
        assert (run.quantity.text, run.quantity.digits) == _REFERENCE_128[(9, seed)]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["native", "heyoka"])
def test_128_bit_row_every_poisoned_flow_same_certified_digits(monkeypatch, engine):
    """All eight 128-bit poisoned flows, the engine against the reference path run live (and the record)."""
    for H in (7, 9):
        (problems, quantity), = _row_cases((H,), poisoned_only=True)
        seeds = [seed for seed, _ in theory_row_problems(row_model("theory").settings((H,))[0], True)]
        compiled, reference = _both(problems, quantity, monkeypatch, _POLICY_128, engine)
        _assert_same_certified(compiled, reference)
        for seed, run in zip(seeds, compiled):
            assert (run.quantity.text, run.quantity.digits) == _REFERENCE_128[(H, seed)]
