"""Moved to :mod:`sed.core.predictions` (transition shim, removed with the layer refactor)."""

from sed.core.predictions import Predictions, PredictionsError, average  # noqa: F401
