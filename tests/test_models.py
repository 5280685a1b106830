"""SM / DM / CRNN: shapes, parameter counts (as stated in the docstrings), SM's frame locality."""

import pytest
import torch

from sed.models import CRNN, DM, SM, ModelConfigError, clip_from_frames, count_parameters


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(0)
    return torch.randn(2, 640, 64)


def test_shapes_and_ranges(x):
    sm, dm, crnn = SM().eval(), DM().eval(), CRNN().eval()
    with torch.no_grad():
        f, c = sm(x), dm(x)
        cf, cc = crnn(x)
    assert f.shape == (2, 640, 10) and c.shape == (2, 10)
    assert cf.shape == (2, 640, 10) and cc.shape == (2, 10)
    for t in (f, c, cf, cc):
        assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    assert torch.equal(clip_from_frames(f), f.max(dim=1).values)


def test_parameter_counts_match_docstrings():
    assert count_parameters(SM()) == 18_162
    assert count_parameters(DM()) == 66_618
    assert count_parameters(CRNN()) == 74_044
    full = CRNN(channels=(16, 32, 64, 128, 128, 128, 128), rnn_cells=128)
    assert count_parameters(full) == 1_112_548


def test_sm_keeps_time_resolution(x):
    """No pooling along time: a change at frame 600 cannot reach frame 10 (receptive field ~15 frames)."""
    sm = SM().eval()
    y = x.clone()
    y[:, 600:] += 5.0
    with torch.no_grad():
        a, b = sm(x), sm(y)
    assert torch.allclose(a[:, :500], b[:, :500])
    assert not torch.allclose(a[:, 600:], b[:, 600:])


def test_configurable_and_errors(x):
    sm = SM(channels=(8, 8), freq_pools=(8, 8), dropout=0.5, head_kernel=3, head_units=16)
    assert sm(x).shape == (2, 640, 10)
    dm = DM(channels=(8, 8, 8), pools=[[4, 2], [4, 2], [2, 2]], clip_pool="max")
    assert dm(x).shape == (2, 10)
    with pytest.raises(ModelConfigError):
        SM(channels=(8, 8), freq_pools=(4,))
    with pytest.raises(ModelConfigError):
        DM(channels=(8,) * 7, pools=[[2, 2]] * 7)  # 64 bins / 128 < 1
    with pytest.raises(ModelConfigError):
        DM(clip_pool="median")


def test_backward_reaches_all_parameters(x):
    sm, dm = SM(), DM()
    (sm(x).mean() + dm(x).mean()).backward()
    assert all(p.grad is not None for p in list(sm.parameters()) + list(dm.parameters()))
