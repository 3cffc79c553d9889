"""The instructor's course file: deadlines, extensions, the late rule and manual adjustments.

One TOML file (``--course course.toml``, remembered by the output folder) that lives beside
the results and survives every regrade: nothing in it touches a stored result; the final
grades are computed from results and this file each time (``grader.course.final``). Read strictly:
an unknown key, an unknown assignment or a value of the wrong type stops with the key named
and a "did you mean". The students it names are resolved against the roster (``resolve``):
any identifier the roster holds will do, and one that is nobody's, or more than one
student's, stops too, since its extension or adjustment would otherwise reach nobody. The
format is in the README ("The course file").
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from grader.core.errors import GraderError
from grader.course.roster import IDENTIFIERS, Student, identifiers, lookup

TOP_KEYS = {"timezone", "file_times", "late", "assignments", "adjustments"}
LATE_KEYS = {"per_day", "zero_after_days", "grace_minutes"}
ASSIGNMENT_KEYS = {"deadline", "late", "extensions", "submitted", "canvas_column"}
ADJUSTMENT_KEYS = {"student", "assignment", "test", "points", "comment", "by"}


@dataclass(frozen=True)
class LateRule:
    """``per_day`` of the score is taken for each day or started day late, all of it after
    ``zero_after_days``; a submission within ``grace_minutes`` of the deadline is on time."""

    per_day: float = 0.0
    zero_after_days: int | None = None
    grace_minutes: float = 0.0

    def days_late(self, submitted: datetime, deadline: datetime) -> int:
        over = submitted - deadline - timedelta(minutes=self.grace_minutes)
        return max(0, math.ceil(over / timedelta(days=1)))

    def penalty(self, days: int) -> float:
        """The fraction of the score taken for ``days`` days late."""
        if days <= 0:
            return 0.0
        if self.zero_after_days is not None and days > self.zero_after_days:
            return 1.0
        return min(1.0, round(self.per_day * days, 6))


@dataclass(frozen=True)
class Adjustment:
    """A manual change by an instructor: ``points`` added to one test (or to the total when
    ``test`` is None), with why and who."""

    student: str
    assignment: str | None
    test: str | None
    points: float
    comment: str
    by: str

    def text(self) -> str:
        where = f"on {self.test}" if self.test else "on the total"
        return f"{self.points:+g} {where} by {self.by}: {self.comment}"


@dataclass(frozen=True)
class Rules:
    """What applies to one assignment."""

    deadline: datetime | None = None
    late: LateRule = LateRule()
    extensions: dict[str, datetime] = field(default_factory=dict)
    submitted: dict[str, datetime] = field(default_factory=dict)
    canvas_column: str = ""

    def deadline_for(self, student: str) -> datetime | None:
        return self.extensions.get(student, self.deadline)


@dataclass(frozen=True)
class Course:
    timezone: str = "UTC"
    file_times: bool = False
    assignments: dict[str, Rules] = field(default_factory=dict)
    adjustments: tuple[Adjustment, ...] = ()
    source: str = ""

    def rules(self, assignment: str) -> Rules:
        return self.assignments.get(assignment, Rules())

    def adjustments_for(self, student: str, assignment: str) -> tuple[Adjustment, ...]:
        return tuple(a for a in self.adjustments
                     if a.student == student and a.assignment in (None, assignment))

    def when(self, text: str) -> datetime:
        """An ISO time from an LMS name: without an offset, in the course's time zone."""
        return _aware(datetime.fromisoformat(text), ZoneInfo(self.timezone))


NO_COURSE = Course()


def load(path: Path, *, assignments: Collection[str] | None = None) -> Course:
    """Read and check a course file; raises ``GraderError`` naming the file and the key.
    ``assignments``: the names it may use (default: every rubric in ``solutions/``)."""
    if assignments is None:
        from grader.checks import rubric

        assignments = rubric.available()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise GraderError(f"cannot read the course file {path}: {exc}") from None
    try:
        return _course(data, str(path), assignments)
    except GraderError as exc:
        raise GraderError(f"{path}: {exc}") from None


def _course(data: dict[str, Any], source: str, known: Collection[str]) -> Course:
    _known(data, TOP_KEYS, "")
    zone = _text(data.get("timezone", "UTC"), "timezone")
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise GraderError(f"timezone: unknown time zone {zone!r} (e.g. 'Europe/Berlin', "
                          f"'America/New_York', 'UTC')") from None
    default = _late(data.get("late", {}), "late")
    assignments = _table(data.get("assignments", {}), "assignments")
    for name in assignments:
        _assignment(name, f"assignments.{name}", known)
    adjustments = data.get("adjustments", [])
    if not isinstance(adjustments, list):
        raise GraderError("adjustments: must be a list of tables ([[adjustments]])")
    return Course(
        timezone=zone,
        file_times=_flag(data.get("file_times", False), "file_times"),
        assignments={name: _rules(rules, f"assignments.{name}", default, tz)
                     for name, rules in assignments.items()},
        adjustments=tuple(_adjustment(a, f"adjustments[{i}]", known)
                          for i, a in enumerate(adjustments)),
        source=source,
    )


