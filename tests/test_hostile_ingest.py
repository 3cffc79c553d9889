"""Hostile names at the intake: a file name, a folder or a roster cell a student wrote never
decides whose grade a file is, never escapes a penalty, never takes the grader's own files and
never stops the batch (issue #21).

Each attack is rebuilt from its description: first as names only (quick, on every machine),
then, for the ones the security review reproduced, graded for real (convolution: about a
second per notebook) through ``classroom.intake`` and ``batch.grade_all`` as ``grade`` runs it.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import pytest

from grader.checks import rubric
from grader.core import paths
from grader.core.errors import GraderError
from grader.course import batch, classroom, ingest, roster
from grader.grading import grade
from grader.render import classview
from tests.conftest import build_notebook

NOTEBOOK = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
ROSTER = ("id,name,email,moodle id,canvas id\n"
          "s1,Adam Smith,adam@uni.edu,1001,501\n"
          "s2,Zoe Zed,zoe@uni.edu,1002,502\n"
          "s3,Grace Hopper,grace@uni.edu,1003,503\n")
WRONG_CONV1D = "def conv1d(x, w, stride=1):\n    return x[: len(x) - len(w) + 1] * 0\n"


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def class_roster(tmp_path: Path) -> roster.Roster:
    (tmp_path / "roster.csv").write_text(ROSTER, encoding="utf-8")
    return roster.load(tmp_path / "roster.csv")


def intake(paths: list[Path], class_roster: roster.Roster | None,
           lms: str = "auto") -> ingest.Matched:
    with ingest.collect(paths, lms=lms) as (found, refused):
        return ingest.match(found, class_roster, refused)


def originals(matched: ingest.Matched) -> dict[str, str]:
    return {student: s.original.split("/", 1)[1] for student, s in matched.latest.items()}


def why(matched: ingest.Matched) -> dict[str, str]:
    return {r.original.split("/", 1)[-1]: r.why for r in matched.refused}


# --------------------------------------------------------------------------- 8: Moodle


MOODLE_FORGERY = {
    "Adam Smith_1001_assignsubmission_file_backprop.ipynb": NOTEBOOK,
    "Zoe Zed_1002_assignsubmission_file_backprop.ipynb": NOTEBOOK,
    "Zoe Zed_1002_assignsubmission_file_x_1001_assignsubmission_file_.ipynb": NOTEBOOK,
}


@pytest.mark.core
def test_a_moodle_file_naming_a_classmate_is_refused_not_graded_as_theirs(
        tmp_path, class_roster) -> None:
    """Attack 8: Zoe (1002) uploads ``x_1001_assignsubmission_file_.ipynb``; the greedy
    pattern read it as Adam's latest attempt. The prefix is Moodle's up to the first
    ``_assignsubmission_``: the file is Zoe's, its name points at Adam too, so it is refused
    and listed; Adam's own file is his only one."""
    matched = intake([make_zip(tmp_path / "m.zip", MOODLE_FORGERY)], class_roster)
    assert originals(matched) == {
        "s1": "Adam Smith_1001_assignsubmission_file_backprop.ipynb",
        "s2": "Zoe Zed_1002_assignsubmission_file_backprop.ipynb"}
    assert not matched.earlier
    assert why(matched) == {
        "Zoe Zed_1002_assignsubmission_file_x_1001_assignsubmission_file_.ipynb":
            "its name points at s1 too, but Moodle filed it under s2; not graded (graded as "
            "neither)"}
    # without a roster it is Zoe's, as Moodle filed it: Adam's stays his alone
    plain = intake([make_zip(tmp_path / "m2.zip", MOODLE_FORGERY)], None)
    by_key = {s.key: s for s in plain.latest.values()}
    assert by_key["1001"].original == "m2.zip/Adam Smith_1001_assignsubmission_file_backprop.ipynb"
    assert [s.key for attempts in plain.earlier.values() for s in attempts] == ["1002"]


