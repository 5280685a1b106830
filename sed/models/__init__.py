"""Networks: SM (frame level), DM (clip level), and the DCASE 2020 baseline CRNN."""

from sed.models.common import ModelConfigError, count_parameters
from sed.models.crnn import CRNN
from sed.models.dm import DM
from sed.models.sm import SM, clip_from_frames

__all__ = ["SM", "DM", "CRNN", "clip_from_frames", "count_parameters", "ModelConfigError"]
