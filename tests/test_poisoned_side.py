"""The poisoned side of the Theorem's conditions (note 03 §6): the merged-flow prediction and the advisory conditions."""

import json
import math
from fractions import Fraction as F

import numpy as np
import pytest

from ssmpoison.theory import Construction, TheoremSetting, conditions, paper_initialisation
from ssmpoison.theory._poisoned_side import (
    ESCAPE_FRACTION,
    escape_gap,
    merged_pair_flow,
    poisoned_prediction,
    second_limit,
    set_weights,
    two_escape_limit,
)
from ssmpoison.theory._theorem import DERIVED, HEURISTIC, PAPER
from ssmpoison.verify import check_setting, paper_setting

POISONED_SIDE = ("poison_can_beat_clean", "both_top_entries_escape", "poisoned_error_exceeds_clean")

#: (H, D, init scale, gap exponent, seed) and the certified poisoned error to H' = 20 (note 03 §4, §6).
PAPER_SETTINGS = [((7, 10, 1e-3, 5, 242), 4.91859905e-2), ((9, 20, 5e-3, 10, 342), 3.5012231886e-2)]
COUNTEREXAMPLE = (8, 5, 7.1e-3, 3.25, 9600)


def _setting(H, D, s, k, seed, J=20):
    return TheoremSetting(H, tuple(paper_initialisation(seed, D, s, k)), J)


@pytest.mark.parametrize("params,poisoned", PAPER_SETTINGS)
def test_prediction_is_close_to_and_below_the_certified_poisoned_error(params, poisoned):
    """On the paper's settings the predicted poisoned error is within 10% below the certified one."""
    H, D, s, k, seed = params
    pred = poisoned_prediction(paper_initialisation(seed, D, s, k), H, 20)
    assert pred.merged.converged
    assert 0.9 * poisoned <= pred.error <= poisoned
    assert pred.second_limit > ESCAPE_FRACTION * pred.merged.pair_limit


def test_merged_flow_fits_both_labels():
    """The merged flow ends at a zero-loss point of the poisoned set: sum a_i = 1 and sum a_i^(H-1) = 1 (weight 2 on the pair)."""
    H = 6
    flow = merged_pair_flow((0.004, 0.0039, 0.002, 0.001), H)
    v = np.array([flow.pair_limit, flow.pair_limit, *flow.rest_limit])
    assert flow.converged
    assert abs(v.sum() - 1) < 1e-10 and abs((v ** (H - 1)).sum() - 1) < 1e-10
    assert flow.pair_limit > max(flow.rest_limit) and min(flow.rest_limit) < 0  # order kept; K_1 = 1 needs a negative entry
    assert flow.log_amplification > 0


def test_second_limit_and_escape_gap_invert_each_other():
    for H in (3, 5, 9):
        x, A = 0.9, 1e6
        gap = escape_gap(x, A, H)
        assert math.isclose(second_limit(x, gap * A, H), ESCAPE_FRACTION * x, rel_tol=1e-12)
        assert second_limit(x, 0.0, H) == pytest.approx(x)


def test_two_escape_limit_fits_both_labels():
    H, D = 7, 6
    point = two_escape_limit(0.5, D, H)
    v = np.array(point)
    assert abs(v.sum() - 1) < 1e-12 and abs((v ** (H - 1)).sum() - 1) < 1e-12
    assert point[1] == 0.5 and point[0] >= 0.5
    assert two_escape_limit(0.5, 2, H) is None and two_escape_limit(-0.1, D, H) is None


def test_every_condition_has_a_provenance_and_the_poisoned_side_is_advisory():
    conds = conditions(_setting(*PAPER_SETTINGS[0][0]))
    assert [c.name for c in conds][-3:] == list(POISONED_SIDE)
    for c in conds:
        assert c.provenance in (PAPER, DERIVED, HEURISTIC)
        assert c.advisory == (c.provenance == HEURISTIC) == (c.name in POISONED_SIDE)
        data = c.to_json()
        assert data["provenance"] == c.provenance and data["advisory"] == c.advisory
        json.dumps(data)
    by = {c.name: c for c in conds}
    for name in POISONED_SIDE:
        assert by[name].holds and by[name].margin > 1
    assert not any(c.advisory for c in conditions(_setting(*PAPER_SETTINGS[0][0]), poisoned_side=False))


def test_poisoned_side_is_not_evaluated_where_another_condition_fails():
    names = {c.name for c in conditions(TheoremSetting(5, (0.01, 0.005, 0.002), 6))}
    assert not names & set(POISONED_SIDE)


def test_counterexample_fails_a_poisoned_side_condition_by_name():
    """H = 8, D = 5, scale 7.1e-3, k = 3.25, seed 9600: the clean side holds, the poisoned side does not."""
    by = {c.name: c for c in conditions(_setting(*COUNTEREXAMPLE))}
    assert all(c.holds for c in by.values() if not c.advisory)
    assert not by["both_top_entries_escape"].holds and by["both_top_entries_escape"].margin < 0.1
    assert not by["poisoned_error_exceeds_clean"].holds
    assert by["poison_can_beat_clean"].holds  # with the gap closed the poison would win: the gap is too wide