@pytest.mark.core
def test_folders_a_moodle_student_makes_inside_their_own_are_theirs(tmp_path,
                                                                    class_roster) -> None:
    """With "download submissions in folders" on, the outermost folder is Moodle's; a folder
    Zoe makes inside hers in Moodle's shape, or a file she names in Canvas's or Brightspace's,
    stays Zoe's (and, pointing at Adam, is refused)."""
    zoe = "Zoe Zed_1002_assignsubmission_file"
    archive = make_zip(tmp_path / "m.zip", {
        "Adam Smith_1001_assignsubmission_file/backprop.ipynb": NOTEBOOK,
        f"{zoe}/Adam Smith_1001_assignsubmission_file_/backprop.ipynb": NOTEBOOK,
        f"{zoe}/smithadam_501_99999999_backprop.ipynb": NOTEBOOK,
        f"{zoe}/88-1 - Smith, Adam - Nov 25, 2026 905 AM - backprop.ipynb": NOTEBOOK,
        f"{zoe}/hw_1_2_final.ipynb": NOTEBOOK,  # innocent: Canvas's shape, nobody's id
    })
    matched = intake([archive], class_roster)
    assert originals(matched) == {
        "s1": "Adam Smith_1001_assignsubmission_file/backprop.ipynb",
        "s2": f"{zoe}/hw_1_2_final.ipynb"}
    assert all("points at s1 too, but Moodle filed it under s2" in w
               for w in why(matched).values()) and len(matched.refused) == 3
    # a download of Zoe's folder alone is still Moodle's, whatever her file is called
    alone = make_zip(tmp_path / "z.zip", {f"{zoe}/smithadam_501_99999999_x.ipynb": NOTEBOOK})
    assert [s.lms for s in intake([alone], None).latest.values()] == ["moodle"]


@pytest.mark.core
def test_a_moodle_folder_below_where_moodle_puts_them_is_the_students(tmp_path,
                                                                      class_roster) -> None:
    """Moodle writes no participant id for a team submission of students in no group
    (``Default group_assignsubmission_file/``); a folder the student made inside it in
    Moodle's shape is one level below the download's own, and is no one's."""
    archive = make_zip(tmp_path / "m.zip", {
        "Grace Hopper_1003_assignsubmission_file/backprop.ipynb": NOTEBOOK,
        "Default group_assignsubmission_file/Adam Smith_1001_assignsubmission_file/x.ipynb":
            NOTEBOOK})
    matched = intake([archive], class_roster)
    assert list(matched.latest) == ["s3"]
    assert list(why(matched).values()) == [
        "its Moodle name is not where the rest of m.zip has it (a folder of the student's "
        "own?); not graded"]


@pytest.mark.core
def test_a_moodle_profile_name_of_a_classmate_is_refused(tmp_path, class_roster) -> None:
    """The full name is Moodle's field, but a student may edit it in their profile: Zoe's
    participant id with Adam's name is no one's to grade."""
    matched = intake([make_zip(tmp_path / "m.zip", {
        "Smith, Adam_1002_assignsubmission_file_backprop.ipynb": NOTEBOOK,
        "Adam Smith_1001_assignsubmission_file_backprop.ipynb": NOTEBOOK})], class_roster)
    assert list(matched.latest) == ["s1"]
    assert list(why(matched).values()) == [
        "its name points at s1 too, but Moodle filed it under s2; not graded (graded as neither)"]


# --------------------------------------------------------------------------- 9: Brightspace


def brightspace(name: str, when: str, file: str) -> str:
    return f"88-{sum(map(ord, name))} - {name} - {when} - {file}"


@pytest.mark.core
@pytest.mark.parametrize("file", ["x_1_2_backprop.ipynb", "x_501_2_backprop.ipynb",
                                  "x_1001_assignsubmission_file_backprop.ipynb"])
def test_a_brightspace_name_keeps_its_time_whatever_the_student_called_the_file(
        tmp_path, class_roster, file) -> None:
    """Attack 9: with ``--lms auto`` a Brightspace name whose student part holds ``_1_2_``
    was read as Canvas's, and its time lost (0 days late). The LMS is decided once per
    download; a Canvas login has no spaces and a Moodle name no underscore, so neither
    reading fits a Brightspace name; alone in its archive too."""
    late = "Nov 25, 2026 905 AM"
    archive = make_zip(tmp_path / "d2l.zip", {
        brightspace("Smith, Adam", late, file): NOTEBOOK,
        brightspace("Zed, Zoe", late, "backprop.ipynb"): NOTEBOOK,
        "index.html": b"<html></html>"})
    matched = intake([archive], class_roster)
    assert {s: (m.lms, m.submitted) for s, m in matched.latest.items()} == {
        "s1": ("brightspace", "2026-11-25T09:05:00"), "s2": ("brightspace", "2026-11-25T09:05:00")}
    alone = make_zip(tmp_path / "one.zip", {brightspace("Smith, Adam", late, file): NOTEBOOK})
    [adam] = intake([alone], class_roster).latest.values()
    assert (adam.lms, adam.submitted) == ("brightspace", "2026-11-25T09:05:00")


