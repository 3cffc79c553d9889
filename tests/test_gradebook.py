"""Gradebooks out, results that accumulate and one count everywhere, on real gradings.

The notebooks are graded for real (convolution: about a second each) through
``batch.grade_all``, from a Moodle zip built here, with a roster and a course file."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.checks import rubric
from grader.core.results import save
from grader.course import batch, classroom, gradebook, roster
from grader.course.final import FinalGrade
from grader.course.roster import Student
from tests.conftest import ROOT, build_notebook
from tests.test_report import Page, fixture

# The headers each LMS documents for its import (see grader/course/gradebook.py).
CANVAS_DOCUMENTED = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
# Moodle's worksheet without its feedback plugins' columns: an uploaded "Feedback comments"
# column replaces the instructors' own comments (assignfeedback_offline reads a feedback
# column only where the file has one).
MOODLE_DOCUMENTED = ["Identifier", "Full name", "Email address", "Status", "Grade",
                     "Maximum Grade", "Grade can be changed", "Last modified (submission)",
                     "Last modified (grade)"]
MOODLE_READS = {"Identifier", "Grade", "Last modified (grade)"}  # what its importer needs
ROSTER = ("id,name,email,section,moodle id,canvas id\n"
          "s1,Ada Lovelace,ada@uni.edu,A,501,1001\n"
          "s2,Alan Turing,alan@uni.edu,B,502,1002\n"
          "s3,Grace Hopper,grace@uni.edu,A,503,1003\n")
COURSE = """
[late]
per_day = 0.25
[assignments.convolution]
deadline = 2026-11-20T23:59:00
canvas_column = "Convolution (4242)"
[assignments.convolution.submitted]
s2 = 2026-11-21T08:00:00
[[adjustments]]
student = "s1"
points = 0.5
comment = "Bonus for the <b>tidy</b> notebook"
by = "Dr. Lee"
"""
WRONG_CONV1D = "def conv1d(x, w, stride=1):\n    return x[: len(x) - len(w) + 1] * 0\n"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def moodle_zip(path: Path, notebooks: dict[str, Path]) -> Path:
    """``{"Full Name_participant": notebook}`` as Moodle's "download all" lays it out."""
    with zipfile.ZipFile(path, "w") as zf:
        for who, notebook in notebooks.items():
            zf.write(notebook, f"{who}_assignsubmission_file_/convolution.ipynb")
    return path


def grade(paths: list[Path], out: Path, config, **class_files) -> batch.BatchSummary:
    loaded = rubric.load("convolution")
    with classroom.intake(paths, out_dir=out, **class_files) as intake:
        return batch.grade_all(intake.paths, loaded, out, sandbox=config, jobs=1,
                               progress=False, check_reference=False, intake=intake)


def marked(html: str, key: str) -> str:
    """The text of the one element marked ``data-testid=key``, without its markup."""
    [found] = re.findall(rf'data-testid="{key}"[^>]*>(.*?)</(?:span|dd|td|div|strong)>', html,
                         re.S)
    return " ".join(Page(found).text.split())


def overview_counts(html: str) -> dict[str, str]:
    return {key: re.search(rf'data-testid="{key}">([^<(]*)', html)[1].strip()
            for key in ("graded", "ungradable", "missing", "mean")}


@pytest.fixture
def course_files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "roster.csv").write_text(ROSTER)
    (tmp_path / "course.toml").write_text(COURSE)
    return {"roster_path": tmp_path / "roster.csv", "course_path": tmp_path / "course.toml"}


def test_lms_headers_are_the_documented_ones() -> None:
    ada = FinalGrade(Student("s1", "Ada", "a@u.edu", "A", "S1", "ada", "1001", "501"),
                     "convolution", "graded", 3.0, 5.0)
    nobody = FinalGrade(Student("s2", "=cmd()", moodle_id="502"), "convolution", "missing",
                        None, 5.0)
    canvas = rows_of(gradebook.canvas_csv([ada, nobody], "Convolution (4242)"))
    assert canvas[0] == [*CANVAS_DOCUMENTED, "Convolution (4242)"]
    assert canvas[1] == ["Ada", "1001", "S1", "ada", "A", "3"]
    assert canvas[2][0] == "'=cmd()" and canvas[2][-1] == ""  # no grade, never a 0
    moodle = rows_of(gradebook.moodle_csv([ada, nobody]))
    assert moodle[0] == MOODLE_DOCUMENTED
    assert moodle[1][:6] == ["Participant 501", "Ada", "a@u.edu", "Submitted for grading", "3",
                             "5"]
    assert moodle[2][3:5] == ["No submission", ""]
    grades = rows_of(gradebook.grades_csv([ada, nobody], ["t1"]))
    assert grades[0][:7] == ["id", "name", "email", "section", "score", "max_score", "status"]
    assert grades[2][4:7] == ["", "5", "missing"]


