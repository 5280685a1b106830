"""``python -m sed.claims`` (``make claims``): the paper's claims over several training seeds (issue 11 part 5).

One command: (1) generate a dataset with a seed the project never tuned on (``--data-seed``, default
2026; or ``--data-root`` an existing DESED-layout copy), (2) its NMF labels, (3) train each system
(``--systems``, default PS1, PS2 and the baseline) on ``--seeds`` training seeds as ``sed.train``
subprocesses (``--jobs`` at once; a crash loses only its own run), (4) for every run and every seed's
PS1+PS2 ensemble (average of probabilities): predictions of validation and public eval, the
post-processing fitted per class on **validation** (``sed.tune``), and ``sed.eval`` on both splits with
the fitted post-processing and Table 1, (5) mean +- sample sd over seeds, (6) the claims table on public
eval (the report split; validation beside it for reference: it tuned the post-processing).

Everything lands in ``--out`` (default ``outputs/claims/<data seed>``): one folder per run
(``<system>/seed<s>``: the training run, ``predictions/``, ``postproc.yaml``, ``eval/``), ``claims.json``
(every per-seed figure and the aggregates), ``claims.md`` and the figures; ``--results`` rewrites only the
marked claims section of docs/RESULTS.md. Each finished step writes a ``step_*.json``; a rerun skips
finished steps and resumes an interrupted training from its ``last.ckpt``.

Claim rule: A beats B by k sd with k = (mean_A - mean_B) / sqrt((sd_A^2 + sd_B^2) / 2) (sample sd over
seeds); "beats the baseline" holds when k > 2, "the ensemble beats a member" when mean_A > mean_B.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sed.core.constants import CLASSES
from sed.core.errors import ConfigError, SedError

SYSTEMS = ("ps1", "ps2", "baseline")
ENSEMBLE = "ensemble"
NAMES = {"ps1": "PS1", "ps2": "PS2", "baseline": "Baseline (CRNN mean teacher)", ENSEMBLE: "Ensemble PS1+PS2"}
TUNE_SPLIT, REPORT_SPLIT = "validation", "public_eval"
SPLITS = (TUNE_SPLIT, REPORT_SPLIT)
#: The figures aggregated over seeds (fitted post-processing unless named Table 1).
FIGURES = ("event_f1_fitted", "event_f1_table1", "psds", "psds1", "psds2")
FIGURE_NAMES = {"event_f1_fitted": "event F1 (fitted)", "event_f1_table1": "event F1 (Table 1)",
                "psds": "PSDS (2020)", "psds1": "PSDS1", "psds2": "PSDS2"}
DEFAULT_DATA_SEED = 2026
BEGIN, END = "<!-- claims:begin -->", "<!-- claims:end -->"
K_BASELINE = 2.0  # "beats the baseline" needs a margin of more than this many sd


# ---------------------------------------------------------------------------- pure figures
def mean_sd(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and sample sd (ddof=1; None with fewer than 2 values) of the values that are not None."""
    v = [float(x) for x in values if x is not None]
    if not v:
        return {"mean": None, "sd": None, "n": 0, "min": None, "values": list(values)}
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else None
    return {"mean": m, "sd": sd, "n": len(v), "min": min(v), "values": list(values)}


def k_sd(a: Mapping[str, Any], b: Mapping[str, Any]) -> float | None:
    """(mean_a - mean_b) / sqrt((sd_a^2 + sd_b^2) / 2): the margin in pooled sd; +-inf when both sd are 0
    (0 for equal means); None when a mean or sd is unknown."""
    if a.get("mean") is None or b.get("mean") is None or a.get("sd") is None or b.get("sd") is None:
        return None
    diff = a["mean"] - b["mean"]
    pooled = math.sqrt((a["sd"] ** 2 + b["sd"] ** 2) / 2)
    if pooled == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / pooled


def claim(name: str, figure: str, a: Mapping[str, Any], b: Mapping[str, Any], min_k: float | None) -> dict[str, Any]:
    """One claims-table row: A > B on ``figure``; holds when k > ``min_k`` (None: when mean_A > mean_B)."""
    k = k_sd(a, b)
    if a.get("mean") is None or b.get("mean") is None:
        verdict = "n/a (missing figures)"
    elif min_k is None:
        verdict = "holds" if a["mean"] > b["mean"] else "fails"
    elif k is None:
        verdict = "n/a (one seed: no sd)"
    else:
        verdict = "holds" if k > min_k else "fails"
    return {"claim": name, "figure": figure, "a": _ms(a), "b": _ms(b),
            "difference": None if a.get("mean") is None or b.get("mean") is None else a["mean"] - b["mean"],
            "k_sd": k, "rule": f"k > {min_k:g} sd" if min_k is not None else "mean higher", "verdict": verdict}


def _ms(s: Mapping[str, Any]) -> dict[str, Any]:
    return {"mean": s.get("mean"), "sd": s.get("sd"), "n": s.get("n", 0)}


