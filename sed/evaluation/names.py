"""The one list of metric names: every table, log key, sweep summary and report reads it from here."""

from sed.evaluation.scenarios import PSDS_EVAL_DEFAULT, SED_SCORES_DEFAULT

#: psds_eval figures from operating points (SPEC section 7): the three DCASE 2020 settings and PSDS-F.
PSDS_EVAL_KEYS = (*(s.name for s in PSDS_EVAL_DEFAULT), "psds_f_score")
#: sed_scores_eval figures from score tables (threshold-independent PSDS, DCASE 2021+ scenarios).
SED_SCORES_KEYS = tuple(s.name for s in SED_SCORES_DEFAULT)
#: every headline figure ``sed.evaluation.metrics.evaluate`` can produce.
METRIC_KEYS = ("event_f1_macro", "event_f1_micro", "segment_f1_macro", *PSDS_EVAL_KEYS, *SED_SCORES_KEYS)
#: what validation logs every epoch (no sed_scores_eval: too slow per epoch).
VAL_LOG_KEYS = ("event_f1_macro", "event_f1_micro", "segment_f1_macro", *PSDS_EVAL_KEYS)
#: the columns of run summaries and sweep tables.
SUMMARY_KEYS = ("event_f1_macro", *PSDS_EVAL_KEYS, "segment_f1_macro")

#: ``sedx score``: figures from a detections table (sed_eval F1, psds_eval intersection F1).
SCORE_DETECTION_KEYS = (
    "event_f1_macro",
    "event_f1_micro",
    "segment_f1_macro",
    "segment_f1_micro",
    "psds_f_score",
)
#: ``sedx score``: sed_eval's overall precision and recall of a detections table (percentages).
SCORE_PR_KEYS = (
    "event_precision_micro",
    "event_recall_micro",
    "segment_precision_micro",
    "segment_recall_micro",
)
#: ``sedx score``: sed_eval's overall error rate and its substitution, deletion and insertion rates (ratios).
SCORE_ER_KEYS = tuple(
    f"{kind}_{k}"
    for kind in ("event", "segment")
    for k in ("error_rate", "substitution_rate", "deletion_rate", "insertion_rate")
)
#: ``sedx score``: figures from score tables besides the scenarios' PSDS (sed_scores_eval collar-based F1).
SCORE_SCORES_KEYS = ("collar_f1_best_macro",)
#: ``sedx score``: what ``--bootstrap`` resamples for each input kind (PSDS: every scenario too).
SCORE_BOOTSTRAP_KEYS = (
    "event_f1_macro",
    "event_f1_micro",
    "event_error_rate",
    "segment_f1_macro",
    "segment_f1_micro",
    "segment_error_rate",
    "psds_f_score",
    "collar_f1_best_macro",
)
