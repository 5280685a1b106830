"""Figures of every split (``split`` + ``also_splits`` of conf/eval.yaml) with the configured
post-processing and, when it was tuned, with Table 1 beside it (issue 10 part 1): one row and one report
line each; the extra evaluations are written under ``<out>/splits/``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sed.core.errors import ConfigError, SedError
from sed.core.paths import CONF_DIR
from sed.core.predictions import PredictionsError
from sed.datamodules.layout import DesedLayout
from sed.evaluation.metrics import evaluate
from sed.evaluation.report import add_alpha_st0, zero_explanations
from sed.inference.inputs import as_list, get_ground_truth, get_predictions, prepare_split
from sed.postproc import PostprocParams

SPLIT_FIGURES = ("event_f1_macro", "segment_f1_macro", "psds", "psds_macro", "psds1", "psds2")


def compare_table1(cfg: DictConfig, params: PostprocParams) -> bool:
    """Whether Table 1's figures go beside a tuned post-processing's (``compare_table1``)."""
    return bool(cfg.get("compare_table1", True)) and params.tuned_on is not None


def split_status(data_cfg: Any, split: str) -> str | None:
    """None when ``split`` is a strong-label split of the dataset with its TSV on disk, else why not."""
    try:
        s = DesedLayout.from_cfg(data_cfg).split(split)
    except ConfigError:
        return f"the data config has no split {split!r}"
    if s.kind != "strong":
        return f"split {split!r} has {s.kind} labels (scoring needs strong labels)"
    if not Path(s.tsv).is_file():
        return f"{s.tsv} not found"
    return None


def split_line(split: str, variant: str, tuned_on: str | None, m: Mapping[str, Any] | None,
               missing: str | None) -> str:
    """One report line: the split, the post-processing and its tuning split, the split's role, figures."""
    pp = f"post-processing {variant}" + (f" (tuned on {tuned_on})" if tuned_on else "")
    if missing:
        return f"{split}: missing ({missing}); not reported"
    role = ("tuning split: optimistic (the post-processing was fitted on it)" if tuned_on == split
            else "reported split (never used for tuning)")
    figs = ", ".join(f"{k} {100 * m[k]:.1f} %" if k.endswith("f1_macro") else f"{k} {m[k]:.3f}"
                     for k in SPLIT_FIGURES if m.get(k) is not None)
    return f"{split}, {pp}: {figs} [{role}]"


def _split_inputs(cfg: DictConfig, split: str, out_dir: Path) -> tuple[Any, Any, str | None]:
    """``(predictions, ground truth, None)`` of another split, or ``(None, None, why it is missing)``."""
    if (missing := split_status(cfg.data, split)) is not None:
        return None, None, missing
    files = dict(cfg.get("also_predictions") or {}).get(split)
    if as_list(cfg.predictions) and not files and not as_list(cfg.ckpt):
        return None, None, (f"predictions= holds split {cfg.split} only; give "
                            f"also_predictions.{split}=<its .npz> or ckpt=")
    try:
        sp, psrc = get_predictions(cfg, split, files)
        sg, gsrc = get_ground_truth(cfg, split, None)
        sp, sg, _ = prepare_split(cfg, split, sp, sg, psrc, gsrc, None, out_dir)  # missing audio left out
    except (SedError, PredictionsError, OSError) as e:
        return None, None, f"cannot score it: {e}"
    return sp, sg, None


def _scored(out_dir: Path, split: str, variant: str, preds, gt, params: PostprocParams, eval_kw: dict):
    """One more evaluation (a split or Table 1), written under ``splits/<split>_<variant>/``."""
    r = evaluate(preds, gt, params, **eval_kw)
    add_alpha_st0(r.metrics, r, gt)
    sub = out_dir / "splits" / f"{split}_{variant.replace(' ', '_').lower()}"
    sub.mkdir(parents=True, exist_ok=True)
    r.detections.to_csv(sub / "detections.tsv", sep="\t", index=False)
    (sub / "metrics.json").write_text(json.dumps(r.metrics, indent=2) + "\n")
    return r


def split_rows(
    cfg: DictConfig, out_dir: Path, params: PostprocParams, pp_source: str, res, preds, gt, eval_kw: dict,
    main_explanations: list[str] | None = None,
) -> list[dict[str, Any]]:
    """A row per split and post-processing (see the module docstring); ``res`` is the main evaluation."""
    variants = [("as configured" if params.tuned_on is None else "fitted", params, pp_source)]
    if compare_table1(cfg, params):
        paper = PostprocParams.from_cfg(OmegaConf.load(CONF_DIR / "postproc" / "paper.yaml"))
        variants.append(("Table 1", paper, "conf/postproc/paper.yaml"))
    rows = []
    for split in dict.fromkeys([str(cfg.split), *as_list(cfg.get("also_splits"))]):
        main = split == str(cfg.split)
        sp, sg, missing = (preds, gt, None) if main else _split_inputs(cfg, split, out_dir)
        for variant, p, source in variants[:1] if missing else variants:  # a missing split: one line
            row: dict[str, Any] = {"split": split, "postproc": variant, "postproc_source": source,
                                   "tuned_on": p.tuned_on, "missing": missing}
            if missing is None:
                r = res if main and p is params else _scored(out_dir, split, variant, sp, sg, p, eval_kw)
                row.update({k: r.metrics.get(k) for k in SPLIT_FIGURES})
                row["n_clips"] = r.metrics.get("n_clips")
                row["role"] = "tuning" if p.tuned_on == split else "reported"
                decoded = r.decoder.preds if r.decoder else sp
                row["explanations"] = (main_explanations or [] if r is res
                                       else zero_explanations(decoded, p, r.metrics))
            row["line"] = split_line(split, variant, p.tuned_on, row, missing)
            rows.append(row)
    return rows
