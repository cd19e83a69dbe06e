"""The theory row's orchestration: worker processes do not change a single digit."""

from ssmpoison.verify import published_setting
from ssmpoison.verify import run_theory_row


def test_workers_give_the_same_runs_as_one_process():
    """H = 7: the poisoned flows in two forked workers, the clean ones here; every run equal to
    the one-process result (values, certified digits, order), and progress counts every run."""
    counted = []
    h7 = (published_setting("theory", 7),)
    serial = run_theory_row(h7, parallel=1)
    forked = run_theory_row(h7, parallel=2, progress=counted.append)
    assert sum(counted) == len(serial) == 8
    key = [(r.horizon, r.seed, r.poisoned) for r in serial]
    assert key == [(r.horizon, r.seed, r.poisoned) for r in forked]
    for a, b in zip(serial, forked):
        assert (a.run.quantity.text, a.run.quantity.digits, a.run.status) == (b.run.quantity.text, b.run.quantity.digits, b.run.status)
    assert all(r.run.quantity.digits >= 10 for r in serial)
