"""The course walk-through, run as written: from the LMS's download to the upload.

The walk-through is ``docs/instructors.md``'s section "A course: from the LMS to the
gradebook", which the README points to. Its commands are the section's shell blocks
(``tests.readme``), run by bash in a fresh folder where ``.venv`` is this interpreter's
environment. What they need is built here as the guide tells an instructor to get it: a Canvas
*Download Submissions* zip of ``submissions/backprop`` (and a late one), a Canvas gradebook
export as the roster, and the guide's own course file, its adjustments added at the review
step. A change to the commands, or to the files they write, that the text does not follow
fails here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests import readme
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

WALK = readme.section("A course: from the LMS to the gradebook")
COURSE = readme.blocks(readme.after("**The course file**", WALK), "toml")[0]
EXAMPLES = ROOT / "submissions" / "backprop"
# A Canvas gradebook export: results are named by its ID; the course file names students by
# their SIS User ID (s042, s077, s013). Ann has no submission.
ROSTER = ("Student,ID,SIS User ID,SIS Login ID,Section,Backprop (48213)\n"
          "    Points Possible,,,,,16\n"
          '"Reference, Alice",1001,s077,alice,A,\n'
          '"Two Bugs, Bob",1002,s042,bob,A,\n'
          '"Untouched, Carol",1003,s101,carol,B,\n'
          '"Unstable, Dave",1004,s013,dave,B,\n'
          '"Broken, Nat",1005,s102,nat,B,\n'
          '"Absent, Ann",1006,s103,ann,A,\n')
# Canvas's names: login_[LATE_]userid_submissionid_file. Dave's was marked late (the course
# file gives its time); Alice hands in later, within her extension.
DOWNLOAD = {"twobugsbob_1002_70002_backprop.ipynb": "bob two bugs.ipynb",
            "untouchedcarol_1003_70003_backprop.ipynb": "carol_untouched.ipynb",
            "unstabledave_LATE_1004_70004_backprop.ipynb": "dave_unstable_softmax.ipynb",
            "brokennat_1005_70005_backprop.ipynb": "not_a_notebook.ipynb"}
LATE = {"referencealice_1001_70006_backprop.ipynb": "alice_reference.ipynb"}


def canvas_zip(path: Path, files: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, example in files.items():
            zf.write(EXAMPLES / example, name)


def prepare(folder: Path) -> None:
    """Step 1 (download) in ``folder``, and the guide's ``.venv`` there: this one."""
    canvas_zip(folder / "submissions.zip", DOWNLOAD)
    canvas_zip(folder / "late.zip", LATE)
    (folder / "roster.csv").write_text(ROSTER, encoding="utf-8")
    known, _ = COURSE.split("[[adjustments]]", 1)  # adjustments come at the review
    (folder / "course.toml").write_text(known, encoding="utf-8")
    if sys.prefix != sys.base_prefix:
        (folder / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    else:
        (folder / ".venv" / "bin").mkdir(parents=True)
        (folder / ".venv" / "bin" / "python").symlink_to(sys.executable)


def run(block: str, folder: Path) -> str:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=folder, text=True,
                          capture_output=True, env=dict(os.environ), timeout=1500)
    assert done.returncode == 0, f"{block}\nexit {done.returncode}: {done.stderr[-3000:]}"
    return done.stdout


def book(out: Path, name: str = "grades.csv") -> dict[str, dict[str, str]]:
    rows = csv.DictReader(io.StringIO((out / name).read_text(encoding="utf-8")))
    return {row.get("id") or row.get("ID"): row for row in rows}


def raw(out: Path, student: str) -> float:
    return json.loads((out / f"{student}.json").read_text())["score"]


def test_the_steps_are_grade_a_late_file_and_gradebook() -> None:
    """The walk-through this file follows: a change to its commands needs a change here."""
    steps = readme.blocks(WALK)
    assert [re.search(r"-m grader (\w+)", s)[1] for s in steps] == ["grade", "grade",
                                                                     "gradebook"]
    assert "late.zip" in steps[1] and "--assignment" not in steps[1] + steps[2]
    assert {re.search(r"--out (\S+)", s)[1] for s in steps} == {"feedback/backprop"}


def test_the_course_walk_through_runs_as_written(tmp_path: Path) -> None:
    grade, late, gradebook = readme.blocks(WALK)
    prepare(tmp_path)
    out = tmp_path / re.search(r"--out (\S+)", grade)[1]

    # 2. Grade: results named by the roster's id (Canvas's), the course file's SIS ids found
    printed = run(grade, tmp_path)
    first = book(out)
    assert list(first) == ["1001", "1002", "1003", "1004", "1005", "1006"]
    assert {s: r["status"] for s, r in first.items()} == {
        "1001": "missing", "1002": "graded", "1003": "graded", "1004": "late",
        "1005": "ungradable", "1006": "missing"}
    assert (first["1004"]["late_days"], first["1004"]["late_penalty_percent"]) == ("1", "10")
    assert float(first["1004"]["score"]) == pytest.approx(raw(out, "1004") * 0.9, abs=1e-4)
    assert float(first["1002"]["score"]) == pytest.approx(raw(out, "1002"), abs=1e-4)
    assert "6 students: 3 graded (1 late), 1 ungradable, 2 missing" in printed

    # a late file: the folder knows the assignment, the roster and the course file
    run(late, tmp_path)
    assert book(out)["1001"]["status"] == "graded" and raw(out, "1001") == 16

    # 3. Review: the guide's adjustments added to the course file, then gradebook
    (tmp_path / "course.toml").write_text(COURSE, encoding="utf-8")
    printed = run(gradebook, tmp_path)
    final = book(out)
    bob = final["1002"]
    assert bob["adjustment"] == "1.5" and bob["status"] == "graded"
    assert float(bob["score"]) == pytest.approx(raw(out, "1002") + 1.5, abs=1e-4)
    page = (out / "1002.html").read_text(encoding="utf-8")
    assert "the check tripped on your float32 cast" in page and "Dr. Lee" in page
    index = (out / "index.html").read_text(encoding="utf-8")
    counts = printed.splitlines()[0].rstrip(".")
    assert counts.startswith("6 students: 4 graded (1 late), 1 ungradable, 1 missing")
    assert counts in index and 'href="class/' in index

    # 4. Upload: every file the step names is there, written by gradebook
    upload = readme.after("**Upload.**", WALK).split("\n\n")[0]
    files = re.findall(r"`([\w.-]+\.csv)`", upload)
    assert files == ["canvas.csv", "moodle.csv"]
    assert all((out / f).is_file() and f in printed for f in files), printed
    column = tomllib.loads(COURSE)["assignments"]["backprop"]["canvas_column"]
    canvas = book(out, "canvas.csv")
    assert canvas["1002"][column] == bob["score"] and canvas["1006"][column] == ""
    assert canvas["1002"]["SIS User ID"] == "s042"
    assert book(out, "moodle.csv") == {}  # a Canvas roster: nobody with a Moodle id
