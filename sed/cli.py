"""The ``sedx`` console script (``pyproject.toml``: ``sedx = "sed.cli:main"``; also ``python -m sed``).

Named ``sedx``, not ``sed``, so that an activated virtual environment never shadows GNU sed.
Subcommands: ``detect`` (events in recordings of any length), ``score`` (score a system's outputs:
:mod:`sed.evaluation.score`), ``tune`` (fit the post-processing per class: :mod:`sed.tune`).
Exit codes: 0 success, 1 some inputs failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sed.core.warnings import quiet_third_party


def _add_detect(sub: argparse._SubParsersAction) -> None:
    # Lazy: numpy (~0.1 s) loads when the parser is built, so `import sed.cli` stays ~0.06 s.
    from sed.detect.windows import DEFAULT_OVERLAP

    p = sub.add_parser(
        "detect",
        help="detect sound events in audio files or folders",
        description="Detect sound events in recordings of any length (wav, flac, ogg, mp3; any sample rate, "
        "channels, bit depth). Writes filename, onset, offset, event_label (seconds from each file's start).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (searched recursively)")
    p.add_argument("--ckpt", default=None,
                   help="trained system checkpoint (default: the newest run's best.ckpt under outputs/train, "
                   "named on stderr)")
    p.add_argument("--out", default=None, help="output file (default: stdout)")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing --out file that is not a detections file")
    p.add_argument("--format", choices=("tsv", "json"), default="tsv",
                   help="tsv (default) or json (JSON Lines: one object per file)")
    p.add_argument("--postproc", default=None,
                   help="post-processing: a name in conf/postproc/ or a YAML path (default: the model's own)")
    p.add_argument("--plot", default=None, metavar="DIR", help="write a timeline PNG per file into DIR")
    p.add_argument("--resume", action="store_true", help="skip files already in --out and append to it")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1 ...")
    p.add_argument("--batch-size", type=int, default=16, help="10 s windows per model call (default 16)")
    p.add_argument("--threads", default=None, metavar="N",
                   help="torch threads on CPU (default: one per core; "
                   "as torch_threads= of sed.train/eval/tune)")
    p.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP,
                   help=f"fraction of a window shared with the next (default {DEFAULT_OVERLAP}; "
                   "hop rounded to whole frames)")
    p.add_argument("--tagging", choices=("local", "file"), default="local",
                   help="audio tagging gate: per 10 s window (local, default) or over the whole file")

    def run(args: argparse.Namespace) -> int:
        # Lazy: sed.detect.run (~0.2 s more than the parsers' imports) loads only when `sedx detect` runs.
        from sed.detect.run import cli_detect

        return cli_detect(args)

    p.set_defaults(func=run)


def _add_score(sub: argparse._SubParsersAction) -> None:
    # Lazy: pandas and the metric code (~0.5 s) load when the parser is built, not on `import sed.cli`.
    from sed.evaluation.score import add_score_parser

    add_score_parser(sub)


def _add_tune(sub: argparse._SubParsersAction) -> None:
    # Lazy: hydra and torch (~1.7 s) load when the parser is built, not on `import sed.cli`.
    from sed.tune import add_parser

    add_parser(sub)


PROG = "sedx"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Sound event detection (DCASE 2020 Task 4 system)."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_detect(sub)
    _add_score(sub)
    _add_tune(sub)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    quiet_third_party()
    parser = build_parser(prog)
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as e:  # argparse: 0 for --help, 2 for usage errors
        return int(e.code) if isinstance(e.code, int) else 2
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
