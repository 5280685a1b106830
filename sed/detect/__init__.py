"""``sed detect``: run a trained system on recordings of any length, format and quality.

Modules: :mod:`discover` (which files), :mod:`stream` (constant-memory decoding, mono mix-down,
streaming resampling), :mod:`windows` (10 s windows, batching, stitching), :mod:`writer` (TSV / JSON
Lines written as each file finishes, resumable), :mod:`plot` (timeline PNG), :mod:`run` (orchestration).
"""

from sed.detect.discover import AUDIO_EXTENSIONS, discover
from sed.detect.stream import AudioInputError
from sed.detect.windows import WindowSpec

__all__ = ["AUDIO_EXTENSIONS", "AudioInputError", "WindowSpec", "discover"]