def _assignment(name: str, where: str, known: Collection[str]) -> str:
    """An assignment the grader has a rubric for: a misspelt one would take its deadline,
    late rule or adjustment away from the real one without a word."""
    if name not in known:
        raise GraderError(f"{where}: unknown assignment {name!r}{_did_you_mean(name, known)}; "
                          f"known: {', '.join(sorted(known)) or 'none'}")
    return name


def _rules(data: Any, where: str, default: LateRule, tz: ZoneInfo) -> Rules:
    data = _table(data, where)
    _known(data, ASSIGNMENT_KEYS, where)
    deadline = data.get("deadline")
    return Rules(
        deadline=_time(deadline, f"{where}.deadline", tz) if deadline is not None else None,
        late=_late(data["late"], f"{where}.late") if "late" in data else default,
        extensions={str(s): _extension(v, f"{where}.extensions.{s}", deadline, tz)
                    for s, v in _table(data.get("extensions", {}), f"{where}.extensions").items()},
        submitted={str(s): _time(v, f"{where}.submitted.{s}", tz)
                   for s, v in _table(data.get("submitted", {}), f"{where}.submitted").items()},
        canvas_column=_text(data.get("canvas_column", ""), f"{where}.canvas_column"),
    )


def _extension(value: Any, where: str, deadline: Any, tz: ZoneInfo) -> datetime:
    """An extension is a number of days after the deadline, or a new deadline."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if deadline is None:
            raise GraderError(f"{where}: days of extension need the assignment's deadline")
        return _time(deadline, where, tz) + timedelta(days=float(value))
    return _time(value, where, tz)


def _late(data: Any, where: str) -> LateRule:
    data = _table(data, where)
    _known(data, LATE_KEYS, where)
    per_day = _number(data.get("per_day", 0.0), f"{where}.per_day")
    if not 0 <= per_day <= 1:
        raise GraderError(f"{where}.per_day: a fraction of the score between 0 and 1 "
                          f"(0.1 is 10% per day), not {per_day}")
    zero = data.get("zero_after_days")
    if zero is not None and (not isinstance(zero, int) or isinstance(zero, bool) or zero < 0):
        raise GraderError(f"{where}.zero_after_days: a whole number of days, not {zero!r}")
    grace = _number(data.get("grace_minutes", 0.0), f"{where}.grace_minutes")
    return LateRule(per_day=per_day, zero_after_days=zero, grace_minutes=grace)


def _adjustment(data: Any, where: str, known: Collection[str]) -> Adjustment:
    data = _table(data, where)
    _known(data, ADJUSTMENT_KEYS, where)
    for key in ("student", "points", "comment", "by"):
        if key not in data:
            raise GraderError(f"{where}.{key}: missing (every adjustment says who, how many "
                              f"points, why and by whom)")
    comment = _text(data["comment"], f"{where}.comment")
    by = _text(data["by"], f"{where}.by")
    if not comment.strip() or not by.strip():
        raise GraderError(f"{where}: comment and by must not be empty")
    test = data.get("test")
    assignment = data.get("assignment")
    return Adjustment(
        student=_text(data["student"], f"{where}.student"),
        assignment=(_assignment(_text(assignment, f"{where}.assignment"),
                                f"{where}.assignment", known)
                    if assignment is not None else None),
        test=_text(test, f"{where}.test") if test is not None else None,
        points=_number(data["points"], f"{where}.points"),
        comment=comment,
        by=by,
    )


# --------------------------------------------------------------------------- students


def resolve(course: Course, students: Sequence[Student], *, roster: bool,
            assignment: str | None = None, tests: Collection[str] = ()) -> Course:
    """The course file with every student it names written as their ``id``, which results
    and final grades go by; ``GraderError`` names the key of a name that is nobody's or more
    than one student's, and of an adjustment's test that ``assignment`` lacks (``tests``).

    With a ``roster`` the class is known, so every entry is checked, whatever its
    assignment. Without one, ``students`` are those graded in this folder, so only
    ``assignment``'s entries are: another assignment's belong to its own folder."""
    names = _Names(tuple(students), roster)

    def applies(name: str | None) -> bool:
        return roster or assignment is None or name in (None, assignment)

    try:
        rules = {name: _resolved_rules(r, f"assignments.{name}", names) if applies(name) else r
                 for name, r in course.assignments.items()}
        adjustments = tuple(_resolved_adjustment(a, f"adjustments[{i}]", names)
                            if applies(a.assignment) else a
                            for i, a in enumerate(course.adjustments))
        if assignment is not None and tests:
            _check_tests(adjustments, assignment, tests)
    except GraderError as exc:
        raise GraderError(f"{course.source}: {exc}" if course.source else str(exc)) from None
    return dataclasses.replace(course, assignments=rules, adjustments=adjustments)


@dataclass(frozen=True)
class _Names:
    """Who a course file may name: the roster's students, or without one those graded."""

    students: tuple[Student, ...]
    roster: bool

    def id_of(self, identifier: str, where: str) -> str:
        found = lookup(self.students, identifier)
        if len(found) == 1:
            return found[0][0].id
        if found:
            whose = ", ".join(f"{s.id} ({label})" for s, label in found)
            raise GraderError(f"{where}: {identifier!r} is an identifier of {len(found)} "
                              f"students: {whose}; name the one you mean by their id")
        raise GraderError(f"{where}: {identifier!r} is nobody {self._among()}"
                          f"{self._close(identifier)}")

    def _among(self) -> str:
        if self.roster:
            *others, last = IDENTIFIERS.values()
            return f"on the roster (name a student by their {', '.join(others)} or {last})"
        return ("graded in this folder (without a roster, a student is named as their "
                "result is; give --roster to name students by their ids)")

    def _close(self, identifier: str) -> str:
        known = identifiers(self.students)
        close = difflib.get_close_matches(identifier, list(known), n=1, cutoff=0.6)
        if not close:
            return ""
        student, label = known[close[0]]
        whose = f"{student.name} ({student.id})" if student.name else student.id
        return f"; did you mean {close[0]!r}, the {label} of {whose}?"


