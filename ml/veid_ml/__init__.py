"""VEID ML shared core: determinism, export, hashing, metrics and the synthetic data engine.

Importing this package must never import TensorFlow: the determinism entry has to run first.
"""

__version__ = "1.0.0"
