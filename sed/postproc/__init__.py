"""Post-processing: probabilities -> events (SPEC section 6, paper 2.4 and Table 1)."""

from sed.postproc.decoder import (
    DETECTION_COLUMNS,
    Decoder,
    decode,
    decode_thresholds,
    empty_detections,
    hysteresis_scores,
    psds_thresholds,
    smooth_scores,
)
from sed.postproc.median import iterative_median, median_filter_frames
from sed.postproc.params import TABLE1, PostprocError, PostprocParams, effective_window

__all__ = [
    "DETECTION_COLUMNS",
    "TABLE1",
    "Decoder",
    "PostprocError",
    "PostprocParams",
    "decode",
    "decode_thresholds",
    "effective_window",
    "empty_detections",
    "hysteresis_scores",
    "iterative_median",
    "median_filter_frames",
    "psds_thresholds",
    "smooth_scores",
]