@pytest.mark.core
def test_a_brightspace_time_that_is_no_time_is_refused_not_on_time(tmp_path,
                                                                   class_roster) -> None:
    """A name whose time cannot be read would be graded as if handed in on time."""
    archive = make_zip(tmp_path / "d2l.zip", {
        brightspace("Smith, Adam", "Feb 30, 2026 905 AM", "x.ipynb"): NOTEBOOK,
        brightspace("Zed, Zoe", "Nov 25, 2026 905 AM", "x.ipynb"): NOTEBOOK,
        brightspace("Hopper, Grace", "Nov 25, 2026 905 AM", "x.ipynb"): NOTEBOOK})
    matched = intake([archive], class_roster)
    assert sorted(matched.latest) == ["s2", "s3"] and len(matched.refused) == 1
    assert matched.refused[0].why.startswith("not named as Brightspace names its downloads")


@pytest.mark.core
def test_brightspace_folders_are_read_and_their_insides_are_the_students(tmp_path,
                                                                         class_roster) -> None:
    """Newer Brightspace downloads put each submission in a folder named like its files."""
    late = "Nov 25, 2026 905 AM"
    archive = make_zip(tmp_path / "d2l.zip", {
        f"Backprop/88-1 - Adam Smith - {late}/a_1_2_x.ipynb": NOTEBOOK,
        f"Backprop/88-2 - Zoe Zed - {late}/Adam Smith_1001_assignsubmission_file/x.ipynb":
            NOTEBOOK,
        "Backprop/index.html": b""})
    matched = intake([archive], class_roster)
    assert {s: (m.lms, m.submitted) for s, m in matched.latest.items()} == {
        "s1": ("brightspace", "2026-11-25T09:05:00")}
    assert "points at s1 too, but Brightspace filed it under s2" in matched.refused[0].why


# --------------------------------------------------------------------------- Canvas


@pytest.mark.core
def test_canvas_fields_are_the_prefix_and_the_rest_is_the_students(tmp_path,
                                                                   class_roster) -> None:
    """What a Canvas student names is everything after ``login_[LATE_]user_attachment_``:
    ``_LATE_`` there is not Canvas's mark, ``-99`` does not make an older attachment the
    latest, and another student's Canvas prefix in it is refused."""
    archive = make_zip(tmp_path / "c.zip", {
        "smithadam_501_7001_backprop-99.ipynb": NOTEBOOK,
        "smithadam_LATE_501_7002_backprop.ipynb": NOTEBOOK,
        "zedzoe_502_7003_LATE_backprop.ipynb": NOTEBOOK,
        "zedzoe_502_7004_smithadam_501_9999_backprop.ipynb": NOTEBOOK,
    })
    matched = intake([archive], class_roster)
    assert originals(matched) == {"s1": "smithadam_LATE_501_7002_backprop.ipynb",
                                  "s2": "zedzoe_502_7003_LATE_backprop.ipynb"}
    assert matched.latest["s1"].late and not matched.latest["s2"].late
    assert list(why(matched)) == ["zedzoe_502_7004_smithadam_501_9999_backprop.ipynb"]


@pytest.mark.core
def test_a_canvas_login_of_a_classmate_is_refused(tmp_path, class_roster) -> None:
    matched = intake([make_zip(tmp_path / "c.zip", {
        "smithadam_502_7001_backprop.ipynb": NOTEBOOK})], class_roster)
    assert not matched.latest and "points at s1 too, but Canvas filed it under s2" in (
        matched.refused[0].why)


@pytest.mark.core
@pytest.mark.parametrize("digits", ["\uff15\uff10\uff11", "\u0665\u0660\u0661"])
def test_digits_of_another_script_are_no_lms_id(tmp_path, class_roster, digits) -> None:
    """``\\d`` takes fullwidth and Arabic-Indic digits; no LMS writes them, so a name with
    them is no LMS's: in a folder of plain files it is one more plain file, matching nobody."""
    folder = tmp_path / "late"
    folder.mkdir()
    (folder / f"smithadam_{digits}_7001_x.ipynb").write_bytes(NOTEBOOK)
    (folder / f"Adam Smith_{digits}_assignsubmission_file_x.ipynb").write_bytes(NOTEBOOK)
    matched = intake([folder], class_roster)
    assert not matched.latest and {s.lms for s in matched.unmatched} == {"file"}


