"""The Theorem's conditions: the derived clean-error bound is a true upper bound, and failing conditions are named."""

import math

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmpoison.theory import extrapolation_error, paper_initialisation
from ssmpoison.theory import clean_limit
from ssmpoison.theory import TheoremSetting, clean_error_bound, clean_limit_bounds, conditions
from ssmpoison.verify import published_setting, row_model

THEORY_HORIZONS = row_model("theory").horizons


def _oracle_error(a0, H, J):
    D = len(a0)
    limit = clean_limit(a0, H, 1, precision_bits=200)
    with mpmath.workprec(200):
        return extrapolation_error(limit, [1] * D, [1] * D, D, J)


@settings(max_examples=25, deadline=None)
@given(
    H=st.integers(3, 8),
    D=st.integers(2, 5),
    J=st.integers(2, 30),
    scale=st.sampled_from([0.01, 0.05, 0.2]),
    fractions=st.lists(st.floats(0.05, 1.0), min_size=5, max_size=5, unique=True),
)
def test_clean_error_bound_bounds_the_exact_limit(H, D, J, scale, fractions):
    """For positive distinct initialisations the bound is never below the oracle's exact error."""
    a0 = tuple(scale * f for f in sorted(fractions, reverse=True)[:D])
    bound = clean_error_bound(a0, H, J)
    exact = _oracle_error(a0, H, J)
    assert bound >= exact * (1 - mpmath.mpf(2) ** -150)


@pytest.mark.parametrize("H", THEORY_HORIZONS)
def test_bound_is_tight_on_the_paper_settings(H):
    """On the theory row the bound is within 1e-5 (relative) of the exact clean error: the second entry decides it."""
    cfg = published_setting("theory", H)
    for seed in cfg.seeds:
        a0 = tuple(paper_initialisation(seed, cfg.state_dim, cfg.init_scale, cfg.gap_exponent))
        bound, exact = clean_error_bound(a0, H, 20), _oracle_error(a0, H, 20)
        assert exact <= bound <= exact * (1 + mpmath.mpf("1e-5"))


def test_horizon_three_uses_conserved_ratios():
    tau, a_lo = clean_limit_bounds((0.4, 0.1, 0.05), 3)
    assert tau == [mpmath.mpf(0.1) / mpmath.mpf(0.4), mpmath.mpf(0.05) / mpmath.mpf(0.4)]
    assert 0 < a_lo < 1


def _by_name(conds):
    return {c.name: c for c in conds}


def test_paper_settings_satisfy_every_condition():
    for H in THEORY_HORIZONS:
        cfg = published_setting("theory", H)
        a0 = tuple(paper_initialisation(cfg.seeds[0], cfg.state_dim, cfg.init_scale, cfg.gap_exponent))
        conds = conditions(TheoremSetting(H, a0, 20))
        assert all(c.holds for c in conds), [c.detail for c in conds if not c.holds]


@pytest.mark.parametrize(
    "a0,H,J,failing",
    [
        ((0.01, 0.005, 0.002), 5, 6, {"extrapolation_horizon"}),
        ((0.01, 0.01, 0.002), 5, 20, {"unique_top_entry", "clean_greedy_bound"}),
        ((1.2, 0.5, 0.2), 5, 20, {"below_label", "clean_greedy_bound"}),
        ((0.01, -0.005, 0.002), 5, 20, {"positive_init", "clean_greedy_bound"}),
        ((0.01, 0.002), 5, 20, {"state_dim"}),
        ((0.0100, 0.0099, 0.002), 5, 20, {"clean_greedy_bound"}),
    ],
)
def test_violations_are_named(a0, H, J, failing):
    conds = _by_name(conditions(TheoremSetting(H, a0, J)))
    assert {name for name, c in conds.items() if not c.holds} == failing
    for name in failing:
        assert conds[name].detail


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(horizon=2, a0=(0.1, 0.05), extrapolate_to=20), "horizon must be >= 3"),
        (dict(horizon=5, a0=(0.1,), extrapolate_to=20), "state_dim must be >= 2"),
        (dict(horizon=5, a0=(0.1, math.nan), extrapolate_to=20), "a0"),
        (dict(horizon=5, a0=(0.1, 0.05), extrapolate_to=0), "extrapolate_to must be >= 1"),
    ],
)
def test_bad_settings_are_refused_with_the_parameter_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TheoremSetting(**kwargs)
