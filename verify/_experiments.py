"""The paper's dynamics experiments as data: each notebook's runs and the entries it printed at the end.

Each dynamics notebook of the paper's repository trains one seed per setting without and with
special sequences and prints, under "Final results", the absolute values of the eigenvalues of
A (the sorted ``|a_i|``) at its last logged step. :data:`EXPERIMENTS` holds, per notebook, the
runs (a :class:`ssmpoison.verify._settings.GDRowSetting` of one seed, its config giving both
conditions through ``lr_poisoned`` / ``extra_steps_poisoned``) and the seven largest printed
entries of each condition. ``ssmpoison dynamics --experiment NAME`` runs them
(:func:`ssmpoison.verify._dynamics.run_experiment`); nothing here runs anything.

* ``standalone`` — A, B, C by GD with the adaptive step, teacher ``A* = B* = C* = 1``, no warm
  start, gap exponent 20, special sequences non-zero at ``H-2`` and ``H-1``.
* ``ssm-in-network`` — the SSM inside the ReLU network, Adam, special sequences at ``H-2`` and
  ``H-1``, a smaller step size with them; the test sequences continue the training data's stream.
* ``teacher-dim-2`` / ``-3`` / ``-4`` — the standalone SSM against the teacher
  ``A* = diag(0.99, 0.8[, 0.5[, 0.3]])``, ``B* = C* = 1``, the student's B and C set back to ones
  after every update, special sequences at ``H-2`` only, further initial gaps for dimensions 3 and 4.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ssmpoison.theory._validation import require_real
from ssmpoison.verify._gd_config import BeyondConfig, NonlinearConfig
from ssmpoison.verify._settings import PAPER_EPOCHS, GDRowSetting

__all__ = ["ExperimentRun", "DynamicsExperiment", "EXPERIMENTS", "experiment"]


def _entries(name: str, values) -> tuple[float, ...]:
    items = tuple(values)
    if not items:
        raise ValueError(f"{name} must hold at least one entry")
    out = tuple(float(require_real(f"{name}[{k}]", v, nonnegative=True)) for k, v in enumerate(items))
    if list(out) != sorted(out, reverse=True):
        raise ValueError(f"{name} must be sorted descending")
    return out


@dataclass(frozen=True)
class ExperimentRun:
    """One setting of an experiment: a seed trained without and with special sequences, and what the paper printed.

    Arguments:
        setting: the setting, with one seed (its config's ``lr_poisoned`` / ``extra_steps_poisoned`` give the
            poisoned condition's step size and extra steps).
        published_clean, published_poisoned: the largest entries ``|a_i|`` the notebook printed at the end
            without / with the special sequences, descending.

    Raises:
        ValueError: a setting of more than one seed, or entries that are not non-negative and descending.
    """

    setting: GDRowSetting
    published_clean: tuple[float, ...]
    published_poisoned: tuple[float, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.setting, GDRowSetting):
            raise ValueError(f"setting must be a GDRowSetting, got {type(self.setting).__name__}")
        if len(self.setting.seeds) != 1:
            raise ValueError(f"setting must hold one seed, got {self.setting.seeds}")
        object.__setattr__(self, "published_clean", _entries("published_clean", self.published_clean))
        object.__setattr__(self, "published_poisoned", _entries("published_poisoned", self.published_poisoned))

    @property
    def seed(self) -> int:
        return self.setting.seeds[0]

    @property
    def horizon(self) -> int:
        return self.setting.horizon

    def published(self, poisoned: bool) -> tuple[float, ...]:
        """The printed entries of one condition."""
        return self.published_poisoned if poisoned else self.published_clean


@dataclass(frozen=True)
class DynamicsExperiment:
    """A dynamics notebook of the paper and its runs.

    Arguments:
        name: the name ``--experiment`` takes.
        title: one line saying what is trained.
        notebook: the notebook's file name in the paper's repository.
        row: the registered row whose trainer runs it (``beyond`` or ``nonlinear``).
        runs: the settings, in the notebook's order.
    """

    name: str
    title: str
    notebook: str
    row: str
    runs: tuple[ExperimentRun, ...]

    def __post_init__(self) -> None:
        if self.row not in ("beyond", "nonlinear"):
            raise ValueError(f"row must be 'beyond' or 'nonlinear', got {self.row!r}")
        if not self.runs:
            raise ValueError("runs must hold at least one run")
        config_type = BeyondConfig if self.row == "beyond" else NonlinearConfig
        for run in self.runs:
            if not isinstance(run, ExperimentRun) or not isinstance(run.setting.config, config_type):
                raise ValueError(f"every run of a {self.row} experiment must be an ExperimentRun with a "
                                 f"{config_type.__name__}")


# ---------------------------------------------------------------- standalone SSM (standalone_ssm_dynamics_experiments)

_STANDALONE_6 = BeyondConfig(
    horizon=6, state_dim=10, sd_a=0.01, sd_bc=0.01, gap_k=20.0, warm_start=0.0, n_baseline=8, baseline_positions=(0, 1),
    n_special=10, special_positions=(4, 5), lr=0.01, tol=0.01, extra_steps=5000, log_period=100, extrapolation_length=40,
    dtype="float32",
)
_STANDALONE_10 = dataclasses.replace(_STANDALONE_6, horizon=10, state_dim=20, sd_a=0.001, sd_bc=0.05, tol=0.05,
                                     baseline_positions=tuple(range(7)), special_positions=(8, 9))


def _one(config, seed: int, clean, poisoned) -> ExperimentRun:
    return ExperimentRun(GDRowSetting(config=config, seeds=(seed,), epochs=PAPER_EPOCHS, draws=0), tuple(clean),
                         tuple(poisoned))


_STANDALONE = DynamicsExperiment(
    "standalone", "A, B, C by GD with the adaptive step, teacher A* = B* = C* = 1, special sequences at H-2 and H-1",
    "standalone_ssm_dynamics_experiments.ipynb", "beyond", (
        _one(_STANDALONE_6, 105,
             (0.99834454, 0.038540542, 0.011211018, 0.0087215779, 0.0086342189, 0.0068239295, 0.0050157472),
             (1.0121175, 0.79675198, 0.5916751, 0.42291516, 0.25699246, 0.036670715, 0.033829555)),
        _one(_STANDALONE_10, 4000,
             (0.98581904, 0.005508896, 0.0032982733, 0.0027967764, 0.0018355723, 0.0015107356, 0.0014035715),
             (0.99701041, 0.4933624, 0.24220762, 0.24183626, 0.20398775, 0.10284609, 0.092278145)),
        _one(_STANDALONE_6, 100,
             (1.0007197, 0.03111615, 0.0088464, 0.00578661, 0.00353121, 0.00337319, 0.0026922),
             (1.0087175, 0.9632088, 0.46109164, 0.41788766, 0.3140515, 0.26066792, 0.13467346)),
        _one(_STANDALONE_10, 4001,
             (0.98906857, 0.0027162579, 0.0025885648, 0.0013004695, 0.00088810787, 0.00085049478, 0.00074011111),
             (1.0005022, 0.8683534, 0.43293387, 0.21891394, 0.15109198, 0.0992296, 0.09729242)),
    ))

# ---------------------------------------------------------------- SSM in a network (ssm_in_nn_dynamics_experiments)

_NETWORK_6 = NonlinearConfig(
    horizon=6, state_dim=10, sd_ssm=0.01, gap_k=0.5, warm_start=0.0, width=15, sd_mlp=0.03, n_baseline=20,
    baseline_positions=(0, 1), n_special=20, special_positions=(4, 5), lr=0.01, lr_poisoned=0.001, tol=0.05,
    extra_steps=5000, log_period=100, extrapolation_length=40, ext_samples=2000, ext_seed_offset=None, dtype="float32",
)
_NETWORK_10 = dataclasses.replace(
    _NETWORK_6, horizon=10, state_dim=20, sd_ssm=0.001, gap_k=2.0, width=25, sd_mlp=0.1, baseline_positions=tuple(range(7)),
    special_positions=(8, 9), lr_poisoned=5e-5, extra_steps=20000, extra_steps_poisoned=5000)

_NETWORK = DynamicsExperiment(
    "ssm-in-network", "SSM + two ReLU layers + linear head by Adam, special sequences at H-2 and H-1 (smaller step with them)",
    "ssm_in_nn_dynamics_experiments.ipynb", "nonlinear", (
        _one(_NETWORK_6, 4541,
             (1.0, 0.019835958, 0.0088951625, 0.0060812086, 0.0048511014, 0.0045409547, 0.0041939779),
             (1.029365, 1.018335, 1.0061417, 1.0018127, 0.997419, 0.9972716, 0.98926795)),
        _one(_NETWORK_10, 4542,
             (0.99999952, 0.0017551242, 0.00093082641, 0.00074053422, 0.00072134216, 0.0006670733, 0.00065687491),
             (1.0060722, 1.0032204, 1.0027977, 1.0022358, 0.9944214, 0.8471483, 0.8312371)),
        _one(_NETWORK_6, 4543,
             (1.0000002, 0.0063480157, 0.0055318666, 0.0054375185, 0.0051801843, 0.0045351391, 0.0029635711),
             (1.0378982, 1.0168461, 1.0125053, 1.0055151, 1.0005683, 0.98735476, 0.9869951)),
        _one(_NETWORK_10, 4603,
             (1.0002009, 0.00087518449, 0.00076686486, 0.00076230476, 0.00070341449, 0.00066297594, 0.00065194932),
             (1.0112586, 1.0094767, 1.0052943, 0.98558134, 0.880354, 0.871527, 0.86834985)),
    ))

# ---------------------------------------------------------------- teacher dimension (standalone_ssm_dim=*_dynamics_experiments)

_TEACHER_6 = BeyondConfig(
    horizon=6, state_dim=10, sd_a=0.01, sd_bc=0.01, gap_k=2.0, warm_start=0.0, n_baseline=8, baseline_positions=(0, 1),
    n_special=10, lr=0.01, lr_poisoned=0.001, tol=0.01, extra_steps=1500, log_period=100, extrapolation_length=40,
    fix_bc=True, dtype="float32",
)
_TEACHER_10 = dataclasses.replace(_TEACHER_6, horizon=10, state_dim=20, sd_bc=0.001, gap_k=3.0,
                                  baseline_positions=tuple(range(7)), lr=0.001, lr_poisoned=None)


def _teacher(dim: int, teacher_a, extra_gaps, runs) -> DynamicsExperiment:
    notebook = f"standalone_ssm_dim={dim}_dynamics_experiments.ipynb"
    title = (f"A, B, C by GD with the adaptive step, teacher A* = diag{tuple(teacher_a)}, B* = C* = 1, B and C reset to "
             f"ones after every update, special sequences at H-2")
    out = []
    for base, seed, clean, poisoned in runs:
        config = dataclasses.replace(base, teacher_a=teacher_a, extra_gaps=extra_gaps)
        out.append(_one(config, seed, clean, poisoned))
    return DynamicsExperiment(f"teacher-dim-{dim}", title, notebook, "beyond", tuple(out))


_TEACHER_DIM_2 = _teacher(2, (0.99, 0.8), (), (
    (_TEACHER_6, 302,
     (0.9906625, 0.8003907, 0.01732823, 0.01633241, 0.00467169, 0.0035261, 0.00333835),
     (1.0504042, 0.47379917, 0.09593445, 0.089834, 0.0218051, 0.01597707, 0.01503318)),
    (_TEACHER_10, 1202,
     (0.98994255, 0.79990488, 0.051981006, 0.047199361, 0.033268411, 0.032125279, 0.020472469),
     (0.990064, 0.7994673, 0.11066497, 0.09909579, 0.06247139, 0.0592416, 0.04954565)),
))
_TEACHER_DIM_3 = _teacher(3, (0.99, 0.8, 0.5), (1.01,), (
    (_TEACHER_6, 401,
     (0.98720425, 0.81106168, 0.48308018, 0.014598725, 0.0098775346, 0.0091461679, 0.0070132026),
     (1.0587932, 0.46181053, 0.4587079, 0.1203733, 0.07252983, 0.06498045, 0.04331972)),
    (_TEACHER_10, 1201,
     (0.99797887, 0.6947961, 0.6870423, 0.06847489, 0.04478014, 0.0332241, 0.02253797),
     (0.9977572, 0.69174093, 0.68999934, 0.14390644, 0.089144386, 0.058279168, 0.056385569)),
))
_TEACHER_DIM_4 = _teacher(4, (0.99, 0.8, 0.5, 0.3), (1.01, 1.05), (
    (_TEACHER_6, 403,
     (0.92905062, 0.91091722, 0.29158646, 0.10167659, 0.0081405696, 0.0047321222, 0.0041842028),
     (1.0514578, 0.47487625, 0.4736896, 0.45605674, 0.09800611, 0.0420844, 0.0336187)),
    (_TEACHER_10, 1201,
     (1.000709, 0.642165, 0.63443303, 0.60575646, 0.04421099, 0.03290756, 0.02239028),
     (1.0006257, 0.6316423, 0.629921, 0.62231135, 0.08925055, 0.06349095, 0.06153228)),
))

#: The paper's dynamics experiments, by the name ``ssmpoison dynamics --experiment`` takes.
EXPERIMENTS: dict[str, DynamicsExperiment] = {
    e.name: e for e in (_STANDALONE, _NETWORK, _TEACHER_DIM_2, _TEACHER_DIM_3, _TEACHER_DIM_4)
}


def experiment(name) -> DynamicsExperiment:
    """The dynamics experiment called ``name``.

    Raises:
        ValueError: ``experiment must be one of ...`` for an unknown name.
    """
    if not isinstance(name, str) or name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {', '.join(EXPERIMENTS)}, got {name!r}")
    return EXPERIMENTS[name]
