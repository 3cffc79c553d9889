"""The course file and final grades: deadlines, extensions, the late rule, adjustments."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from grader import course, final
from grader.errors import GraderError
from grader.results import SubmissionResult, TestResult
from grader.roster import Student

COURSE = """
timezone = "Europe/Berlin"
[late]
per_day = 0.1
zero_after_days = 3
[assignments.convolution]
deadline = 2026-11-20T23:59:00
[assignments.convolution.extensions]
s2 = 2
s3 = 2026-11-30T12:00:00
[assignments.convolution.submitted]
s1 = 2026-11-22T10:00:00
s2 = 2026-11-22T10:00:00
s4 = 2026-11-25T10:00:00
[[adjustments]]
student = "s1"
assignment = "convolution"
test = "b"
points = 1
comment = "Your derivation in the markdown is right; the grader missed it"
by = "Dr. Lee"
[[adjustments]]
student = "s1"
points = -0.5
comment = "Code copied from the lecture notes without credit"
by = "TA Kim"
"""


def result(student: str = "s1", *, review: bool = False, error: str | None = None
           ) -> SubmissionResult:
    tests = (TestResult("a", "f", 2.0, 2.0, "passed", "ok"),
             TestResult("b", "g", 1.0, 3.0, "review" if review else "failed", "half"))
    return SubmissionResult(student=student, assignment="convolution", submission="x.ipynb",
                            sha256="0", error=error, notices=(), tests=tests,
                            grader_version="t", duration_s=1.0)


@pytest.fixture
def loaded(tmp_path: Path) -> course.Course:
    path = tmp_path / "course.toml"
    path.write_text(COURSE)
    return course.load(path)


def grade(loaded: course.Course, student: str, res: SubmissionResult | None = None,
          **intake) -> final.FinalGrade:
    return final.compute(res if res is not None else result(student), Student(id=student),
                         loaded, assignment="convolution", max_score=5.0, intake=intake)


def test_late_penalty_after_adjustments(loaded) -> None:
    ada = grade(loaded, "s1")  # 2 days late (Nov 22 10:00 after Nov 20 23:59), 20% taken
    assert [t.score for t in ada.tests] == [2.0, 2.0]  # test b: 1 + 1
    assert ada.late_days == 2 and ada.penalty == pytest.approx(0.2)
    assert ada.score == pytest.approx((4.0 - 0.5) * 0.8)
    assert ada.raw_score == 3.0 and ada.status == "late"
    assert [a.by for a in ada.adjustments] == ["Dr. Lee", "TA Kim"]


def test_extensions_in_days_and_as_a_new_deadline(loaded) -> None:
    days = grade(loaded, "s2")  # two days' extension: Nov 22 23:59, submitted Nov 22 10:00
    assert (days.late_days, days.status, days.score) == (0, "graded", 3.0)
    moved = grade(loaded, "s3", submitted="2026-11-30T13:00:00")  # 1 hour after a new deadline
    assert moved.late_days == 1 and moved.score == pytest.approx(2.7)


def test_zero_after_the_last_day(loaded) -> None:
    late = grade(loaded, "s4")  # 5 days late, zero after 3
    assert late.penalty == 1.0 and late.score == 0.0 and late.status == "late"


def test_lms_time_wins_and_is_read_in_the_course_time_zone(loaded) -> None:
    on_time = grade(loaded, "s1", submitted="2026-11-20T23:30:00")
    assert on_time.late_days == 0
    assert on_time.submitted == datetime(2026, 11, 20, 23, 30,
                                         tzinfo=ZoneInfo("Europe/Berlin")).isoformat()


def test_canvas_late_mark_without_time_is_late_without_penalty(loaded) -> None:
    marked = grade(loaded, "s9", late=True)
    assert marked.status == "late" and marked.penalty == 0 and marked.score == 3.0
    assert "without its time" in marked.notes[0]


def test_file_times_only_when_the_course_file_says_so(loaded) -> None:
    assert grade(loaded, "s9", mtime="2026-11-25T10:00:00+00:00").late_days == 0
    allowed = course.Course(**{**loaded.__dict__, "file_times": True})
    graded = grade(allowed, "s9", mtime="2026-11-25T10:00:00+00:00")
    assert graded.late_days == 5 and "modification time" in graded.notes[0]


def test_the_overview_lists_for_review_only_what_no_adjustment_settled(tmp_path) -> None:
    from grader import classroom
    from grader.results import save

    out = tmp_path / "out"
    for student in ("s1", "s2"):
        save(result(student, review=True), out / f"{student}.json")
    (tmp_path / "course.toml").write_text(
        '[[adjustments]]\nstudent = "s1"\ntest = "b"\npoints = 1\n'
        'comment = "trained for real, checked by hand"\nby = "Dr. Lee"\n')
    with classroom.intake([], course_path=tmp_path / "course.toml") as intake:
        classroom.rebuild(out, assignment="convolution", max_score=5.0, intake=intake)
    html = (out / "index.html").read_text()
    assert "Needs your review (1)" in html and "<td>s2</td><td>b</td>" in html
    assert "<td>s1</td><td>b</td>" not in html


def test_review_stays_until_an_adjustment_on_that_test(loaded) -> None:
    assert grade(loaded, "s2", result("s2", review=True)).status == "needs review"
    assert grade(loaded, "s1", result("s1", review=True)).status == "late"  # s1's test b: looked


def test_missing_and_ungradable_have_no_score(loaded) -> None:
    missing = final.compute(None, Student(id="s7"), loaded, assignment="convolution",
                            max_score=5.0)
    assert (missing.status, missing.score, missing.max_score) == ("missing", None, 5.0)
    broken = grade(loaded, "s2", result("s2", error="not a notebook"))
    assert (broken.status, broken.score, broken.counted) == ("ungradable", None, False)


def test_stored_result_is_never_changed(loaded) -> None:
    stored = result("s1")
    before = stored.to_json()
    grade(loaded, "s1", stored)
    assert stored.to_json() == before


def test_adjustment_on_an_unknown_test_names_it(loaded) -> None:
    wrong = course.Course(adjustments=(course.Adjustment("s1", None, "zzz", 1, "c", "me"),))
    with pytest.raises(GraderError, match="'zzz'"):
        grade(wrong, "s1")


@pytest.mark.parametrize("text, words", [
    ("dedline = 1", "dedline: unknown key"),
    ("timezone = 'Mars/Olympus'", "unknown time zone"),
    ("[late]\nper_day = 10", "late.per_day: a fraction"),
    ("[assignments.convolution]\ndeadline = 'soon'",
     "assignments.convolution.deadline: not a date-time"),
    ("[assignments.convolution.extensions]\ns1 = 2", "need the assignment's deadline"),
    ("[assignments.backprob]\ndeadline = 2026-11-20T23:59:00",
     "assignments.backprob: unknown assignment 'backprob' (did you mean 'backprop'?)"),
    ("[[adjustments]]\nstudent = 's1'\nassignment = 'convolutoin'\npoints = 1\nby = 'me'\n"
     "comment = 'c'", "adjustments[0].assignment: unknown assignment 'convolutoin' (did you "
     "mean 'convolution'?)"),
    ("[assignments.convolution]\ndedline = 2026-11-20T23:59:00",
     "assignments.convolution.dedline: unknown key (did you mean 'deadline'?)"),
    ("[[adjustments]]\nstudent = 's1'\npoints = 1\nby = 'me'", "adjustments[0].comment: missing"),
    ("[[adjustments]]\nstudent = 's1'\npoints = 'x'\nby = 'me'\ncomment = 'c'",
     "adjustments[0].points: must be a number"),
])
def test_course_file_errors_name_the_key(tmp_path, text, words) -> None:
    path = tmp_path / "course.toml"
    path.write_text(text)
    with pytest.raises(GraderError, match=re.escape(words)):
        course.load(path)


def test_the_readme_example_is_a_valid_course_file(tmp_path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = readme.split("**The course file**")[1].split("```toml\n")[1].split("```")[0]
    path = tmp_path / "course.toml"
    path.write_text(example)
    loaded = course.load(path)
    rules = loaded.rules("backprop")
    assert rules.late.per_day == 0.1 and rules.late.zero_after_days == 5
    assert rules.deadline_for("s042") == rules.deadline + timedelta(days=2)
    assert loaded.adjustments[0].test == "dense_backward: gradient check"


@pytest.mark.parametrize("module", ["course", "final", "gradebook", "roster", "ingest",
                                    "classroom"])
def test_class_modules_stay_away_from_execution(module: str) -> None:
    """Final grades and gradebooks are computed from stored results, never by running code."""
    from tests.test_layering import GRADER, imports_of

    used = {n.split(".")[1] for n in imports_of(GRADER / f"{module}.py")
            if n.startswith("grader.")}
    assert not used & {"sandbox", "execute", "reference", "checks", "scoring", "inside"}, used

