"""The claims section in Markdown (``claims.md``, docs/RESULTS.md) and its place between the markers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sed.claims.aggregate import FIGURES
from sed.claims.formats import fmt_ms, k_text, pct_text
from sed.claims.plan import NAMES, REPORT_SPLIT, TUNE_SPLIT
from sed.core.provenance import version_text

FIGURE_NAMES = {"event_f1_fitted": "event F1 (fitted)", "event_f1_table1": "event F1 (Table 1)",
                "psds": "PSDS (2020)", "psds1": "PSDS1", "psds2": "PSDS2"}
#: The markers before issue 20, when there was one claims section (:func:`markers` names one per dataset).
BEGIN, END = "<!-- claims:begin -->", "<!-- claims:end -->"
HOLDOUT = "the held-out synthetic clips"  # sed.training.selection: strong labels no training step saw


def split_header(split: str) -> str:
    """A split's name and its role (report or tuning split)."""
    if split == HOLDOUT:
        return (f"{split} (frame AP: no post-processing; for PS1/PS2 SM's frame output, for the baseline "
                "the CRNN's)")
    if split == REPORT_SPLIT:
        return f"{split} (report split; the post-processing was tuned on {TUNE_SPLIT}, never on it)"
    return (f"{split} (tuning split: the post-processing was fitted on it, so its fitted figures are "
            "optimistic)")


def checkpoint_sentence(checkpoint: str) -> str:
    """Which checkpoint of each run was evaluated, in a sentence."""
    if checkpoint == "last":
        return "Each run is evaluated at its last epoch (`last.ckpt`: the end of the schedule)."
    return ("Each run is evaluated at the epoch its selection chose (`best.ckpt`, conf: "
            "`callbacks.summary.monitor`; the default `epoch` is the last one).")


def render_markdown(result: Mapping[str, Any], figures: Mapping[str, str] | None = None) -> str:
    """The claims section: setup, a figure table per split, per-class F1, the claims tables, the figures."""
    agg, units = result["aggregate"], result["units"]
    lines = _setup_lines(result)
    for split in (REPORT_SPLIT, TUNE_SPLIT):
        lines += _figure_lines(agg, units, split)
    lines += _holdout_lines(result.get("holdout_ap") or {}, units)
    for split in (REPORT_SPLIT, TUNE_SPLIT):
        lines += _claims_lines(result["claims"].get(split), split)
    lines += _claims_lines((result.get("holdout_ap") or {}).get("claims"), HOLDOUT)
    for title, path in (figures or {}).items():
        lines += [f"![{title}]({path})", ""]
    lines.append(f"Reproduce: `{result['command']}`")
    return "\n".join(lines).rstrip() + "\n"


def _setup_lines(result: Mapping[str, Any]) -> list[str]:
    """The title, what was trained and evaluated how, and the failed steps."""
    seeds = result["seeds"]
    lines = [f"## Claims with error bars ({len(seeds)} training seed{'s' if len(seeds) != 1 else ''}, "
             "`python -m sed.claims`)", "",
             f"Dataset: {result['data']['description']}. Systems trained on seeds "
             f"{', '.join(map(str, seeds))} with `{result['train_overrides_text']}`. "
             f"{checkpoint_sentence(result.get('checkpoint', 'best'))} "
             f"Each run's post-processing is fitted per class on **{TUNE_SPLIT}** (`sed.tune`) and "
             f"reported on **{REPORT_SPLIT}**, never used for tuning. Figures are mean ± sample sd (ddof 1) "
             "over the seeds; F1 in %. The ensemble averages PS1's and PS2's probabilities of the same seed "
             f"and has its own post-processing fitted on {TUNE_SPLIT}. {_provenance_sentence(result)}", ""]
    if result.get("failed"):
        lines += [f"**Incomplete**: {', '.join(result['failed'])} failed; the figures use the runs that "
                  "finished.", ""]
    return lines


def _provenance_sentence(result: Mapping[str, Any]) -> str:
    """Which code ran the claims and how many epochs each system trained (claims from before issue 20 have
    neither: "unknown" and no budget)."""
    epochs: dict[str, set[int]] = {}
    for rec in (result.get("trainings") or {}).values():
        if rec and rec.get("epochs") is not None:
            epochs.setdefault(rec["system"], set()).add(int(rec["epochs"]))
    text = f"Code: commit {version_text(result.get('code'))}."
    if epochs:
        budgets = {s: "/".join(map(str, sorted(e))) + (" epoch" if e == {1} else " epochs")
                   for s, e in epochs.items()}
        if len(set(budgets.values())) == 1:
            text += f" Budget: {next(iter(budgets.values()))}, every system."
        else:
            text += " Budget: " + ", ".join(f"{NAMES.get(s, s)} {b}" for s, b in budgets.items()) + "."
    return text