def aggregate(per_seed: Mapping[str, Mapping[Any, Mapping[str, Any]]]) -> dict[str, Any]:
    """``{unit: {seed: {split: {figure: v, "per_class_f1": {class: v}}}}}`` -> ``{unit: {split: {figure:
    mean_sd, "per_class_f1": {class: mean_sd}}}}`` over the seeds (a split absent for a seed counts as None)."""
    out: dict[str, Any] = {}
    for unit, seeds in per_seed.items():
        out[unit] = {}
        splits = list(dict.fromkeys(s for figs in seeds.values() for s in figs))
        for split in splits:
            rows = [figs.get(split) or {} for figs in seeds.values()]
            agg = {f: mean_sd([r.get(f) for r in rows]) for f in FIGURES}
            classes = list(dict.fromkeys(c for r in rows for c in (r.get("per_class_f1") or {})))
            agg["per_class_f1"] = {c: mean_sd([(r.get("per_class_f1") or {}).get(c) for r in rows]) for c in classes}
            out[unit][split] = agg
    return out


def claims_table(agg: Mapping[str, Any], split: str, units: Sequence[str]) -> list[dict[str, Any]]:
    """The claims on ``split``: PS1/PS2 > baseline on event F1 (fitted) and PSDS (2020) by more than 2 sd;
    the ensemble > each member (mean); every class a non-zero event F1 (fitted; min over seeds) per unit."""
    def fig(unit: str, f: str) -> Mapping[str, Any]:
        return ((agg.get(unit) or {}).get(split) or {}).get(f) or {}

    rows = []
    for sysname in ("ps1", "ps2"):
        if sysname in units and "baseline" in units:
            for f in ("event_f1_fitted", "psds"):
                rows.append(claim(f"{NAMES[sysname]} > baseline", f, fig(sysname, f), fig("baseline", f), K_BASELINE))
    if ENSEMBLE in units:
        for member in ("ps1", "ps2"):
            for f in ("event_f1_fitted", "psds"):
                rows.append(claim(f"ensemble > {NAMES[member]}", f, fig(ENSEMBLE, f), fig(member, f), None))
    for unit in units:
        pc = ((agg.get(unit) or {}).get(split) or {}).get("per_class_f1") or {}
        zero = [c for c, s in pc.items() if s.get("min") is not None and s["min"] <= 0]
        unknown = [c for c in CLASSES if c not in pc or pc[c].get("min") is None]
        verdict = "n/a (missing figures)" if not pc else ("fails" if zero else "holds")
        note = (f"zero for {', '.join(zero)}" if zero else "") + ("; " if zero and unknown else "") + (
            f"no figure for {', '.join(unknown)}" if unknown and pc else "")
        lowest = min((s["min"] for s in pc.values() if s.get("min") is not None), default=None)
        rows.append({"claim": f"{NAMES[unit]}: every class non-zero F1", "unit": unit, "figure": "per-class event F1 (fitted)",
                     "a": {"mean": lowest, "sd": None, "n": None}, "b": None, "difference": None, "k_sd": None,
                     "rule": "min over classes and seeds > 0", "verdict": verdict, "note": note})
    return rows


# ---------------------------------------------------------------------------- text
def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def fmt_ms(s: Mapping[str, Any] | None, pct: bool) -> str:
    """``mean ± sd`` (F1 in %, PSDS with 3 decimals); ``–`` when missing."""
    if not s or s.get("mean") is None:
        return "–"
    f = (lambda v: f"{100 * v:.1f}") if pct else (lambda v: f"{v:.3f}")
    return f(s["mean"]) + (f" ± {f(s['sd'])}" if s.get("sd") is not None else "")


def _k(v: float | None) -> str:
    if v is None:
        return "–"
    return ("+" if v > 0 else "") + ("∞" if math.isinf(v) and v > 0 else "-∞" if math.isinf(v) else f"{v:.2f}")


def split_header(split: str) -> str:
    if split == REPORT_SPLIT:
        return f"{split} (report split; the post-processing was tuned on {TUNE_SPLIT}, never on it)"
    return f"{split} (tuning split: the post-processing was fitted on it, so its fitted figures are optimistic)"


def checkpoint_sentence(checkpoint: str) -> str:
    if checkpoint == "last":
        return "Each run is evaluated at its last epoch (`last.ckpt`: the end of the schedule)."
    return ("Each run is evaluated at the epoch its selection chose (`best.ckpt`, conf: "
            "`callbacks.summary.monitor`; the default `epoch` is the last one).")


