"""``sedx score`` on a DESED-sized validation set (issue 12).

1168 clips: the real DESED validation truth and durations (../shared/desed-real) when present, else a
generated truth of the same size; generated frame scores that follow the truth with noise, written as
50 operating-point TSVs (thresholds 0.01 ... 0.99), the sed_scores_eval score TSVs and a detections TSV.
In the same run: ``sedx score`` (files read and checked) against the direct library calls on the same
files (psds_eval for PSDS1/PSDS2 from the operating points; sed_scores_eval for PSDS1/PSDS2 from the
score TSVs; sed_eval + psds_eval for the detections): the figures must be equal, and the time of each;
then the bootstrap cost per 100 resamples for each input kind.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import write_result
from sed.core.constants import DESED_CLASSES as CLASSES
from sed.evaluation.common import merge_connected
from sed.evaluation.scenarios import SCENARIOS
from sed.evaluation.score import score
from tests import score_helpers as H

REAL = Path(__file__).resolve().parents[2] / "shared" / "desed-real" / "metadata" / "validation"
SCEN = ("psds1", "psds2")


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def build(root: Path, n_clips: int, n_ops: int) -> dict:
    from sed.evaluation.score_inputs import read_truth

    if (REAL / "validation_durations.tsv").is_file() and n_clips == 1168:
        gt_path, dur_path = REAL / "validation.tsv", REAL / "validation_durations.tsv"
        truth = read_truth(gt_path)
        d = pd.read_csv(dur_path, sep="\t")
        durations = dict(zip(d.filename, d.duration.astype(float)))
        source = "real DESED validation truth and durations"
    else:
        events, durations = H.make_truth(n_clips, seed=0, classes=CLASSES, short=102 * n_clips // 1168)
        gt_path, dur_path = (H.write_truth(root / "gt.tsv", events),
                             H.write_durations(root / "dur.tsv", durations))
        truth = read_truth(gt_path)
        source = f"generated truth ({n_clips} clips)"
    classes = tuple(truth.classes)
    sc = H.make_scores(truth.events, durations, seed=1, noise=0.8, classes=classes)
    ths = (np.arange(n_ops) * 2 + 1) / (2 * n_ops)
    (root / "ops").mkdir()
    for th in ths:
        H.write_detections(root / "ops" / f"predictions_th_{th:.3f}.tsv",
                           H.detections_at(sc, durations, th, classes))
    from sed_scores_eval.base_modules.io import write_sed_scores

    write_sed_scores(H.score_frames(sc, durations, classes), root / "scores")
    H.write_detections(root / "det.tsv", H.detections_at(sc, durations, 0.5, classes))
    return {"gt": gt_path, "dur": dur_path, "truth": truth, "durations": durations, "source": source}


def direct_psds_eval(root: Path, truth, durations) -> dict:
    from psds_eval import PSDSEval

    gt = merge_connected(truth.events)[0]
    gt_t = pd.DataFrame([(f, a, b, c) for f, v in gt.items() for a, b, c in v],
                        columns=["filename", "onset", "offset", "event_label"])
    meta = pd.DataFrame({"filename": list(durations), "duration": list(durations.values())})
    tables = [pd.read_csv(f, sep="\t") for f in sorted((root / "ops").glob("*.tsv"))]
    out = {}
    for name in SCEN:
        s = SCENARIOS[name]
        dtc, gtc, cttc = s.psds_eval_criteria()
        ev = PSDSEval(dtc_threshold=dtc, gtc_threshold=gtc, cttc_threshold=cttc, ground_truth=gt_t,
                      metadata=meta)
        for t in tables:
            ev.add_operating_point(t)
        out[name] = float(ev.psds(alpha_ct=s.alpha_ct, alpha_st=s.alpha_st, max_efpr=s.max_efpr).value)
    return out


def direct_sed_scores(root: Path, truth, durations) -> dict:
    from sed_scores_eval import intersection_based

    gt = {Path(f).stem: v for f, v in merge_connected(truth.events)[0].items()}
    dur = {Path(f).stem: d for f, d in durations.items()}
    out = {}
    for name in SCEN:
        kw = SCENARIOS[name].sed_scores_kwargs()
        out[name] = float(intersection_based.psds(scores=str(root / "scores"), ground_truth=gt,
                                                  audio_durations=dur, **kw)[0])
    return out


def direct_detections(root: Path, truth, durations) -> dict:
    import sed_eval
    from psds_eval import PSDSEval

    det = pd.read_csv(root / "det.tsv", sep="\t")
    by = {f: g.to_dict("records") for f, g in det.groupby("filename")}
    evm = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(truth.classes), t_collar=0.2, percentage_of_length=0.2,
        empty_system_output_handling="zero_score"
    )
    seg = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=list(truth.classes), time_resolution=1.0)
    seg.empty_system_output_handling = "zero_score"
    for f, evs in truth.events.items():
        ref = [{"filename": f, "onset": a, "offset": b, "event_label": c} for a, b, c in evs]
        evm.evaluate(ref, by.get(f, []))
        seg.evaluate(ref, by.get(f, []), evaluated_length_seconds=durations[f])
    gt = merge_connected(truth.events)[0]
    gt_t = pd.DataFrame([(f, a, b, c) for f, v in gt.items() for a, b, c in v],
                        columns=["filename", "onset", "offset", "event_label"])
    meta = pd.DataFrame({"filename": list(durations), "duration": list(durations.values())})
    ev = PSDSEval(dtc_threshold=0.5, gtc_threshold=0.5, cttc_threshold=0.3, ground_truth=gt_t, metadata=meta)
    return {
        "event_f1_macro": evm.results_class_wise_average_metrics()["f_measure"]["f_measure"],
        "segment_f1_macro": seg.results_class_wise_average_metrics()["f_measure"]["f_measure"],
        "psds_f_score": float(ev.compute_macro_f_score(det)[0]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="200 clips, 10 operating points, few resamples")
    a = p.parse_args(argv)
    n_clips, n_ops = (200, 10) if a.quick else (1168, 50)
    nb = {"ops": 5, "scores": 10, "det": 20} if a.quick else {"ops": 10, "scores": 50, "det": 100}
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data, t_build = _timed(lambda: build(root, n_clips, n_ops))
        gt = data["gt"]
        tr, du = data["truth"], data["durations"]
        print(f"{data['source']}; {n_ops} operating points; inputs written in {t_build:.1f} s", flush=True)

        rows = [
            ("ops", root / "ops", lambda: direct_psds_eval(root, tr, du), SCEN, "psds_eval"),
            ("scores", root / "scores", lambda: direct_sed_scores(root, tr, du), SCEN, "sed_scores_eval"),
            ("det", root / "det.tsv", lambda: direct_detections(root, tr, du),
             ("event_f1_macro", "segment_f1_macro", "psds_f_score"), "sed_eval+psds_eval"),
        ]
        for name, path, direct, keys, lib in rows:
            kw = {"durations": str(data["dur"])}
            if name != "det":  # the detections' PSDS-F: DCASE 2020's criteria, as the direct call
                kw["scenarios"] = ",".join(SCEN)
            n = nb[name]
            ours, t_all = _timed(lambda: score(path, gt, bootstrap_n=n, **kw))  # noqa: B023
            boot = ours["bootstrap"]
            t_ours = t_all - boot["per_resample_s"] * n
            if name != "ops":  # the operating points' evaluation is shared by the figures and the bootstrap
                t_ours -= boot["setup_s"]
            ref, t_ref = _timed(direct)
            f = ours["systems"][0]["figures"]
            diff = max(abs(f[k] - ref[k]) for k in keys)
            print(f"  {name}: ours {t_ours:.1f} s, direct {t_ref:.1f} s, max |diff| {diff:.2e}: "
                  + ", ".join(f"{k} {f[k]:.4f}" for k in keys), flush=True)
            figures[f"{name}_ours_s"] = {"value": t_ours, "unit": "s", "ratio": t_ref / t_ours,
                                         "reference": f"speed of direct {lib}"}
            figures[f"{name}_direct_s"] = {"value": t_ref, "unit": "s"}
            figures[f"{name}_max_abs_diff"] = {"value": diff, "unit": ""}
            for k in keys:
                figures[f"{name}_{k}"] = {"value": f[k], "unit": ""}
                lo, hi = ours["systems"][0]["ci95"][k]
                figures[f"{name}_{k}_ci95_low"] = {"value": lo, "unit": ""}
                figures[f"{name}_{k}_ci95_high"] = {"value": hi, "unit": ""}
            per100 = boot["per_resample_s"] * 100
            unit = "s (once: per-clip statistics" + (
                ", shared with the figures: part of ops_ours_s)" if name == "ops" else ")"
            )
            figures[f"{name}_bootstrap_setup_s"] = {"value": boot["setup_s"], "unit": unit}
            figures[f"{name}_bootstrap_per_100_s"] = {"value": per100,
                                                      "unit": f"s (measured on {n} resamples)"}
            print(f"  {name}: bootstrap setup {boot['setup_s']:.1f} s + {per100:.1f} s per 100 resamples",
                  flush=True)
    write_result(
        "score",
        figures,
        quick=a.quick,
        notes=f"{data['source']}; {n_ops} operating points; scenarios {', '.join(SCEN)}; "
        "ours includes reading and checking the files (and, for score TSVs, the collar-based best F1 too); "
        "direct = the libraries on the same files",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
