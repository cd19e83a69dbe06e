"""``ssmpoison audit``: the dataset reader, specialness, the label check, leave-one-out flags, defences, the CLI."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest

from ssmpoison.theory._teacher import Teacher
from ssmpoison.theory._training_set import TrainingSet
from ssmpoison.verify._audit import (AuditDataset, audit, audit_text, dataset_from_json, defence_sets, roc_auc,
                                     sequence_lowest_lag)
from ssmpoison.verify.cli import main

#: H = 6, D = 3: the Theorem's construction {e_0, e_4} at a small size, where e_4 poisons (measured: 22.6x)
POISONED = {"inputs": [[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0]], "labels": [1, 1], "teacher": {"entries": [1]},
            "horizon": 6, "state_dim": 3, "extrapolate_to": 12, "init": [0.001, 0.0009, 0.0002]}


def _write(tmp_path, payload, name="d.json"):
    path = tmp_path / name
    path.write_text(json.dumps(payload) if not isinstance(payload, str) else payload)
    return str(path)


@pytest.fixture(scope="module")
def poisoned_report():
    return audit(dataset_from_json(POISONED), defences=True)


def test_the_planted_poison_is_flagged_ranked_first_and_removed_by_every_defence(poisoned_report):
    r = poisoned_report
    assert r.poisons == (1,) and r.mislabelled == () and r.flagged
    assert r.ranking == (1, 0)
    poison, clean = r.sequences[1], r.sequences[0]
    assert poison.special_score == 1.0 and poison.special_share == 1.0 and poison.lowest_lag == 0
    assert poison.lowest_lag_without == 4 and clean.lowest_lag == 4 and clean.special_score == 0.0
    assert poison.factor >= 10 and clean.factor < 1
    assert poison.factor == pytest.approx(float(r.full.quantity.value / poison.without.quantity.value))
    assert "special" in poison.reasons[1] and "clean label" in poison.reasons[1]
    # every defence leaves {e_0}: the error of the set without the poison
    by_name = {d.name: d for d in r.defences}
    assert set(by_name) == {"strip_special", "drop_flagged", "reweight"}
    for d in r.defences:
        assert d.training_set.inputs == ((1, 0, 0, 0, 0, 0),)
        assert d.run.quantity.value == poison.without.quantity.value
    text = audit_text(r)
    assert "POISON" in text and "defences:" in text
    payload = r.to_json()
    json.dumps(payload, allow_nan=False)
    assert payload["poisons"] == [1] and payload["sequences"][1]["flag"] == "POISON"
    assert payload["sequences"][1]["without_it"]["certified_digits"] >= 8


def test_a_wrong_label_is_mislabelled_not_a_clean_label_poison():
    payload = dict(POISONED, labels=[1, 2])  # the poison's label is not the teacher's K*_1 = 1
    r = audit(dataset_from_json(payload))
    assert r.mislabelled == (1,) and r.poisons == ()
    s = r.sequences[1]
    assert s.flag == "MISLABELLED" and s.clean_label == 1 and "differs from the teacher's" in s.reasons[0]
    assert r.flagged


def test_float_labels_are_compared_with_a_relative_tolerance():
    from ssmpoison.verify._audit import _label_clean

    assert _label_clean(1.0 + 1e-13, 1, 1e-9) and not _label_clean(1.0 + 1e-13, 1, 0)
    assert _label_clean(Fraction(1, 3), Fraction(1, 3), 0) and not _label_clean(Fraction(1, 3), Fraction(1, 3) + Fraction(1, 2**60), 1e-9)
    assert not _label_clean(2e6 * (1 + 1e-8), 2e6, 1e-9) and _label_clean(2e6 * (1 + 1e-10), 2e6, 1e-9)


def test_without_a_teacher_only_specialness_is_reported():
    payload = {k: v for k, v in POISONED.items() if k != "teacher"}
    r = audit(dataset_from_json(payload))
    assert r.full is None and not r.flagged and all(s.without is None and s.factor is None for s in r.sequences)
    assert [s.special_score for s in r.sequences] == [0.0, 1.0]
    assert "no teacher" in audit_text(r)


def test_lowest_lag_of_one_sequence():
    assert sequence_lowest_lag((1, 0, 0, 0, 0)) == 3
    assert sequence_lowest_lag((0, 0, 2, 0, 5)) == 1
    assert sequence_lowest_lag((0, 0, 0, 1, 0)) == 0
    assert sequence_lowest_lag((0, 0, 0, 0, 7)) is None


def test_defence_sets_strip_relabel_exactly_and_reweight_by_the_special_score():
    teacher = Teacher((Fraction(1, 2),), 3)
    rows = ((1, 0, 0, 2, 1), (0, 1, 0, 0, 0), (0, 0, 0, 3, 0))
    ts = teacher.training_set(rows)
    ds = AuditDataset(ts, (Fraction(1, 100), Fraction(1, 200), Fraction(1, 300)), 10, teacher)
    from ssmpoison.verify._audit import AuditReport

    report = AuditReport(ds, None, (), 10.0, 1e-9)
    sets = dict((name, s) for name, s, _ in defence_sets(report))
    stripped = sets["strip_special"]
    assert stripped.inputs == ((1, 0, 0, 0, 1), (0, 1, 0, 0, 0))  # the pure e_3 multiple became zero: dropped
    assert stripped.labels == tuple(teacher.label(r) for r in stripped.inputs)  # still clean, exactly
    assert sets["drop_flagged"] == ts  # nothing flagged
    weighted = sets["reweight"]
    assert weighted.samples == 2 and weighted.inputs[1] == (0, 1, 0, 0, 0)  # non-special: weight 1, untouched
    w = 1 - 4 / 6  # 1 - s^2 with s^2 = 2^2 / (1 + 4 + 1)
    assert weighted.inputs[0] == pytest.approx(tuple(v * math.sqrt(w) for v in rows[0]), rel=1e-15)
    assert weighted.labels[0] == pytest.approx(float(ts.labels[0]) * math.sqrt(w), rel=1e-15)


@pytest.mark.parametrize("change, field", [
    ({"inputs": [[1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0]]}, "inputs[1]"),
    ({"labels": None}, "labels"),
    ({"labels": [1]}, "labels"),
    ({"inputs": [[1, 0, 0, 0, 0, float("nan")], [0, 0, 0, 0, 1, 0]]}, "inputs[0][5]"),
    ({"labels": [1, float("nan")]}, "labels[1]"),
    ({"horizon": 7}, "horizon"),
    ({"init": [0.001, 0.0009]}, "init"),
    ({"init": {"seed": 1, "init_scale": 0.001}}, "init.gap_exponent"),
    ({"teacher": {"entries": [2]}}, "teacher"),
    ({"extra": 1}, "extra"),
    ({"state_dim": True}, "state_dim"),
])
def test_bad_datasets_are_refused_naming_the_field(change, field):
    payload = dict(POISONED, **change)
    if change.get("labels", 0) is None:
        del payload["labels"]
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        dataset_from_json(payload)


def test_a_single_sequence_is_refused():
    with pytest.raises(ValueError, match="inputs must hold at least 2"):
        dataset_from_json(dict(POISONED, inputs=[[1, 0, 0, 0, 0, 0]], labels=[1]))


def test_the_paper_initialisation_can_be_named():
    ds = dataset_from_json(dict(POISONED, state_dim=10, init={"seed": 242, "init_scale": 0.001, "gap_exponent": 5}))
    from ssmpoison.theory._construction import paper_initialisation

    assert ds.a0 == tuple(float(v) for v in paper_initialisation(242, 10, 0.001, 5))


def test_roc_auc():
    assert roc_auc([3, 4], [1, 2]) == 1.0
    assert roc_auc([1], [1]) == 0.5
    assert roc_auc([1, 3], [2]) == 0.5
    with pytest.raises(ValueError):
        roc_auc([], [1])


def test_cli_exit_1_with_a_poison_and_json_with_every_number(tmp_path, capsys):
    out = tmp_path / "a.json"
    assert main(["audit", _write(tmp_path, POISONED), "--json", str(out)]) == 1
    text = capsys.readouterr().out
    assert "POISON" in text
    payload = json.loads(out.read_text())
    assert payload["poisons"] == [1] and payload["ranking"] == [1, 0]
    assert payload["full_set"]["certified_digits"] >= 8 and payload["sequences"][1]["factor"] > 10


def test_cli_exit_0_when_nothing_is_flagged(tmp_path, capsys):
    no_teacher = {k: v for k, v in POISONED.items() if k != "teacher"}  # no flows: specialness only
    assert main(["audit", _write(tmp_path, no_teacher), "--json", "-"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["flagged"] is False and payload["poisons"] == [] and payload["teacher_given"] is False
    assert [s["special_score"] for s in payload["sequences"]] == [0.0, 1.0]


@pytest.mark.parametrize("payload, field", [
    ('{"inputs": [[1, 0, 0], [0, 1]], "labels": [1, 1], "state_dim": 2, "extrapolate_to": 5, "init": [0.1, 0.2]}',
     "inputs[1]"),
    ('{"inputs": [[1, 0, 0], [0, 1, 0]], "state_dim": 2, "extrapolate_to": 5, "init": [0.1, 0.2]}', "labels"),
    ('{"inputs": [[1, 0, 0], [0, 1, 0]], "labels": [1, NaN], "state_dim": 2, "extrapolate_to": 5, "init": [0.1, 0.2]}',
     "labels[1]"),
    ("{not json", "dataset"),
])
def test_cli_exit_2_on_bad_input_with_one_line_and_nothing_written(tmp_path, capsys, payload, field):
    out = tmp_path / "a.json"
    assert main(["audit", _write(tmp_path, payload), "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and field in err
    assert not out.exists()


def test_cli_refuses_a_bad_factor(tmp_path, capsys):
    assert main(["audit", _write(tmp_path, POISONED), "--factor", "1"]) == 2
    assert "factor" in capsys.readouterr().err


@pytest.mark.slow
def test_jobs_give_the_same_numbers():
    ds = dataset_from_json(POISONED)
    one, two = audit(ds), audit(ds, jobs=2)
    assert [s.without.quantity.value for s in one.sequences] == [s.without.quantity.value for s in two.sequences]
    assert one.full.quantity.value == two.full.quantity.value


@pytest.mark.slow
def test_planted_poison_experiment_small():
    from ssmpoison.verify._audit import audit_experiment

    result = audit_experiment(2, 1, horizon=6, state_dim=6, seed=0)
    s = result.summary()
    assert s["poisoned_sets"] == 2 and s["unpoisoned_sets"] == 1
    assert s["damaging_ranked_first"] == s["damaging_sets"]
    assert result.mislabelled_example is not None and result.mislabelled_example.mislabelled
    json.dumps(result.to_json(), allow_nan=False)


def test_cli_max_steps_bounds_every_flow(tmp_path, capsys):
    assert main(["audit", _write(tmp_path, POISONED), "--max-steps", "0"]) == 2
    assert "max_steps" in capsys.readouterr().err
    out = tmp_path / "a.json"
    assert main(["audit", _write(tmp_path, POISONED), "--max-steps", "3", "--json", str(out)]) in (0, 1)
    payload = json.loads(out.read_text())
    assert payload["full_set"]["status"] != "converged" and payload["poisons"] == []


def test_the_optimised_generator_plants_an_exact_clean_poison_within_its_norm():
    """The optimiser's poison as a planted generator: given the set it poisons, it returns a sequence of
    exact dyadic entries within the drawn norm, and the experiment passes it the set (``needs_setting``)."""
    import numpy as np

    from ssmpoison.theory._construction import clean_training_set
    from ssmpoison.verify._audit import optimised_poison_generator
    from ssmpoison.verify._poisons import PoisonSetting

    generator = optimised_poison_generator(max_iterations=1, max_steps=2000)
    assert generator.needs_setting is True
    setting = PoisonSetting(clean_training_set(4, 3), (0.6, 0.4, 0.2), Teacher((1,), 3), 8)
    u = generator(np.random.default_rng(0), 4, Fraction(1, 2), setting=setting)
    assert len(u) == 4 and all(isinstance(v, Fraction) and v.denominator & (v.denominator - 1) == 0 for v in u)
    assert sum(v * v for v in u) <= Fraction(1, 4)
    assert u[2] != 0  # the search starts from (1/2) e_(H-2), one SLSQP iteration away


@pytest.mark.slow
def test_planted_optimised_poisons():
    """The optimiser's poison planted (the generator gets the set it poisons): within its budget, clean-labelled."""
    from ssmpoison.verify._audit import audit_experiment, optimised_poison_generator

    result = audit_experiment(2, 1, horizon=5, state_dim=4, seed=0,
                              poison_generator=optimised_poison_generator(max_iterations=2, max_steps=2000))
    planted = result.sets[1]
    assert planted.kind == "generated" and result.settings["poison_generator"] == "optimised_poison"
    u = planted.report.dataset.training_set.inputs[planted.planted]
    assert sum(float(v) ** 2 for v in u) <= float(planted.poison_norm) ** 2 * (1 + 1e-12)
    assert planted.report.sequences[planted.planted].mislabelled is False
    json.dumps(result.to_json(), allow_nan=False)
