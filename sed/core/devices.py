"""The one device resolver: ``auto`` -> CUDA when there is a GPU, else CPU; anything else as torch
reads it."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` if available, else ``cpu``; ``"cpu"``, ``"cuda:1"``, a ``torch.device``
    -> itself."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
