"""Exact mathematics of the poisoned-implicit-bias result: the SSM, its loss and gradient dynamics
(SymPy), training sets and special sequences, the Theorem's construction and its conditions."""
