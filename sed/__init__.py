"""sed: NMF strong labels + shallow/deep CNN sound event detection (DCASE 2020 Task 4).

See SPEC.md (restated from Chan & Chin, DCASE 2020) for every equation and default.
"""

__version__ = "0.1.0"
