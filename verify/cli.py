"""The ``ssmpoison`` command line. Every subcommand accepts ``--json PATH`` (``-`` = stdout).

Bad input exits with status 2 and one line on stderr naming the parameter.
"""

from __future__ import annotations

import argparse
import sys

from ssmpoison.verify import __version__

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line on stderr and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="PATH", help="write machine-readable results to PATH ('-' = stdout)")


# -- derive ---------------------------------------------------------------------------------------
def _add_derive(sub) -> None:
    p = sub.add_parser(
        "derive",
        help="print L_H and its exact gradient dynamics in gamma-form, symbolically verified",
        description="Derive L_H and its gradient flow for concrete D, H, N with SymPy, and verify exactly that "
        "-dL/dtheta equals the Proposition's gamma-form.",
    )
    p.add_argument("--horizon", required=True, metavar="H", help="sequence length H (integer >= 2)")
    p.add_argument("--state-dim", required=True, metavar="D", help="state dimension D (integer >= 1)")
    p.add_argument("--samples", default="1", metavar="N", help="number of training sequences N (integer >= 1)")
    p.add_argument("--train", default="a", help="trained parameters: 'a' (B, C fixed) or 'abc'")
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of plain text")
    _add_json(p)
    p.set_defaults(run=_run_derive, command="derive")


def _run_derive(args) -> int:
    from ssmpoison.verify.derive_report import derive_report
    from ssmpoison.verify.jsonio import write_json

    report = derive_report(args.state_dim, args.horizon, args.samples, args.train)
    if args.json != "-":
        print(report.text(latex=args.latex))
    if args.json:
        write_json(args.json, report.to_json(latex=args.latex))
    return 0 if report.verified else 1


# -- reproduce ------------------------------------------------------------------------------------
ROWS = ("theory", "beyond", "nonlinear", "all")


def _add_reproduce(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="reproduce a row of the paper's Table 1 with certified digits, published values beside",
        description="Reproduce a row of Table 1 (SPEC §6). The theory row runs the gradient flows without and with "
        "the poison u† = e_{H-2} for the published seeds and reports each extrapolation error with its certified "
        "digits (agreement with an independent, more precise re-run or the exact oracle).",
    )
    p.add_argument("--row", default="theory", help=f"row of Table 1: {', '.join(ROWS)}")
    p.add_argument("--horizon", action="append", metavar="H", help="horizon(s) of the row (default: all published)")
    p.add_argument(
        "--precision",
        metavar="BITS",
        help="working precision in bits (>= 53); default: the fast path (float64 where it suffices, "
        "the exact oracle for the clean flows)",
    )
    p.add_argument("--jobs", default="auto", metavar="N", help="worker processes (default auto: one per CPU)")
    _add_json(p)
    p.set_defaults(run=_run_reproduce, command="reproduce")


def _run_reproduce(args) -> int:
    from ssmpoison.theory.validation import require_int

    if args.row not in ROWS:
        raise ValueError(f"row must be one of {', '.join(ROWS)}, got {args.row!r}")
    from ssmpoison.verify.workers import default_jobs

    jobs = default_jobs() if args.jobs == "auto" else require_int("jobs", args.jobs, minimum=1)
    if args.row != "theory":  # the GD rows, and the whole table (theory row first, through the code below's path)
        from ssmpoison.verify.gd_rows import reproduce_command

        return reproduce_command(args.row, args.horizon, args.precision, jobs, args.json)
    from ssmpoison.theory.construction import THEORY_ROW

    horizons = tuple(require_int("horizon", h) for h in (args.horizon or sorted(THEORY_ROW)))
    for h in horizons:
        if h not in THEORY_ROW:
            raise ValueError(f"horizon must be one of {', '.join(map(str, sorted(THEORY_ROW)))} for the theory row, got {h}")
    from ssmpoison.verify._numbers import require_precision_bits

    precision_bits = None if args.precision is None else require_precision_bits(args.precision, name="precision")
    from ssmpoison.verify.reporting import reproduce_theory_row

    return reproduce_theory_row(horizons, precision_bits, jobs, args.json)


# -- check ----------------------------------------------------------------------------------------
def _add_check(sub) -> None:
    p = sub.add_parser(
        "check",
        help="check the Theorem's conditions on a setting, run both flows, and give a verdict",
        description="Evaluate the Theorem's conditions (derived, with margins) on a setting of the construction "
        "(teacher diag(1, 0), training set e_0, poison u† = e_{H-2}), run the gradient flow without and with "
        "the poison with certified digits, and say whether the outcome matches the Theorem. Exit status 0 when "
        "it does, 1 when a condition fails or the flows disagree with it.",
    )
    p.add_argument("--horizon", required=True, metavar="H", help="training horizon H (integer >= 3)")
    p.add_argument("--state-dim", required=True, metavar="D", help="student dimension D (integer >= 2)")
    p.add_argument("--extrapolate-to", required=True, metavar="H2", help="extrapolation horizon H' (integer >= 1)")
    p.add_argument("--init-scale", default="0.001", metavar="S", help="paper initialisation: scale sd_A (default 0.001)")
    p.add_argument("--gap-exponent", default="5", metavar="K", help="paper initialisation: gap exponent k (default 5)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--seed", metavar="K", help="paper initialisation: seed of numpy's legacy generator (default 0)")
    group.add_argument("--init", metavar="A1,A2,...", help="the initial diagonal itself, D comma-separated numbers")
    p.add_argument("--precision", metavar="BITS", help="working precision in bits (>= 53); default: the certified fast path")
    p.add_argument("--tolerance", default="0.01", metavar="EPS", help="extrapolation error up to which a flow generalises (default 0.01)")
    _add_json(p)
    p.set_defaults(run=_run_check, command="check")


