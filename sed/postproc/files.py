"""Post-processing files and the one rule that picks the post-processing for every entry point.

``sed.eval``, ``sed.tune`` (its base), ``sedx detect`` and ``sedx score`` ask :func:`choose_postproc`, in
this order, and print the answer's ``source``:

1. a file given explicitly (``postproc_file=``, ``--postproc <file.yaml>``);
2. a config named explicitly (``postproc=paper``, ``--postproc paper``) or ``postproc.*`` overrides;
3. the run's tuned ``postproc.yaml`` (``sed.tune``: beside the one predictions file, else in the one run
   folder evaluated);
4. what the run recorded: the post-processing stored in its checkpoint (the training config's);
5. ``conf/postproc/default.yaml`` (Table 1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import OmegaConf

from sed.core.paths import CONF_DIR
from sed.core.runs import run_folder
from sed.postproc.params import PostprocError, PostprocParams

TUNED_FILE = "postproc.yaml"
_SCALAR_KEYS = (
    "even_window", "median_edge", "hysteresis_low", "min_duration", "join_gap", "order", "tuned_on"
)


def params_yaml(params: PostprocParams) -> str:
    """``params`` in the layout of conf/postproc/default.yaml (windows as ``[w1, w2]``); round-trip
    checked."""
    d = params.to_dict()

    def scalar(v: Any) -> str:
        return "null" if v is None else str(v)

    tag = d["tagging_threshold"]
    if isinstance(tag, dict):  # per class (sed.tune)
        lines = ["tagging_threshold:"] + [f"  {c}: {scalar(v)}" for c, v in tag.items()]
    else:
        lines = [f"tagging_threshold: {scalar(tag)}"]
    lines.append("frame_thresholds:")
    lines += [f"  {c}: {v}" for c, v in d["frame_thresholds"].items()]
    lines += ["median_windows:"] + [
        f"  {c}: [{', '.join(str(x) for x in w)}]" for c, w in d["median_windows"].items()
    ]
    lines += [f"{k}: {scalar(d[k])}" for k in _SCALAR_KEYS]
    if d.get("tuned_data"):  # a path, quoted (JSON strings are YAML)
        lines.append(f"tuned_data: {json.dumps(d['tuned_data'])}")
    text = "\n".join(lines) + "\n"
    if PostprocParams.from_cfg(OmegaConf.create(text)) != params:  # pragma: no cover - a bug, not bad input
        raise PostprocError("post-processing YAML does not read back as written")
    return text


def write_postproc_file(params: PostprocParams, name: str, header: str = "") -> Path:
    """Write ``params`` as ``conf/postproc/<name>.yaml`` (or to ``name`` when it is a .yaml path)."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else CONF_DIR / "postproc" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((f"# {header}\n" if header else "") + params_yaml(params))
    return path


def named_postproc_file(name: str) -> Path:
    """``conf/postproc/<name>.yaml`` of the working directory, else of the package's checkout."""
    cands = [Path.cwd() / "conf" / "postproc" / f"{name}.yaml", CONF_DIR / "postproc" / f"{name}.yaml"]
    for c in cands:
        if c.is_file():
            return c
    raise PostprocError(f"no post-processing config named {name!r} (looked for {', '.join(map(str, cands))})")


def _with_defaults(path: Path) -> Any:
    """A conf/postproc YAML with its Hydra ``defaults`` list applied (siblings in the same folder, then
    ``_self_``), as Hydra composes it: ``default.yaml`` is ``paper.yaml``'s values."""
    node = OmegaConf.load(path)
    if not OmegaConf.is_dict(node) or "defaults" not in node:
        return node
    own = OmegaConf.masked_copy(node, [k for k in node if k != "defaults"])
    merged = OmegaConf.create({})
    for entry in node.defaults:
        part = own if entry == "_self_" else _with_defaults(path.parent / f"{entry}.yaml")
        merged = OmegaConf.merge(merged, part)
    return merged


def read_postproc_file(path: str | Path) -> PostprocParams:
    """A post-processing YAML (a ``postproc:`` node or the node itself); one line naming the file when bad."""
    path = Path(path)
    if not path.is_file():
        raise PostprocError(f"{path}: post-processing file not found")
    try:
        cfg = OmegaConf.to_container(_with_defaults(path), resolve=True)
    except Exception as e:  # noqa: BLE001 - any YAML error is a bad file
        raise PostprocError(f"{path}: cannot read post-processing config ({e})") from None
    if isinstance(cfg, dict) and set(cfg) == {"postproc"} and isinstance(cfg["postproc"], dict):
        cfg = cfg["postproc"]
    if not isinstance(cfg, dict):
        raise PostprocError(f"{path}: a post-processing config must be a mapping")
    try:
        return PostprocParams.from_cfg(cfg)
    except PostprocError as e:
        raise PostprocError(f"{path}: {e}") from None


def tuned_postproc_file(runs: Sequence[str | Path], predictions: Sequence[str | Path]) -> Path | None:
    """The tuned ``postproc.yaml`` of what is evaluated: beside the one predictions file, else in the one
    run folder; None when there is none (an ensemble of checkpoints has no folder of its own)."""
    if predictions:
        p = Path(predictions[0]).parent / TUNED_FILE if len(predictions) == 1 else None
    elif len(runs) == 1:
        p = run_folder(runs[0]) / TUNED_FILE
    else:
        p = None
    return p if p is not None and p.is_file() else None


class Choice(NamedTuple):
    """The post-processing, where it comes from (a path or config name) and why it was chosen."""

    params: PostprocParams
    source: str
    why: str

    def line(self) -> str:
        return f"post-processing: {self.source} ({self.why})"


def choose_postproc(*, file: str | Path | None = None, name: str | None = None, node: Any = None,
                    overridden: bool = False, tuned: Path | None = None,
                    recorded: Mapping | None = None, recorded_from: str = "the checkpoint") -> Choice:
    """The post-processing in the module docstring's order.

    ``name``: the config asked for (None or ``default``: none asked); ``node``: that config's content when
    already composed (Hydra), else it is read from ``conf/postproc/<name>.yaml``."""
    if file:
        p = Path(file)
        if p.suffix.lower() in (".yaml", ".yml") or p.exists():
            return Choice(read_postproc_file(p), str(p), "given")
        name = str(file)  # a config name given where a file may be
    if (name and name != "default") or overridden:
        params = (PostprocParams.from_cfg(node) if node is not None
                  else read_postproc_file(named_postproc_file(name)))
        why = "given" + (", with command-line overrides" if overridden else "")
        return Choice(params, f"conf/postproc/{name or 'default'}.yaml", why)
    if tuned is not None:
        return Choice(read_postproc_file(tuned), str(tuned),
                      "tuned for this run by sed.tune; postproc=paper: Table 1")
    if recorded:
        return Choice(PostprocParams.from_cfg(dict(recorded)), f"{recorded_from} (stored at training)",
                      "the run's own: no tuned postproc.yaml for this run")
    params = (PostprocParams.from_cfg(node) if node is not None
              else read_postproc_file(named_postproc_file("default")))
    return Choice(params, "conf/postproc/default.yaml", "Table 1: no tuned postproc.yaml for this run")