@pytest.mark.core
def test_a_line_break_in_the_students_part_changes_nothing(tmp_path, class_roster) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "smithadam_501_7001_my\nbackprop.ipynb").write_bytes(NOTEBOOK)
    (folder / "zedzoe_502_7002_backprop.ipynb").write_bytes(NOTEBOOK)
    assert sorted(intake([folder], class_roster).latest) == ["s1", "s2"]


# --------------------------------------------------------------------------- one naming


@pytest.mark.core
def test_one_crafted_name_never_decides_for_a_folder_of_plain_files(tmp_path,
                                                                     class_roster) -> None:
    """A folder of plain files (``s1.ipynb``) with one name in Canvas's shape stays a folder
    of plain files: the crafted one matches nobody, the others their students."""
    folder = tmp_path / "handed-in"
    folder.mkdir()
    for name in ("s2", "s3", "smithadam_501_7001_backprop"):
        (folder / f"{name}.ipynb").write_bytes(NOTEBOOK)
    matched = intake([folder], class_roster)
    assert sorted(matched.latest) == ["s2", "s3"]
    assert [s.original for s in matched.unmatched] == [
        "handed-in/smithadam_501_7001_backprop.ipynb"]


@pytest.mark.core
def test_a_file_renamed_inside_an_lms_download_is_refused_and_listed(tmp_path,
                                                                      class_roster) -> None:
    """In a Canvas download every name is Canvas's; one that is not (``s1.ipynb``, which as
    a plain file would be Adam's) was renamed after the download, and is not graded."""
    archive = make_zip(tmp_path / "c.zip", {"zedzoe_502_7001_x.ipynb": NOTEBOOK,
                                            "grace_503_7002_x.ipynb": NOTEBOOK,
                                            "s1.ipynb": NOTEBOOK})
    matched = intake([archive], class_roster)
    assert sorted(matched.latest) == ["s2", "s3"]
    assert why(matched) == {"s1.ipynb": "not named as Canvas names its downloads, unlike the "
                                        "rest of c.zip; not graded (renamed? --lms chooses "
                                        "the naming)"}
    # --lms says which naming; --lms none reads every file as plain
    assert sorted(intake([archive], class_roster, lms="none").latest) == ["s1"]


@pytest.mark.core
def test_a_plain_file_never_joins_an_lms_students_attempts(tmp_path) -> None:
    """Without a roster, a plain file named like an LMS student's result (``Adam
    Smith_1001``) is refused rather than made that student's latest attempt."""
    archive = make_zip(tmp_path / "m.zip", {
        "Adam Smith_1001_assignsubmission_file_backprop.ipynb": NOTEBOOK})
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "Adam Smith_1001.ipynb").write_bytes(NOTEBOOK)
    matched = intake([archive, folder], None)
    [adam] = matched.latest.values()
    assert adam.lms == "moodle" and not matched.earlier
    assert [r.original for r in matched.refused] == ["drop/Adam Smith_1001.ipynb"]


@pytest.mark.core
def test_attempts_from_two_lms_of_one_student_sort_without_failing(tmp_path,
                                                                   class_roster) -> None:
    """A Brightspace time and a Canvas id are never compared with each other."""
    canvas = make_zip(tmp_path / "c.zip", {"smithadam_501_7001_x.ipynb": NOTEBOOK})
    d2l = make_zip(tmp_path / "d.zip", {
        brightspace("Smith, Adam", "Nov 25, 2026 905 AM", "x.ipynb"): NOTEBOOK})
    matched = intake([canvas, d2l], class_roster)
    assert list(matched.latest) == ["s1"] and len(matched.earlier["s1"]) == 1


# --------------------------------------------------------------------------- 10: names


OUR_NAMES = ["index", "grades", "canvas", "moodle", "class", "gradescope", "intake",
             "superseded", "grader-error"]


@pytest.mark.core
@pytest.mark.parametrize("name", [*OUR_NAMES, "INDEX", "Index", "Grades", "con", "LPT1"])
def test_no_student_takes_a_name_the_grader_writes(name: str) -> None:
    """Attack 10: ``index.ipynb`` became the student ``index``, whose page the overview then
    overwrote. A file or roster id named like anything the grader writes (without case, as
    macOS and Windows compare) gets the short hash others get."""
    for made in (grade.student_name(Path(f"{name}.ipynb")), roster.result_name(name)):
        assert re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{6}}", made)
        assert not paths.reserved(made)
    assert grade.student_name(Path(f"{name}.ipynb")) == roster.result_name(name)


