"""SPEC eqs 2-8 against hand-computed values on tiny tensors."""

import math

import pytest
import torch

from sed.training.losses import clip_bce, confidence_gate, consistency_mse, frame_bce, total_loss, unlabel_mse


def bce(p, y):
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_frame_bce_eq2_mask_and_mean():
    # 2 clips, 2 frames, 1 class; only clip 0 has frame targets.
    sm_f = torch.tensor([[[0.8], [0.3]], [[0.5], [0.5]]])
    y_f = torch.tensor([[[1.0], [0.0]], [[1.0], [1.0]]])
    mask = torch.tensor([True, False])
    want = (bce(0.8, 1) + bce(0.3, 0)) / 2
    assert frame_bce(sm_f, y_f, mask).item() == pytest.approx(want, rel=1e-6)
    # without mask: clip 1 adds (bce(.5,1)*2)/2 = ln 2; mean of the two clips
    assert frame_bce(sm_f, y_f).item() == pytest.approx((want + math.log(2)) / 2, rel=1e-6)


def test_frame_bce_pos_weight_by_hand():
    """Event frames weigh pos_weight x: clip 0 = (3 bce(.8,1) + bce(.3,0)) / 2; 1 is plain eq 2."""
    sm_f = torch.tensor([[[0.8], [0.3]], [[0.5], [0.5]]])
    y_f = torch.tensor([[[1.0], [0.0]], [[1.0], [1.0]]])
    mask = torch.tensor([True, False])
    assert frame_bce(sm_f, y_f, mask, pos_weight=3.0).item() == pytest.approx(
        (3 * bce(0.8, 1) + bce(0.3, 0)) / 2, rel=1e-6
    )
    assert frame_bce(sm_f, y_f, mask, pos_weight=1.0).item() == frame_bce(sm_f, y_f, mask).item()
    t = total_loss(sm_f, sm_f.amax(1), y_f, y_f.amax(1), mask, mask, ~mask, w=0.0, tau=0.9, denominator="all",
                   frame_pos_weight=3.0)
    assert t.frame.item() == pytest.approx((3 * bce(0.8, 1) + bce(0.3, 0)) / 2, rel=1e-6)


def test_clip_bce_eq3():
    dm_c = torch.tensor([[0.9, 0.2], [0.6, 0.4]])
    y_c = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    want = ((bce(0.9, 1) + bce(0.2, 0)) / 2 + (bce(0.6, 0) + bce(0.4, 0)) / 2) / 2
    assert clip_bce(dm_c, y_c).item() == pytest.approx(want, rel=1e-6)


def test_consistency_eq4_on_labelled_only():
    sm_c = torch.tensor([[0.5, 0.1], [1.0, 1.0]])
    dm_c = torch.tensor([[0.3, 0.4], [0.0, 0.0]])
    mask = torch.tensor([True, False])
    assert consistency_mse(sm_c, dm_c, mask).item() == pytest.approx((0.2**2 + 0.3**2) / 2, rel=1e-5)


def test_gate_just_above_and_below_tau():
    dm = torch.tensor([[0.9001, 0.1], [0.8999, 0.2], [0.9, 0.0]])
    assert confidence_gate(dm, 0.9).tolist() == [True, False, False]  # strict >


def test_unlabel_eq7_gated_rampup_and_denominators():
    sm = torch.tensor([[0.5, 0.0], [0.2, 0.2], [0.0, 0.0]])
    dm = torch.tensor([[0.95, 0.1], [0.85, 0.1], [0.5, 0.5]])
    mask = torch.tensor([True, True, False])  # the third clip is not an unlabelled clip
    w = 0.25
    mse0 = (0.45**2 + 0.1**2) / 2  # clip 0 passes (0.95 > 0.9); clip 1 fails (0.85)
    loss, gate = unlabel_mse(sm, dm, w, 0.9, mask, "all")
    assert gate.tolist() == [True, False, False]
    assert loss.item() == pytest.approx(w * mse0 / 2, rel=1e-5)  # over all 2 unlabelled clips
    loss_p, _ = unlabel_mse(sm, dm, w, 0.9, mask, "passed")
    assert loss_p.item() == pytest.approx(w * mse0, rel=1e-5)  # over the 1 clip that passed
    none, g = unlabel_mse(sm, dm * 0.5, w, 0.9, mask, "all")
    assert none.item() == 0.0 and not g.any()


def test_total_eq8_and_switch():
    torch.manual_seed(0)
    sm_f = torch.rand(3, 4, 2) * 0.9 + 0.05
    dm_c = torch.tensor([[0.2, 0.7], [0.4, 0.6], [0.95, 0.3]])
    y_f = (torch.rand(3, 4, 2) > 0.5).float()
    y_c = y_f.amax(1)
    has_frame = torch.tensor([True, False, False])
    has_clip = torch.tensor([True, True, False])
    is_u = torch.tensor([False, False, True])
    t = total_loss(sm_f, dm_c, y_f, y_c, has_frame, has_clip, is_u, w=0.5, tau=0.9, denominator="all")
    sm_c = sm_f.amax(1)
    lf = frame_bce(sm_f[:1], y_f[:1])
    lc = clip_bce(dm_c[:2], y_c[:2])
    lcon = ((sm_c[:2] - dm_c[:2]) ** 2).mean()
    lu = 0.5 * ((sm_c[2] - dm_c[2]) ** 2).mean()
    assert t.frame.item() == pytest.approx(lf.item(), rel=1e-6)
    assert t.clip.item() == pytest.approx(lc.item(), rel=1e-6)
    assert t.con.item() == pytest.approx(lcon.item(), rel=1e-6)
    assert t.unlabel.item() == pytest.approx(lu.item(), rel=1e-6)
    assert t.total.item() == pytest.approx((lf + lc + lcon + lu).item(), rel=1e-6)
    assert t.gate_pass == 1.0
    before = total_loss(sm_f, dm_c, y_f, y_c, has_frame, has_clip, is_u, w=0.5, tau=0.9, denominator="all",
                        use_unlabel=False)
    assert before.unlabel.item() == 0.0 and math.isnan(before.gate_pass)


def test_empty_terms_are_zero_and_backprop():
    sm_f = torch.full((2, 3, 2), 0.5, requires_grad=True)
    dm_c = torch.full((2, 2), 0.5, requires_grad=True)
    no = torch.tensor([False, False])
    t = total_loss(sm_f, dm_c, torch.zeros(2, 3, 2), torch.zeros(2, 2), no, no, torch.tensor([True, True]),
                   w=1.0, tau=0.9, denominator="all")
    assert t.frame.item() == 0.0 and t.clip.item() == 0.0 and t.unlabel.item() == 0.0  # gate fails (0.5)
    t.total.backward()
    assert sm_f.grad is not None and dm_c.grad is not None
