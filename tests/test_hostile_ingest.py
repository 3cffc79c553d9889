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

from grader import batch, classroom, classview, grade, ingest, roster, rubric
from grader.errors import GraderError
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
        assert not roster.reserved(made)
    assert grade.student_name(Path(f"{name}.ipynb")) == roster.result_name(name)


@pytest.mark.core
@pytest.mark.parametrize("name", ["\uff49\uff4e\uff44\uff45\uff58", "\u0456ndex", "index\u200b",
                                  "index ", ".index", "index.", "INDEX.IPYNB", "in\u0434ex"])
def test_a_look_alike_of_a_name_the_grader_writes_is_none(name: str) -> None:
    """Fullwidth letters fold to ``index``, Cyrillic ones vanish, dots and spaces are cut: each
    is a name changed on the way, so it carries the hash."""
    made = grade.student_name(Path(name if name.endswith("IPYNB") else f"{name}.ipynb"))
    assert not roster.reserved(made) and re.search(r"-[0-9a-f]{6}$", made)


@pytest.mark.core
def test_the_reserved_names_are_what_the_grader_writes() -> None:
    """The list follows the writers: their constants are on it."""
    ours = {classview.FOLDER, batch.SUPERSEDED, classroom.STATE.parts[0]}
    assert ours <= roster.RESERVED and set(OUR_NAMES) <= roster.RESERVED


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
        assert stem in students or roster.reserved(stem), path.name
        assert not (stem in students and roster.reserved(stem)), path.name


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
