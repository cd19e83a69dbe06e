"""The poisoned side of the Theorem's conditions (note 03 §6): the merged-flow prediction and the advisory conditions."""

import json
import math

import numpy as np
import pytest

from ssmpoison.theory import TheoremSetting, conditions, paper_initialisation
from ssmpoison.theory._poisoned_side import (
    ESCAPE_FRACTION,
    escape_gap,
    merged_pair_flow,
    poisoned_prediction,
    second_limit,
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


def _assert_all_match(settings):
    for setting in settings:
        r = check_setting(setting)
        assert r.all_conditions_hold
        assert r.clean.quantity.digits >= 8 and r.poisoned.quantity.digits >= 8
        assert r.matches_theorem, (setting, r.verdict())


def test_inside_every_condition_the_theorem_holds_fast():
    """Five random settings inside every condition (advisory ones included): certified flows match the Theorem."""
    _assert_all_match(_inside_settings(5, seed=16))


@pytest.mark.slow
def test_inside_every_condition_the_theorem_holds():
    """Thirty random settings inside every condition (advisory ones included): certified flows match the Theorem."""
    _assert_all_match(_inside_settings(30, seed=1600))
