"""Synthetic identity data engine (faces, presentation attacks, ID documents, text lines) and real-data loaders.

Nothing here imports TensorFlow, so generation workers stay light and the determinism entry can run first.
"""
