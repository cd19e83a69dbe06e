"""Training sets, special sequences and argument validation."""

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssmpoison.theory import TrainingSet, impulse, is_special, special_score
from ssmpoison.theory._validation import require_int, require_real


def test_basic_properties():
    ts = TrainingSet([impulse(5, 0), impulse(5, 3)], [1, Fraction(1, 2)])
    assert (ts.horizon, ts.samples, ts.is_exact) == (5, 2, True)
    assert ts.special_indices() == (1,) and ts.is_special
    assert not TrainingSet([impulse(5, 0)], [1]).is_special
    assert ts.with_sequence([0, 0, 0, 2.5, 0], 3).samples == 3


@pytest.mark.parametrize(
    "inputs,labels,message",
    [
        ([], [], "training set is empty"),
        ([[1, 0, 0], [1, 0]], [1, 1], "same length"),
        ([[1, 0, math.nan]], [1], r"inputs\[0\]\[2\] must be finite"),
        ([[1, 0, 0]], [math.inf], r"labels\[0\] must be finite"),
        ([[1, 0, 0]], [1, 2], "one entry per sequence"),
        ([[1]], [1], "horizon"),
        ([[1, "x", 0]], [1], r"inputs\[0\]\[1\] must be a real number"),
    ],
)
def test_validation_messages(inputs, labels, message):
    with pytest.raises(ValueError, match=message):
        TrainingSet(inputs, labels)


def test_special_definition_and_score():
    assert is_special([0, 0, 1, 0]) and not is_special([1, 1, 0, 1])
    assert special_score([0, 0, 3, 0]) == 1.0
    assert special_score([1, 0, 0, 5]) == 0.0
    assert special_score([0, 0, 0, 0]) == 0.0


@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=2, max_size=8))
def test_score_is_zero_exactly_for_nonspecial(seq):
    score = special_score(seq)
    assert 0.0 <= score <= 1.0
    assert (score == 0.0) == (not is_special(seq) or all(abs(v) == 0 for v in seq))


def test_require_helpers():
    assert require_int("n", "7", minimum=2) == 7
    with pytest.raises(ValueError, match="n must be an integer"):
        require_int("n", True)
    with pytest.raises(ValueError, match="scale must be finite"):
        require_real("scale", "nan")
    with pytest.raises(ValueError, match="scale must be > 0"):
        require_real("scale", -1.0, positive=True)
    assert require_real("x", "1/3") == Fraction(1, 3)
