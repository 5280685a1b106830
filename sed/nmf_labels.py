"""NMF strong labels for the weak clips (SPEC section 3): ``python -m sed.nmf_labels`` / ``make nmf-labels``.

Writes ``data.nmf_labels_tsv`` (soundscapes.tsv format) and, in the run folder
(``outputs/nmf_labels/<time>/``): a copy of the TSV, ``dictionary.npz``, and when the dataset has the
weak clips' true strong labels (the generated set): ``quality.md`` / ``quality.json`` (event- and
segment-based F1 of the NMF labels and of the trivial labels) and ``nmf_examples.png``.
A multirun (``-m nmf.threshold=0.3,0.5 nmf.dictionary.kind=mean,all``) scores every point and prints
a summary table (``summary.md`` in the sweep folder).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from sed.core.errors import SedError
from sed.core.warnings import quiet_third_party

log = logging.getLogger("sed.nmf_labels")


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def _run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def run(cfg: DictConfig, out_dir: Path, multirun: bool = False) -> dict:
    """The job on ``cfg`` (``data``, ``nmf`` and the keys of conf/nmf_labels.yaml); returns the quality
    dict."""
    import numpy as np

    # lazy: torch (sed.datamodules.cache, sed.nmf) costs ~1.7 s; `python -m sed.nmf_labels --help` skips it
    from sed.datamodules.cache import load_split
    from sed.nmf import job, quality

    publish = cfg.get("publish")
    publish = (not multirun) if publish is None else bool(publish)
    res = job.run_job(cfg.data, cfg.nmf, output_tsv=cfg.output_tsv if publish else None, out_dir=out_dir,
                      progress=bool(cfg.progress), force=bool(cfg.get("force", False)))
    log.info("%d events for %d weak clips -> %s", res.info["n_events"], len(res.filenames),
             res.tsv if res.tsv else out_dir / "weak_nmf.tsv")
    truth = job.read_truth(cfg.data) if cfg.quality else None
    if truth is None:
        log.info("no true strong labels for the weak clips (data.weak_truth_tsv): quality not scored")
        return {}
    names = res.filenames
    scores = {"nmf": quality.score_labels(res.labels, truth, names),
              "trivial": quality.score_labels(quality.trivial_labels(res.tags), truth, names)}
    point = {"dictionary": cfg.nmf.dictionary.kind, "threshold": float(cfg.nmf.threshold),
             "normalize": cfg.nmf.normalize, "mode": cfg.nmf.activation.mode, "beta": float(cfg.nmf.beta)}
    md = quality.write_quality(out_dir, scores, {"point": point, "info": res.info,
                                                 "config": OmegaConf.to_container(cfg.nmf, resolve=True)})
    print(f"\nNMF labels vs truth ({len(names)} weak clips), {point}\n{md}")
    if int(cfg.plot_clips) > 0 and names:
        pick = names[: int(cfg.plot_clips)]
        feats = load_split(cfg.data, "weak", progress=False)
        logmels = [np.asarray(feats.logmel[feats.index_of(n)]) for n in pick]
        quality.plot_clips(out_dir / "nmf_examples.png", pick, logmels,
                           job.curves_for_plot(res, cfg.nmf, pick), truth, res.labels,
                           float(cfg.nmf.threshold), normalize=str(cfg.nmf.normalize))
    return scores


@hydra.main(version_base="1.3", config_path="../conf", config_name="nmf_labels")
def main(cfg: DictConfig) -> None:
    quiet_third_party()
    try:
        run(cfg, _run_dir(), _multirun())
    except SedError as e:
        log.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
