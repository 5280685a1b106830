"""Evaluation: predictions files, inference from checkpoints, metrics against the reference libraries,
reports."""
