"""The generalised construction (scaled clean and poison sequences) and the Proposition as a checker."""

import json
from fractions import Fraction as F

import pytest

from ssmpoison.theory import Teacher, TheoremSetting, clean_training_set, conditions, poisoned_training_set
from ssmpoison.theory._construction import Construction, scaled_training_set
from ssmpoison.theory._theorem import PAPER
from ssmpoison.theory._proposition import HYPOTHESES, lag_rank, lowest_excited_lag, proposition_hypotheses
from ssmpoison.verify import CleanProblem
from ssmpoison.verify._certified_flow import _oracle_reduction, certified_flows, oracle_applies
from ssmpoison.verify._check import check_setting, report_text
from ssmpoison.verify._flow import FlowProblem
from ssmpoison.verify._proposition_check import check_proposition, counterexample_hypotheses, proposition_report_text
from ssmpoison.verify.cli import main

S = F(1, 2**10)
#: the three non-special sets of the Proposition's must-show: inside its hypotheses, l* = 1, rank-2 teacher with one sequence
GREEDY = CleanProblem(Teacher((F(1, 2),), 3), [(1, 0, 0, 0, 0)], (3 * S / 64, 2 * S / 64, S / 64), S)
L_STAR_ONE = CleanProblem(Teacher((F(1, 2),), 3), [(1, 0, 0)], (3 * S / 64, 2 * S / 64, S / 64), S)
RANK_TWO = CleanProblem(Teacher((F(1, 2), F(1, 4)), 2), [(1, 0, 0, 0)], (2 * S / 64, S / 64), S)


# ------------------------------------------------------------------------------ the construction
@pytest.mark.parametrize("H", [3, 4, 7, 9])
@pytest.mark.parametrize("D", [2, 3, 10])
def test_default_construction_is_the_theorems_sets_exactly(H, D):
    c = Construction()
    assert c.is_paper and c.clean_is_scaled_e0
    assert c.clean_set(H, D) == clean_training_set(H, D) == clean_training_set(H)
    assert c.poisoned_set(H, D) == poisoned_training_set(H, D)
    assert all(type(v) is int for row in c.poisoned_set(H, D).inputs for v in row)
    a0 = (0.01, 0.005, 0.002)
    plain = [x.to_json() for x in conditions(TheoremSetting(H, a0, 2 * H + 2))]
    assert plain == [x.to_json() for x in conditions(TheoremSetting(H, a0, 2 * H + 2, c))]


def test_scaled_construction_has_exact_teacher_labels():
    H, D = 6, 4
    c = Construction((1, 2, F(-1, 3)), (F(1, 2), 3), poison_support="H-2,H-1")
    ts = c.poisoned_set(H, D)
    assert ts.inputs == ((1, 0, 0, 0, 0, 0), (2, 0, 0, 0, 0, 0), (F(-1, 3), 0, 0, 0, 0, 0),
                         (0, 0, 0, 0, F(1, 2), F(1, 2)), (0, 0, 0, 0, 3, 3))
    # K*_{H-1} = 1 for the clean sequence, K*_1 + K*_0 = 1 + D for u† = e_{H-2} + e_{H-1}
    assert ts.labels == (1, 2, F(-1, 3), F(1 + D, 2), 3 * (1 + D))
    assert ts.special_indices() == (3, 4) and not c.clean_set(H, D).is_special
    assert scaled_training_set((0, 1, 0, 0), (2,), 3).labels == (2,)  # 2 K*_2
    assert c.describe("poisoned") == "e_0, 2·e_0, -1/3·e_0; 1/2·(e_(H-2) + e_(H-1)), 3·(e_(H-2) + e_(H-1))"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(clean_scales=(1, 0)), "clean_scales[1] = 0"),
        (dict(poison_scales=(0,)), "poison_scales[0] = 0"),
        (dict(poison_scales=()), "poison_scales must hold at least one scale"),
        (dict(poison_support="H-3"), "poison_support: u† with ones at H-3 is not special"),
        (dict(clean_support="0,H-2"), "clean_support: the clean sequence has a one at H-2, so it is special"),
        (dict(clean_support="x"), "clean_support: position 'x'"),
    ],
)
def test_bad_constructions_are_refused_naming_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Construction(**kwargs)


def test_a_support_that_becomes_special_at_a_horizon_is_refused_there():
    c = Construction(clean_support="3")
    c.clean_set(7)
    with pytest.raises(ValueError, match="clean_support: at H = 5 the clean sequence has a one at H-2 = 3"):
        TheoremSetting(5, (0.01, 0.005), 20, c)
    with pytest.raises(ValueError, match="poison_support: at H = 5 u† has no one at H-2"):
        Construction(poison_support="2").poison_sequence(5)


