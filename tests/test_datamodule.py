"""The curriculum (SPEC section 5): batch mixes, phases, sharding, weak frame targets from NMF labels."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from sed.core.errors import ConfigError, DataError
from sed.datamodules.desed import SOURCES, CurriculumBatchSampler, DesedDataModule, batch_counts
from sed.datamodules.tsv import read_strong_tsv, write_strong_tsv
from tests.conftest import REPO

PS1 = {"weak": 0.5, "unlabel": 0.5}
PS2 = {"synthetic": 0.25, "weak": 0.25, "unlabel": 0.5}


def make_dm(data_cfg, **over) -> DesedDataModule:
    """The datamodule of conf/datamodule/desed.yaml (its defaults, the one place they live) with ``over``;
    epochs of one pass over the tiny synthetic split unless ``iters_per_epoch`` is given (fast tests)."""
    kw = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "datamodule" / "desed.yaml"))
    for k in ("_target_", "data", "seed"):
        kw.pop(k)
    return DesedDataModule(data_cfg, **{**kw, "seed": 0, "iters_per_epoch": None, **over})


def test_batch_counts_largest_remainder():
    assert batch_counts(PS2, 24) == {"synthetic": 6, "weak": 6, "unlabel": 12}
    # ties: by name
    assert batch_counts({"synthetic": 1, "weak": 1, "unlabel": 1}, 8) == {"synthetic": 3, "unlabel": 3,
                                                                          "weak": 2}
    assert sum(batch_counts({"weak": 0.3, "unlabel": 0.7}, 10).values()) == 10
    with pytest.raises(ConfigError):
        batch_counts({"strong": 1.0}, 8)
    with pytest.raises(ConfigError):
        batch_counts({"weak": 0.01, "unlabel": 0.99}, 4)  # weak would get 0 clips


def _sampler(post, rank=0, world=1, iters=5):
    phases = [(0, batch_counts({"synthetic": 1}, 8)), (2, batch_counts(post, 8))]
    return CurriculumBatchSampler({"synthetic": 40, "weak": 30, "unlabel": 50}, phases, iters, seed=3,
                                  rank=rank, world_size=world)


def _epoch(s, e):
    s.set_epoch(e)
    return list(s)


@pytest.mark.parametrize("post,synthetic_after", [(PS1, False), (PS2, True)])
def test_curriculum_phases(post, synthetic_after):
    s = _sampler(post)
    for e in range(4):
        batches = _epoch(s, e)
        assert len(batches) == 5
        used = {src for b in batches for src, _ in b}
        if e < 2:  # before the switch: synthetic only
            assert used == {"synthetic"}
        else:
            assert ("synthetic" in used) == synthetic_after
            assert {"weak", "unlabel"} <= used


def test_deterministic_and_continuous_streams():
    a, b = _sampler(PS1), _sampler(PS1)
    assert [[(s, r.tolist()) for s, r in x] for x in _epoch(a, 3)] == [
        [(s, r.tolist()) for s, r in x] for x in _epoch(b, 3)
    ]
    # synthetic: 40 clips, 8 per batch x 5 iterations = one permutation per epoch -> each clip once per epoch
    for e in range(2):
        rows = np.concatenate([r for bt in _epoch(a, e) for _, r in bt])
        assert sorted(rows.tolist()) == list(range(40))
    # unlabel (50 clips, 4 x 5 = 20 per epoch): epochs 2, 3 continue one stream -> no repeat before 50
    u = np.concatenate([r for e in (2, 3) for bt in _epoch(a, e) for s, r in bt if s == "unlabel"])
    assert len(set(u.tolist())) == 40


def test_ranks_are_disjoint_within_an_epoch():
    """2 ranks: each epoch's rows of a source are disjoint across ranks and together are the next
    stretch of the source's stream (sizes chosen so that no epoch straddles two permutations)."""
    phases = [(0, batch_counts({"synthetic": 1}, 8)), (2, batch_counts(PS2, 8))]
    sizes = {"synthetic": 32, "weak": 24, "unlabel": 48}
    s0, s1 = (CurriculumBatchSampler(sizes, phases, 2, seed=1, rank=r, world_size=2) for r in (0, 1))
    for e in range(5):
        for src in SOURCES:
            r0 = [r for bt in _epoch(s0, e) for s, rr in bt if s == src for r in rr.tolist()]
            r1 = [r for bt in _epoch(s1, e) for s, rr in bt if s == src for r in rr.tolist()]
            assert not set(r0) & set(r1), (e, src)
            assert len(r0) == len(r1) == len(set(r0))
    # pre-switch epochs: 2 ranks x 2 iterations x 8 = 32 synthetic clips = the whole set, once
    both = [r for s in (s0, s1) for bt in _epoch(s, 1) for _, rr in bt for r in rr.tolist()]
    assert sorted(both) == list(range(32))


