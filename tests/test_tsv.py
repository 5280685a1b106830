"""DESED TSV parsing (SPEC section 1) and every bad-input case: one line naming file:line and the fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from sed.core.constants import DESED_CLASSES
from sed.core.errors import DataError
from sed.datamodules.tsv import Event, read_strong_tsv, read_unlabel_tsv, read_weak_tsv, write_strong_tsv


def _write(tmp_path: Path, text: str, name: str = "x.tsv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_weak_parses_comma_separated_tags(tmp_path):
    p = _write(tmp_path, "filename\tevent_labels\na.wav\tDog,Speech\nb.wav\tCat\n")
    assert read_weak_tsv(p) == {"a.wav": ["Dog", "Speech"], "b.wav": ["Cat"]}


def test_unlabel_parses_filenames(tmp_path):
    p = _write(tmp_path, "filename\na.wav\n\nb.wav\n")
    assert read_unlabel_tsv(p) == ["a.wav", "b.wav"]


def test_strong_parses_events_and_empty_rows(tmp_path):
    p = _write(tmp_path,
               "filename\tonset\toffset\tevent_label\na.wav\t0.5\t1.25\tDog\na.wav\t2\t3\tCat\nb.wav\t\t\t\n")
    out = read_strong_tsv(p)
    assert out == {"a.wav": [Event(0.5, 1.25, "Dog"), Event(2.0, 3.0, "Cat")], "b.wav": []}


def test_strong_roundtrip(tmp_path):
    clips = {"a.wav": [Event(0.5, 1.25, "Dog")], "b.wav": []}
    p = write_strong_tsv(tmp_path / "s.tsv", clips)
    assert read_strong_tsv(p) == clips


@pytest.mark.parametrize(
    ("text", "reader", "message"),
    [
        ("filename\tonset\toffset\n", read_strong_tsv, ":1: header"),
        ("", read_strong_tsv, ":1: empty file"),
        ("filename\tonset\toffset\tevent_label\na.wav\t0\t1\tUnicorn\n", read_strong_tsv,
         ":2: unknown class 'Unicorn'"),
        ("filename\tonset\toffset\tevent_label\na.wav\t2\t1\tDog\n", read_strong_tsv,
         ":2: onset 2.0 is after offset 1.0"),
        ("filename\tonset\toffset\tevent_label\na.wav\t-1\t1\tDog\n", read_strong_tsv, ":2: negative onset"),
        ("filename\tonset\toffset\tevent_label\na.wav\tsoon\t1\tDog\n", read_strong_tsv,
         ":2: onset 'soon' is not a number"),
        ("filename\tonset\toffset\tevent_label\na.wav\t0\tnan\tDog\n", read_strong_tsv,
         ":2: offset 'nan' is not finite"),
        ("filename\tonset\toffset\tevent_label\na.wav\t0\t1\n", read_strong_tsv, ":2: missing event_label"),
        ("filename\tonset\toffset\tevent_label\na.wav\t0\t1\tDog\textra\n", read_strong_tsv, ":2: 5 columns"),
        ("filename\tevent_labels\na.wav\n", read_weak_tsv, ":2: missing event_labels"),
        ("filename\tevent_labels\na.wav\tDog,Ghost\n", read_weak_tsv, ":2: unknown class 'Ghost'"),
        ("filename\tevent_labels\na.wav\tDog\na.wav\tCat\n", read_weak_tsv, ":3: a.wav is listed twice"),
    ],
)
def test_bad_rows_name_file_line_and_fault(tmp_path, text, reader, message):
    p = _write(tmp_path, text)
    with pytest.raises(DataError) as e:
        reader(p, DESED_CLASSES)  # the label set is data.classes (DESED's ten by default)
    assert str(e.value).startswith(str(p))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="metadata file not found"):
        read_weak_tsv(tmp_path / "nope.tsv")


def test_binary_file(tmp_path):
    p = tmp_path / "bin.tsv"
    p.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        read_unlabel_tsv(p)