# ------------------------------------------------------------------------------ the oracle on scaled copies of e_0
def test_oracle_reduction_of_scaled_copies_of_e0():
    assert _oracle_reduction(clean_training_set(7)) == (1, 1)
    assert _oracle_reduction(Construction((1, 2, -1)).clean_set(5, 3)) == (1, 2)  # mean(1, 4, 1)
    assert _oracle_reduction(Construction((0.5, 3)).clean_set(5, 3)) == (1, F(37, 8))
    assert _oracle_reduction(Construction((1,), (1,)).poisoned_set(5, 3)) is None
    assert _oracle_reduction(Construction((1,), clean_support="1").clean_set(5, 3)) is None


def test_oracle_on_scaled_copies_agrees_with_integration():
    from ssmpoison.theory import extrapolation_error

    H, D, a0 = 5, 3, (0.03, 0.02, 0.01)
    quantity = lambda a, b, c: extrapolation_error(a, b, c, D, 12)  # noqa: E731
    base = certified_flows([FlowProblem(clean_training_set(H), a0)], quantity)[0]
    for scales in ((1, -1), (1, 2)):
        p = FlowProblem(Construction(scales).clean_set(H, D), a0)
        assert oracle_applies(p)
        exact = certified_flows([p], quantity)[0]
        run = certified_flows([p], quantity, use_oracle=False)[0]
        assert exact.method == "oracle" and run.method == "integration" and run.status == "converged"
        assert exact.quantity.value == base.quantity.value  # the same limit as {e_0}
        assert abs(float(run.quantity.value) / float(exact.quantity.value) - 1) < 1e-9
        c = sum(s * s for s in scales) / len(scales)
        assert abs(exact.t_converged * c / base.t_converged - 1) < 0.05  # c times faster (the threshold moves a little)
        # the integration sees the threshold at its first accepted step past it (Seulex takes long steps here)
        assert 0.75 < exact.t_converged / run.t_converged <= 1.001


# ------------------------------------------------------------------------------ check on a scaled construction
def test_check_runs_a_scaled_construction():
    c = Construction((1,), (F(1, 2),), poison_support="H-2,H-1")
    r = check_setting(TheoremSetting(5, (0.01, 0.005, 0.002), 20, c))
    assert r.clean.method == "oracle" and r.clean.status == r.poisoned.status == "converged"
    assert r.to_json()["construction"] == {"clean_scales": [1], "poison_scales": ["1/2"], "clean_support": ["0"],
                                           "poison_support": ["H-2", "H-1"]}
    assert "poisoned set {e_0; 1/2·(e_(H-2) + e_(H-1))}" in report_text(r)
    plain = check_setting(TheoremSetting(5, (0.01, 0.005, 0.002), 20))
    assert r.clean.quantity.value == plain.clean.quantity.value  # the same clean set
    assert r.poisoned.quantity.value != plain.poisoned.quantity.value


def _theorem_args(tmp_path, extra):
    return ["check", "--horizon", "5", "--state-dim", "3", "--extrapolate-to", "20", "--init", "0.01,0.005,0.002", *extra]


def test_cli_check_scaled_construction_from_options_toml_and_json(tmp_path, capsys):
    outs = [tmp_path / f"{k}.json" for k in range(3)]
    (tmp_path / "c.toml").write_text('poison_scales = [0.5]\npoison_support = "H-2,H-1"\n')
    (tmp_path / "c.json").write_text(json.dumps({"poison_scales": ["1/2"], "poison_support": ["H-2", "H-1"]}))
    codes = [
        main(_theorem_args(tmp_path, ["--poison-scales", "0.5", "--poison-support", "H-2,H-1", "--json", str(outs[0])])),
        main(_theorem_args(tmp_path, ["--config", str(tmp_path / "c.toml"), "--json", str(outs[1])])),
        main(_theorem_args(tmp_path, ["--config", str(tmp_path / "c.json"), "--json", str(outs[2])])),
    ]
    assert codes[0] in (0, 1) and codes == [codes[0]] * 3
    data = [json.loads(p.read_text()) for p in outs]
    assert data[0]["poisoned_ext_error"] == data[1]["poisoned_ext_error"] == data[2]["poisoned_ext_error"]
    assert data[0]["construction"]["poison_support"] == ["H-2", "H-1"]
    assert "poisoned set" in capsys.readouterr().out