def test_moodle_upload_leaves_the_instructors_feedback_comments_alone() -> None:
    """An upload of a "Feedback comments" column overwrites what instructors wrote in Moodle;
    status words ("graded", "missing") there were no feedback at all."""
    late = FinalGrade(Student("s1", "Ada", moodle_id="501"), "convolution", "late", 3.0, 5.0,
                      late_days=1, penalty=0.25)
    nobody = FinalGrade(Student("s2", "Bo", moodle_id="502"), "convolution", "missing", None,
                        5.0)
    header, *body = rows_of(gradebook.moodle_csv([late, nobody]))
    assert MOODLE_READS <= set(header)
    assert not any("feedback" in column.lower() or "comment" in column.lower()
                   for column in header)
    assert all(len(row) == len(header) for row in body)
    assert [row[header.index("Grade")] for row in body] == ["3", ""]


def test_a_class_from_moodle_to_the_gradebooks(tmp_path, course_files, sandbox_config) -> None:
    ada = build_notebook(tmp_path, "convolution", name="ada")
    alan = build_notebook(tmp_path, "convolution", name="alan", replace={"conv1d": WRONG_CONV1D})
    archive = moodle_zip(tmp_path / "moodle.zip", {"Ada Lovelace_501": ada,
                                                    "Alan Turing_502": alan,
                                                    "Nobody Known_999": ada})
    out = tmp_path / "out"
    summary = grade([archive], out, sandbox_config, **course_files)

    book = {r["id"]: r for r in rows(out / "grades.csv")}
    assert list(book) == ["s1", "s2", "s3"]  # the roster's students, nobody else
    top = float(book["s1"]["max_score"])
    assert book["s1"]["status"] == "graded" and float(book["s1"]["score"]) == top + 0.5
    assert book["s2"]["status"] == "late" and book["s2"]["late_days"] == "1"
    assert book["s3"]["status"] == "missing" and book["s3"]["score"] == ""
    raw = json.loads((out / "s2.json").read_text())["score"]
    assert float(book["s2"]["score"]) == pytest.approx(raw * 0.75, abs=1e-4)
    moodle = {r["Identifier"]: r for r in rows(out / "moodle.csv")}
    assert moodle["Participant 501"]["Grade"] == book["s1"]["score"]
    assert moodle["Participant 503"]["Status"] == "No submission"
    assert [r["Convolution (4242)"] for r in rows(out / "canvas.csv")] == [
        book["s1"]["score"], book["s2"]["score"], ""]

    page = (out / "s1.html").read_text()
    comment = "Bonus for the &lt;b&gt;tidy&lt;/b&gt; notebook"
    assert comment in page and "Dr. Lee" in page
    index = (out / "index.html").read_text()
    assert comment in index and "Nobody Known_999_assignsubmission_file_" in index
    assert "1 file(s) matched nobody" in summary.line(out)
    assert not (out / "999.json").exists() and len(list(out.glob("*.json"))) == 2


def test_a_roster_given_later_leaves_each_student_once(tmp_path, course_files,
                                                       sandbox_config) -> None:
    """Graded first without the roster (results named from the Moodle folders), then with it:
    each student is one row under their roster id, and the results from before are moved to
    superseded/, not deleted, and not shown as students off the roster."""
    ada = build_notebook(tmp_path, "convolution", name="ada")
    archive = moodle_zip(tmp_path / "moodle.zip", {"Ada Lovelace_501": ada})
    out = tmp_path / "out"
    grade([archive], out, sandbox_config)
    [before] = [p.stem for p in out.glob("*.json")]
    assert before != "s1"
    summary = grade([archive], out, sandbox_config, **course_files)
    assert [r["id"] for r in rows(out / "grades.csv")] == ["s1", "s2", "s3"]
    assert sorted(p.name for p in out.glob("*.json")) == ["s1.json"]
    kept = out / "superseded"
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*.*")) == sorted(
        [f"{before}.json", f"{before}.html", f"gradescope/{before}.json"])
    assert "1 result(s) named by file from before the roster moved to" in summary.line(out)
    assert before not in (out / "index.html").read_text()


