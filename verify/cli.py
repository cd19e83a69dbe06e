"""The ``ssmpoison`` command line. Every subcommand accepts ``--json PATH`` (``-`` = stdout).

Bad input exits with status 2 and one line on stderr naming the parameter.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import time

from ssmpoison.verify import __version__
__all__ = ["main"]


class _Formatter(argparse.HelpFormatter):
    """Help text wrapped at spaces only (an option such as ``--no-limits`` is never split at its hyphens)."""

    def _split_lines(self, text, width):
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line on stderr and exit status 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="PATH", help="write machine-readable results to PATH ('-' = stdout)")


def _add_budget(p: argparse.ArgumentParser, *, limits: bool = True) -> None:
    """``--time-limit`` (every running subcommand) and ``--no-limits`` (those with bounded sizes)."""
    p.add_argument("--time-limit", default=str(_DEFAULT_TIME_LIMIT), metavar="SECONDS",
                   help=f"wall-clock budget: runs still going when it passes end with status time_limit "
                   f"(default {_DEFAULT_TIME_LIMIT:g})")
    if limits:
        p.add_argument("--no-limits", action="store_true",
                       help="lift the default bounds on sizes (given with each option), for runs you mean to be long")


#: the default ``--time-limit`` of every subcommand that runs flows or training, in seconds
_DEFAULT_TIME_LIMIT = 3600


def _within(args, quantity: str, value: int, name: str | None = None) -> int:
    from ssmpoison.verify._limits import require_within

    return require_within(args.command, quantity, value, getattr(args, "no_limits", False), name)


def _bound(command: str, quantity: str) -> str:
    from ssmpoison.verify._limits import limit_help

    return limit_help(command, quantity)


# -- derive ---------------------------------------------------------------------------------------
def _add_derive(sub) -> None:
    p = sub.add_parser(
        "derive",
        help="print L_H and its exact gradient dynamics in gamma-form, symbolically verified",
        description="Derive L_H and its gradient flow for concrete D, H, N with SymPy, and verify exactly that "
        "-dL/dtheta equals the Proposition's gamma-form.",
    )
    p.add_argument("--horizon", required=True, metavar="H", help=f"sequence length H (integer >= 2, {_bound('derive', 'horizon')})")
    p.add_argument("--state-dim", required=True, metavar="D", help=f"state dimension D (integer >= 1, {_bound('derive', 'state_dim')})")
    p.add_argument("--samples", default="1", metavar="N", help=f"number of training sequences N (integer >= 1, "
                   f"{_bound('derive', 'samples')}; H*D*N {_bound('derive', 'size')})")
    p.add_argument("--train", default="a", help="trained parameters: 'a' (B, C fixed) or 'abc'")
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of plain text")
    p.add_argument("--no-limits", action="store_true", help="lift the default bounds on H, D and N")
    _add_json(p)
    p.set_defaults(run=_run_derive, command="derive")


def _run_derive(args) -> int:
    from ssmpoison.theory._validation import require_int
    from ssmpoison.verify._derive_report import derive_report
    from ssmpoison.verify._jsonio import write_json

    H = _within(args, "horizon", require_int("horizon", args.horizon, minimum=2))
    D = _within(args, "state_dim", require_int("state_dim", args.state_dim, minimum=1))
    N = _within(args, "samples", require_int("samples", args.samples, minimum=1))
    _within(args, "size", H * D * N, name=f"horizon * state_dim * samples = {H} * {D} * {N}")
    report = derive_report(D, H, N, args.train)
    if args.json != "-":
        print(report.text(latex=args.latex))
    if args.json:
        write_json(args.json, report.to_json(latex=args.latex))
    return 0 if report.verified else 1


# -- progress bars, settings ----------------------------------------------------------------------
class _Bars:
    """The jobs' ``progress(label, done, total, note)`` as tqdm bars on stderr, one per label (phase)."""

    def __init__(self) -> None:
        self._bar = None
        self._label = None

    def __call__(self, label: str, done: int, total, note: str) -> None:
        if label != self._label:
            self.close()
            from tqdm import tqdm

            unit = "flow" if "flow" in label else ("step" if total is None else "run")
            self._bar = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, leave=False)
            self._label = label
        bar = self._bar
        bar.n = done
        if note:
            key, _, value = note.partition("=")
            bar.set_postfix({key: value}, refresh=False)
        bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar = self._label = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()



#: setting options of ``reproduce`` (``--state-dim`` ...): dest -> (parse as, help)
_SETTING_OPTIONS = {
    "state_dim": ("int", "student dimension D"),
    "seeds": ("ints", "seeds, comma-separated"),
    "init_scale": ("real", "scale of the initialisation (theory: init scale; beyond: sd_A; nonlinear: sd_SSM)"),
    "gap_exponent": ("real", "gap exponent k of the initialisation"),
    "extrapolate_to": ("int", "extrapolation length J"),
    "draws": ("int", "GD rows: further initialisation draws per seed for the spread"),
    "epochs": ("int", "GD rows: updates allowed before the loss must reach the threshold"),
    "dtype": ("word", "GD rows: arithmetic of training, float64 or float32 (the paper's TensorFlow float32)"),
}


#: setting options bounded by :mod:`ssmpoison.verify._limits`: dest -> quantity
_LIMITED = {"state_dim": "state_dim", "seeds": "seeds", "extrapolate_to": "extrapolation_length", "draws": "draws",
            "epochs": "epochs"}


def _check_setting_sizes(args, settings) -> None:
    """Every setting to run within the command's bounds (whatever set it: published, options or a file)."""
    for s in settings:
        config = getattr(s, "config", s)
        _within(args, "horizon", s.horizon)
        _within(args, "state_dim", s.state_dim)
        _within(args, "extrapolation_length", config.extrapolation_length, name="extrapolation_length (--extrapolate-to)")
        _within(args, "seeds", len(s.seeds), name="the number of seeds")
        for name in ("draws", "epochs"):
            if hasattr(s, name):
                _within(args, name, getattr(s, name))


def _option_values(args, model) -> dict:
    """The setting options given on the command line, typed, as the row's setting keys."""
    from ssmpoison.theory._validation import require_int, require_real

    values = {}
    for dest, (kind, _) in _SETTING_OPTIONS.items():
        raw = getattr(args, dest)
        if raw is None:
            continue
        if dest not in model.option_keys:
            raise ValueError(f"{dest} (--{dest.replace('_', '-')}) does not apply to the {model.name} row")
        if kind == "int":
            value = require_int(dest, raw)
        elif kind == "real":
            value = float(require_real(dest, raw))
        elif kind == "word":
            value = raw
        else:
            value = tuple(require_int(f"{dest}[{k}]", v.strip()) for k, v in enumerate(raw.split(",")) if v.strip())
        values[model.option_keys[dest]] = value
    return values


# -- reproduce ------------------------------------------------------------------------------------
def _add_reproduce(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="reproduce a row of the paper's Table 1 with certified digits, published values beside",
        description="Reproduce a row of Table 1 (proofs_notes/00_setting.md §6), or run a row on your own setting (options below or a TOML "
        "file given with --config, whose keys are the row's setting keys and 'row'; a setting that is not the paper's "
        "is printed without published values). The theory row runs the gradient flows without and with the poison "
        "u† = e_{H-2} and reports each extrapolation error with its certified digits (agreement with an independent, "
        "more precise re-run or the exact oracle); the GD rows train by gradient descent.",
    )
    p.add_argument("--row", help="row of Table 1: theory (default), beyond, nonlinear, all, or a registered row")
    p.add_argument("--horizon", action="append", metavar="H", help="horizon(s) of the row (default: all published; "
                   f"{_bound('reproduce', 'horizon')})")
    p.add_argument("--config", metavar="FILE", help="TOML file with your own setting (keys: row, horizon and the row's "
                   "setting keys, e.g. state_dim, seeds)")
    for dest, (kind, text) in _SETTING_OPTIONS.items():
        meta = {"int": "N", "real": "X", "ints": "S1,S2,...", "word": "TYPE"}[kind]
        bound = f", {_bound('reproduce', _LIMITED[dest])}" if dest in _LIMITED else ""
        p.add_argument(f"--{dest.replace('_', '-')}", dest=dest, metavar=meta, help=f"{text} (default: the row's{bound})")
    p.add_argument(
        "--precision",
        metavar="BITS",
        help=f"theory row: working precision in bits (>= 53, {_bound('reproduce', 'precision')}); default: the fast "
        "path (float64 where it suffices, the exact oracle for the clean flows)",
    )
    p.add_argument("--perturbations", metavar="K", help="re-runs of each run from its initial weights perturbed "
                   "multiplicatively, p(1 + eps xi), xi ~ N(0,1), to label it robust or a knife edge (GD rows: every run; "
                   "theory row: the clean flows, by their exact oracle; integer >= 0, 0: none; "
                   f"default 8, {_bound('reproduce', 'perturbations')})")
    p.add_argument("--perturbation-size", metavar="EPS", help="relative size eps of those perturbations (>= 0; "
                   f"default 1e-7, float32's rounding level; {_bound('reproduce', 'perturbation_size')})")
    p.add_argument("--skipped-seeds", action="store_true", help="also run the seeds the paper's seed lists skip "
                   "(e.g. non-linear 4542, 4544; theory 245, 343), reported beside the published ones, out of their means")
    p.add_argument("--jobs", default="auto", metavar="N", help="processes computing at once (default auto: one per CPU)")
    _add_budget(p)
    _add_json(p)
    p.set_defaults(run=_run_reproduce, command="reproduce")


