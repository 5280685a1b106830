"""Silencing third-party noise at the entry points only (never on ``import sed``).

Each filter names one known message of a dependency that says nothing about the user's run:
dcase_util's ``pkg_resources`` deprecation (the import of sed_eval), torch's ``LeafSpec``
deprecation (raised inside Lightning), W&B's ``anonymous`` setting warning, Lightning's "checkpoint
directory not empty" (a resumed run continues in its own folder, on purpose), and Lightning's
``litlogger`` / ``litmodels`` tips. Our own warnings and every other library warning still show.
"""

from __future__ import annotations

import logging
import warnings

_MESSAGES = (
    r"pkg_resources is deprecated",
    r".*LeafSpec.*",
    r".*anonymous.*setting.*",
    r"Checkpoint directory .* exists and is not empty",  # a resumed run continues in its own folder
)


class _DropTips(logging.Filter):
    """Drops Lightning's advertising tips (``litlogger``, ``litmodels``) from its loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not ("litlogger" in msg or "litmodels" in msg or "Tip:" in msg)


def quiet_third_party() -> None:
    """Install the filters (idempotent); called first thing by every entry point."""
    for pattern in _MESSAGES:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric",
                 "pytorch_lightning.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        lg = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in lg.filters):
            lg.addFilter(_DropTips())


def quiet_loggers(loggers: list) -> list:
    """Lightning's WandbLogger always passes ``anonymous=None`` to ``wandb.init``, which recent wandb
    answers with a deprecation line on every run; drop the key when it is None (our configs never set it)."""
    for lg in loggers:
        init = getattr(lg, "_wandb_init", None)
        if isinstance(init, dict) and init.get("anonymous", 0) is None:
            init.pop("anonymous")
    return loggers
