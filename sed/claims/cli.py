"""The command line of ``python -m sed.claims``: its options, and the exit code with one ``error:`` line."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from sed.claims.plan import DEFAULT_DATA_SEED, SYSTEMS, Settings
from sed.core.errors import ConfigError, SedError
from sed.core.warnings import quiet_third_party

PASS_THROUGH = ("train_args", "tune_args", "eval_args", "gen_args")


def build_parser() -> argparse.ArgumentParser:
    """The options (``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m sed.claims",
        description="Train PS1, PS2 and the baseline on N seeds of a fresh generated dataset, evaluate them "
        "and the PS1+PS2 ensemble (post-processing fitted on validation; reported on public eval, and with "
        "Table 1), and test the paper's claims with error bars. Rerun to resume.",
        epilog="k = (mean_A - mean_B) / sqrt((sd_A^2 + sd_B^2) / 2) with the sample sd over seeds; 'PS > "
        "baseline' holds when k > 2, 'ensemble > member' when its mean is higher. Pass-through options that "
        "start with '-' need '=': --gen-args=--no-plot.")
    p.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1 (default 3)")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated (default %(default)s); "
                   "with ps1 and ps2 the ensemble is evaluated too")
    p.add_argument("--data-seed", type=int, default=DEFAULT_DATA_SEED,
                   help="seed of the generated dataset (default %(default)s: never used for tuning)")
    p.add_argument("--data-root", default=None,
                   help="an existing DESED-layout dataset instead of generating one")
    p.add_argument("--data-name", default=None, help="its data.name (cache folder; default: the folder name)")
    p.add_argument("--cache-dir", default=None,
                   help="data.cache_dir (default: the data config's cache/<name>)")
    p.add_argument("--out", default=None, help="output folder (default outputs/claims/<data seed or name>)")
    p.add_argument("--train-args", default="",
                   help='extra sed.train overrides for every run, e.g. "trainer=gpu"')
    p.add_argument("--system-args", action="append", default=[], metavar='SYS="OVERRIDES"',
                   help='extra sed.train overrides for one system, e.g. baseline="model.crnn.rnn_cells=8" '
                   "(repeatable)")
    p.add_argument("--tune-args", default="", help="extra sed.tune overrides (e.g. workers=1)")
    p.add_argument("--eval-args", default="", help="extra sed.eval overrides (e.g. report.enabled=false)")
    p.add_argument("--gen-args", default="", help='extra sed.generate options, e.g. "--scale 0.5"')
    p.add_argument("--jobs", type=int, default=1, help="trainings at once (subprocesses; default 1)")
    p.add_argument("--results", default="docs/RESULTS.md",
                   help="file whose claims section is rewritten ('none': skip)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which checkpoint of each run to evaluate: best (the run's selection, conf: "
                        "callbacks.summary.monitor) or last (its final epoch; re-evaluates runs evaluated "
                        "from the other)")
    return p


def _system_args(items: Sequence[str]) -> dict[str, list[str]]:
    """``--system-args SYS="overrides"`` (repeatable) as ``{system: [override, ...]}``."""
    system_args: dict[str, list[str]] = {}
    for item in items:
        name, sep, rest = item.partition("=")
        if not sep:
            raise ConfigError(f"--system-args {item!r}: expected SYS=\"overrides\"")
        system_args.setdefault(name.strip(), []).extend(shlex.split(rest))
    return system_args


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """The settings of a command line (``sys.argv[1:]`` when None)."""
    a = build_parser().parse_args(argv)
    try:
        split = {k: shlex.split(getattr(a, k)) for k in PASS_THROUGH}
        system_args = _system_args(a.system_args)
    except ValueError as e:
        raise ConfigError(f"cannot split the pass-through arguments: {e}") from None
    command = shlex.join(["python", "-m", "sed.claims", *(argv if argv is not None else sys.argv[1:])])
    return Settings(seeds=a.seeds, systems=tuple(x.strip() for x in a.systems.split(",") if x.strip()),
                    data_seed=a.data_seed, data_root=a.data_root, data_name=a.data_name,
                    cache_dir=a.cache_dir, out=a.out, system_args=system_args, jobs=a.jobs,
                    checkpoint=a.checkpoint, results=None if a.results.lower() == "none" else a.results,
                    command=command, **split)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the claims; 0 when every step finished, else 1 with one ``error:`` line on stderr."""
    quiet_third_party()
    try:
        s = parse_args(argv)
        # imported here, not at the top: the workflow loads sed.eval, sed.tune, torch (~4 s): --help skips it
        from sed.claims.workflow import run

        result = run(s)
    except SedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if result["failed"]:
        print(f"error: {len(result['failed'])} step(s) failed: {', '.join(result['failed'])}; "
              "rerun to retry them", file=sys.stderr)
        return 1
    return 0