@pytest.fixture(scope="module")
def nmf_cfg(tiny_data_cfg, tmp_path_factory):
    """tiny_data_cfg with an NMF labels TSV holding the true events of the first 5 weak clips only."""
    truth = read_strong_tsv(tiny_data_cfg.weak_truth_tsv)
    keep = dict(list(sorted(truth.items()))[:5])
    path = tmp_path_factory.mktemp("nmf") / "weak_nmf.tsv"
    write_strong_tsv(path, keep)
    return OmegaConf.merge(tiny_data_cfg, {"nmf_labels_tsv": str(path)}), keep


def test_datamodule_batches_and_weak_frame_targets(nmf_cfg):
    cfg, keep = nmf_cfg
    dm = make_dm(cfg, batch_size=8, switch_epoch=1, post_switch=PS2, progress=False)
    dm.setup("fit")
    assert dm.iters_per_epoch == 2  # one pass over the 12 synthetic clips at 8 per batch
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(0)
    b = next(iter(loader))
    assert b["x"].shape == (8, 640, 64) and b["y_f"].shape == (8, 640, 10)
    assert b["has_frame"].all() and b["has_clip"].all() and not b["is_unlabel"].any()
    seen = {}

    def epochs(*es):
        for e in es:
            loader.sampler.set_epoch(e)
            yield from loader

    # 2 epochs x 2 iterations x 2 weak clips: the weak stream's first 8 = every weak clip
    for b in epochs(1, 2):
        src = b["source"].numpy()
        assert (src == 0).sum() == 2 and (src == 1).sum() == 2 and (src == 2).sum() == 4
        w = src == 1
        assert b["has_clip"][w].all() and b["is_unlabel"][src == 2].all()
        for j in np.flatnonzero(w):
            name = dm.sources["weak"].feats.filenames[int(b["index"][j])]
            seen[name] = bool(b["has_frame"][j])
            if seen[name]:
                assert b["y_f"][j].sum() > 0
                # frame targets only in tagged classes
                assert (b["y_f"][j].amax(0) <= b["y_c"][j]).all()
            else:
                assert b["y_f"][j].sum() == 0
    assert len(seen) == 8
    for name, has in seen.items():
        assert has == (name in keep and len(keep[name]) > 0)
    dm.setup("validate")
    assert len(dm.val_dataloader().dataset) == 8


def test_missing_nmf_labels_is_a_clear_error(tiny_data_cfg, tmp_path):
    cfg = OmegaConf.merge(tiny_data_cfg, {"nmf_labels_tsv": str(tmp_path / "nope.tsv")})
    dm = make_dm(cfg, batch_size=8, post_switch=PS1, progress=False)
    with pytest.raises(DataError, match="nope.tsv: NMF labels"):
        dm.setup("fit")
    dm2 = make_dm(cfg, batch_size=8, post_switch=PS1, weak_frame_labels="none", progress=False)
    dm2.setup("fit")  # the baseline's setting needs no NMF file
    assert not dm2.sources["weak"].frame
