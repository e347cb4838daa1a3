"""Evaluation of attributions and interpretable models."""
