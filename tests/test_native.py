"""The native step loop (verify/_native.py, verify/_native_expcoll.cpp) against the reference formulas and path.

Its kernels (the forcing, the frozen stiff part, the weights, the loss) are held to the reference
formulas on the theory row's states and random stages; its whole flows to the reference path's, near
rounding and to the certified digits (tests/test_compiled.py runs its certified comparisons for the
native loop and for heyoka's kernels); its stopping rules to those of :func:`run_flows`.
"""

from __future__ import annotations

import numpy as np
import pytest
import gmpy2

from ssmpoison.theory._construction import poisoned_training_set
from ssmpoison.verify import _native
from ssmpoison.verify import _kernels as kernels
from ssmpoison.verify._anchored import anchor_index, anchored_linear_part, from_anchored, neg_grad_anchored, to_anchored
from ssmpoison.verify._budget import wall_clock_budget
from ssmpoison.verify._expcoll import _frozen_weights
from ssmpoison.verify._flow import FlowOptions, FlowProblem, run_flow
from ssmpoison.verify._status import Status

if not _native.native_available(53):
    pytest.skip("no C++ compiler: the native step loop is not built", allow_module_level=True)


@pytest.mark.parametrize("precision_bits", [53, 64])
def test_forcing_matches_reference_formula(precision_bits, row_state):
    _, U, y, r, z = row_state(precision_bits)
    rng = np.random.default_rng(1)
    two_over_n = U.dtype.type(2) / U.dtype.type(U.shape[0])
    mu, P, Q = anchored_linear_part(z, r, 1, U, two_over_n, precision_bits=precision_bits)
    eps = np.finfo(z.dtype).eps
    for _ in range(5):
        stage = z * (1 + 1e-3 * rng.standard_normal(z.shape)).astype(z.dtype)
        G, VG = _native.forcing(stage[0], z[0], mu[0], P[0], Q[0], int(r[0]), 1, U, y, precision_bits)
        F = neg_grad_anchored(stage, r, 1, U, y)[0]
        G_ref = F + (mu[0][:, None] * (Q[0] * (stage[0] - z[0])).sum(axis=-1)[:, None] * P[0]).sum(axis=0)
        assert np.abs(G - G_ref).max() <= 64 * eps * np.abs(G_ref).max()
        assert np.abs(VG - Q[0] @ G_ref).max() <= 64 * eps * np.abs(Q[0] @ G_ref).max()


@pytest.mark.parametrize("precision_bits", [53, 64])
def test_linear_part_is_the_reference_stiff_part(precision_bits, row_state):
    _, U, y, r, z = row_state(precision_bits)
    two_over_n = U.dtype.type(2) / U.dtype.type(U.shape[0])
    mu, P, Q = _native.linear_part(z[0], int(r[0]), 1, U, y, precision_bits)
    mu_r, P_r, Q_r = (v[0] for v in anchored_linear_part(z, r, 1, U, two_over_n, precision_bits=precision_bits))
    eps = np.finfo(z.dtype).eps
    assert np.abs(mu - mu_r).max() <= 64 * eps * np.abs(mu_r).max()  # ascending, as numpy.linalg.eigh
    # L = -sum_r mu_r p_r q_r^T does not depend on the eigenvectors' signs
    L, L_r = np.einsum("r,rd,re->de", mu, P, Q), np.einsum("r,rd,re->de", mu_r, P_r, Q_r)
    assert np.abs(L - L_r).max() <= 1e-12 * np.abs(L_r).max()
    assert np.abs(Q @ P.T - np.eye(P.shape[0])).max() <= 64 * eps  # bi-orthonormal


def test_jacobi_eigenvectors_of_a_larger_gram_matrix():
    """Five samples: the Gram matrix is 5 x 5, so the Jacobi rotations (not one 2 x 2 rotation) give the basis."""
    rng = np.random.default_rng(4)
    H, D = 6, 7
    U = rng.standard_normal((5, H))
    y = rng.standard_normal(5)
    a0 = np.sort(rng.uniform(0.1, 0.9, D))[::-1].copy()[None]
    r = anchor_index(a0)
    z = to_anchored(a0, r)
    mu, P, Q = _native.linear_part(z[0], int(r[0]), 1.0, U, y, 53)
    mu_r, P_r, Q_r = (v[0] for v in anchored_linear_part(z, r, 1.0, U, 2.0 / 5, precision_bits=53))
    assert np.allclose(mu, mu_r, rtol=1e-12, atol=1e-14 * mu_r.max())
    L, L_r = np.einsum("r,rd,re->de", mu, P, Q), np.einsum("r,rd,re->de", mu_r, P_r, Q_r)
    assert np.abs(L - L_r).max() <= 1e-11 * np.abs(L_r).max()
    assert np.abs(Q @ P.T - np.eye(5)).max() <= 1e-12


