"""PSDS scenarios (SPEC section 7): the intersection criteria and weights one PSDS figure is computed with.

A :class:`Scenario` holds dtc, gtc, cttc, alpha_ct, alpha_st and max_efpr. Named scenarios:

- ``dcase2020``: the three DCASE 2020 Task 4 figures (dtc 0.5, gtc 0.5, cttc 0.3, max_efpr 100):
  ``psds`` (alpha_ct 0, alpha_st 0), ``psds_cross_trigger`` (alpha_ct 1) and ``psds_macro`` (alpha_st 1);
- ``psds1``: DCASE 2021+ scenario 1 (dtc 0.7, gtc 0.7, alpha_ct 0, alpha_st 1, max_efpr 100);
- ``psds2``: DCASE 2021+ scenario 2 (dtc 0.1, gtc 0.1, cttc 0.3, alpha_ct 0.5, alpha_st 1, max_efpr 100);
- custom: ``name=x,dtc=0.5,gtc=0.5,cttc=0.3,alpha_ct=0,alpha_st=1,max_efpr=100`` (missing keys take the
  psds_eval defaults: dtc 0.5, gtc 0.5, cttc 0.3, alphas 0, max_efpr 100) or a YAML file (a mapping
  ``name: {dtc: ..., ...}``, or a list of such mappings each with a ``name``).

``sed.eval`` computes :data:`PSDS_EVAL_DEFAULT` with psds_eval and :data:`SED_SCORES_DEFAULT` with
sed_scores_eval; ``sedx score`` takes any list (:func:`parse_scenarios`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sed.core.errors import ConfigError

#: psds_eval's own defaults, used for keys a custom scenario leaves out.
DEFAULT_CTTC = 0.3
MAX_EFPR = 100.0


@dataclass(frozen=True)
class Scenario:
    """One PSDS figure's settings (names as psds_eval and sed_scores_eval spell them)."""

    name: str
    dtc_threshold: float = 0.5
    gtc_threshold: float = 0.5
    cttc_threshold: float | None = DEFAULT_CTTC
    alpha_ct: float = 0.0
    alpha_st: float = 0.0
    max_efpr: float = MAX_EFPR

    def __post_init__(self) -> None:
        for key in ("dtc_threshold", "gtc_threshold"):
            v = getattr(self, key)
            if not 0.0 < float(v) <= 1.0:
                raise ConfigError(f"scenario {self.name!r}: {key} must be in (0, 1], got {v}")
        if self.cttc_threshold is not None and not 0.0 < float(self.cttc_threshold) <= 1.0:
            raise ConfigError(
                f"scenario {self.name!r}: cttc_threshold must be in (0, 1], got {self.cttc_threshold}"
            )
        if not 0.0 <= float(self.alpha_ct) <= 1.0:
            raise ConfigError(f"scenario {self.name!r}: alpha_ct must be in [0, 1], got {self.alpha_ct}")
        if float(self.alpha_st) < 0:
            raise ConfigError(f"scenario {self.name!r}: alpha_st must be >= 0, got {self.alpha_st}")
        if not float(self.max_efpr) > 0:
            raise ConfigError(f"scenario {self.name!r}: max_efpr must be > 0, got {self.max_efpr}")
        if self.alpha_ct > 0 and self.cttc_threshold is None:
            raise ConfigError(f"scenario {self.name!r}: alpha_ct > 0 needs a cttc_threshold")

    # what each library takes
    def psds_eval_criteria(self) -> tuple[float, float, float]:
        """(dtc, gtc, cttc) for ``PSDSEval``; without a cttc, psds_eval's default 0.3 (it cannot change
        the figure when alpha_ct is 0)."""
        cttc = DEFAULT_CTTC if self.cttc_threshold is None else float(self.cttc_threshold)
        return float(self.dtc_threshold), float(self.gtc_threshold), cttc

    def sed_scores_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``sed_scores_eval.intersection_based.psds`` (it refuses a cttc with
        alpha_ct 0)."""
        return {
            "dtc_threshold": float(self.dtc_threshold),
            "gtc_threshold": float(self.gtc_threshold),
            "cttc_threshold": float(self.cttc_threshold) if self.alpha_ct > 0 else None,
            "alpha_ct": float(self.alpha_ct),
            "alpha_st": float(self.alpha_st),
            "max_efpr": float(self.max_efpr),
        }

    def describe(self) -> str:
        """``dtc 0.5 gtc 0.5 cttc 0.3, alpha_ct 0 alpha_st 1, max_efpr 100`` (cttc only when it counts)."""
        cttc = f" cttc {_g(self.cttc_threshold)}" if self.alpha_ct > 0 else ""
        return (
            f"dtc {_g(self.dtc_threshold)} gtc {_g(self.gtc_threshold)}{cttc}, "
            f"alpha_ct {_g(self.alpha_ct)} alpha_st {_g(self.alpha_st)}, max_efpr {_g(self.max_efpr)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _g(v: float | None) -> str:
    return "none" if v is None else f"{float(v):g}"


_2020 = {"dtc_threshold": 0.5, "gtc_threshold": 0.5, "cttc_threshold": 0.3}
#: every named single scenario
SCENARIOS: dict[str, Scenario] = {
    "psds": Scenario("psds", **_2020, alpha_ct=0.0, alpha_st=0.0),
    "psds_cross_trigger": Scenario("psds_cross_trigger", **_2020, alpha_ct=1.0, alpha_st=0.0),
    "psds_macro": Scenario("psds_macro", **_2020, alpha_ct=0.0, alpha_st=1.0),
    "psds1": Scenario("psds1", 0.7, 0.7, None, alpha_ct=0.0, alpha_st=1.0),
    "psds2": Scenario("psds2", 0.1, 0.1, 0.3, alpha_ct=0.5, alpha_st=1.0),
}
#: named groups of scenarios
SCENARIO_SETS: dict[str, tuple[str, ...]] = {
    "dcase2020": ("psds", "psds_cross_trigger", "psds_macro"),
    "psds1": ("psds1",),
    "psds2": ("psds2",),
}
#: what sed.eval computes with psds_eval from its operating points (the DCASE 2020 figures)
PSDS_EVAL_DEFAULT: tuple[Scenario, ...] = tuple(SCENARIOS[k] for k in SCENARIO_SETS["dcase2020"])
#: what sed.eval computes with sed_scores_eval (threshold-independent 2020 PSDS, PSDS1, PSDS2)
SED_SCORES_DEFAULT: tuple[Scenario, ...] = (
    replace(SCENARIOS["psds"], name="psds_threshold_independent", cttc_threshold=None),
    SCENARIOS["psds1"],
    SCENARIOS["psds2"],
)
#: what ``sedx score`` computes by default (what DESED papers report)
SCORE_DEFAULT = "psds1,psds2"

_ALIASES = {
    "dtc": "dtc_threshold",
    "gtc": "gtc_threshold",
    "cttc": "cttc_threshold",
    "dtc_threshold": "dtc_threshold",
    "gtc_threshold": "gtc_threshold",
    "cttc_threshold": "cttc_threshold",
    "alpha_ct": "alpha_ct",
    "alpha_st": "alpha_st",
    "max_efpr": "max_efpr",
}


def scenario_from_mapping(
    values: Mapping[str, Any], name: str | None = None, source: str = "scenario"
) -> Scenario:
    """A custom :class:`Scenario` from ``{dtc, gtc, cttc, alpha_ct, alpha_st, max_efpr[, name]}``."""
    kwargs: dict[str, Any] = {}
    name = str(values.get("name", name or "custom"))
    for k, v in values.items():
        if k == "name":
            continue
        if k not in _ALIASES:
            raise ConfigError(
                f"{source}: unknown scenario key {k!r} (expected {', '.join(sorted(set(_ALIASES)))})"
            )
        if v is None or (isinstance(v, str) and v.lower() in ("none", "null", "")):
            if _ALIASES[k] != "cttc_threshold":
                raise ConfigError(f"{source}: {k} needs a value")
            kwargs["cttc_threshold"] = None
            continue
        try:
            kwargs[_ALIASES[k]] = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: {k}={v!r} is not a number") from None
    return Scenario(name, **kwargs)


def _from_yaml(path: Path) -> list[Scenario]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if isinstance(data, Mapping) and set(data) <= set(_ALIASES) | {"name"}:
        return [scenario_from_mapping(data, name=path.stem, source=str(path))]
    if isinstance(data, Mapping):
        out = []
        for k, v in data.items():
            if not isinstance(v, Mapping):
                raise ConfigError(
                    f"{path}: scenario {k!r} must be a mapping of dtc, gtc, cttc, alpha_ct, alpha_st, "
                    "max_efpr"
                )
            out.append(scenario_from_mapping(v, name=str(k), source=f"{path}: {k}"))
        return out
    if isinstance(data, list) and all(isinstance(v, Mapping) for v in data):
        return [scenario_from_mapping(v, name=f"custom{i}", source=f"{path}: item {i}")
                for i, v in enumerate(data)]
    raise ConfigError(f"{path}: expected a mapping name -> scenario settings, or a list of them")


def parse_scenarios(
    specs: str | Scenario | Iterable[str | Scenario] | None, default: str = SCORE_DEFAULT
) -> tuple[Scenario, ...]:
    """Scenarios from names (``dcase2020``, ``psds1``, ``psds2``, ``psds``...), comma lists of them,
    ``key=value`` lists (one custom scenario) or YAML paths; several specs add up (duplicates dropped)."""
    if specs is None or (isinstance(specs, str) and not specs.strip()):
        specs = [default]
    if isinstance(specs, (str, Scenario)):
        specs = [specs]
    out: dict[str, Scenario] = {}

    def add(s: Scenario) -> None:
        if s.name in out and out[s.name] != s:
            raise ConfigError(f"scenario name {s.name!r} is given twice with different settings")
        out[s.name] = s

    for spec in specs:
        if isinstance(spec, Scenario):
            add(spec)
            continue
        spec = str(spec).strip()
        if spec.endswith((".yaml", ".yml")) or Path(spec).is_file():
            if not Path(spec).is_file():
                raise ConfigError(f"{spec}: scenario file not found")
            for s in _from_yaml(Path(spec)):
                add(s)
        elif "=" in spec:
            pairs = {}
            for item in spec.split(","):
                k, sep, v = item.partition("=")
                if not sep:
                    raise ConfigError(f"scenario {spec!r}: {item!r} is not key=value")
                pairs[k.strip()] = v.strip()
            add(scenario_from_mapping(pairs, source=f"scenario {spec!r}"))
        else:
            for name in (n.strip() for n in spec.split(",") if n.strip()):
                if name in SCENARIO_SETS:
                    for k in SCENARIO_SETS[name]:
                        add(SCENARIOS[k])
                elif name in SCENARIOS:
                    add(SCENARIOS[name])
                else:
                    raise ConfigError(
                        f"unknown scenario {name!r}: expected one of "
                        f"{', '.join(sorted(set(SCENARIO_SETS) | set(SCENARIOS)))}, "
                        "key=value settings or a YAML file"
                    )
    return tuple(out.values())


def group_by_criteria(scenarios: Sequence[Scenario]) -> dict[tuple[float, float, float], list[Scenario]]:
    """Scenarios sharing psds_eval's (dtc, gtc, cttc): one ``PSDSEval`` evaluates the operating points
    for them all."""
    groups: dict[tuple[float, float, float], list[Scenario]] = {}
    for s in scenarios:
        groups.setdefault(s.psds_eval_criteria(), []).append(s)
    return groups
