"""Robustness of each GD run: perturbed re-runs from the same initial weights, outcomes, labels, skipped seeds."""

import dataclasses
import json

import numpy as np
import pytest

from ssmpoison.verify import RunResult, published_setting
from ssmpoison.verify._dynamics import ESCAPE_LEVEL
from ssmpoison.verify._gd_data import beyond_problem, nonlinear_problem, perturb_initial
from ssmpoison.verify._gd_rows import (
    LEARNED_LEVEL,
    learned_entries,
    perturbation_means,
    perturbation_ratios,
    responsible_knife_edges,
    row_json,
    row_text,
    run_gd_row,
    run_robustness,
    same_outcome,
)
from ssmpoison.verify._gd_training import train_beyond, train_nonlinear
from ssmpoison.verify._limits import require_within
from ssmpoison.verify._settings import GDRowSetting, override
from ssmpoison.verify.cli import main

BEYOND6 = published_setting("beyond", 6)
NONLINEAR6 = published_setting("nonlinear", 6)


def _float32(setting):
    return dataclasses.replace(setting, config=dataclasses.replace(setting.config, dtype="float32"))


def _run(seed, poisoned, ext, a=(1.0, 0.1), status="converged", k=0):
    return RunResult(seed=seed, poisoned=poisoned, ext_error=ext, train_loss=1e-3, steps=10, status=status,
                     reached_at=5 if status == "converged" else None, params=(np.array(a),), perturbation=k)


# ---------------------------------------------------------------- the perturbation itself


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_perturbation_is_deterministic_relative_and_keeps_shapes(dtype):
    cfg = dataclasses.replace(NONLINEAR6.config, dtype=dtype)
    params, _, _ = nonlinear_problem(cfg, 4541, False)
    one = perturb_initial(params, 4541, False, 3, 1e-7)
    again = perturb_initial(params, 4541, False, 3, 1e-7)
    for p, q, r in zip(params, one, again):
        assert q.dtype == p.dtype and q.shape == p.shape
        assert np.array_equal(q, r)  # same run and index: the same perturbation, bit for bit
        rel = np.abs(q.astype(float) / p.astype(float) - 1)
        assert rel.max() < 1e-6  # relative size 1e-7 (xi ~ N(0,1): |xi| < 6 here), rounded to the type
    assert any(not np.array_equal(p, q) for p, q in zip(params, one))
    # another index, condition or seed: another perturbation
    for other in (perturb_initial(params, 4541, False, 4, 1e-7), perturb_initial(params, 4541, True, 3, 1e-7),
                  perturb_initial(params, 4540, False, 3, 1e-7)):
        assert any(not np.array_equal(q, o) for q, o in zip(one, other))


def test_perturbation_of_size_or_index_zero_is_the_identity():
    params, _, _ = beyond_problem(BEYOND6.config, 200, True)
    for k, size in ((0, 1e-3), (5, 0.0)):
        out = perturb_initial(params, 200, True, k, size)
        assert all(np.array_equal(p, q) and p.dtype == q.dtype for p, q in zip(params, out))


@pytest.mark.parametrize("kwargs,name", [({"index": -1}, "index"), ({"size": -1e-7}, "size"), ({"size": float("nan")}, "size"),
                                         ({"seed": -2}, "seed"), ({"index": 1.5}, "index")])
def test_perturbation_refuses_bad_arguments(kwargs, name):
    args = {"params": (np.ones(2),), "seed": 1, "poisoned": False, "index": 1, "size": 1e-7, **kwargs}
    with pytest.raises(ValueError, match=name):
        perturb_initial(**args)


