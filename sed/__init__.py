"""sed: NMF strong labels + shallow/deep CNN sound event detection (DCASE 2020 Task 4).

See SPEC.md (restated from Chan & Chin, DCASE 2020) for every equation and default.
"""

__version__ = "0.1.0"

from sed.core.paths import register_resolvers as _register_resolvers

_register_resolvers()  # ${sed.cache_dir:...} and ${sed.run_id:} in conf/ (sed/core/paths.py)