def _run_check(args) -> int:
    from ssmpoison.theory.theorem import TheoremSetting
    from ssmpoison.theory.validation import require_int, require_real
    from ssmpoison.verify.check import check_setting, paper_setting, report_text
    from ssmpoison.verify.jsonio import write_json

    H = require_int("horizon", args.horizon, minimum=3)
    D = require_int("state_dim", args.state_dim, minimum=2)
    H2 = require_int("extrapolate_to", args.extrapolate_to, minimum=1)
    tolerance = require_real("tolerance", args.tolerance, positive=True)
    from ssmpoison.verify._numbers import require_precision_bits

    precision_bits = None if args.precision is None else require_precision_bits(args.precision, name="precision")
    if args.init is not None:
        values = [v.strip() for v in args.init.split(",") if v.strip()]
        if len(values) != D:
            raise ValueError(f"init must have D = {D} comma-separated entries, got {len(values)}")
        setting = TheoremSetting(H, tuple(require_real("init", v) for v in values), H2)
    else:
        seed = require_int("seed", 0 if args.seed is None else args.seed, minimum=0)
        setting = paper_setting(H, D, H2, args.init_scale, args.gap_exponent, seed)
    report = check_setting(setting, precision_bits, tolerance)
    if args.json != "-":
        print(report_text(report))
    if args.json:
        write_json(args.json, report.to_json())
    return 0 if report.matches_theorem else 1


# -- dynamics -------------------------------------------------------------------------------------
def _add_dynamics(sub) -> None:
    p = sub.add_parser(
        "dynamics",
        help="record one run's training dynamics: entries, effective rank, gamma coefficients, loss, as figures and JSON",
        description="Record one run of a row of Table 1 without and/or with the special sequence(s) and draw, against "
        "time, the entry magnitudes |a_i|, the effective rank of A, every gamma^(l) (with the head's slopes xi_n in the "
        "non-linear row) and the training loss with the extrapolation error, as PNG files in DIR.",
    )
    p.add_argument("--row", default="theory", help="theory (gradient flow), beyond or nonlinear (gradient descent)")
    p.add_argument("--horizon", required=True, metavar="H", help="horizon of the row (theory 7|9, beyond 6|10, nonlinear 6)")
    p.add_argument("--seed", metavar="K", help="seed of the run (default: the row's first published seed)")
    p.add_argument("--condition", default="both", help="clean, poisoned or both (side by side)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the PNG figures (created if missing)")
    p.add_argument("--extrapolate-to", metavar="J", help="extrapolation length (default: the row's, 20 or 40)")
    p.add_argument("--stem", metavar="NAME", help="file-name stem of the figures (default ROW_HH_seedK)")
    _add_json(p)
    p.set_defaults(run=_run_dynamics, command="dynamics")


def _run_dynamics(args) -> int:
    from ssmpoison.verify.dynamics import dynamics_command

    return dynamics_command(args.row, args.horizon, args.seed, args.condition, args.out, args.json,
                            args.extrapolate_to, args.stem)


# -- search / replay ------------------------------------------------------------------------------
def _add_search(sub) -> None:
    p = sub.add_parser(
        "search",
        help="search non-special clean-label training sets for certified failures of greedy low-rank learning or extrapolation",
        description="Hypothesis search (outside pytest) over non-special training sets with clean labels from a teacher of "
        "dimension D*: float64 flows screen for a learned effective rank well above D* or an extrapolation error at 2H above "
        "a threshold (the criteria are printed); failures are shrunk and reported only when certified by high-precision re-runs.",
    )
    p.add_argument("--budget", default="200", metavar="N", help="examples Hypothesis draws (default 200)")
    p.add_argument("--seed", default="0", metavar="S", help="Hypothesis seed; the same seed gives the same report (default 0)")
    p.add_argument("--teacher-dim", metavar="D*", help="teacher dimension to search (default: both 1 and 2)")
    p.add_argument("--jobs", default="1", metavar="N", help="processes for the exploration flows (default 1)")
    _add_json(p)
    p.set_defaults(run=_run_search, command="search")


def _run_search(args) -> int:
    from ssmpoison.verify._progress import TqdmProgress
    from ssmpoison.verify._search_text import search_report_text
    from ssmpoison.verify.jsonio import check_json_path, write_json
    from ssmpoison.verify.search import SearchConfig, run_search

    dims = (1, 2) if args.teacher_dim is None else (args.teacher_dim,)
    config = SearchConfig(budget=args.budget, seed=args.seed, teacher_dims=dims, jobs=args.jobs)
    check_json_path(args.json)
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
    _add_json(p)
    p.set_defaults(run=_run_replay, command="replay")


def _run_replay(args) -> int:
    from ssmpoison.verify._search_text import replay_report_text
    from ssmpoison.verify.jsonio import check_json_path, write_json
    from ssmpoison.verify.replay import load_records, replay_records

    check_json_path(args.json)
    report = replay_records(load_records(args.file))
    if args.json != "-":
        print(replay_report_text(report))
    if args.json:
        write_json(args.json, report.to_json())
    return 0 if report.all_identical else 1


_SUBCOMMANDS = (_add_derive, _add_reproduce, _add_check, _add_dynamics, _add_search, _add_replay)


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.run(args)
    except ValueError as exc:
        _one_line(f"ssmpoison {args.command}: error: {exc}")
        return 2
    except KeyboardInterrupt:
        _one_line("ssmpoison: interrupted")
        return 130
    except Exception as exc:  # never a traceback from the CLI
        _one_line(f"ssmpoison {args.command}: internal error ({type(exc).__name__}): {exc}")
        return 1


def _one_line(message: str) -> None:
    print(" ".join(message.split()), file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