def test_trainer_refuses_bad_perturbation_arguments():
    with pytest.raises(ValueError, match="perturbations"):
        train_beyond(BEYOND6.config, [200], [False], 10, perturbations=-1)
    with pytest.raises(ValueError, match="perturbation_size"):
        train_beyond(BEYOND6.config, [200], [False], 10, perturbations=1, perturbation_size=-1.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_size_zero_reruns_reproduce_the_run_exactly(dtype):
    cfg = dataclasses.replace(BEYOND6.config, dtype=dtype)
    runs = train_beyond(cfg, [200, 201], [False, True], 3000, perturbations=2, perturbation_size=0.0)
    assert len(runs) == 4 * 3 and [r.perturbation for r in runs[:4]] == [0] * 4
    base = {(r.seed, r.poisoned): r for r in runs if not r.perturbation}
    for r in runs[4:]:
        ref = base[(r.seed, r.poisoned)]
        assert r.init_draw == 0 and r.perturbation in (1, 2)
        assert (r.ext_error, r.train_loss, r.steps, r.status, r.reached_at) == \
            (ref.ext_error, ref.train_loss, ref.steps, ref.status, ref.reached_at)
        assert all(np.array_equal(p, q) for p, q in zip(r.params, ref.params))


def test_size_zero_reruns_of_the_nonlinear_row_reproduce_the_run_exactly():
    runs = train_nonlinear(_float32(NONLINEAR6).config, [4541], [False], 400, perturbations=1, perturbation_size=0.0)
    assert runs[0].train_loss == runs[1].train_loss and all(np.array_equal(p, q) for p, q in zip(runs[0].params, runs[1].params))


def test_perturbed_reruns_share_the_batch_and_the_unperturbed_runs_do_not_move():
    cfg = _float32(BEYOND6).config
    plain = train_beyond(cfg, [200, 201], [False, True], 20000)
    runs = train_beyond(cfg, [200, 201], [False, True], 20000, perturbations=3, perturbation_size=1e-7)
    assert [(r.seed, r.poisoned, r.ext_error) for r in runs[:4]] == [(r.seed, r.poisoned, r.ext_error) for r in plain]
    assert [(r.seed, r.poisoned, r.perturbation) for r in runs[4:]] == [
        (s, p, k) for s in (200, 201) for p in (False, True) for k in (1, 2, 3)]
    assert any(r.ext_error != plain[0].ext_error for r in runs[4:7])  # the perturbation is felt


# ---------------------------------------------------------------- outcomes and labels


def test_learned_level_is_the_dynamics_escape_level():
    assert LEARNED_LEVEL == ESCAPE_LEVEL == 0.5
    assert learned_entries(_run(1, False, 0.1, a=(1.0, -0.6, 0.49, np.nan))) == 2


def test_same_outcome_status_learned_entries_and_error_class():
    ref = _run(1, False, 1e-3)
    assert same_outcome(ref, _run(1, False, 2.9e-3)) and same_outcome(ref, _run(1, False, 0.34e-3))
    assert not same_outcome(ref, _run(1, False, 3.1e-3))  # outside a factor 3
    assert not same_outcome(ref, _run(1, False, 1e-3, a=(1.0, 0.6)))  # a second entry learned
    assert not same_outcome(ref, _run(1, False, 1e-3, status="stalled"))
    stalled = _run(1, False, 0.9, status="stalled")
    assert same_outcome(stalled, _run(1, False, 0.1, status="stalled"))  # no error class without convergence
    assert same_outcome(_run(1, False, np.nan), _run(1, False, np.nan)) and not same_outcome(ref, _run(1, False, np.nan))


def test_run_robustness_labels_and_statistics():
    run = _run(7, False, 1e-3)
    perturbed = [_run(7, False, e, k=k) for k, e in enumerate((1.1e-3, 0.9e-3, 0.1, 1e-3), start=1)]
    perturbed.append(_run(7, True, 5.0, k=1))  # another condition: not a re-run of this one
    rob = run_robustness(run, perturbed)
    assert rob["label"] == "knife edge (1 of 4 perturbed runs differ)" and rob["robust"] is False
    assert rob["differing"] == [3] and rob["learned_counts"] == {"1": 4}
    assert rob["ext_error_min"] == 0.9e-3 and rob["ext_error_max"] == 0.1
    assert run_robustness(run, perturbed[:2] + perturbed[3:])["label"] == "robust"
    assert run_robustness(run, [])["label"] is None and run_robustness(run, [])["robust"] is None


def test_means_under_perturbations_and_the_knife_edge_behind_a_small_ratio():
    runs = [_run(1, False, 1e-3), _run(2, False, 1e-1), _run(1, True, 0.2), _run(2, True, 0.2)]
    perturbed = []
    for k in (1, 2, 3):
        perturbed += [_run(1, False, 1.1e-3, k=k), _run(2, False, 1e-3 if k < 3 else 0.1, k=k),
                      _run(1, True, 0.2, k=k), _run(2, True, 0.21, k=k)]
    means = perturbation_means(perturbed, False)
    assert means["samples"] == 3 and means["min"] == pytest.approx(1.05e-3) and means["max"] == pytest.approx(0.05055)
    ratios = perturbation_ratios(perturbed)
    assert ratios["samples"] == 3 and ratios["at_least_10x"] == 2
    responsible = responsible_knife_edges(runs, perturbed)  # ratio 0.2 / 0.0505 < 10: seed 2 clean is the knife edge
    assert [(x["seed"], x["poisoned"], x["responsible"]) for x in responsible] == [(2, False, True)]
    assert responsible[0]["label"] == "knife edge (2 of 3 perturbed runs differ)"
    assert responsible[0]["ratio_max"] == pytest.approx(0.2 / 1e-3) and responsible[0]["ratio_at_least_10x"] == 2
    assert responsible[0]["ratio_min"] == pytest.approx(0.2 / 0.0505)
    # a knife edge whose re-runs do not lift the ratio is named, but not as responsible
    small = [_run(1, True, 0.0, status="stalled", k=k) for k in (1, 2, 3)] + [
        _run(2, False, 0.09 if k == 1 else 0.1, k=k) for k in (1, 2, 3)] + [_run(1, False, 1e-3, k=k) for k in (1, 2, 3)]
    flat = [_run(1, False, 1e-3), _run(2, False, 1e-1), _run(1, True, 0.2, status="stalled"), _run(2, True, 0.2)]
    assert responsible_knife_edges(flat, small) == []  # robust runs only: the ratio (0.2 / 0.05) is robust
    edge = [r for r in small if r.seed != 2] + [_run(2, False, 0.5 if k == 2 else 0.1, k=k) for k in (1, 2, 3)]
    (named,) = responsible_knife_edges(flat, edge)
    assert (named["seed"], named["responsible"], named["ratio_at_least_10x"]) == (2, False, 0)
    fine = [_run(1, False, 1e-3), _run(1, True, 0.2)]
    assert responsible_knife_edges(fine, perturbed) is None  # ratio 200x
    assert perturbation_means([], True) is None and perturbation_ratios([]) is None


# ---------------------------------------------------------------- real runs: robust and knife edge


def test_a_robust_run_is_labelled_robust():
    """The beyond row's seed 200 (float32, the paper's arithmetic): every re-run at 1e-7 lands in its outcome."""
    setting = dataclasses.replace(_float32(BEYOND6), seeds=(200,))
    result = run_gd_row(setting, draws=0, perturbations=3)
    labels = {r["poisoned"]: r["label"] for r in row_json([result])["robustness"][0]["runs"]}
    assert labels == {False: "robust", True: "robust"}
    assert "robust" in row_text(result) and "knife edge" not in row_text(result)


def test_the_published_knife_edge_is_caught():
    """Non-linear H = 6 seed 4541 without special sequences, float32: one entry and error ~3e-4 itself, an error
    100x larger (the second entry grown to ~0.4) after most 1e-7 perturbations; seed 4545 beside it is robust."""
    setting = dataclasses.replace(_float32(NONLINEAR6), seeds=(4541, 4545))
    runs = train_nonlinear(setting.config, setting.seeds, [False], setting.step_budget, perturbations=4,
                           perturbation_size=1e-7)
    own = {r.seed: r for r in runs if not r.perturbation}
    perturbed = [r for r in runs if r.perturbation]
    edge = run_robustness(own[4541], perturbed)
    assert edge["robust"] is False and edge["label"].startswith("knife edge") and edge["differ"] >= 2
    assert own[4541].ext_error < 1e-3 and edge["ext_error_max"] > 1e-2
    assert run_robustness(own[4545], perturbed)["label"] == "robust"


# ---------------------------------------------------------------- row results, JSON, determinism


def test_row_json_is_identical_for_the_same_seeds_and_carries_the_robustness():
    setting = dataclasses.replace(_float32(BEYOND6), seeds=(200, 201))

    def payload():
        out = row_json([run_gd_row(setting, draws=1, perturbations=2, perturbation_size=1e-5, skipped_seeds=True)])
        out.pop("seconds")
        return json.dumps(out, sort_keys=True)

    first = payload()
    assert first == payload()
    data = json.loads(first)
    rob = data["robustness"][0]
    assert rob["perturbations"] == 2 and rob["perturbation_size"] == 1e-5 and rob["learned_level"] == 0.5
    assert len(rob["runs"]) == 4 and all(r["perturbations"] == 2 for r in rob["runs"])
    assert len(data["perturbation_runs"]) == 8 and {r["perturbation"] for r in data["perturbation_runs"]} == {1, 2}
    # the skipped seeds 202, 203: beside the published ones, out of their means
    assert {r["seed"] for r in data["skipped_runs"]} == {202, 203} and len(data["skipped_perturbation_runs"]) == 8
    assert [s["runs"] for s in data["summary"]] == [2, 2] and [s["runs"] for s in data["skipped_summary"]] == [2, 2]
    assert len(rob["skipped_runs"]) == 4


def test_without_perturbations_no_label():
    result = run_gd_row(dataclasses.replace(BEYOND6, seeds=(200,)), draws=0, perturbations=0)
    assert result.perturbation_runs == [] and "robustness:" not in row_text(result)
    assert row_json([result])["robustness"][0]["runs"][0]["label"] is None


# ---------------------------------------------------------------- skipped seeds as registry data


def test_skipped_seeds_of_the_paper_are_registry_data():
    assert published_setting("nonlinear", 6).skipped_seeds == (4542, 4544)
    assert published_setting("nonlinear", 10).skipped_seeds == (4541, 4542)
    assert published_setting("beyond", 6).skipped_seeds == (202, 203)
    assert published_setting("beyond", 10).skipped_seeds == (1202,)
    assert published_setting("theory", 7).skipped_seeds == (245,)
    assert published_setting("theory", 9).skipped_seeds == (343,)


def test_skipped_seeds_are_validated_and_dropped_with_new_seeds():
    with pytest.raises(ValueError, match="skipped_seeds"):
        dataclasses.replace(BEYOND6, skipped_seeds=(200,))
    with pytest.raises(ValueError, match="seeds"):
        dataclasses.replace(BEYOND6, skipped_seeds=(7, 7))
    own = override(BEYOND6, {"seeds": [1, 2]}, source="option")
    assert isinstance(own, GDRowSetting) and own.skipped_seeds == () and not own.is_published
    same = override(BEYOND6, {"draws": 3}, source="option")
    assert same.skipped_seeds == (202, 203) and same.is_published


# ---------------------------------------------------------------- command line


@pytest.mark.parametrize("args,param", [
    (["--perturbations", "-1"], "perturbations"),
    (["--perturbations", "2.5"], "perturbations"),
    (["--perturbations", "65"], "perturbations"),
    (["--perturbation-size=-1e-7"], "perturbation_size"),
    (["--perturbation-size", "0.02"], "perturbation_size"),
    (["--perturbation-size", "inf"], "perturbation_size"),
    (["--perturbation-size", "2", "--no-limits"], "perturbation_size"),
])
def test_cli_refuses_bad_perturbation_options(args, param, capsys):
    assert main(["reproduce", "--row", "beyond", *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and param in err


def test_clean_theory_flows_are_labelled_by_their_exact_oracle():
    """The theory row's clean flows: the exact oracle from the perturbed initialisations (no integration)."""
    from ssmpoison.verify._rows import clean_flow_robustness

    setting = published_setting("theory", 7)
    rob = clean_flow_robustness(setting, 242, 2, 1e-7)
    assert rob["label"] == "robust" and rob["learned"] == 1 and len(rob["ext_errors"]) == 2
    assert rob["ext_error"] == pytest.approx(1.18e-3, rel=0.01)  # the certified value, 1.1838...e-3
    assert all(e != rob["ext_error"] and abs(e / rob["ext_error"] - 1) < 0.01 for e in rob["ext_errors"])
    same = clean_flow_robustness(setting, 242, 2, 0.0)
    assert same["ext_errors"] == [same["ext_error"]] * 2 and same["ext_error"] == rob["ext_error"]
    # a perturbation far larger than the paper's gap (relative 1.5e-5 at H = 7) changes which entry wins, not the outcome
    big = clean_flow_robustness(setting, 242, 3, 1e-3)
    assert big["learned_counts"] == {"1": 3}


def test_perturbation_size_bound():
    assert require_within("reproduce", "perturbation_size", 0.01, False) == 0.01
    assert require_within("reproduce", "perturbation_size", 0.5, True) == 0.5
    with pytest.raises(ValueError, match="--no-limits"):
        require_within("reproduce", "perturbation_size", 0.011, False)


def test_cli_prints_labels_and_statistics(capsys):
    assert main(["reproduce", "--row", "beyond", "--horizon", "6", "--seeds", "200,201", "--draws", "0",
                 "--perturbations", "2", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert out.count("  robust") >= 4 and "robustness: 2 re-runs of each run" in out
    assert "under the perturbations, four-seed mean" in out


def test_theory_row_runs_skipped_seeds_apart_and_prints_the_clean_labels():
    from ssmpoison.verify._rows import TheoryRow
    from ssmpoison.verify._settings import TheoryRowSetting

    setting = TheoryRowSetting(horizon=5, state_dim=3, init_scale=0.01, gap_exponent=2, seeds=(1, 2), extrapolation_length=10,
                               skipped_seeds=(3,))
    model = TheoryRow("small", (setting,))
    result = model.run((setting,), perturbations=2, skipped_seeds=True)
    assert [r.seed for r in result.runs] == [1, 2, 1, 2] and [r.seed for r in result.skipped_runs] == [3, 3]
    assert [x["seed"] for x in result.robustness] == [1, 2, 3] and all(x["perturbations"] == 2 for x in result.robustness)
    payload = result.to_json()
    assert len(payload["runs"]) == 4 and len(payload["skipped_runs"]) == 2
    assert [s["runs"] for s in payload["summary"]] == [2, 2] and [s["seeds"] for s in payload["skipped_summary"]] == [[3], [3]]
    text = model.text(result)
    assert "Robustness (clean flows, by their exact oracle): 2 re-runs" in text and "seed 3 (skipped seed)" in text
    assert "Skipped seeds of the paper's lists" in text
    plain = model.run((setting,), perturbations=0)
    assert plain.skipped_runs == () and "Robustness" not in model.text(plain)


def test_reproduce_all_passes_the_robustness_options_to_every_row(monkeypatch):
    from ssmpoison.verify import _table1
    from ssmpoison.verify._registry import TABLE1_ROWS, row_model

    seen = {}

    class Done:
        ok = True

    for name in TABLE1_ROWS:
        model = row_model(name)
        monkeypatch.setattr(model, "run", lambda settings, name=name, **kw: seen.setdefault(name, kw) and Done())
    _table1.reproduce_table1(perturbations=3, perturbation_size=1e-6, skipped_seeds=True)
    assert set(seen) == set(TABLE1_ROWS)
    for kw in seen.values():
        assert (kw["perturbations"], kw["perturbation_size"], kw["skipped_seeds"]) == (3, 1e-6, True)


def test_row_text_names_the_knife_edge_behind_a_small_ratio():
    from ssmpoison.verify._gd_rows import GDRowResult

    runs = [_run(1, False, 1e-3), _run(2, False, 1e-1), _run(1, True, 0.2), _run(2, True, 0.2)]
    perturbed = []
    for k in (1, 2, 3):
        perturbed += [_run(1, False, 1.1e-3, k=k), _run(2, False, 1e-3 if k < 3 else 0.1, k=k),
                      _run(1, True, 0.2, k=k), _run(2, True, 0.21, k=k)]
    result = GDRowResult("nonlinear", NONLINEAR6, runs, perturbation_runs=perturbed, perturbations=3, perturbation_size=1e-7)
    text = row_text(result)
    assert "knife edge (2 of 3 perturbed runs differ)" in text and "3 of 4 runs robust" in text
    assert ("with / without is below 10x; knife-edge run responsible: seed 2 without special, knife edge (2 of 3 "
            "perturbed runs differ): with its re-runs' errors the ratio is 3.96x - 200x (>= 10x in 2 of 3)") in text
    assert "with / without >= 10x in 2 of 3" in text
