"""The DESED data layer: TSV parsing, targets, layout, the feature cache and the curriculum datamodule."""

from sed.datamodules.layout import DesedLayout, SplitSpec
from sed.datamodules.targets import events_to_frame_targets, tags_to_clip_targets
from sed.datamodules.tsv import Event, read_strong_tsv, read_unlabel_tsv, read_weak_tsv, write_strong_tsv

__all__ = [
    "DesedLayout",
    "Event",
    "SplitSpec",
    "events_to_frame_targets",
    "read_strong_tsv",
    "read_unlabel_tsv",
    "read_weak_tsv",
    "tags_to_clip_targets",
    "write_strong_tsv",
]
