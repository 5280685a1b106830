"""sed.core.memory: glibc allocator settings for ``sedx detect`` (issue 15)."""

from __future__ import annotations

import platform
import subprocess
import sys
from types import SimpleNamespace

import pytest

from sed.core import memory


def test_mallopt_parameters(monkeypatch):
    calls = []
    fake = SimpleNamespace(mallopt=lambda param, value: calls.append((param, value)) or 1)
    monkeypatch.setattr(memory.sys, "platform", "linux")
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: fake)
    assert memory.keep_freed_memory(256 << 20)
    assert calls == [(-3, 256 << 20), (-1, 256 << 20)]  # M_MMAP_THRESHOLD, then M_TRIM_THRESHOLD
    calls.clear()
    assert memory.keep_freed_memory(1 << 40) and calls[0] == (-3, 2**31 - 1)  # an int for glibc


def test_noop_off_linux(monkeypatch):
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.keep_freed_memory() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_real_glibc_accepts_it():
    code = "from sed.core.memory import keep_freed_memory as k; import sys; sys.exit(0 if k() else 3)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr  # mallopt returned 1 for both parameters, and nothing crashed


def test_sedx_detect_sets_it(monkeypatch, tmp_path):
    from tests.detect_helpers import detect_cli, synth, write

    seen = []
    from sed.detect import run as detect_run

    monkeypatch.setattr(detect_run, "keep_freed_memory", lambda *a: seen.append(1) or True)
    rec = write(tmp_path / "r.wav", synth([("Speech", 1.0, 3.0)], 12.0))
    assert detect_cli([str(rec), "--out", str(tmp_path / "o.tsv"), "--quiet"]) == 0
    assert seen == [1]
