"""Exact symbolic identities of the Proposition (note 00 §3), for every D <= 4, H <= 8, N <= 3."""

import itertools

import pytest
import sympy as sp

from ssmpoison.theory import SSMShape, derive, derive_nonlinear

FAST = [(D, H, N) for D, H, N in itertools.product(range(1, 5), range(2, 9), range(1, 4)) if D * H * N <= 24]
SLOW = [(D, H, N) for D, H, N in itertools.product(range(1, 5), range(2, 9), range(1, 4)) if D * H * N > 24]


def _assert_verified(d):
    checks = d.verify()
    assert [c.parameter for c in checks] == list(d.shape.parameters)
    assert all(c.zero for c in checks), checks


@pytest.mark.parametrize("D,H,N", FAST)
def test_identity_a_fast(D, H, N):
    _assert_verified(derive(D, H, N, "a"))


@pytest.mark.parametrize("D,H,N", [(1, 2, 1), (2, 3, 2), (3, 4, 1), (2, 5, 2)])
def test_identity_abc_fast(D, H, N):
    _assert_verified(derive(D, H, N, "abc"))


@pytest.mark.slow
@pytest.mark.parametrize("D,H,N", SLOW)
def test_identity_a_slow(D, H, N):
    _assert_verified(derive(D, H, N, "a"))


@pytest.mark.slow
@pytest.mark.parametrize("D,H,N", FAST + SLOW)
def test_identity_abc_slow(D, H, N):
    _assert_verified(derive(D, H, N, "abc"))


@pytest.mark.parametrize("D,H,N", [(1, 3, 1), (2, 3, 2), (2, 4, 2), (3, 4, 1)])
def test_identity_nonlinear(D, H, N):
    d = derive_nonlinear(D, H, N, "abc")
    assert d.xi is not None and all(isinstance(x, sp.Subs) for x in d.xi)
    _assert_verified(d)


def test_check_can_fail():
    """A wrong closed form (factor l+2 instead of l+1 in gamma^(l)) is detected."""
    d = derive(2, 4, 2)
    sym = d.symbols
    wrong_gamma = tuple(g * sp.Rational(l + 2, l + 1) for l, g in enumerate(d.gamma))
    wrong = [e.xreplace(dict(zip(sym.gamma, wrong_gamma))) for e in d.proposition["a"]]
    assert any(sp.expand(g - r) != 0 for g, r in zip(d.neg_gradient["a"], wrong))


def test_gamma0_only_second_to_last_inputs():
    """gamma^(0) involves only the inputs u^(n)_{H-2} (note 00 §3)."""
    D, H, N = 3, 6, 3
    d = derive(D, H, N)
    u = d.symbols.u
    free = d.gamma_form[0].free_symbols
    inputs = {x for row in u for x in row}
    assert free & inputs == {u[n][H - 2] for n in range(N)}
    # and it vanishes identically when no sequence is special
    nonspecial = {u[n][H - 2]: 0 for n in range(N)}
    assert sp.expand(d.gamma[0].xreplace(nonspecial)) == 0


def test_impulse_response_and_last_inputs():
    """u_{H-1} meets K_0 = CB (independent of A) and u_{H-2} meets K_1 = CAB (linear in A)."""
    d = derive(3, 5, 1)
    a, b, c = d.symbols.a, d.symbols.b, d.symbols.c
    K0, K1 = d.impulse_response[0], d.impulse_response[1]
    assert sp.expand(K0 - sum(ci * bi for ci, bi in zip(c, b))) == 0
    assert all(sp.diff(K0, ai) == 0 for ai in a)
    assert all(sp.diff(K1, ai, 2) == 0 for ai in a)
    y = d.outputs[0]
    u = d.symbols.u[0]
    assert sp.expand(sp.diff(y, u[4]) - K0) == 0 and sp.expand(sp.diff(y, u[3]) - K1) == 0


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(state_dim=0, horizon=3), "state_dim must be >= 1"),
        (dict(state_dim=2, horizon=1), "horizon must be >= 2"),
        (dict(state_dim=2, horizon=3, samples=0), "samples must be >= 1"),
        (dict(state_dim=2.5, horizon=3), "state_dim must be an integer"),
        (dict(state_dim=2, horizon=3, train="b"), "train must be one of"),
    ],
)
def test_shape_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SSMShape(**kwargs)
    with pytest.raises(ValueError, match=message):
        derive(**kwargs)
