"""The course file and final grades: deadlines, extensions, the late rule, adjustments."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from grader.core.errors import GraderError
from grader.core.results import SubmissionResult, TestResult
from grader.core.schema import ProblemsError
from grader.course import coursefile as course
from grader.course import final
from grader.course.roster import Student

DOCS = Path(__file__).resolve().parent.parent / "docs" / "course.md"

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
    from grader.core.results import save
    from grader.course import classroom

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
    ("dedline = 1", "unknown key 'dedline' (did you mean 'deadline', a key of "
     "[assignments.NAME]?)"),
    ("timezone = 'Mars/Olympus'", "timezone must be a time zone such as 'Europe/Berlin', "
     "'America/New_York' or 'UTC' (got 'Mars/Olympus')"),
    ("[late]\nper_day = 10", "late.per_day must be a fraction of the score between 0 and 1, "
     "e.g. 0.1 for 10% per day (got 10)"),
    ("[assignments.convolution]\ndeadline = 'soon'",
     "assignments.convolution.deadline must be a date-time such as 2026-11-20T23:59:00 "
     "(got 'soon')"),
    ("[assignments.convolution.extensions]\ns1 = 2", "need the assignment's deadline"),
    ("[assignments.backprob]\ndeadline = 2026-11-20T23:59:00",
     "assignments.backprob: unknown assignment 'backprob' (did you mean 'backprop'?)"),
    ("[[adjustments]]\nstudent = 's1'\nassignment = 'convolutoin'\npoints = 1\nby = 'me'\n"
     "comment = 'c'", "adjustments[0].assignment: unknown assignment 'convolutoin' (did you "
     "mean 'convolution'?)"),
    ("[assignments.convolution]\ndedline = 2026-11-20T23:59:00",
     "assignments.convolution: unknown key 'dedline' (did you mean 'deadline'?)"),
    ("[[adjustments]]\nstudent = 's1'\npoints = 1\nby = 'me'",
     "adjustments[0].comment is required"),
    ("[[adjustments]]\nstudent = 's1'\npoints = 'x'\nby = 'me'\ncomment = 'c'",
     "adjustments[0].points must be a number (got 'x')"),
    # the messages the schema gives (grader.core.schema), as a rubric's
    ("per_day = 0.1", "unknown key 'per_day' (it belongs in [late] or "
     "[assignments.NAME.late])"),
    ("[backprop]\ndeadline = 2026-11-20T23:59:00",
     "unknown key 'backprop' (it belongs in [assignments.backprop])"),
    ("[late]\nper_dya = 0.1", "late: unknown key 'per_dya' (did you mean 'per_day'?)"),
    ("timezone = 'Europe/Berln'", "(got 'Europe/Berln') (did you mean 'Europe/Berlin'?)"),
    ("file_times = 'yes'", "file_times must be true or false (got 'yes')"),
    ("late = 0.1", "late must be a table (got 0.1)"),
    ("[[adjustments]]\nlate = {}\nstudent = 's1'\npoints = 1\nby = 'me'\ncomment = 'c'",
     "adjustments[0]: unknown key 'late' (it belongs in the top of the file or "
     "[assignments.NAME])"),
    ("[late]\nzero_after_days = 2.5", "late.zero_after_days must be an integer ≥ 0 (got 2.5)"),
    ("[late]\ngrace_minutes = inf", "late.grace_minutes must be a number (got inf)"),
    ("[assignments.convolution.late]\nper_day = -0.1",
     "assignments.convolution.late.per_day must be a fraction"),
    ("[assignments.convolution]\nextensions = { s1 = 'soon' }",
     "assignments.convolution.extensions.s1 must be a number of days or a date-time such as "
     "2026-11-20T23:59:00 (got 'soon')"),
    ("[assignments.convolution]\nsubmitted = { s1 = 3 }",
     "assignments.convolution.submitted.s1 must be a date-time"),
    ("[assignments]\nconvolution = 3", "assignments.convolution must be a table (got 3)"),
    ("[[adjustments]]\nstudent = ''\npoints = 1\nby = 'me'\ncomment = 'c'",
     "adjustments[0].student must be a non-empty string (got '')"),
    ("adjustments = { student = 's1' }", "adjustments must be a list of tables, one "
     "[[adjustments]] each"),
    # values that used to raise past the messages: a folder of zones, dates out of range
    ("timezone = 'Europe'", "timezone must be a time zone such as 'Europe/Berlin', "
     "'America/New_York' or 'UTC' (got 'Europe')"),
    ("[assignments.convolution]\ndeadline = 2026-11-20T23:59:00\nextensions = { s1 = 1e12 }",
     "assignments.convolution.extensions.s1 must be at most 3,650 days (got 1000000000000.0)"),
    ("[late]\ngrace_minutes = 1e300",
     "late.grace_minutes must be at most 5,256,000 minutes (got 1e+300)"),
])
def test_course_file_errors_name_the_key(tmp_path, text, words) -> None:
    path = tmp_path / "course.toml"
    path.write_text(text)
    with pytest.raises(GraderError, match=re.escape(words)):
        course.load(path)


def test_every_problem_of_the_file_at_once(tmp_path) -> None:
    """Not the first problem and then the next after its fix: all of them, one line each, in
    the order of the file's tables."""
    path = tmp_path / "course.toml"
    path.write_text('timezone = "Europe/Berln"\n'
                    '[late]\nper_day = 10\n'
                    '[assignments.convolution]\ndedline = 2026-11-20T23:59:00\n'
                    'extensions = { s1 = 2, s2 = "soon" }\n'
                    '[assignments.backprob]\n'
                    '[[adjustments]]\nstudent = "s1"\npoints = "x"\nby = "me"\n')
    with pytest.raises(ProblemsError) as caught:
        course.load(path, assignments=["backprop", "convolution"])
    assert [line.removeprefix(f"{path}: ") for line in caught.value.lines] == [
        "timezone must be a time zone such as 'Europe/Berlin', 'America/New_York' or 'UTC' "
        "(got 'Europe/Berln') (did you mean 'Europe/Berlin'?)",
        "late.per_day must be a fraction of the score between 0 and 1, e.g. 0.1 for 10% per "
        "day (got 10)",
        "assignments.convolution: unknown key 'dedline' (did you mean 'deadline'?)",
        "assignments.convolution.extensions.s2 must be a number of days or a date-time such "
        "as 2026-11-20T23:59:00 (got 'soon')",
        "adjustments[0].points must be a number (got 'x')",
        "adjustments[0].comment is required",
        "assignments.convolution.extensions.s1: days of extension need the assignment's "
        "deadline",
        "assignments.backprob: unknown assignment 'backprob' (did you mean 'backprop'?); "
        "known: backprop, convolution",
    ]
    assert all(line.startswith(f"{path}: ") for line in caught.value.lines)
    assert str(caught.value).startswith("8 problems:\n  ")


