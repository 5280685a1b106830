"""``python -m sed.claims``: see :mod:`sed.claims.cli`."""

from sed.claims.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
