"""Liveness (presentation-attack) detection: a small CNN that scores how likely a face image is bona fide."""
