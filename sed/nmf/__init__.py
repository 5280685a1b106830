"""NMF strong labels for weakly-labelled clips (SPEC section 3, paper 2.2).

- :mod:`sed.nmf.core`: batched multiplicative-update NMF (beta-divergence, masks, fixed-W mode);
- :mod:`sed.nmf.templates`: class templates from the strongly-labelled clips, per-class dictionaries;
- :mod:`sed.nmf.labels`: activations of the tagged classes, threshold -> events;
- :mod:`sed.nmf.job`: the resumable labelling job; :mod:`sed.nmf.quality`: scores vs truth, plots.
"""

from sed.nmf.core import EPS, NMFInputError, NMFResult, beta_divergence, nmf, random_init

__all__ = ["EPS", "NMFInputError", "NMFResult", "beta_divergence", "nmf", "random_init"]