def _resolved_rules(rules: Rules, where: str, names: _Names) -> Rules:
    return dataclasses.replace(
        rules, extensions=_by_id(rules.extensions, f"{where}.extensions", names),
        submitted=_by_id(rules.submitted, f"{where}.submitted", names))


def _resolved_adjustment(adjustment: Adjustment, where: str, names: _Names) -> Adjustment:
    try:
        student = names.id_of(adjustment.student, f"{where}.student")
    except GraderError as exc:
        if adjustment.assignment is None and not names.roster:
            raise GraderError(f"{exc}; without assignment, an adjustment is for every "
                              f"assignment: give its own") from None
        raise
    return dataclasses.replace(adjustment, student=student)


def _by_id(table: dict[str, datetime], where: str, names: _Names) -> dict[str, datetime]:
    """``table`` keyed by student id; two keys for one student would let one silently win."""
    resolved: dict[str, datetime] = {}
    written: dict[str, str] = {}
    for key, value in table.items():
        student = names.id_of(key, f"{where}.{key}")
        if student in written:
            raise GraderError(f"{where}: {written[student]!r} and {key!r} are the same "
                              f"student ({student}); keep one")
        resolved[student], written[student] = value, key
    return resolved


def _check_tests(adjustments: Sequence[Adjustment], assignment: str,
                 tests: Collection[str]) -> None:
    """An adjustment on a test the rubric does not have would change nothing."""
    for i, a in enumerate(adjustments):
        if a.test is None or a.assignment not in (None, assignment) or a.test in tests:
            continue
        hint = ("; without assignment, an adjustment is for every assignment: give its own"
                if a.assignment is None else "")
        raise GraderError(f"adjustments[{i}].test: {assignment} has no test {a.test!r}"
                          f"{_did_you_mean(a.test, tests)}{hint}")


# --------------------------------------------------------------------------- value checks


def _did_you_mean(word: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _known(data: dict[str, Any], keys: set[str], where: str) -> None:
    for key in data:
        if key not in keys:
            prefix = f"{where}." if where else ""
            raise GraderError(f"{prefix}{key}: unknown key{_did_you_mean(key, keys)}; known: "
                              f"{', '.join(sorted(keys))}")


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GraderError(f"{where}: must be a table, not {type(value).__name__}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise GraderError(f"{where}: must be text, not {type(value).__name__}")
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise GraderError(f"{where}: must be true or false")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GraderError(f"{where}: must be a number, not {value!r}")
    return float(value)


def _time(value: Any, where: str, tz: ZoneInfo) -> datetime:
    """A TOML date-time (with or without offset), a date (its end: 23:59:59) or ISO text."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise GraderError(f"{where}: not a date-time: {value!r} (e.g. "
                              f"2026-11-20T23:59:00)") from None
    if isinstance(value, datetime):
        return _aware(value, tz)
    if isinstance(value, date):
        return datetime.combine(value, time(23, 59, 59), tz)
    raise GraderError(f"{where}: must be a date-time (e.g. 2026-11-20T23:59:00), "
                      f"not {value!r}")


def _aware(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)
