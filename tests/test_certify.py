"""Certified digits: agreement, rounding, exact conversions, honesty against the truth."""

from fractions import Fraction

import gmpy2
import mpmath
import numpy as np
import pytest

from ssmpoison.verify._certify import certify, correct_digits, digits_supported, to_mpf


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


# --- the certification policy and the statuses of every JSON -------------------------------


def test_certification_policy_states_each_rule_once():
    from ssmpoison.verify import FAST_PATH, SEARCH_CERTIFICATION, CertificationPolicy

    fast = CertificationPolicy()
    assert fast.precision_bits is FAST_PATH and fast.fast_path and fast.digits_cap == 14
    run, ref = fast.run_options(), fast.reference_options()
    assert (run.precision_bits, run.rtol, ref.precision_bits, ref.rtol) == (53, 1e-11, 64, 1e-13)
    assert ref.loss_tol == run.effective_loss_tol * 1e-6
    assert fast.escalation_options().precision_bits == 80 and fast.oracle_bits == (53, 64, 128)
    p128 = CertificationPolicy(precision_bits=128)
    assert p128.precision_ladder() == (128, 160, 192) and p128.digits_cap == digits_supported(128)
    assert p128.reference_options().rtol == p128.run_options().effective_rtol * 1e-3
    assert SEARCH_CERTIFICATION.precision_ladder() == (113, 145, 177)
    search_ref = SEARCH_CERTIFICATION.reference_options()
    assert search_ref.rtol is None and search_ref.max_steps == 1500
    with pytest.raises(ValueError, match="^precision_bits must be >= 53"):
        CertificationPolicy(precision_bits=52)
    with pytest.raises(ValueError, match="^target_digits"):
        CertificationPolicy(target_digits=0)


def _statuses(payload):
    """Every value of a ``status`` key, anywhere in a JSON payload."""
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key == "status":
                yield value
            else:
                yield from _statuses(value)
    elif isinstance(payload, list):
        for value in payload:
            yield from _statuses(value)


def test_every_json_status_is_a_status_value():
    """The JSON of ``check --json`` and of a theory-row run: every ``status`` is a Status member
    before serialisation and a Status value after it."""
    import json

    from ssmpoison.theory import TheoremSetting
    from ssmpoison.verify import Status
    from ssmpoison.verify import check_setting
    from ssmpoison.verify._theory_row import TheoryRowRun, theory_row_problems, _quantity
    from ssmpoison.verify import certified_flows

    report = check_setting(TheoremSetting(5, (0.02, 0.01), 20)).to_json()
    from ssmpoison.verify import published_setting

    setting = published_setting("theory", 7)
    seed, problem = theory_row_problems(setting, True)[0]
    (run,) = certified_flows([problem], _quantity(setting))
    row = TheoryRowRun(7, seed, True, run).to_json()
    for payload in (report, row):
        found = list(_statuses(payload))
        assert found and all(type(s) is Status for s in found), found
        assert all(Status(s) in Status for s in _statuses(json.loads(json.dumps(payload))))


def test_every_gd_and_dynamics_json_status_is_a_status_value():
    """The JSON of a short GD-row run (own and spread runs, summaries) and of dynamics runs (a theory-row
    flow, a beyond-row training): every ``status`` and every key of ``excluded_statuses`` is a Status
    member before serialisation and a Status value after it."""
    import dataclasses
    import json

    from ssmpoison.verify import Status, published_setting
    from ssmpoison.verify._dynamics import dynamics_json, run_dynamics
    from ssmpoison.verify._gd_rows import row_json, run_gd_row

    beyond = dataclasses.replace(published_setting("beyond", 6), seeds=(200,), epochs=30, draws=1)
    gd = row_json([run_gd_row(beyond)])
    theory = dynamics_json(run_dynamics("theory", published_setting("theory", 7), seed=242, condition="both", points=20))
    gd_dynamics = dynamics_json(run_dynamics("beyond", beyond, seed=200, condition="both", points=10))
    for payload in (gd, theory, gd_dynamics):
        found = list(_statuses(payload))
        assert found and all(type(s) is Status for s in found), found
        assert all(Status(s) in Status for s in _statuses(json.loads(json.dumps(payload))))
    excluded = [k for s in gd["summary"] + gd["spread"] for k in s["excluded_statuses"]]
    assert excluded and all(type(k) is Status for k in excluded), excluded
    assert all(Status(k) in Status for s in json.loads(json.dumps(gd))["summary"] for k in s["excluded_statuses"])