def test_the_docs_are_generated_from_the_keys() -> None:
    """docs/course.md cannot drift: regenerate it with `python -m grader validate
    --write-docs`."""
    assert DOCS.read_text() == course.reference_markdown()
    for keys in (course.TOP_KEYS, course.LATE_KEYS, course.ASSIGNMENT_KEYS,
                 course.ADJUSTMENT_KEYS):
        assert all(f"| `{key.name}` |" in DOCS.read_text() for key in keys)


def test_the_docs_example_is_a_valid_course_file(tmp_path) -> None:
    from tests import readme

    path = tmp_path / "course.toml"
    path.write_text(readme.blocks(DOCS.read_text(), "toml")[0])
    loaded = course.load(path, assignments=["backprop"])
    assert loaded.rules("backprop").late.grace_minutes == 10
    assert loaded.adjustments[0].points == 1.5


def test_the_guides_example_is_a_valid_course_file(tmp_path) -> None:
    """The course file of docs/instructors.md (the walk-through's), as written."""
    from tests import readme

    example = readme.blocks(readme.after("**The course file**", readme.GUIDE.read_text()),
                            "toml")[0]
    path = tmp_path / "course.toml"
    path.write_text(example)
    loaded = course.load(path)
    rules = loaded.rules("backprop")
    assert rules.late.per_day == 0.1 and rules.late.zero_after_days == 5
    assert rules.deadline_for("s042") == rules.deadline + timedelta(days=2)
    assert loaded.adjustments[0].test == "dense_backward: gradient check"


# --------------------------------------------------------------------------- who is named

# A Canvas gradebook export as it is: results are named by its ID (Canvas's number), while an
# instructor writes the SIS id they know (docs/instructors.md's s042).
CANVAS_ROSTER = ("Student,ID,SIS User ID,SIS Login ID,Section,Convolution (4242)\n"
                 "    Points Possible,,,,,5\n"
                 '"Lovelace, Ada",1001,s042,ada,A,\n'
                 '"Turing, Alan",1002,s077,alan,B,\n'
                 '"Hopper, Grace",1003,s013,grace,A,\n')
