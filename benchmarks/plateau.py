"""Issue 20, part 3: a fair budget. Where does each system's validation frame mAP plateau?

One training seed of PS1, PS2 and the baseline, each for 5 SGDR cycles (1+2+4+8+16 = 31 epochs), on tuning
data (the bundled mini-DESED, dataset seed 0)::

    python -m sed.train experiment=ps1 schedule.n_cycles=5 seed=0 torch_threads=1 logger=csv \\
        experiment_name=plateau_ps1_s0                                   # the same with experiment=ps2
    python -m sed.train experiment=baseline schedule.max_epochs=31 schedule.rampup_epochs=7.75 seed=0 \\
        torch_threads=1 logger=csv experiment_name=plateau_baseline_s0   # ramp-up: a quarter of the budget

This script reads each run's CSV log (``outputs/train/plateau_<system>_s0/<newest>/csv/version_0/``): the
validation frame mAP (``val/frame_map``) and the held-out frame AP per class (``val/holdout_ap/<class>``)
after every epoch.  A system's **plateau epoch** is the first epoch whose best-so-far validation frame mAP is
within ``--tol`` (0.01) of its best over all epochs; a system whose last cycle still gained more than
``--tol`` has not plateaued.  The **budget** is the shortest SGDR schedule (1, 3, 7, 15, 31, 63 epochs: a
whole
number of cycles, as PS1/PS2 end each cycle at their lowest LR) that reaches the latest plateau epoch --
the same number of epochs for every system.  Writes ``benchmarks/results/plateau.json`` and
``docs/figures/plateau.png``; prints the table of docs/RESULTS.md.

    python -m benchmarks.plateau [--systems ps1,ps2,baseline] [--tol 0.01]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from benchmarks.common import RESULTS_DIR, _commit

ROOT = Path(__file__).resolve().parent.parent
SHOWN = ("Speech", "Dog", "Dishes")  # issue 20's classes SM could not hear (docs/RESULTS.md, part 1)
CYCLE_ENDS = (1, 3, 7, 15, 31, 63, 127)  # SGDR budgets in epochs: T_i 1 epoch, T_mult 2, 1..7 cycles
NAMES = {"ps1": "PS1", "ps2": "PS2", "baseline": "Baseline (CRNN)"}


def newest_run(system: str, seed: int = 0) -> Path:
    """The newest run folder of ``plateau_<system>_s<seed>`` that has a CSV log."""
    runs = sorted(p.parents[2] for p in (ROOT / "outputs" / "train" / f"plateau_{system}_s{seed}")
                  .glob("*/csv/version_0/metrics.csv") if not p.parents[2].is_symlink())
    if not runs:
        raise SystemExit(f"error: no run of plateau_{system}_s{seed} under outputs/train/ (see this module's "
                         "docstring for the command)")
    return runs[-1]


def curves(run: Path) -> dict[str, list[float]]:
    """Per epoch (0, 1, ...): ``frame_map`` and ``holdout_ap/<class>`` from the run's CSV logs (``version_1``
    onwards: a resume that extended the budget, ``ckpt_path=last``; a later version's epoch replaces an
    earlier
    one's)."""
    rows: dict[int, dict[str, float]] = {}
    logs = sorted((run / "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    for log in logs:
        this: dict[int, dict[str, float]] = {}
        with open(log) as fh:
            for r in csv.DictReader(fh):
                if r.get("val/frame_map"):
                    this.setdefault(int(r["epoch"]), {}).update(
                        {k[4:]: float(v) for k, v in r.items() if k.startswith("val/") and v})
        rows.update(this)
    epochs = sorted(rows)
    if epochs != list(range(len(epochs))):
        raise SystemExit(f"error: {run}: validation epochs {epochs} are not 0..n-1")
    keys = [k for k in rows[epochs[-1]] if k == "frame_map" or k.startswith("holdout_ap/")]
    return {k: [rows[e].get(k, float("nan")) for e in epochs] for k in keys}


def plateau_epoch(values: list[float], tol: float) -> int:
    """The first epoch (0-based) whose best-so-far value is within ``tol`` of the best of all epochs."""
    best = max(values)
    running = float("-inf")
    for e, v in enumerate(values):
        running = max(running, v)
        if running >= best - tol:
            return e
    raise AssertionError("unreachable: the best epoch itself is within tol")


def still_rising(values: list[float], tol: float) -> bool:
    """Whether the last whole SGDR cycle gained more than ``tol`` over the best before it."""
    ends = [n for n in CYCLE_ENDS if n <= len(values)]
    if len(ends) < 2:
        return True
    return max(values[: ends[-1]]) - max(values[: ends[-2]]) > tol


def budget_for(epoch: int) -> int:
    """The shortest SGDR budget (epochs) whose last epoch (0-based) is at or after ``epoch``."""
    return next((n for n in CYCLE_ENDS if n - 1 >= epoch), CYCLE_ENDS[-1])


def figures(systems: list[str], tol: float) -> dict:
    out: dict = {"commit": _commit(),
                 "data": "bundled mini-DESED, dataset seed 0 (tuning data), training seed 0",
                 "tol": tol, "rule": __doc__.split("\n\n")[2].replace("\n", " "), "systems": {}}
    for sysname in systems:
        run = newest_run(sysname)
        c = curves(run)
        fm = c["frame_map"]
        p = plateau_epoch(fm, tol)
        at = {n: {"frame_map": fm[n - 1], **{f"holdout_ap/{k}": c[f"holdout_ap/{k}"][n - 1]
                                              for k in SHOWN if f"holdout_ap/{k}" in c}}
              for n in CYCLE_ENDS if n <= len(fm)}
        out["systems"][sysname] = {"run": str(run.relative_to(ROOT)), "epochs": len(fm), "curves": c,
                                   "plateau_epoch": p, "best_epoch": fm.index(max(fm)), "best": max(fm),
                                   "still_rising": still_rising(fm, tol), "at_budget": at}
    latest = max(s["plateau_epoch"] for s in out["systems"].values())
    out["budget_epochs"] = budget_for(latest)
    out["slowest"] = max(out["systems"], key=lambda k: out["systems"][k]["plateau_epoch"])
    return out


def table(res: dict) -> str:
    """The markdown table: val frame mAP at each SGDR budget, plateau epoch, held-out AP at the last two."""
    ends = [n for n in CYCLE_ENDS if all(n <= s["epochs"] for s in res["systems"].values())]
    head = (["system"] + [f"val mAP @{n}" for n in ends] + ["plateau epoch", "best (epoch)"]
            + [f"held-out {k} @{n}" for k in SHOWN for n in ends[-2:]])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for sysname, s in res["systems"].items():
        at = s["at_budget"]
        cells = ([NAMES.get(sysname, sysname)] + [f"{at[n]['frame_map']:.3f}" for n in ends]
                 + [f"{s['plateau_epoch'] + 1}" + (" (still rising)" if s["still_rising"] else ""),
                    f"{s['best']:.3f} ({s['best_epoch'] + 1})"]
                 + [f"{at[n].get(f'holdout_ap/{k}', float('nan')):.3f}" for k in SHOWN for n in ends[-2:]])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 1 + len(SHOWN), figsize=(4.2 * (1 + len(SHOWN)), 3.6), sharex=True)
    for sysname, s in res["systems"].items():
        ep = range(1, s["epochs"] + 1)
        (line,) = axes[0].plot(ep, s["curves"]["frame_map"], label=NAMES.get(sysname, sysname))
        axes[0].plot(s["plateau_epoch"] + 1, s["curves"]["frame_map"][s["plateau_epoch"]], "o",
                     color=line.get_color())
        for ax, k in zip(axes[1:], SHOWN):
            if f"holdout_ap/{k}" in s["curves"]:
                ax.plot(ep, s["curves"][f"holdout_ap/{k}"], color=line.get_color())
    titles = ["validation frame mAP (o: plateau)", *[f"held-out frame AP, {k}" for k in SHOWN]]
    for ax, title in zip(axes, titles):
        for n in CYCLE_ENDS:
            ax.axvline(n, color="0.85", lw=0.8, zorder=0)
        ax.axvline(res["budget_epochs"], color="k", ls="--", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch (grey: SGDR cycle ends; dashed: budget)", fontsize=8)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", default="ps1,ps2,baseline")
    ap.add_argument("--tol", type=float, default=0.01, help="plateau tolerance in frame mAP (default 0.01)")
    a = ap.parse_args()
    res = figures(a.systems.split(","), a.tol)
    (RESULTS_DIR / "plateau.json").write_text(json.dumps(res, indent=1) + "\n")
    plot(res, ROOT / "docs" / "figures" / "plateau.png")
    print(table(res))
    print(f"\nbudget: {res['budget_epochs']} epochs (slowest to plateau: {res['slowest']}); "
          f"wrote {RESULTS_DIR / 'plateau.json'} and docs/figures/plateau.png")


if __name__ == "__main__":
    main()
