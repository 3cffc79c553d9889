"""LMS downloads and rosters: real zips built here in each LMS's naming, hostile ones too."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

from grader.core import nofollow
from grader.core.errors import GraderError
from grader.course import ingest, roster

NOTEBOOK = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def write_roster(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def class_roster(tmp_path: Path) -> roster.Roster:
    return roster.load(write_roster(tmp_path / "roster.csv", (
        "Student ID,Full name,Email address,Section,Canvas ID,Moodle ID\n"
        "s1,Ada Lovelace,ada@uni.edu,A,1001,501\n"
        "s2,Alan Turing,alan@uni.edu,B,1002,502\n"
        "s3,Grace Hopper,grace@uni.edu,A,1003,503\n")))


def test_canvas_resubmission_counts_once_latest_wins(tmp_path, class_roster) -> None:
    archive = make_zip(tmp_path / "submissions.zip", {
        "lovelaceada_1001_7001_backprop.ipynb": NOTEBOOK,
        "lovelaceada_LATE_1001_7890999_backprop-1.ipynb": NOTEBOOK,
        "turingalan_1002_7002_backprop.ipynb": NOTEBOOK,
        "strangerx_4242_7003_backprop.ipynb": NOTEBOOK,
    })
    with ingest.collect([archive]) as (found, refused):
        matched = ingest.match(found, class_roster, refused)
        assert sorted(matched.latest) == ["s1", "s2"]
        latest = matched.latest["s1"]
        assert latest.original.endswith("backprop-1.ipynb") and latest.late
        assert latest.path.read_bytes() == NOTEBOOK
        assert [s.original for s in matched.earlier["s1"]] == [
            "submissions.zip/lovelaceada_1001_7001_backprop.ipynb"]
        assert [s.original for s in matched.unmatched] == [
            "submissions.zip/strangerx_4242_7003_backprop.ipynb"]
    assert not latest.path.exists()  # the extraction is private and temporary


def test_canvas_without_roster_names_by_canvas_user(tmp_path) -> None:
    archive = make_zip(tmp_path / "c.zip", {
        "lovelaceada_1001_7001_backprop.ipynb": NOTEBOOK,
        "lovelaceada_LATE_1001_7890999_backprop-1.ipynb": NOTEBOOK,
    })
    with ingest.collect([archive]) as (found, _):
        matched = ingest.match(found, None)
    assert list(matched.latest) == ["lovelaceada_1001"]
    assert len(matched.earlier["lovelaceada_1001"]) == 1


def test_moodle_folders_with_the_same_file_name_are_different_students(tmp_path,
                                                                      class_roster) -> None:
    archive = make_zip(tmp_path / "moodle.zip", {
        "Ada Lovelace_501_assignsubmission_file_/backprop.ipynb": NOTEBOOK,
        "Alan Turing_502_assignsubmission_file_/backprop.ipynb": NOTEBOOK,
        "Alan Turing_502_assignsubmission_file_/.ipynb_checkpoints/backprop-checkpoint.ipynb":
            NOTEBOOK,
        "__MACOSX/Ada Lovelace_501_assignsubmission_file_/._backprop.ipynb": b"junk",
    })
    with ingest.collect([archive]) as (found, _):
        assert [s.lms for s in found] == ["moodle", "moodle"]
        assert sorted(ingest.match(found, class_roster).latest) == ["s1", "s2"]
        plain = ingest.match(found, None).latest
        assert len(plain) == 2 and all("backprop" not in name for name in plain)


def test_moodle_extracted_folder_is_read_the_same(tmp_path, class_roster) -> None:
    folder = tmp_path / "download"
    (folder / "Grace Hopper_503_assignsubmission_file_").mkdir(parents=True)
    (folder / "Grace Hopper_503_assignsubmission_file_" / "mine.ipynb").write_bytes(NOTEBOOK)
    with ingest.collect([folder]) as (found, _):
        assert list(ingest.match(found, class_roster).latest) == ["s3"]


def test_brightspace_names_and_times(tmp_path, class_roster) -> None:
    archive = make_zip(tmp_path / "d2l.zip", {
        "index.html": b"<html></html>",
        "88-1201 - Turing, Alan - Nov 21, 2026 905 AM - backprop.ipynb": NOTEBOOK,
        "88-1202 - Turing, Alan - Nov 22, 2026 1130 PM - backprop.ipynb": NOTEBOOK,
        "88-1203 - Hopper, Grace - Nov 20, 2026 1159 PM - backprop.ipynb": NOTEBOOK,
    })
    with ingest.collect([archive], lms="brightspace") as (found, _):
        matched = ingest.match(found, class_roster)
    assert sorted(matched.latest) == ["s2", "s3"]
    assert matched.latest["s2"].submitted == "2026-11-22T23:30:00"
    assert matched.latest["s3"].submitted == "2026-11-20T23:59:00"
    assert len(matched.earlier["s2"]) == 1


def test_plain_files_keep_todays_names_and_clashes_are_refused(tmp_path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "bob.ipynb").write_bytes(NOTEBOOK)
    with ingest.collect([tmp_path / "a"]) as (found, _):
        assert list(ingest.match(found, None).latest) == ["bob"]
    with ingest.collect([tmp_path / "a", tmp_path / "b"]) as (found, refused):
        matched = ingest.match(found, None, refused)  # two people, not two attempts: neither
    assert not matched.latest
    assert {r.original: r.why for r in matched.refused} == {
        "a/bob.ipynb": "would share the result name 'bob' with b/bob.ipynb; not graded (rename "
                       "one of them, or give a --roster)",
        "b/bob.ipynb": "would share the result name 'bob' with a/bob.ipynb; not graded (rename "
                       "one of them, or give a --roster)"}


def test_hostile_members_are_refused_and_nothing_lands_outside(tmp_path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("../escaped.ipynb", NOTEBOOK)
        zf.writestr("/etc/absolute.ipynb", NOTEBOOK)
        zf.writestr("a\\..\\..\\windows.ipynb", NOTEBOOK)
        link = zipfile.ZipInfo("link.ipynb")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("bomb.ipynb", b"\0" * (60 << 20))  # 60 MB of zeros: ~60 KB compressed
        zf.writestr("good_1001_1_x.ipynb", NOTEBOOK)
    with ingest.collect([archive]) as (found, refused):
        assert [s.original for s in found] == ["evil.zip/good_1001_1_x.ipynb"]
        why = {r.original: r.why for r in refused}
        assert set(why) == {"../escaped.ipynb", "/etc/absolute.ipynb", "a\\..\\..\\windows.ipynb",
                            "link.ipynb", "bomb.ipynb"}
        assert "link" in why["link.ipynb"] and "zip bomb" in why["bomb.ipynb"]
        scratch = found[0].path.parents[1]
        assert all(p.is_file() and not p.is_symlink() for p in scratch.rglob("*") if p.is_file())
    assert not (tmp_path / "escaped.ipynb").exists()
    assert not (tmp_path.parent / "escaped.ipynb").exists()


def test_archive_with_too_many_members_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(ingest, "MAX_MEMBERS", 3)
    archive = make_zip(tmp_path / "many.zip", {f"n{i}.ipynb": NOTEBOOK for i in range(4)})
    with pytest.raises(GraderError, match="4 files in the archive"):
        with ingest.collect([archive]):
            pass


def test_archive_over_the_total_size_is_refused_as_a_bomb(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(ingest, "MAX_TOTAL_BYTES", 100)
    archive = make_zip(tmp_path / "big.zip", {"a.ipynb": NOTEBOOK, "b.ipynb": NOTEBOOK})
    with pytest.raises(GraderError, match="zip bomb"):
        with ingest.collect([archive]):
            pass


def set_flag(archive: Path, bit: int, *, only: bytes = b"") -> None:
    """Set a general-purpose flag bit in every member's central and local header (or only in
    those whose name contains ``only``), as a hand-made or damaged archive has it."""
    data = bytearray(archive.read_bytes())
    for signature, flags, name_length, name_at in ((b"PK\x01\x02", 8, 28, 46),
                                                   (b"PK\x03\x04", 6, 26, 30)):
        at = data.find(signature)
        while at >= 0:
            length = int.from_bytes(data[at + name_length:at + name_length + 2], "little")
            if only in data[at + name_at:at + name_at + length]:
                value = int.from_bytes(data[at + flags:at + flags + 2], "little") | bit
                data[at + flags:at + flags + 2] = value.to_bytes(2, "little")
            at = data.find(signature, at + 1)
    archive.write_bytes(bytes(data))


def test_odd_members_are_refused_alone_and_the_rest_extracted(tmp_path) -> None:
    """One odd member never stops the class's archive: each is listed with why, like the other
    refused files, and every other notebook is found."""
    archive = tmp_path / "odd.zip"
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("ada_1001_1_x.ipynb", NOTEBOOK)
            zf.writestr("ada_1001_1_x.ipynb", b"{}")  # the same name again
            zf.writestr("bob_1002_2_" + "x" * 300 + ".ipynb", NOTEBOOK)  # name too long
            zf.writestr("m/x.ipynb", NOTEBOOK)
            zf.writestr("m/x.ipynb/y.ipynb", NOTEBOOK)  # needs m/x.ipynb to be a folder
            zf.writestr("n/y.ipynb/z.ipynb", NOTEBOOK)
            zf.writestr("n/y.ipynb", NOTEBOOK)  # a file where a folder already is
            zf.writestr("BADNAME.ipynb", NOTEBOOK)
            zf.writestr("secret.ipynb", NOTEBOOK)
            zf.writestr("cy_1003_3_x.ipynb", NOTEBOOK)
    data = archive.read_bytes().replace(b"BADNAME", b"BAD\xff\xfeME")
    archive.write_bytes(data)
    set_flag(archive, 0x800, only=b"BAD\xff")  # says UTF-8, is not
    set_flag(archive, 0x1, only=b"secret")  # encrypted
    with ingest.collect([archive]) as (found, refused):
        assert [s.original for s in found] == [
            "odd.zip/ada_1001_1_x.ipynb", "odd.zip/cy_1003_3_x.ipynb", "odd.zip/m/x.ipynb",
            "odd.zip/n/y.ipynb/z.ipynb"]
        assert found[0].path.read_bytes() == NOTEBOOK  # the first of the two is kept
        why = [(r.original[:12], r.why) for r in refused]
    assert why == [
        ("ada_1001_1_x", "in the archive twice; the first is kept"),
        ("bob_1002_2_x", "a file or folder name longer than 255 bytes"),
        ("m/x.ipynb/y.", "its path clashes with another member's (a file where a folder is "
                         "needed)"),
        ("n/y.ipynb", "its path clashes with another member's (a file where a folder is "
                      "needed)"),
        ("BAD\xa0■ME.ipyn", "a name that is not the UTF-8 the archive says it is"),
        ("secret.ipynb", "encrypted (password-protected)")]


def test_a_damaged_member_is_refused_alone(tmp_path) -> None:
    archive = make_zip(tmp_path / "damaged.zip", {"a_1_1_x.ipynb": NOTEBOOK * 50,
                                                  "b_2_2_x.ipynb": NOTEBOOK})
    data = bytearray(archive.read_bytes())
    data[data.find(b"a_1_1_x.ipynb") + 20] ^= 0xFF  # a byte of its compressed data
    archive.write_bytes(bytes(data))
    with ingest.collect([archive]) as (found, refused):
        assert [s.original for s in found] == ["damaged.zip/b_2_2_x.ipynb"]
        assert [r.original for r in refused] == ["a_1_1_x.ipynb"]
        assert refused[0].why.startswith("damaged in the archive")
        assert not list(found[0].path.parent.glob("a_*"))  # no half-written file is left


def test_an_unreadable_archive_is_a_clear_error_naming_it(tmp_path) -> None:
    archive = make_zip(tmp_path / "cut.zip", {f"s{i}.ipynb": NOTEBOOK for i in range(3)})
    data = archive.read_bytes()
    end = data.rfind(b"PK\x05\x06")
    archive.write_bytes(data[:end + 12] + b"\xff\xff\xff\x7f" + data[end + 16:])  # bad size
    with pytest.raises(GraderError, match=r"cannot read the archive .*cut\.zip"):
        with ingest.collect([archive]):
            pass


def test_member_count_is_checked_before_the_directory_is_read(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(ingest, "MAX_MEMBERS", 3)
    archive = make_zip(tmp_path / "many.zip", {f"n{i}.ipynb": NOTEBOOK for i in range(4)})

    def never(*args, **kwargs):
        raise AssertionError("the whole central directory was read before the cap")

    monkeypatch.setattr(ingest.zipdir, "open_zip", never)
    with pytest.raises(GraderError, match="4 files in the archive"):
        with ingest.collect([archive]):
            pass


def test_member_count_of_a_zip64_archive_is_read_from_its_own_record(tmp_path,
                                                                      monkeypatch) -> None:
    """Past 65,535 members the classic end record says 0xFFFF; the zip64 one has the count."""
    archive = tmp_path / "huge.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for number in range(0x10000):
            zf.writestr(str(number), b"")
    with open(archive, "rb") as raw:
        assert ingest.zipdir.directory(raw).members == 0x10000
    monkeypatch.setattr(ingest.zipdir, "open_zip", None)  # never reached
    with pytest.raises(GraderError, match="65536 files in the archive"):
        with ingest.collect([archive]):
            pass


def test_linked_notebooks_in_a_folder_are_refused_not_graded(tmp_path) -> None:
    secret = tmp_path / "solutions"
    secret.mkdir()
    (secret / "backprop.ipynb").write_bytes(NOTEBOOK)
    folder = tmp_path / "download"
    folder.mkdir()
    (folder / "ada_1001_1_x.ipynb").write_bytes(NOTEBOOK)
    (folder / "bob_1002_2_x.ipynb").symlink_to(secret / "backprop.ipynb")
    (folder / "cy_1003_3_x.ipynb").symlink_to(folder / "ada_1001_1_x.ipynb")
    (folder / "linked").symlink_to(secret, target_is_directory=True)
    (folder / "dir.ipynb").symlink_to(secret, target_is_directory=True)
    with ingest.collect([folder]) as (found, refused):
        assert [s.original for s in found] == ["download/ada_1001_1_x.ipynb"]
        assert {r.original: r.why for r in refused} == {
            "download/bob_1002_2_x.ipynb": nofollow.LINK,
            "download/cy_1003_3_x.ipynb": nofollow.LINK,
            "download/dir.ipynb": nofollow.LINK}
    # a file the instructor names on the command line is theirs to point anywhere
    with ingest.collect([folder / "bob_1002_2_x.ipynb"]) as (found, refused):
        assert [s.original for s in found] == ["bob_1002_2_x.ipynb"] and not refused


# --------------------------------------------------------------------------- roster


def test_roster_reads_a_canvas_gradebook_export_as_it_is(tmp_path) -> None:
    loaded = roster.load(write_roster(tmp_path / "export.csv", (
        "\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,Backprop (99)\n"
        "    Points Possible,,,,,10\n"
        "\"Lovelace, Ada\",1001,s1,ada,A,\n")))
    [ada] = loaded.students
    assert (ada.id, ada.name, ada.canvas_id, ada.sis_id, ada.login) == (
        "1001", "Lovelace, Ada", "1001", "s1", "ada")


def test_roster_headers_any_case_semicolons_and_first_last(tmp_path) -> None:
    loaded = roster.load(write_roster(tmp_path / "r.csv", (
        "first name;LAST NAME;Student_ID;E-Mail;Participant\nAda;Lovelace;s1;a@u.edu;"
        "Participant 501\n")))
    assert loaded.students[0] == roster.Student(id="s1", name="Ada Lovelace", email="a@u.edu",
                                                moodle_id="501")


@pytest.mark.parametrize("text, words", [
    ("name,email\nAda,a@u.edu\n", "no id column"),  # email becomes the id: fine
    ("id,name\ns1,Ada\n,Alan\n", "row 3, column 'id': the id is empty"),
    ("id,name\ns1,Ada\ns1,Alan\n", "'s1' appears twice (rows 2 and 3)"),
    ("", "the roster is empty"),
])
def test_roster_errors_name_row_and_column(tmp_path, text, words) -> None:
    path = write_roster(tmp_path / "r.csv", text)
    if words == "no id column":
        assert roster.load(path).students[0].id == "a@u.edu"
        return
    with pytest.raises(GraderError, match=words.replace("(", r"\(").replace(")", r"\)")):
        roster.load(path)


def test_roster_without_any_id_column_is_refused(tmp_path) -> None:
    with pytest.raises(GraderError, match="no id column"):
        roster.load(write_roster(tmp_path / "r.csv", "name,section\nAda,A\n"))


def test_names_that_are_not_utf8_are_shown_not_fatal(tmp_path, class_roster) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / os.fsdecode(b"caf\xe9_\xff.ipynb")).write_bytes(NOTEBOOK)
    with ingest.collect([folder]) as (found, _):
        matched = ingest.match(found, class_roster)
    [unmatched] = matched.unmatched
    assert unmatched.original.encode("utf-8") and "\ufffd" in unmatched.original


def test_result_names_are_safe_and_distinct() -> None:
    assert roster.result_name("s0042") == "s0042"
    odd = [roster.result_name(i) for i in ("../x", "a b", "a_b", "ada@uni.edu", "Ünal", "")]
    assert all(roster.SAFE_NAME.fullmatch(n) for n in odd) and len(set(odd)) == len(odd)
