"""Final grades: a stored result, the course file and the submission time, combined.

A pure function: the stored ``SubmissionResult`` is never re-run nor patched; the late rule
and the instructor's adjustments are laid over it here, every time the gradebooks, the
overview and the student pages are made, so all of them say the same and a regrade keeps the
adjustments. Order: adjustments correct the grading first (a test's score stays within
0 and its maximum, the total at least 0), then the late penalty takes its fraction of that.

Submission times come from the LMS's file name (Brightspace), else the course file's
``submitted``, else the file's modification time where the course file says ``file_times``.
Canvas marks a late file without a time: such a submission is *late* with no penalty until
the course file gives its time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from grader.core.errors import GraderError
from grader.core.results import SubmissionResult
from grader.course.coursefile import Adjustment, Course, Rules
from grader.course.roster import Student

STATUSES = ("graded", "late", "needs review", "ungradable", "missing")


@dataclass(frozen=True)
class TestGrade:
    __test__ = False

    name: str
    score: float
    max_score: float
    adjusted: bool = False


@dataclass(frozen=True)
class FinalGrade:
    """What a gradebook row, the overview and a student's page say about one student."""

    student: Student
    assignment: str
    status: str  # one of STATUSES
    score: float | None  # None: nothing to count (ungradable, missing)
    max_score: float
    raw_score: float | None = None
    tests: tuple[TestGrade, ...] = ()
    submission: str = ""
    submitted: str | None = None  # ISO 8601 with offset
    deadline: str | None = None
    late_days: int = 0
    penalty: float = 0.0  # the fraction taken
    adjustments: tuple[Adjustment, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def counted(self) -> bool:
        """Counted in the mean: it has a score (graded, late or waiting for review)."""
        return self.score is not None

    def view(self) -> dict[str, Any]:
        """Plain data for the student page (``report.render_student(final=...)``)."""
        return {
            "status": self.status,
            "score": None if self.score is None else round(self.score, 4),
            "max": self.max_score,
            "raw": None if self.raw_score is None else round(self.raw_score, 4),
            "submitted": self.submitted,
            "deadline": self.deadline,
            "late_days": self.late_days,
            "penalty_percent": round(self.penalty * 100, 2),
            "adjustments": [{"test": a.test or "total", "points": a.points, "comment": a.comment,
                             "by": a.by} for a in self.adjustments],
            "notes": list(self.notes),
        }

    @property
    def changed(self) -> bool:
        """Whether the course file changes anything on this student's page."""
        return bool(self.adjustments or self.late_days or self.notes or self.status == "late")


class _Common(TypedDict):
    """What a final grade says whether its result was graded or not."""

    student: Student
    assignment: str
    max_score: float
    tests: tuple[TestGrade, ...]
    submission: str
    submitted: str | None
    deadline: str | None
    late_days: int
    penalty: float
    adjustments: tuple[Adjustment, ...]
    notes: tuple[str, ...]


def compute(result: SubmissionResult | None, student: Student, course: Course, *,
            assignment: str, max_score: float, intake: dict[str, Any] | None = None
            ) -> FinalGrade:
    """The final grade of ``student``: missing without a result, else the result with the
    course file's adjustments and late rule applied. ``intake`` is what the download said
    about the file (``submitted``, ``late``, ``mtime``)."""
    rules = course.rules(assignment)
    deadline = rules.deadline_for(student.id)
    if result is None:
        return FinalGrade(student, assignment, "missing", None, max_score,
                          deadline=_iso(deadline))
    adjustments = course.adjustments_for(student.id, assignment)
    tests = _adjusted_tests(result, adjustments)
    submitted, notes = _submitted(student.id, course, rules, intake or {})
    days = rules.late.days_late(submitted, deadline) if submitted and deadline else 0
    flagged_late = bool((intake or {}).get("late")) and submitted is None
    if flagged_late:
        notes = (*notes, "the LMS marked this submission late without its time; no penalty "
                         "applied (give its time under submitted in the course file)")
    penalty = rules.late.penalty(days)
    base = _Common(student=student, assignment=assignment, max_score=result.max_score or max_score,
                tests=tests, submission=result.submission, submitted=_iso(submitted),
                deadline=_iso(deadline), late_days=days, penalty=penalty,
                adjustments=adjustments, notes=notes)
    if result.error and not adjustments:
        return FinalGrade(status="ungradable", score=None, **base)
    total = sum(t.score for t in tests) + sum(a.points for a in adjustments if a.test is None)
    score = round(max(0.0, total) * (1 - penalty), 6) if math.isfinite(total) else None
    return FinalGrade(status=_status(result, adjustments, days, flagged_late), score=score,
                      raw_score=None if result.error else result.score, **base)


def _adjusted_tests(result: SubmissionResult, adjustments: tuple[Adjustment, ...]
                    ) -> tuple[TestGrade, ...]:
    names = {t.name for t in result.tests}
    for adjustment in adjustments:
        if adjustment.test is not None and adjustment.test not in names:
            raise GraderError(f"course file: the adjustment for {adjustment.student} names the "
                              f"test {adjustment.test!r}, which {result.assignment} does not "
                              f"have; tests: {', '.join(sorted(names))}")
    grades = []
    for test in result.tests:
        extra = sum(a.points for a in adjustments if a.test == test.name)
        # a NaN or infinite score (never expected) stays no grade: clamping would make it a 0
        score = (min(test.max_score, max(0.0, test.score + extra)) if math.isfinite(test.score)
                 else math.nan)
        grades.append(TestGrade(test.name, round(score, 6), test.max_score, extra != 0))
    return tuple(grades)


def _status(result: SubmissionResult, adjustments: tuple[Adjustment, ...], days: int,
            flagged_late: bool) -> str:
    """A test waiting for review stays so until an adjustment on it says the instructor
    looked; then late, then graded."""
    looked = {a.test for a in adjustments}
    if any(t.status == "review" and t.name not in looked for t in result.tests):
        return "needs review"
    return "late" if days > 0 or flagged_late else "graded"


def _submitted(student: str, course: Course, rules: Rules, intake: dict[str, Any]
               ) -> tuple[datetime | None, tuple[str, ...]]:
    """When the file was handed in, if we know: the LMS's file name, the course file, or the
    file's modification time where the course file allows it (and then says so)."""
    if intake.get("submitted"):
        return course.when(intake["submitted"]), ()
    if student in rules.submitted:
        return rules.submitted[student], ()
    if course.file_times and intake.get("mtime"):
        return course.when(intake["mtime"]), ("submission time taken from the file's "
                                              "modification time",)
    return None, ()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
