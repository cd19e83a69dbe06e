"""Numerics, engines, experiments and the command line (``ssmpoison.verify``).

Data flows one way: reference kernels → integrators → gradient flows and GD trainers →
certification → experiments (rows of Table 1, the checker, dynamics, the search), which
*return values* → rendering (text, JSON, figures) → the ``ssmpoison`` command line
(:mod:`ssmpoison.verify.cli`). ``ARCHITECTURE.md`` at the repository root says where each
piece lives. Public names (everything else lives in private modules):

* reference formulas — :mod:`kernels` (``K_j``, outputs, residuals, ``L_H``, ``-grad L_H``,
  γ coefficients, Jacobians; every fused copy is held to these by a test);
* statuses — :class:`Status`, the one enumeration of how a run ended;
* integrators — :class:`Integrator` (protocol), :class:`IntegrationResult`, :class:`ExpColl`
  (exponential collocation, A-only flows), :class:`Seulex` (extrapolated linearly implicit
  Euler, A, B, C flows);
* gradient flows — :class:`FlowProblem`, :class:`FlowOptions`, :class:`FlowResult`,
  :func:`run_flow`, :func:`run_flows`, :func:`default_integrator`, :func:`linearly_dependent`;
* certification — :class:`CertificationPolicy`, :data:`FAST_PATH`, :data:`SEARCH_CERTIFICATION`,
  :class:`Certified`, :func:`certify`, :func:`correct_digits`, :func:`digits_supported`,
  :class:`CertifiedRun`, :func:`certified_flows`, :func:`require_precision_bits`;
* settings and rows — :class:`TheoryRowSetting`, :class:`GDRowSetting`, :class:`BeyondConfig`,
  :class:`NonlinearConfig`, :func:`published_setting`, :func:`row_model`, :func:`register_row`,
  :data:`TABLE1_ROWS`, :class:`RowModel`, :class:`TheoryRow`, :class:`BeyondRow`,
  :class:`NonlinearRow`, :class:`TheoryRowResult`, :class:`GDRowsResult`,
  :func:`reproduce_table1`, :class:`Table1Result`, :func:`run_theory_row`,
  :func:`theory_row_problems`, :func:`run_gd_row`; the robustness of a GD run under perturbed
  initial weights — :func:`run_robustness`, :func:`same_outcome`, :func:`learned_entries`,
  :func:`perturb_initial`;
* GD trainers — :func:`train_beyond`, :func:`train_nonlinear`, :func:`beyond_problem`,
  :func:`nonlinear_problem`, :class:`RunResult`, :class:`StepObserver`, :class:`AdaptiveStep`,
  :class:`Adam`; the paper's initial weights from TensorFlow's stateless normal stream, in
  numpy bit for bit — :func:`tf_stateless_normal`, :func:`keras_random_normal`;
* the Theorem's checker — :func:`check_setting`, :func:`paper_setting`, :class:`CheckReport`,
  :func:`sweep_checks`; the Proposition's — :func:`check_proposition`, :class:`PropositionReport`,
  :func:`load_problem`;
* dynamics — :func:`run_dynamics`, :func:`flow_dynamics`, :func:`theory_dynamics`,
  :func:`gd_dynamics`, :class:`DynamicsRun`, :class:`DynamicsResult`, :func:`escape_times`,
  :func:`trajectory_series`, :func:`plot_dynamics`; the paper's dynamics experiments —
  :data:`EXPERIMENTS`, :class:`DynamicsExperiment`, :class:`ExperimentRun`, :func:`run_experiment`,
  :class:`ExperimentResult`;
* the search for counterexamples — :class:`CleanProblem`, :class:`SearchCriteria`,
  :func:`evaluate`, :func:`certify_failure`, :func:`lowest_gamma_order`, :func:`regime`,
  :class:`SearchConfig`, :func:`run_search`, :class:`SearchReport`, :func:`replay_records`,
  :class:`ReplayReport`, :class:`ReplayDifference`, :func:`load_records`;
* poisons — :class:`PoisonSetting`, :func:`theory_poison_setting`, :func:`poisoned_set`,
  :func:`special_poison`, :func:`damage` (E(u) and dE/du by forward sensitivities),
  :class:`Damage`, :func:`damage_fd_gradient`, :func:`certified_damage`; optimised poisons —
  :func:`optimise_poison`, :class:`PoisonResult`, :func:`minimal_special_scale`,
  :func:`minimal_budget`, :class:`MinimalPoison`, :func:`damage_curve`, :class:`DamageCurve`;
* sweeps — :class:`SweepSpec`, :func:`read_sweep_file`, :func:`run_sweep`, :class:`SweepReport`, the
  job registry :data:`SWEEP_JOBS` (:class:`SweepJob`, :func:`register_job`, :func:`sweep_job`), the
  results store :class:`Store`, the backends :class:`Backend` (:func:`run_unordered`,
  :func:`run_ordered`), :func:`plot_grid`, :func:`plot_curves`, :func:`sweep_summary`;
* adversarial robustness of an LTI SSM — the exact worst case :func:`worst_case_attack`,
  :func:`worst_case_error`, :class:`Attack`, :func:`lti_impulse_response`; PGD against it
  :func:`pgd_attack`, :class:`PGDResult`, :func:`pgd_gap_study`; inside the ReLU head
  :func:`head_bounds`, :class:`HeadBounds`; adversarial training on the exact robust loss —
  :func:`robust_loss`, :func:`neg_grad_robust`, :func:`robust_flow`, :func:`robust_flow_sliding`, :class:`RobustFlowResult`,
  :func:`robust_training_table`, :class:`RobustTrainingRow`; a selective SSM (input-dependent step) under
  attack — :class:`SelectiveSSM`, :func:`selective_growth`, :func:`selective_pgd`, :func:`fit_growth`; adaptive
  scaling (AdS) against no AdS and a fixed gain — :func:`ads_table`;
* auditing a training set for poisons — :class:`AuditDataset`, :func:`load_dataset`,
  :func:`dataset_from_json`, :func:`audit`, :class:`AuditReport`, :class:`SequenceAudit`, :func:`defend`,
  :class:`DefenceResult`; the planted-poison experiment — :func:`audit_experiment`,
  :class:`AuditExperiment`, :func:`random_special_poison`, :func:`optimised_poison_generator`, :func:`roc_auc`;
* clean-label poisoning of real S4D and LRU layers on the digits (the optional extra ``realworld``:
  PyTorch, scikit-learn; torch is imported only when a run starts) — :class:`RealWorldConfig`,
  :func:`run_realworld`, :class:`RealWorldReport`, :func:`tiny_config`;
* the derivation report — :func:`derive_report`.
"""

