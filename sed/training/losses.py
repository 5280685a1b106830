"""The losses of SPEC section 5 (paper 2.3, equations 2 to 8) as pure functions.

Conventions: probabilities in [0, 1] (the models end in a sigmoid); ``mask`` is a (B,) bool tensor
choosing the clips a term applies to.  Every term is a mean over its clips of a per-clip mean over
frames and classes (BCE, eq 2), over classes (BCE eq 3, MSE eqs 4, 5, 7); a term with no clips in
the batch is an exact 0 that keeps the autograd graph (so ``backward`` works on any batch mix).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _masked_mean(per_clip: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``per_clip`` (B,) over the clips in ``mask``; 0 (graph kept) when there are none."""
    if mask is None:
        return per_clip.mean() if per_clip.numel() else per_clip.sum()
    m = mask.to(per_clip.dtype)
    return (per_clip * m).sum() / m.sum().clamp(min=1.0)


def _bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise BCE in float32 with autocast off: CUDA autocast (bf16/fp16 training) refuses
    ``F.binary_cross_entropy``, and float32 keeps the log terms accurate near 0 and 1."""
    with torch.autocast(p.device.type, enabled=False):
        return F.binary_cross_entropy(p.float(), y.float(), reduction="none")


def frame_bce(sm_f: torch.Tensor, y_f: torch.Tensor, mask: torch.Tensor | None = None,
              pos_weight: float = 1.0) -> torch.Tensor:
    """Eq 2: l_f = BCE(SM_f, y_f) on (B, T, C) frame probabilities, over the clips with strong targets.

    ``pos_weight`` (not in the paper, whose setting is 1): event frames weigh ``pos_weight`` times a
    background frame, ``-(pw y log p + (1 - y) log(1 - p))``, against the frame imbalance (a class is
    active in a few % of the frames)."""
    bce = _bce(sm_f, y_f)
    if pos_weight != 1.0:
        bce = bce * (1.0 + (float(pos_weight) - 1.0) * y_f.float())
    return _masked_mean(bce.mean(dim=(1, 2)), mask)


def clip_bce(dm_c: torch.Tensor, y_c: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq 3: l_c = BCE(DM_c, y_c) on (B, C) clip probabilities, over the clips with clip targets."""
    per_clip = _bce(dm_c, y_c).mean(dim=1)
    return _masked_mean(per_clip, mask)


def mse_per_clip(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-clip mean squared error over classes: (B, C), (B, C) -> (B,)."""
    return (a - b).pow(2).mean(dim=1)


def consistency_mse(sm_c: torch.Tensor, dm_c: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq 4: l_con = MSE(SM_c, DM_c) over the labelled clips (SM_c = max over time of SM_f)."""
    return _masked_mean(mse_per_clip(sm_c, dm_c), mask)


def confidence_gate(dm_uc: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq 7's condition per clip: ``max over classes of DM_uc > tau`` (strict) -> (B,) bool."""
    return dm_uc.amax(dim=1) > tau


def unlabel_mse(
    sm_uc: torch.Tensor,
    dm_uc: torch.Tensor,
    w: float,
    tau: float,
    mask: torch.Tensor | None,
    denominator: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs 5 and 7: the confidence-gated, ramped-up consistency on unlabelled clips.

    Per unlabelled clip u: ``w * MSE(SM_uc, DM_uc)`` (mean over classes) if
    ``max_c DM_uc > tau`` else 0.  The batch value is the mean over clips of that per-clip value:
    ``denominator='all'`` (conf/model/sm_dm.yaml's default) divides by every unlabelled clip in the batch
    -- the literal reading of eq 7, a failed clip contributes its 0 -- ; ``'passed'`` divides by the
    clips that passed the gate (paper silent; a config option).

    Returns ``(loss, gate)`` with ``gate`` the (B,) bool pass mask restricted to ``mask``.
    """
    if denominator not in ("all", "passed"):
        raise ValueError(f"denominator {denominator!r}: expected 'all' or 'passed'")
    gate = confidence_gate(dm_uc, tau)
    if mask is not None:
        gate = gate & mask.bool()
    per_clip = mse_per_clip(sm_uc, dm_uc) * gate.to(sm_uc.dtype)
    if denominator == "all":
        loss = _masked_mean(per_clip, mask)
    else:
        loss = per_clip.sum() / gate.to(sm_uc.dtype).sum().clamp(min=1.0)
    return w * loss, gate


@dataclass
class LossTerms:
    """The four terms of eq 8 and their sum, plus the gate's pass fraction (for logging)."""

    frame: torch.Tensor
    clip: torch.Tensor
    con: torch.Tensor
    unlabel: torch.Tensor
    gate_pass: float  # fraction of the batch's unlabelled clips that passed the gate (nan if none)

    @property
    def total(self) -> torch.Tensor:
        """Eq 8: l_total = l_f + l_c + l_con + l_unlabel."""
        return self.frame + self.clip + self.con + self.unlabel


def total_loss(
    sm_f: torch.Tensor,
    dm_c: torch.Tensor,
    y_f: torch.Tensor,
    y_c: torch.Tensor,
    has_frame: torch.Tensor,
    has_clip: torch.Tensor,
    is_unlabel: torch.Tensor,
    w: float,
    tau: float,
    denominator: str,
    use_unlabel: bool = True,
    frame_pos_weight: float = 1.0,
) -> LossTerms:
    """Eqs 2-8 on one mixed batch.

    ``has_frame``: clips with frame targets (synthetic, weak clips with NMF labels);
    ``has_clip``: clips with clip targets (synthetic and weak) -- they are also the "labelled"
    clips of eq 4; ``is_unlabel``: unlabelled clips (eqs 5, 7).  ``use_unlabel=False`` (before the
    curriculum switch) makes l_unlabel 0.  ``frame_pos_weight``: see :func:`frame_bce` (paper: 1).
    """
    sm_c = sm_f.amax(dim=1)
    lf = frame_bce(sm_f, y_f, has_frame, frame_pos_weight)
    lc = clip_bce(dm_c, y_c, has_clip)
    lcon = consistency_mse(sm_c, dm_c, has_clip)
    n_u = int(is_unlabel.sum())
    if use_unlabel and n_u:
        lu, gate = unlabel_mse(sm_c, dm_c, w, tau, is_unlabel, denominator)
        frac = float(gate.sum()) / n_u
    else:
        lu, frac = sm_c.sum() * 0.0, float("nan")
    return LossTerms(lf, lc, lcon, lu, frac)
