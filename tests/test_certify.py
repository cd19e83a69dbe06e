"""Certified digits: agreement, rounding, exact conversions, honesty against the truth."""

from fractions import Fraction

import gmpy2
import mpmath
import numpy as np
import pytest

from ssmpoison.verify.certify import certify, correct_digits, digits_supported, to_mpf


def test_exact_conversions():
    with mpmath.workprec(300):
        third = mpmath.mpf(1) / 3
    assert to_mpf(0.1) == mpmath.mpf(0.1)
    assert to_mpf(Fraction(1, 4)) == mpmath.mpf("0.25")
    with gmpy2.local_context(gmpy2.get_context(), precision=200):
        g = gmpy2.mpfr(1) / 3
    with mpmath.workprec(300):
        assert abs(to_mpf(g) - third) < mpmath.mpf(2) ** -199
    ld = np.longdouble(1) / np.longdouble(3)
    with mpmath.workprec(300):
        assert abs(to_mpf(ld) - third) < mpmath.mpf(2) ** -63
        assert abs(to_mpf(ld) - third) > mpmath.mpf(2) ** -70  # really 64 bits, not 53 or more


def test_agreement_and_text():
    c = certify(0.0123456789012, "0.01234567890119", 15)
    assert c.digits == 12 and c.text == "1.23456789012e-2"
    assert certify(1.0, 1.0, 7).digits == 7  # capped
    assert certify(1.0, 2.0, 7).text == "?"


def test_rounding_boundary_is_not_overclaimed():
    # 1.2349999 vs 1.2350001 agree to 6 digits in relative error, but round differently at 4 digits
    c = certify("1.2349999", "1.2350001", 10)
    assert c.digits <= 6
    assert c.text[: c.digits + 1].replace(".", "") in ("1235000", "123500", "12350", "1235", "123", "12", "1", "")


@pytest.mark.parametrize("noise", [1e-3, 1e-7, 1e-11, 1e-14])
def test_claimed_digits_are_correct_when_reference_is_accurate(noise):
    truth = mpmath.mpf("0.0501234567890123456789")
    run = float(truth) * (1 + noise)
    with mpmath.workprec(200):
        ref = truth * (1 + mpmath.mpf(noise) * mpmath.mpf("1e-6"))
    c = certify(run, ref, 14)
    assert correct_digits(c.text, truth) >= c.digits
    assert c.digits >= int(-np.log10(noise)) - 1


def test_digits_supported():
    assert digits_supported(53) == 14 and digits_supported(128) == 37
    with pytest.raises(ValueError, match="cap"):
        certify(1.0, 1.0, -1)
