"""Numerics built from :mod:`theory`: generated backends, kernels, flow engines, experiments and the CLI."""

__version__ = "0.1.0"