@pytest.mark.parametrize("M", [3, 7, 8])
def test_weights_match_guarded_weights(M):
    rates = np.array([0.0, 1e-30, 1e-8, 0.3, 1.0, M - 1e-9, float(M), M + 1e-9, 20.0, 1e3, 1e9], dtype=np.longdouble)
    W = _native.weights(M, rates)
    with gmpy2.context(precision=64):
        W_ref = _frozen_weights(M, 64, np.longdouble(1), rates[None], np.dtype(np.longdouble))[0]
    rows = np.abs(W_ref).max(axis=-1, keepdims=True)
    # the longdouble recurrences lose at most the monomial basis's cancellation (under 2^17 for M <= 8)
    assert np.all(np.abs(W - W_ref) <= 2.0**-45 * rows)


@pytest.mark.parametrize("precision_bits", [53, 64])
def test_loss_matches_reference(precision_bits, row_state):
    problem, U, y, r, z = row_state(precision_bits)
    ones = np.ones(z.shape[-1], dtype=z.dtype)
    for scale in (1.0, 0.5, 1e-3):
        state = z * z.dtype.type(scale)
        want = kernels.loss(from_anchored(state, r), ones, ones, U, y)[0]
        got = _native.loss(state[0], int(r[0]), 1, U, y, precision_bits)
        assert abs(got - want) <= 64 * np.finfo(z.dtype).eps * want


@pytest.mark.parametrize("index", [0, 1])
def test_native_and_reference_flows_agree_near_rounding(index, row_state):
    problem = row_state(53, index)[0]
    for bits in (53, 64):
        n = run_flow(problem, FlowOptions(precision_bits=bits))
        r = run_flow(problem, FlowOptions(precision_bits=bits, compiled=False))
        assert n.status == r.status == Status.CONVERGED
        a_n, a_r = np.asarray(n.a, dtype=np.longdouble), np.asarray(r.a, dtype=np.longdouble)
        # float64: rounding decides (a few units in the last place, as heyoka's kernels); longdouble: the
        # default rtol (1e-17, ~100 units) does, and the two step sequences differ at its level
        bound = 64 * np.finfo(np.float64).eps if bits == 53 else 32 * FlowOptions(precision_bits=64).effective_rtol
        assert np.abs(a_n - a_r).max() <= bound * np.abs(a_r).max()
        assert abs(n.steps - r.steps) <= 0.1 * r.steps
        assert n.loss <= FlowOptions(precision_bits=bits).effective_loss_tol


def test_native_stopping_rules_are_the_flows(row_state):
    problem = row_state(53)[0]
    for options in (FlowOptions(t_max=500.0), FlowOptions(max_steps=20), FlowOptions(blowup=0.9)):
        n = run_flow(problem, options)
        r = run_flow(problem, FlowOptions(**{**options.__dict__, "compiled": False}))
        assert n.status == r.status and n.t_converged is None
        if options.t_max == 500.0:  # the last step is cut to end on t_max
            assert n.status == Status.TIME_LIMIT and n.t == r.t == 500.0
        elif options.max_steps == 20:  # the budget counts the attempts, rejected ones included
            assert n.status == Status.TIME_LIMIT and n.steps + n.rejected == r.steps + r.rejected == 20
        else:  # the largest entry (0.98 at the end) passes 0.9 on the way
            assert n.status == Status.DIVERGED and n.t_diverged == n.t and abs(n.t / r.t - 1) < 0.5
    with wall_clock_budget(1e-9):
        late = run_flow(problem)
    assert late.status == Status.TIME_LIMIT and late.steps <= 1


