"""The dataset step: generate it (unless ``--data-root``) and its NMF labels, each skipped when done."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sed.claims.configs import compose_config
from sed.claims.console import say
from sed.claims.plan import Settings, data_overrides
from sed.claims.records import read_json, write_json
from sed.core.errors import ConfigError
from sed.generate import main as generate_main
from sed.nmf_labels import run as nmf_run


def prepare_data(s: Settings) -> dict[str, Any]:
    """Generate the dataset (unless ``--data-root``) and its NMF labels; each step skipped when done. Returns
    the data step record with a ``description`` of the dataset."""
    rec = _generate(s) if s.data_root is None else _existing(s)
    nmf = _nmf_labels(s, rec)
    rec["description"] = _describe(s, rec, nmf)
    return rec


def _generate(s: Settings) -> dict[str, Any]:
    """Run ``sed.generate`` (it keeps an identical existing set as it is: cheap); the step record, rewritten
    when the set changed."""
    out = s.out_dir
    rec = read_json(out / "step_data.json")
    before = read_json(s.root / "generated.json")
    argv = ["--out", str(s.root), "--seed", str(s.data_seed), "--no-plot", *s.gen_args]
    t0 = time.time()
    try:
        rc = generate_main(argv)
    except SystemExit as e:  # argparse: a bad --gen-args
        rc = e.code
    if rc not in (0, None):
        raise ConfigError(f"sed.generate {' '.join(argv)}: failed (exit {rc}); check --gen-args")
    gen = read_json(s.root / "generated.json") or {}
    if rec is None or gen != before or rec.get("generated") != gen:
        rec = {"root": str(s.root), "name": s.name, "generated": gen, "seconds": round(time.time() - t0, 1)}
        write_json(out / "step_data.json", rec)
        say(f"dataset generated with seed {s.data_seed} in {s.root} ({rec['seconds']} s)")
    return rec


def _existing(s: Settings) -> dict[str, Any]:
    """The step record of a ``--data-root`` dataset (written the first time)."""
    rec = read_json(s.out_dir / "step_data.json")
    if rec is None:
        rec = {"root": str(s.root), "name": s.name, "generated": read_json(s.root / "generated.json")}
        write_json(s.out_dir / "step_data.json", rec)
    return rec


def _nmf_labels(s: Settings, rec: dict[str, Any]) -> dict[str, Any]:
    """Run ``sed.nmf_labels`` unless its labels of this very dataset are there; its step record."""
    out = s.out_dir
    cfg = compose_config("nmf_labels", [*data_overrides(s), "progress=false", "plot_clips=0"])
    tsv = Path(str(cfg.output_tsv))
    nmf = read_json(out / "step_nmf.json")
    if nmf is None or not tsv.is_file() or nmf.get("generated") != rec.get("generated"):
        t0 = time.time()
        scores = nmf_run(cfg, out / "nmf_labels")
        macro = (((scores.get("nmf") or {}).get("event") or {}).get("f1_macro")
                 if isinstance(scores, dict) else None)
        nmf = {"tsv": str(tsv), "seconds": round(time.time() - t0, 1), "quality_event_f1_macro": macro,
               "generated": rec.get("generated")}
        write_json(out / "step_nmf.json", nmf)
        say(f"NMF labels written to {tsv} ({nmf['seconds']} s)")
    return nmf


def _describe(s: Settings, rec: dict[str, Any], nmf: dict[str, Any]) -> str:
    """The dataset in a sentence: its sizes (or folder) and its NMF labels' quality."""
    gen = rec.get("generated") or {}
    if gen:
        sizes = ", ".join(f"{gen.get('n_' + k)} {k}"
                          for k in ("synthetic", "weak", "unlabel", "validation", "public_eval"))
        text = f"generated mini-DESED, dataset seed {gen.get('seed')} ({sizes} clips)"
    else:
        text = f"{s.root} (data.name {s.name})"
    if nmf.get("quality_event_f1_macro") is not None:
        text += (f"; its NMF labels score {100 * nmf['quality_event_f1_macro']:.1f} % event F1 against the "
                 "weak clips' truth")
    return text