def _figure_lines(agg: Mapping[str, Any], units: Sequence[str], split: str) -> list[str]:
    """The figure table and the per-class F1 table of one split (a note when no unit has it)."""
    if not any(split in (agg.get(u) or {}) for u in units):
        return [f"### {split_header(split)}", "", "(not evaluated: the dataset has no such split)", ""]
    lines = [f"### Figures on {split_header(split)}", "",
             "| system | seeds | " + " | ".join(FIGURE_NAMES[f] for f in FIGURES) + " |",
             "| --- | --- |" + " --- |" * len(FIGURES)]
    for u in units:
        a = (agg.get(u) or {}).get(split) or {}
        n = (a.get("event_f1_fitted") or {}).get("n", 0)
        cells = (fmt_ms(a.get(f), f.startswith("event")) for f in FIGURES)
        lines.append(f"| {NAMES[u]} | {n} | " + " | ".join(cells) + " |")
    lines += ["", f"Per-class event F1 (fitted post-processing), {split}:", "",
              "| class | " + " | ".join(NAMES[u] for u in units) + " |", "| --- |" + " --- |" * len(units)]
    per_class = {u: (((agg.get(u) or {}).get(split) or {}).get("per_class_f1") or {}) for u in units}
    for c in dict.fromkeys(c for u in units for c in per_class[u]):
        cells = (fmt_ms(per_class[u].get(c), True) for u in units)
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _claims_lines(rows: Sequence[Mapping[str, Any]] | None, split: str) -> list[str]:
    """The claims table of one split (nothing without rows)."""
    if not rows:
        return []
    lines = [f"### Claims on {split_header(split)}", "",
             "k = (mean_A − mean_B) / sqrt((sd_A² + sd_B²) / 2), the margin in pooled sample sd over "
             "seeds.", "",
             "| claim | figure | A | B | A − B | k (sd) | rule | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [_claim_line(r) for r in rows]
    lines.append("")
    return lines


def _claim_line(r: Mapping[str, Any]) -> str:
    """One claims-table row in Markdown."""
    pct = r["figure"].startswith(("event", "per-class"))
    diff = r["difference"]
    d = "–" if diff is None else (f"{100 * diff:+.1f}" if pct else f"{diff:+.3f}")
    verdict = r["verdict"] + (f" ({r['note']})" if r.get("note") else "")
    b = fmt_ms(r["b"], pct) if r["b"] else "–"
    a = fmt_ms(r["a"], pct) if r["b"] else f"min {pct_text(r['a']['mean'])}"
    figure = FIGURE_NAMES.get(r["figure"], r["figure"])
    k = k_text(r["k_sd"])
    return f"| {r['claim']} | {figure} | {a} | {b} | {d} | {k} | {r['rule']} | **{verdict}** |"


def markers(name: str | None) -> tuple[str, str]:
    """The claims markers of dataset ``name`` (one section per claims dataset; None: the unnamed ones)."""
    return (BEGIN, END) if name is None else (f"<!-- claims:{name}:begin -->", f"<!-- claims:{name}:end -->")


def replace_section(text: str, section: str, name: str | None = None) -> str:
    """``text`` with the part between the claims markers of dataset ``name`` replaced by ``section`` (added
    after the first ``# `` title line, else at the top, when the markers are missing)."""
    begin, end = markers(name)
    block = f"{begin}\n{section.rstrip()}\n{end}"
    i, j = text.find(begin), text.find(end)
    if i >= 0 and j > i:
        return text[:i] + block + text[j + len(end):]
    lines = text.splitlines(keepends=True)
    if lines and lines[0].startswith("# "):
        return lines[0] + "\n" + block + "\n\n" + "".join(lines[1:]).lstrip("\n")
    return block + "\n\n" + text


def _holdout_lines(holdout: Mapping[str, Any], units: Sequence[str]) -> list[str]:
    """The per-class held-out frame AP table (mean ± sd over seeds, at the evaluated epoch); nothing without
    figures (runs from before issue 20)."""
    hagg = holdout.get("aggregate") or {}
    systems = [u for u in units if u in hagg]
    if not systems:
        return []
    lines = [f"Per-class frame AP on {split_header(HOLDOUT)}, at the evaluated epoch:", "",
             "| class | " + " | ".join(NAMES[u] for u in systems) + " |", "| --- |" + " --- |" * len(systems)]
    for c in dict.fromkeys(c for u in systems for c in hagg[u]):
        lines.append(f"| {c} | " + " | ".join(fmt_ms(hagg[u].get(c), False) for u in systems) + " |")
    lines.append("")
    return lines
