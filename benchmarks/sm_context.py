"""Why SM trails the CRNN: measurements only, no training (issue 20, part 1).

What this measures, and where each figure comes from:

1. **Temporal receptive fields**, from the built (untrained) networks of ``conf/train.yaml``: SM, DM
   (``build_model()``) and the baseline CRNN (``build_model(["experiment=baseline"])``). Computed from
   the layer sizes and checked empirically: in float64 and eval mode, each input frame of a random
   (1, 640, 64) log-mel is perturbed in turn, and the script records which input frames change output
   frame 320 (SM's and the CRNN's frame output; also the CRNN's convolutional front-end before the GRU)
   or the clip output (DM).
2. **Event lengths per class**, from strong labels: the real DESED validation metadata
   (``/work/shared/desed-real/metadata/validation/validation.tsv``, when that folder exists) and the
   bundled generated data (``data/mini-desed``: its validation split and its synthetic training
   soundscapes). Median and 10/90 percentiles in seconds and frames, the share of events longer than
   SM's receptive field, the frame prevalence (the chance level of frame AP), and how often a class
   repeats within a clip (gaps between consecutive events of the same class). Also, from events drawn
   from the bundled generator: how much of each class's labelled frames has no audible event energy
   within SM's context (:func:`audibility`).
3. **SM's frequency path** against the CRNN's: the mel bins and Hz bands each unit summarises after every
   block (``librosa.mel_frequencies`` with the feature spec of ``sed.core.constants``; Slaney mels).
4. **The claims run of dataset seed 2026** (``docs/claims/claims_2026_*.json``): per run the held-out
   frame mAP at the held-out-selected epoch and the per-class event F1. The JSON holds no per-epoch
   curves; the per-class held-out frame AP per epoch exists only as the rendered
   ``docs/figures/claims_curves.png`` (from the runs' ``metrics.csv``, which are not in the repository),
   so a few values were read off that figure by eye (``READ_OFF_CURVES``, +-0.03).

Nothing here was tuned: no choice of the models or the post-processing depends on these figures.

    python -m benchmarks.sm_context    # -> benchmarks/results/sm_context.json, docs/figures/sm_context.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from sed.core.constants import DEFAULT_FEATURES, FRAME_SECONDS, N_FRAMES
from sed.core.constants import DESED_CLASSES as CLASSES

REPO = Path(__file__).resolve().parents[1]
REAL_META = Path("/work/shared/desed-real/metadata")
BUNDLED_META = REPO / "data" / "mini-desed" / "metadata"
CLAIMS_DIR = REPO / "docs" / "claims"
FIGURE = REPO / "docs" / "figures" / "sm_context.png"
RESULT = Path(__file__).resolve().parent / "results" / "sm_context.json"

#: Per-class held-out (synthetic) frame AP, mean over the 3 training seeds of the claims run (dataset seed
#: 2026), read BY EYE off docs/figures/claims_curves.png (panels "PS1/PS2/Baseline: held-out frame AP per
#: class"), about +-0.03. Epoch 5 (1-based) is the last synthetic-only epoch of PS1/PS2: 500 steps for every
#: system. The exact numbers are in the runs' metrics.csv (val/holdout_ap/<class>), not in the repository.
READ_OFF_CURVES = {
    "epochs": [5, 10, 15],
    "PS1": {"Dishes": [0.03, 0.02, 0.02], "Dog": [0.03, 0.02, 0.03], "Speech": [0.12, 0.14, 0.20],
            "Cat": [0.55, 0.45, 0.47]},
    "PS2": {"Dishes": [0.03, 0.04, 0.05], "Dog": [0.03, 0.03, 0.04], "Speech": [0.12, 0.25, 0.33],
            "Cat": [0.55, 0.59, 0.61]},
    "Baseline": {"Dishes": [0.01, 0.12, 0.32], "Dog": [0.03, 0.24, 0.42], "Speech": [0.10, 0.40, 0.42],
                 "Cat": [0.33, 0.50, 0.65]},
    # panel "validation (real) frame mAP" of the same figure
    "val_frame_map": {"PS1": [0.31, 0.42, 0.44], "PS2": [0.32, 0.44, 0.47], "Baseline": [0.35, 0.51, 0.57]},
}

#: Held-out frame AP per class documented in docs/RESULTS.md (issue 11 diagnosis), single runs, for reference.
ISSUE11_TABLE = {
    "note": "docs/RESULTS.md, issue 11: SM rows at epoch 4, the CRNN at its last epoch (15): not equal steps",
    "rows": {
        "SM head 9 (0.23 s), dataset seed 0, epoch 4": {"Dishes": 0.02, "Dog": 0.05, "Speech": 0.45,
                                                        "Cat": 0.54},
        "SM head 31 (0.58 s), dataset seed 0, epoch 4": {"Dishes": 0.02, "Dog": 0.07, "Speech": 0.63,
                                                         "Cat": 0.58},
        "CRNN, dataset seed 2026, training seed 0, epoch 15": {"Dishes": 0.30, "Dog": 0.53, "Speech": 0.38,
                                                               "Cat": 0.65},
        "SM (PS2), dataset seed 2026, training seed 0, epoch 4": {"Dishes": 0.02, "Dog": 0.03, "Speech": 0.09,
                                                                  "Cat": 0.54},
    },
}


# ----------------------------------------------------------------------------------------------------------
# 1. receptive fields


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _pool_of(block: nn.Module) -> tuple[int, int]:
    """(time, freq) pool of a ConvBlock (1, 1 when it does not pool)."""
    return (1, 1) if isinstance(block.pool, nn.Identity) else _pair(block.pool.kernel_size)


def rf_from_layers(layers: list[tuple[int, int]]) -> int:
    """Receptive field (input positions) of a stack of (kernel, stride) layers along one axis."""
    r, jump = 1, 1
    for k, s in layers:
        r += (k - 1) * jump
        jump *= s
    return r


def blocks_layers(blocks: nn.Sequential, axis: int) -> list[tuple[int, int]]:
    """(kernel, stride) per conv and pool of ConvBlocks along ``axis`` (0 time, 1 freq)."""
    out = []
    for b in blocks:
        out.append((_pair(b.conv.kernel_size)[axis], 1))
        p = _pool_of(b)[axis]
        if p > 1:
            out.append((p, p))
    return out


def _dependence(fn, x: torch.Tensor, candidates: list[int], chunk: int = 16, seed: int = 1) -> list[int]:
    """Input frames among ``candidates`` whose perturbation changes ``fn(x)`` (a tensor per clip)."""
    g = torch.Generator().manual_seed(seed)
    ref = fn(x)
    hits = []
    for i in range(0, len(candidates), chunk):
        ts = candidates[i:i + chunk]
        xb = x.repeat(len(ts), 1, 1)
        for j, t in enumerate(ts):
            xb[j, t] += 3.0 * torch.randn(x.shape[-1], generator=g, dtype=x.dtype) + 2.0
        diff = (fn(xb) - ref).abs().reshape(len(ts), -1).amax(1)
        hits += [t for t, d in zip(ts, diff.tolist()) if d > 0]
    return hits


def _span(hits: list[int]) -> dict:
    if not hits:
        return {"first": None, "last": None, "n_frames": 0, "contiguous": True}
    return {"first": min(hits), "last": max(hits), "n_frames": len(hits),
            "contiguous": len(hits) == max(hits) - min(hits) + 1}


def receptive_fields() -> tuple[dict, dict]:
    """Analytic and empirical temporal receptive fields of SM, DM and the CRNN; also their modules."""
    from sed.train import build_model

    torch.manual_seed(0)
    sed_sys = build_model().double().eval()
    crnn_sys = build_model(["experiment=baseline"]).double().eval()
    sm, dm, crnn = sed_sys.sm, sed_sys.dm, crnn_sys.student
    dt = FRAME_SECONDS
    x = torch.randn(1, N_FRAMES, DEFAULT_FEATURES.n_mels, dtype=torch.float64)
    t_out = N_FRAMES // 2
    everything = list(range(N_FRAMES))
    res: dict = {"frame_seconds": dt, "output_frame_probed": t_out,
                 "stft_window_frames": DEFAULT_FEATURES.n_fft / DEFAULT_FEATURES.hop_length}

    with torch.no_grad():
        # SM: three 3x3 convs (time stride 1) and a temporal head
        sm_layers = blocks_layers(sm.blocks, 0) + [(sm.head.kernel_size[0], 1)]
        sm_rf = rf_from_layers(sm_layers)
        hits = _dependence(lambda z: sm(z)[:, t_out], x, everything)
        edge = _dependence(lambda z: sm(z)[:, 0], x, list(range(40)))
        res["SM"] = {"analytic_frames": sm_rf, "half_width_frames": sm.context_frames,
                     "analytic_seconds": sm_rf * dt, "audio_span_seconds":
                     ((sm_rf - 1) * DEFAULT_FEATURES.hop_length + DEFAULT_FEATURES.n_fft)
                     / DEFAULT_FEATURES.sample_rate,
                     "empirical": _span(hits), "empirical_output_frame_0": _span(edge),
                     "layers_time": sm_layers}
        # the CRNN: its conv front-end (time pooled x4), then a 2-layer BiGRU over the whole clip
        front_layers = blocks_layers(crnn.blocks, 0)
        front_rf = rf_from_layers(front_layers)
        step = t_out // crnn_sys.student.time_pool

        def front(z):
            h = crnn.blocks(crnn.norm(z).unsqueeze(1))
            return h[:, :, step]

        front_hits = _dependence(front, x, everything)
        crnn_hits = _dependence(lambda z: crnn(z)[0][:, t_out], x, everything)
        # the untrained GRU's influence decays with distance: the size of the change, by distance
        g = torch.Generator().manual_seed(2)
        ref = crnn(x)[0][:, t_out]
        decay = {}
        for dist in (0, 20, 40, 80, 120, 200, 300):
            x2 = x.clone()
            x2[0, t_out - dist] += 3.0 * torch.randn(x.shape[-1], generator=g, dtype=x.dtype) + 2.0
            decay[dist] = float((crnn(x2)[0][:, t_out] - ref).abs().max())
        res["CRNN_change_by_distance_at_init"] = decay
        res["CRNN"] = {"time_pool": crnn.time_pool, "frontend_analytic_frames": front_rf,
                       "frontend_analytic_seconds": front_rf * dt, "frontend_empirical": _span(front_hits),
                       "frontend_output_step": step, "empirical": _span(crnn_hits),
                       "empirical_seconds": len(crnn_hits) * dt, "layers_time": front_layers}
        # DM: clip level; one final time step sees dm_rf frames, the clip pooling sees all of them
        dm_layers = blocks_layers(dm.blocks, 0)
        dm_hits = _dependence(lambda z: dm(z), x, everything)
        res["DM"] = {"final_step_analytic_frames": rf_from_layers(dm_layers),
                     "final_step_analytic_seconds": rf_from_layers(dm_layers) * dt,
                     "clip_output_empirical": _span(dm_hits), "layers_time": dm_layers}
    return res, {"sm": sm, "dm": dm, "crnn": crnn}


# ----------------------------------------------------------------------------------------------------------
# 2. event lengths


def _read_labels(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t")


def event_stats(df: pd.DataFrame, clip_seconds: dict[str, float] | None, sm_rf_s: float,
                crnn_front_s: float, longer_head_s: float) -> dict:
    """Per class: duration percentiles, share longer than the receptive fields, frame prevalence,
    repetitions within a clip."""
    files = df["filename"].astype(str).unique().tolist()
    if clip_seconds is None:
        clip_seconds = {f: DEFAULT_FEATURES.clip_seconds for f in files}
    ev = df.dropna(subset=["onset", "offset", "event_label"]).copy()
    ev["dur"] = (ev["offset"] - ev["onset"]).clip(lower=0.0)
    total_frames = sum(min(N_FRAMES, int(np.ceil(s / FRAME_SECONDS))) for s in clip_seconds.values())
    out: dict = {"n_clips": len(clip_seconds), "n_events": int(len(ev)), "classes": {}}
    for c in CLASSES:
        e = ev[ev["event_label"] == c]
        if e.empty:
            out["classes"][c] = {"n": 0}
            continue
        d = e["dur"].to_numpy()
        p10, p50, p90 = np.percentile(d, [10, 50, 90])
        active = 0  # frames with the class active (overlapping events of one class merged)
        gaps, per_clip = [], []
        for _, g in e.groupby("filename"):
            mask = np.zeros(N_FRAMES, bool)
            for on, off in zip(g["onset"], g["offset"]):
                mask[int(np.floor(on / FRAME_SECONDS)):int(np.ceil(off / FRAME_SECONDS))] = True
            active += int(mask.sum())
            g = g.sort_values("onset")
            per_clip.append(len(g))
            gaps += (g["onset"].to_numpy()[1:] - g["offset"].to_numpy()[:-1]).tolist()
        gaps = np.asarray(gaps)
        out["classes"][c] = {
            "n": int(len(d)),
            "median_s": float(p50), "p10_s": float(p10), "p90_s": float(p90),
            "median_frames": float(p50 / FRAME_SECONDS), "p10_frames": float(p10 / FRAME_SECONDS),
            "p90_frames": float(p90 / FRAME_SECONDS),
            "share_longer_than_sm_rf": float(np.mean(d > sm_rf_s)),
            "share_longer_than_sm_head31_rf": float(np.mean(d > longer_head_s)),
            "share_longer_than_crnn_frontend_rf": float(np.mean(d > crnn_front_s)),
            "frame_prevalence": active / total_frames,
            "clips_with_class": len(per_clip),
            "share_clips_with_repeats": float(np.mean(np.asarray(per_clip) > 1)),
            "median_gap_s_between_repeats": float(np.median(gaps)) if len(gaps) else None,
            "durations_s": [round(float(v), 4) for v in d],
        }
    return out


def label_sources(sm_rf_s: float, crnn_front_s: float, longer_head_s: float) -> dict:
    srcs: dict = {}
    args = (sm_rf_s, crnn_front_s, longer_head_s)
    real_val = REAL_META / "validation" / "validation.tsv"
    if real_val.exists():
        dur_tsv = REAL_META / "validation" / "validation_durations.tsv"
        durs = None
        if dur_tsv.exists():
            dd = pd.read_csv(dur_tsv, sep="\t")
            durs = dict(zip(dd["filename"].astype(str), dd["duration"].astype(float)))
        stats = event_stats(_read_labels(real_val), durs, *args)
        srcs["real DESED validation"] = {"path": str(real_val), **stats}
    else:
        print(f"note: {REAL_META} not found: real DESED metadata skipped, bundled generated data only")
    for name, rel in (("bundled validation (generated, dataset seed 0)", "validation/validation.tsv"),
                      ("bundled synthetic training (generated, dataset seed 0)",
                       "train/synthetic20/soundscapes.tsv")):
        p = BUNDLED_META / rel
        if p.exists():
            srcs[name] = {"path": str(p.relative_to(REPO)), **event_stats(_read_labels(p), None, *args)}
    return srcs


def audibility(half_widths: dict[str, int], n_events: int = 80, seed: int = 0) -> dict:
    """Inside a generated event's label, how often is the event itself audible, and how often does a
    window of +-h frames around a labelled frame hold no audible frame at all (a model with that context
    has no acoustic evidence there, however long it trains)?

    Events come from the bundled generator (``sed.generator.synth``, trimmed as ``sed.generate`` trims
    them), scaled to the recipe's SNR range against a background of RMS 1 (synthetic 6-24 dB, real 0-18
    dB). A frame is audible when the event's power in the STFT window (2048 samples, centred, hop 345) is
    above the background's (local SNR > 0 dB): a crude masking criterion, stated as such."""
    from sed.generate import _trim
    from sed.generator.synth import SOURCES, SOURCES_REAL

    spec = DEFAULT_FEATURES
    sr, hop, win = spec.sample_rate, spec.hop_length, spec.n_fft
    rng = np.random.default_rng(seed)
    out: dict = {"n_events_per_class": n_events, "criterion": "event power in the 2048-sample window > "
                 "background power (RMS 1), SNR drawn from the recipe's range", "variants": {}}
    for variant, table, snr in (("synthetic", SOURCES, (6.0, 24.0)), ("real", SOURCES_REAL, (0.0, 18.0))):
        res = {}
        for c in CLASSES:
            n_lab, n_silent = 0, 0
            blind = dict.fromkeys(half_widths, 0)
            for _ in range(n_events):
                x = _trim(table[c](rng, sr), sr)
                x = x * (10 ** (rng.uniform(*snr) / 20) / (np.sqrt(np.mean(x ** 2)) + 1e-12))
                n = int(np.ceil(len(x) / hop))
                cs = np.concatenate([[0.0], np.cumsum(np.pad(x ** 2, (win // 2, win // 2 + hop)))])
                centre = np.arange(n) * hop + win // 2
                aud = (cs[centre + win // 2] - cs[centre - win // 2]) / win > 1.0
                n_lab += n
                n_silent += int((~aud).sum())
                for name, h in half_widths.items():
                    seen = np.convolve(aud.astype(float), np.ones(2 * h + 1), mode="same") > 0
                    blind[name] += int((~seen).sum())
            res[c] = {"labelled_frames": n_lab, "share_inaudible": n_silent / n_lab,
                      **{f"share_no_audible_frame_within_{k}": v / n_lab for k, v in blind.items()}}
        out["variants"][variant] = res
    return out


# ----------------------------------------------------------------------------------------------------------
# 3. frequency paths


def frequency_path(blocks: nn.Sequential, n_mels: int, edges: np.ndarray) -> list[dict]:
    """Per block: the mel-bin units left, the bins each unit pools (and sees, with the conv halos) and
    their Hz bands (a mel bin i spans edges[i]..edges[i+2], Slaney)."""
    stages, n, stride, rf = [], n_mels, 1, 1
    for i, b in enumerate(blocks):
        k = _pair(b.conv.kernel_size)[1]
        rf += (k - 1) * stride
        p = _pool_of(b)[1]
        ch = b.bn.num_features
        conv_at = n
        if p > 1:
            rf += (p - 1) * stride
            stride *= p
            n //= p
        units = []
        for u in range(n):
            lo, hi = u * stride, min(n_mels, (u + 1) * stride) - 1
            hz = [round(float(edges[lo]), 1), round(float(edges[hi + 2]), 1)]
            units.append({"bins": [lo, hi], "hz": hz})
        kind = "none" if p == 1 else ("avg" if isinstance(b.pool, nn.AvgPool2d) else "max")
        stages.append({"block": i + 1, "channels": int(ch), "conv_at_bins": conv_at, "freq_pool": p,
                       "pool_type": kind,
                       "units_after": n, "bins_pooled_per_unit": stride,
                       "bins_seen_per_unit": int(min(rf, n_mels)), "features_per_frame": int(ch * n),
                       "units": units if n <= 16 else units[:2] + [{"...": n - 4}] + units[-2:]})
    return stages


def frequency_paths(models: dict) -> dict:
    import librosa

    spec = DEFAULT_FEATURES
    fmax = spec.fmax if spec.fmax is not None else spec.sample_rate / 2
    edges = librosa.mel_frequencies(n_mels=spec.n_mels + 2, fmin=spec.fmin, fmax=fmax, htk=False)
    return {"n_mels": spec.n_mels, "fmin": spec.fmin, "fmax": fmax,
            "bin_centres_hz": [round(float(v), 1) for v in edges[1:-1]],
            "SM": frequency_path(models["sm"].blocks, spec.n_mels, edges),
            "CRNN": frequency_path(models["crnn"].blocks, spec.n_mels, edges),
            "DM": frequency_path(models["dm"].blocks, spec.n_mels, edges)}


# ----------------------------------------------------------------------------------------------------------
# 4. the claims run


def claims_figures() -> dict:
    out: dict = {"files": [], "missing": (
        "No per-epoch curves in the claims JSON: neither the per-class held-out frame AP "
        "(val/holdout_ap/<class>) nor the validation frame mAP (val/frame_map) per epoch; they live in the "
        "runs' csv/version_*/metrics.csv (outputs/claims/2026/<system>/seed<k>), which are not in the "
        "repository. Only the rendered docs/figures/claims_curves.png carries them (READ_OFF_CURVES).")}
    for p in sorted(CLAIMS_DIR.glob("claims_2026_*.json")):
        d = json.loads(p.read_text())
        entry: dict = {"file": str(p.relative_to(REPO)), "trainings": {}, "per_class_f1": {},
                       "checkpoint": d.get("checkpoint", "held-out selection")}
        for key, v in d.get("trainings", {}).items():  # "<system>/seed<k>"
            if isinstance(v, dict):
                entry["trainings"][key] = {"best_epoch": v.get("best_epoch"),
                                           "holdout_frame_map": v.get("holdout_frame_map")}
        for unit, splits in d.get("aggregate", {}).items():
            for split, figs in splits.items():
                pc = figs.get("per_class_f1") or {}
                entry["per_class_f1"].setdefault(unit, {})[split] = {
                    c: {"mean": v["mean"], "sd": v["sd"]} for c, v in pc.items()}
        out["files"].append(entry)
    return out


# ----------------------------------------------------------------------------------------------------------
# 5. the figure


def plot(rf: dict, labels: dict, claims: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 10.5))
    gs = fig.add_gridspec(2, 1, height_ratios=[1.5, 1.0], hspace=0.3)
    top = gs[0].subgridspec(1, 2, width_ratios=[5, 3], wspace=0.05)
    bottom = gs[1].subgridspec(1, 5, wspace=0.35)
    ax = fig.add_subplot(top[0])
    srcs = list(labels)
    colours = ["tab:blue", "tab:orange", "tab:gray"]
    width = 0.8 / max(1, len(srcs))
    ys = np.arange(len(CLASSES))
    for i, s in enumerate(srcs):
        data = [labels[s]["classes"][c].get("durations_s") or [np.nan] for c in CLASSES]
        pos = ys - 0.4 + width * (i + 0.5)
        bp = ax.boxplot(data, positions=pos, widths=width * 0.85, orientation="horizontal", whis=(10, 90),
                        showfliers=False, patch_artist=True, manage_ticks=False)
        for b in bp["boxes"]:
            b.set(facecolor=colours[i % 3], alpha=0.55)
        ax.plot([], [], color=colours[i % 3], lw=6, alpha=0.55, label=s)
    sm_s = rf["SM"]["analytic_seconds"]
    front_s = rf["CRNN"]["frontend_analytic_seconds"]
    ax.axvline(sm_s, color="tab:red", lw=2, label=f"SM receptive field ({rf['SM']['analytic_frames']} fr = "
               f"{sm_s:.2f} s)")
    h31 = rf["SM_head31_frames"]
    ax.axvline(h31 * FRAME_SECONDS, color="tab:red", lw=1, ls=":",
               label=f"SM with a 31-frame head ({h31} fr = {h31 * FRAME_SECONDS:.2f} s; issue 11 run)")
    ax.axvline(front_s, color="tab:green", lw=2, ls="--",
               label=f"CRNN conv front-end ({rf['CRNN']['frontend_analytic_frames']} fr = {front_s:.2f} s)")
    ax.axvline(10.0, color="tab:green", lw=2, label="CRNN with its BiGRU: whole clip (640 fr = 10 s)")
    ax.set_xscale("log")
    ax.set_xlim(0.004, 12)
    ax.set_yticks(ys, [c.replace("_", " ") for c in CLASSES], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("event duration (s, log); boxes: quartiles, whiskers: 10th-90th percentile")
    ax.set_title("Event lengths per class against the temporal receptive fields", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3, which="both", axis="x")

    ax2 = fig.add_subplot(top[1], sharey=ax)
    files = claims["files"]
    last = next((f for f in files if f["checkpoint"] == "last"), files[0] if files else None)
    if last:
        units = [u for u in ("ps1", "ps2", "baseline") if u in last["per_class_f1"]]
        names = {"ps1": "PS1 (SM)", "ps2": "PS2 (SM)", "baseline": "Baseline (CRNN)"}
        cols = {"ps1": "tab:blue", "ps2": "tab:orange", "baseline": "tab:green"}
        w = 0.8 / max(1, len(units))
        for i, u in enumerate(units):
            pc = last["per_class_f1"][u].get("public_eval", {})
            m = [100 * pc.get(c, {}).get("mean", np.nan) for c in CLASSES]
            sd = [100 * pc.get(c, {}).get("sd", np.nan) for c in CLASSES]
            ax2.barh(ys - 0.4 + w * (i + 0.5), m, height=w, xerr=sd, color=cols[u], alpha=0.8, label=names[u],
                     error_kw={"lw": 0.8})
        ax2.set_xlabel("event F1 (%), public_eval, fitted post-processing")
        ax2.set_title("Claims run (dataset seed 2026, last epoch), mean +- sd of 3 seeds", fontsize=9)
        ax2.legend(fontsize=7, loc="upper right")
        ax2.grid(alpha=0.3, axis="x")
        plt.setp(ax2.get_yticklabels(), visible=False)

    ep = READ_OFF_CURVES["epochs"]
    cls4 = ["Dishes", "Dog", "Speech", "Cat"]
    for j, c in enumerate(cls4 + ["val mAP"]):
        a = fig.add_subplot(bottom[j])
        for u, col in (("PS1", "tab:blue"), ("PS2", "tab:orange"), ("Baseline", "tab:green")):
            vals = READ_OFF_CURVES["val_frame_map"][u] if c == "val mAP" else READ_OFF_CURVES[u][c]
            a.plot(ep, vals, "o-", color=col, label=u)
        if c != "val mAP":
            prev = labels.get("bundled synthetic training (generated, dataset seed 0)", {}).get("classes", {})
            if c in prev:
                a.axhline(prev[c]["frame_prevalence"], color="k", ls=":", lw=1,
                          label="chance")
        a.set_xticks(ep)
        a.set_ylim(0, 1 if c != "val mAP" else 0.7)
        a.set_xlabel("epoch (100 steps each)", fontsize=8)
        a.set_title(f"held-out frame AP: {c}" if c != "val mAP" else "validation frame mAP", fontsize=9)
        a.grid(alpha=0.3)
        if j == 0:
            a.legend(fontsize=7, loc="upper left")
    fig.text(0.5, 0.0, "Bottom row: read by eye (+-0.03) off docs/figures/claims_curves.png (claims run, "
             "dataset seed 2026, mean of 3 seeds); the per-epoch numbers are not in docs/claims/*.json. "
             "Chance = frame prevalence in the bundled synthetic clips.\nTop left: strong labels (real DESED "
             "validation metadata; bundled generated data, dataset seed 0). Top right: docs/claims/"
             "claims_2026_last.json.",
             ha="center", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------


def _print_summary(res: dict) -> None:
    rf = res["receptive_fields"]
    print(f"SM receptive field: {rf['SM']['analytic_frames']} frames = {rf['SM']['analytic_seconds']:.3f} s "
          f"(empirical, output frame 320: {rf['SM']['empirical']})")
    print(f"CRNN front-end: {rf['CRNN']['frontend_analytic_frames']} frames (empirical "
          f"{rf['CRNN']['frontend_empirical']}); with the GRU: {rf['CRNN']['empirical']}")
    print(f"DM clip output depends on {rf['DM']['clip_output_empirical']}")
    for src, st in res["event_lengths"].items():
        print(f"\n{src}: {st['n_events']} events, {st['n_clips']} clips")
        print(f"  {'class':<27}{'n':>5}{'p10':>7}{'med':>7}{'p90':>7}{'>SM':>6}{'prev':>7}{'rep':>6}")
        for c, v in st["classes"].items():
            if v.get("n"):
                print(f"  {c:<27}{v['n']:>5}{v['p10_s']:>7.2f}{v['median_s']:>7.2f}{v['p90_s']:>7.2f}"
                      f"{v['share_longer_than_sm_rf']:>6.2f}{v['frame_prevalence']:>7.3f}"
                      f"{v['share_clips_with_repeats']:>6.2f}")
    aud = res["audibility_within_labels"]["variants"]
    print("\ninside generated labels: share of frames inaudible / with no audible frame within SM's context")
    for c in CLASSES:
        print(f"  {c:<27}" + "  ".join(f"{v}: {aud[v][c]['share_inaudible']:.2f} / "
                                       f"{aud[v][c]['share_no_audible_frame_within_SM']:.3f}" for v in aud))
    for name in ("SM", "CRNN"):
        print(f"\n{name} frequency path:")
        for s in res["frequency"][name]:
            print(f"  block {s['block']}: conv {s['channels']} ch at {s['conv_at_bins']} bins, "
                  f"{s['pool_type']} pool /{s['freq_pool']} -> {s['units_after']} units x "
                  f"{s['bins_pooled_per_unit']} bins (sees {s['bins_seen_per_unit']})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sm_context", description=__doc__.split("\n")[0])
    ap.parse_args(argv)
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    rf, models = receptive_fields()
    sm_s = rf["SM"]["analytic_seconds"]
    front_s = rf["CRNN"]["frontend_analytic_seconds"]
    rf["SM_head31_frames"] = rf["SM"]["analytic_frames"] - rf["SM"]["layers_time"][-1][0] + 31
    head31_s = rf["SM_head31_frames"] * FRAME_SECONDS
    labels = label_sources(sm_s, front_s, head31_s)
    half = {"SM": rf["SM"]["half_width_frames"], "SM_head31": rf["SM_head31_frames"] // 2,
            "CRNN_frontend": rf["CRNN"]["frontend_analytic_frames"] // 2}
    res = {"benchmark": "sm_context", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "real_desed_metadata": REAL_META.exists(),
           "receptive_fields": rf, "sm_head31_rf_seconds": head31_s,
           "event_lengths": labels, "audibility_within_labels": audibility(half),
           "frequency": frequency_paths(models), "claims": claims_figures(),
           "read_off_claims_curves": READ_OFF_CURVES, "issue11_table": ISSUE11_TABLE}
    plot(rf, labels, res["claims"], FIGURE)
    for src in labels.values():  # the raw durations drew the figure; the JSON keeps the percentiles
        for v in src["classes"].values():
            v.pop("durations_s", None)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(res, indent=1) + "\n")
    _print_summary(res)
    print(f"\n-> {RESULT.relative_to(REPO)}, {FIGURE.relative_to(REPO)} ({res['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