def _robustness_options(args) -> dict:
    """``--perturbations``, ``--perturbation-size`` and ``--skipped-seeds`` as ``run`` keywords (only those given)."""
    from ssmpoison.theory._validation import require_int, require_real

    out = {}
    if args.perturbations is not None:
        out["perturbations"] = _within(args, "perturbations", require_int("perturbations", args.perturbations, minimum=0))
    if args.perturbation_size is not None:
        out["perturbation_size"] = _within(args, "perturbation_size", float(require_real(
            "perturbation_size", args.perturbation_size, nonnegative=True)))
    if args.skipped_seeds:
        out["skipped_seeds"] = True
    return out


def _reproduce_settings(args, model, config: dict) -> tuple:
    """The settings to run: the published ones at ``--horizon`` (default every horizon of the row), or the
    user's own when a settings file or setting options are given."""
    from ssmpoison.theory._validation import require_int
    from ssmpoison.verify._settings import override

    options = _option_values(args, model)
    # repeated --horizon values run once, in the order first given
    horizons = None if not args.horizon else tuple(dict.fromkeys(require_int("horizon", h) for h in args.horizon))
    if not config and not options:
        return model.settings(horizons)
    if horizons is None:
        horizons = (config["horizon"],) if "horizon" in config else model.horizons
    out = []
    for H in horizons:
        setting = model.user_setting(config, horizon=H, source="config")
        out.append(override(setting, options, source="option") if options else setting)
    return tuple(out)


def _run_reproduce(args) -> int:
    from ssmpoison.theory._validation import require_int
    from ssmpoison.verify._numbers import require_precision_bits
    from ssmpoison.verify._registry import row_model
    from ssmpoison.verify._jsonio import read_settings_file, write_json
    from ssmpoison.verify._workers import capped_jobs, default_jobs

    config = {} if args.config is None else read_settings_file(args.config, "config")
    file_row = config.pop("row", None)
    if file_row is not None and not isinstance(file_row, str):
        raise ValueError(f"config key 'row' must be a string, got {file_row!r}")
    if args.row is not None and file_row is not None and args.row != file_row:
        raise ValueError(f"row given twice with different values: --row {args.row} and config key 'row' = {file_row!r}")
    row = args.row or file_row or "theory"
    precision = None if args.precision is None else _within(
        args, "precision", require_precision_bits(args.precision, name="precision"))
    jobs = default_jobs() if args.jobs == "auto" else require_int("jobs", args.jobs, minimum=1)
    robustness = _robustness_options(args)
    if row == "all":
        given = [d for d in ("horizon", "config", *_SETTING_OPTIONS) if getattr(args, d) is not None]
        if given:
            raise ValueError(f"{given[0]} cannot be given with --row all, which runs every published horizon of every "
                             "row; give it with a single row")
        from ssmpoison.verify._table1 import reproduce_table1, table1_text

        jobs = capped_jobs(jobs, _warning)  # warned only once everything is validated
        with _Bars() as bars:
            result = reproduce_table1(precision_bits=precision, jobs=jobs, progress=bars, **robustness)
        text = table1_text(result)
    else:
        model = row_model(row)
        if precision is not None and not model.precision_applies:
            raise ValueError(f"precision applies to the theory row only, not to the {row} row")
        if robustness and not model.perturbations_apply:
            name = next(iter(robustness))
            raise ValueError(f"{name} (--{name.replace('_', '-')}) does not apply to the {row} row")
        settings = _reproduce_settings(args, model, config)
        _check_setting_sizes(args, settings)
        jobs = capped_jobs(jobs, _warning)  # warned only once everything is validated
        with _Bars() as bars:
            result = model.run(settings, progress=bars, precision_bits=precision, jobs=jobs, **robustness)
        text = model.text(result)
    if args.json != "-":
        print(text)
    if args.json:
        write_json(args.json, result.to_json())
    return 0 if result.ok else 1


# -- check ----------------------------------------------------------------------------------------
def _add_check(sub) -> None:
    p = sub.add_parser(
        "check",
        help="check the Theorem's conditions on a setting (or, with --proposition, the Proposition's hypotheses on a "
        "training set), run the flows, and give a verdict",
        description="Evaluate the Theorem's conditions (derived, with margins) on a setting of the construction "
        "(teacher diag(1, 0), training set e_0, poison u† = e_{H-2}; or scaled copies: --clean-scales, --poison-scales, "
        "--poison-support), run the gradient flow without and with "
        "the poison with certified digits, and say whether the outcome matches the Theorem. Exit status 0 when "
        "it does, 1 when a condition fails or the flows disagree with it. Defaults are the row's setting at H "
        "(the paper's theory row: H = 7 or 9), or its first setting's initialisation at another H. With --proposition: "
        "the Proposition's hypotheses (each with its provenance) on a non-special training set, its certified flow, "
        "and a verdict on greedy low-rank learning and extrapolation (exit 0 when every hypothesis holds and the flow "
        "is greedy and extrapolates, else 1).",
    )
    p.add_argument("--row", default=None, help="a row of the Theorem's construction whose setting gives the defaults "
                   "(default theory)")
    p.add_argument("--horizon", metavar="H", help=f"training horizon H (integer >= 3, {_bound('check', 'horizon')}; "
                   "default the row's first)")
    p.add_argument("--state-dim", metavar="D", help=f"student dimension D (integer >= 2, {_bound('check', 'state_dim')}; "
                   "default the row's at H)")
    p.add_argument("--extrapolate-to", metavar="H2", help="extrapolation horizon H' (integer >= 1, "
                   f"{_bound('check', 'extrapolation_length')}; default the row's J at H)")
    p.add_argument("--init-scale", metavar="S", help="paper initialisation: scale sd_A (default the row's)")
    p.add_argument("--gap-exponent", metavar="K", help="paper initialisation: gap exponent k (default the row's)")
    p.add_argument("--seed", metavar="K", help="paper initialisation: seed of numpy's legacy generator "
                   "(default the row's first seed)")
    p.add_argument("--init", metavar="A1,A2,...", help="the initial diagonal itself, D comma-separated numbers "
                   "(instead of --seed)")
    p.add_argument("--clean-scales", metavar="A1,A2,...", help="the clean set {alpha_k u}: non-zero scales, "
                   "comma-separated (default 1)")
    p.add_argument("--poison-scales", metavar="B1,B2,...", help="the poison {beta_m u†}: non-zero scales, "
                   "comma-separated (default 1)")
    p.add_argument("--clean-support", metavar="POSITIONS", help="positions of the ones of the clean sequence u, "
                   "k or H-k, comma-separated; u must be non-special (default 0: u = e_0)")
    p.add_argument("--poison-support", metavar="POSITIONS", help="positions of the ones of u†, k or H-k, "
                   "comma-separated; u† must be special (default H-2; the paper's figures: H-2,H-1)")
    p.add_argument("--config", metavar="FILE", help="a TOML or JSON file with the same settings as keys (row, horizon, "
                   "state_dim, extrapolate_to, init_scale, gap_exponent, seed, init, clean_scales, poison_scales, "
                   "clean_support, poison_support, tolerance, precision); with --proposition the keys teacher, inputs, "
                   "a0, state_dim, init_scale")
    p.add_argument("--proposition", action="store_true", help="check the Proposition (greedy low-rank learning) on a "
                   "non-special training set given by --training-set or --config")
    p.add_argument("--training-set", metavar="FILE", help="with --proposition: a JSON problem (teacher, inputs, a0, "
                   "init_scale; as 'search --json' writes it, or a counterexample record)")
    p.add_argument("--precision", metavar="BITS", help=f"working precision in bits (>= 53, {_bound('check', 'precision')}); "
                   "default: the certified fast path")
    p.add_argument("--tolerance", default=None, metavar="EPS", help="extrapolation error up to which a flow generalises "
                   "(default 0.01)")
    _add_budget(p)
    _add_json(p)
    p.set_defaults(run=_run_check, command="check")


#: the keys of a ``check --config`` file of the Theorem's check (the options' names with underscores)
_CHECK_KEYS = ("row", "horizon", "state_dim", "extrapolate_to", "init_scale", "gap_exponent", "seed", "init",
               "clean_scales", "poison_scales", "clean_support", "poison_support", "tolerance", "precision")


def _check_values(args) -> dict:
    """The Theorem check's settings from the options and the ``--config`` file (a key in both must agree)."""
    values = {k: getattr(args, k) for k in _CHECK_KEYS if getattr(args, k) is not None}
    if args.config is None:
        return values
    from ssmpoison.verify._jsonio import read_settings_file

    config = read_settings_file(args.config, "config")
    for key, value in config.items():
        if key not in _CHECK_KEYS:
            raise ValueError(f"config: unknown key {key!r} (known: {', '.join(_CHECK_KEYS)})")
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        elif not isinstance(value, str):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"config: key {key!r} must be a number, a string or a list, got {value!r}")
            value = repr(value) if isinstance(value, float) else str(value)
        if key in values and str(values[key]).strip() != value.strip():
            raise ValueError(f"{key} given twice with different values: --{key.replace('_', '-')} {values[key]} and "
                             f"config key {key!r} = {value!r}")
        values[key] = value
    return values


def _reals(name: str, text: str) -> tuple:
    from ssmpoison.theory._validation import require_real

    items = [v.strip() for v in str(text).split(",")]
    if not any(items):
        raise ValueError(f"{name} must hold at least one number")
    return tuple(require_real(f"{name}[{k}]", v) for k, v in enumerate(items))