@pytest.mark.slow
def test_results_accumulate_and_one_count_everywhere(tmp_path, course_files,
                                                     sandbox_config) -> None:
    ada = build_notebook(tmp_path, "convolution", name="ada")
    out = tmp_path / "out"
    grade([moodle_zip(tmp_path / "first.zip", {"Ada Lovelace_501": ada})], out, sandbox_config,
          **course_files)
    first = {r["id"]: r["status"] for r in rows(out / "grades.csv")}
    assert first == {"s1": "graded", "s2": "missing", "s3": "missing"}

    # later: Alan's late file and Grace's broken one, graded into the same folder, with the
    # roster and course file remembered by the folder
    alan = build_notebook(tmp_path, "convolution", name="alan", replace={"conv1d": WRONG_CONV1D})
    broken = tmp_path / "grace.ipynb"
    broken.write_text("{ not json")
    second = moodle_zip(tmp_path / "second.zip", {"Alan Turing_502": alan,
                                                  "Grace Hopper_503": broken})
    summary = grade([second], out, sandbox_config)

    book = rows(out / "grades.csv")
    assert {r["id"]: r["status"] for r in book} == {"s1": "graded", "s2": "late",
                                                    "s3": "ungradable"}
    scored = [float(r["score"]) for r in book if r["score"]]
    mean = sum(scored) / len(scored)
    line = summary.line(out)
    assert f"3 students: 2 graded (1 late), 1 ungradable, 0 missing; mean of the 2 graded " \
           f"{mean:.2f}/" in line
    shown = overview_counts((out / "index.html").read_text())
    assert shown == {"graded": "2", "ungradable": "1", "missing": "0",
                     "mean": f"{mean:.2f} / {float(book[0]['max_score']):g}"}
    assert "1 submissions in this run (1 graded, 0 unchanged)" not in line  # two were graded
    assert "2 submissions in this run (2 graded, 0 unchanged)" in line


def test_an_edited_course_file_counts_without_regrading(tmp_path, course_files,
                                                       sandbox_config) -> None:
    alan = build_notebook(tmp_path, "convolution", name="alan", replace={"conv1d": WRONG_CONV1D})
    out = tmp_path / "out"
    grade([moodle_zip(tmp_path / "m.zip", {"Alan Turing_502": alan})], out, sandbox_config,
          **course_files)
    stored = (out / "s2.json").read_text()
    assert "Regraded by hand" not in (out / "s2.html").read_text()
    with open(course_files["course_path"], "a") as handle:
        handle.write('[[adjustments]]\nstudent = "s2"\ntest = "conv1d: lecture example, '
                     'kernel [2]"\npoints = 0.5\ncomment = "Regraded by hand"\nby = "TA Kim"\n')
    view = classroom.rebuild(out, assignment="convolution", max_score=23.5)
    assert "Regraded by hand" in (out / "s2.html").read_text()
    assert "Regraded by hand" in (out / "index.html").read_text()
    assert (out / "s2.json").read_text() == stored  # the result itself is never touched
    assert [f.adjustments[0].by for f in view.finals if f.student.id == "s2"] == ["TA Kim"]


