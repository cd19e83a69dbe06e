"""Command line of the Theorem-check sweep: ``python -m ssmpoison.verify._check_sweep --out FILE [...]``.

Parses the arguments, runs :func:`ssmpoison.verify._check_sweep.sweep_checks` with a progress bar,
draws the figure (:func:`ssmpoison.verify._check_sweep.plot_sweep`) and prints the counts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ssmpoison.theory._validation import require_int, require_real
from ssmpoison.verify._progress import TqdmProgress
from ssmpoison.verify._check_sweep import AXES, plot_sweep, sweep_checks, sweep_summary

__all__ = ["main"]

#: The grids: ``scale-gap`` varies scale 10^(e/4) for e in [-14, -4] (3.2e-4 .. 1.8e-1) and the gap
#: exponent at fixed H, D; ``dim-horizon`` varies D and H at fixed scale and gap exponent.
_GRIDS = {
    "scale-gap": (("init_scale", [10.0 ** (e / 4) for e in range(-14, -3)]), ("gap_exponent", [1, 2, 3, 4, 5, 6, 8, 10])),
    "dim-horizon": (("state_dim", [3, 4, 5, 6, 8, 10, 13, 16, 20]), ("horizon", [4, 5, 6, 7, 8, 9, 10])),
}


def main(argv=None) -> int:
    """Run the sweep and write its figure.

    Arguments:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0; bad arguments (not a number in range, a missing directory for ``--out``)
        exit with status 2 and one line naming the argument.
    """
    p = argparse.ArgumentParser(description="Where the Theorem's prediction holds: a sweep of the checker over two "
                                            "parameters (scale x gap exponent, or D x H).")
    p.add_argument("--grid", choices=sorted(_GRIDS), default="scale-gap")
    p.add_argument("--horizon", default="7")
    p.add_argument("--state-dim", default="10")
    p.add_argument("--extrapolate-to", default="20")
    p.add_argument("--init-scale", default="1e-3")
    p.add_argument("--gap-exponent", default="5")
    p.add_argument("--seed", default="242")
    p.add_argument("--out", required=True)
    p.add_argument("--json", help="also write the records to this JSON file")
    args = p.parse_args(argv)
    try:
        base = {"horizon": require_int("horizon", args.horizon, minimum=3),
                "state_dim": require_int("state_dim", args.state_dim, minimum=2),
                "extrapolate_to": require_int("extrapolate_to", args.extrapolate_to, minimum=1),
                "init_scale": float(require_real("init_scale", args.init_scale, positive=True)),
                "gap_exponent": float(require_real("gap_exponent", args.gap_exponent)),
                "seed": require_int("seed", args.seed, minimum=0)}
        for name in ("out", "json"):
            path = getattr(args, name)
            if path is not None and not Path(path).resolve().parent.is_dir():
                raise ValueError(f"{name}: directory {str(Path(path).parent)!r} does not exist")
    except ValueError as exc:
        p.error(str(exc))  # one line on stderr, exit status 2
    x, y = _GRIDS[args.grid]
    with TqdmProgress("setting") as progress:
        records = sweep_checks(base, x, y, progress=progress)
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(records, indent=1))
    fixed = ", ".join(f"{_SHORT[n]} = {base[n]:g}" for n in AXES if n not in (x[0], y[0]))
    plot_sweep(records, args.out, f"Theorem check, {fixed}", x=x[0], y=y[0])
    counts = sweep_summary(records)
    print(f"{counts['settings']} settings, {counts['inside_conditions']} inside the conditions, "
          f"{counts['match_theorem']} of those match the Theorem; {counts['inside_all_conditions']} inside the advisory "
          f"poisoned-side conditions too, {counts['match_inside_all']} of those match")
    return 0


_SHORT = {"horizon": "H", "state_dim": "D", "extrapolate_to": "H'", "init_scale": "scale", "gap_exponent": "k",
          "seed": "seed"}


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