def _run_check(args) -> int:
    if args.proposition:
        return _run_check_proposition(args)
    if args.training_set is not None:
        raise ValueError("training_set (--training-set) applies only with --proposition")
    from ssmpoison.theory._construction import Construction
    from ssmpoison.theory._theorem import TheoremSetting
    from ssmpoison.theory._validation import require_int, require_real
    from ssmpoison.verify._registry import row_model
    from ssmpoison.verify._check import check_setting, paper_setting, report_text
    from ssmpoison.verify._jsonio import write_json

    v = _check_values(args)
    if "init" in v and "seed" in v:
        raise ValueError("init and seed exclude each other (--init gives the initial diagonal, --seed draws it)")
    model = row_model(v.get("row", "theory"))
    if not model.checkable:
        raise ValueError(f"row {v.get('row')!r} is not of the Theorem's construction: check applies to theory rows only")
    H = _within(args, "horizon", model.horizons[0] if "horizon" not in v else require_int("horizon", v["horizon"], minimum=3))
    published = H in model.horizons
    row_setting = model.setting(H) if published else model.setting(model.horizons[0])
    for name in ("state_dim", "extrapolate_to"):
        if name not in v and not published:
            raise ValueError(f"{name} must be given (--{name.replace('_', '-')}): the {model.name} row has no setting "
                             f"at horizon {H}")
    D = _within(args, "state_dim", require_int("state_dim", v.get("state_dim", row_setting.state_dim), minimum=2))
    H2 = _within(args, "extrapolation_length", require_int(
        "extrapolate_to", v.get("extrapolate_to", row_setting.extrapolation_length), minimum=1), name="extrapolate_to")
    tolerance = require_real("tolerance", v.get("tolerance", "0.01"), positive=True)
    from ssmpoison.verify._numbers import require_precision_bits

    precision_bits = None if "precision" not in v else _within(
        args, "precision", require_precision_bits(v["precision"], name="precision"))
    construction = None
    if any(k in v for k in ("clean_scales", "poison_scales", "clean_support", "poison_support")):
        construction = Construction(
            clean_scales=_reals("clean_scales", v["clean_scales"]) if "clean_scales" in v else (1,),
            poison_scales=_reals("poison_scales", v["poison_scales"]) if "poison_scales" in v else (1,),
            clean_support=v.get("clean_support", "0"), poison_support=v.get("poison_support", "H-2"))
        if construction.is_paper:
            construction = None
    if "init" in v:
        values = [x.strip() for x in str(v["init"]).split(",") if x.strip()]
        if len(values) != D:
            raise ValueError(f"init must have D = {D} comma-separated entries, got {len(values)}")
        setting = TheoremSetting(H, tuple(require_real("init", x) for x in values), H2, construction)
    else:
        seed = require_int("seed", v.get("seed", row_setting.seeds[0]), minimum=0)
        scale = v.get("init_scale", row_setting.init_scale)
        gap = v.get("gap_exponent", row_setting.gap_exponent)
        setting = paper_setting(H, D, H2, scale, gap, seed, construction)
    with _Bars() as bars:
        report = check_setting(setting, precision_bits, tolerance, progress=bars)
    if args.json != "-":
        print(report_text(report))
    if args.json:
        write_json(args.json, report.to_json())
    return 0 if report.matches_theorem else 1


def _run_check_proposition(args) -> int:
    from ssmpoison.verify._jsonio import write_json
    from ssmpoison.verify._numbers import require_precision_bits
    from ssmpoison.verify._proposition_check import check_proposition, load_problem, proposition_report_text

    theorem_only = [k for k in _CHECK_KEYS if k != "precision" and getattr(args, k) is not None]
    if theorem_only:
        raise ValueError(f"{theorem_only[0]} (--{theorem_only[0].replace('_', '-')}) applies to the Theorem's check, "
                         "not with --proposition")
    if (args.training_set is None) == (args.config is None):
        raise ValueError("proposition: give exactly one of --training-set FILE and --config FILE")
    problem = (load_problem(args.training_set, "training_set") if args.training_set is not None
               else load_problem(args.config, "config"))
    _within(args, "horizon", problem.horizon)
    _within(args, "state_dim", problem.state_dim)
    precision_bits = None if args.precision is None else _within(
        args, "precision", require_precision_bits(args.precision, name="precision"))
    with _Bars() as bars:
        report = check_proposition(problem, precision_bits, progress=bars)
    if args.json != "-":
        print(proposition_report_text(report))
    if args.json:
        write_json(args.json, report.to_json())
    return 0 if report.matches_proposition else 1


# -- dynamics -------------------------------------------------------------------------------------
def _add_dynamics(sub) -> None:
    from ssmpoison.verify._experiments import EXPERIMENTS

    p = sub.add_parser(
        "dynamics",
        help="record one run's training dynamics: entries, effective rank, gamma coefficients, loss, as figures and JSON",
        description="Record one run of a row of Table 1 without and/or with the special sequence(s) and draw, against "
        "time, the entry magnitudes |a_i|, the effective rank of A, every gamma^(l) (with the head's slopes xi_n in the "
        "non-linear row) and the training loss with the extrapolation error, as PNG files in DIR. With --experiment, run "
        "every run of one of the paper's dynamics notebooks instead and set the final entries beside those it printed.",
    )
    p.add_argument("--row", help="theory (gradient flow, the default), beyond or nonlinear (gradient descent), "
                   "or a registered row")
    from ssmpoison.verify._registry import ROWS

    published = ", ".join(f"{name} {'|'.join(map(str, model.horizons))}" for name, model in ROWS.items())
    p.add_argument("--horizon", metavar="H", help=f"horizon of the row, required unless --experiment ({published})")
    p.add_argument("--experiment", metavar="NAME", help=f"one of the paper's dynamics experiments ({', '.join(EXPERIMENTS)}): "
                   "all its runs, each beside the entries the paper printed (not with --row, --horizon, --extrapolate-to, "
                   "--stem)")
    p.add_argument("--seed", metavar="K", help="seed of the run (default: the row's first published seed); with "
                   "--experiment, only the experiment's run of that seed")
    p.add_argument("--condition", default="both", help="clean, poisoned or both (side by side)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the PNG figures (created if missing)")
    p.add_argument("--extrapolate-to", metavar="J", help=f"extrapolation length (default: the row's; "
                   f"{_bound('dynamics', 'extrapolation_length')})")
    p.add_argument("--stem", metavar="NAME", help="file-name stem of the figures (default ROW_HH_seedK)")
    p.add_argument("--dtype", help="with --experiment: float32 (the default, the paper's arithmetic) or float64")
    p.add_argument("--max-steps", metavar="N", help="with --experiment: step budget of every run (default: the "
                   "paper's 1e6 epochs plus the extra steps)")
    _add_budget(p)
    _add_json(p)
    p.set_defaults(run=_run_dynamics, command="dynamics")


def _run_dynamics(args) -> int:
    from pathlib import Path

    from ssmpoison.theory._validation import require_int
    from ssmpoison.verify._registry import row_model
    from ssmpoison.verify._dynamics import CONDITIONS, dynamics_json, dynamics_text, run_dynamics
    from ssmpoison.verify._dynamics_plots import figure_names, plot_dynamics
    from ssmpoison.verify._workers import default_jobs
    from ssmpoison.verify._jsonio import check_output_dir, write_json

    if args.experiment is not None:
        return _run_experiment(args)
    for name in ("dtype", "max_steps"):
        if getattr(args, name) is not None:
            raise ValueError(f"{name} (--{name.replace('_', '-')}) applies to --experiment only")
    if args.horizon is None:
        raise ValueError("horizon must be given (--horizon H), or an experiment (--experiment NAME)")
    model = row_model("theory" if args.row is None else args.row)
    if args.condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, got {args.condition!r}")
    setting = model.setting(args.horizon)
    seed = setting.seeds[0] if args.seed is None else require_int("seed", args.seed, minimum=0, maximum=2**32 - 1)
    J = None if args.extrapolate_to is None else _within(
        args, "extrapolation_length", require_int("extrapolate_to", args.extrapolate_to, minimum=1), name="extrapolate_to")
    stem = f"{model.name}_H{setting.horizon}_seed{seed}" if args.stem is None else args.stem
    if not stem or any(ch in stem for ch in "/\\\0") or stem.startswith("."):
        raise ValueError(f"stem must be a plain file-name stem, got {stem!r}")
    conditions = ("clean", "poisoned") if args.condition == "both" else (args.condition,)
    check_output_dir(args.out, "out", figure_names(stem, conditions))
    out_dir = Path(args.out)

    start = time.perf_counter()
    with _Bars() as bars:
        result = run_dynamics(model.name, setting, seed=seed, condition=args.condition, extrapolation_length=J,
                              progress=bars)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = plot_dynamics(result.runs, out_dir, stem, jobs=default_jobs())
    seconds = time.perf_counter() - start
    if args.json != "-":
        print(dynamics_text(result))
        print(f"{len(figures)} figures in {out_dir}/: " + ", ".join(p.name for p in figures))
        print(f"runs {result.seconds:.2f} s, with figures {seconds:.2f} s")
    if args.json:
        write_json(args.json, dynamics_json(result, figures))
    return 0 if result.ok else 1