@pytest.mark.slow
def test_cli_summary_overview_and_gradebook_command_agree(tmp_path, course_files) -> None:
    """A Canvas zip through the command line: the summary's count line is the overview's,
    and ``gradebook`` (a rebuild, no grading) prints it again."""
    ada = build_notebook(tmp_path, "convolution", name="ada")
    alan = build_notebook(tmp_path, "convolution", name="alan", replace={"conv1d": WRONG_CONV1D})
    archive = tmp_path / "canvas.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(alan, "turingalan_1002_70001_convolution.ipynb")
        zf.write(ada, "turingalan_LATE_1002_70002_convolution-1.ipynb")  # his resubmission
        zf.write(ada, "lovelaceada_1001_70003_convolution.ipynb")
    out = tmp_path / "out"
    done = cli("grade", "--assignment", "convolution", "--out", str(out), str(archive),
               "--roster", str(course_files["roster_path"]), "--course",
               str(course_files["course_path"]), "--quiet", "--jobs", "1")
    assert done.returncode == 0, done.stderr
    [counts] = [line for line in done.stdout.splitlines() if line.startswith("3 students")]
    assert counts.startswith("3 students: 2 graded (1 late), 0 ungradable, 1 missing")
    index = (out / "index.html").read_text()
    assert counts.rstrip(".") in index
    assert "turingalan_1002_70001_convolution.ipynb" in index  # the earlier one, listed
    again = cli("gradebook", "--out", str(out))  # the folder knows its assignment
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == counts
    assert 'href="class/function-conv1d.html"' in (out / "index.html").read_text()

    # Grace's late file, into the folder alone: its assignment, roster and course file are known
    late = tmp_path / "late.zip"
    with zipfile.ZipFile(late, "w") as zf:
        zf.write(ada, "hoppergrace_LATE_1003_70004_convolution.ipynb")
    done = cli("grade", "--out", str(out), str(late), "--quiet", "--jobs", "1")
    assert done.returncode == 0, done.stderr
    book = {r["id"]: r["status"] for r in rows(out / "grades.csv")}
    assert book == {"s1": "graded", "s2": "late", "s3": "late"}


def test_a_roster_id_unsafe_as_a_file_name_stays_in_the_folder(tmp_path, sandbox_config) -> None:
    (tmp_path / "roster.csv").write_text("id,name,moodle id\n../../evil dir/x,Eve,777\n")
    eve = build_notebook(tmp_path, "convolution", name="eve")
    out = tmp_path / "deep" / "out"
    grade([moodle_zip(tmp_path / "m.zip", {"Eve_777": eve})], out, sandbox_config,
          roster_path=tmp_path / "roster.csv")
    [result] = out.glob("*.json")
    assert result.stem == roster.result_name("../../evil dir/x") and ".." not in result.stem
    assert all(out in p.parents for p in tmp_path.rglob("evil*"))
    assert not (tmp_path / "evil dir").exists() and not (tmp_path / "deep" / "evil dir").exists()
    [row] = rows(out / "grades.csv")
    assert row["id"] == "../../evil dir/x" and row["status"] == "graded"


def graded_folder(out: Path, assignment: str = "convolution") -> Path:
    """A class's folder as ``grade`` leaves it, without running anything: a result and the
    folder's record."""
    from grader.core.results import save
    from tests.test_course import result

    save(dataclasses.replace(result("s1"), assignment=assignment), out / "s1.json")
    classroom.rebuild(out, assignment=assignment, max_score=5.0)
    return out