def render_markdown(result: Mapping[str, Any], figures: Mapping[str, str] | None = None) -> str:
    """The claims section: setup, a figure table per split, per-class F1, the claims tables, the figures."""
    agg, units, seeds = result["aggregate"], result["units"], result["seeds"]
    lines = [f"## Claims with error bars ({len(seeds)} training seed{'s' if len(seeds) != 1 else ''}, "
             "`python -m sed.claims`)", "",
             f"Dataset: {result['data']['description']}. Systems trained on seeds {', '.join(map(str, seeds))} "
             f"with `{result['train_overrides_text']}`. {checkpoint_sentence(result.get('checkpoint', 'best'))} "
             f"Each run's post-processing is fitted per class on **{TUNE_SPLIT}** (`sed.tune`) and "
             f"reported on **{REPORT_SPLIT}**, never used for tuning. Figures are mean ± sample sd (ddof 1) "
             "over the seeds; F1 in %. The ensemble averages PS1's and PS2's probabilities of the same seed "
             f"and has its own post-processing fitted on {TUNE_SPLIT}.", ""]
    if result.get("failed"):
        lines += [f"**Incomplete**: {', '.join(result['failed'])} failed; the figures use the runs that finished.", ""]
    for split in (REPORT_SPLIT, TUNE_SPLIT):
        if not any(split in (agg.get(u) or {}) for u in units):
            lines += [f"### {split_header(split)}", "", "(not evaluated: the dataset has no such split)", ""]
            continue
        lines += [f"### Figures on {split_header(split)}", "",
                  "| system | seeds | " + " | ".join(FIGURE_NAMES[f] for f in FIGURES) + " |",
                  "| --- | --- |" + " --- |" * len(FIGURES)]
        for u in units:
            a = (agg.get(u) or {}).get(split) or {}
            n = (a.get("event_f1_fitted") or {}).get("n", 0)
            lines.append(f"| {NAMES[u]} | {n} | " + " | ".join(fmt_ms(a.get(f), f.startswith("event")) for f in FIGURES) + " |")
        lines += ["", f"Per-class event F1 (fitted post-processing), {split}:", "",
                  "| class | " + " | ".join(NAMES[u] for u in units) + " |", "| --- |" + " --- |" * len(units)]
        for c in CLASSES:
            lines.append(f"| {c} | " + " | ".join(
                fmt_ms((((agg.get(u) or {}).get(split) or {}).get("per_class_f1") or {}).get(c), True) for u in units) + " |")
        lines.append("")
    for split in (REPORT_SPLIT, TUNE_SPLIT):
        rows = result["claims"].get(split)
        if not rows:
            continue
        lines += [f"### Claims on {split_header(split)}", "",
                  "k = (mean_A − mean_B) / sqrt((sd_A² + sd_B²) / 2), the margin in pooled sample sd over seeds.", "",
                  "| claim | figure | A | B | A − B | k (sd) | rule | verdict |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            pct = r["figure"].startswith(("event", "per-class"))
            diff = r["difference"]
            d = "–" if diff is None else (f"{100 * diff:+.1f}" if pct else f"{diff:+.3f}")
            verdict = r["verdict"] + (f" ({r['note']})" if r.get("note") else "")
            b = fmt_ms(r["b"], pct) if r["b"] else "–"
            a = fmt_ms(r["a"], pct) if r["b"] else f"min {_pct(r['a']['mean'])}"
            lines.append(f"| {r['claim']} | {FIGURE_NAMES.get(r['figure'], r['figure'])} | {a} | {b} | {d} | {_k(r['k_sd'])} | {r['rule']} | **{verdict}** |")
        lines.append("")
    for title, path in (figures or {}).items():
        lines += [f"![{title}]({path})", ""]
    lines.append(f"Reproduce: `{result['command']}`")
    return "\n".join(lines).rstrip() + "\n"


def replace_section(text: str, section: str) -> str:
    """``text`` with the part between the claims markers replaced by ``section`` (added after the first
    ``# `` title line, else at the top, when the markers are missing)."""
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    i, j = text.find(BEGIN), text.find(END)
    if i >= 0 and j > i:
        return text[:i] + block + text[j + len(END):]
    lines = text.splitlines(keepends=True)
    if lines and lines[0].startswith("# "):
        return lines[0] + "\n" + block + "\n\n" + "".join(lines[1:]).lstrip("\n")
    return block + "\n\n" + text


# ---------------------------------------------------------------------------- settings
@dataclass
class Settings:
    """What :func:`run` does (the command line, parsed)."""

    seeds: int = 3
    systems: tuple[str, ...] = SYSTEMS
    data_seed: int = DEFAULT_DATA_SEED
    data_root: str | None = None
    data_name: str | None = None
    cache_dir: str | None = None
    out: str | None = None
    train_args: list[str] = field(default_factory=list)
    system_args: dict[str, list[str]] = field(default_factory=dict)
    tune_args: list[str] = field(default_factory=list)
    eval_args: list[str] = field(default_factory=list)
    gen_args: list[str] = field(default_factory=list)
    jobs: int = 1
    results: str | None = "docs/RESULTS.md"
    checkpoint: str = "best"
    command: str = "python -m sed.claims"

    def check(self) -> None:
        if self.checkpoint not in ("best", "last"):
            raise ConfigError(f"--checkpoint {self.checkpoint}: expected best or last")
        if self.seeds < 1:
            raise ConfigError(f"--seeds {self.seeds}: expected at least 1")
        if self.jobs < 1:
            raise ConfigError(f"--jobs {self.jobs}: expected at least 1")
        bad = [s for s in self.systems if s not in SYSTEMS]
        if bad or not self.systems:
            raise ConfigError(f"--systems {','.join(self.systems)}: expected a comma-separated subset of {','.join(SYSTEMS)}")
        bad = [s for s in self.system_args if s not in SYSTEMS]
        if bad:
            raise ConfigError(f"--system-args {bad[0]}: not a system ({','.join(SYSTEMS)})")
        if self.data_root is not None:
            root = Path(self.data_root)
            if not root.is_dir():
                raise ConfigError(f"--data-root {root}: no such folder")
            if not (root / "metadata").is_dir():
                raise ConfigError(f"--data-root {root}: not a DESED-layout dataset (no metadata/ folder)")

    @property
    def name(self) -> str:
        return self.data_name or (Path(self.data_root).name if self.data_root else f"claims-{self.data_seed}")

    @property
    def root(self) -> Path:
        return Path(self.data_root) if self.data_root else Path("data") / self.name

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("outputs/claims") / (self.name if self.data_root else str(self.data_seed))

    @property
    def units(self) -> list[str]:
        return [*self.systems, *([ENSEMBLE] if {"ps1", "ps2"} <= set(self.systems) else [])]


_SAFE = re.compile(r"^[\w./@:+~-]+$")


def hq(v: Any) -> str:
    """A value as a Hydra override accepts it (quoted when it holds other characters)."""
    s = str(v)
    return s if _SAFE.match(s) else "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def data_overrides(s: Settings) -> list[str]:
    ov = [f"data.root={hq(s.root.resolve())}", f"data.name={hq(s.name)}"]
    return ov + ([f"data.cache_dir={hq(Path(s.cache_dir).resolve())}"] if s.cache_dir else [])


def train_overrides(s: Settings, system: str, seed: int, run_dir: Path, resume: bool) -> list[str]:
    """The ``sed.train`` command line of one run (``ckpt_path=<run>`` resumes it)."""
    return [f"experiment={system}", f"seed={seed}", *data_overrides(s), "logger=csv", "torch_threads=1",
            "datamodule.progress=false", "trainer.enable_progress_bar=false", *s.train_args,
            *s.system_args.get(system, []), f"hydra.run.dir={hq(run_dir.resolve())}",
            *([f"ckpt_path={hq(run_dir.resolve())}"] if resume else [])]


def _compose(name: str, overrides: Sequence[str]):
    from hydra import compose, initialize_config_dir

    from sed.eval import CONF_DIR

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(name, overrides=list(overrides))
    except Exception as e:  # noqa: BLE001 - a bad override: one line
        if type(e).__module__.startswith(("hydra", "omegaconf")):
            raise ConfigError(f"conf/{name}.yaml with {' '.join(overrides)}: {str(e).splitlines()[0]}") from None
        raise


def check_overrides(s: Settings) -> None:
    """Compose every training, tuning and evaluation config once, so a bad override fails before any run."""
    import sed.train  # noqa: F401 - registers the sgdr_epochs resolver

    for system in s.systems:
        ov = [o for o in train_overrides(s, system, 0, s.out_dir / "x", False) if not o.startswith("hydra.")]
        _compose("train", ov)
    _compose("tune", [*data_overrides(s), *s.tune_args])
    _compose("eval", [*data_overrides(s), *s.eval_args])


# ---------------------------------------------------------------------------- steps
def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    tmp.replace(path)


_CONSOLE: list = []  # the stdout of run()'s start: evaluations silence third-party prints by redirecting sys.stdout


def say(msg: str) -> None:
    print(msg, file=_CONSOLE[-1] if _CONSOLE else sys.stdout, flush=True)


def prepare_data(s: Settings) -> dict[str, Any]:
    """Generate the dataset (unless ``--data-root``) and its NMF labels; each step skipped when done."""
    out = s.out_dir
    rec = _read_json(out / "step_data.json")
    if s.data_root is None:  # sed.generate keeps an identical existing set as it is (cheap)
        before = _read_json(s.root / "generated.json")
        from sed.generate import main as generate_main

        argv = ["--out", str(s.root), "--seed", str(s.data_seed), "--no-plot", *s.gen_args]
        t0 = time.time()
        try:
            rc = generate_main(argv)
        except SystemExit as e:  # argparse: a bad --gen-args
            rc = e.code
        if rc not in (0, None):
            raise ConfigError(f"sed.generate {' '.join(argv)}: failed (exit {rc}); check --gen-args")
        gen = _read_json(s.root / "generated.json") or {}
        if rec is None or gen != before or rec.get("generated") != gen:
            rec = {"root": str(s.root), "name": s.name, "generated": gen, "seconds": round(time.time() - t0, 1)}
            _write_json(out / "step_data.json", rec)
            say(f"dataset generated with seed {s.data_seed} in {s.root} ({rec['seconds']} s)")
    elif rec is None:
        rec = {"root": str(s.root), "name": s.name, "generated": _read_json(s.root / "generated.json")}
        _write_json(out / "step_data.json", rec)
    cfg = _compose("nmf_labels", [*data_overrides(s), "progress=false", "plot_clips=0"])
    tsv = Path(str(cfg.output_tsv))
    nmf = _read_json(out / "step_nmf.json")
    if nmf is None or not tsv.is_file() or nmf.get("generated") != rec.get("generated"):
        from sed.nmf_labels import run as nmf_run

        t0 = time.time()
        scores = nmf_run(cfg, out / "nmf_labels")
        macro = ((scores.get("nmf") or {}).get("event") or {}).get("f1_macro") if isinstance(scores, dict) else None
        nmf = {"tsv": str(tsv), "seconds": round(time.time() - t0, 1), "quality_event_f1_macro": macro,
               "generated": rec.get("generated")}
        _write_json(out / "step_nmf.json", nmf)
        say(f"NMF labels written to {tsv} ({nmf['seconds']} s)")
    gen = rec.get("generated") or {}
    if gen:
        sizes = ", ".join(f"{gen.get('n_' + k)} {k}" for k in ("synthetic", "weak", "unlabel", "validation", "public_eval"))
        rec["description"] = f"generated mini-DESED, dataset seed {gen.get('seed')} ({sizes} clips)"
    else:
        rec["description"] = f"{s.root} (data.name {s.name})"
    if nmf.get("quality_event_f1_macro") is not None:
        rec["description"] += f"; its NMF labels score {100 * nmf['quality_event_f1_macro']:.1f} % event F1 against the weak clips' truth"
    return rec


@dataclass
class Training:
    system: str
    seed: int
    run_dir: Path
    proc: subprocess.Popen | None = None
    log: Any = None
    started: float = 0.0


def train_done(run_dir: Path) -> dict | None:
    return _read_json(run_dir / "step_train.json")


EVAL_OUTPUTS = ("step_eval.json", "postproc.yaml", "tune.json", "predictions", "tune", "eval")


def clear_evaluation(unit_dir: Path) -> None:
    """Remove a unit's evaluation outputs (its model is being trained again: they would be stale)."""
    for name in EVAL_OUTPUTS:
        p = unit_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def start_training(s: Settings, t: Training) -> None:
    """``sed.train`` as a subprocess logging to ``<run>/claims_train.log``; resumes from last.ckpt. The run's
    evaluation (and its seed's ensemble) is cleared first: it belongs to the model before this training."""
    resume = (t.run_dir / "checkpoints" / "last.ckpt").is_file()
    t.run_dir.mkdir(parents=True, exist_ok=True)
    clear_evaluation(t.run_dir)
    if t.system in ("ps1", "ps2"):
        clear_evaluation(t.run_dir.parent.parent / ENSEMBLE / t.run_dir.name)
    cmd = [sys.executable, "-m", "sed.train", *train_overrides(s, t.system, t.seed, t.run_dir, resume)]
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parents[1])  # the same sed package in the subprocess
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("WANDB_MODE", "offline")
    t.log = open(t.run_dir / "claims_train.log", "a")
    t.log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(cmd)}\n")
    t.log.flush()
    t.started = time.time()
    t.proc = subprocess.Popen(cmd, stdout=t.log, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())
    say(f"training {t.system} seed {t.seed}{' (resuming from last.ckpt)' if resume else ''}: log {t.run_dir / 'claims_train.log'}")