def _run_experiment(args) -> int:
    """``dynamics --experiment NAME``: every run of one of the paper's dynamics experiments, figures and JSON."""
    from pathlib import Path

    from ssmpoison.theory._validation import require_int
    from ssmpoison.verify._dynamics import CONDITIONS, experiment_json, experiment_text, run_experiment
    from ssmpoison.verify._dynamics_plots import figure_names, plot_dynamics
    from ssmpoison.verify._workers import default_jobs
    from ssmpoison.verify._experiments import experiment
    from ssmpoison.verify._jsonio import check_output_dir, write_json

    for name in ("row", "horizon", "extrapolate_to", "stem"):
        if getattr(args, name) is not None:
            raise ValueError(f"experiment (--experiment) cannot be given with --{name.replace('_', '-')}: "
                             "the experiment names its runs")
    exp = experiment(args.experiment)
    if args.condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, got {args.condition!r}")
    if args.dtype is not None and args.dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {args.dtype!r}")
    seeds = None if args.seed is None else [require_int("seed", args.seed, minimum=0, maximum=2**32 - 1)]
    if seeds is not None and seeds[0] not in {r.seed for r in exp.runs}:
        raise ValueError(f"seed must be one of the experiment's seeds ({', '.join(str(r.seed) for r in exp.runs)}), "
                         f"got {seeds[0]}")
    max_steps = None if args.max_steps is None else require_int("max_steps", args.max_steps, minimum=0)
    conditions = ("clean", "poisoned") if args.condition == "both" else (args.condition,)
    stems = {r.seed: f"{exp.name}_H{r.horizon}_seed{r.seed}" for r in exp.runs if seeds is None or r.seed in seeds}
    check_output_dir(args.out, "out", [n for stem in stems.values() for n in figure_names(stem, conditions)])
    out_dir = Path(args.out)

    start = time.perf_counter()
    with _Bars() as bars:
        result = run_experiment(exp.name, dtype=args.dtype, seeds=seeds, condition=args.condition, max_steps=max_steps,
                                progress=bars)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {spec.seed: plot_dynamics(res.runs, out_dir, stems[spec.seed], label=f"{exp.name} experiment", jobs=default_jobs())
               for spec, res in result.results}
    seconds = time.perf_counter() - start
    if args.json != "-":
        print(experiment_text(result))
        count = sum(len(f) for f in figures.values())
        print(f"{count} figures in {out_dir}/; with figures {seconds:.2f} s")
    if args.json:
        write_json(args.json, experiment_json(result, figures))
    return 0 if result.ok else 1


# -- search / replay ------------------------------------------------------------------------------
def _add_search(sub) -> None:
    p = sub.add_parser(
        "search",
        help="search non-special clean-label training sets for certified failures of greedy low-rank learning or extrapolation",
        description="Hypothesis search (outside pytest) over non-special training sets with clean labels from a teacher of "
        "dimension D*: float64 flows screen for a learned effective rank well above D* or an extrapolation error at 2H above "
        "a threshold (the criteria are printed); failures are shrunk and reported only when certified by high-precision re-runs.",
    )
    p.add_argument("--budget", default="200", metavar="N", help=f"examples Hypothesis draws (default 200, "
                   f"{_bound('search', 'budget')})")
    p.add_argument("--seed", default="0", metavar="S", help="Hypothesis seed; the same seed gives the same report (default 0)")
    p.add_argument("--teacher-dim", metavar="D*", help="teacher dimension to search (default: both 1 and 2)")
    p.add_argument("--jobs", default="1", metavar="N", help="processes for the exploration flows (default 1)")
    _add_budget(p)
    _add_json(p)
    p.set_defaults(run=_run_search, command="search")


def _run_search(args) -> int:
    from ssmpoison.theory._validation import require_int
    from ssmpoison.verify._jsonio import write_json
    from ssmpoison.verify._progress import TqdmProgress
    from ssmpoison.verify._search import SearchConfig, run_search
    from ssmpoison.verify._search_text import search_report_text
    from ssmpoison.verify._workers import capped_jobs

    dims = (1, 2) if args.teacher_dim is None else (args.teacher_dim,)
    jobs = require_int("jobs", args.jobs, minimum=1)
    budget = _within(args, "budget", require_int("budget", args.budget, minimum=1))
    config = SearchConfig(budget=budget, seed=args.seed, teacher_dims=dims, jobs=jobs)
    config = dataclasses.replace(config, jobs=capped_jobs(jobs, _warning))  # warned once everything is validated
    with TqdmProgress("flow") as progress:
        report = run_search(config, progress)
    if args.json != "-":
        print(search_report_text(report))
    if args.json:
        write_json(args.json, report.to_json())
    return 0


def _add_replay(sub) -> None:
    p = sub.add_parser(
        "replay",
        help="re-run saved counterexamples of 'search' and print the same numbers",
        description="Re-run every counterexample of FILE (a 'search' JSON report, a list of records or one record): the "
        "float64 flow and the certifying high-precision re-runs. Exit status 0 when every number equals the saved one.",
    )
    p.add_argument("file", metavar="FILE", help="JSON file written by 'ssmpoison search --json'")
    _add_budget(p, limits=False)
    _add_json(p)
    p.set_defaults(run=_run_replay, command="replay")


def _run_replay(args) -> int:
    from ssmpoison.verify._search_text import replay_report_text
    from ssmpoison.verify._jsonio import write_json
    from ssmpoison.verify._replay import load_records, replay_records

    report = replay_records(load_records(args.file))
    if args.json != "-":
        print(replay_report_text(report))
    if args.json:
        write_json(args.json, report.to_json())
    return 0 if report.all_identical else 1


# -- sweep ---------------------------------------------------------------------------------------
_SWEEP_ACTIONS = ("run", "plot", "export")


def _add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="map a job over a parameter grid into a resumable results store (SQLite), locally or on Dask; plot and export it",
        description="'ssmpoison sweep SPEC' runs the sweep file SPEC (TOML or JSON: name, job, fixed parameters, a grid or "
        "a random design), writing each point to the store as it finishes; 'sweep plot STORE' draws a heat map; "
        "'sweep export STORE' writes the points as CSV or JSON.",
    )
    actions = p.add_subparsers(title="actions", metavar="ACTION", parser_class=_Parser)
    run = actions.add_parser("run", help="run a sweep file (the default action: 'sweep SPEC' = 'sweep run SPEC')")
    run.add_argument("spec", metavar="SPEC", help="the sweep file (TOML or JSON)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--jobs", default="1", metavar="N", help="joblib worker processes on this machine (default 1)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://127.0.0.1:8786")
    where.add_argument("--dask-local", metavar="N", help="start a local Dask cluster of N worker processes (at most the "
                       "CPUs this process may use)")
    run.add_argument("--store", metavar="PATH", help="the SQLite results store (default: SPEC with the suffix .sqlite)")
    run.add_argument("--resume", action="store_true", help="complete a sweep already in the store: skip its points stored "
                     "with this code, re-run failed points and those computed by other code")
    _add_budget(run, limits=False)
    _add_json(run)
    run.set_defaults(run=_run_sweep, command="sweep")
    plot = actions.add_parser("plot", help="heat map of one metric over two parameters, or curves over one, as PNG")
    plot.add_argument("store", metavar="STORE", help="the results store")
    plot.add_argument("--sweep", metavar="NAME", help="the sweep (default: the store's only one)")
    plot.add_argument("--x", required=True, metavar="PARAM", help="the parameter on the horizontal axis")
    plot.add_argument("--y", metavar="PARAM", help="the parameter on the vertical axis (a heat map); without it, curves "
                      "of the metric against --x, one per value of the other varied parameters")
    plot.add_argument("--color", default="ratio", metavar="METRIC", help="the metric that colours the cells (default ratio)")
    plot.add_argument("--linear", action="store_true", help="colour by the metric itself, not its log10")
    plot.add_argument("--out", required=True, metavar="FILE", help="the image to write (PNG)")
    _add_json(plot)
    plot.set_defaults(run=_run_sweep_plot, command="sweep plot")
    export = actions.add_parser("export", help="write a sweep's points as CSV or JSON")
    export.add_argument("store", metavar="STORE", help="the results store")
    export.add_argument("--sweep", metavar="NAME", help="the sweep (default: the store's only one)")
    export.add_argument("--format", choices=("csv", "json"), default="csv", help="the format (default csv)")
    export.add_argument("--out", metavar="FILE", help="the file to write (default: standard output)")
    export.add_argument("--timing", action="store_true", help="add each point's seconds, finish time and code fingerprint")
    _add_json(export)
    export.set_defaults(run=_run_sweep_export, command="sweep export")


def _sweep_argv(argv: list[str]) -> list[str]:
    """``sweep SPEC …`` is ``sweep run SPEC …``: insert the default action."""
    if len(argv) >= 2 and argv[0] == "sweep" and argv[1] not in (*_SWEEP_ACTIONS, "-h", "--help"):
        return ["sweep", "run", *argv[1:]]
    return argv


def _run_sweep(args) -> int:
    from pathlib import Path

    from ssmpoison.theory._validation import require_int
    from ssmpoison.verify._jsonio import write_json
    from ssmpoison.verify._parallel import Backend
    from ssmpoison.verify._progress import TqdmProgress
    from ssmpoison.verify._store import Store
    from ssmpoison.verify._sweep import read_sweep_file, run_sweep
    from ssmpoison.verify._workers import capped_jobs

    spec = read_sweep_file(args.spec)
    if args.scheduler is not None:
        backend = Backend("dask", scheduler=args.scheduler)
    elif args.dask_local is not None:
        backend = Backend("dask", dask_local=capped_jobs(require_int("dask_local", args.dask_local, minimum=1), _warning,
                                                         "dask_local"))
    else:
        backend = Backend("joblib", require_int("jobs", args.jobs, minimum=1))
        backend = Backend("joblib", capped_jobs(backend.jobs, _warning))
    backend.probe()  # Dask installed, the scheduler answers: before the store is touched
    path = args.store if args.store is not None else str(Path(args.spec).with_suffix(".sqlite"))
    with Store(path) as store, TqdmProgress("point") as bar:
        def progress(done, failed, total):
            bar("sweep", done, total)
            if failed:
                bar.set_postfix(failed=failed)

        report = run_sweep(spec, store, backend, resume=args.resume, progress=progress)
    if args.json != "-":
        print(report.text())
    if args.json:
        write_json(args.json, report.to_json())
    return 0 if report.failed == 0 and not report.time_limit else 1


