"""Paths safe for parallel work: a feature cache per dataset copy, a run folder per process.

Both are OmegaConf resolvers (registered on ``import sed``) used by the configs:

- ``${sed.cache_dir:<name>,<root>}`` (conf/data/mini_desed.yaml): ``cache/<name>`` for the first data
  root that claims it (its resolved path is written to ``cache/<name>/DATA_ROOT``, atomically; a root
  that does not exist claims nothing), and
  ``cache/<name>-<hash of the resolved root>`` for any other root, so two dataset copies that keep the
  same ``data.name`` never share (and never rebuild) one cache;
- ``${sed.run_id:}`` (the ``hydra.run.dir`` / ``hydra.sweep.dir`` of every entry point): the process
  id, so two runs started in the same second get two folders.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CACHE_ROOT = "cache"
MARKER = "DATA_ROOT"
#: the configs of the checkout the package runs from (conf/ beside sed/)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def root_key(root: str | os.PathLike) -> str:
    """A short stable key of a data root's resolved path."""
    return hashlib.sha1(os.path.realpath(str(root)).encode()).hexdigest()[:8]


def _claim(folder: Path, real: str) -> bool:
    """Whether ``folder`` belongs to the data root ``real`` (claiming it when nobody has)."""
    marker = folder / MARKER
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            return marker.read_text().strip() == real
        except OSError:
            return False
    with os.fdopen(fd, "w") as fh:
        fh.write(real + "\n")
    return True


def cache_dir_for(name: str, root: str | os.PathLike, base: str | os.PathLike = CACHE_ROOT) -> str:
    """The cache folder of the dataset copy at ``root`` called ``name`` (see the module docstring)."""
    real = os.path.realpath(str(root))
    plain = Path(base) / str(name)
    if not os.path.isdir(real):  # a root not there (yet): claim nothing (the run fails on its data anyway)
        return plain.as_posix()
    if _claim(plain, real):
        return plain.as_posix()
    keyed = Path(base) / f"{name}-{root_key(real)}"
    _claim(keyed, real)
    return keyed.as_posix()


def run_id() -> str:
    """A suffix unique to this process among those running on this machine."""
    return str(os.getpid())


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("sed.cache_dir"):
        OmegaConf.register_new_resolver("sed.cache_dir", lambda name, root: cache_dir_for(name, root))
    if not OmegaConf.has_resolver("sed.run_id"):
        OmegaConf.register_new_resolver("sed.run_id", run_id, use_cache=True)