def finish_training(t: Training, rc: int) -> dict | None:
    """The step record of a finished subprocess (None when it failed)."""
    t.log.close()
    secs = round(time.time() - t.started, 1)
    best = t.run_dir / "checkpoints" / "best.ckpt"
    if rc != 0 or not best.is_file():
        return None
    m = _read_json(t.run_dir / "metrics.json") or {}
    b = m.get("best") or {}
    rec = {"system": t.system, "seed": t.seed, "run_dir": str(t.run_dir), "seconds": secs,
           "best_epoch": m.get("best_epoch"), "holdout_frame_map": b.get("holdout_frame_map"),
           "val_event_f1_table1": b.get("event_f1_macro")}
    _write_json(t.run_dir / "step_train.json", rec)
    return rec


def split_available(data_cfg, split: str) -> bool:
    from sed.eval import split_status

    return split_status(data_cfg, split) is None


def evaluate_unit(s: Settings, unit_dir: Path, make_predictions: Callable[[str, Path], None]) -> dict[str, Any]:
    """Predictions of both splits (``make_predictions(split, path)`` when missing), post-processing fitted on
    validation, ``sed.eval`` with the fitted and Table 1 post-processing on both splits; returns the figures."""
    from omegaconf import open_dict

    from sed.eval import run as eval_run
    from sed.tune import run as tune_run

    t0 = time.time()
    ecfg = _compose("eval", [*data_overrides(s), *s.eval_args])
    paths = {}
    for split in SPLITS:
        if not split_available(ecfg.data, split):
            if split == TUNE_SPLIT:
                raise ConfigError(f"{s.root}: no strong-label {TUNE_SPLIT} split to tune on")
            continue
        p = unit_dir / "predictions" / f"{split}.npz"
        if not p.is_file():
            p.parent.mkdir(parents=True, exist_ok=True)
            make_predictions(split, p)
        paths[split] = p
    if not (_read_json(unit_dir / "tune.json") and (unit_dir / "postproc.yaml").is_file()):
        tcfg = _compose("tune", [*data_overrides(s), *s.tune_args])
        with open_dict(tcfg):
            tcfg.predictions, tcfg.split, tcfg.run_dir = str(paths[TUNE_SPLIT]), TUNE_SPLIT, str(unit_dir)
        tune_run(tcfg, unit_dir / "tune")
    with open_dict(ecfg):
        ecfg.predictions, ecfg.split = str(paths[TUNE_SPLIT]), TUNE_SPLIT
        ecfg.postproc_file = str(unit_dir / "postproc.yaml")
        ecfg.also_splits = [REPORT_SPLIT]
        ecfg.also_predictions = {k: str(v) for k, v in paths.items() if k != TUNE_SPLIT}
        ecfg.compare_table1 = True
    metrics = eval_run(ecfg, unit_dir / "eval")
    return {"figures": figures_of(metrics, unit_dir / "eval"), "seconds": round(time.time() - t0, 1)}