def _output_file(path: str, name: str = "out", example: str = "sweep.png") -> None:
    """Check, before any work, that the file ``path`` (option ``name``) can be written (its directory made if missing)."""
    from pathlib import Path

    from ssmpoison.verify._jsonio import check_output_dir

    if not path.strip():
        raise ValueError(f"{name}: the path is empty (give a file, e.g. {example})")
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{name}: {path!r} is a directory (give a file)")
    check_output_dir(str(out.parent), name, (out.name,))
    out.parent.mkdir(parents=True, exist_ok=True)


def _sweep_rows(args):
    from pathlib import Path

    from ssmpoison.verify._store import Store

    if not Path(args.store).is_file():
        raise ValueError(f"store: no such file {args.store!r}")
    with Store(args.store) as store:
        held = store.sweeps()
        name = args.sweep
        if name is None:
            if len(held) != 1:
                raise ValueError(f"sweep: the store holds {len(held)} sweeps ({', '.join(s['name'] for s in held) or 'none'}); "
                                 "name one with --sweep")
            name = held[0]["name"]
        spec = next((s["spec"] for s in held if s["name"] == name), {})
        return name, spec.get("job"), store.rows(name), spec


def _run_sweep_plot(args) -> int:
    from ssmpoison.verify._jsonio import write_json
    from ssmpoison.verify._sweep_plots import flatten, plot_curves, plot_grid

    _output_file(args.out)
    name, job, rows, spec = _sweep_rows(args)
    records = flatten(rows)
    fixed = ", ".join(f"{k} = {v:g}" if isinstance(v, (int, float)) else f"{k} = {v}" for k, v in spec.get("fixed", {}).items())
    title = f"sweep {name} ({job}{'; ' + fixed if fixed else ''})"
    if args.y is None:
        plot_curves(records, args.out, title, args.x, args.color, list(rows[0]["params"]) if rows else [], log=not args.linear)
    else:
        plot_grid(records, args.out, title, args.x, args.y, args.color, log=not args.linear)
    if args.json != "-":
        print(f"{len(records)} points of sweep {name} drawn to {args.out}")
    if args.json:
        write_json(args.json, {"sweep": name, "job": job, "points": len(records), "figure": args.out})
    return 0


def _run_sweep_export(args) -> int:
    import csv
    import io
    import json

    from ssmpoison.verify._jsonio import atomic_path, write_json

    if args.out is not None:
        _output_file(args.out)
    name, job, rows, _ = _sweep_rows(args)
    keep = ("point", "params", "metrics", "status", "reason") + (("seconds", "finished", "fingerprint") if args.timing else ())
    points = [{k: r[k] for k in keep} for r in rows]
    if args.format == "json":
        text = json.dumps({"sweep": name, "job": job, "points": points}, indent=1, allow_nan=False, default=str)
    else:
        params = list(dict.fromkeys(k for r in rows for k in r["params"]))
        metrics = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        extra = ["seconds", "finished", "fingerprint"] if args.timing else []
        writer.writerow(["point", *params, *metrics, "status", "reason", *extra])
        for r in rows:
            writer.writerow([r["point"], *(r["params"].get(k) for k in params), *(r["metrics"].get(k) for k in metrics),
                             r["status"], r["reason"], *(r[k] for k in extra)])
        text = buf.getvalue()
    if args.out is None:
        sys.stdout.write(text)
    else:
        with atomic_path(args.out) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
    if args.json:
        write_json(args.json, {"sweep": name, "job": job, "points": len(points), "format": args.format, "out": args.out})
    return 0


# -- robust ---------------------------------------------------------------------------------------
def _add_robust(sub) -> None:
    p = sub.add_parser(
        "robust",
        help="adversarial robustness of the SSM: the exact worst-case attack against PGD, and adversarial training",
        description="'robust attack' compares the closed-form worst case of an LTI SSM under an l_inf or l_2 budget "
        "(eps sum|K_j| or eps ||K||_2, with the attacking input) with PGD on random diagonal SSMs, or gives the exact attack "
        "on one SSM (--a, --b, --c, --input; exact for rationals); 'robust train' runs adversarial training on the exact "
        "robust loss (|r| + eps S)^2 from the paper's initialisation, without and with the poison.",
    )
    actions = p.add_subparsers(title="actions", metavar="ACTION", parser_class=_Parser)
    attack = actions.add_parser("attack", help="closed-form worst case against PGD (random SSMs), or the exact attack on one SSM")
    attack.add_argument("--epsilon", default="0.1", metavar="EPS", help="the budget, >= 0 (default 0.1)")
    attack.add_argument("--norm", default="inf", metavar="inf|2", help="the budget's norm (default inf)")
    attack.add_argument("--count", default="20", metavar="N", help="random diagonal SSMs (default 20, at most 1000)")
    attack.add_argument("--state-dim", default="20", metavar="D", help="largest state dimension drawn (default 20)")
    attack.add_argument("--horizon", default="40", metavar="H", help="largest horizon drawn (default 40)")
    attack.add_argument("--restarts", default="50", metavar="R", help="PGD's random restarts (default 50, at most 10000)")
    attack.add_argument("--steps", default="50", metavar="K", help="PGD's steps per restart (default 50, at most 10000)")
    attack.add_argument("--seed", default="0", metavar="S", help="seed of the SSMs and of PGD (default 0)")
    attack.add_argument("--a", metavar="A1,A2,...", help="one SSM: the diagonal of A (exact for integers and ratios)")
    attack.add_argument("--b", metavar="B1,B2,...", help="one SSM: B (default ones)")
    attack.add_argument("--c", metavar="C1,C2,...", help="one SSM: C (default ones)")
    attack.add_argument("--input", metavar="U0,U1,...", help="one SSM: the input u_0..u_{H-1}")
    attack.add_argument("--target", metavar="T", help="one SSM: the label (default: the clean output)")
    _add_budget(attack, limits=False)
    _add_json(attack)
    attack.set_defaults(run=_run_robust_attack, command="robust attack")
    train = actions.add_parser("train", help="adversarial training on the exact robust loss, without and with the poison")
    train.add_argument("--epsilon", default="0,1e-3,1e-2", metavar="E1,E2,...", help="the budgets, >= 0 (default 0,1e-3,1e-2)")
    train.add_argument("--norm", default="inf,2", metavar="inf,2", help="the budgets' norms (default inf,2)")
    train.add_argument("--horizon", default="7", metavar="H", help="the horizon (default 7)")
    train.add_argument("--state-dim", default="10", metavar="D", help="the state dimension (default 10)")
    train.add_argument("--seed", default="242", metavar="S", help="the seed of the paper's initialisation (default 242)")
    train.add_argument("--init-scale", default="0.001", metavar="S", help="the initialisation's scale (default 0.001)")
    train.add_argument("--gap-exponent", default="5", metavar="K", help="the initialisation's gap exponent (default 5)")
    train.add_argument("--extrapolate-to", default="20", metavar="J", help="lags of the extrapolation error (default 20)")
    _add_budget(train)
    _add_json(train)
    train.set_defaults(run=_run_robust_train, command="robust train")
    sel = actions.add_parser("selective", help="a selective SSM's worst-case error against the sequence length, beside the LTI bound")
    sel.add_argument("--epsilon", default="0.1", metavar="EPS", help="the l_inf budget, >= 0 (default 0.1)")
    sel.add_argument("--horizons", default="10,25,50,100,150,200", metavar="H1,H2,...",
                     help="sequence lengths (default 10,25,50,100,150,200; each 2..1000)")
    sel.add_argument("--gain", default="0,1,3,10", metavar="W1,W2,...", help="the step's input gains w (default 0,1,3,10)")
    sel.add_argument("--a", default="-0.002,-0.2,-1", metavar="A1,A2,...", help="the diagonal of A, negative (default -0.002,-0.2,-1)")
    sel.add_argument("--restarts", default="20", metavar="R", help="PGD's restarts (default 20, at most 1000)")
    sel.add_argument("--steps", default="100", metavar="K", help="PGD's steps per restart (default 100, at most 10000)")
    sel.add_argument("--seed", default="0", metavar="S", help="seed of the clean input and of PGD (default 0)")
    sel.add_argument("--figure", metavar="FILE.png", help="draw the curves to FILE.png")
    _add_budget(sel, limits=False)
    _add_json(sel)
    sel.set_defaults(run=_run_robust_selective, command="robust selective")


def _exact_reals(name: str, text: str) -> tuple:
    """Comma-separated reals, validated; integers, ratios and decimals kept exact (``Fraction``)."""
    from fractions import Fraction

    return tuple(Fraction(str(v)) if not isinstance(v, Fraction) else v for v in _reals(name, text))


def _fmt(value) -> str:
    from fractions import Fraction

    return str(value) if isinstance(value, (int, Fraction)) else f"{float(value):.12g}"


#: the largest size, in decimal digits, of the exact numbers of ``robust attack`` on one SSM (a's common
#: denominator and largest numerator times the horizon; twice that for the l2 budget): a bound on its time
_EXACT_DIGITS = 4000