def test_check_reports_the_counterexample_with_its_flows(tmp_path):
    """The command line exits 1, names the failing poisoned-side condition and still reports both flows."""
    from ssmpoison.verify.cli import main

    H, D, s, k, seed = COUNTEREXAMPLE
    out = tmp_path / "check.json"
    code = main(["check", "--horizon", str(H), "--state-dim", str(D), "--init-scale", str(s), "--gap-exponent", str(k),
                 "--seed", str(seed), "--extrapolate-to", "20", "--json", str(out)])
    data = json.loads(out.read_text())
    assert code == 1
    assert data["conditions_hold"] and not data["all_conditions_hold"] and not data["matches_theorem"]
    failing = {c["name"] for c in data["conditions"] if not c["holds"]}
    assert failing == {"both_top_entries_escape", "poisoned_error_exceeds_clean"}
    assert "both_top_entries_escape" in data["verdict"]
    assert data["clean"]["status"] == data["poisoned"]["status"] == "converged"
    assert float(data["poisoned_ext_error"]) < float(data["clean_ext_error"])
    assert all(c["provenance"] for c in data["conditions"])


def _inside_settings(count: int, seed: int):
    """``count`` random settings of the paper's initialisation where every condition holds, advisory ones included."""
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        H, D = int(rng.integers(4, 10)), int(rng.integers(3, 17))
        scale, k, s = 10 ** rng.uniform(-3.5, -1.5), rng.uniform(1.5, 8.0), int(rng.integers(0, 10_000))
        try:
            setting = paper_setting(H, D, 20, scale, k, s)
        except ValueError:  # the gap would unsort the draws
            continue
        if all(c.holds for c in conditions(setting)):
            found.append(setting)
    return found


def _assert_all_match(settings, digits: int = 8):
    for setting in settings:
        r = check_setting(setting)
        assert r.all_conditions_hold
        assert r.clean.quantity.digits >= digits and r.poisoned.quantity.digits >= digits
        assert r.matches_theorem, (setting, r.verdict())


def test_inside_every_condition_the_theorem_holds_fast():
    """Five random settings inside every condition (advisory ones included): certified flows match the Theorem."""
    _assert_all_match(_inside_settings(5, seed=16))


@pytest.mark.slow
def test_inside_every_condition_the_theorem_holds():
    """Thirty random settings inside every condition (advisory ones included): certified flows match the Theorem."""
    _assert_all_match(_inside_settings(30, seed=1600))


# ------------------------------------------------------------------------------ scaled constructions (note 03 §7)
SCALED = TheoremSetting(5, (0.01, 0.005, 0.002), 12, Construction((1, 2), (F(1, 2),)))


def test_common_weight_is_a_change_of_time():
    """Multiplying both drives' weights by one factor moves neither the merged limit nor the amplification."""
    a0 = (0.004, 0.0039, 0.002, 0.001)
    one, three = merged_pair_flow(a0, 6, 2.0, 0.5), merged_pair_flow(a0, 6, 6.0, 1.5)
    assert one.converged and three.converged
    assert one.pair_limit == pytest.approx(three.pair_limit, rel=1e-7)
    assert one.log_amplification == pytest.approx(three.log_amplification, rel=1e-6)
    assert three.time == pytest.approx(one.time / 3, rel=0.2)
    assert merged_pair_flow(a0, 6, 1.0, 0.05).log_amplification != pytest.approx(one.log_amplification, rel=1e-3)


def test_scaled_construction_gets_the_poisoned_side_with_its_weights():
    """Clean {e_0, 2 e_0}, poison {e_(H-2)/2}: the poisoned side is evaluated with weights (5, 1/4) and fails by name."""
    assert set_weights(SCALED.construction) == (5.0, 0.25) and set_weights(None) == (1.0, 1.0)
    by = {c.name: c for c in conditions(SCALED)}
    assert all(c.holds for c in by.values() if not c.advisory)
    assert set(POISONED_SIDE) <= set(by) and "poisoned_side" not in by
    assert not by["both_top_entries_escape"].holds  # the certified flows: poisoned 1.93e-3 < clean 2.60e-3
    unit = {c.name: c for c in conditions(TheoremSetting(5, SCALED.a0, 12))}
    assert by["both_top_entries_escape"].threshold != unit["both_top_entries_escape"].threshold
    other = TheoremSetting(5, SCALED.a0, 12, Construction((1,), (1,), poison_support="H-2,H-1"))
    names = [c.name for c in conditions(other)]
    assert "poisoned_side" in names and not set(POISONED_SIDE) & set(names)


def _inside_scaled_settings(count: int, seed: int):
    """``count`` random scaled constructions (paper's initialisation) where every condition holds."""
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        H, D = int(rng.integers(4, 10)), int(rng.integers(3, 17))
        scale, k, s = 10 ** rng.uniform(-3.5, -1.5), rng.uniform(1.5, 8.0), int(rng.integers(0, 10_000))
        cs = tuple(round(float(10 ** rng.uniform(-0.7, 0.7)), 3) for _ in range(int(rng.integers(1, 4))))
        ps = tuple(round(float(10 ** rng.uniform(-1, 0.5)), 3) for _ in range(int(rng.integers(1, 3))))
        try:
            setting = paper_setting(H, D, 20, scale, k, s, construction=Construction(cs, ps))
        except ValueError:  # the gap would unsort the draws
            continue
        if all(c.holds for c in conditions(setting)):
            found.append(setting)
    return found


def test_inside_every_condition_scaled_constructions_match_fast():
    """Three random scaled constructions inside every condition: certified flows match the Theorem."""
    _assert_all_match(_inside_scaled_settings(3, seed=17))


@pytest.mark.slow
def test_inside_every_condition_scaled_constructions_match():
    """Thirty random scaled constructions inside every condition: certified flows match the Theorem.

    Some draws have top entries 3e-10 apart (an ill-conditioned poisoned flow): its longdouble run and
    80-bit re-run share 7 digits, ample for a verdict on a ratio of errors.
    """
    _assert_all_match(_inside_scaled_settings(30, seed=1700), digits=6)
