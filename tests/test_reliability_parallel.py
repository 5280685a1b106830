"""Issue 14, section 4: caches, run folders and NMF part files safe for parallel work, and NMF
settings checked before they replace training labels (each test fails on the code before the fix)."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

import sed  # noqa: F401 - registers the ${sed.*} resolvers
from sed.core.paths import cache_dir_for

REPO = Path(__file__).resolve().parents[1]


def test_two_dataset_copies_with_one_name_never_share_a_cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = tmp_path / "copy_a", tmp_path / "copy_b"
    a.mkdir(), b.mkdir()
    cfg = OmegaConf.load(REPO / "conf" / "data" / "mini_desed.yaml")

    def cache_of(root):
        c = OmegaConf.create({"data": OmegaConf.to_container(cfg)})
        c.data.root = str(root)
        return c.data.cache_dir

    first, second = cache_of(a), cache_of(b)
    assert first == "cache/mini-desed" and second.startswith("cache/mini-desed-") and first != second
    assert cache_of(a) == first and cache_of(b) == second  # stable
    assert cache_of(tmp_path / "x" / ".." / "copy_a") == first  # keyed by the resolved root
    assert (tmp_path / first / "DATA_ROOT").read_text().strip() == os.path.realpath(a)
    assert cache_dir_for("other", a) == "cache/other"
    assert cache_dir_for("third", tmp_path / "not-there") == "cache/third"  # claims nothing
    assert (not (tmp_path / "cache" / "third" / "DATA_ROOT").exists()
            and cache_dir_for("third", b) == "cache/third")


SIGBUS_SCRIPT = textwrap.dedent('''
    import sys, numpy as np
    from sed.datamodules.cache import build_cache
    audio, cache = sys.argv[1], sys.argv[2]
    names = sorted(p.split("/")[-1] for p in sys.argv[3:])
    first = build_cache("validation", audio, names, cache, progress=False, report_dir=cache, workers=1)
    before = np.array(first.logmel)                    # the training's view, memory-mapped
    build_cache("validation", audio, names[:2], cache, progress=False, report_dir=cache, workers=1)'''
    '''  # another copy, fewer rows
    after = np.array(first.logmel)                     # SIGBUS here when the file was rewritten in place
    assert np.array_equal(before, after), "the mapped cache changed under its reader"
    print("ok", len(names))
''')


def test_rebuilding_a_cache_never_breaks_a_process_that_maps_it(tiny_desed, tmp_path):
    audio = tiny_desed / "audio" / "validation"
    wavs = sorted(str(p) for p in audio.glob("*.wav"))
    script = tmp_path / "s.py"
    script.write_text(SIGBUS_SCRIPT)
    r = subprocess.run([sys.executable, str(script), str(audio), str(tmp_path / "cache"), *wavs],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                       timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])  # -7 (SIGBUS) before the fix
    assert r.stdout.strip() == f"ok {len(wavs)}"


def test_run_folders_are_unique_per_process():
    for name in ("train", "eval", "nmf_labels"):
        h = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / f"{name}.yaml").hydra, resolve=False)
        assert "${sed.run_id:}" in h["run"]["dir"] and "${sed.run_id:}" in h["sweep"]["dir"], name
    code = ("import sed; from omegaconf import OmegaConf; "
            "print(OmegaConf.create({'d': 'x/${sed.run_id:}'}).d)")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.strip() for _ in range(2)}
    assert len(outs) == 2  # two processes started in the same second: two folders


def _hammer(path: str, n: int, q) -> None:
    from sed.nmf.job import _save_part

    try:
        for i in range(n):
            _save_part(Path(path), x=np.full(1000, i))
        q.put("ok")
    except Exception as e:  # noqa: BLE001
        q.put(f"{type(e).__name__}: {e}")


def test_two_processes_writing_one_part_file_never_crash(tmp_path):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path / "part_00000.npz"), 300, q)) for _ in range(2)]
    for p in procs:
        p.start()
    res = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert res == ["ok", "ok"]
    with np.load(tmp_path / "part_00000.npz") as z:
        assert z["x"].shape == (1000,)


# ----------------------------------------------------------------------------- NMF settings and labels


def _nmf_cfg(**over):
    from sed.nmf import job  # noqa: F401

    cfg = OmegaConf.load(REPO / "conf" / "nmf" / "default.yaml")
    return OmegaConf.merge(cfg, over)


@pytest.mark.parametrize("over, msg", [
    ({"threshold": 2}, r"nmf.threshold is 2; expected in \[0, 1\]"),
    ({"threshold": -0.1}, r"nmf.threshold is -0.1"),
    ({"threshold": "abc"}, r"nmf.threshold is 'abc'; expected a number"),
    ({"median_window": 0}, r"nmf.median_window is 0; expected an integer >= 1"),
    ({"join_gap": -1}, r"nmf.join_gap is -1"),
    ({"batch_size": 2.5}, r"nmf.batch_size is 2.5"),
])
def test_nmf_settings_out_of_range_are_refused(over, msg):
    from sed.core.errors import ConfigError
    from sed.nmf.job import check_settings

    with pytest.raises(ConfigError, match=msg):
        check_settings(_nmf_cfg(**over))
    check_settings(_nmf_cfg(threshold=2, normalize="absolute"))  # absolute activations may exceed 1
    check_settings(_nmf_cfg())


def test_nmf_threshold_2_through_the_job_stops_before_touching_the_labels(tmp_path):
    from sed.core.errors import ConfigError
    from sed.nmf.job import run_job

    tsv = tmp_path / "weak_nmf.tsv"
    tsv.write_text("filename\tonset\toffset\tevent_label\na.wav\t0.000\t1.000\tDog\n")
    with pytest.raises(ConfigError, match="nmf.threshold is 2"):
        run_job({"cache_dir": str(tmp_path)}, _nmf_cfg(threshold=2), output_tsv=tsv, progress=False)
    assert tsv.read_text().endswith("Dog\n")


def test_replacing_labels_by_far_fewer_events_needs_force(tmp_path, caplog):
    from sed.core.errors import ConfigError
    from sed.nmf.job import guard_replacement

    tsv = tmp_path / "weak_nmf.tsv"
    tsv.write_text("filename\tonset\toffset\tevent_label\n"
                   + "".join(f"c{i}.wav\t0.000\t1.000\tDog\n" for i in range(10)))
    guard_replacement(tmp_path / "none.tsv", 0)  # nothing to replace
    guard_replacement(tsv, 5)  # half: fine
    with pytest.raises(ConfigError,
                       match=r"weak_nmf.tsv: refusing to replace its 10 events by 0 .*force=true"):
        guard_replacement(tsv, 0, kept=tmp_path / "run" / "weak_nmf.tsv")
    with pytest.raises(ConfigError, match="by 4"):
        guard_replacement(tsv, 4)
    guard_replacement(tsv, 0, force=True)
    assert "replacing 10 events by 0 (force=true)" in caplog.text
