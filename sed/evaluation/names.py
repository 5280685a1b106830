"""The one list of metric names: every table, log key, sweep summary and report reads it from here."""

#: psds_eval figures from operating points (SPEC section 7): the three DCASE 2020 settings and PSDS-F.
PSDS_EVAL_KEYS = ("psds", "psds_cross_trigger", "psds_macro", "psds_f_score")
#: sed_scores_eval figures from score tables (threshold-independent PSDS, DCASE 2021+ scenarios).
SED_SCORES_KEYS = ("psds_threshold_independent", "psds1", "psds2")
#: every headline figure ``sed.evaluation.metrics.evaluate`` can produce.
METRIC_KEYS = ("event_f1_macro", "event_f1_micro", "segment_f1_macro", *PSDS_EVAL_KEYS, *SED_SCORES_KEYS)
#: what validation logs every epoch (no sed_scores_eval: too slow per epoch).
VAL_LOG_KEYS = ("event_f1_macro", "event_f1_micro", "segment_f1_macro", *PSDS_EVAL_KEYS)
#: the columns of run summaries and sweep tables.
SUMMARY_KEYS = ("event_f1_macro", *PSDS_EVAL_KEYS, "segment_f1_macro")