def figures_of(metrics: Mapping[str, Any], eval_dir: Path) -> dict[str, Any]:
    """``{split: {figure: v, "per_class_f1": {class: v}}}`` from a ``sed.eval`` metrics dict (its ``splits``
    rows; per-class figures from the main metrics or ``splits/<split>_fitted/metrics.json``)."""
    out: dict[str, Any] = {}
    for row in metrics.get("splits") or []:
        if row.get("missing"):
            continue
        d = out.setdefault(row["split"], {})
        if row["postproc"] == "Table 1":
            d["event_f1_table1"] = row.get("event_f1_macro")
            continue
        d["event_f1_fitted"] = row.get("event_f1_macro")
        for k in ("psds", "psds1", "psds2"):
            d[k] = row.get(k)
        sub = metrics if row["split"] == metrics["run"]["split"] else _read_json(
            eval_dir / "splits" / f"{row['split']}_fitted" / "metrics.json") or {}
        d["per_class_f1"] = {c: v.get("event_f1") for c, v in (sub.get("per_class") or {}).items()}
    return out


# ---------------------------------------------------------------------------- curves
def read_curves(run_dir: Path):
    """Per-epoch learning curves of a run from its CSV logs (a resumed run's later versions win):
    ``train/<term>`` means over the epoch's steps, ``val/holdout_frame_map`` (and per class
    ``val/holdout_ap/<class>``), ``val/frame_map`` and ``val/event_f1_macro``."""
    import pandas as pd

    logs = sorted(Path(run_dir).glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    frames = []
    for i, p in enumerate(logs):
        try:
            df = pd.read_csv(p)
        except (OSError, ValueError):
            continue
        if "epoch" in df:
            frames.append(df.assign(_v=i))
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    df = df[df["_v"] == df.groupby("epoch")["_v"].transform("max")]  # a resumed epoch: its last log
    cols = [c for c in df.columns if c.startswith(("train/l_", "val/holdout_ap/")) or c == "train/loss"
            or c in ("val/holdout_frame_map", "val/frame_map", "val/event_f1_macro")]
    return df.groupby("epoch")[cols].mean().sort_index()


# ---------------------------------------------------------------------------- the run
def run(s: Settings) -> dict[str, Any]:
    """Everything (see the module docstring); returns the claims dict written to ``claims.json``."""
    from sed.evaluation.predictions import Predictions, PredictionsError, average

    s.check()
    _CONSOLE[:] = [sys.stdout]
    t_start = time.time()
    out = s.out_dir
    out.mkdir(parents=True, exist_ok=True)
    check_overrides(s)
    data = prepare_data(s)
    seeds = list(range(s.seeds))
    trainings = [Training(sysname, seed, out / sysname / f"seed{seed}") for seed in seeds for sysname in s.systems]
    n_train = len(trainings)
    done = {(t.system, t.seed): train_done(t.run_dir) for t in trainings}
    n_skip = sum(v is not None for v in done.values())
    if n_skip:
        say(f"{n_skip}/{n_train} trainings already done: skipped")
    queue = [t for t in trainings if done[(t.system, t.seed)] is None]
    failed: list[str] = []
    units = s.units
    evals: dict[str, dict[int, Any]] = {u: {} for u in units}
    n_eval = len(units) * len(seeds)
    state = {"evals": 0}

    def eval_one(unit: str, seed: int) -> None:
        unit_dir = out / unit / f"seed{seed}"
        rec = _read_json(unit_dir / "step_eval.json")
        if rec is not None and rec.get("checkpoint", "best") != s.checkpoint:
            clear_evaluation(unit_dir)  # evaluated from the other checkpoint of the run
            rec = None
        fresh = rec is None
        if rec is None:
            if unit == ENSEMBLE:
                members = [out / m / f"seed{seed}" / "predictions" for m in ("ps1", "ps2")]

                def make(split: str, path: Path) -> None:
                    average([Predictions.load(m / f"{split}.npz") for m in members]).save(path)
            else:
                from sed.evaluation.inference import predict_split

                ecfg = _compose("eval", [*data_overrides(s), *s.eval_args])

                src = unit_dir if s.checkpoint == "best" else unit_dir / "checkpoints" / "last.ckpt"

                def make(split: str, path: Path) -> None:
                    predict_split(src, ecfg.data, split, batch_size=int(ecfg.batch_size),
                                  device=str(ecfg.device), progress=False).save(path)
            try:
                rec = {"unit": unit, "seed": seed, "checkpoint": s.checkpoint, **evaluate_unit(s, unit_dir, make)}
            except Exception as e:  # noqa: BLE001 - one unit's failure must not stop the others
                failed.append(f"evaluation of {unit} seed {seed}")
                unit_dir.mkdir(parents=True, exist_ok=True)
                (unit_dir / "claims_eval_error.log").write_text(traceback.format_exc())
                why = str(e) if isinstance(e, (SedError, PredictionsError, OSError)) else f"{type(e).__name__}: {e}"
                say(f"evaluation of {unit} seed {seed} FAILED: {why} (traceback: {unit_dir / 'claims_eval_error.log'})")
                return
            _write_json(unit_dir / "step_eval.json", rec)
        evals[unit][seed] = rec["figures"]
        state["evals"] += 1
        rep = rec["figures"].get(REPORT_SPLIT) or rec["figures"].get(TUNE_SPLIT) or {}
        where = REPORT_SPLIT if REPORT_SPLIT in rec["figures"] else TUNE_SPLIT
        say(f"[{state['evals']}/{n_eval} evaluations] {unit} seed {seed}: {where} event F1 fitted "
            f"{_pct(rep.get('event_f1_fitted'))} %, Table 1 {_pct(rep.get('event_f1_table1'))} %, "
            f"PSDS {_f3(rep.get('psds'))}, PSDS1 {_f3(rep.get('psds1'))}, PSDS2 {_f3(rep.get('psds2'))}"
            f"{'' if fresh else ' (done earlier: skipped)'}")

    def ready(unit: str, seed: int) -> bool:
        if seed in evals[unit] or f"evaluation of {unit} seed {seed}" in failed:
            return False
        if unit == ENSEMBLE:
            return all(seed in evals[m] for m in ("ps1", "ps2"))
        return done.get((unit, seed)) is not None

    running: list[Training] = []
    over, wake, errors = threading.Event(), threading.Event(), []

    def evaluator() -> None:
        """Evaluates each unit as soon as it is ready, beside the running trainings (a thread)."""
        try:
            while True:
                was_over = over.is_set()
                todo = [(u, seed) for seed in seeds for u in units if ready(u, seed)]
                for u, seed in todo:
                    eval_one(u, seed)
                if not todo:
                    if was_over:
                        return
                    wake.wait(0.5)
                    wake.clear()
        except BaseException as e:  # noqa: BLE001 - raised again in the main thread
            errors.append(e)

    thread = threading.Thread(target=evaluator, name="sed.claims evaluation", daemon=True)
    thread.start()
    try:
        while queue or running:
            while queue and len(running) < s.jobs and not errors:
                t = queue.pop(0)
                start_training(s, t)
                running.append(t)
            if errors:
                break
            time.sleep(0.2)
            for t in list(running):
                rc = t.proc.poll()
                if rc is None:
                    continue
                running.remove(t)
                rec = finish_training(t, rc)
                done[(t.system, t.seed)] = rec
                wake.set()
                n_done = sum(v is not None for v in done.values())
                if rec is None:
                    failed.append(f"training of {t.system} seed {t.seed}")
                    say(f"[{n_done}/{n_train} trainings done] {t.system} seed {t.seed} FAILED (exit {rc}): "
                        f"see {t.run_dir / 'claims_train.log'}")
                else:
                    say(f"[{n_done}/{n_train} trainings done] {t.system} seed {t.seed}: {rec['seconds']} s, best "
                        f"epoch {rec['best_epoch']} (held-out frame mAP {_f3(rec['holdout_frame_map'])})")
        over.set()
        wake.set()
        thread.join()
    finally:
        for t in running:  # interrupted: stop the trainings this command started (they resume on a rerun)
            t.proc.terminate()
            t.proc.wait()
    if errors:
        raise errors[0]

    per_seed = {u: {seed: evals[u][seed] for seed in seeds if seed in evals[u]} for u in units}
    agg = aggregate(per_seed)
    result: dict[str, Any] = {
        "data": data, "seeds": seeds, "systems": list(s.systems), "units": units,
        "tune_split": TUNE_SPLIT, "report_split": REPORT_SPLIT, "checkpoint": s.checkpoint,
        "train_overrides": [*s.train_args], "system_args": s.system_args,
        "train_overrides_text": " ".join(["experiment=<system>", "seed=<seed>", "logger=csv", "torch_threads=1",
                                          *s.train_args])
        + "".join(f"; {k}: {' '.join(v)}" for k, v in s.system_args.items() if v),
        "k_rule": "k = (mean_A - mean_B) / sqrt((sd_A^2 + sd_B^2) / 2), sample sd (ddof=1) over seeds; "
                  f"'> baseline' holds when k > {K_BASELINE:g}, 'ensemble >' when the mean is higher",
        "trainings": {f"{t.system}/seed{t.seed}": done[(t.system, t.seed)] for t in trainings},
        "per_seed": per_seed, "aggregate": agg,
        "claims": {sp: claims_table(agg, sp, units) for sp in SPLITS if any(sp in (agg.get(u) or {}) for u in units)},
        "failed": failed, "command": s.command, "seconds": round(time.time() - t_start, 1),
    }
    _write_json(out / "claims.json", result)
    figures = write_figures(s, result, trainings)
    md = render_markdown(result, {k: os.path.relpath(v, out) for k, v in figures.items()})
    (out / "claims.md").write_text(md)
    if s.results:
        res_path = Path(s.results)
        links = {}
        for title, p in figures.items():
            dest = res_path.parent / "figures" / Path(p).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dest)
            links[title] = os.path.relpath(dest, res_path.parent)
        old = res_path.read_text() if res_path.is_file() else ""
        res_path.parent.mkdir(parents=True, exist_ok=True)
        res_path.write_text(replace_section(old, render_markdown(result, links)))
        say(f"wrote the claims section of {res_path}")
    for split in (REPORT_SPLIT,):
        for r in result["claims"].get(split) or []:
            say(f"claim on {split}: {r['claim']} [{r['figure']}]: {r['verdict']}"
                + (f", k = {_k(r['k_sd'])} sd" if r["k_sd"] is not None else "")
                + (f" ({r['note']})" if r.get("note") else ""))
    say(f"claims: {out / 'claims.md'}, {out / 'claims.json'} ({result['seconds']} s)")
    return result


