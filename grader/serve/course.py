"""The course as the server keeps it, in the course file's terms.

The server's rows (deadlines, late rules, extensions, submission times, adjustments) become the
batch's ``grader.course.coursefile.Course`` here, and every final grade is
``grader.course.final.compute`` over it: the server and ``grader gradebook`` apply one late rule and
one order of adjustments. A course file imports into the rows (checked by
``grader.course.coursefile.load`` and ``resolve`` against the roster, exactly as the batch checks
it) and the rows export back to a course file: the server's state is the one source of truth, the
file its portable form.

What the course file has no words for is the server's own per-assignment setting: attempts per
day, a cooldown, what students see before the deadline and whether grades are released.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from grader.core.errors import GraderError
from grader.core.results import SubmissionResult
from grader.course import coursefile as course_file
from grader.course import final
from grader.course.coursefile import Adjustment, Course, LateRule, Rules
from grader.course.roster import Student
from grader.serve.store import Attempt, CourseRows, Store

# what students see of a graded attempt before grades are released
FEEDBACK = {
    "public": "public tests and diagnoses until the deadline, then every test",
    "release": "public tests and diagnoses until grades are released",
    "all": "every test at once",
    "none": "only that it was received, until grades are released",
}
DEFAULTS: dict[str, Any] = {"deadline": None, "late": None, "canvas_column": "",
                            "attempts_per_day": None, "cooldown_minutes": 0.0,
                            "feedback": "public", "released": None}


def settings(store: Store, assignment: str) -> dict[str, Any]:
    return {**DEFAULTS, **(store.assignment_settings(assignment) or {})}


def timezone(store: Store) -> str:
    return store.setting("timezone") or "UTC"


def default_late(store: Store) -> LateRule:
    return _late(store.setting("late"))


def load(store: Store, assignments: Collection[str]) -> Course:
    """The server's rows as the batch's ``Course`` (student ids already resolved)."""
    zone = ZoneInfo(timezone(store))
    default = default_late(store)
    rules = {}
    for name in assignments:
        s = settings(store, name)
        rules[name] = Rules(
            deadline=_moment(s["deadline"], zone),
            late=_late(s["late"]) if s["late"] is not None else default,
            extensions={k: _instant(v, zone) for k, v in store.extensions(name).items()},
            submitted={k: _instant(v, zone) for k, v in store.submitted_times(name).items()},
            canvas_column=s["canvas_column"] or "")
    adjustments = tuple(Adjustment(student=a["student"], assignment=a["assignment"] or None,
                                   test=a["test"], points=float(a["points"]),
                                   comment=a["comment"], by=a["author"])
                        for a in store.adjustments())
    return Course(timezone=timezone(store), assignments=rules, adjustments=adjustments,
                  source="the server's course state")


def _late(data: dict[str, Any] | None) -> LateRule:
    data = data or {}
    return LateRule(per_day=float(data.get("per_day", 0.0)),
                    zero_after_days=data.get("zero_after_days"),
                    grace_minutes=float(data.get("grace_minutes", 0.0)))


def _moment(text: str | None, zone: ZoneInfo) -> datetime | None:
    return _instant(text, zone) if text else None


def _instant(text: str, zone: ZoneInfo) -> datetime:
    """A stored time (never empty: an empty one is removed instead, ``per_student_time``)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def parse_time(text: str, zone_name: str) -> str:
    """A time typed in a form (``2026-11-20T23:59``, with or without offset; without, in the
    course's time zone) as ISO text with its offset; ``GraderError`` in words otherwise."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise GraderError(f"not a date and time: {text[:40]!r} (e.g. 2026-11-20T23:59)") \
            from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone_name))
    return moment.isoformat(timespec="seconds")


# --------------------------------------------------------------------------- final grades


@dataclass(frozen=True)
class Row:
    """One student of an assignment: the attempt that counts, its result, the final grade."""

    student: Student
    final: final.FinalGrade
    attempt: Attempt | None  # the one that counts: the latest graded (or failed) one
    result: SubmissionResult | None
    attempts: int
    pending: bool  # a newer attempt is queued or grading

    @property
    def status(self) -> str:
        if self.attempt is not None and self.attempt.state == "failed":
            return "ungradable"
        if self.attempt is None and self.pending:
            return "grading"
        return self.final.status


def counted(attempts: Sequence[Attempt]) -> tuple[Attempt | None, bool]:
    """The latest attempt that was graded (or that the grader gave up on), and whether a
    newer one is still waiting. ``attempts``: newest first."""
    pending = False
    for attempt in attempts:
        if attempt.state in ("done", "failed"):
            return attempt, pending
        pending = True
    return None, pending


def final_grade(student: Student, attempt: Attempt | None, result: SubmissionResult | None,
                course: Course, *, assignment: str, max_score: float) -> final.FinalGrade:
    """``grader.course.final.compute`` with the server's received time as the submission time
    (the course's ``submitted`` for the student, set by an instructor, wins)."""
    rules = course.rules(assignment)
    intake = ({"submitted": iso(attempt.received)}
              if attempt is not None and student.id not in rules.submitted else {})
    return final.compute(result, student, course, assignment=assignment,
                         max_score=max_score, intake=intake)


# --------------------------------------------------------------------------- visibility


@dataclass(frozen=True)
class Shown:
    """What a student sees of a graded attempt now."""

    anything: bool  # False: only that it was received (feedback = none, before release)
    hidden: bool  # hidden tests (and everything printed while they ran)
    final: bool  # the final grade: late penalty, adjustments and their comments
    why: str  # one sentence for the page


def shown(settings: dict[str, Any], deadline: datetime | None, *,
          now: float | None = None) -> Shown:
    """Before the deadline (or release, as the assignment says) a student sees the public
    tests only: the server is no oracle for the hidden ones."""
    now = time.time() if now is None else now
    if settings.get("released"):
        return Shown(True, True, True, "Grades are released: this is your grade.")
    policy = settings.get("feedback") or "public"
    past = deadline is not None and deadline.timestamp() <= now
    if policy == "all":
        return Shown(True, True, False, "Grades are not released yet: adjustments and late "
                     "penalties are not shown.")
    if policy == "none":
        return Shown(False, False, False, "Feedback is shown when grades are released.")
    if policy == "public" and past:
        return Shown(True, True, False, "The deadline has passed: every test is shown; "
                     "grades are not released yet.")
    when = "after the deadline" if policy == "public" and deadline else "when grades are released"
    return Shown(True, False, False, f"Public tests only; the hidden tests are shown {when}.")


def public_part(result: SubmissionResult) -> SubmissionResult:
    """The result without its hidden tests and without anything that could carry their
    inputs back: what the notebook printed (a student's function may print its arguments),
    per-test observations and call timings."""
    notices = tuple(n if not n.startswith("your notebook printed") else
                    "your notebook printed output; it is shown with the hidden tests"
                    for n in result.notices)
    return dataclasses.replace(result, tests=tuple(t for t in result.tests
                                                   if t.visibility == "public"),
                               notices=notices, observations=(), timings={})


def page_view(grade: final.FinalGrade) -> dict[str, Any]:
    """What ``report.render_student(final=...)`` adds: the final grade, the name, the id."""
    return {**grade.view(), "changed": True, "name": grade.student.name or None,
            "id": grade.student.id}


# --------------------------------------------------------------------------- course file


def import_file(store: Store, text: str, *, assignments: Collection[str],
                tests: Mapping[str, Collection[str]], author: str) -> CourseRows:
    """A course file's text in place of the server's course state, checked as the batch
    checks it (``GraderError`` naming the key): known assignments, every student on the
    roster, every adjusted test in its rubric."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "course.toml"
        path.write_text(text, encoding="utf-8")
        loaded = course_file.load(path, assignments=assignments)
    students = store.students()
    loaded = dataclasses.replace(loaded, source="the course file")
    loaded = course_file.resolve(loaded, students, roster=True)
    for name, names in tests.items():
        course_file.resolve(loaded, students, roster=True, assignment=name, tests=names)
    rows = _rows(store, loaded, assignments)
    store.replace_course(rows, author)
    return rows


def _rows(store: Store, loaded: Course, assignments: Collection[str]) -> CourseRows:
    default = loaded.assignments[next(iter(loaded.assignments))].late \
        if loaded.assignments else LateRule()
    top = _top_late(loaded, default)
    per: dict[str, dict[str, Any]] = {}
    extensions, submitted = [], []
    for name in assignments:
        s = settings(store, name)
        rules = loaded.assignments.get(name, Rules(late=top))
        per[name] = {**s, "deadline": _text(rules.deadline),
                     "late": None if rules.late == top else dataclasses.asdict(rules.late),
                     "canvas_column": rules.canvas_column}
        extensions += [(name, k, v.isoformat()) for k, v in rules.extensions.items()]
        submitted += [(name, k, v.isoformat()) for k, v in rules.submitted.items()]
    now = time.time()
    adjustments = [(a.assignment or "", a.student, a.test, a.points, a.comment, a.by, now)
                   for a in loaded.adjustments]
    return CourseRows({"timezone": loaded.timezone, "late": dataclasses.asdict(top)}, per,
                      extensions, submitted, adjustments)


def _top_late(loaded: Course, fallback: LateRule) -> LateRule:
    """The file's own [late] table: ``course.load`` gives it to every assignment without one
    of its own, so it is the rule the assignments share (an assignment's own stands out)."""
    lates = [r.late for r in loaded.assignments.values()]
    if not lates:
        return LateRule()
    return max(set(lates), key=lates.count) if lates else fallback


def _text(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def export_file(store: Store, assignments: Collection[str]) -> str:
    """The server's course state as a course file (``grader gradebook --course`` reads it,
    and importing it back changes nothing)."""
    lines = [f"# exported by the course server at {iso(time.time())}",
             f"timezone = {_q(timezone(store))}", ""]
    top = default_late(store)
    lines += ["[late]", *_late_lines(top), ""]
    for name in sorted(assignments):
        s = settings(store, name)
        lines.append(f"[assignments.{_key(name)}]")
        if s["deadline"]:
            lines.append(f"deadline = {s['deadline']}")
        if s["canvas_column"]:
            lines.append(f"canvas_column = {_q(s['canvas_column'])}")
        if s["late"] is not None:
            lines.append("late = { " + ", ".join(_late_lines(_late(s["late"]))) + " }")
        for key, table in (("extensions", store.extensions(name)),
                           ("submitted", store.submitted_times(name))):
            if table:
                lines.append(f"{key} = {{ " + ", ".join(
                    f"{_key(k)} = {v}" for k, v in sorted(table.items())) + " }")
        lines.append("")
    for a in store.adjustments():
        lines += ["[[adjustments]]", f"student = {_q(a['student'])}"]
        if a["assignment"]:
            lines.append(f"assignment = {_q(a['assignment'])}")
        if a["test"] is not None:
            lines.append(f"test = {_q(a['test'])}")
        lines += [f"points = {_number(a['points'])}", f"comment = {_q(a['comment'])}",
                  f"by = {_q(a['author'])}", ""]
    return "\n".join(lines)


def _late_lines(rule: LateRule) -> list[str]:
    lines = [f"per_day = {_number(rule.per_day)}", f"grace_minutes = {_number(rule.grace_minutes)}"]
    if rule.zero_after_days is not None:
        lines.append(f"zero_after_days = {int(rule.zero_after_days)}")
    return lines


def _number(value: float) -> str:
    value = float(value)
    if not math.isfinite(value):
        raise GraderError(f"not a finite number: {value}")
    return repr(value)


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(str(text), ensure_ascii=False)


def _key(text: str) -> str:
    return text if text and all(c.isalnum() or c in "_-" for c in text) and text.isascii() \
        else _q(text)
