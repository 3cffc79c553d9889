"""Hostile names at the intake: a file name, a folder or a roster cell a student wrote never
decides whose grade a file is, never escapes a penalty, never takes the grader's own files and
never stops the batch (issue #21).

Each attack is rebuilt from its description: first as names only (quick, on every machine),
then, for the ones the security review reproduced, graded for real (convolution: about a
second per notebook) through ``classroom.intake`` and ``batch.grade_all`` as ``grade`` runs it.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest

from grader import ingest, roster
from grader.errors import GraderError

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
