"""Checkpoints written whole or not at all: Lightning writes ``last.ckpt`` in place, so a full disk or a
kill during the write leaves a truncated file that the next resume cannot read. Here each checkpoint is
written to ``.<name>.partial`` beside it and renamed over the old one only when complete (``os.replace``
is atomic on one file system); a failed write removes the partial file and keeps the previous checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pytorch_lightning.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with a write-then-rename save (local paths; remote URLs as Lightning does)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        tmp = path.with_name(f".{path.name}.partial")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise OSError(e.errno, f"cannot write checkpoint {path} ({e.strerror or e}); "
                                       "the previous one is kept") from None
            raise
        return None
