"""Settings and rows as data: the registry of Table 1, a new row registered in one place, a user's own setting
from CLI options or a TOML file, and one-line errors naming the key."""

import dataclasses
import json

import pytest

from ssmpoison.theory import paper_initialisation
from ssmpoison.verify import _registry
from ssmpoison.verify import BeyondConfig, NonlinearConfig
from ssmpoison.verify import TABLE1_ROWS, published_setting, register_row, row_model
from ssmpoison.verify import TheoryRow
from ssmpoison.verify import TheoryRowSetting
from ssmpoison.verify.cli import main


@pytest.fixture
def registry(monkeypatch):
    """The registry as it is, restored after the test (a test's rows do not leak)."""
    monkeypatch.setattr(_registry, "ROWS", dict(_registry.ROWS))
    return _registry.ROWS


# ---------------------------------------------------------------- the registry


def test_table1_rows_and_published_values():
    assert TABLE1_ROWS == ("theory", "beyond", "nonlinear")
    assert row_model("theory").horizons == (7, 9)
    assert row_model("beyond").horizons == (6, 10) and row_model("nonlinear").horizons == (6, 10)
    b6, b10, n6 = published_setting("beyond", 6), published_setting("beyond", 10), published_setting("nonlinear", 6)
    assert b6.published == {False: 0.194, True: 16.61} and b10.published is None
    assert n6.published == {False: 1.61e-3, True: 5.39e-2}
    assert b6.seeds == (200, 201, 204, 205) and b10.seeds == (1200, 1201, 1203, 1204) and n6.seeds == (4540, 4541, 4543, 4545)
    assert isinstance(b6.config, BeyondConfig) and isinstance(n6.config, NonlinearConfig)
    assert b6.step_budget == 1_000_000 + 1401 and n6.step_budget == 1_000_000 + 4901
    assert (b10.config.state_dim, b10.config.sd_a, b10.config.sd_bc, b10.config.gap_k, b10.config.lr) == (20, 0.01, 0.001, 3.0, 0.001)
    assert b10.config.baseline_positions == tuple(range(7)) and b10.config.warm_start == b6.config.warm_start
    # the non-linear row's second length: the paper's code, a step of 5e-5 with the special sequences only
    n10 = published_setting("nonlinear", 10)
    assert n10.published is None and n10.seeds == (4540, 4543, 4544, 4545)
    c = n10.config
    assert (c.state_dim, c.width, c.sd_ssm, c.sd_mlp, c.gap_k, c.tol, c.warm_start) == (20, 25, 0.001, 0.1, 2.0, 0.05, 0.001)
    assert c.baseline_positions == tuple(range(7)) and c.special_support == (8,)
    assert (c.for_condition(False).lr, c.for_condition(True).lr) == (0.01, 5e-5)


