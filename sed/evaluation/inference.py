"""Moved to :mod:`sed.inference.predictor` (transition shim, removed with the layer refactor)."""

from sed.inference.predictor import *  # noqa: F401,F403
from sed.inference.predictor import Predictor, load_system, predict_split  # noqa: F401