def _run_robust_attack(args) -> int:
    from ssmpoison.theory._validation import require_int
    from ssmpoison.verify._jsonio import write_json
    from ssmpoison.verify._robust import pgd_gap_study, require_epsilon, require_norm, worst_case_attack
    from ssmpoison.verify._status import Status

    if args.a is None:
        for name in ("b", "c", "input", "target"):
            if getattr(args, name) is not None:
                raise ValueError(f"{name}: give --a (one SSM) with it, or drop it (the random SSMs' study)")
        eps = float(require_epsilon(args.epsilon, floating=True))
        norm = require_norm(args.norm)
        count = require_int("count", args.count, minimum=1, maximum=1000)
        D = require_int("state_dim", args.state_dim, minimum=1, maximum=64)
        H = require_int("horizon", args.horizon, minimum=2, maximum=1000)
        restarts = require_int("restarts", args.restarts, minimum=1, maximum=10_000)
        steps = require_int("steps", args.steps, minimum=0, maximum=10_000)
        seed = require_int("seed", args.seed, minimum=0)
        rows = [r for r in pgd_gap_study(count, restarts, steps, eps, seed, D, H) if r["norm"] == norm]
        compared = len(rows)
        status = Status.DONE if compared == count else Status.TIME_LIMIT
        worst = max((abs(r["relative_gap"]) for r in rows), default=None)
        above = [r["index"] for r in rows if r["pgd"] > r["closed_form"] * (1 + 1e-12)]
        ok = status is Status.DONE and worst <= 1e-6 and not above
        if args.json != "-":
            print(f"closed-form worst case against PGD ({restarts} random restarts, {steps} steps), eps = {eps:g}, "
                  f"l_{norm} budget, {count} random diagonal SSMs (D <= {D}, H <= {H})")
            print(f"{'#':>3} {'D':>3} {'H':>3} {'closed form':>14} {'PGD':>14} {'relative gap':>13}")
            for r in rows:
                print(f"{r['index']:>3} {r['state_dim']:>3} {r['horizon']:>3} {r['closed_form']:>14.8g} {r['pgd']:>14.8g} "
                      f"{r['relative_gap']:>13.2e}")
            if status is Status.TIME_LIMIT:
                print(f"status time_limit: the wall-clock budget ran out after {compared} of {count} SSMs "
                      f"(raise --time-limit)")
            else:
                print(f"largest |relative gap| {worst:.2e}; PGD above the closed form: {len(above)} "
                      f"-> {'the closed form is the maximum' if ok else 'MISMATCH'}")
        if args.json:
            write_json(args.json, {"epsilon": eps, "norm": norm, "restarts": restarts, "steps": steps, "rows": rows,
                                   "status": status, "largest_relative_gap": worst, "pgd_above_closed_form": above,
                                   "ok": ok})
        return 0 if ok else 1
    from ssmpoison.verify._kernels import impulse_response
    import numpy as np

    eps = require_epsilon(_exact_reals("epsilon", args.epsilon)[0] if "," not in args.epsilon else args.epsilon)
    norm = require_norm(args.norm)
    a = _exact_reals("a", args.a)
    D = len(a)
    b = _exact_reals("b", args.b) if args.b is not None else (1,) * D
    c = _exact_reals("c", args.c) if args.c is not None else (1,) * D
    if len(b) != D or len(c) != D:
        raise ValueError(f"b and c must have the {D} entries of a, got {len(b)} and {len(c)}")
    if args.input is None:
        raise ValueError("input: give the input u_0,...,u_{H-1} of the one SSM")
    u = _exact_reals("input", args.input)
    if len(u) < 2 or len(u) > 4096:
        raise ValueError(f"input must have 2 to 4096 entries (the horizon H), got {len(u)}")
    if D > 64:
        raise ValueError(f"a must have at most 64 entries (the state dimension), got {D}")
    import math

    # K_j's common denominator divides lcm(denominators of a)^j; its numerator has about as many digits
    digits = (len(str(math.lcm(*(v.denominator for v in a)))) + max(len(str(abs(v.numerator))) for v in a)) * (len(u) - 1)
    digits *= 1 if norm == "inf" else 2  # the l2 attack carries the squares of K_j
    if digits > _EXACT_DIGITS:
        raise ValueError(f"input: the exact impulse response C A^j B up to j = H - 1 = {len(u) - 1} would carry about "
                         f"{digits} digits (at most {_EXACT_DIGITS}): shorten the input or give a's entries with fewer digits")
    sys.set_int_max_str_digits(0)  # the exact numbers printed may pass Python's default 4300 digits
    target = None if args.target is None else _exact_reals("target", args.target)[0]
    K = list(impulse_response(*(np.array(v, dtype=object) for v in (a, b, c)), len(u)))
    attack = worst_case_attack(K, u, eps, norm, target=target)
    if args.json != "-":
        print(f"K = ({', '.join(_fmt(k) for k in K)})")
        print(f"worst-case attack, l_{norm} budget eps = {_fmt(eps)}: delta = ({', '.join(_fmt(d) for d in attack.perturbation)})")
        print(f"output {_fmt(attack.clean_output)} -> {_fmt(attack.attacked_output)}; error {_fmt(attack.clean_error)} -> "
              f"{_fmt(attack.error)} = clean error + bound {_fmt(attack.bound)}")
    if args.json:
        payload = attack.to_json()
        payload.update({"K": [str(k) for k in K], "exact": {k: str(getattr(attack, k)) for k in ("bound", "error")}})
        write_json(args.json, payload)
    return 0


def _run_robust_train(args) -> int:
    from ssmpoison.theory._validation import require_int, require_real
    from ssmpoison.verify._jsonio import write_json
    from ssmpoison.verify._robust import require_epsilon, require_norm
    from ssmpoison.verify._robust_training import robust_training_table

    epsilons = tuple(require_epsilon(e, floating=True) for e in _reals("epsilon", args.epsilon))
    norms = tuple(dict.fromkeys(require_norm(n) for n in str(args.norm).split(",")))
    H = _within(args, "horizon", require_int("horizon", args.horizon, minimum=3))
    D = _within(args, "state_dim", require_int("state_dim", args.state_dim, minimum=2))
    J = _within(args, "extrapolation_length", require_int("extrapolate_to", args.extrapolate_to, minimum=1), "extrapolate_to")
    kwargs = dict(horizon=H, state_dim=D, seed=require_int("seed", args.seed, minimum=0),
                  init_scale=require_real("init_scale", args.init_scale, positive=True),
                  gap_exponent=require_real("gap_exponent", args.gap_exponent), extrapolation_length=J)
    from ssmpoison.theory._construction import paper_initialisation

    paper_initialisation(kwargs["seed"], D, kwargs["init_scale"], kwargs["gap_exponent"])  # refuse a bad setting first
    rows = robust_training_table(epsilons, norms, **kwargs)
    expected = 2 * sum(1 if e == 0 else len(norms) for e in epsilons)
    if args.json != "-":
        print(f"adversarial training on the exact robust loss (|r| + eps S)^2, A trained, B = C = 1: H = {H}, D = {D}, "
              f"seed {kwargs['seed']}; error over {J} lags; digits = agreement of Radau and LSODA (rtol 1e-12)")
        print(f"{'set':<9} {'eps':>7} {'norm':>4} {'stopped':<14} {'t':>10} {'error':>12} {'digits':>6}  top entries")
        for r in rows:
            f = r.flow
            top = ", ".join(f"{v:.6g}" for v in sorted(f.a, reverse=True)[:3])
            print(f"{'poisoned' if r.poisoned else 'clean':<9} {f.epsilon:>7g} {f.norm if f.epsilon else '-':>4} {f.stop:<14} "
                  f"{f.t:>10.4g} {f.error:>12.6g} {r.digits:>6}  {top}")
        if len(rows) < expected:
            print(f"time limit: {len(rows)} of {expected} flows ran")
    if args.json:
        write_json(args.json, {"horizon": H, "state_dim": D, **{k: (float(v) if not isinstance(v, int) else v)
                                                                  for k, v in kwargs.items() if k not in ("horizon", "state_dim")},
                               "rows": [r.to_json() for r in rows], "complete": len(rows) == expected})
    return 0 if len(rows) == expected and all(r.digits >= 1 for r in rows) else 1



