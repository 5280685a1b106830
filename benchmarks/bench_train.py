"""Training throughput: SM+DM (the paper's system) against the mean-teacher CRNN baseline.

One training iteration each, as in sed.training.systems: forward of both networks (SM and DM; student and EMA
teacher), the losses (eqs 2-8; BCE + consistency), backward, Adam step (+ the EMA update for the
baseline), on a batch of the default size and mix (PS1 after the switch: half weak clips with NMF
frame targets, half unlabelled).  Both systems are timed in the same process, interleaved round by
round so they share the machine's load; each figure is the median over rounds.

Figures: clips/s in training steps, seconds per epoch (the stated epoch of conf/datamodule/desed.yaml:
100 iterations x 16 = 1,600 clips, for PS1, PS2 and the baseline alike, plus the validation forward
pass over 200 clips) and per run of the shipped budget (63 epochs), the ratio SM+DM / baseline, and the
speed-up of the CPU convolution fast paths (sed.models.common: 1x1 convs as a channel matmul, the
1-channel input conv as shifted copies x a matrix) over the library's oneDNN convolution,
measured in the same rounds.

    python -m benchmarks.bench_train [--quick] [--threads 1,2]

``--sm dilated_head,tcn`` (choices of conf/model/sm/) times SM+DM with each named SM against today's SM+DM
(fast paths only, the same interleaved rounds, no baseline) and writes ``benchmarks/results/train_sm.json``:
seconds per step and the step-cost ratio to the default SM+DM (issue 20: at most 1.5x).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import sed.models.common as model_common
from benchmarks.common import write_result
from sed.models import CRNN, DM, SM, count_parameters
from sed.train import build_model, compose
from sed.training.losses import clip_bce, frame_bce, total_loss

EPOCH_CLIPS = 1600  # conf/datamodule/desed.yaml: iters_per_epoch 100 x batch 16
VAL_CLIPS = 200


def make_batch(b: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 640, 64, generator=g) * 3 - 5
    y_f = (torch.rand(b, 640, 10, generator=g) > 0.9).float()
    half = torch.arange(b) < b // 2
    return {"x": x, "y_f": y_f, "y_c": y_f.amax(1), "has_frame": half, "has_clip": half, "is_unlabel": ~half}


class SmDmStep:
    name = "sm_dm"

    def __init__(self, sm_choice: str | None = None) -> None:
        """``sm_choice``: a conf/model/sm/ choice (None: the default of conf/model/sm_dm.yaml)."""
        hp = build_model([f"model/sm={sm_choice}"] if sm_choice else []).hparams  # conf/model/sm_dm.yaml
        if sm_choice:
            self.name = f"sm_dm[{sm_choice}]"
        self.sm, self.dm = SM(**hp["sm"]), DM(**hp["dm"])
        self.opt = torch.optim.Adam(list(self.sm.parameters()) + list(self.dm.parameters()), lr=1e-3)
        self.params = count_parameters(self.sm) + count_parameters(self.dm)

    def __call__(self, b: dict) -> None:
        terms = total_loss(self.sm(b["x"]), self.dm(b["x"]), b["y_f"], b["y_c"], b["has_frame"],
                           b["has_clip"], b["is_unlabel"], w=0.5, tau=0.9, denominator="all")
        self.opt.zero_grad(set_to_none=True)
        terms.total.backward()
        self.opt.step()

    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> None:
        self.sm.eval(), self.dm.eval()
        self.sm(x), self.dm(x)
        self.sm.train(), self.dm.train()


class MeanTeacherStep:
    name = "crnn_mean_teacher"

    def __init__(self) -> None:
        kw = build_model(["experiment=baseline"]).hparams["crnn"]  # conf/model/crnn.yaml
        self.student, self.teacher = CRNN(**kw), CRNN(**kw)
        self.teacher.load_state_dict(self.student.state_dict())
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.Adam(self.student.parameters(), lr=1e-3)
        self.params = count_parameters(self.student)

    def __call__(self, b: dict) -> None:
        s_f, s_c = self.student(b["x"])
        with torch.no_grad():
            t_f, t_c = self.teacher(b["x"])
        loss = (frame_bce(s_f, b["y_f"], b["has_frame"]) + clip_bce(s_c, b["y_c"], b["has_clip"])
                + 2.0 * ((s_f - t_f).pow(2).mean() + (s_c - t_c).pow(2).mean()))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            for t, s in zip(self.teacher.parameters(), self.student.parameters()):
                t.mul_(0.999).add_(s, alpha=0.001)

    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> None:
        self.student.eval()
        self.student(x)
        self.student.train()


def measure(
    systems: list, batch: dict, bsz: int, rounds: int, steps_per_round: int,
    variants: tuple[str, ...] = ("", "/library_conv"),
) -> dict[str, tuple[float, float]]:
    """Median seconds per training step and per validation clip of each system, and of each system with
    the library convolutions (``<name>/library_conv``, unless ``variants`` leaves it out), interleaved
    rounds."""
    for s in systems:  # warm-up
        s(batch)
    step_t = {f"{s.name}{v}": [] for s in systems for v in variants}
    inf_t = {k: [] for k in step_t}
    xv = torch.randn(32, 640, 64)
    for _ in range(rounds):
        for s, variant in [(s, v) for s in systems for v in variants]:
            model_common.CPU_FAST_CONV = variant == ""
            name = f"{s.name}{variant}"
            t0 = time.perf_counter()
            for _ in range(steps_per_round):
                s(batch)
            step_t[name].append((time.perf_counter() - t0) / steps_per_round)
            t0 = time.perf_counter()
            s.infer(xv)
            inf_t[name].append((time.perf_counter() - t0) / 32)
    model_common.CPU_FAST_CONV = True
    return {k: (statistics.median(step_t[k]), statistics.median(inf_t[k])) for k in step_t}


def sm_choices(names: list[str], threads: list[int], bsz: int, rounds: int, steps: int,
               quick: bool) -> None:
    """``--sm``: SM+DM with each named SM against the default SM+DM, step-cost ratios -> train_sm.json."""
    batch = make_batch(bsz)
    systems = [SmDmStep()] + [SmDmStep(n) for n in names]
    ref = systems[0]
    figures: dict[str, dict] = {}
    for s in systems:
        figures[f"{s.name}_params"] = {"value": float(s.params), "unit": "parameters"}
        figures[f"{s.name}_sm_context_frames"] = {"value": float(s.sm.context_frames), "unit": "frames"}
    for n in threads:
        torch.set_num_threads(n)
        res = measure(systems, batch, bsz, rounds, steps, variants=("",))
        for s in systems:
            step = res[s.name][0]
            figures[f"{s.name}_s_per_step_{n}thr"] = {"value": round(step, 4), "unit": "s/step"}
            if s is not ref:
                r = round(step / res[ref.name][0], 3)
                figures[f"{s.name}_step_cost_over_sm_dm_{n}thr"] = {
                    "value": r, "unit": "x", "ratio": r,
                    "reference": f"default sm_dm {res[ref.name][0]:.3f} s/step"}
    write_result("train_sm", figures, quick=quick,
                 notes=f"batch {bsz}, median of {rounds} interleaved rounds x {steps} steps; CPU fast paths; "
                       f"torch threads {','.join(map(str, threads))}; SM choices of conf/model/sm/")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small batch, few rounds (seconds)")
    ap.add_argument("--threads", default="1,2",
                    help="comma-separated torch thread counts to measure (default 1,2)")
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--sm", default="", help="comma-separated conf/model/sm choices to time against the "
                    "default SM+DM (writes train_sm.json instead)")
    args = ap.parse_args()
    torch.manual_seed(0)
    bsz = 8 if args.quick else 16  # conf/train.yaml datamodule.batch_size
    rounds = args.rounds or (3 if args.quick else 7)
    steps_per_round = 1 if args.quick else 2
    if args.sm:
        threads = [int(t) for t in str(args.threads).split(",") if t.strip()]
        sm_choices([n for n in args.sm.split(",") if n], threads, bsz, rounds, steps_per_round, args.quick)
        return
    batch = make_batch(bsz)
    epochs = int(compose([]).trainer.max_epochs)  # the shipped budget (conf/callbacks/sgdr.yaml)
    systems = [SmDmStep(), MeanTeacherStep()]
    a, b = systems[0].name, systems[1].name
    figures: dict[str, dict] = {
        f"{s.name}_params": {"value": float(s.params), "unit": "parameters"} for s in systems
    }
    for n in [int(t) for t in str(args.threads).split(",") if t.strip()]:
        torch.set_num_threads(n)
        res = measure(systems, batch, bsz, rounds, steps_per_round)
        rate = {}
        for s in systems:
            step, per_clip = res[s.name]
            rate[s.name] = bsz / step
            epoch = EPOCH_CLIPS / rate[s.name] + per_clip * VAL_CLIPS
            figures[f"{s.name}_train_clips_per_s_{n}thr"] = {"value": round(rate[s.name], 2),
                                                             "unit": "clips/s"}
            figures[f"{s.name}_s_per_epoch_{n}thr"] = {
                "value": round(epoch, 1), "unit": "s/epoch",
                "reference": f"{EPOCH_CLIPS} training clips + {VAL_CLIPS} validation clips"}
            figures[f"{s.name}_min_per_run_{n}thr"] = {
                "value": round(epochs * epoch / 60, 1), "unit": "min", "reference": f"{epochs} epochs"}
            lib = res[f"{s.name}/library_conv"][0]
            figures[f"{s.name}_fast_conv_speedup_{n}thr"] = {
                "value": round(lib / step, 2), "unit": "x", "ratio": round(lib / step, 2),
                "reference": f"library convolutions: {lib:.3f} s/step, fast paths: {step:.3f} s/step"}
        figures[f"throughput_ratio_smdm_over_baseline_{n}thr"] = {
            "value": round(rate[a] / rate[b], 3), "unit": "x", "ratio": round(rate[a] / rate[b], 3)}
    write_result("train", figures, quick=args.quick,
                 notes=f"batch {bsz}, median of {rounds} interleaved rounds x {steps_per_round} steps; "
                       f"torch threads {args.threads}")


if __name__ == "__main__":
    main()
