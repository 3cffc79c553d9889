"""Files written whole (``grader.core.files``): the old file or the new one, never a part of one,
and nothing left beside it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from grader.core import files, results


def beside(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_text_is_utf8_bytes_are_as_they_are_and_the_folder_is_made(tmp_path: Path) -> None:
    text, data = tmp_path / "a" / "b" / "page.html", tmp_path / "blob.bin"
    files.write_atomic(text, "Ünïcode\n")
    files.write_atomic(data, b"\x00\xff\n")
    assert text.read_bytes() == "Ünïcode\n".encode() and data.read_bytes() == b"\x00\xff\n"
    assert beside(text.parent) == ["page.html"]


def test_the_mode_is_readable_by_others_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        files.write_atomic(tmp_path / "page.html", "x")
        files.write_atomic(tmp_path / "checker.pyz", b"x", mode=0o755)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "page.html").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "checker.pyz").stat().st_mode) == 0o755


def test_a_write_that_raises_midway_leaves_the_old_file_and_nothing_beside(
        tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="killed"), files.replacing(target) as temporary:
        temporary.write_text("half of the n")
        assert target.read_text() == "old"  # (a reader meanwhile sees the old file)
        assert temporary.parent == tmp_path and temporary.name.startswith(".result.json.")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and beside(tmp_path) == ["result.json"]


def test_an_interrupt_leaves_nothing_either(tmp_path: Path) -> None:
    target = tmp_path / "new.json"
    with pytest.raises(KeyboardInterrupt), files.replacing(target) as temporary:
        temporary.write_text("{")
        raise KeyboardInterrupt
    assert beside(tmp_path) == []


@pytest.mark.parametrize("failing", ["fsync", "chmod", "replace"])
def test_a_failure_after_the_bytes_leaves_the_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    """The disk full at the flush, a folder that refuses the mode or the rename: the same."""
    target = tmp_path / "grades.csv"
    target.write_text("old")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, fail)  # (the module files.py calls)
    with pytest.raises(OSError, match="No space"):
        files.write_atomic(target, "new " * 1000)
    monkeypatch.undo()
    assert target.read_text() == "old" and beside(tmp_path) == ["grades.csv"]


def test_the_block_may_refuse_what_it_wrote(tmp_path: Path) -> None:
    """A download with the wrong checksum is dropped; a later one with the right one lands."""
    target = tmp_path / "train.gz"
    with pytest.raises(ValueError), files.replacing(target, suffix=".part") as temporary:
        temporary.write_bytes(b"wrong")
        raise ValueError("wrong checksum")
    with files.replacing(target, suffix=".part") as temporary:
        assert temporary.suffix == ".part"
        temporary.write_bytes(b"right")
    assert target.read_bytes() == b"right" and beside(tmp_path) == ["train.gz"]


def test_a_new_file_replaces_the_old_one_in_one_rename(tmp_path: Path) -> None:
    target = tmp_path / "index.html"
    files.write_atomic(target, "old")
    before = target.stat().st_ino
    files.write_atomic(target, "new")
    assert target.read_text() == "new" and target.stat().st_ino != before


def test_results_keeps_the_name_its_users_import() -> None:
    assert results.write_atomic is files.write_atomic
