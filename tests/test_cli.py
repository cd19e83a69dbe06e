"""The ``ssmpoison`` command line: help, version, derive, and one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest

from ssmpoison.verify.cli import main


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "ssmpoison.verify.cli", *args], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def test_help_lists_every_subcommand():
    code, out, _ = run_cli("--help")
    assert code == 0
    from ssmpoison.verify.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, parser in sub.choices.items():
        assert name in out
        help_line = next(h.help for h in sub._choices_actions if h.dest == name)
        assert help_line and "\n" not in help_line


def test_version():
    code, out, _ = run_cli("--version")
    assert code == 0 and out.startswith("ssmpoison ")


def test_derive_json_verified(capsys):
    assert main(["derive", "--horizon", "6", "--state-dim", "3", "--json", "-"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["verified"] is True
    assert (payload["horizon"], payload["state_dim"], payload["samples"], payload["train"]) == (6, 3, 1, "a")
    assert len(payload["gradient"]) == 3 and payload["gradient"][0].startswith("da_1/dt = ")
    assert len(payload["gamma"]) == 5 and payload["gamma"][0].startswith("gamma_0 = ")


def test_derive_abc_includes_b_and_c(capsys):
    assert main(["derive", "--horizon", "4", "--state-dim", "2", "--samples", "2", "--train", "abc", "--json", "-"]) == 0
    payload = json.loads(capsys.readouterr().out)
    heads = [g.split(" = ")[0] for g in payload["gradient"]]
    assert heads == ["da_1/dt", "da_2/dt", "db_1/dt", "db_2/dt", "dc_1/dt", "dc_2/dt"]
    assert payload["verified"] is True and len(payload["weights"]) == 4


def test_derive_latex(capsys):
    assert main(["derive", "--horizon", "4", "--state-dim", "2", "--latex"]) == 0
    out = capsys.readouterr().out
    assert r"\frac{d a_{1}}{dt}" in out and r"\gamma_{0}" in out and "VERIFIED" in out


def test_derive_writes_json_file(tmp_path):
    target = tmp_path / "d.json"
    code, out, _ = run_cli("derive", "--horizon", "3", "--state-dim", "2", "--json", str(target))
    assert code == 0 and "VERIFIED" in out
    assert json.loads(target.read_text())["verified"] is True


@pytest.mark.parametrize(
    "args,param",
    [
        (["--horizon", "1", "--state-dim", "3"], "horizon"),
        (["--horizon", "4", "--state-dim", "0"], "state_dim"),
        (["--horizon", "4", "--state-dim", "2", "--samples", "0"], "samples"),
        (["--horizon", "3.5", "--state-dim", "2"], "horizon"),
        (["--horizon", "4", "--state-dim", "two"], "state_dim"),
        (["--horizon", "nan", "--state-dim", "2"], "horizon"),
        (["--horizon", "4", "--state-dim", "2", "--train", "q"], "train"),
    ],
)
def test_derive_bad_input_one_line_exit_2(args, param):
    code, out, err = run_cli("derive", *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert param in err and out == ""


def test_api_raises_same_message():
    from ssmpoison.verify import derive_report

    code, _, err = run_cli("derive", "--horizon", "1", "--state-dim", "3")
    with pytest.raises(ValueError) as info:
        derive_report(3, 1)
    assert str(info.value) in err


@pytest.mark.parametrize(
    "args,param",
    [
        (["--row", "nope"], "row"),
        (["--horizon", "8"], "horizon"),
        (["--horizon", "2"], "horizon"),
        (["--precision", "52"], "precision"),
        (["--precision", "nan"], "precision"),
        (["--precision", "inf"], "precision"),
    ],
)
def test_reproduce_bad_input_one_line_exit_2(args, param):
    code, out, err = run_cli("reproduce", *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert param in err