NAMED_BY_SIS_ID = """
[late]
per_day = 0.1
[assignments.convolution]
deadline = 2026-11-20T23:59:00
extensions = { s042 = 2 }
submitted = { s042 = 2026-11-22T10:00:00, s077 = 2026-11-22T10:00:00 }
[[adjustments]]
student = "s042"
assignment = "convolution"
test = "b"
points = 1.5
comment = "Your derivation is right"
by = "Dr. Lee"
"""


def class_folder(tmp_path: Path, course_text: str, *, students: tuple[str, ...] = ("1001", "1002"),
                 roster_text: str | None = CANVAS_ROSTER) -> dict[str, dict[str, str]]:
    """Results of ``students`` rebuilt with the roster and course file: grades.csv by id."""
    import csv

    from grader.core.results import save
    from grader.course import classroom

    out = tmp_path / "out"
    for student in students:
        save(result(student), out / f"{student}.json")
    (tmp_path / "course.toml").write_text(course_text)
    files = {"course_path": tmp_path / "course.toml"}
    if roster_text is not None:
        (tmp_path / "roster.csv").write_text(roster_text)
        files["roster_path"] = tmp_path / "roster.csv"
    with classroom.intake([], out_dir=out, **files) as intake:
        classroom.rebuild(out, assignment="convolution", max_score=5.0, intake=intake)
    return {r["id"]: r for r in csv.DictReader((out / "grades.csv").open(encoding="utf-8"))}


def test_a_student_named_by_sis_id_gets_the_extension_and_adjustment(tmp_path) -> None:
    book = class_folder(tmp_path, NAMED_BY_SIS_ID)
    ada, alan = book["1001"], book["1002"]
    assert (ada["status"], ada["late_days"], ada["adjustment"]) == ("graded", "0", "1.5")
    assert float(ada["score"]) == 3.0 + 1.5 and ada["b"] == "2.5"
    assert (alan["status"], alan["late_days"], float(alan["score"])) == ("late", "2", 2.4)


@pytest.mark.parametrize("field, value", [
    ("id", "s1"), ("sis_id", "S-0001"), ("login", "ada"), ("email", "Ada@Uni.EDU"),
    ("canvas_id", "1001"), ("moodle_id", "501")])
def test_every_identifier_the_roster_holds_names_the_student(field, value) -> None:
    ada = Student("s1", "Ada", "ada@uni.edu", "A", "S-0001", "ada", "1001", "501")
    alan = Student("s2", "Alan", "alan@uni.edu", "B", "S-0002", "alan", "1002", "502")
    wrote = course.Course(assignments={"convolution": course.Rules(extensions={
        value: datetime(2026, 11, 22, tzinfo=ZoneInfo("UTC"))})})
    resolved = course.resolve(wrote, [alan, ada], roster=True)
    assert list(resolved.rules("convolution").extensions) == ["s1"], field


def test_a_name_that_is_nobody_stops_before_grading_with_a_did_you_mean(tmp_path) -> None:
    from grader.course import classroom

    (tmp_path / "roster.csv").write_text(CANVAS_ROSTER)
    (tmp_path / "course.toml").write_text(
        NAMED_BY_SIS_ID.replace("extensions = { s042", "extensions = { s0042"))
    with pytest.raises(GraderError) as caught, classroom.intake(  # (what grade reads first)
            [], roster_path=tmp_path / "roster.csv", course_path=tmp_path / "course.toml"):
        pass
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'course.toml'}: assignments.convolution."
                              f"extensions.s0042: 's0042' is nobody on the roster")
    assert "did you mean 's042', the SIS id of Lovelace, Ada (1001)?" in message
    assert "\n" not in message


def test_a_name_of_two_students_stops(tmp_path) -> None:
    roster_text = "id,name,canvas id\ns1,Ada,1002\n1002,Alan,1003\n"
    text = ('[[adjustments]]\nstudent = "1002"\npoints = 1\ncomment = "c"\nby = "me"\n')
    with pytest.raises(GraderError, match=r"adjustments\[0\]\.student: '1002' is an identifier "
                                          r"of 2 students: s1 \(Canvas id\), 1002 \(id\)"):
        class_folder(tmp_path, text, students=("s1",), roster_text=roster_text)