def _run_robust_selective(args) -> int:
    from ssmpoison.theory._validation import require_int
    from ssmpoison.verify._jsonio import write_json
    from ssmpoison.verify._robust import require_epsilon
    from ssmpoison.verify._selective import SelectiveSSM, fit_growth, plot_selective_growth, selective_growth
    from ssmpoison.verify._status import Status

    eps = float(require_epsilon(args.epsilon, floating=True))
    horizons = tuple(sorted(set(require_int(f"horizons[{k}]", v.strip(), minimum=2, maximum=1000)
                                for k, v in enumerate(str(args.horizons).split(",")))))
    if len(horizons) < 2:
        raise ValueError("horizons must hold at least two distinct lengths (for the growth fit)")
    gains = _reals("gain", args.gain)
    A = _reals("a", args.a)
    restarts = require_int("restarts", args.restarts, minimum=1, maximum=1000)
    steps = require_int("steps", args.steps, minimum=0, maximum=10_000)
    seed = require_int("seed", args.seed, minimum=0)
    models = {float(w): SelectiveSSM(A=A, B=(1,) * len(A), C=(1,) * len(A), w=w) for w in gains}
    if args.figure is not None:
        _output_file(args.figure, "figure", "growth.png")
    curves = {w: selective_growth(horizons, eps, m, seed=seed, restarts=restarts, steps=steps) for w, m in models.items()}
    payload = {"epsilon": eps, "a": [float(v) for v in A], "horizons": list(horizons), "status": Status.DONE,
               "curves": {format(w, "g"): rows for w, rows in curves.items()}}
    if any(len(rows) < len(horizons) for rows in curves.values()):
        done = sum(len(rows) for rows in curves.values())
        if args.json != "-":
            print(f"status time_limit: the wall-clock budget ran out after {done} of {len(horizons) * len(curves)} "
                  f"PGD runs (raise --time-limit); no fit, no figure")
        if args.json:
            write_json(args.json, dict(payload, status=Status.TIME_LIMIT))
        return 1
    fits = {w: fit_growth(horizons, [r["selective_pgd"] for r in rows]) for w, rows in curves.items()}
    lti = next(iter(curves.values()))
    lti_fit = fit_growth(horizons, [r["lti_bound"] for r in lti])
    if args.json != "-":
        print(f"selective SSM, A = diag({', '.join(f'{float(v):g}' for v in A)}), B = C = 1, step softplus(w u): worst case "
              f"of |y_H(u + delta) - y_H(u)| under ||delta||_inf <= {eps:g} (PGD, {restarts} restarts x {steps} steps: a lower bound)")
        print(f"{'H':>5} " + " ".join(f"{'w = ' + format(w, 'g'):>10}" for w in curves) + f" {'LTI exact':>10}")
        for k, H in enumerate(horizons):
            print(f"{H:>5} " + " ".join(f"{rows[k]['selective_pgd']:>10.4g}" for rows in curves.values())
                  + f" {lti[k]['lti_bound']:>10.4g}")
        def power(fit):
            return "- (a zero worst case)" if fit["power"] is None else f"{fit['power']:.2f}"

        print("fitted power p (error ~ H^p): " + ", ".join(f"w = {w:g}: {power(f)}" for w, f in fits.items())
              + f"; LTI: {power(lti_fit)}")
    if args.figure is not None:
        plot_selective_growth({f"selective, w = {w:g} (PGD)": rows for w, rows in curves.items()}, lti, args.figure)
    if args.json:
        write_json(args.json, dict(payload, fits={format(w, "g"): f for w, f in fits.items()}, lti_fit=lti_fit))
    return 0


# -- poison ---------------------------------------------------------------------------------------
def _add_poison(sub) -> None:
    p = sub.add_parser(
        "poison",
        help="optimise a clean-label poison: the most damaging sequence within a budget, certified, beside e_(H-2)",
        description="Append one sequence u, labelled by the teacher, to the Theorem's clean set {e_0} and train A "
        "(B = C = 1; or A, B and C with --train abc) by gradient flow from the paper's initialisation: the damage E(u) "
        "is the extrapolation error of the limit. Maximise it over ||u|| <= RHO (SLSQP with the gradient dE/du by "
        "forward sensitivities along the flow, in u/rho, from rho e_(H-2) and seeded random starts, each evaluation "
        "within --max-steps and --evaluation-time), optionally with u_(H-2) = 0 forced (--non-special); re-run the "
        "poison found, rho e_(H-2) and the clean set by the certified engine. With --target-error: the smallest "
        "|u_(H-2)| of s e_(H-2) whose damage reaches it. With --out: figures of the poison's entries and of damage "
        "versus budget (rho = 0.01 ... 1, one optimisation per point, warm-started from the largest budget). Exit 0 when every certified flow converged "
        "(and the target, if any, was reached), 1 otherwise.",
    )
    p.add_argument("--horizon", metavar="H", help=f"training horizon H (integer >= 3, {_bound('poison', 'horizon')}; "
                   "default 7)")
    p.add_argument("--state-dim", metavar="D", help=f"student dimension D (integer >= 2, {_bound('poison', 'state_dim')}; "
                   "default the theory row's at H)")
    p.add_argument("--seed", metavar="K", help="seed of the paper's initialisation (default the theory row's first)")
    p.add_argument("--extrapolate-to", metavar="H2", help="extrapolation length H' (integer >= 1, "
                   f"{_bound('poison', 'extrapolation_length')}; default the theory row's)")
    p.add_argument("--config", metavar="FILE", help="a TOML or JSON file with the same settings as keys (horizon, "
                   "state_dim, seed, extrapolate_to, budget, norm, non_special, target_error, restarts, train, max_steps, "
                   "evaluation_time)")
    p.add_argument("--budget", metavar="RHO", help="the poison's budget rho > 0: ||u|| <= rho (required, here or in --config)")
    p.add_argument("--norm", metavar="2|inf", help="the norm of the budget: 2 (default) or inf")
    p.add_argument("--non-special", action="store_true", help="force u_(H-2) = 0 (a non-special poison)")
    p.add_argument("--train", metavar="a|abc", help="what gradient flow trains: a (the diagonal of A, B = C = 1 fixed: the "
                   "theory setting; default) or abc (A, B and C, starting at B = C = 1)")
    p.add_argument("--max-steps", metavar="N", help="step budget of each float64 damage evaluation in the search (integer "
                   ">= 1, default 20000); an evaluation that exhausts it counts as no damage and is tallied by status")
    p.add_argument("--evaluation-time", metavar="SECONDS", help="wall-clock budget of each float64 damage evaluation in "
                   "the search (> 0; default none besides --time-limit)")
    p.add_argument("--target-error", metavar="E", help="also find the smallest |u_(H-2)| of s e_(H-2) whose damage "
                   "reaches E (> 0)")
    p.add_argument("--restarts", metavar="R", help="random starts besides rho e_(H-2), drawn from seed 0 (integer >= 0, default 2, "
                   f"{_bound('poison', 'restarts')})")
    p.add_argument("--out", metavar="DIR", help="directory for the PNG figures (created if missing)")
    _add_budget(p)
    _add_json(p)
    p.set_defaults(run=_run_poison, command="poison")


#: the keys of a ``poison --config`` file (the options' names with underscores)
_POISON_KEYS = ("horizon", "state_dim", "seed", "extrapolate_to", "budget", "norm", "non_special", "target_error", "restarts",
                "train", "max_steps", "evaluation_time")