def test_cli_check_clean_e0_2e0_poison_half_e_h2(tmp_path):
    """Must-show 3: clean {e_0, 2 e_0}, poison {0.5 e_(H-2)}, from the options and from a file."""
    (tmp_path / "c.toml").write_text("clean_scales = [1, 2]\npoison_scales = [0.5]\n")
    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    a = main(_theorem_args(tmp_path, ["--clean-scales", "1,2", "--poison-scales", "0.5", "--json", str(outs[0])]))
    b = main(_theorem_args(tmp_path, ["--config", str(tmp_path / "c.toml"), "--json", str(outs[1])]))
    assert a == b and a in (0, 1)
    one, two = (json.loads(p.read_text()) for p in outs)
    assert one["poisoned_ext_error"] == two["poisoned_ext_error"] and one["clean"]["method"] == "oracle"
    assert one["poisoned"]["certified_digits"] >= 8


def test_dependent_sequences_are_integrated_by_seulex_and_certified():
    from ssmpoison.theory import extrapolation_error
    from ssmpoison.verify._expcoll import ExpColl
    from ssmpoison.verify._flow import default_integrator, linearly_dependent
    from ssmpoison.verify._seulex import Seulex

    p = FlowProblem(Construction((1, 2), (F(1, 2),)).poisoned_set(4, 3), (0.01, 0.005, 0.002))
    independent = poisoned_training_set(4)
    assert linearly_dependent(p.training_set) and not linearly_dependent(independent)
    assert isinstance(default_integrator("a", p.training_set), Seulex)
    assert isinstance(default_integrator("a", independent), ExpColl) and isinstance(default_integrator("a"), ExpColl)
    run = certified_flows([p], lambda a, b, c: extrapolation_error(a, b, c, 3, 10))[0]
    # Seulex in float64 and in longdouble: 5.3163552857e-3 (the exponential collocation strays to 5.2e-3 .. 5.8e-3)
    assert run.quantity.digits >= 8 and abs(float(run.quantity.value) - 5.3163552857e-3) < 1e-10


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--clean-scales", "1,0"], "clean_scales[1] = 0"),
        (["--poison-support", "H-3"], "is not special"),
        (["--clean-support", "0,H-2"], "so it is special"),
        (["--poison-scales", "1,x"], "poison_scales[1]"),
        (["--seed", "3"], "init and seed exclude each other"),
        (["--training-set", "x.json"], "only with --proposition"),
    ],
)
def test_cli_check_bad_construction_exits_2_with_one_line(tmp_path, capsys, extra, message):
    assert main(_theorem_args(tmp_path, extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_cli_check_config_key_disagreeing_with_an_option_exits_2(tmp_path, capsys):
    (tmp_path / "c.toml").write_text("horizon = 6\n")
    assert main(_theorem_args(tmp_path, ["--config", str(tmp_path / "c.toml")])) == 2
    assert "horizon given twice with different values" in capsys.readouterr().err
    (tmp_path / "d.toml").write_text("bogus = 1\n")
    assert main(_theorem_args(tmp_path, ["--config", str(tmp_path / "d.toml")])) == 2
    assert "unknown key 'bogus'" in capsys.readouterr().err


# ------------------------------------------------------------------------------ the Proposition's hypotheses
def test_lowest_excited_lag_and_lag_rank():
    assert lowest_excited_lag([(1, 0, 0, 0, 0)]) == 3 and lowest_excited_lag([(1, 0, 0)]) == 1
    assert lowest_excited_lag([(0, 0, 1, 0)]) == 0 and lowest_excited_lag([(0, 0, 0, 1)]) is None
    assert lag_rank([(1, 0, 0, 0), (2, 0, 0, 5)]) == 1 and lag_rank([(1, 0, 0, 0), (0, 1, 0, 0)]) == 2


def _holding(problem):
    return {h.name: h.holds for h in proposition_hypotheses(problem.teacher, problem.inputs, problem.a0)}


def test_hypotheses_on_the_three_sets():
    assert list(_holding(GREEDY)) == list(HYPOTHESES)
    assert all(_holding(GREEDY).values())
    assert [k for k, v in _holding(L_STAR_ONE).items() if not v] == ["lowest_excited_lag"]
    assert [k for k, v in _holding(RANK_TWO).items() if not v] == ["enough_data"]
    hyps = proposition_hypotheses(GREEDY.teacher, GREEDY.inputs, GREEDY.a0)
    assert {h.provenance.split(";")[0] for h in hyps} == {PAPER, "derived here (proofs_notes/03_theorem.md §8)"}
    assert all(h.detail and h.statement for h in hyps)


def test_hypotheses_catch_a_leader_of_the_wrong_sign_and_equal_magnitudes():
    p = CleanProblem(Teacher((F(1, 2),), 2), [(1, 0, 0, 0, 0)], (F(1, 2**16), -F(1, 2**15)), S)
    assert [k for k, v in _holding(p).items() if not v] == ["leader_sign"]
    q = CleanProblem(Teacher((F(1, 2),), 2), [(1, 0, 0, 0, 0)], (F(1, 2**16), -F(1, 2**16)), S)
    assert not _holding(q)["distinct_init"]
    big = CleanProblem(Teacher((F(1, 4),), 2), [(1, 0, 0, 0, 0)], (F(1, 8), F(1, 16)), F(1, 4))
    assert not _holding(big)["small_init"]


def test_counterexample_classification_by_criterion():
    # greedy failures are judged by the greedy hypotheses only: the rank-2 set is inside them
    assert counterexample_hypotheses(RANK_TWO, "greedy_low_rank")[0] is True
    assert counterexample_hypotheses(RANK_TWO, "extrapolation")[0] is False
    assert counterexample_hypotheses(L_STAR_ONE, "greedy_low_rank")[0] is False


# ------------------------------------------------------------------------------ the Proposition checked on flows
def test_check_proposition_on_the_three_sets():
    greedy, lstar, rank2 = (check_proposition(p) for p in (GREEDY, L_STAR_ONE, RANK_TWO))
    assert greedy.matches_proposition and greedy.greedy and greedy.extrapolates
    assert greedy.escape_order == (1,) and greedy.largest_first
    assert "matches_proposition = true" in greedy.verdict()
    assert not lstar.greedy and not lstar.matches_proposition and "predicts nothing" in lstar.verdict()
    assert abs(float(lstar.rank.quantity.value) - 2.7494592739972) < 1e-11  # (3, 2, 1)/(2 sqrt 14)
    assert rank2.greedy and not rank2.extrapolates and "greedy learning but not extrapolation" in rank2.verdict()
    assert abs(float(rank2.error.limit[0]) - (9 / 64) ** (1 / 3)) < 1e-9
    text = proposition_report_text(rank2)
    assert "[FAIL] enough_data" in text and "derived here" in text and "escape order" in text
    assert rank2.to_json()["hypotheses"][5]["name"] == "enough_data"


def test_cli_check_proposition_exit_codes(tmp_path, capsys):
    (tmp_path / "greedy.toml").write_text('teacher = ["1/2"]\ninputs = [[1, 0, 0, 0, 0]]\n'
                                          'a0 = ["3/65536", "2/65536", "1/65536"]\ninit_scale = "1/1024"\n')
    (tmp_path / "lstar.json").write_text(json.dumps(L_STAR_ONE.to_json()))
    (tmp_path / "rank2.json").write_text(json.dumps({"problem": RANK_TWO.to_json()}))
    out = tmp_path / "out.json"
    assert main(["check", "--proposition", "--config", str(tmp_path / "greedy.toml"), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["matches_proposition"] is True
    assert main(["check", "--proposition", "--training-set", str(tmp_path / "lstar.json")]) == 1
    assert main(["check", "--proposition", "--training-set", str(tmp_path / "rank2.json")]) == 1
    text = capsys.readouterr().out
    assert "[FAIL] lowest_excited_lag" in text and "[FAIL] enough_data" in text


@pytest.mark.parametrize(
    "content,extra,message",
    [
        ('teacher = ["1/2"]\ninputs = [[1, 0, 0, 2, 0]]\na0 = ["1/65536", "2/65536"]\n', [],
         "inputs[0]: the training set is special"),
        ('teacher = ["1/2"]\ninputs = [[1, 0, 0, 0, 0]]\n', [], "key 'a0' is missing"),
        ('teacher = ["1/2"]\ninputs = [[1, 0, 0, 0, 0]]\na0 = [0.001, 0.002]\n', ["--horizon", "5"],
         "horizon (--horizon) applies to the Theorem's check"),
    ],
)
def test_cli_check_proposition_bad_input_exits_2(tmp_path, capsys, content, extra, message):
    path = tmp_path / "p.toml"
    path.write_text(content)
    assert main(["check", "--proposition", "--config", str(path), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