def test_two_names_of_one_student_in_one_table_stop(tmp_path) -> None:
    text = NAMED_BY_SIS_ID.replace("extensions = { s042 = 2 }",
                                   "extensions = { s042 = 2, 1001 = 3 }")
    with pytest.raises(GraderError, match="extensions: 's042' and '1001' are the same student "
                                          r"\(1001\); keep one"):
        class_folder(tmp_path, text)


def test_an_adjustment_on_a_test_the_rubric_lacks_stops_even_for_a_missing_student(
        tmp_path) -> None:
    """Grace (1003) has no result: an adjustment on a misspelt test was dropped unseen."""
    text = NAMED_BY_SIS_ID.replace('student = "s042"', 'student = "s013"').replace(
        'test = "b"', 'test = "bb"')
    with pytest.raises(GraderError, match=r"adjustments\[0\]\.test: convolution has no test "
                                          r"'bb' \(did you mean 'b'\?\)"):
        class_folder(tmp_path, text)


def test_without_a_roster_a_name_must_be_a_graded_student(tmp_path) -> None:
    with pytest.raises(GraderError, match=r"extensions\.s042: 's042' is nobody graded in this "
                                          r"folder .*give --roster"):
        class_folder(tmp_path, NAMED_BY_SIS_ID, roster_text=None)
    other = tmp_path / "other"
    other.mkdir()
    text = NAMED_BY_SIS_ID.replace("s042", "1001").replace("s077", "1002")
    assert class_folder(other, text, roster_text=None)["1001"]["adjustment"] == "1.5"


def test_the_command_line_stops_on_a_course_file_naming_nobody(tmp_path) -> None:
    """The issue's case through ``gradebook``: exit 2 and one line, where it exited 0."""
    from tests.test_gradebook import cli

    class_folder(tmp_path, NAMED_BY_SIS_ID)
    (tmp_path / "course.toml").write_text(  # (the real rubric has no test "b": one problem)
        NAMED_BY_SIS_ID.replace('"s042"', '"s04"').replace('test = "b"\n', ""))
    done = cli("gradebook", "--assignment", "convolution", "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stdout
    assert done.stderr.count("\n") == 1 and "adjustments[0].student: 's04' is nobody" in \
        done.stderr


def test_every_name_that_is_nobody_at_once() -> None:
    """The roster's check reports each name and test it cannot place, not the first alone."""
    ada = Student("1001", "Lovelace, Ada", sis_id="s042")
    alan = Student("1002", "Turing, Alan", sis_id="s077")
    moment = datetime(2026, 11, 22, tzinfo=ZoneInfo("UTC"))
    wrote = course.Course(
        assignments={"convolution": course.Rules(extensions={"s0042": moment},
                                                 submitted={"s078": moment, "s042": moment})},
        adjustments=(course.Adjustment("s042", "convolution", "bb", 1, "c", "me"),),
        source="course.toml")
    with pytest.raises(ProblemsError) as caught:
        course.resolve(wrote, [ada, alan], roster=True, assignment="convolution",
                       tests=("a", "b"))
    assert [line.split(": ")[1] for line in caught.value.lines] == [
        "assignments.convolution.extensions.s0042", "assignments.convolution.submitted.s078",
        "adjustments[0].test"]
    assert all(line.startswith("course.toml: ") for line in caught.value.lines)
    assert "did you mean 's042', the SIS id of Lovelace, Ada (1001)?" in caught.value.lines[0]
    assert "did you mean 's077', the SIS id of Turing, Alan (1002)?" in caught.value.lines[1]
    assert "has no test 'bb' (did you mean 'b'?)" in caught.value.lines[2]


def test_the_command_line_shows_every_problem_of_the_course_file(tmp_path) -> None:
    from tests.test_gradebook import cli

    class_folder(tmp_path, NAMED_BY_SIS_ID)
    (tmp_path / "course.toml").write_text(NAMED_BY_SIS_ID.replace("per_day = 0.1",
                                                                  "per_day = 10\ngrace_mins = 5"))
    done = cli("gradebook", "--assignment", "convolution", "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stdout
    assert done.stderr.splitlines() == [
        "grader: error: 2 problems:",
        f"  {tmp_path / 'course.toml'}: late: unknown key 'grace_mins' (did you mean "
        "'grace_minutes'?)",
        f"  {tmp_path / 'course.toml'}: late.per_day must be a fraction of the score between 0 "
        "and 1, e.g. 0.1 for 10% per day (got 10)"]
