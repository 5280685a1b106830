"""``python -m sed COMMAND ...``: the same as the ``sedx`` console script (:mod:`sed.cli`)."""

import sys

from sed.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m sed"))