def _f3(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def write_figures(s: Settings, result: Mapping[str, Any], trainings: Sequence[Training]) -> dict[str, Path]:
    """Learning curves (mean over seeds with a +-sd band) and per-class F1 bars; ``{title: path}``."""
    from sed.reporting.plots import plot_claims_curves, plot_per_class_bars

    out = s.out_dir
    figs: dict[str, Path] = {}
    curves: dict[str, list] = {}
    for t in trainings:
        if result["trainings"].get(f"{t.system}/seed{t.seed}"):
            c = read_curves(t.run_dir)
            if c is not None and len(c):
                curves.setdefault(NAMES[t.system], []).append(c)
    if curves:
        figs["learning curves (mean ± sd over seeds)"] = plot_claims_curves(curves, out / "claims_curves.png")
    agg = result["aggregate"]
    split = REPORT_SPLIT if any(REPORT_SPLIT in (agg.get(u) or {}) for u in result["units"]) else TUNE_SPLIT
    bars = {NAMES[u]: {c: (v["mean"], v["sd"]) for c, v in (((agg.get(u) or {}).get(split) or {})
                                                            .get("per_class_f1") or {}).items()}
            for u in result["units"]}
    if any(bars.values()):
        figs[f"per-class event F1 on {split} (fitted, mean ± sd)"] = plot_per_class_bars(
            bars, out / "claims_per_class.png", title=f"Per-class event F1 on {split} (post-processing fitted on "
            f"{TUNE_SPLIT}; mean ± sd over {len(result['seeds'])} seeds)")
    return figs


# ---------------------------------------------------------------------------- command line
def parse_args(argv: Sequence[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(
        prog="python -m sed.claims",
        description="Train PS1, PS2 and the baseline on N seeds of a fresh generated dataset, evaluate them and the "
        "PS1+PS2 ensemble (post-processing fitted on validation; reported on public eval, and with Table 1), and "
        "test the paper's claims with error bars. Rerun to resume.",
        epilog="k = (mean_A - mean_B) / sqrt((sd_A^2 + sd_B^2) / 2) with the sample sd over seeds; 'PS > baseline' "
        "holds when k > 2, 'ensemble > member' when its mean is higher. Pass-through options that start with "
        "'-' need '=': --gen-args=--no-plot.")
    p.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1 (default 3)")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated (default %(default)s); "
                   "with ps1 and ps2 the ensemble is evaluated too")
    p.add_argument("--data-seed", type=int, default=DEFAULT_DATA_SEED,
                   help="seed of the generated dataset (default %(default)s: never used for tuning)")
    p.add_argument("--data-root", default=None, help="an existing DESED-layout dataset instead of generating one")
    p.add_argument("--data-name", default=None, help="its data.name (cache folder; default: the folder name)")
    p.add_argument("--cache-dir", default=None, help="data.cache_dir (default: the data config's cache/<name>)")
    p.add_argument("--out", default=None, help="output folder (default outputs/claims/<data seed or name>)")
    p.add_argument("--train-args", default="", help='extra sed.train overrides for every run, e.g. "trainer=gpu"')
    p.add_argument("--system-args", action="append", default=[], metavar='SYS="OVERRIDES"',
                   help='extra sed.train overrides for one system, e.g. baseline="model.crnn.rnn_cells=8" (repeatable)')
    p.add_argument("--tune-args", default="", help="extra sed.tune overrides (e.g. workers=1)")
    p.add_argument("--eval-args", default="", help="extra sed.eval overrides (e.g. report.enabled=false)")
    p.add_argument("--gen-args", default="", help='extra sed.generate options, e.g. "--scale 0.5"')
    p.add_argument("--jobs", type=int, default=1, help="trainings at once (subprocesses; default 1)")
    p.add_argument("--results", default="docs/RESULTS.md", help="file whose claims section is rewritten ('none': skip)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which checkpoint of each run to evaluate: best (the run's selection, conf: callbacks.summary."
                        "monitor) or last (its final epoch; re-evaluates runs evaluated from the other)")
    a = p.parse_args(argv)
    try:
        split = {k: shlex.split(getattr(a, k)) for k in ("train_args", "tune_args", "eval_args", "gen_args")}
        system_args: dict[str, list[str]] = {}
        for item in a.system_args:
            name, sep, rest = item.partition("=")
            if not sep:
                raise ConfigError(f"--system-args {item!r}: expected SYS=\"overrides\"")
            system_args.setdefault(name.strip(), []).extend(shlex.split(rest))
    except ValueError as e:
        raise ConfigError(f"cannot split the pass-through arguments: {e}") from None
    return Settings(seeds=a.seeds, systems=tuple(x.strip() for x in a.systems.split(",") if x.strip()),
                    data_seed=a.data_seed, data_root=a.data_root, data_name=a.data_name, cache_dir=a.cache_dir,
                    out=a.out, system_args=system_args, jobs=a.jobs, checkpoint=a.checkpoint,
                    results=None if a.results.lower() == "none" else a.results,
                    command=shlex.join(["python", "-m", "sed.claims", *(argv if argv is not None else sys.argv[1:])]),
                    **split)


def main(argv: Sequence[str] | None = None) -> int:
    from sed.core.warnings import quiet_third_party

    quiet_third_party()
    try:
        s = parse_args(argv)
        result = run(s)
    except SedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if result["failed"]:
        print(f"error: {len(result['failed'])} step(s) failed: {', '.join(result['failed'])}; rerun to retry them",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
