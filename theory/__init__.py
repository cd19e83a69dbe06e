"""Exact mathematics of the poisoned-implicit-bias result (``ssmpoison.theory``).

The diagonal SSM, its loss ``L_H`` and gradient dynamics derived with SymPy; training sets and
special sequences; teachers and their impulse responses; the Theorem's construction and the
paper's initialisation; the exact limit of the clean gradient flow (the oracle); the Theorem's
conditions. The mathematics is stated in ``proofs_notes/00_setting.md``.

Public names (everything else lives in private modules):

* derivation — :func:`derive`, :func:`derive_nonlinear`, :class:`SSMShape`, :class:`Derivation`,
  :class:`IdentityCheck`, :data:`TRAIN_CHOICES`;
* data — :class:`TrainingSet`, :func:`impulse`, :func:`is_special`, :func:`special_score`;
* teachers — :class:`Teacher`, :func:`impulse_extrapolation_error`;
* the Theorem's construction — :func:`teacher_matrices`, :func:`teacher_impulse_response`,
  :func:`teacher_label`, :func:`clean_training_set`, :func:`poisoned_training_set`,
  :func:`paper_initialisation`, :func:`paper_gap`, :func:`extrapolation_error`; its generalisation
  to scaled clean and poison sequences — :class:`Construction`, :func:`scaled_training_set`;
* the clean flow's exact limit — :func:`clean_limit`, :func:`clean_convergence_time`,
  :func:`conserved_quantities_proof`, :class:`ConservationProof`;
* the Theorem's conditions — :class:`TheoremSetting`, :class:`Condition`, :func:`conditions`,
  :func:`clean_error_bound`, :func:`clean_limit_bounds`;
* the poisoned side of the conditions (advisory) — :func:`poisoned_side_conditions`,
  :func:`poisoned_prediction`, :func:`merged_pair_flow`, :class:`PoisonedPrediction`, :class:`MergedFlow`;
* the Proposition's hypotheses — :class:`Hypothesis`, :func:`proposition_hypotheses`,
  :func:`lowest_excited_lag`, :func:`lag_rank`;
* :func:`effective_rank`;
* the robust (adversarial) loss and its gradient — :func:`derive_robust`, :class:`RobustDerivation`.
"""

from ssmpoison.theory._lazy import lazy_surface


#: private module -> the public names it provides (imported on first use)
_EXPORTS = {
    '_construction': ('Construction', 'scaled_training_set', 'clean_training_set', 'extrapolation_error', 'paper_gap', 'paper_initialisation', 'poisoned_training_set', 'teacher_impulse_response', 'teacher_label', 'teacher_matrices',),
    '_derivation': ('TRAIN_CHOICES', 'Derivation', 'IdentityCheck', 'SSMShape', 'derive', 'derive_nonlinear',),
    '_effective_rank': ('effective_rank',),
    '_robust_loss': ('RobustDerivation', 'derive_robust',),
    '_proposition': ('Hypothesis', 'lag_rank', 'lowest_excited_lag', 'proposition_hypotheses',),
    '_oracle': ('ConservationProof', 'clean_convergence_time', 'clean_limit', 'conserved_quantities_proof',),
    '_poisoned_side': ('MergedFlow', 'PoisonedPrediction', 'merged_pair_flow', 'poisoned_prediction', 'poisoned_side_conditions',),
    '_teacher': ('Teacher', 'impulse_extrapolation_error',),
    '_theorem': ('Condition', 'TheoremSetting', 'clean_error_bound', 'clean_limit_bounds', 'conditions',),
    '_training_set': ('TrainingSet', 'impulse', 'is_special', 'special_score',),
}

__getattr__, __dir__, __all__ = lazy_surface(__name__, _EXPORTS)