def _poison_values(args) -> dict:
    """The poison's settings from the options and the ``--config`` file (a key in both must agree)."""
    values = {k: getattr(args, k) for k in _POISON_KEYS if getattr(args, k) not in (None, False)}
    if args.config is None:
        return values
    from ssmpoison.verify._jsonio import read_settings_file

    for key, value in read_settings_file(args.config, "config").items():
        if key not in _POISON_KEYS:
            raise ValueError(f"config: unknown key {key!r} (known: {', '.join(_POISON_KEYS)})")
        if key == "non_special":
            if not isinstance(value, bool):
                raise ValueError(f"config: key 'non_special' must be true or false, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"config: key {key!r} must be a number or a string, got {value!r}")
        else:
            value = repr(value) if isinstance(value, float) else str(value)
        if key in values and str(values[key]).strip() != str(value).strip():
            raise ValueError(f"{key} given twice with different values: --{key.replace('_', '-')} {values[key]} and "
                             f"config key {key!r} = {value!r}")
        values[key] = value
    return values


def _run_poison(args) -> int:
    from pathlib import Path

    from ssmpoison.theory._validation import require_int, require_real
    from ssmpoison.verify._jsonio import check_output_dir, write_json
    from ssmpoison.verify._poison_opt import (FIGURES, damage_curve, minimal_special_scale, optimise_poison, plot_poison,
                                              poison_text, require_budget, require_norm)
    from ssmpoison.verify._poisons import theory_poison_setting
    from ssmpoison.verify._registry import row_model

    v = _poison_values(args)
    model = row_model("theory")
    H = _within(args, "horizon", require_int("horizon", v.get("horizon", model.horizons[0]), minimum=3))
    row = model.setting(H) if H in model.horizons else model.setting(model.horizons[0])
    D = _within(args, "state_dim", require_int("state_dim", v.get("state_dim", row.state_dim), minimum=2))
    J = _within(args, "extrapolation_length", require_int(
        "extrapolate_to", v.get("extrapolate_to", row.extrapolation_length), minimum=1), name="extrapolate_to")
    seed = require_int("seed", v.get("seed", row.seeds[0]), minimum=0, maximum=2**32 - 1)
    if "budget" not in v:
        raise ValueError("budget must be given (--budget RHO, or the config key 'budget')")
    rho = require_budget(v["budget"])
    norm = require_norm(v.get("norm", "2"))
    restarts = _within(args, "restarts", require_int("restarts", v.get("restarts", 2), minimum=0))
    target = None if "target_error" not in v else float(require_real("target_error", v["target_error"], positive=True))
    non_special = bool(v.get("non_special", False))
    train = str(v.get("train", "a")).strip()
    if train not in ("a", "abc"):
        raise ValueError(f"train must be a or abc, got {train!r}")
    max_steps = require_int("max_steps", v.get("max_steps", 20_000), minimum=1)
    evaluation_time = (None if "evaluation_time" not in v
                       else float(require_real("evaluation_time", v["evaluation_time"], positive=True)))
    if args.out is not None:
        check_output_dir(args.out, "out", FIGURES)
    setting = theory_poison_setting(H, D, seed, J, train=train)
    search = {"max_steps": max_steps, "evaluation_time": evaluation_time}
    with _Bars() as bars:
        result = optimise_poison(setting, rho, norm, non_special=non_special, restarts=restarts, seed=0, progress=bars,
                                 **search)
        minimal = None if target is None else minimal_special_scale(setting, target, low=1e-3, high=max(10.0, 10 * rho),
                                                                    steps=12, progress=bars)
        curve = None
        if args.out is not None:
            budgets = sorted({0.01, 0.03, 0.1, 0.3, 1.0, rho})
            curve = damage_curve(setting, budgets, norm, non_special=non_special, restarts=min(restarts, 1),
                                 max_iterations=12, progress=bars, starts=(result.u,), **search)
    figures = []
    if args.out is not None:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        figures = plot_poison(result, curve, args.out)
    if args.json != "-":
        print(poison_text(result, minimal, curve))
        if figures:
            print(f"{len(figures)} figures in {args.out}/: " + ", ".join(p.name for p in figures))
    if args.json:
        payload = result.to_json()
        payload["minimal_poison"] = None if minimal is None else minimal.to_json()
        payload["damage_vs_budget"] = None if curve is None else curve.to_json()
        payload["figures"] = [str(p) for p in figures]
        write_json(args.json, payload)
    ok = result.converged and (minimal is None or minimal.size is not None)
    return 0 if ok else 1


# -- audit ----------------------------------------------------------------------------------------
def _add_audit(sub) -> None:
    p = sub.add_parser(
        "audit",
        help="audit a training set for clean-label poisons: specialness and certified leave-one-out influence of each "
        "sequence, ranked, poisons and mislabelled sequences flagged",
        description="For each sequence of DATASET.json (inputs, labels, optional teacher, state_dim, extrapolate_to, init; "
        "README) in the Theorem's setting (A trained, B = C = 1): its special score |u_(H-2)|/||u|| and lowest excited "
        "lag, its label against the teacher's, and the certified extrapolation error of the flow on the set without it "
        "beside the whole set's (N + 1 certified flows), ranked by the factor E / E_without. A clean-label sequence "
        "whose removal lowers the error by --factor or more is flagged POISON; a label differing from the teacher's is "
        "MISLABELLED. Exit 0 when nothing is flagged, 1 when a sequence is flagged, 2 on bad input.",
    )
    p.add_argument("dataset", metavar="DATASET.json", help="the training set (JSON; README gives the keys)")
    p.add_argument("--factor", default="10", metavar="F", help="a clean-label sequence whose removal lowers the error "
                   "by F or more is a poison (> 1, default 10)")
    p.add_argument("--defend", action="store_true", help="also measure the defences: strip every sequence's H-2 entry "
                   "(relabelled by the teacher), drop the flagged sequences, reweight by 1 - (special score)^2")
    p.add_argument("--precision", metavar="BITS", help=f"working precision in bits (>= 53, {_bound('audit', 'precision')}); "
                   "default: the certified fast path")
    p.add_argument("--jobs", default="1", metavar="N", help="worker processes for the flows (default 1)")
    p.add_argument("--max-steps", metavar="N", help="step budget of every flow (integer >= 1; default the engine's): a "
                   "flow that exhausts it is reported as not converged instead of running on (labels that cannot be "
                   "fitted can make a flow very long)")
    _add_budget(p)
    _add_json(p)
    p.set_defaults(run=_run_audit, command="audit")


def _run_audit(args) -> int:
    from ssmpoison.theory._validation import require_int, require_real
    from ssmpoison.verify._audit import audit, audit_text, load_dataset
    from ssmpoison.verify._jsonio import write_json
    from ssmpoison.verify._numbers import require_precision_bits
    from ssmpoison.verify._workers import capped_jobs

    factor = require_real("factor", args.factor, positive=True)
    if not factor > 1:
        raise ValueError(f"factor must be > 1, got {args.factor}")
    jobs = require_int("jobs", args.jobs, minimum=1)
    max_steps = None if args.max_steps is None else require_int("max_steps", args.max_steps, minimum=1)
    precision = None if args.precision is None else _within(
        args, "precision", require_precision_bits(args.precision, name="precision"))
    dataset = load_dataset(args.dataset)
    _within(args, "horizon", dataset.horizon)
    _within(args, "state_dim", dataset.state_dim)
    _within(args, "extrapolation_length", dataset.extrapolate_to, name="extrapolate_to")
    jobs = capped_jobs(jobs, _warning)  # warned once everything is validated
    with _Bars() as bars:
        report = audit(dataset, poison_factor=float(factor), precision_bits=precision, jobs=jobs, defences=args.defend,
                       max_steps=max_steps, progress=bars)
    if args.json != "-":
        print(audit_text(report))
    if args.json:
        write_json(args.json, report.to_json())
    return 1 if report.flagged else 0


# -- realworld (parser and runner in verify/_realworld_cli.py) -------------------------------------
def _add_realworld(sub) -> None:
    from ssmpoison.verify._realworld_cli import add_realworld

    add_realworld(sub, _add_budget, _add_json, _Bars)


_SUBCOMMANDS = (_add_derive, _add_reproduce, _add_check, _add_dynamics, _add_search, _add_replay, _add_poison,
               _add_audit, _add_sweep, _add_robust, _add_realworld)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ssmpoison",
        description="Verify, numerically and symbolically, that the implicit bias of diagonal SSMs "
        "can be poisoned with clean labels.",
    )
    parser.add_argument("--version", action="version", version=f"ssmpoison {__version__}")
    sub = parser.add_subparsers(title="subcommands", metavar="COMMAND", parser_class=_Parser)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


#: Exit statuses of every subcommand: 0 ran, outcome as expected (or matched); 1 ran, outcome negative
#: (the Theorem not matched, a replay differs, a run did not converge); 2 input refused; 3 internal error.
EXIT_OK, EXIT_NEGATIVE, EXIT_REFUSED, EXIT_INTERNAL_ERROR = 0, 1, 2, 3


def main(argv: list[str] | None = None) -> int:
    """Run the ``ssmpoison`` command line on ``argv`` (default ``sys.argv[1:]``) and return its exit status.

    Returns:
        0 when the command ran and its outcome is the expected one, 1 when it ran and its outcome is
        negative, 2 when the input was refused (one line on stderr names the parameter), 3 on an
        internal error (one line asking for a bug report), 130 when interrupted (SIGINT, Ctrl-C), 143 when
        terminated (SIGTERM); worker processes are stopped in every case.
    """
    parser = build_parser()
    args = parser.parse_args(_sweep_argv(sys.argv[1:] if argv is None else list(argv)))
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    try:
        with _interruptible(keep_ignoring=argv is None):
            if getattr(args, "json", None) is not None:  # every subcommand: refuse an unwritable --json before any work
                from ssmpoison.verify._jsonio import check_json_path

                check_json_path(args.json)
            time_limit = getattr(args, "time_limit", None)
            if time_limit is None:
                return args.run(args)
            from ssmpoison.theory._validation import require_real
            from ssmpoison.verify._budget import wall_clock_budget

            with wall_clock_budget(require_real("time_limit", time_limit, positive=True)):
                return args.run(args)
    except ValueError as exc:
        _one_line(f"ssmpoison {args.command}: error: {exc}")
        return 2
    except _Terminated:
        _one_line("ssmpoison: terminated")
        return _end_interrupted(143, command_line=argv is None)
    except KeyboardInterrupt:
        _one_line("ssmpoison: interrupted")
        return _end_interrupted(130, command_line=argv is None)
    except Exception as exc:  # never a traceback from the CLI
        command = " ".join(["ssmpoison", *(sys.argv[1:] if argv is None else argv)])
        _one_line(f"ssmpoison {args.command}: internal error ({type(exc).__name__}): {exc} -- this is a bug; "
                  f"please report it with the command: {command}")
        return EXIT_INTERNAL_ERROR


def _end_interrupted(status: int, command_line: bool) -> int:
    """The exit of an interrupted command: ``status`` returned, or, on the command line, the process ends now.

    On the command line the process exits at once (``os._exit`` after flushing the standard
    streams): the worker pools have already terminated their workers, and the interpreter's exit
    handlers (which join the pools' manager threads) are skipped, so that no state the signal
    left behind can hold the exit; a worker not yet registered with its pool dies with the
    process (its parent-death signal, :func:`ssmpoison.verify._workers.worker_setup`).

    Arguments:
        status: 130 (SIGINT) or 143 (SIGTERM).
        command_line: whether this is the process's own command line (``main()`` without ``argv``).

    Returns:
        ``status`` (when not on the command line).
    """
    if command_line:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)
    return status


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread while a command runs (:func:`_interruptible`)."""


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _interruptible(keep_ignoring: bool):
    """While the block runs, the first SIGINT raises ``KeyboardInterrupt`` and the first SIGTERM
    :class:`_Terminated` in the main thread; from then on both are ignored.

    A terminated command thus takes the path of Ctrl-C: worker pools terminate their workers as the
    exception leaves them and :func:`main` prints one line, and a second Ctrl-C cannot interrupt that
    clean-up (nor the interpreter's exit) with a traceback. An error that leaves the block after the
    signal (an import or a library's clean-up cut short by it) is reported as the interruption. A
    signal the caller ignores stays ignored.

    Arguments:
        keep_ignoring: after an interruption, keep ignoring both signals (the process is ending: this
            is its command line); otherwise, and always when not interrupted, the previous handlers
            are restored when the block ends. Outside the main thread the block runs unchanged.
    """
    received: list[int] = []

    def interrupted(signum, frame):
        received.append(signum)
        for s in _STOP_SIGNALS:  # the command is ending; processes started from now on inherit this
            signal.signal(s, signal.SIG_IGN)
        raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {}
    try:
        for s in _STOP_SIGNALS:
            if signal.getsignal(s) is not signal.SIG_IGN:
                previous[s] = signal.signal(s, interrupted)
    except ValueError:  # not the main thread
        pass
    try:
        yield
    except Exception:
        if received:
            raise (_Terminated() if received[0] == signal.SIGTERM else KeyboardInterrupt()) from None
        raise
    finally:
        if not (keep_ignoring and received):
            for s, handler in previous.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)


def _warning(message: str) -> None:
    _one_line(f"ssmpoison: warning: {message}")


def _one_line(message: str) -> None:
    print(" ".join(message.split()), file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