from ssmpoison.theory._lazy import lazy_surface

__version__ = "0.1.0"

#: private module -> the public names it provides (imported on first use)
_EXPORTS = {
    '_kernels': ('kernels',),
    '_audit': ('AuditDataset', 'AuditExperiment', 'AuditReport', 'DefenceResult', 'SequenceAudit', 'audit',
               'audit_experiment', 'dataset_from_json', 'defend', 'load_dataset', 'optimised_poison_generator',
               'random_special_poison', 'roc_auc',),
    '_certification': ('FAST_PATH', 'SEARCH_CERTIFICATION', 'CertificationPolicy',),
    '_certified_flow': ('CertifiedRun', 'certified_flows',),
    '_certify': ('Certified', 'certify', 'correct_digits', 'digits_supported',),
    '_check': ('CheckReport', 'check_setting', 'paper_setting',),
    '_check_sweep': ('sweep_checks', 'sweep_summary',),
    '_parallel': ('Backend', 'run_ordered', 'run_unordered',),
    '_store': ('Store',),
    '_sweep': ('SweepReport', 'SweepSpec', 'read_sweep_file', 'run_sweep',),
    '_sweep_jobs': ('SWEEP_JOBS', 'SweepJob', 'register_job', 'sweep_job',),
    '_sweep_plots': ('plot_curves', 'plot_grid',),
    '_proposition_check': ('PropositionReport', 'check_proposition', 'load_problem',),
    '_clean_problem': ('CleanProblem',),
    '_counterexample': ('SearchCriteria', 'certify_failure', 'evaluate', 'lowest_gamma_order', 'regime',),
    '_derive_report': ('derive_report',),
    '_poisons': ('Damage', 'PoisonSetting', 'certified_damage', 'damage', 'damage_fd_gradient', 'poisoned_set',
                  'special_poison', 'theory_poison_setting',),
    '_poison_opt': ('DamageCurve', 'MinimalPoison', 'PoisonResult', 'damage_curve', 'minimal_budget', 'minimal_special_scale',
                    'optimise_poison',),
    '_dynamics': ('DynamicsResult', 'DynamicsRun', 'ExperimentResult', 'flow_dynamics', 'gd_dynamics', 'run_dynamics',
                  'run_experiment', 'theory_dynamics',),
    '_dynamics_plots': ('plot_dynamics',),
    '_experiments': ('EXPERIMENTS', 'DynamicsExperiment', 'ExperimentRun',),
    '_expcoll': ('ExpColl',),
    '_flow': ('FlowOptions', 'FlowProblem', 'FlowResult', 'default_integrator', 'linearly_dependent', 'run_flow', 'run_flows',),
    '_gd_config': ('BeyondConfig', 'NonlinearConfig',),
    '_gd_data': ('beyond_problem', 'nonlinear_problem', 'perturb_initial',),
    '_gd_optimisers': ('Adam', 'AdaptiveStep',),
    '_gd_rows': ('run_gd_row', 'run_robustness', 'same_outcome', 'learned_entries',),
    '_gd_training': ('RunResult', 'StepObserver', 'train_beyond', 'train_nonlinear',),
    '_integrator': ('IntegrationResult', 'Integrator',),
    '_metrics': ('escape_times', 'trajectory_series',),
    '_numbers': ('require_precision_bits',),
    '_registry': ('TABLE1_ROWS', 'published_setting', 'register_row', 'row_model',),
    '_replay': ('ReplayDifference', 'ReplayReport', 'load_records', 'replay_records',),
    '_robust': ('Attack', 'HeadBounds', 'PGDResult', 'head_bounds', 'lti_impulse_response', 'pgd_attack', 'pgd_gap_study',
                'worst_case_attack', 'worst_case_error',),
    '_robust_training': ('RobustFlowResult', 'RobustTrainingRow', 'neg_grad_robust', 'robust_flow', 'robust_flow_sliding', 'robust_loss',
                         'robust_training_table',),
    '_ads': ('ads_table',),
    '_realworld': ('RealWorldConfig', 'RealWorldReport', 'run_realworld', 'tiny_config',),
    '_selective': ('SelectiveSSM', 'fit_growth', 'selective_growth', 'selective_pgd',),
    '_rows': ('BeyondRow', 'GDRowsResult', 'NonlinearRow', 'RowModel', 'TheoryRow', 'TheoryRowResult',),
    '_search': ('SearchConfig', 'SearchReport', 'run_search',),
    '_settings': ('GDRowSetting', 'TheoryRowSetting',),
    '_seulex': ('Seulex',),
    '_status': ('Status',),
    '_table1': ('Table1Result', 'reproduce_table1',),
    '_theory_row': ('run_theory_row', 'theory_row_problems',),
    '_tf_random': ('keras_random_normal', 'tf_stateless_normal',),
}

__getattr__, __dir__, __all__ = lazy_surface(__name__, _EXPORTS)

