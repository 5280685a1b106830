"""SM / DM / CRNN: shapes, parameter counts (as stated in the docstrings), SM's frame locality."""

import pytest
import torch

from sed.models import CRNN, DM, SM, ModelConfigError, clip_from_frames, count_parameters
from sed.train import build_model

# the sizes of conf/model/*.yaml (their one home): SM(**SM_KW) is the configured SM
_SMDM, _CRNN = build_model().hparams, build_model(["experiment=baseline"]).hparams
SM_KW, DM_KW, CRNN_KW = _SMDM["sm"], _SMDM["dm"], _CRNN["crnn"]
CRNN_FULL_KW = build_model(["experiment=baseline_dcase2020"]).hparams["crnn"]


def SM_(**kw):
    return SM(**{**SM_KW, **kw})


def DM_(**kw):
    return DM(**{**DM_KW, **kw})


def CRNN_(**kw):
    return CRNN(**{**CRNN_KW, **kw})


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(0)
    return torch.randn(2, 640, 64)


def test_shapes_and_ranges(x):
    sm, dm, crnn = SM_().eval(), DM_().eval(), CRNN_().eval()
    with torch.no_grad():
        f, c = sm(x), dm(x)
        cf, cc = crnn(x)
    assert f.shape == (2, 640, 10) and c.shape == (2, 10)
    assert cf.shape == (2, 640, 10) and cc.shape == (2, 10)
    for t in (f, c, cf, cc):
        assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    assert torch.equal(clip_from_frames(f), f.max(dim=1).values)


def test_parameter_counts_match_docstrings():
    assert count_parameters(SM_()) == 52_338  # the default SM, conf/model/sm/tcn.yaml
    assert count_parameters(DM_()) == 66_618
    assert count_parameters(CRNN_()) == 74_044
    full = CRNN_(channels=(16, 32, 64, 128, 128, 128, 128), rnn_cells=128)
    assert count_parameters(full) == 1_112_548
    assert count_parameters(CRNN(**CRNN_FULL_KW)) == 1_112_548  # conf/model/crnn_dcase2020.yaml


def test_sm_keeps_time_resolution(x):
    """No pooling along time: a change at frame 600 cannot reach frame 10 (context +-58 frames)."""
    sm = SM_().eval()
    y = x.clone()
    y[:, 600:] += 5.0
    with torch.no_grad():
        a, b = sm(x), sm(y)
    assert torch.allclose(a[:, :500], b[:, :500])
    assert not torch.allclose(a[:, 600:], b[:, 600:])


def test_configurable_and_errors(x):
    sm = SM_(channels=(8, 8), freq_pools=(8, 8), dropout=0.5, head_kernel=3, head_units=16)
    assert sm(x).shape == (2, 640, 10)
    dm = DM_(channels=(8, 8, 8), pools=[[4, 2], [4, 2], [2, 2]], clip_pool="max")
    assert dm(x).shape == (2, 10)
    with pytest.raises(ModelConfigError):
        SM_(channels=(8, 8), freq_pools=(4,))
    with pytest.raises(ModelConfigError):
        DM_(channels=(8,) * 7, pools=[[2, 2]] * 7)  # 64 bins / 128 < 1
    with pytest.raises(ModelConfigError):
        DM_(clip_pool="median")


def test_backward_reaches_all_parameters(x):
    sm, dm = SM_(), DM_()
    (sm(x).mean() + dm(x).mean()).backward()
    assert all(p.grad is not None for p in list(sm.parameters()) + list(dm.parameters()))


