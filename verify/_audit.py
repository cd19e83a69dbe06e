r"""Auditing a training set for clean-label poisons: specialness, exact leave-one-out influence, defences.

The setting is the Theorem's student (note 00 §5): ``A = diag(a)`` of dimension D trained by
gradient flow from a given initialisation with ``B = C = 1`` fixed, on N sequences of length H
with their labels, and judged by the paper's extrapolation error over ``J = extrapolate_to`` lags
against a teacher (note 00 §5; :class:`ssmpoison.theory._teacher.Teacher`).

For each sequence ``u^(n)`` the audit reports

* its **specialness** (note 00 §4): the special score ``|u_{H-2}| / ||u||_2`` — the share of
  ``gamma^(0) = (2/N) sum_n delta_n u^(n)_{H-2}`` the sequence can produce per unit of its norm
  for a given residual (0 for a non-special sequence, 1 for multiples of ``e_{H-2}``) — its share
  ``|u^(n)_{H-2}| / sum_m |u^(m)_{H-2}|`` of the set's special mass, its own lowest excited lag
  ``min { H-2-k : u_k != 0, k <= H-2 }`` and the set's lowest excited lag without it;
* its **label check**: with a teacher, a label that differs from the teacher's clean label
  ``y*(u) = sum_k K*_{H-1-k} u_k`` (beyond ``label_tolerance`` relative) is *mislabelled*;
* its **leave-one-out influence**: the certified extrapolation errors ``E`` of the flow's limit on
  the whole set and ``E_{-n}`` on the set without ``u^(n)`` (N + 1 certified flows,
  :func:`ssmpoison.verify._certified_flow.certified_flows`), and the influence
  ``I_n = log10(E / E_{-n})``: removing a sequence of influence ``I_n >= 1`` lowers the error
  ten-fold or more.

A sequence is flagged ``POISON`` when its label is clean and removing it lowers the certified
error by at least ``poison_factor`` (both errors certified with at least one digit; a whole-set
flow that diverges while the set without the sequence converges counts as an infinite factor),
and ``MISLABELLED`` when its label differs from the teacher's (whatever its influence: it is not
a clean-label poison). The reasons name the factor and the specialness. Sequences are ranked by
their influence, largest first.

**Defences** (:func:`defend`), each a training set derived from the dataset and its certified
flow: (a) ``strip_special`` — every sequence's ``H-2`` entry set to zero and its label lowered
by the teacher's share ``K*_1 u_{H-2}`` of it (a clean label stays clean; a sequence that
becomes zero is dropped: it has no gradient); (b) ``drop_flagged`` — the flagged sequences
removed; (c) ``reweight`` — the weighted loss ``(1/N) sum_n w_n delta_n^2`` with
``w_n = 1 - s_n^2``, ``s_n`` the special score, i.e. the share of the sequence's squared norm
off the special position: a multiple of ``e_{H-2}`` gets weight 0, a non-special sequence
weight 1 (a non-special set is left unchanged). The weighted loss is trained by the
unchanged engine: the sequence and its label scaled by ``sqrt(w_n)`` have weight ``w_n`` in the
mean-squared loss (sequences of weight 0 are dropped).

Without a teacher there is no extrapolation error to measure: the audit reports specialness
only, runs no flow and flags nothing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ssmpoison.theory._proposition import lowest_excited_lag
from ssmpoison.theory._teacher import Teacher, impulse_extrapolation_error
from ssmpoison.theory._training_set import TrainingSet, special_score
from ssmpoison.theory._validation import require_int, require_real
from ssmpoison.verify._certification import CertificationPolicy
from ssmpoison.verify._certified_flow import CertifiedRun, certified_flows, require_reachable
from ssmpoison.verify._flow import FlowProblem
from ssmpoison.verify._status import Status

__all__ = ["AuditDataset", "SequenceAudit", "AuditReport", "DefenceResult", "audit", "defend", "dataset_from_json",
           "load_dataset", "audit_text", "sequence_lowest_lag", "DEFENCES", "certified_errors",
           "defence_sets", "audit_experiment", "AuditExperiment", "PlantedSet", "random_special_poison", "roc_auc",
           "optimised_poison_generator"]

#: the defences of :func:`defend`, in order
DEFENCES = ("strip_special", "drop_flagged", "reweight")

_DATASET_KEYS = ("inputs", "labels", "teacher", "horizon", "state_dim", "extrapolate_to", "init")


# -- the dataset ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditDataset:
    """A user's training set in the Theorem's setting: sequences, labels, the student's initialisation, J, a teacher.

    Arguments:
        training_set: the N >= 2 sequences of length H >= 3 and their labels (as given: not recomputed).
        a0: the student's initial diagonal (D entries; ``B = C = 1``).
        extrapolate_to: the number of lags J of the extrapolation error (>= 1).
        teacher: the clean-label teacher (its ``student_dim`` must be D), or ``None``.
        init: how ``a0`` was given (the file's ``init`` value), kept for the report.

    Raises:
        ValueError: naming the field.
    """

    training_set: TrainingSet
    a0: tuple
    extrapolate_to: int
    teacher: Teacher | None = None
    init: object = None

    def __post_init__(self) -> None:
        if not isinstance(self.training_set, TrainingSet):
            raise ValueError("training_set must be a TrainingSet")
        if self.training_set.samples < 2:
            raise ValueError(f"inputs must hold at least 2 sequences (leave-one-out leaves one), got {self.training_set.samples}")
        if self.training_set.horizon < 3:
            raise ValueError(f"inputs must have length (horizon) H >= 3, got {self.training_set.horizon}")
        object.__setattr__(self, "extrapolate_to", require_int("extrapolate_to", self.extrapolate_to, minimum=1))
        problem = FlowProblem(self.training_set, tuple(self.a0))  # validates a0
        object.__setattr__(self, "a0", problem.a0)
        if self.teacher is not None:
            if not isinstance(self.teacher, Teacher):
                raise ValueError("teacher must be a Teacher")
            if self.teacher.student_dim != len(self.a0):
                raise ValueError(f"teacher: its student dimension {self.teacher.student_dim} is not state_dim = {len(self.a0)}")

    @property
    def horizon(self) -> int:
        return self.training_set.horizon

    @property
    def state_dim(self) -> int:
        return len(self.a0)

    @property
    def samples(self) -> int:
        return self.training_set.samples

    def target(self) -> tuple:
        """The teacher's impulse response ``(K*_0, ..., K*_{J-1})`` (``ValueError`` without a teacher)."""
        if self.teacher is None:
            raise ValueError("teacher: the dataset has none, so no extrapolation error can be measured")
        return self.teacher.impulse_response(self.extrapolate_to)

    def to_json(self) -> dict:
        from ssmpoison.verify._clean_problem import encode_number

        return {
            "horizon": self.horizon,
            "state_dim": self.state_dim,
            "samples": self.samples,
            "extrapolate_to": self.extrapolate_to,
            "inputs": [[encode_number(v) for v in row] for row in self.training_set.inputs],
            "labels": [encode_number(v) for v in self.training_set.labels],
            "teacher": None if self.teacher is None else {"entries": [encode_number(v) for v in self.teacher.entries]},
            "init": self.init if self.init is not None else [encode_number(v) for v in self.a0],
            "a0": [encode_number(v) if not hasattr(v, "dtype") else float(v) for v in self.a0],
        }


def _number(name: str, value):
    from ssmpoison.verify._clean_problem import decode_number

    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return decode_number(name, value)


def _numbers(name: str, values) -> tuple:
    if not isinstance(values, list):
        raise ValueError(f"{name} must be a list of numbers, got {values!r}")
    return tuple(_number(f"{name}[{k}]", v) for k, v in enumerate(values))


def dataset_from_json(payload) -> AuditDataset:
    """The dataset of a JSON object (the format is README's ``audit``; every field validated).

    Keys: ``inputs`` (N lists of H numbers), ``labels`` (N numbers), ``state_dim`` (D),
    ``extrapolate_to`` (J), ``init`` (D numbers, or ``{"seed", "init_scale", "gap_exponent"}``:
    the paper's initialisation, note 00 §6), optional ``teacher`` (``{"entries": [...]}`` or the
    list of entries) and ``horizon`` (checked against the sequences' length). Numbers may be exact
    ``"p/q"`` strings.

    Arguments:
        payload: the decoded JSON object.

    Returns:
        The :class:`AuditDataset`.

    Raises:
        ValueError: one line naming the field (missing, unknown, ragged, non-finite, out of range).
    """
    if not isinstance(payload, dict):
        raise ValueError("dataset must be a JSON object")
    for key in payload:
        if key not in _DATASET_KEYS:
            raise ValueError(f"dataset: unknown key {key!r} (known: {', '.join(_DATASET_KEYS)})")
    for key in ("inputs", "labels", "state_dim", "extrapolate_to", "init"):
        if key not in payload:
            raise ValueError(f"{key}: the dataset has no {key!r} field")
    rows = payload["inputs"]
    if not isinstance(rows, list) or not rows:
        raise ValueError("inputs must be a non-empty list of sequences (lists of numbers)")
    inputs = []
    for n, row in enumerate(rows):
        seq = _numbers(f"inputs[{n}]", row)
        if inputs and len(seq) != len(inputs[0]):
            raise ValueError(f"inputs[{n}] has length {len(seq)} but inputs[0] has length {len(inputs[0])}: "
                             "all sequences must have the same length (ragged sequences)")
        inputs.append(seq)
    H = len(inputs[0])
    if H < 3:
        raise ValueError(f"inputs must have length (horizon) H >= 3, got {H}")
    if "horizon" in payload:
        given = require_int("horizon", payload["horizon"], minimum=3)
        if given != H:
            raise ValueError(f"horizon = {given} but the sequences have length {H}")
    labels = _numbers("labels", payload["labels"])
    if len(labels) != len(inputs):
        raise ValueError(f"labels must have one entry per sequence ({len(inputs)}), got {len(labels)}")
    if isinstance(payload["state_dim"], bool):
        raise ValueError(f"state_dim must be an integer, got {payload['state_dim']!r}")
    D = require_int("state_dim", payload["state_dim"], minimum=2)
    if isinstance(payload["extrapolate_to"], bool):
        raise ValueError(f"extrapolate_to must be an integer, got {payload['extrapolate_to']!r}")
    J = require_int("extrapolate_to", payload["extrapolate_to"], minimum=1)
    init = payload["init"]
    if isinstance(init, dict):
        for key in init:
            if key not in ("seed", "init_scale", "gap_exponent"):
                raise ValueError(f"init: unknown key {key!r} (known: seed, init_scale, gap_exponent)")
        for key in ("seed", "init_scale", "gap_exponent"):
            if key not in init:
                raise ValueError(f"init.{key}: the paper's initialisation needs seed, init_scale and gap_exponent")
        from ssmpoison.verify._check import paper_setting

        setting = paper_setting(H, D, J, _number("init.init_scale", init["init_scale"]),
                                _number("init.gap_exponent", init["gap_exponent"]),
                                require_int("init.seed", init["seed"], minimum=0), None)
        a0 = tuple(float(v) for v in setting.a0)
    else:
        a0 = _numbers("init", init)
        if len(a0) != D:
            raise ValueError(f"init must have state_dim = {D} entries, got {len(a0)}")
    teacher = payload.get("teacher")
    if teacher is not None:
        entries = teacher.get("entries") if isinstance(teacher, dict) else teacher
        if isinstance(teacher, dict):
            for key in teacher:
                if key != "entries":
                    raise ValueError(f"teacher: unknown key {key!r} (known: entries)")
        teacher = Teacher(_numbers("teacher.entries", entries), D)
    ts = TrainingSet(tuple(inputs), labels)
    return AuditDataset(ts, a0, J, teacher, init)


def load_dataset(path: str) -> AuditDataset:
    """Read a dataset file (JSON; :func:`dataset_from_json`).

    Arguments:
        path: the file.

    Returns:
        The :class:`AuditDataset`.

    Raises:
        ValueError: one line naming the file or the field.
    """
    from ssmpoison.verify._jsonio import read_settings_file

    return dataset_from_json(read_settings_file(path, "dataset"))


# -- per-sequence quantities ---------------------------------------------------------------------
def sequence_lowest_lag(sequence) -> int | None:
    """The lowest excited lag of one sequence, ``min { H-2-k : u_k != 0, k <= H-2 }`` (0 when special).

    Arguments:
        sequence: a sequence of length H >= 2.

    Returns:
        The lag, or ``None`` when only ``u_{H-1}`` is non-zero (the sequence feeds no ``gamma^(l)``).
    """
    return lowest_excited_lag([tuple(sequence)])


def _label_clean(label, clean, tolerance: float) -> bool:
    if isinstance(label, (int, Fraction)) and isinstance(clean, (int, Fraction)):
        return label == clean
    return abs(float(label) - float(clean)) <= tolerance * max(1.0, abs(float(clean)))


def _error_quantity(target):
    def quantity(a, b, c):
        return impulse_extrapolation_error(a, b, c, target)

    return quantity


def _certified_error(problem: FlowProblem, target: tuple, policy: CertificationPolicy) -> CertifiedRun:
    """One certified flow and the extrapolation error of its limit against ``target`` (a worker's task)."""
    (run,) = certified_flows([problem], _error_quantity(target), policy)
    return run


def certified_errors(problems, targets, policy: CertificationPolicy = CertificationPolicy(), jobs: int = 1,
                     progress=None, label: str = "audit: flows") -> list[CertifiedRun]:
    """Certified flows and the extrapolation error of each limit, in worker processes when ``jobs > 1``.

    Arguments:
        problems: the flows (:class:`~ssmpoison.verify._flow.FlowProblem`).
        targets: per problem, the target impulse response ``(K*_0, ..., K*_{J-1})``.
        policy: the certification policy (default: the fast path).
        jobs: worker processes (:func:`ssmpoison.verify._workers.worker_pool`); 1 runs here.
        progress: ``progress(label, done, total, note)`` as flows finish (or ``None``).
        label: the progress label.

    Returns:
        One :class:`~ssmpoison.verify._certified_flow.CertifiedRun` per problem, in order.
    """
    problems, targets = list(problems), list(targets)
    jobs = require_int("jobs", jobs, minimum=1)
    total = len(problems)
    out: list = [None] * total
    if progress is not None:
        progress(label, 0, total, "")
    if jobs == 1 or total <= 1:
        for k, (p, t) in enumerate(zip(problems, targets)):
            out[k] = _certified_error(p, t, policy)
            if progress is not None:
                progress(label, k + 1, total, "")
        return out
    from concurrent.futures import as_completed

    from ssmpoison.verify._workers import worker_pool

    with worker_pool(min(jobs, total)) as pool:
        futures = {pool.submit(_certified_error, p, t, policy): k for k, (p, t) in enumerate(zip(problems, targets))}
        done = 0
        for future in as_completed(futures):
            out[futures[future]] = future.result()
            done += 1
            if progress is not None:
                progress(label, done, total, "")
    return out


def _converged(run: CertifiedRun | None) -> bool:
    return run is not None and run.status == Status.CONVERGED and run.quantity.digits >= 1


def _run_json(run: CertifiedRun | None) -> dict | None:
    if run is None:
        return None
    return {
        "ext_error": run.quantity.text,
        "certified_digits": run.quantity.digits,
        "run_value": float(run.quantity.value) if run.status == Status.CONVERGED else None,
        "status": run.status,
        "method": run.method,
        "precision_bits": run.precision_bits,
        "reference_bits": run.reference_bits,
        "steps": run.steps,
        "learned_a": [float(v) for v in run.limit],
    }


def _error_text(run: CertifiedRun | None) -> str:
    if run is None:
        return "—"
    if run.status != Status.CONVERGED:
        return f"({run.status})"
    if run.quantity.digits == 0:
        return f"~{float(run.quantity.value):.2e}?"
    return run.quantity.text


@dataclass(frozen=True)
class SequenceAudit:
    """One sequence's specialness, label check, leave-one-out flow, influence and flag.

    Arguments:
        index: its position n in the dataset.
        special_score: ``|u_{H-2}| / ||u||_2``.
        special_share: ``|u_{H-2}| / sum_m |u^(m)_{H-2}|`` (0 when the set has no special sequence).
        lowest_lag: the sequence's lowest excited lag (``None``: only ``u_{H-1}`` non-zero).
        lowest_lag_without: the set's lowest excited lag without it.
        clean_label: the teacher's label (``None`` without a teacher).
        mislabelled: the given label differs from it.
        without: the certified flow on the set without the sequence (``None`` without a teacher).
        factor: ``E / E_{-n}`` (``math.inf`` when the whole set's flow diverges and this one converges;
            ``None`` when not certified).
        flag: ``"POISON"``, ``"MISLABELLED"`` or ``""``.
        reasons: why it is flagged.
    """

    index: int
    sequence: tuple
    label: object
    special_score: float
    special_share: float
    lowest_lag: int | None
    lowest_lag_without: int | None
    clean_label: object
    mislabelled: bool
    without: CertifiedRun | None
    factor: float | None
    flag: str
    reasons: tuple

    @property
    def influence(self) -> float | None:
        """``log10(E / E_{-n})`` (``inf`` for an infinite factor, ``None`` when not certified)."""
        if self.factor is None:
            return None
        if self.factor == math.inf:
            return math.inf
        return math.log10(self.factor) if self.factor > 0 else -math.inf

    @property
    def score(self) -> float:
        """The ranking score: the influence, ``-inf`` when not certified."""
        v = self.influence
        return -math.inf if v is None else v

    def to_json(self) -> dict:
        from ssmpoison.verify._clean_problem import encode_number

        def finite(x):
            return None if x is None or not math.isfinite(x) else x

        return {
            "index": self.index,
            "sequence": [encode_number(v) for v in self.sequence],
            "label": encode_number(self.label),
            "clean_label": None if self.clean_label is None else encode_number(self.clean_label),
            "mislabelled": self.mislabelled,
            "special_score": self.special_score,
            "special_share": self.special_share,
            "lowest_excited_lag": self.lowest_lag,
            "set_lowest_excited_lag_without_it": self.lowest_lag_without,
            "without_it": _run_json(self.without),
            "factor": finite(self.factor),
            "factor_infinite": self.factor == math.inf,
            "influence_log10": finite(self.influence),
            "flag": self.flag,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class DefenceResult:
    """One defence on one dataset: the derived training set and its certified flow.

    Arguments:
        name: one of :data:`DEFENCES`.
        training_set: the defended set (``None`` when nothing is left to train on).
        run: its certified flow (``None`` when there is no set, or when it is the dataset itself and
            the whole set's run stands for it).
        note: what was changed.
    """

    name: str
    training_set: TrainingSet | None
    run: CertifiedRun | None
    note: str

    def to_json(self) -> dict:
        from ssmpoison.verify._clean_problem import encode_number

        ts = self.training_set
        return {
            "defence": self.name,
            "note": self.note,
            "samples": None if ts is None else ts.samples,
            "inputs": None if ts is None else [[encode_number(v) for v in row] for row in ts.inputs],
            "labels": None if ts is None else [encode_number(v) for v in ts.labels],
            "flow": _run_json(self.run),
        }


@dataclass(frozen=True)
class AuditReport:
    """The audit of one dataset (module docstring).

    Arguments:
        dataset: the audited dataset.
        full: the certified flow on the whole set (``None`` without a teacher).
        sequences: one :class:`SequenceAudit` per sequence, in the dataset's order.
        poison_factor: the factor of the ``POISON`` flag.
        defences: the defences' results (empty unless asked for).
        seconds: wall-clock time of the audit.
    """

    dataset: AuditDataset
    full: CertifiedRun | None
    sequences: tuple
    poison_factor: float
    label_tolerance: float
    defences: tuple = ()
    seconds: float = 0.0

    @property
    def ranking(self) -> tuple:
        """Sequence indices by decreasing influence (ties and uncertified ones in the dataset's order)."""
        return tuple(s.index for s in sorted(self.sequences, key=lambda s: (-s.score, s.index)))

    @property
    def poisons(self) -> tuple:
        return tuple(s.index for s in self.sequences if s.flag == "POISON")

    @property
    def mislabelled(self) -> tuple:
        return tuple(s.index for s in self.sequences if s.flag == "MISLABELLED")

    @property
    def flagged(self) -> bool:
        """Some sequence is flagged (a clean-label poison or a mislabelled sequence)."""
        return bool(self.poisons or self.mislabelled)

    @property
    def score(self) -> float:
        """The set's audit score: the largest influence among its clean-label sequences (``-inf`` when none is certified)."""
        scores = [s.score for s in self.sequences if not s.mislabelled]
        return max(scores) if scores else -math.inf

    def to_json(self) -> dict:
        score = self.score
        return {
            "dataset": self.dataset.to_json(),
            "teacher_given": self.dataset.teacher is not None,
            "poison_factor": self.poison_factor,
            "label_tolerance": self.label_tolerance,
            "full_set": _run_json(self.full),
            "ranking": list(self.ranking),
            "sequences": [s.to_json() for s in self.sequences],
            "poisons": list(self.poisons),
            "mislabelled": list(self.mislabelled),
            "flagged": self.flagged,
            "audit_score": score if math.isfinite(score) else None,
            "defences": [d.to_json() for d in self.defences],
            "seconds": round(self.seconds, 3),
        }


def _without(ts: TrainingSet, n: int) -> TrainingSet:
    return TrainingSet(ts.inputs[:n] + ts.inputs[n + 1:], ts.labels[:n] + ts.labels[n + 1:])


def _factor(full: CertifiedRun | None, without: CertifiedRun | None) -> float | None:
    if full is None or without is None or not _converged(without):
        return None
    if full.status == Status.DIVERGED:
        return math.inf
    if not _converged(full):
        return None
    e_full, e_without = full.quantity.value, without.quantity.value
    if e_without == 0:
        return math.inf if e_full > 0 else 1.0
    return float(e_full / e_without)


def audit(dataset: AuditDataset, *, poison_factor: float = 10.0, label_tolerance: float = 1e-9,
          precision_bits: int | None = None, jobs: int = 1, defences: bool = False, max_steps: int | None = None,
          progress=None) -> AuditReport:
    """Audit a dataset: specialness, label check, leave-one-out influence (N + 1 certified flows), flags, ranking.

    Arguments:
        dataset: the :class:`AuditDataset`.
        poison_factor: a clean-label sequence whose removal lowers the certified error by this factor or more
            is flagged ``POISON`` (> 1).
        label_tolerance: relative tolerance of the label check for float labels (exact labels compare exactly; >= 0).
        precision_bits: ``None`` for the certified fast path, else the working precision in bits.
        jobs: worker processes for the flows (>= 1).
        defences: also run the defences of :func:`defend` (three more flows at most).
        max_steps: step budget of every flow (``None``: the engine's); a flow that exhausts it ends with status
            ``time_limit`` and its error is not certified.
        progress: ``progress(label, done, total, note)`` as flows finish (or ``None``).

    Returns:
        The :class:`AuditReport` (rendered by :func:`audit_text`, or as JSON by its ``to_json``).

    Raises:
        ValueError: naming the argument; or a flow the exact oracle shows cannot converge (naming the initialisation).
    """
    if not isinstance(dataset, AuditDataset):
        raise ValueError(f"dataset must be an AuditDataset, got {type(dataset).__name__}")
    factor = float(require_real("poison_factor", poison_factor, positive=True))
    if not factor > 1:
        raise ValueError(f"poison_factor must be > 1, got {factor:g}")
    tolerance = float(require_real("label_tolerance", label_tolerance, nonnegative=True))
    jobs = require_int("jobs", jobs, minimum=1)
    policy = CertificationPolicy(precision_bits=precision_bits, max_steps=max_steps)
    start = time.perf_counter()
    ts, N, H = dataset.training_set, dataset.samples, dataset.horizon
    teacher = dataset.teacher
    runs: list = [None] * (N + 1)
    if teacher is not None:
        problems = [FlowProblem(ts, dataset.a0)] + [FlowProblem(_without(ts, n), dataset.a0) for n in range(N)]
        require_reachable(problems, policy)
        target = dataset.target()
        runs = certified_errors(problems, [target] * len(problems), policy, jobs, progress)
    full = runs[0]
    special_mass = sum(abs(float(row[H - 2])) for row in ts.inputs)
    sequences = []
    for n, (row, label) in enumerate(zip(ts.inputs, ts.labels)):
        score = special_score(row)
        clean = None if teacher is None else teacher.label(row)
        mislabelled = clean is not None and not _label_clean(label, clean, tolerance)
        without = runs[n + 1]
        f = _factor(full, without)
        flag, reasons = "", []
        kind = (f"special (|u_(H-2)|/||u|| = {score:.3g})" if score > 0 else
                f"non-special (lowest excited lag {sequence_lowest_lag(row)})")
        if mislabelled:
            flag = "MISLABELLED"
            reasons.append(f"label {float(label):.6g} differs from the teacher's clean label {float(clean):.6g}")
            if f is not None and f >= factor:
                reasons.append(f"removing it lowers the error {'without bound (the flow diverges with it)' if f == math.inf else f'{f:.3g}x'}"
                               " (a wrong label, not a clean-label poison)")
        elif f is not None and f >= factor:
            flag = "POISON"
            reasons.append("removing it lowers the error " + (
                "from a diverging flow to a converged one" if f == math.inf else f"{f:.3g}x (>= {factor:g}x)"))
            reasons.append(kind + ", clean label")
        sequences.append(SequenceAudit(
            index=n, sequence=tuple(row), label=label, special_score=score,
            special_share=(abs(float(row[H - 2])) / special_mass) if special_mass > 0 else 0.0,
            lowest_lag=sequence_lowest_lag(row),
            lowest_lag_without=lowest_excited_lag(_without(ts, n).inputs),
            clean_label=clean, mislabelled=mislabelled, without=without, factor=f, flag=flag, reasons=tuple(reasons)))
    report = AuditReport(dataset, full, tuple(sequences), factor, tolerance, (), 0.0)
    defended = ()
    if defences and teacher is not None:
        defended = defend(report, precision_bits=precision_bits, jobs=jobs, max_steps=max_steps, progress=progress)
    return AuditReport(dataset, full, tuple(sequences), factor, tolerance, defended, time.perf_counter() - start)


# -- defences -------------------------------------------------------------------------------------
def defence_sets(report: AuditReport) -> list[tuple[str, TrainingSet | None, str]]:
    """The training sets of the three defences (module docstring) for an audited dataset.

    Arguments:
        report: the audit (its flags decide ``drop_flagged``).

    Returns:
        ``(name, training_set or None, note)`` per defence of :data:`DEFENCES`; the set is ``None`` when
        nothing is left to train on, and ``drop_flagged`` with nothing flagged is the dataset itself.

    Raises:
        ValueError: the dataset has no teacher (``strip_special`` needs its ``K*_1``).
    """
    ds = report.dataset
    if ds.teacher is None:
        raise ValueError("teacher: the defences need one (strip_special relabels by the teacher's K*_1)")
    ts, H = ds.training_set, ds.horizon
    k1 = ds.teacher.impulse_response(2)[1]
    out = []
    rows, labels, dropped, changed = [], [], 0, 0
    for row, label in zip(ts.inputs, ts.labels):
        special = row[H - 2]
        if special != 0:
            changed += 1
            row = row[: H - 2] + (0,) + row[H - 1:]
            label = label - k1 * special
        if all(v == 0 for v in row):
            dropped += 1
            continue
        rows.append(row)
        labels.append(label)
    note = f"{changed} sequence(s) had u_(H-2) set to 0 (label lowered by K*_1 u_(H-2)); {dropped} became zero and were dropped"
    out.append(("strip_special", TrainingSet(tuple(rows), tuple(labels)) if rows else None, note))
    flagged = set(report.poisons) | set(report.mislabelled)
    keep = [n for n in range(ts.samples) if n not in flagged]
    if not flagged:
        out.append(("drop_flagged", ts, "nothing flagged: the dataset itself"))
    else:
        kept = TrainingSet(tuple(ts.inputs[n] for n in keep), tuple(ts.labels[n] for n in keep)) if keep else None
        out.append(("drop_flagged", kept, f"dropped sequence(s) {sorted(flagged)}"))
    rows, labels, weights = [], [], []
    for row, label in zip(ts.inputs, ts.labels):
        s = special_score(row)
        w = 1.0 - s * s
        weights.append(w)
        if s == 0:
            rows.append(row)
            labels.append(label)
        elif w > 0:
            r = math.sqrt(w)
            rows.append(tuple(float(v) * r for v in row))
            labels.append(float(label) * r)
    note = "weights w_n = 1 - s_n^2: " + ", ".join(f"{w:.3g}" for w in weights)
    out.append(("reweight", TrainingSet(tuple(rows), tuple(labels)) if rows else None, note))
    return out


def defend(report: AuditReport, *, precision_bits: int | None = None, jobs: int = 1, max_steps: int | None = None,
           progress=None) -> tuple:
    """Run the three defences (module docstring) on an audited dataset: one certified flow each.

    A defended set equal to the dataset reuses the whole set's flow.

    Arguments:
        report: the :class:`AuditReport` of the dataset (with a teacher).
        precision_bits: as for :func:`audit`.
        jobs: worker processes.
        max_steps: as for :func:`audit`.
        progress: as for :func:`audit`.

    Returns:
        One :class:`DefenceResult` per defence of :data:`DEFENCES`.

    Raises:
        ValueError: the dataset has no teacher.
    """
    ds = report.dataset
    sets = defence_sets(report)
    policy = CertificationPolicy(precision_bits=precision_bits, max_steps=max_steps)
    distinct = list(dict.fromkeys(ts for _, ts, _ in sets if ts is not None and ts != ds.training_set))
    problems = [FlowProblem(ts, ds.a0) for ts in distinct]  # a set two defences share is trained once
    runs = dict(zip(distinct, certified_errors(problems, [ds.target()] * len(problems), policy, jobs, progress,
                                               label="audit: defence flows")))
    runs[ds.training_set] = report.full
    out = [DefenceResult(name, ts, None if ts is None else runs[ts], note) for name, ts, note in sets]
    return tuple(out)


# -- text -------------------------------------------------------------------------------------------
def audit_text(report: AuditReport) -> str:
    """The printed audit: the setting, the whole set's error, the ranked table, the flags, the defences."""
    ds = report.dataset
    lines = [f"Audit: N = {ds.samples} sequences of length H = {ds.horizon}, D = {ds.state_dim}, "
             f"extrapolation error over J = {ds.extrapolate_to} lags, "
             + ("no teacher" if ds.teacher is None else f"teacher entries {[str(v) for v in ds.teacher.entries]}")]
    if ds.teacher is None:
        lines.append("no teacher given: no extrapolation error can be measured; specialness only, nothing flagged")
    else:
        lines.append(f"whole set: extrapolation error {_error_text(report.full)}"
                     + ("" if report.full is None else f" ({report.full.quantity.digits} certified digits)"))
    lines += ["", f"{'rank':>4} {'n':>3} {'special':>8} {'lag':>4} {'E without it':>16} {'E/E_-n':>10}  flag"]
    by_index = {s.index: s for s in report.sequences}
    for rank, n in enumerate(report.ranking, start=1):
        s = by_index[n]
        lag = "-" if s.lowest_lag is None else str(s.lowest_lag)
        f = "—" if s.factor is None else ("inf" if s.factor == math.inf else f"{s.factor:.3g}")
        lines.append(f"{rank:>4} {n:>3} {s.special_score:>8.3f} {lag:>4} {_error_text(s.without):>16} {f:>10}  {s.flag}")
    flagged = [s for s in report.sequences if s.flag]
    if flagged:
        lines.append("")
        for s in flagged:
            lines.append(f"sequence {s.index}: {s.flag} — " + "; ".join(s.reasons))
    else:
        lines += ["", f"no sequence flagged (no clean-label sequence whose removal lowers the error >= {report.poison_factor:g}x, "
                  "no label differing from the teacher's)" if ds.teacher is not None else ""]
    if report.defences:
        lines += ["", "defences:"]
        for d in report.defences:
            lines.append(f"  {d.name:<14} error {_error_text(d.run):>16}   {d.note}")
    lines.append(f"\naudit {report.seconds:.1f} s")
    return "\n".join(lines)


# -- the experiment: planted poisons --------------------------------------------------------------
def random_special_poison(rng, horizon: int, norm) -> tuple:
    """The default ``poison_generator``: a random special sequence of Euclidean norm about ``norm``.

    Entries ``N(0, 1)`` rounded to multiples of 1/16, ``u_{H-2}`` kept non-zero, the whole scaled by a
    power of two close to ``norm / ||u||`` (so that every entry stays a dyadic rational and the
    teacher's labels are exact in float64).

    Arguments:
        rng: a :class:`numpy.random.Generator`.
        horizon: the length H.
        norm: the target norm (> 0).

    Returns:
        A tuple of ``H`` Fractions with ``u_{H-2} != 0``.
    """
    while True:
        u = [Fraction(round(16 * float(x)), 16) for x in rng.normal(size=horizon)]
        if u[horizon - 2] != 0:
            break
    current = math.sqrt(sum(float(v) ** 2 for v in u))
    shift = round(math.log2(float(norm) / current))
    scale = Fraction(2) ** shift
    return tuple(v * scale for v in u)


def optimised_poison_generator(*, restarts: int = 0, max_iterations: int = 6, max_steps: int = 5_000,
                               evaluation_time: float | None = 60.0):
    """A ``poison_generator`` that plants the optimiser's poison: the most damaging ``u`` with ``||u||_2 <= rho``.

    The generator is called with the set it poisons (``setting=``, a
    :class:`~ssmpoison.verify._poisons.PoisonSetting` of the base set, its teacher and ``a0``) and runs
    :func:`ssmpoison.verify._poison_opt.optimise_poison` there (float64 search, no certification:
    the audit certifies), from ``rho e_{H-2}`` and ``restarts`` random starts; the entries are
    rounded to multiples of ``2^-24 rho`` (dyadic when ``rho`` is), so the planted sequence and its
    teacher label are exact rationals.

    Arguments:
        restarts, max_iterations, max_steps, evaluation_time: as in
            :func:`~ssmpoison.verify._poison_opt.optimise_poison`.

    Returns:
        ``f(rng, horizon, norm, *, setting) -> sequence`` with ``f.needs_setting = True``.
    """
    restarts = require_int("restarts", restarts, minimum=0)
    max_iterations = require_int("max_iterations", max_iterations, minimum=1)

    def optimised_poison(rng, horizon: int, norm, *, setting) -> tuple:
        from ssmpoison.verify._poison_opt import optimise_poison

        seed = int(rng.integers(0, 2**31))
        result = optimise_poison(setting, float(norm), "2", restarts=restarts, seed=seed, max_iterations=max_iterations,
                                 certify=False, max_steps=max_steps, evaluation_time=evaluation_time)
        unit = Fraction(norm) / 2**24
        u = [round(Fraction(v) / unit) * unit for v in result.u]
        if sum(v * v for v in u) > Fraction(norm) ** 2:  # rounding may leave the ball by a hair: shrink one notch
            u = [(v // unit) * unit if v > 0 else -((-v) // unit) * unit for v in u]
        return tuple(u)

    optimised_poison.needs_setting = True
    return optimised_poison


def _dyadic_norm(rng, low: float, high: float) -> Fraction:
    """A log-uniform norm in ``[low, high]``, rounded to a multiple of 1/64 (at least 1/64)."""
    value = math.exp(rng.uniform(math.log(low), math.log(high)))
    return max(Fraction(round(64 * value), 64), Fraction(1, 64))


def _base_set(rng, horizon: int, state_dim: int, samples: int, teacher_dim: int):
    """A random non-special clean set in the manner of the search's strategies (``l* >= 2``), float64-screened.

    Teacher entries from the search's grid (positive: the initialisation is positive and entries never change
    sign across zero), inputs integers in ``[-3, 3]`` at positions ``<= H-2-l*`` and ``H-1``, the inputs' rank on
    positions ``0..H-2`` equal to ``samples`` (each sequence adds an equation), ``a0_i = (k_i / 64) 2^-10``
    with distinct ``k_i``. Redrawn until its float64 flow converges and extrapolates (error <= 0.1).
    """
    from ssmpoison.theory._proposition import lag_rank
    from ssmpoison.verify._flow import FlowOptions, run_flow
    from ssmpoison.verify._strategies import TEACHER_GRID

    grid = sorted({v for v in TEACHER_GRID if v > 0})
    H = horizon
    while True:
        entries = tuple(grid[k] for k in rng.choice(len(grid), teacher_dim, replace=False))
        teacher = Teacher(entries, state_dim)
        lag = int(rng.integers(2, H - 1))  # l* in [2, H-2]
        allowed = list(range(H - 1 - lag)) + [H - 1]
        rows = []
        for n in range(samples):
            u = [0] * H
            for p in allowed:
                if rng.random() < 0.5:
                    u[p] = int(rng.choice([-3, -2, -1, 1, 2, 3]))
            if n == 0:
                u[H - 2 - lag] = int(rng.choice([1, 2, 3]))
            if not any(u[: H - 2]):
                u[0] = 1
            rows.append(tuple(u))
        if len(set(rows)) < samples or lag_rank(rows) < samples:
            continue
        levels = sorted(rng.choice(np.arange(1, 65), state_dim, replace=False), reverse=True)
        a0 = tuple(Fraction(int(k), 64) / 2**10 for k in levels)
        ts = teacher.training_set(rows)
        run = run_flow(FlowProblem(ts, a0), FlowOptions(max_steps=400))
        if run.status != Status.CONVERGED:
            continue
        error = impulse_extrapolation_error(list(run.a), [1] * state_dim, [1] * state_dim,
                                            teacher.impulse_response(2 * H))
        if error <= 0.1:
            return teacher, ts, a0


@dataclass(frozen=True)
class PlantedSet:
    """One generated set of the experiment: its audit, the planted poison's index (``None``: unpoisoned), its kind."""

    kind: str  # "e_H-2", "generated" or "none"
    poison_norm: object
    planted: int | None
    base_error: CertifiedRun | None
    report: AuditReport

    @property
    def damage(self) -> float | None:
        """``E(set) / E(set without the planted poison)`` (the planted sequence's leave-one-out factor)."""
        return None if self.planted is None else self.report.sequences[self.planted].factor

    @property
    def ranked_first(self) -> bool | None:
        return None if self.planted is None else self.report.ranking[0] == self.planted

    def to_json(self) -> dict:
        d = self.damage
        return {"kind": self.kind, "poison_norm": None if self.poison_norm is None else float(self.poison_norm),
                "planted": self.planted, "damage": None if d is None or not math.isfinite(d) else d,
                "ranked_first": self.ranked_first, "audit": self.report.to_json()}


def roc_auc(positives, negatives) -> float:
    """The area under the ROC curve of a score: ``P(score(positive) > score(negative))``, ties counting one half.

    Arguments:
        positives, negatives: the scores of each class (non-empty).

    Returns:
        The AUC in ``[0, 1]``.
    """
    positives, negatives = list(positives), list(negatives)
    if not positives or not negatives:
        raise ValueError("positives and negatives must both be non-empty")
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in positives for q in negatives)
    return wins / (len(positives) * len(negatives))


@dataclass(frozen=True)
class AuditExperiment:
    """The planted-poison experiment (:func:`audit_experiment`): every set, the summary figures, the mislabelled example."""

    settings: dict
    sets: tuple
    mislabelled_example: AuditReport | None
    seconds: float

    def summary(self) -> dict:
        poisoned = [s for s in self.sets if s.planted is not None]
        clean = [s for s in self.sets if s.planted is None]
        damaging = [s for s in poisoned if s.damage is not None and s.damage >= 10]
        set_auc = roc_auc([s.report.score for s in poisoned], [s.report.score for s in clean]) if poisoned and clean else None
        pos = [s.report.sequences[s.planted].score for s in poisoned]
        neg = [q.score for s in self.sets for q in s.report.sequences if q.index != s.planted]
        seq_auc = roc_auc(pos, neg) if pos and neg else None
        flagged_clean = sum(1 for s in clean if s.report.poisons)
        defences = {}
        for name in DEFENCES:
            rows = {}
            for label, group in (("poisoned", poisoned), ("damaging", damaging), ("unpoisoned", clean)):
                ratios = []
                for s in group:
                    d = next(x for x in s.report.defences if x.name == name)
                    if _converged(d.run) and _converged(s.base_error) and s.base_error.quantity.value > 0:
                        ratios.append(float(d.run.quantity.value / s.base_error.quantity.value))
                ratios.sort()
                rows[label] = {
                    "sets": len(group), "measured": len(ratios),
                    "median_ratio_to_clean": ratios[len(ratios) // 2] if ratios else None,
                    "max_ratio_to_clean": ratios[-1] if ratios else None,
                    "within_2x_of_clean": sum(1 for r in ratios if r <= 2),
                }
            defences[name] = rows
        return {
            "poisoned_sets": len(poisoned), "unpoisoned_sets": len(clean),
            "damaging_sets": len(damaging),
            "damaging_ranked_first": sum(1 for s in damaging if s.ranked_first),
            "poisoned_ranked_first": sum(1 for s in poisoned if s.ranked_first),
            "poisoned_flagged": sum(1 for s in poisoned if s.planted in s.report.poisons),
            "unpoisoned_with_a_flag": flagged_clean,
            "set_auc": set_auc, "sequence_auc": seq_auc,
            "defences": defences,
            "mislabelled_example": None if self.mislabelled_example is None else {
                "poisons": list(self.mislabelled_example.poisons),
                "mislabelled": list(self.mislabelled_example.mislabelled)},
        }

    def to_json(self) -> dict:
        return {"settings": self.settings, "summary": self.summary(), "sets": [s.to_json() for s in self.sets],
                "mislabelled_example": None if self.mislabelled_example is None else self.mislabelled_example.to_json(),
                "seconds": round(self.seconds, 1)}

    def text(self) -> str:
        s = self.summary()
        lines = [f"planted-poison audit: {self.settings}",
                 f"poisoned sets {s['poisoned_sets']}, unpoisoned {s['unpoisoned_sets']}; damage >= 10x in "
                 f"{s['damaging_sets']}, of which the planted poison ranks first in {s['damaging_ranked_first']}",
                 f"planted poison ranked first in {s['poisoned_ranked_first']} of {s['poisoned_sets']} poisoned sets, "
                 f"flagged in {s['poisoned_flagged']}; unpoisoned sets with a flag: {s['unpoisoned_with_a_flag']}",
                 f"ROC AUC of the set score (largest clean-label influence): {s['set_auc']}; of the sequence score "
                 f"(planted poison vs every other sequence): {s['sequence_auc']}", "", "per set:"]
        for k, p in enumerate(self.sets):
            d = p.damage
            lines.append(f"  {k:>2} {p.kind:<9} norm {'-' if p.poison_norm is None else f'{float(p.poison_norm):.3g}':>6} "
                         f"E {_error_text(p.report.full):>18} damage {'-' if d is None else f'{d:.3g}':>8} "
                         f"ranking {list(p.report.ranking)} flags {[q.flag or '.' for q in p.report.sequences]}")
        lines += ["", "defences (error / error of the set without the planted poison; unpoisoned: the set's own):"]
        for name, rows in s["defences"].items():
            cells = []
            for label, r in rows.items():
                med = r["median_ratio_to_clean"]
                cells.append(f"{label}: median {'-' if med is None else f'{med:.3g}'}, "
                             f"max {'-' if r['max_ratio_to_clean'] is None else format(r['max_ratio_to_clean'], '.3g')}, "
                             f"within 2x {r['within_2x_of_clean']}/{r['measured']}")
            lines.append(f"  {name:<14} " + "; ".join(cells))
        if self.mislabelled_example is not None:
            m = self.mislabelled_example
            lines += ["", f"mislabelled example: POISON {list(m.poisons)}, MISLABELLED {list(m.mislabelled)}"]
        lines.append(f"\n{self.seconds:.0f} s")
        return "\n".join(lines)


def audit_experiment(poisoned: int = 20, unpoisoned: int = 20, *, horizon: int = 6, state_dim: int = 6,
                     samples: int = 2, teacher_dim: int = 2, seed: int = 0, poison_generator=None,
                     norms=(0.25, 4.0), precision_bits: int | None = None, jobs: int = 1,
                     max_steps: int | None = None, progress=None) -> AuditExperiment:
    """Audit generated sets with one planted poison each and sets with none; defences on every set.

    Base sets: :func:`_base_set` (non-special, ``l* >= 2``, clean labels, extrapolating in float64).
    Half of the poisoned sets get ``rho e_{H-2}``, the other half ``poison_generator(rng, H, rho)``
    (default :func:`random_special_poison`), ``rho`` log-uniform in ``norms``; every poison carries the
    teacher's clean label. Every set is audited with its defences; the set without the planted poison
    (its leave-one-out flow) is the clean reference of the defence table. One more set, the first
    poisoned one with its first base sequence's label raised by 1, shows a mislabelled sequence told
    apart from the clean-label poison.

    Arguments:
        poisoned, unpoisoned: how many sets of each kind (>= 0).
        horizon, state_dim, samples, teacher_dim: H, D, the base sets' N and the teacher's D* (``samples <= teacher_dim``
            keeps the base flows converging: N equations, D* escaped entries).
        seed: the generator's seed.
        poison_generator: ``f(rng, horizon, norm) -> sequence``, or ``None`` for :func:`random_special_poison`;
            a generator with ``needs_setting = True`` (:func:`optimised_poison_generator`) is also
            given ``setting=`` the :class:`~ssmpoison.verify._poisons.PoisonSetting` of the base set.
        norms: the range of the poisons' norms.
        precision_bits: as for :func:`audit`.
        jobs: worker processes.
        max_steps: as for :func:`audit`.
        progress: as for :func:`audit`.

    Returns:
        The :class:`AuditExperiment`.
    """
    import numpy as np

    start = time.perf_counter()
    generator = random_special_poison if poison_generator is None else poison_generator
    rng = np.random.default_rng(require_int("seed", seed, minimum=0))
    J = 2 * horizon
    plans = []
    for k in range(poisoned + unpoisoned):
        teacher, ts, a0 = _base_set(rng, horizon, state_dim, samples, teacher_dim)
        if k < poisoned:
            kind = "e_H-2" if k % 2 == 0 else "generated"
            rho = _dyadic_norm(rng, *norms)
            if kind == "e_H-2":
                u = tuple(rho if p == horizon - 2 else 0 for p in range(horizon))
            elif getattr(generator, "needs_setting", False):
                from ssmpoison.verify._poisons import PoisonSetting

                u = tuple(generator(rng, horizon, rho, setting=PoisonSetting(ts, a0, teacher, J)))
            else:
                u = tuple(generator(rng, horizon, rho))
            at = int(rng.integers(0, ts.samples + 1))
            rows = list(ts.inputs)
            rows.insert(at, u)
            plans.append((kind, rho, at, AuditDataset(teacher.training_set(rows), a0, J, teacher)))
        else:
            plans.append(("none", None, None, AuditDataset(ts, a0, J, teacher)))
    sets = []
    for k, (kind, rho, at, ds) in enumerate(plans):
        report = audit(ds, precision_bits=precision_bits, jobs=jobs, defences=True, max_steps=max_steps, progress=progress)
        base = report.full if at is None else report.sequences[at].without
        sets.append(PlantedSet(kind, rho, at, base, report))
    example = None
    if poisoned:
        kind, rho, at, ds = plans[0]
        victim = 0 if at != 0 else 1
        labels = list(ds.training_set.labels)
        labels[victim] = labels[victim] + 1
        wrong = AuditDataset(TrainingSet(ds.training_set.inputs, tuple(labels)), ds.a0, ds.extrapolate_to, ds.teacher)
        example = audit(wrong, precision_bits=precision_bits, jobs=jobs, max_steps=max_steps, progress=progress)
    settings = {"horizon": horizon, "state_dim": state_dim, "samples": samples, "teacher_dim": teacher_dim,
                "extrapolate_to": J, "seed": seed, "norms": list(norms), "poisoned": poisoned, "unpoisoned": unpoisoned,
                "poison_generator": getattr(generator, "__name__", repr(generator)), "max_steps": max_steps}
    return AuditExperiment(settings, tuple(sets), example, time.perf_counter() - start)
