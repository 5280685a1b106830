"""Trained systems -> probabilities: checkpoints loaded as predictors, splits predicted
(sed.inference.predictor)."""
