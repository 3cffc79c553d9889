"""Gradebooks out: ``grades.csv`` and the upload files of Canvas and Moodle, and the one count.

Every number an instructor reads about the class (the CLI summary, the overview, these files)
comes from :class:`Counts` over the same final grades, so they cannot disagree: *graded*
counts every submission with a score (late and waiting-for-review ones too), the mean is
theirs, ungradable and missing submissions are counted apart and never averaged in.

The upload formats follow what each LMS documents for its import:

- **Canvas** gradebook import: ``Student, ID, SIS User ID, SIS Login ID, Section`` then one
  column per assignment titled ``Assignment Name (assignment id)``; Canvas matches rows by
  ``ID`` (its user id) or the SIS columns. An empty cell leaves Canvas's grade as it is.
- **Moodle** offline grading worksheet (assignment → "Upload grading worksheet"):
  ``Identifier, Full name, Email address, Status, Grade, Maximum Grade, Grade can be changed,
  Last modified (submission), Last modified (grade)``; Moodle matches rows by ``Identifier``
  (``Participant 123456``), so students without a Moodle id are left out. Its importer reads
  ``Identifier``, ``Grade`` and ``Last modified (grade)``, and a feedback plugin's column
  (``Feedback comments``) only where the file has one, which then replaces what the
  instructors wrote there: the worksheet has none, so their comments stay as they are (the
  student's page carries the grader's feedback).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

from grader.core.results import number
from grader.course.final import FinalGrade

# Spreadsheets run cells that start with these as formulas ("CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
GRADES_HEADER = ["id", "name", "email", "section", "score", "max_score", "status", "late_days",
                 "late_penalty_percent", "adjustment", "submission", "submitted"]
CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_HEADER = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                 "Grade can be changed", "Last modified (submission)", "Last modified (grade)"]


@dataclass(frozen=True)
class Counts:
    """The class in numbers; every report says exactly these."""

    students: int
    graded: int
    late: int
    review: int
    ungradable: int
    missing: int
    mean: float | None
    max_score: float

    @classmethod
    def of(cls, finals: Sequence[FinalGrade]) -> Counts:
        scored = [f for f in finals if f.counted]
        status = [f.status for f in finals]
        mean = round(sum(f.score or 0.0 for f in scored) / len(scored), 6) if scored else None
        return cls(students=len(finals), graded=len(scored), late=status.count("late"),
                   review=status.count("needs review"), ungradable=status.count("ungradable"),
                   missing=status.count("missing"), mean=mean,
                   max_score=max((f.max_score for f in finals), default=0.0))

    def line(self) -> str:
        """The sentence the CLI prints and the overview shows."""
        mean = (f"{number(self.mean)}/{number(self.max_score)}" if self.mean is not None
                else "none")
        extra = [f"{n} {label}" for n, label in ((self.late, "late"),
                                                 (self.review, "needing review")) if n]
        inner = f" ({', '.join(extra)})" if extra else ""
        return (f"{self.students} students: {self.graded} graded{inner}, {self.ungradable} "
                f"ungradable, {self.missing} missing; mean of the {self.graded} graded {mean}")


def grades_csv(finals: Sequence[FinalGrade], tests: Sequence[str]) -> str:
    """One row per student: who, the final score, status, lateness, adjustments, one column per
    test (adjusted scores). Missing and ungradable rows have empty scores."""
    rows = [[*GRADES_HEADER, *tests]]
    for f in finals:
        by_test = {t.name: t.score for t in f.tests}
        total = sum(a.points for a in f.adjustments)
        rows.append([f.student.id, f.student.name, f.student.email, f.student.section,
                     number(f.score), number(f.max_score), f.status, str(f.late_days),
                     number(f.penalty * 100), number(total) if f.adjustments else "",
                     f.submission, f.submitted or "",
                     *(number(by_test.get(t)) if f.score is not None else "" for t in tests)])
    return _csv(rows)


def canvas_csv(finals: Sequence[FinalGrade], column: str) -> str:
    """Canvas's gradebook import: ``column`` is ``Assignment Name (assignment id)`` as the
    course file's ``canvas_column`` gives it (from a Canvas gradebook export)."""
    rows = [[*CANVAS_HEADER, column]]
    for f in finals:
        s = f.student
        rows.append([s.name, s.canvas_id, s.sis_id, s.login or s.email, s.section,
                     number(f.score)])
    return _csv(rows)


def moodle_csv(finals: Sequence[FinalGrade]) -> str:
    """Moodle's grading worksheet, for the students with a Moodle participant id: grades
    only, never a feedback comment that would replace the instructors' own."""
    rows = [MOODLE_HEADER]
    for f in finals:
        if not f.student.moodle_id:
            continue
        status = "No submission" if f.status == "missing" else "Submitted for grading"
        rows.append([f"Participant {f.student.moodle_id}", f.student.name, f.student.email,
                     status, number(f.score), number(f.max_score), "Yes",
                     f.submitted or "", ""])
    return _csv(rows)


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([_defused(cell) for cell in row])
    return buffer.getvalue()


def _defused(cell: str) -> str:
    """Text a spreadsheet would run as a formula gets an apostrophe; numbers stay numbers."""
    if cell.startswith(_FORMULA_STARTS) and not _is_number(cell):
        return "'" + cell
    return cell


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
