"""The ``ssmpoison realworld`` subcommand: its parser and its runner (torch is imported only when it runs)."""

from __future__ import annotations

__all__ = ["add_realworld", "realworld_config_from_args"]

_HELP = ("clean-label poisoning of real SSM layers (S4D, LRU; PyTorch) on scikit-learn's digits as 64-step "
         "sequences: gradient matching with and without the end-of-sequence regulariser, random noise, first-half "
         "poisons; accuracy, target success, energy per time step, over seeds")


def add_realworld(sub, add_budget, add_json, bars) -> None:
    """Add the ``realworld`` parser to the subparsers ``sub``.

    Arguments:
        sub: argparse's subparsers object.
        add_budget: the command line's ``--time-limit`` adder (called with ``limits=False``).
        add_json: the command line's ``--json`` adder.
        bars: the command line's progress-bar context manager class (a ``progress(label, done, total, note)``).
    """
    p = sub.add_parser(
        "realworld", help=_HELP,
        description="For each model and seed: train a clean classifier (one S4D or LRU block, a linear decoder on the "
        "last step) on the digits read pixel by pixel, pick a correctly classified test sample and its adversarial "
        "class (the clean model's second choice), craft clean-label poisons on training samples of that class "
        "(gradient matching, epsilon-bounded; with the end-of-sequence energy regulariser; restricted to the first "
        "half; random noise of the same budget; and an untargeted variant), retrain a victim from scratch on each "
        "poisoned set and measure its clean test accuracy and the target's adversarial probability. Needs the "
        "optional extra: pip install 'ssmpoison[realworld]'. Exit 0 when every run finished, 1 when --time-limit cut "
        "the experiment short, 2 on bad input or a missing extra.",
    )
    p.add_argument("--model", default="both", metavar="s4d|lru|both", help="the SSM layer (default both)")
    p.add_argument("--seeds", default=None, metavar="S,S,...", help="seeds, comma-separated, distinct "
                   "(default 0,1,2,3,4)")
    p.add_argument("--budget", default=None, metavar="B,B,...", help="poison budgets, fractions of the training set "
                   "in (0, 1), comma-separated (default 0.02,0.05)")
    p.add_argument("--epsilon", default=None, metavar="EPS", help="the l-inf bound of each perturbation on pixels in "
                   "[0, 1], in (0, 1] (default 0.25)")
    p.add_argument("--regulariser", default=None, metavar="BETA", help="weight of the end-of-sequence energy "
                   "regulariser of the gm_end variant (> 0, default 1)")
    p.add_argument("--no-untargeted", action="store_true", help="skip the untargeted variant")
    p.add_argument("--tiny", action="store_true", help="the tiny configuration (300 digits, width 16, 10 epochs, 8 "
                   "crafting steps, seeds 0,1 and budget 0.05 unless given): seconds, for tests")
    p.add_argument("--out", metavar="DIR", help="directory for the PNG figures (created if missing)")
    add_budget(p, limits=False)
    add_json(p)
    p.set_defaults(run=lambda args: _run_realworld(args, bars), command="realworld")


def _reals(name: str, text: str, low: float, high: float, *, open_high: bool) -> tuple:
    from ssmpoison.theory._validation import require_real

    items = [t.strip() for t in str(text).split(",")]
    if not all(items):
        raise ValueError(f"{name} must be a comma-separated list of reals, got {text!r}")
    values = tuple(float(require_real(f"{name}[{k}]", t)) for k, t in enumerate(items))
    for k, v in enumerate(values):
        if not (low < v < high or (not open_high and v == high)):
            raise ValueError(f"{name}[{k}] must be in ({low:g}, {high:g}{')' if open_high else ']'}, got {v:g}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must be distinct values, got {text!r}")
    return values


def realworld_config_from_args(args):
    """The :class:`~ssmpoison.verify._realworld.RealWorldConfig` of the parsed options, validated.

    Raises:
        ValueError: a bad option value (naming it) or a missing optional extra (the install hint).
    """
    from ssmpoison.theory._validation import require_int, require_real
    from ssmpoison.verify._realworld import RealWorldConfig, tiny_config

    model = str(args.model).strip()
    if model not in ("s4d", "lru", "both"):
        raise ValueError(f"model must be s4d, lru or both, got {args.model!r}")
    values = {"models": ("s4d", "lru") if model == "both" else (model,), "untargeted": not args.no_untargeted}
    if args.seeds is not None:
        seed_items = [t.strip() for t in str(args.seeds).split(",")]
        if not all(seed_items):
            raise ValueError(f"seeds must be a comma-separated list of integers, got {args.seeds!r}")
        seeds = tuple(require_int(f"seeds[{k}]", t, minimum=0, maximum=2**31 - 1) for k, t in enumerate(seed_items))
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {args.seeds!r}")
        if len(seeds) > 100:
            raise ValueError(f"seeds: at most 100, got {len(seeds)}")
        values["seeds"] = seeds
    if args.budget is not None:
        values["budgets"] = _reals("budget", args.budget, 0, 1, open_high=True)
        if len(values["budgets"]) > 10:
            raise ValueError(f"budget: at most 10 values, got {len(values['budgets'])}")
    if args.epsilon is not None:
        epsilon = float(require_real("epsilon", args.epsilon, positive=True))
        if epsilon > 1:
            raise ValueError(f"epsilon must be in (0, 1], got {args.epsilon}")
        values["epsilon"] = epsilon
    if args.regulariser is not None:
        beta = float(require_real("regulariser", args.regulariser, positive=True))
        values["regulariser"] = beta
    if args.tiny:
        return tiny_config(**values)
    return RealWorldConfig(**values)


def _run_realworld(args, bars) -> int:
    from pathlib import Path

    from ssmpoison.verify._jsonio import check_output_dir, write_json
    from ssmpoison.verify._realworld_data import require_realworld_extra

    config = realworld_config_from_args(args)
    if args.out is not None:
        from ssmpoison.verify._realworld import FIGURES

        check_output_dir(args.out, "out", FIGURES)
    require_realworld_extra()
    from ssmpoison.verify._realworld import plot_realworld, realworld_text, run_realworld

    with bars() as progress:
        report = run_realworld(config, progress=progress)
    figures = []
    if args.out is not None and report.runs:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        figures = plot_realworld(report, args.out)
    if args.json != "-":
        print(realworld_text(report))
        if figures:
            print(f"{len(figures)} figures in {args.out}/: " + ", ".join(p.name for p in figures))
    if args.json:
        payload = report.to_json()
        payload["figures"] = [str(p) for p in figures]
        write_json(args.json, payload)
    return 0 if report.status == "done" else 1