@pytest.mark.parametrize("kind", ["pointwise", "single_input"])
def test_cpu_fast_convolutions_equal_the_library_convolution(kind):
    """The CPU fast paths of sed.models.common (a channel matmul; shifted copies x a matrix) compute the
    same outputs and gradients as F.conv2d with the same weights."""
    import torch.nn.functional as F

    from sed.models.common import PointwiseConv2d, SingleInputConv2d, conv2d

    torch.manual_seed(0)
    conv = PointwiseConv2d(5, 3) if kind == "pointwise" else SingleInputConv2d(4, 3)
    assert type(conv2d(5, 3, 1) if kind == "pointwise" else conv2d(1, 4, 3)) is type(conv)
    assert type(conv2d(2, 4, 3)) is torch.nn.Conv2d
    x = torch.randn(2, conv.in_channels, 7, 6, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    w_ref = conv.weight.detach().clone().requires_grad_()
    b_ref = conv.bias.detach().clone().requires_grad_()
    y = conv(x)
    y_ref = F.conv2d(x_ref, w_ref, b_ref, padding=conv.padding)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(conv.weight.grad, w_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.bias.grad, b_ref.grad, rtol=1e-5, atol=1e-5)
    assert set(conv.state_dict()) == {"weight", "bias"}  # checkpoints keep their keys


def test_block_max_pool_equals_max_pool_without_autograd():
    """Inference's reshape-and-amax pooling returns exactly nn.MaxPool2d's output (odd sizes cropped
    alike)."""
    from sed.models.common import BlockMaxPool2d

    torch.manual_seed(0)
    for kernel, shape in (((1, 4), (2, 3, 10, 64)), ((2, 2), (2, 3, 11, 9)), ((2, 4), (1, 2, 640, 64))):
        x = torch.randn(shape)
        with torch.no_grad():
            assert torch.equal(BlockMaxPool2d(kernel)(x), torch.nn.MaxPool2d(kernel)(x))
        y = BlockMaxPool2d(kernel)(x.requires_grad_())  # training: the library's pooling (its gradient)
        assert y.grad_fn is not None and torch.equal(y.detach(), torch.nn.MaxPool2d(kernel)(x).detach())


def test_block_max_pool_on_channels_last_takes_the_library_kernel(monkeypatch):
    """NHWC inputs (Predictor.speed_up) skip the reshape (it would copy) and still give nn.MaxPool2d's
    output."""
    import torch.nn.functional as F

    import sed.models.common as common

    x = torch.randn(2, 8, 20, 16).contiguous(memory_format=torch.channels_last)
    assert common._nhwc(x) and not common._nhwc(torch.randn(2, 1, 20, 16))  # one channel: both layouts
    calls = []
    monkeypatch.setattr(torch.nn.MaxPool2d, "forward", lambda self, t: calls.append(1) or F.max_pool2d(t, 2))
    with torch.no_grad():
        y = common.BlockMaxPool2d((2, 2))(x)
    assert calls and torch.equal(y, F.max_pool2d(x.contiguous(), 2))


@pytest.mark.parametrize("pool_type", ["max", "avg"])
def test_relu_block_pools_before_relu_without_autograd(pool_type):
    """At inference a ReLU block gives the same numbers as in training order: max pooling goes first (max
    and ReLU commute), average pooling stays after the ReLU (they do not commute)."""
    from sed.models.common import ConvBlock

    torch.manual_seed(0)
    block = ConvBlock(3, 4, 3, "relu", (2, 4), 0.0, pool_type).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        fast = block(x)
    slow = block.pool(torch.relu(block.bn(block.conv(x.requires_grad_())))).detach()
    assert torch.equal(fast, slow)


#: conf/model/sm/*.yaml: parameters (by hand: the conv blocks 128 + 168 + 1,472 + 5,760 (gated_head), the
#: head C*F x 32 x k + 32, its gate 1,056, each temporal conv 32 x 32 x k + 32 + 1,056, the output 330)
#: and context frames on each side
SM_CHOICES = {
    "gated_head": (18_162, 7),  # head 32 x 32 x 9 + 32 = 9,248
    "dilated_head": (26_354, 59),  # head 32 x 32 x 17 + 32 = 17,440; 3 + 8 x 7
    "gentle_dilated": (78_578, 59),  # head (32 x 4 bins) x 32 x 17 + 32 = 69,664
    "tcn": (52_338, 58),  # blocks 128 + 168 + 3,456, head 128 x 32 x 9 + 32, tcn 10,304; 2 + 4 + 4 x 13
    "tcn_pooled": (24_690, 58),  # tcn with the head on 32 features: 32 x 32 x 9 + 32 = 9,248
}


def _sm_of(choice: str) -> SM:
    return SM(**build_model([f"model/sm={choice}"]).hparams["sm"])


@pytest.mark.parametrize("choice", sorted(SM_CHOICES))
def test_sm_choices_counts_and_paper_constraints(choice):
    """Each named SM: its stated size and context; fewer conv layers than DM; dropout above DM's."""
    sm = _sm_of(choice)
    assert (count_parameters(sm), sm.context_frames) == SM_CHOICES[choice]
    assert sm.conv_layers == 4 < len(DM_KW["channels"]) == 5
    assert sm.head_drop.p > DM_KW["dropout"]


def test_default_sm_is_tcn_and_gated_head_keeps_the_old_checkpoint_keys():
    """The default SM is issue 20's winner (tcn); ``model/sm=gated_head`` is the pre-issue-20 one: the same
    hyper-parameters (no new keys saved) and the same state-dict keys, so its checkpoints load strictly."""
    assert SM_KW == build_model(["model/sm=tcn"]).hparams["sm"]
    old_kw = build_model(["model/sm=gated_head"]).hparams["sm"]
    assert not {"head_dilation", "tcn_kernel", "tcn_dilations"} & set(old_kw)
    old_keys = {"norm.bn", *(f"blocks.{i}.{m}" for i in range(3) for m in ("conv", "bn", "gate")),
                "head", "head_gate", "out"}
    keys = {k.rsplit(".", 1)[0] for k in SM(**old_kw).state_dict()}
    assert keys == old_keys


@pytest.mark.parametrize("choice", sorted(SM_CHOICES))
def test_sm_context_frames_is_its_exact_receptive_field(choice):
    """In float64 and eval mode: output frame t depends on exactly the input frames t - context_frames ..
    t + context_frames (no gap: the dilations tile); on a sub-sequence, frames at least context_frames
    from both ends are exact."""
    torch.manual_seed(0)
    sm = _sm_of(choice).double().eval()
    c, t = sm.context_frames, 200
    x = torch.randn(1, 400, 64, dtype=torch.float64, requires_grad=True)
    sm(x)[0, t].sum().backward()
    seen = (x.grad[0].abs().amax(1) > 0).nonzero().flatten()
    assert seen.tolist() == list(range(t - c, t + c + 1))
    x = x.detach()
    with torch.no_grad():
        ref = sm(x)
        a, b = 37, 37 + 2 * c + 50
        sub = sm(x[:, a:b])
    torch.testing.assert_close(sub[:, c:-c], ref[:, a + c:b - c], atol=1e-12, rtol=0)
    assert (sub[:, : c - 1] - ref[:, a : a + c - 1]).abs().max() > 1e-9  # the edge does differ


def test_sm_option_errors():
    with pytest.raises(ModelConfigError):
        SM_(tcn_kernel=4, tcn_dilations=[2])
    with pytest.raises(ModelConfigError):
        SM_(head_dilation=0)
