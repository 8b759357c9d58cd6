"""Facial verification: a face embedder trained with CosFace on synthetic identities (see train.py)."""