def test_gradebook_takes_the_assignment_from_the_folder(tmp_path) -> None:
    out = graded_folder(tmp_path / "out")
    done = cli("gradebook", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 students: 1 graded")


def test_a_folder_from_before_its_record_named_the_assignment_is_read_from_its_results(
        tmp_path) -> None:
    out = graded_folder(tmp_path / "out")
    state = json.loads((out / classroom.STATE).read_text())
    del state["assignment"]
    (out / classroom.STATE).write_text(json.dumps(state))
    assert classroom.assignment_of(out) == "convolution"
    assert classroom.assignment_of(tmp_path / "none") is None


def test_the_assignment_is_needed_where_the_folder_has_none(tmp_path) -> None:
    (tmp_path / "late.zip").write_bytes(b"")
    done = cli("grade", "--out", str(tmp_path / "new"), str(tmp_path / "late.zip"))
    assert done.returncode == 2
    assert done.stderr == f"grader: error: --assignment is needed: {tmp_path / 'new'} holds " \
                          f"no graded assignment yet\n"


@pytest.mark.parametrize("command", ["grade", "gradebook"])
def test_another_assignment_into_a_class_folder_is_refused(tmp_path, command) -> None:
    """Its results would replace the folder's under the same student names."""
    out = graded_folder(tmp_path / "out")
    paths = [str(out / "s1.json")] if command == "grade" else []
    done = cli(command, "--assignment", "backprop", "--out", str(out), *paths)
    assert done.returncode == 2
    assert "holds the results of convolution, not backprop" in done.stderr
    assert json.loads((out / "s1.json").read_text())["assignment"] == "convolution"


# --------------------------------------------------------------------------- one number


FIXTURE_ROSTER = ("id,name,email,section,moodle id,canvas id\n"
                  "s1,Ada Lovelace,ada@uni.edu,A,501,1001\n"
                  "s2,Alan Turing,alan@uni.edu,B,502,1002\n")
FIXTURE_COURSE = """
[late]
per_day = 0.2
[assignments.backprop]
deadline = 2026-11-20T23:59:00
canvas_column = "Backprop (1)"
submitted = { s1 = 2026-11-21T08:00:00 }
[[adjustments]]
student = "s1"
points = 6.04
comment = "Partial credit for the gradient, checked by hand"
by = "Dr. Lee"
"""


def fixture_class(folder: Path) -> Path:
    """A class rebuilt from stored results (no grading): s1's tests score 5, an adjustment
    adds 6.04 and one day late takes 20%: a final grade of 8.832, shown everywhere as 8.83;
    s2 has full marks."""
    (folder / "roster.csv").write_text(FIXTURE_ROSTER)
    (folder / "course.toml").write_text(FIXTURE_COURSE)
    out = folder / "out"
    out.mkdir()
    for student, name in (("s1", "failures"), ("s2", "full_marks")):
        result = dataclasses.replace(fixture(name), student=student, assignment="backprop")
        save(result, out / f"{student}.json")
    with classroom.intake([], out_dir=out, roster_path=folder / "roster.csv",
                          course_path=folder / "course.toml") as intake:
        classroom.rebuild(out, assignment="backprop", max_score=15, intake=intake)
    return out


def test_a_grade_reads_the_same_in_every_gradebook_and_page(tmp_path) -> None:
    out = fixture_class(tmp_path)
    grades = {r["id"]: r for r in rows(out / "grades.csv")}
    canvas = {r["ID"]: r["Backprop (1)"] for r in rows(out / "canvas.csv")}
    moodle = {r["Identifier"]: r["Grade"] for r in rows(out / "moodle.csv")}
    assert grades["s1"]["score"] == canvas["1001"] == moodle["Participant 501"] == "8.83"
    assert grades["s2"]["score"] == canvas["1002"] == moodle["Participant 502"] == "15"
    html = (out / "s1.html").read_text()
    assert marked(html, "grade") == "8.83"  # the header, in large type
    assert marked(html, "final-score") == "8.83 / 15"  # how it was made
    page = Page(html).text
    index = (out / "index.html").read_text()
    assert marked(index, "final-s1") == "8.83 / 15" and marked(index, "final-s2") == "15 / 15"
    assert "8.832" not in Page(index).text and "8.832" not in page


def test_a_student_page_opens_with_the_final_grade_and_the_roster_name(tmp_path) -> None:
    """The grade that counts in large type, the tests' score, adjustments and penalty beside
    it; the student named as the roster names them, not by their id."""
    out = fixture_class(tmp_path)
    header = (out / "s1.html").read_text().split("</header>")[0]
    assert marked(header, "student") == "Ada Lovelace" and marked(header, "student-id") == "(s1)"
    assert marked(header, "grade") == "8.83"
    steps = Page(header.split('data-testid="steps"')[1]).text
    assert "tests 5 / 15" in steps and "adjusted +6.04" in steps and "1 day late −20%" in steps
    assert header.index('data-testid="grade"') < header.index('data-testid="steps"')
    unchanged = (out / "s2.html").read_text()  # the course file changes nothing of s2's
    assert marked(unchanged, "student") == "Alan Turing" and marked(unchanged, "grade") == "15"
    assert 'data-testid="steps"' not in unchanged and 'id="final-grade"' not in unchanged


def test_without_a_roster_a_plain_file_names_its_student(tmp_path) -> None:
    """Not by the result's name, which a file name with spaces gets a hash in."""
    notebook = tmp_path / "bob two bugs.ipynb"
    notebook.write_text("{}")
    out = tmp_path / "out"
    out.mkdir()
    with classroom.intake([notebook], out_dir=out) as intake:
        [name] = intake.names.values()
        assert name != "bob two bugs"  # (bob_two_bugs-<hash>)
        save(dataclasses.replace(fixture("full_marks"), student=name, assignment="backprop"),
             out / f"{name}.json")
        classroom.rebuild(out, assignment="backprop", max_score=15, intake=intake)
    html = (out / f"{name}.html").read_text()
    assert marked(html, "student") == "bob two bugs"
    assert 'data-testid="student-id"' not in html  # its result's name is no id of the student
    assert [r["name"] for r in rows(out / "grades.csv")] == ["bob two bugs"]
