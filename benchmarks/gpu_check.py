"""The measuring steps of benchmarks/gpu_check.sh (issue 15); each prints one JSON line.

``throughput``: training steps of ``model=sm_dm_large`` (SM+DM, eqs 2-8) and of the DCASE 2020 baseline
CRNN at its original widths (``model=crnn_dcase2020``: student + EMA teacher) on log-mel made on the
device at DESED's sizes (random values: speed does not depend on them), bf16 autocast and channels_last
on CUDA; clips/s, seconds per DESED-sized epoch (PS1's first phase: one pass over 2,584 synthetic clips,
plus the validation forward over 1,168 clips) and peak device memory.

``equality``: the device against CPU float32 on the same inputs: the NMF (templates and fixed-W
activations, sed.nmf.core) and the two models' outputs (eval mode, float32, no autocast).

    python -m benchmarks.gpu_check throughput --device cuda [--tiny]
    python -m benchmarks.gpu_check equality --device cuda
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from omegaconf import OmegaConf

DESED = {"synthetic": 2584, "weak": 1578, "unlabel": 14412, "validation": 1168}


def _model_cfg(name: str) -> dict:
    """conf/model/<name>.yaml as Hydra composes it (its defaults and nested groups such as conf/model/sm/)."""
    from sed.train import compose

    cfg = compose([f"model={name}"])
    return OmegaConf.to_container(cfg.model, resolve=True)


def _kw(node: dict) -> dict:
    """A network's keyword arguments; DESED's ten output classes (a benchmark's data is DESED-sized)."""
    return {**{k: v for k, v in node.items() if k not in ("_target_", "name")}, "n_classes": 10}


def build(name: str):
    """(networks dict, loss(batch) -> tensor, after_step()) for ``name`` in {sm_dm_large, crnn_dcase2020}."""
    from sed.models import CRNN, DM, SM
    from sed.training.losses import clip_bce, frame_bce, total_loss

    cfg = _model_cfg(name)
    if name.startswith("sm_dm"):
        sm, dm = SM(**_kw(cfg["sm"])), DM(**_kw(cfg["dm"]))

        def loss(b):
            return total_loss(sm(b["x"]), dm(b["x"]), b["y_f"], b["y_c"], b["has_frame"], b["has_clip"],
                              b["is_unlabel"], w=0.5, tau=float(cfg["tau"]),
                              denominator=str(cfg["unlabel_denominator"])).total

        return {"sm": sm, "dm": dm}, loss, lambda: None
    student, teacher = CRNN(**_kw(cfg["crnn"])), CRNN(**_kw(cfg["crnn"]))
    teacher.load_state_dict(student.state_dict())
    teacher.requires_grad_(False)

    def loss(b):
        s_f, s_c = student(b["x"])
        with torch.no_grad():
            t_f, t_c = teacher(b["x"])
        return (frame_bce(s_f, b["y_f"], b["has_frame"]) + clip_bce(s_c, b["y_c"], b["has_clip"])
                + 2.0 * ((s_f.float() - t_f.float()).pow(2).mean()
                         + (s_c.float() - t_c.float()).pow(2).mean()))

    @torch.no_grad()
    def ema():
        for t, s in zip(teacher.parameters(), student.parameters()):
            t.mul_(0.999).add_(s, alpha=0.001)

    return {"student": student, "teacher": teacher}, loss, ema


def throughput(device: str, tiny: bool, batch_size: int, steps: int, warmup: int = 3) -> dict:
    from sed.training.speed import to_channels_last

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    sizes = {k: (max(4, v // 200) if tiny else v) for k, v in DESED.items()}
    g = torch.Generator(device=dev).manual_seed(0)
    n_train = sizes["synthetic"] + sizes["weak"] + sizes["unlabel"]
    t0 = time.perf_counter()
    feats = torch.randn(n_train, 640, 64, device=dev, generator=g).mul_(3).sub_(5)  # log-mel-like values
    y_f = (torch.rand(sizes["synthetic"] + sizes["weak"], 640, 10, device=dev, generator=g)
           > 0.9).to(torch.uint8)
    make_s = time.perf_counter() - t0
    out = {"device": str(torch.cuda.get_device_name(dev) if cuda else "cpu"), "sizes": sizes,
           "batch_size": batch_size, "features_gb": round(feats.numel() * 4 / 1e9, 2),
           "make_features_s": round(make_s, 2)}
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda)
    for name in ("sm_dm_large", "crnn_dcase2020"):
        nets, loss_fn, after = build(name)
        params = sum(p.numel() for k, n in nets.items() if k != "teacher" for p in n.parameters())
        for n in nets.values():
            n.to(dev)
            if cuda:
                to_channels_last(n)
        opt = torch.optim.Adam([p for n in nets.values() for p in n.parameters() if p.requires_grad], lr=1e-3)
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)

        def step(i: int, loss_fn=loss_fn, opt=opt, after=after) -> None:
            rows = torch.randint(0, n_train, (batch_size,), device=dev, generator=g)
            lab = rows < y_f.shape[0]
            b = {"x": feats[rows], "y_f": y_f[rows.clamp(max=y_f.shape[0] - 1)].float(), "has_frame": lab,
                 "has_clip": lab, "is_unlabel": ~lab}
            b["y_c"] = b["y_f"].amax(1)
            with amp:
                loss = loss_fn(b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            after()

        for i in range(warmup):  # warm-up (cuDNN autotuning, allocator)
            step(i)
        sync = torch.cuda.synchronize if cuda else (lambda *a: None)
        sync()
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        sync()
        per_step = (time.perf_counter() - t0) / steps
        nets_eval = [n.eval() for k, n in nets.items() if k != "teacher"]
        sync()
        t0 = time.perf_counter()
        with torch.inference_mode(), amp:
            for lo in range(0, sizes["validation"], 256):
                xb = feats[lo:lo + min(256, sizes["validation"] - lo)]
                for n in nets_eval:
                    n(xb)
        sync()
        val_s = time.perf_counter() - t0
        epoch_iters = math.ceil(sizes["synthetic"] / batch_size)
        out[name] = {"params": params, "train_clips_per_s": round(batch_size / per_step, 1),
                     "s_per_step": round(per_step, 4), "epoch_iters": epoch_iters,
                     "s_per_desed_epoch": round(epoch_iters * per_step + val_s, 2),
                     "val_forward_s": round(val_s, 2),
                     "peak_gpu_mem_gb": (round(torch.cuda.max_memory_allocated(dev) / 1e9, 2)
                                         if cuda else None)}
    return out


def equality(device: str) -> dict:
    """Max abs / rel differences of the device against CPU float32 (NMF and both models)."""
    from sed.nmf.core import nmf

    dev = torch.device(device)
    g = torch.Generator().manual_seed(0)
    V = torch.rand(4, 64, 640, generator=g) ** 4 * 10
    W = torch.rand(64, 3, generator=g) + 0.1
    out = {}
    for beta in (1, 2):
        a = nmf(V, W=W, fixed_W=True, beta=beta, max_iter=100)
        b = nmf(V.to(dev), W=W.to(dev), fixed_W=True, beta=beta, max_iter=100)
        rel = float((a.H - b.H.cpu()).abs().max() / a.H.abs().max())
        out[f"nmf_beta{beta}_H_max_rel_diff"] = rel
    free = nmf(V[:, :, :100], 1, beta=1, max_iter=100)
    free_d = nmf(V[:, :, :100].to(dev), 1, beta=1, max_iter=100)
    out["nmf_rank1_loss_rel_diff"] = float(((free.loss - free_d.loss.cpu()).abs() / free.loss.abs()).max())
    x = torch.randn(4, 640, 64, generator=g) * 3 - 5
    for name in ("sm_dm_large", "crnn_dcase2020"):
        torch.manual_seed(0)
        nets, _, _ = build(name)
        for k, n in nets.items():
            if k == "teacher":
                continue
            n.eval()
            with torch.inference_mode():
                ref = n(x)
                got = n.to(dev)(x.to(dev))
            ref, got = ((ref if isinstance(ref, tuple) else (ref,)),
                        (got if isinstance(got, tuple) else (got,)))
            out[f"{name}_{k}_max_abs_diff"] = max(float((r - q.cpu()).abs().max()) for r, q in zip(ref, got))
    tol = {"nmf": 1e-3, "model": 1e-3}
    out["ok"] = all(v <= (tol["nmf"] if k.startswith("nmf") else tol["model"]) for k, v in out.items())
    out["tolerance"] = tol
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("throughput", "equality"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="1/200 of DESED's sizes (the --cpu dry mode)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args(argv)
    res = (throughput(a.device, a.tiny, a.batch_size, a.steps, a.warmup) if a.what == "throughput"
           else equality(a.device))
    print(json.dumps(res))
    return 0 if res.get("ok", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
