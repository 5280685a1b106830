"""Benchmark: ``sed detect`` on long recordings (issue 6, point 7).

Figures:

- real-time factor on CPU (seconds of audio per second of compute) for one hour of audio, end to
  end: decoding, resampling (16 kHz -> 22.05 kHz), 10 s windows with 50 % overlap, log-mel, the
  SM+DM model, stitching, post-processing, writing the TSV;
- the peak resident memory of the run for a 10-minute and a 60-minute recording, each in a fresh
  subprocess (VmHWM), their difference, and the working memory (peak minus the resident memory
  once the model is loaded): with streaming it must not grow with length (the only per-file state
  is the stitched frame probabilities, 9 MB per hour);
- for reference, the peak memory of decoding the same hour in one piece and resampling it (what a
  whole-file loader would need before any model runs);
- the memory that does grow with length, measured alone (tracemalloc): the stitched frame
  probabilities of one hour and their post-processing (one class at a time).

The model is the paper's SM+DM (conf/model/sm_dm.yaml) with random weights unless ``--ckpt`` names
a trained checkpoint: speed and memory do not depend on the weights.

    python -m benchmarks.bench_detect            # 10 and 60 min
    python -m benchmarks.bench_detect --quick    # 2 and 6 min: a sanity run only

The memory figures are read off the full run: over the first minutes the allocator's resident set
still rises to a plateau (about 300-375 MB of working memory on our machine, at 6 min as at 60),
so the quick run's 2-to-6-minute difference is that warm-up, not growth with length.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.common import write_result

REPO = Path(__file__).resolve().parents[1]
INPUT_SR = 16000


def make_recording(path: Path, minutes: float, sr: int = INPUT_SR, seed: int = 0) -> Path:
    """Noise with tones switched on and off, written block by block (16-bit mono)."""
    rng = np.random.default_rng(seed)
    block = 60 * sr
    n_total = int(minutes * 60 * sr)
    with sf.SoundFile(str(path), "w", sr, 1, subtype="PCM_16") as f:
        done = 0
        while done < n_total:
            n = min(block, n_total - done)
            t = (done + np.arange(n)) / sr
            x = 0.01 * rng.standard_normal(n)
            for freq, period in ((1000.0, 37.0), (3000.0, 53.0)):
                x += 0.2 * np.sin(2 * np.pi * freq * t) * ((t % period) < 4.0)
            f.write(x.astype(np.float32))
            done += n
    return path


def make_untrained_checkpoint(path: Path) -> Path:
    import torch

    from sed.train import build_model

    torch.manual_seed(0)
    system = build_model()  # conf/train.yaml's model (conf/model/sm_dm.yaml, conf/postproc/default.yaml)
    torch.save({"state_dict": system.state_dict(), "hyper_parameters": dict(system.hparams)}, path)
    return path


def _maxrss_mb() -> float:
    """Peak resident memory of this process (MB). Linux: VmHWM of /proc/self/status, which starts
    afresh at exec (``ru_maxrss`` does not: it keeps the forking parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB; macOS: bytes


def child_detect(audio: str, ckpt: str, out: str, batch_size: int, overlap: float = 0.5, reuse: bool = True,
                 malloc: bool = True) -> dict:
    """Runs in a fresh process: load the system, detect, report times and peak memory, as ``sedx detect``
    does. ``reuse=False``: the log-mel and SM on every whole window, as before sed/detect/overlap.py;
    ``malloc=False``: glibc's default allocator settings (sed.core.memory); the same-run references."""
    import torch

    from sed.core.memory import keep_freed_memory
    from sed.detect.overlap import FrameReuse, MelReuse
    from sed.detect.run import DetectOptions, load_predictor, run_detect

    if not reuse:
        FrameReuse.plan = MelReuse.plan = classmethod(lambda cls, *a: None)
    if malloc:
        keep_freed_memory()  # what ``sedx detect`` does first

    t0 = time.perf_counter()
    pred = load_predictor(ckpt, "cpu")
    t_load = time.perf_counter() - t0
    rss_loaded = _maxrss_mb()
    t0 = time.perf_counter()
    summary = run_detect([audio], pred, DetectOptions(out=out, quiet=True, batch_size=batch_size,
                                                           overlap=overlap))
    t_run = time.perf_counter() - t0
    assert not summary.failed, summary.failed
    return {"load_s": t_load, "run_s": t_run, "rss_loaded_mb": rss_loaded, "peak_rss_mb": _maxrss_mb(),
            "audio_s": sf.info(audio).duration, "threads": torch.get_num_threads()}


def child_profile(audio: str, ckpt: str, out: str, batch_size: int, overlap: float = 0.5) -> dict:
    """Stage by stage over the whole file, each stage timed on its own (the run_detect path taken apart):
    decode, resample, windowing, log-mel, SM forward, DM forward, stitching, post-processing, writing.
    Also the forward pass alone without overlap (the no-overlap forward-pass limit)."""
    from types import SimpleNamespace

    import torch

    from sed.audio.features import LogMel
    from sed.core.constants import DESED_CLASSES as CLASSES
    from sed.core.constants import FRAME_SECONDS
    from sed.core.memory import keep_freed_memory
    from sed.detect.overlap import FrameReuse, MelReuse, frame_forward, logmel_windows
    from sed.detect.run import decode_by_class, load_predictor
    from sed.detect.stream import stream_mono
    from sed.detect.windows import Stitcher, Windower, WindowSpec
    from sed.detect.writer import EventWriter
    from sed.postproc import decode
    from sed.postproc.files import read_postproc_file

    keep_freed_memory()  # as sedx detect
    t = dict.fromkeys(
        ("decode", "resample", "windowing", "logmel", "sm", "dm", "stitch", "postproc", "write"), 0.0
    )
    dur = sf.info(audio).duration
    t0 = time.perf_counter()
    with sf.SoundFile(audio) as f:
        while len(f.read(1 << 16, dtype="float32", always_2d=True)):
            pass
    t["decode"] = time.perf_counter() - t0
    pred = load_predictor(ckpt, "cpu")
    fe = LogMel().eval()
    params = read_postproc_file(REPO / "conf" / "postproc" / "default.yaml")

    def run(spec: WindowSpec, stages: bool) -> tuple[float, int, Stitcher]:
        st = Stitcher(spec, len(CLASSES), 0.5, spec.n_windows(int(dur * 22050)))
        reuse = FrameReuse.plan(spec, fe.spec.n_fft, pred.frame_context)  # as run_detect: SM once per frame
        mel_reuse, rec = MelReuse.plan(spec, fe.spec.n_fft), SimpleNamespace(prev_mel=None)  # log-mel too
        prev = [None]
        fwd, n_win, batch = 0.0, 0, []
        chunks = stream_mono(audio, 22050)

        def timed_chunks():
            while True:
                a = time.perf_counter()
                c = next(chunks, None)
                t["resample"] += (time.perf_counter() - a) if stages else 0.0
                if c is None:
                    return
                yield c

        def flush() -> float:
            x = torch.from_numpy(np.stack([w for _, w in batch]))
            with torch.inference_mode():
                a = time.perf_counter()
                mel = logmel_windows(fe, mel_reuse, x, [k for k, _ in batch], [rec] * len(batch))
                b = time.perf_counter()
                if reuse is None:
                    fr, parts = pred.system.sm(mel).numpy(), {}
                else:
                    fr, parts = frame_forward(reuse, pred.predict_frames_logmel, mel, [k for k, _ in batch])
                c = time.perf_counter()
                cl = pred.system.dm(mel).numpy()
                d = time.perf_counter()
            e = time.perf_counter()
            for j, (k, _) in enumerate(batch):
                if j in parts:
                    fr[j] = reuse.assemble(*parts[j], prev[0])
                prev[0] = fr[j].copy()
                st.add(k, fr[j], cl[j])
            if stages:
                t["logmel"] += b - a
                t["sm"] += c - b
                t["dm"] += d - c
                t["stitch"] += time.perf_counter() - e
            batch.clear()
            return d - b

        wd = Windower(spec)
        it = wd.iter(timed_chunks())
        while True:
            a = time.perf_counter()
            item = next(it, None)
            w_t = time.perf_counter() - a
            if item is None:
                break
            batch.append(item)
            n_win += 1
            if stages:
                t["windowing"] += w_t
            if len(batch) >= batch_size:
                fwd += flush()
        if batch:
            fwd += flush()
        return fwd, n_win, st

    fwd0, n0, _ = run(WindowSpec.from_overlap(0.0), stages=False)
    fwd, n, st = run(WindowSpec.from_overlap(overlap), stages=True)
    t["windowing"] -= t["resample"]  # the Windower's time includes pulling (resampling) its chunks
    t["resample"] -= t["decode"]
    spec = WindowSpec.from_overlap(overlap)
    a = time.perf_counter()
    frames = spec.n_frames(int(round(dur * 22050)))
    fp = st.frame_probs(frames) * st.local_tags(frames)
    ev = decode_by_class(decode, "rec", fp, st.clip_max, CLASSES, params, FRAME_SECONDS, dur)
    t["postproc"] = time.perf_counter() - a
    a = time.perf_counter()
    w = EventWriter(out, "tsv")
    w.write("rec", ev, dur, dict(zip(CLASSES, st.clip_max.tolist())))
    w.close()
    t["write"] = time.perf_counter() - a
    return {"audio_s": dur, "stage_s": t, "windows": n, "windows_no_overlap": n0,
            "forward_no_overlap_s": fwd0, "threads": torch.get_num_threads()}


def child_whole_file(audio: str) -> dict:
    """Reference: the whole recording in memory, then resampled (no model)."""
    import soxr

    base = _maxrss_mb()
    x, sr = sf.read(audio, dtype="float32")
    y = soxr.resample(x, sr, 22050, quality="HQ")
    return {"samples": int(len(y)), "peak_rss_mb": _maxrss_mb(), "base_rss_mb": base}


def per_file_state_mb(hours: float) -> tuple[float, float]:
    """tracemalloc peak (MB) of the state that does grow with length: stitching the windows' frame
    probabilities of ``hours`` of audio and post-processing them (random smooth curves, 10 classes,
    every class tagged, so the most work), and the time it takes (s)."""
    import tracemalloc

    from sed.core.constants import DESED_CLASSES as CLASSES
    from sed.core.constants import FRAME_SECONDS
    from sed.detect.run import decode_by_class
    from sed.detect.windows import Stitcher, WindowSpec
    from sed.postproc import decode
    from sed.postproc.files import read_postproc_file

    params = read_postproc_file(REPO / "conf" / "postproc" / "default.yaml")
    spec = WindowSpec()
    n = int(hours * 3600 * 22050)
    w = spec.n_windows(n)
    rng = np.random.default_rng(0)
    windows = np.clip(np.cumsum(rng.normal(0, 0.08, (64, spec.win_frames, 10)), axis=1) % 2 - 0.5, 0, 1)
    windows = windows.astype(np.float32)
    tracemalloc.start()
    t0 = time.perf_counter()
    st = Stitcher(spec, 10, tag_threshold=0.5, expected_windows=w)
    for k in range(w):
        st.add(k, windows[k % 64], np.full(10, 0.9, np.float32))
    frames = spec.n_frames(n)
    fp = st.frame_probs(frames) * st.local_tags(frames)
    decode_by_class(decode, "x", fp, np.full(10, 0.9, np.float32), CLASSES, params, FRAME_SECONDS, n / 22050)
    secs = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return peak, secs


def _in_child(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "benchmarks.bench_detect", "--child", *args], cwd=REPO, env=env,
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 and 6 minutes instead of 10 and 60")
    ap.add_argument("--ckpt", default=None, help="a trained checkpoint (default: untrained SM+DM)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        kind, *rest = args.child
        if kind == "detect":
            res = child_detect(rest[0], rest[1], rest[2], int(rest[3]), float(rest[4]),
                               reuse="whole" not in rest[5:], malloc="glibc_default" not in rest[5:])
        elif kind == "profile":
            res = child_profile(rest[0], rest[1], rest[2], int(rest[3]), float(rest[4]))
        else:
            res = child_whole_file(rest[0])
        print(json.dumps(res))
        return

    # quick: both lengths fill whole batches of 16 windows, so that their peaks compare
    short_min, long_min = (2.0, 6.0) if args.quick else (10.0, 60.0)
    with tempfile.TemporaryDirectory(prefix="bench_detect_") as tmp:
        tmp = Path(tmp)
        ckpt = Path(args.ckpt) if args.ckpt else make_untrained_checkpoint(tmp / "untrained.ckpt")
        runs = {}
        for minutes in (short_min, long_min):
            audio = make_recording(tmp / f"rec_{minutes:g}min.wav", minutes)
            print(f"detect on {minutes:g} min of 16 kHz audio ...", flush=True)
            runs[minutes] = _in_child(["detect", str(audio), str(ckpt), str(tmp / f"out_{minutes:g}.tsv"),
                                       str(args.batch_size), "0.5"])
            print(f"  {runs[minutes]}", flush=True)
        print(f"detect on {short_min:g} min without overlap ...", flush=True)
        no_overlap = _in_child(["detect", str(tmp / f"rec_{short_min:g}min.wav"), str(ckpt),
                                str(tmp / "out_0.tsv"), str(args.batch_size), "0.0"])
        print(f"detect on {short_min:g} min, log-mel and SM on every whole window (before overlap.py) ...",
              flush=True)
        whole_windows = _in_child(["detect", str(tmp / f"rec_{short_min:g}min.wav"), str(ckpt),
                                   str(tmp / "out_w.tsv"), str(args.batch_size), "0.5", "whole"])
        print(f"detect on {long_min:g} min with glibc's default allocator settings ...", flush=True)
        glibc = _in_child(["detect", str(tmp / f"rec_{long_min:g}min.wav"), str(ckpt), str(tmp / "out_g.tsv"),
                           str(args.batch_size), "0.5", "glibc_default"])
        whole = _in_child(["whole", str(tmp / f"rec_{long_min:g}min.wav")])
        print(f"stage by stage on {long_min:g} min ...", flush=True)
        prof = _in_child(["profile", str(tmp / f"rec_{long_min:g}min.wav"), str(ckpt), str(tmp / "out_p.tsv"),
                          str(args.batch_size), "0.5"])
        print(f"  {prof}", flush=True)

    state_hours = 0.1 if args.quick else 1.0
    state_mb, state_s = per_file_state_mb(state_hours)

    s, lg = runs[short_min], runs[long_min]
    rtf = lg["audio_s"] / lg["run_s"]
    lbl_s, lbl_l = f"{short_min:g}min", f"{long_min:g}min"
    figures = {
        f"rtf_cpu_{lbl_l}": {"value": rtf, "unit": "x real time"},
        f"run_time_{lbl_l}": {"value": lg["run_s"], "unit": "s"},
        f"rtf_cpu_{lbl_s}": {"value": s["audio_s"] / s["run_s"], "unit": "x real time"},
        f"rtf_cpu_{lbl_s}_no_overlap": {
            "value": no_overlap["audio_s"] / no_overlap["run_s"], "unit": "x real time",
            "ratio": (no_overlap["audio_s"] / no_overlap["run_s"]) / (s["audio_s"] / s["run_s"]),
            "reference": "the default overlap 0.5"},
        f"rtf_cpu_{lbl_s}_sm_on_whole_windows": {
            "value": whole_windows["audio_s"] / whole_windows["run_s"], "unit": "x real time",
            "ratio": (s["audio_s"] / s["run_s"]) / (whole_windows["audio_s"] / whole_windows["run_s"]),
            "reference": "speed-up of the log-mel and SM once per frame (sed/detect/overlap.py) "
                         "over every whole window"},
        f"rtf_cpu_{lbl_l}_glibc_default_malloc": {
            "value": glibc["audio_s"] / glibc["run_s"], "unit": "x real time",
            "ratio": rtf / (glibc["audio_s"] / glibc["run_s"]),
            "reference": "speed-up of sed.core.memory.keep_freed_memory (freed batches stay in the heap)"},
        f"peak_rss_{lbl_l}_glibc_default_malloc": {"value": glibc["peak_rss_mb"], "unit": "MB"},
        f"peak_rss_{lbl_s}": {"value": s["peak_rss_mb"], "unit": "MB"},
        f"peak_rss_{lbl_l}": {"value": lg["peak_rss_mb"], "unit": "MB",
                              "ratio": lg["peak_rss_mb"] / s["peak_rss_mb"],
                              "reference": f"the {lbl_s} peak"},
        f"peak_rss_growth_{lbl_s}_to_{lbl_l}": {"value": lg["peak_rss_mb"] - s["peak_rss_mb"], "unit": "MB"},
        f"rss_after_model_load_{lbl_l}": {"value": lg["rss_loaded_mb"], "unit": "MB"},
        f"working_memory_{lbl_s}": {"value": s["peak_rss_mb"] - s["rss_loaded_mb"], "unit": "MB"},
        f"working_memory_{lbl_l}": {"value": lg["peak_rss_mb"] - lg["rss_loaded_mb"], "unit": "MB"},
        f"whole_file_decode_memory_{lbl_l}": {
            "value": whole["peak_rss_mb"] - whole["base_rss_mb"], "unit": "MB",
            "ratio": (whole["peak_rss_mb"] - whole["base_rss_mb"])
            / max(lg["peak_rss_mb"] - lg["rss_loaded_mb"], 1e-9),
            "reference": "the streaming run's working memory (model activations included)"},
        f"per_file_state_{state_hours:g}h": {"value": state_mb, "unit": "MB"},
        f"stitch_and_postproc_time_{state_hours:g}h": {"value": state_s, "unit": "s"},
        "torch_threads": {"value": float(lg["threads"]), "unit": "threads"},
    }
    # each stage's own limit (x real time if it were the only work), and the end-to-end figure against the
    # no-overlap forward-pass limit measured in the same run (the machine is shared: ratios travel, times
    # less)
    fwd_limit = prof["audio_s"] / prof["forward_no_overlap_s"]
    for k, v in prof["stage_s"].items():
        figures[f"stage_{k}_x_real_time"] = {"value": prof["audio_s"] / max(v, 1e-9), "unit": "x real time",
                                             "seconds": v}
    figures["forward_no_overlap_limit"] = {"value": fwd_limit, "unit": "x real time",
                                           "reference": "SM+DM forward alone, overlap 0, same run"}
    figures[f"rtf_{lbl_l}_over_forward_no_overlap_limit"] = {"value": rtf / fwd_limit, "unit": "x",
                                                             "ratio": rtf / fwd_limit,
                                                             "reference": "the no-overlap forward-pass limit"}
    write_result("detect", figures, quick=args.quick,
                 notes=f"CPU only; SM+DM {'from ' + str(args.ckpt) if args.ckpt else 'untrained'}; "
                       f"input 16 kHz mono PCM_16; overlap 0.5; batch {args.batch_size}; "
                       f"VmHWM of fresh subprocesses; load average "
                       f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end; "
                       "predictor with BatchNorm folded and channels_last (Predictor.speed_up)")


if __name__ == "__main__":
    main()
