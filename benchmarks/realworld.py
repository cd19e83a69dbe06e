"""Benchmark: the default ``ssmpoison realworld`` run (S4D and LRU, 5 seeds, 2 budgets) against its 15-minute bound.

Runs the command line in this process with its default configuration (clean and poisoned models
for both layers over seeds 0-4: per model and seed a clean model, a clean victim, three
gradient-matching craftings and four poisoned victims per budget, and the untargeted variant) and
prints its wall-clock time, its CPU time (the process's user + system seconds: what the run costs
on an idle machine with one core, since torch runs with one thread) and both against 900 s. On a
shared machine the wall time exceeds the CPU time by the load; the CPU time is the figure to
compare across machines. With ``--framework`` it also times one epoch of a one-layer S4D
classifier on the digits in PyTorch and in JAX (if installed) and their import times, the
measurement behind the choice of PyTorch.

Usage: ``python benchmarks/realworld.py [--out DIR] [--json PATH] [--framework] [-- extra realworld options]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

#: the bound of the issue: the whole default command on the 2-core machine
BOUND_SECONDS = 900.0

_FRAMEWORK_SCRIPT = r'''
import os, sys, time, json
fw, threads = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
if fw == "torch":
    import torch
    torch.set_num_threads(threads)
else:
    import jax, jax.numpy as jnp
imported = time.perf_counter() - t0
import numpy as np
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)[:, :, None]
H, N, L, B = 32, 32, 64, 64
rng = np.random.default_rng(0)
def kernel(xp, log_dt, log_a, a_im, c):
    dt = xp.exp(log_dt); a = -xp.exp(log_a) + 1j * a_im; dta = a * dt[:, None]
    steps = xp.arange(L)
    return 2 * (((c * (xp.exp(dta) - 1) / a)[:, :, None]) * xp.exp(dta[:, :, None] * steps)).sum(1).real
init = dict(enc=rng.normal(size=(1, H)), log_dt=rng.uniform(np.log(1e-3), np.log(1e-1), H),
            log_a=np.log(0.5) * np.ones((H, N // 2)), a_im=np.pi * np.tile(np.arange(N // 2), (H, 1)),
            c=rng.normal(size=(H, N // 2)) + 1j * rng.normal(size=(H, N // 2)), d=rng.normal(size=H),
            dec=rng.normal(size=(H, 10)) / H ** 0.5)
if fw == "torch":
    p = {k: torch.tensor(v, dtype=torch.complex64 if k == "c" else torch.float32, requires_grad=True)
         for k, v in init.items()}
    opt = torch.optim.Adam(list(p.values()), 5e-3)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    def epoch():
        for i in range(0, (len(X) // B) * B, B):
            u = Xt[i:i + B] @ p["enc"]
            x = u.transpose(1, 2)
            K = kernel(torch, p["log_dt"], p["log_a"], p["a_im"], p["c"])
            z = torch.fft.irfft(torch.fft.rfft(x, 2 * L) * torch.fft.rfft(K, 2 * L), 2 * L)[..., :L] + p["d"][:, None] * x
            loss = torch.nn.functional.cross_entropy(torch.nn.functional.gelu(z)[..., -1] @ p["dec"], yt[i:i + B])
            opt.zero_grad(); loss.backward(); opt.step()
else:
    p = {k: jnp.asarray(v, jnp.complex64 if k == "c" else jnp.float32) for k, v in init.items()}
    def loss_fn(p, u, yy):
        x = (u @ p["enc"]).transpose(0, 2, 1)
        K = kernel(jnp, p["log_dt"], p["log_a"], p["a_im"], p["c"])
        z = jnp.fft.irfft(jnp.fft.rfft(x, 2 * L) * jnp.fft.rfft(K, 2 * L), 2 * L)[..., :L] + p["d"][:, None] * x
        logits = jax.nn.gelu(z)[..., -1] @ p["dec"]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(yy)), yy])
    state = [p, jax.tree.map(jnp.zeros_like, p), jax.tree.map(jnp.zeros_like, p), 0]
    @jax.jit
    def step(p, m, v, t, u, yy):
        g = jax.grad(loss_fn)(p, u, yy)
        m = jax.tree.map(lambda a, b: 0.9 * a + 0.1 * b, m, g)
        v = jax.tree.map(lambda a, b: 0.999 * a + 0.001 * (b * jnp.conj(b)).real, v, g)
        p = jax.tree.map(lambda a, mm, vv: a - 5e-3 * (mm / (1 - 0.9 ** t)) / (jnp.sqrt(vv / (1 - 0.999 ** t)) + 1e-8), p, m, v)
        return p, m, v
    def epoch():
        for i in range(0, (len(X) // B) * B, B):
            state[3] += 1
            state[0], state[1], state[2] = step(state[0], state[1], state[2], state[3], X[i:i + B], y[i:i + B])
        jax.block_until_ready(state[0])
times = []
for _ in range(3):
    w, c = time.perf_counter(), time.process_time(); epoch()
    times.append((time.perf_counter() - w, time.process_time() - c))
print(json.dumps({"framework": fw, "threads": threads, "import_s": imported, "first_epoch_s": times[0][0],
                  "epoch_s": min(t[0] for t in times[1:]), "epoch_cpu_s": min(t[1] for t in times[1:])}))
'''


def framework_choice() -> None:
    """Time one epoch of a one-layer S4D classifier in PyTorch (1 and 2 threads) and JAX (2 threads), each in a
    fresh process; print one line each."""
    import json

    for fw, threads in (("torch", 1), ("torch", 2), ("jax", 2)):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads),
                   XLA_FLAGS=f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}")
        done = subprocess.run([sys.executable, "-c", _FRAMEWORK_SCRIPT, fw, str(threads)], capture_output=True,
                              text=True, env=env)
        if done.returncode:
            print(f"{fw}: not run ({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'})")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{fw:6s} threads {threads}: import {r['import_s']:.2f} s, first epoch (incl. compilation) "
              f"{r['first_epoch_s']:.2f} s, epoch {r['epoch_s']:.2f} s wall / {r['epoch_cpu_s']:.2f} s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="figures directory")
    parser.add_argument("--json", default=None, help="JSON results path")
    parser.add_argument("--framework", action="store_true", help="also time PyTorch against JAX")
    args, extra = parser.parse_known_args()
    if args.framework:
        framework_choice()
    from ssmpoison.verify.cli import main as cli

    argv = ["realworld", *[a for a in extra if a != "--"]]
    if args.out:
        argv += ["--out", args.out]
    if args.json:
        argv += ["--json", args.json]
    wall, cpu = time.perf_counter(), time.process_time()
    status = cli(argv)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    load = os.getloadavg()[0]
    print(f"ssmpoison {' '.join(argv)}: exit {status}; wall {wall:.0f} s ({wall / BOUND_SECONDS:.2f} of the "
          f"{BOUND_SECONDS:.0f} s bound), CPU {cpu:.0f} s ({cpu / BOUND_SECONDS:.2f} of it); load average at the end "
          f"{load:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
