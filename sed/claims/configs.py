"""The entry points' Hydra configs composed here, so a bad override fails before any run starts."""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import sed.train  # noqa: F401 - registers the sgdr_epochs resolver of the training configs
from sed.claims.plan import Settings, data_overrides, train_overrides
from sed.core.errors import ConfigError
from sed.core.paths import CONF_DIR


def compose_config(name: str, overrides: Sequence[str]) -> DictConfig:
    """``conf/<name>.yaml`` with ``overrides``; a bad override is one :class:`ConfigError` line."""
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(name, overrides=list(overrides))
    except Exception as e:  # noqa: BLE001 - a bad override: one line
        if type(e).__module__.startswith(("hydra", "omegaconf")):
            first = str(e).splitlines()[0]
            raise ConfigError(f"conf/{name}.yaml with {' '.join(overrides)}: {first}") from None
        raise


def check_overrides(s: Settings) -> None:
    """Compose every training, tuning and evaluation config once, so a bad override fails before any run."""
    for system in s.systems:
        ov = [o for o in train_overrides(s, system, 0, s.out_dir / "x", False) if not o.startswith("hydra.")]
        compose_config("train", ov)
    compose_config("tune", [*data_overrides(s), *s.tune_args])
    compose_config("eval", [*data_overrides(s), *s.eval_args])