def test_settings_are_frozen_and_validated():
    s = published_setting("theory", 7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.state_dim = 3
    with pytest.raises(ValueError, match="seeds"):
        dataclasses.replace(s, seeds=())
    with pytest.raises(ValueError, match="state_dim"):
        dataclasses.replace(s, state_dim=1)
    with pytest.raises(ValueError, match="horizon must be one of 7, 9 for the theory row, got 8"):
        row_model("theory").setting(8)
    with pytest.raises(ValueError, match="row must be one of"):
        row_model("Theory")
    with pytest.raises(TypeError):
        BeyondConfig()  # no published values hide in the configs' defaults


def test_user_setting_keeps_published_values_only_when_it_is_the_published_one():
    theory = row_model("theory")
    same = theory.user_setting({"state_dim": 10}, horizon=7, source="option")
    assert same is published_setting("theory", 7)
    own = theory.user_setting({"seeds": (1, 2)}, horizon=7, source="option")
    assert own.seeds == (1, 2) and not own.is_published and own.published(False) == {}
    beyond = row_model("beyond")
    more_draws = beyond.user_setting({"draws": 2}, horizon=6)
    assert more_draws.draws == 2 and more_draws.published == published_setting("beyond", 6).published
    elsewhere = beyond.user_setting({"horizon": 4, "state_dim": 4})
    assert (elsewhere.horizon, elsewhere.state_dim, elsewhere.published) == (4, 4, None)


# ---------------------------------------------------------------- a new row variant in one place


H8 = TheoryRowSetting(horizon=8, state_dim=15, init_scale=0.001, gap_exponent=5, seeds=(800, 801, 802),
                      extrapolation_length=20)


def test_new_row_variant_runs_through_reproduce_and_check(registry, capsys, tmp_path):
    register_row(TheoryRow("theory-h8", [H8]))  # the one place

    target = tmp_path / "h8.json"
    assert main(["reproduce", "--row", "theory-h8", "--jobs", "1", "--json", str(target)]) == 0
    text = capsys.readouterr().out
    assert "H = 8, D = 15" in text and "published:" not in text and "(no published values)" in text
    payload = json.loads(target.read_text())
    assert payload["row"] == "theory-h8"
    assert {(r["horizon"], r["seed"], r["poisoned"]) for r in payload["runs"]} == \
        {(8, s, p) for s in (800, 801, 802) for p in (False, True)}
    assert all(r["status"] == "converged" and r["certified_digits"] >= 8 for r in payload["runs"])
    assert [(s["horizon"], s["poisoned"], s["published"]) for s in payload["summary"]] == [(8, False, {}), (8, True, {})]

    assert main(["check", "--row", "theory-h8", "--horizon", "8", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["horizon"], data["state_dim"], data["extrapolate_to"]) == (8, 15, 20)
    assert data["init"] == list(paper_initialisation(800, 15, 0.001, 5))  # the row's first seed by default
    assert data["matches_theorem"] is True


def test_check_defaults_come_from_the_registry(capsys):
    """``check --horizon 9`` is the paper's H = 9 setting with its first seed, as if every option were typed."""
    assert main(["check", "--horizon", "9", "--json", "-"]) == 0
    defaults = json.loads(capsys.readouterr().out)
    h9 = published_setting("theory", 9)
    assert (defaults["state_dim"], defaults["extrapolate_to"]) == (h9.state_dim, h9.extrapolation_length)
    assert defaults["init"] == list(paper_initialisation(h9.seeds[0], h9.state_dim, h9.init_scale, h9.gap_exponent))
    assert main(["check", "--horizon", "5", "--extrapolate-to", "6"]) == 2
    assert "state_dim" in capsys.readouterr().err
    assert main(["check", "--row", "beyond", "--horizon", "6"]) == 2
    assert "check applies to theory rows only" in capsys.readouterr().err


# ---------------------------------------------------------------- a user's own setting: options and TOML


BEYOND_TOML = """\
# a user's own beyond-row setting: small and fast
row = "beyond"
horizon = 4
state_dim = 4
seeds = [7, 8]
epochs = 3000
draws = 0
extra_steps = 50
"""


def test_toml_setting_runs_with_reproduce_config(tmp_path, capsys):
    config = tmp_path / "mine.toml"
    config.write_text(BEYOND_TOML)
    assert main(["reproduce", "--config", str(config), "--json", "-"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["row"] == "beyond" and len(payload["runs"]) == 4 and payload["spread_runs"] == []
    assert {(r["horizon"], r["seed"]) for r in payload["runs"]} == {(4, 7), (4, 8)}
    assert all(s["published"] is None and "ratio_to_published" not in s for s in payload["summary"])
    assert main(["reproduce", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert "H = 4, D = 4" in text and "+50 steps" in text and "published" not in text and "(1 of the 50 extra steps)" in text


def test_cli_options_make_a_users_own_setting(capsys):
    assert main(["reproduce", "--row", "theory", "--horizon", "7", "--seeds", "242,243", "--jobs", "1", "--json", "-"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {r["seed"] for r in payload["runs"]} == {242, 243}
    assert all(s["published"] == {} for s in payload["summary"])


@pytest.mark.parametrize(
    "text,needle",
    [
        ('row = "beyond"\nstate_dimm = 4\n', "config key 'state_dimm'"),
        ('row = "beyond"\nstate_dim = "four"\n', "config key 'state_dim'"),
        ('row = "beyond"\nstate_dim = 1\n', "config key 'state_dim'"),
        ('row = "beyond"\nseeds = [1, 1]\n', "config key 'seeds'"),
        ('row = "beyond"\nsd_a = -0.1\n', "config key 'sd_a'"),
        ('row = "beyond"\nhorizon = 4\nbaseline_positions = [2]\n', "config key 'baseline_positions'"),
        ('row = "theory"\ninit_scale = true\n', "config key 'init_scale'"),
        ('row = 3\n', "config key 'row'"),
        ('row = "beyond"\nhorizon = "4"\n', "config key 'horizon'"),
        ('row = "beyond"\nstate_dim = 4\nstate_dim = 5\n', "not valid TOML"),
        ('row = "beyond\n', "not valid TOML"),
    ],
)
def test_bad_config_exits_2_with_one_line_naming_it(tmp_path, capsys, text, needle):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    assert main(["reproduce", "--config", str(config)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssmpoison reproduce: error: ") and needle in lines[0]
    assert captured.out == ""


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--config", "/no/such/file.toml"], "config"),
        (["--row", "all", "--state-dim", "4"], "state_dim"),
        (["--row", "all", "--config", "x.toml"], "config"),
        (["--row", "theory", "--draws", "2"], "draws"),
        (["--row", "theory", "--seeds", "1,x"], "seeds"),
        (["--row", "beyond", "--init-scale", "0"], "sd_a"),
    ],
)
def test_bad_options_exit_2_with_one_line(capsys, args, needle):
    assert main(["reproduce", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_settings_files_are_read_by_one_reader_toml_or_json(tmp_path):
    from ssmpoison.verify._jsonio import read_settings_file

    (tmp_path / "s.toml").write_text('row = "beyond"\nhorizon = 4\nseeds = [1, 2]\n')
    (tmp_path / "s.json").write_text('{"row": "beyond", "horizon": 4, "seeds": [1, 2]}')
    assert read_settings_file(str(tmp_path / "s.toml"), "config") == read_settings_file(str(tmp_path / "s.json"), "config")
    for text, message in (("[1, 2]", "must hold a JSON object"), ('{"row": ', "not valid JSON"), ("row = ", "not valid TOML")):
        path = tmp_path / ("bad.json" if text.startswith(("[", "{")) else "bad.toml")
        path.write_text(text)
        with pytest.raises(ValueError, match=f"^config: .*{message}"):
            read_settings_file(str(path), "config")
    (tmp_path / "latin.toml").write_bytes(b'row = "\xe9"\n')
    with pytest.raises(ValueError, match="^config: .*not UTF-8 text"):
        read_settings_file(str(tmp_path / "latin.toml"), "config")
    with pytest.raises(ValueError, match="^config: cannot read"):
        read_settings_file(str(tmp_path / "missing.toml"), "config")
