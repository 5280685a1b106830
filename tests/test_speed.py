"""Issue 15: the paper-scale preset and the GPU throughput switches, on CPU where they apply
(GPU-only checks are marked ``gpu`` and skipped without a GPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sed.core.errors import ConfigError
from sed.training.losses import clip_bce, frame_bce
from sed.training.speed import ChannelsLast, Compile, networks, speed_callbacks, to_channels_last
from tests._train_utils import REPO, fit, nmf_data_cfg

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def data_cfg(tiny_data_cfg, tmp_path_factory):
    return nmf_data_cfg(tiny_data_cfg, tmp_path_factory)


def _compose(overrides):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    OmegaConf.set_struct(cfg, False)
    return cfg


def _count(m):
    return sum(p.numel() for p in m.parameters())


def test_sm_dm_large_counts_and_presets():
    from hydra.utils import instantiate

    cfg = _compose(["model=sm_dm_large"])
    system = instantiate(cfg.model)
    # as stated in conf/model/sm_dm_large.yaml
    assert (_count(system.sm), _count(system.dm)) == (280_362, 1_166_058)
    assert cfg.model.sm.dropout == 0.3 and cfg.model.dm.clip_pool == "maxmean"  # the rest is sm_dm's
    x = torch.randn(2, 640, 64)
    system.eval()
    sm_f, dm_c = system(x)
    assert sm_f.shape == (2, 640, 10) and dm_c.shape == (2, 10)  # SM: no time pooling
    exp = _compose(["experiment=ps1_large"])
    assert exp.experiment_name == "ps1_large" and exp.model.dm.channels[-1] == 256
    assert exp.trainer.precision == "bf16-mixed" and exp.trainer.accelerator == "gpu"
    assert exp.datamodule.batch_size == 128 and exp.datamodule.features_on_device and exp.speed.channels_last
    assert exp.datamodule.post_switch == {"weak": 0.5, "unlabel": 0.5}  # still PS1
    assert _compose([]).model.sm.channels == [8, 32]  # the CPU default (conf/model/sm/tcn.yaml) is unchanged


def test_sm_dm_large_trains_one_step_on_cpu(tmp_path, data_cfg):
    from hydra.utils import instantiate

    from sed.train import run

    cfg = _compose(["model=sm_dm_large", "logger=csv", "trainer=cpu", "+trainer.max_steps=1",
                    "trainer.max_epochs=1",
                    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                    "+trainer.limit_val_batches=1", "datamodule.batch_size=2", "datamodule.val_batch_size=2",
                    "datamodule.iters_per_epoch=1", "datamodule.progress=false",
                    "callbacks.scorer.psds=false", "callbacks.report.plots=false"])
    cfg.data = data_cfg
    cfg.trainer.default_root_dir = str(tmp_path)
    cfg.logger.csv.save_dir = str(tmp_path)
    torch.manual_seed(int(cfg.seed))
    before = instantiate(cfg.model).state_dict()
    run(cfg, tmp_path)
    ck = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ck["global_step"] == 1
    after = ck["state_dict"]
    assert sum(v.numel() for k, v in after.items() if k in before and v.is_floating_point()) > 1_400_000
    moved = [k for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])]
    # one Adam step
    assert any(k.startswith("sm.") for k in moved) and any(k.startswith("dm.blocks.6") for k in moved)


def _system():
    from hydra.utils import instantiate

    cfg = _compose(["model.sm.channels=[4,8]", "model.sm.freq_pools=[8,8]", "model.dm.channels=[4,8,8]",
                    "model.dm.pools=[[4,4],[4,4],[2,2]]"])
    torch.manual_seed(0)
    return instantiate(cfg.model).eval()


def test_channels_last_same_outputs():
    system = _system()
    x = torch.randn(3, 640, 64)
    with torch.inference_mode():
        ref = system(x)
    convs = [p for p in system.parameters()
             if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1]
    assert convs and not any(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    ChannelsLast().setup(None, system, "fit")
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert to_channels_last(system) == 0  # idempotent
    with torch.inference_mode():
        out = system(x)
    for a, b in zip(ref, out):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_compile_in_place_keeps_names_and_outputs():
    system = _system()
    keys = list(system.state_dict())
    x = torch.randn(2, 640, 64)
    with torch.no_grad():
        ref = system(x)
    assert set(networks(system)) == {"sm", "dm"}
    cb = Compile(backend="eager")  # the wiring; inductor needs a C++ toolchain (exercised by gpu_check.sh)
    cb.setup(None, system, "fit")
    assert cb.compiled == ["sm", "dm"] and list(system.state_dict()) == keys
    with torch.no_grad():
        out = system(x)
    for a, b in zip(ref, out):
        torch.testing.assert_close(a, b)


def test_speed_config_node():
    assert speed_callbacks(None) == [] and speed_callbacks({"channels_last": False, "compile": False}) == []
    cbs = speed_callbacks({"channels_last": True, "compile": True, "compile_backend": "eager"})
    assert [type(c) for c in cbs] == [ChannelsLast, Compile]
    with pytest.raises(ConfigError, match="unknown"):
        speed_callbacks({"channel_last": True})
    with pytest.raises(ConfigError, match="no network"):
        networks(_system(), ["encoder"])


def test_bce_under_autocast_is_float32():
    torch.manual_seed(0)
    p, y = torch.rand(4, 640, 10), (torch.rand(4, 640, 10) > 0.5).float()
    # the same (rounded) inputs, computed in float32 without autocast
    ref = frame_bce(p.bfloat16().float(), y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = frame_bce(p.bfloat16(), y.bfloat16())
        oc = clip_bce(p[:, 0].bfloat16(), y[:, 0].bfloat16())
    assert out.dtype == torch.float32 and oc.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=0)


def test_bf16_mixed_and_channels_last_fit_on_cpu(tmp_path, data_cfg):
    best, log = fit(tmp_path, data_cfg, ["trainer.max_epochs=2", "datamodule.switch_epoch=1",
                                         "trainer.precision=bf16-mixed", "speed.channels_last=true"])
    loss = log["train/loss"].dropna().to_numpy()
    assert len(loss) == 4 and np.isfinite(loss).all()
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["best"]["event_f1_macro"] is not None


def _dm(data_cfg, **kw):
    from tests.test_datamodule import make_dm

    dm = make_dm(data_cfg, **{"batch_size": 8, "switch_epoch": 1, "progress": False, **kw})
    dm.setup("fit")
    return dm


def test_features_on_device_same_batches(data_cfg):
    host, dev = _dm(data_cfg), _dm(data_cfg, features_on_device=True, pin_memory=True)
    assert all(d.on_device is not None for d in dev.sources.values())
    assert all(d.on_device is None for d in host.sources.values())
    for epoch in (0, 1):  # synthetic only, then weak + unlabel
        la, lb = host.train_dataloader(), dev.train_dataloader()
        assert not lb.pin_memory  # pinning is for CUDA training only
        la.sampler.set_epoch(epoch)
        lb.sampler.set_epoch(epoch)
        for a, b in zip(la, lb):
            assert a.keys() == b.keys()
            for k in a:
                assert a[k].dtype == b[k].dtype, k
                torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="no GPU")
def test_gpu_bf16_fit_on_device_features(tmp_path, data_cfg):
    best, log = fit(tmp_path, data_cfg, ["trainer=gpu_fast", "trainer.max_epochs=2",
                                         "datamodule.switch_epoch=1", "datamodule.features_on_device=true",
                                         "datamodule.pin_memory=true", "speed.channels_last=true"])
    assert np.isfinite(log["train/loss"].dropna().to_numpy()).all()


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="no GPU")
def test_gpu_models_match_cpu():
    system = _system()
    x = torch.randn(4, 640, 64)
    with torch.inference_mode():
        ref = system(x)
        gpu_out = system.cuda()(x.cuda())
    for a, b in zip(ref, gpu_out):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-3, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="no GPU")
def test_gpu_features_on_device(data_cfg):
    from tests.test_datamodule import make_dm

    dm = make_dm(data_cfg, batch_size=8, switch_epoch=1, progress=False, features_on_device=True)
    dm._device = lambda: torch.device("cuda")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].is_cuda and batch["y_f"].is_cuda


def test_predictor_speed_up_same_outputs(tmp_path):
    """sed detect's inference rewrites (BatchNorm folded, channels_last): same probabilities up to
    rounding."""
    from sed.inference.predictor import fuse_batchnorm, load_system
    from sed.models.common import ConvBlock
    from tests.detect_helpers import make_untrained_checkpoint

    ck = make_untrained_checkpoint(tmp_path / "u.ckpt")
    ref, fast = load_system(ck, "cpu"), load_system(ck, "cpu").speed_up()
    blocks = [m for m in fast.system.modules() if isinstance(m, ConvBlock)]
    assert len(blocks) == 2 + 5 and all(isinstance(m.bn, torch.nn.Identity) for m in blocks)  # SM (tcn) + DM
    assert fuse_batchnorm(fast.system) == 0  # nothing left to fold
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 640, 64, generator=g) * 3 - 5
    for a, b in zip(ref.predict_logmel(x), fast.predict_logmel(x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    train_mode = _system().train()
    assert fuse_batchnorm(train_mode) == 0  # a module in training mode is left alone
