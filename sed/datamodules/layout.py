"""The DESED folder layout (SPEC section 1), read from the ``data`` config node."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sed.core.errors import ConfigError

#: Default split table, paths relative to the dataset root (conf/data/*.yaml may override).
#: ``optional: true``: a DESED copy may lack the split (public_eval); a missing TSV or audio folder
#: then gives one warning and an empty split instead of an error.
DEFAULT_SPLITS: dict[str, dict] = {
    "synthetic": {"audio": "audio/train/synthetic20/soundscapes",
                  "tsv": "metadata/train/synthetic20/soundscapes.tsv", "kind": "strong"},
    "weak": {"audio": "audio/train/weak", "tsv": "metadata/train/weak.tsv", "kind": "weak"},
    "unlabel": {"audio": "audio/train/unlabel_in_domain", "tsv": "metadata/train/unlabel_in_domain.tsv",
                "kind": "unlabel"},
    "validation": {"audio": "audio/validation", "tsv": "metadata/validation/validation.tsv",
                   "kind": "strong"},
    "public_eval": {"audio": "audio/eval/public", "tsv": "metadata/eval/public.tsv", "kind": "strong",
                    "optional": True},
}
KINDS = ("strong", "weak", "unlabel")


@dataclass(frozen=True)
class SplitSpec:
    name: str
    audio_dir: Path
    tsv: Path
    kind: str  # strong | weak | unlabel
    optional: bool = False

    def absent(self) -> bool:
        """An optional split whose TSV or audio folder is not there."""
        return self.optional and not (self.tsv.is_file() and self.audio_dir.is_dir())


class DesedLayout:
    """Paths of a DESED-layout folder: ``DesedLayout(root).split("weak").tsv``."""

    def __init__(self, root: str | Path, splits: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.root = Path(root)
        self.splits = {k: dict(v) for k, v in (splits or DEFAULT_SPLITS).items()}

    @classmethod
    def from_cfg(cls, data_cfg: Mapping) -> DesedLayout:
        return cls(data_cfg["root"], data_cfg.get("splits"))

    def split(self, name: str) -> SplitSpec:
        if name not in self.splits:
            raise ConfigError(f"unknown split {name!r}; this dataset has {sorted(self.splits)}")
        s = self.splits[name]
        kind = s.get("kind", "strong")
        if kind not in KINDS:
            raise ConfigError(f"split {name!r}: kind {kind!r} is not one of {KINDS}")
        return SplitSpec(name, self.root / s["audio"], self.root / s["tsv"], kind,
                         bool(s.get("optional", False)))
