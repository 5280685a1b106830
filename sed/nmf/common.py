"""What both NMF paths share (:mod:`sed.nmf.core`, :mod:`sed.nmf.rank1`): the float floor, the input error
and its per-matrix check, and scikit-learn's stopping rule."""

from __future__ import annotations

import torch
from torch import Tensor

#: float32 machine epsilon: the floor of denominators and of WH (scikit-learn's EPSILON).
EPS = float(torch.finfo(torch.float32).eps)


class NMFInputError(ValueError):
    """Input to the NMF that cannot be factorised (NaN/inf, negative values, bad shapes)."""

    def __init__(self, message: str, bad: list[int] | None = None):
        super().__init__(message)
        #: indices (in the batch) of the offending matrices, when the fault is per matrix
        self.bad = bad or []


def check_matrices(lo: Tensor, stat: Tensor | None = None, offset: int = 0) -> None:
    """Raise :class:`NMFInputError` naming the matrices (``offset`` + index) whose minimum ``lo`` is NaN,
    inf or negative, or whose ``stat`` (a sum over the matrix of V or of V^2: with V >= 0, NaN and +inf
    show in it) is not finite. Reductions instead of elementwise tests: one pass over V gives both."""
    finite = torch.isfinite(lo) if stat is None else torch.isfinite(lo) & torch.isfinite(stat)
    if not bool(finite.all()):
        bad = (torch.nonzero(~finite).flatten() + offset).tolist()
        raise NMFInputError(f"V has NaN or inf values in matrices {bad[:10]}", bad=bad)
    if not bool((lo >= 0).all()):
        bad = (torch.nonzero(lo < 0).flatten() + offset).tolist()
        raise NMFInputError(f"V has negative values in matrices {bad[:10]} (NMF needs V >= 0)", bad=bad)


def stop_rule(e: Tensor, e_prev: Tensor, e_init: Tensor, tol: float) -> Tensor:
    """scikit-learn's stopping rule per matrix: ``(e_prev - e) / e_init < tol`` (never with ``tol <= 0``),
    or nothing left to fit (``e_init == 0``)."""
    safe_init = torch.where(e_init > 0, e_init, torch.ones_like(e_init))
    stop = ((e_prev - e) / safe_init < tol) if tol > 0 else torch.zeros_like(e, dtype=torch.bool)
    return stop | (e_init <= 0)
