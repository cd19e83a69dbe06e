"""``ssmpoison realworld``: a tiny end-to-end run (JSON, figures), bad input, the missing optional extra, and
that importing the package or building the command line does not import torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ssmpoison.verify.cli import main


def test_importing_the_package_and_the_cli_does_not_import_torch():
    code = ("import sys, ssmpoison.verify, ssmpoison.theory; from ssmpoison.verify import cli; cli.build_parser(); "
            "import ssmpoison.verify._realworld_cli, ssmpoison.verify._realworld, ssmpoison.verify._realworld_data; "
            "from ssmpoison.verify._realworld import RealWorldConfig; RealWorldConfig(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_missing_extra_gives_a_one_line_install_hint(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    status = main(["realworld", "--tiny", "--json", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "pip install 'ssmpoison[realworld]'" in err and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("argv, name", [
    (["--model", "mamba"], "model"),
    (["--seeds", "0,0"], "seeds"),
    (["--seeds", "-1"], "seeds[0]"),
    (["--seeds", ""], "seeds"),
    (["--budget", "0.5,1"], "budget[1]"),
    (["--budget", "nan"], "budget[0]"),
    (["--epsilon", "0"], "epsilon"),
    (["--epsilon", "2"], "epsilon"),
    (["--regulariser", "-1"], "regulariser"),
    (["--time-limit", "0"], "time_limit"),
])
def test_bad_input_is_refused_with_one_line_naming_the_parameter(argv, name, capsys):
    assert main(["realworld", "--tiny", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err


def test_tiny_end_to_end_run_writes_json_and_figures(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    out = tmp_path / "figures"
    path = tmp_path / "r.json"
    status = main(["realworld", "--tiny", "--model", "s4d", "--seeds", "3", "--no-untargeted", "--json", str(path),
                   "--out", str(out)])
    assert status == 0
    text = capsys.readouterr().out
    assert "clean test accuracy" in text and "gm_end@0.05" in text
    payload = json.loads(path.read_text())
    assert payload["status"] == "done" and payload["config"]["seeds"] == [3]
    assert {r["variant"] for r in payload["runs"]} == {"gm", "gm_end", "gm_first_half", "random"}
    for model in ("s4d",):  # LRU end to end: the executed note 08 (§4)
        summary = payload["summary"][model]
        assert summary["clean_accuracy"]["mean"] > 0.3  # well above chance (0.1) even at this size
        first_half = summary["variants"]["gm_first_half@0.05"]
        assert first_half["last2_share"]["mean"] == 0.0  # restricted to the first half: nothing at the end
    for run in payload["runs"]:
        assert len(run["energy_profile"]) == 64 and 0 <= run["last2_share"] <= 1
        assert run["poisons"] == round(0.05 * 225)
    assert sorted(p.name for p in out.iterdir()) == sorted(payload_name.split("/")[-1]
                                                           for payload_name in payload["figures"])
    assert len(payload["figures"]) == 3


def test_time_limit_cuts_the_run_short_with_status_1(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    from ssmpoison.verify import _budget

    monkeypatch.setattr(_budget, "budget_expired", lambda: True)
    path = tmp_path / "r.json"
    assert main(["realworld", "--tiny", "--model", "s4d", "--seeds", "0", "--json", str(path)]) == 1
    payload = json.loads(path.read_text())
    assert payload["status"] == "time_limit" and payload["runs"] == []
