"""Scoring a model's splits beside each other: the configured post-processing and Table 1, every split."""