@pytest.mark.core
@pytest.mark.parametrize("name", ["\uff49\uff4e\uff44\uff45\uff58", "\u0456ndex", "index\u200b",
                                  "index ", ".index", "index.", "INDEX.IPYNB", "in\u0434ex"])
def test_a_look_alike_of_a_name_the_grader_writes_is_none(name: str) -> None:
    """Fullwidth letters fold to ``index``, Cyrillic ones vanish, dots and spaces are cut: each
    is a name changed on the way, so it carries the hash."""
    made = grade.student_name(Path(name if name.endswith("IPYNB") else f"{name}.ipynb"))
    assert not paths.reserved(made) and re.search(r"-[0-9a-f]{6}$", made)


@pytest.mark.core
def test_the_reserved_names_are_what_the_grader_writes() -> None:
    """The list follows the writers: their constants are on it."""
    ours = {classview.FOLDER, batch.SUPERSEDED, classroom.STATE.parts[0]}
    assert ours <= paths.RESERVED and set(OUR_NAMES) <= paths.RESERVED


# --------------------------------------------------------------------------- 11: roster


SEPARATORS = ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]


@pytest.mark.core
@pytest.mark.parametrize("separator", SEPARATORS, ids=lambda c: f"U+{ord(c):04X}")
def test_a_line_separator_in_a_roster_cell_is_no_new_row(tmp_path, separator) -> None:
    """Attack 11: the roster was split with ``str.splitlines``, so ``Eve\\u2028s003`` made
    a student ``s003`` and dropped Eve's email and Moodle id, and a name ending in U+2028
    stopped the run. The csv module splits records; the separator becomes a space."""
    path = tmp_path / "roster.csv"
    path.write_text(f"id,name,email,moodle id\ns1,Eve{separator}s003,eve@uni.edu,1001\n"
                    f"s2,Ann{separator},ann@uni.edu,1002\n", encoding="utf-8")
    loaded = roster.load(path)
    assert loaded.students == (
        roster.Student(id="s1", name="Eve s003", email="eve@uni.edu", moodle_id="1001"),
        roster.Student(id="s2", name="Ann", email="ann@uni.edu", moodle_id="1002"))


@pytest.mark.core
def test_a_student_called_points_possible_stays_on_the_roster(tmp_path) -> None:
    """Only Canvas's own "Points Possible" row (no id) is skipped, not a student's name."""
    path = tmp_path / "export.csv"
    path.write_text("Student,ID,SIS User ID\n    Points Possible,,\n"
                    "Points Possible,1001,s1\n", encoding="utf-8")
    assert [(s.id, s.name) for s in roster.load(path).students] == [("1001", "Points Possible")]


@pytest.mark.core
def test_a_quoted_line_break_stays_in_its_cell(tmp_path) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes(b'id;name;email\r\ns1;"Eve\r\ns003";eve@uni.edu\r\ns2;Ann\x00;a@u.edu\r\n')
    assert [(s.id, s.name, s.email) for s in roster.load(path).students] == [
        ("s1", "Eve  s003", "eve@uni.edu"), ("s2", "Ann", "a@u.edu")]