def test_without_a_compiler_the_flows_take_the_other_paths(monkeypatch, tmp_path, row_state):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("SSMPOISON_CACHE_DIR", str(tmp_path))
    _native._library.cache_clear()
    try:
        assert not _native.native_available(53)
        problem = row_state(53)[0]
        assert run_flow(problem).status == Status.CONVERGED  # heyoka's kernels or the reference path
    finally:
        _native._library.cache_clear()
    monkeypatch.setenv("SSMPOISON_ENGINE", "heyoka")
    assert not _native.native_available(53)
    assert not _native.native_available(113)


def test_code_fingerprint_covers_the_compiled_source(monkeypatch, tmp_path):
    """A saved result's fingerprint changes with the C++ source (a sweep must not skip points computed by other code)."""
    from ssmpoison.verify._code_fingerprint import code_fingerprint

    prints = []
    for text in ("// one", "// two"):
        source = tmp_path / f"{len(prints)}.cpp"
        source.write_text(text)
        monkeypatch.setattr(_native, "_FINGERPRINT_FILES", (str(source),))
        code_fingerprint.cache_clear()
        prints.append(code_fingerprint("ssmpoison.verify._flow"))
    code_fingerprint.cache_clear()
    assert prints[0] != prints[1]


def test_multiprecision_loop_only_where_asked():
    assert _native.native_available(128, multiprecision=True, state_dim=20)
    assert not _native.native_available(128)  # FlowOptions' default: the reference path at gmpy2 precisions
    assert not _native.native_available(128, multiprecision=True, state_dim=65)  # the dual numbers' bound
    assert _native.native_available(1000, multiprecision=True)  # no cap: its memory does not grow with the work


@pytest.mark.parametrize("bits", [113, 200])
def test_multiprecision_flow_agrees_with_reference_path(bits):
    """A small poisoned flow at 113 and 200 bits (above the heyoka engine's cap): the native MPFR loop against
    the reference (gmpy2) path, to the tolerance (its entries well apart, so the flow does not amplify it)."""
    ts = poisoned_training_set(5)
    problem = FlowProblem(ts, (0.5, 0.3, 0.2, 0.1))
    n = run_flow(problem, FlowOptions(precision_bits=bits, compiled_multiprecision=True))
    r = run_flow(problem, FlowOptions(precision_bits=bits, compiled=False))
    assert n.status == r.status == Status.CONVERGED
    assert all(v.precision == bits for v in n.a) and n.t_converged.precision == bits
    rtol = FlowOptions(precision_bits=bits).effective_rtol
    scale = max(abs(v) for v in r.a)
    assert max(abs(a - b) for a, b in zip(n.a, r.a)) <= 10 * rtol * scale
    assert abs(n.steps - r.steps) <= 0.2 * r.steps


def test_flows_in_several_threads_give_the_single_threads_results(row_state):
    """Native loops called from several threads at once (they run one after the other): the same results."""
    from concurrent.futures import ThreadPoolExecutor

    ts = poisoned_training_set(5)
    jobs = [(row_state(53)[0], FlowOptions()), (FlowProblem(ts, (0.5, 0.3, 0.2, 0.1)), FlowOptions(precision_bits=113,
                                                                                                  compiled_multiprecision=True))]
    alone = [run_flow(p, o) for p, o in jobs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda job: run_flow(*job), jobs * 2))
    for a, b in zip(alone * 2, together):
        assert a.status == b.status and a.steps == b.steps and list(a.a) == list(b.a)


def test_a_damaged_cached_library_is_built_again(tmp_path):
    """A cached library that does not load is built again (each step in a fresh process: a process that has
    loaded a library's path gets that library back from the dynamic loader, whatever the file now holds)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SSMPOISON_CACHE_DIR": str(tmp_path)}
    probe = ("from ssmpoison.verify import _native; "
             "print(_native.native_available(53), _native.native_available(113, multiprecision=True))")
    first = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    libraries = list(tmp_path.glob("native-*.so"))
    assert first.stdout.split() == ["True", "True"] and libraries
    for path in libraries:
        path.write_bytes(b"not a library")
    again = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert again.stdout.split() == ["True", "True"]
    assert all(path.read_bytes()[:4] == b"\x7fELF" for path in libraries)  # rebuilt in place