@pytest.mark.core
def test_a_roster_the_csv_module_cannot_read_says_where(tmp_path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text("id,name\ns1,Ada\ns2," + "x" * 20 + "\n")
    limit = csv.field_size_limit(10)
    try:
        with pytest.raises(GraderError, match=r"roster.csv: line 3 is not CSV the grader can "
                                              r"read \(field larger than field limit"):
            roster.load(path)
    finally:
        csv.field_size_limit(limit)


# --------------------------------------------------------------------------- graded for real


def grade_class(paths: list[Path], out: Path, config, **class_files) -> batch.BatchSummary:
    loaded = rubric.load("convolution")
    with classroom.intake(paths, out_dir=out, **class_files) as taken:
        return batch.grade_all(taken.paths, loaded, out, sandbox=config, jobs=1,
                               progress=False, check_reference=False, intake=taken)


def rows(path: Path) -> dict[str, dict[str, str]]:
    found = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
    return {row.get("id") or row["Identifier"]: row for row in found}


def assert_only_ours_and_students(out: Path, students: set[str]) -> None:
    """Everything in the output folder is a student's result or something the grader
    writes, whose name no student can have."""
    for path in out.iterdir():
        if path.name.startswith("."):  # the lock; no student's name starts with a dot
            continue
        stem = path.name.split(".")[0]
        assert stem in students or paths.reserved(stem), path.name
        assert not (stem in students and paths.reserved(stem)), path.name


def test_a_forged_moodle_name_costs_the_classmate_nothing(tmp_path, sandbox_config) -> None:
    """Attack 8, graded: Adam's own full marks reach moodle.csv; Zoe's forged file (a wrong
    notebook, which main graded as Adam's 0) is refused and listed on the overview."""
    right = build_notebook(tmp_path, "convolution", name="right")
    wrong = build_notebook(tmp_path, "convolution", name="wrong",
                           replace={"conv1d": WRONG_CONV1D})
    archive = tmp_path / "moodle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(right, "Adam Smith_1001_assignsubmission_file_backprop.ipynb")
        zf.write(right, "Zoe Zed_1002_assignsubmission_file_backprop.ipynb")
        zf.write(wrong, "Zoe Zed_1002_assignsubmission_file_x_1001_assignsubmission_file_.ipynb")
    (tmp_path / "roster.csv").write_text(ROSTER)
    out = tmp_path / "out"
    summary = grade_class([archive], out, sandbox_config, roster_path=tmp_path / "roster.csv")
    book = rows(out / "grades.csv")
    assert book["s1"]["score"] == book["s1"]["max_score"] == book["s2"]["score"]
    assert book["s1"]["submission"].endswith("Adam Smith_1001_assignsubmission_file_"
                                             "backprop.ipynb")
    assert rows(out / "moodle.csv")["Participant 1001"]["Grade"] == book["s1"]["score"]
    index = (out / "index.html").read_text()
    assert "x_1001_assignsubmission_file_.ipynb: its name points at s1 too" in index
    assert "1 file(s) refused" in summary.line(out)
    assert_only_ours_and_students(out, {"s1", "s2"})


def test_a_brightspace_file_name_escapes_no_late_penalty(tmp_path, sandbox_config) -> None:
    """Attack 9, graded: two students hand in the same notebook at the same time, five days
    late; the one whose file name holds ``_1_2_`` is as late as the other."""
    right = build_notebook(tmp_path, "convolution", name="right")
    archive = tmp_path / "d2l.zip"
    late = "Nov 25, 2026 905 AM"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(right, brightspace("Smith, Adam", late, "x_1_2_y.ipynb"))
        zf.write(right, brightspace("Zed, Zoe", late, "backprop.ipynb"))
        zf.writestr("index.html", "<html></html>")
    (tmp_path / "roster.csv").write_text(ROSTER)
    (tmp_path / "course.toml").write_text(
        "[late]\nper_day = 0.1\n[assignments.convolution]\ndeadline = 2026-11-20T23:59:00\n")
    out = tmp_path / "out"
    grade_class([archive], out, sandbox_config, roster_path=tmp_path / "roster.csv",
                course_path=tmp_path / "course.toml")
    book = rows(out / "grades.csv")
    assert book["s1"]["late_days"] == book["s2"]["late_days"] == "5"
    assert book["s1"]["score"] == book["s2"]["score"] != book["s1"]["max_score"]


def test_a_notebook_named_index_is_a_student_not_the_overview(tmp_path, sandbox_config) -> None:
    """Attack 10, graded: ``index.ipynb`` gets a page of its own; ``index.html`` stays the
    overview, linking to it, and no ``index.json`` holds a result."""
    folder = tmp_path / "handed-in"
    folder.mkdir()
    build_notebook(folder, "convolution", name="index")
    build_notebook(folder, "convolution", name="ada", replace={"conv1d": WRONG_CONV1D})
    out = tmp_path / "out"
    summary = grade_class([folder], out, sandbox_config)
    name = grade.student_name(Path("index.ipynb"))
    assert sorted(r.student for r in summary.results) == ["ada", name]
    assert not (out / "index.json").exists() and (out / f"{name}.json").exists()
    overview = (out / "index.html").read_text()
    assert f'href="./{name}.html"' in overview and 'href="./ada.html"' in overview
    assert_only_ours_and_students(out, {"ada", name})
