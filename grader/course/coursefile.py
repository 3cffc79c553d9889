"""The instructor's course file: deadlines, extensions, the late rule and manual adjustments.

One TOML file (``--course course.toml``, remembered by the output folder) that lives beside
the results and survives every regrade: nothing in it touches a stored result; the final
grades are computed from results and this file each time (``grader.course.final``). It is read
by the rubric's machinery (``grader.core.schema``) against the keys below: an unknown key, an
unknown assignment or a value of the wrong type is reported with the key named and a "did you
mean", every problem of the file at once. The students it names are resolved against the
roster (``resolve``): any identifier the roster holds will do, and one that is nobody's, or
more than one student's, stops too, since its extension or adjustment would otherwise reach
nobody. ``docs/course.md`` is generated from the same keys (``reference_markdown``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from grader.core import paths, schema
from grader.core.errors import GraderError
from grader.core.files import write_atomic
from grader.core.schema import REQUIRED, Key, Problems, ProblemsError, did_you_mean
from grader.course.roster import IDENTIFIERS, Student, identifiers, lookup


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


# --------------------------------------------------------------------------- the keys


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GraderError(f"{where} must be a number (got {value!r})")
    return float(value)


# Ten years, in days and in minutes: any real extension or grace period is far shorter, and a
# larger one would overflow the dates it is added to.
MAX_DAYS = 3650
MAX_MINUTES = MAX_DAYS * 24 * 60


def _within(limit: float, unit: str) -> Callable[[Any, str], float]:
    """A finite number of ``unit`` no larger than ``limit`` either way."""

    def parse(value: Any, where: str) -> float:
        number = _finite(value, where)
        if abs(number) > limit:
            raise GraderError(f"{where} must be at most {limit:,.0f} {unit} (got {value!r})")
        return number

    return parse


def _fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise GraderError(f"{where} must be a fraction of the score between 0 and 1, e.g. 0.1 "
                          f"for 10% per day (got {value!r})")
    return float(value)


def _zone(value: Any, where: str) -> str:
    try:
        ZoneInfo(schema.string(value, where))
    except (ZoneInfoNotFoundError, ValueError, OSError):  # ("Europe" is a folder of zones)
        hint = did_you_mean(value, available_timezones())
        raise GraderError(f"{where} must be a time zone such as 'Europe/Berlin', "
                          f"'America/New_York' or 'UTC' (got {value!r}){hint}") from None
    return str(value)


_DATE_TIME = "a date-time such as 2026-11-20T23:59:00"


def _moment(value: Any, where: str) -> datetime:
    """A TOML date-time (with or without offset), a date (its end: 23:59:59) or ISO text; one
    without an offset is read in the course's time zone later (``_aware``)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            pass
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(23, 59, 59))
    raise GraderError(f"{where} must be {_DATE_TIME} (got {value!r})")


def _extension(value: Any, where: str) -> float | datetime:
    """Days after the assignment's deadline, or a new deadline."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _within(MAX_DAYS, "days")(value, where)
    try:
        return _moment(value, where)
    except GraderError:
        raise GraderError(f"{where} must be a number of days or {_DATE_TIME} "
                          f"(got {value!r})") from None


def _entries(parser: schema.Parser) -> schema.Parser:
    """A table of students (or assignments) to values, each parsed by ``parser`` at
    ``where.name``; every bad entry reported."""

    def parse(value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise GraderError(f"{where} must be a table (got {value!r})")
        problems = Problems()
        parsed = {name: problems.parse(parser, v, schema.key_path(where, name))
                  for name, v in value.items()}
        problems.raise_any()
        return parsed

    return parse


def _given(value: Any, keys: Sequence[Key], where: str) -> dict[str, Any]:
    """The keys a table gives, parsed; every problem of it reported (``ProblemsError``). The
    keys left out are left out: the typed values (``LateRule``…) hold the defaults."""
    if not isinstance(value, dict):
        raise GraderError(f"{where} must be a table (got {value!r})")
    problems = Problems()
    parsed = schema.parse_table(value, keys, where, problems, dotted=True, elsewhere=_HOMES)
    problems.raise_any()
    return {k: v for k, v in parsed.items() if k in value}


def _late(value: Any, where: str) -> LateRule:
    return LateRule(**_given(value, LATE_KEYS, where))


def _assignment(value: Any, where: str) -> dict[str, Any]:
    return _given(value, ASSIGNMENT_KEYS, where)


def _adjustments(value: Any, where: str) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        raise GraderError(f"{where} must be a list of tables, one [[adjustments]] each "
                          f"(got {value!r})")
    problems = Problems()
    parsed = tuple(problems.parse(_adjustment, a, f"{where}[{i}]") for i, a in enumerate(value))
    problems.raise_any()
    return parsed


def _adjustment(value: Any, where: str) -> dict[str, Any]:
    return _given(value, ADJUSTMENT_KEYS, where)


LATE_KEYS = (
    Key("per_day", "number in [0, 1]", LateRule.per_day,
        "The fraction of the score taken for each day or started day late: `0.1` is 10% per "
        "day.", _fraction),
    Key("zero_after_days", "integer ≥ 0", "—",
        "After this many days late, all of the score is taken.",
        schema.number(0, integer=True)),
    Key("grace_minutes", "number", LateRule.grace_minutes,
        "A submission within this many minutes after the deadline is on time.",
        _within(MAX_MINUTES, "minutes")),
)

ASSIGNMENT_KEYS = (
    Key("deadline", "date-time", "—",
        "When the assignment is due. Without it, nothing of the assignment is late.", _moment),
    Key("late", "table", "[late]",
        "This assignment's own late rule (the keys of `[late]`), in place of the file's: a key "
        "it leaves out takes that key's default, not the file's.", _late),
    Key("extensions", "table of students", "{}",
        "A student's new deadline: a number of days after `deadline`, or a date-time, e.g. "
        "`{ s042 = 2, s077 = 2026-11-27T12:00:00 }`.", _entries(_extension)),
    Key("submitted", "table of students", "{}",
        "When a student submitted, where the file names do not say (a Canvas late mark "
        "without its time, a file handed in by mail), e.g. "
        "`{ s013 = 2026-11-21T09:30:00 }`.", _entries(_moment)),
    Key("canvas_column", "string", Rules.canvas_column,
        "The assignment's column in Canvas's gradebook, `Assignment Name (assignment id)` as "
        "a Canvas gradebook export heads it, e.g. `\"Backprop (48213)\"`: the column "
        "`canvas.csv` fills (empty: the assignment's name).", schema.text),
)

ADJUSTMENT_KEYS = (
    Key("student", "string", REQUIRED,
        "Who: any identifier the roster holds (see [Students](#students)).", schema.string),
    Key("assignment", "string", "—",
        "The assignment it is for; without it, every assignment.", schema.string),
    Key("test", "string", "—",
        "The test whose score it changes (one of the assignment's rubric); without it, the "
        "total.", schema.string),
    Key("points", "number", REQUIRED,
        "Added to the test's score (it stays between 0 and the test's points) or to the "
        "total; negative takes away.", _finite),
    Key("comment", "string", REQUIRED, "Why: the student's page shows it.", schema.string),
    Key("by", "string", REQUIRED, "Who decided it: the student's page shows it.",
        schema.string),
)

TOP_KEYS = (
    Key("timezone", "time zone", Course.timezone,
        "The time zone of every time written without an offset, in this file and in the LMS's "
        "file names (Brightspace's among them), e.g. `\"Europe/Berlin\"`.", _zone),
    Key("file_times", "boolean", Course.file_times,
        "`true`: a plain file's modification time is its submission time.", schema.boolean),
    Key("late", "table", "no penalty",
        "The late rule of every assignment without its own (`[late]` below).", _late),
    Key("assignments", "table", "{}",
        "One table per assignment, by its name (`[assignments.NAME]` below): the name of a "
        "rubric in `solutions/`.", _entries(_assignment)),
    Key("adjustments", "list of tables", "[]",
        "Manual changes to a score, one `[[adjustments]]` table each (below).", _adjustments),
)

# Where each key belongs, for one written in the wrong table (``per_day`` at the top).
_HOMES = {
    **{k.name: "[assignments.NAME]" for k in ASSIGNMENT_KEYS},
    **{k.name: "[[adjustments]]" for k in ADJUSTMENT_KEYS},
    **{k.name: "[late] or [assignments.NAME.late]" for k in LATE_KEYS},
    **{k.name: "the top of the file" for k in TOP_KEYS},
    "late": "the top of the file or [assignments.NAME]",
}


# --------------------------------------------------------------------------- reading


def load(path: Path, *, assignments: Collection[str] | None = None) -> Course:
    """Read and check a course file; raises ``GraderError`` (``ProblemsError``: every problem
    of the file, one line each) naming the file and the key. ``assignments``: the names it may
    use (default: every rubric in ``solutions/``)."""
    if assignments is None:
        from grader.checks import rubric

        assignments = rubric.available()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise GraderError(f"cannot read the course file {path}: {exc}") from None
    problems = Problems()
    homes = {**_HOMES, **{name: f"[assignments.{name}]" for name in assignments}}
    given = schema.parse_table(data, TOP_KEYS, "", problems, dotted=True, elsewhere=homes)
    _check_assignments(data, assignments, problems)
    if problems.lines:
        raise ProblemsError([f"{path}: {line}" for line in problems.lines])
    return _course({k: v for k, v in given.items() if k in data}, str(path))


def _check_assignments(data: dict[str, Any], known: Collection[str], problems: Problems) -> None:
    """What no single key can say: the assignments named must have rubrics (a misspelt one
    would take its deadline, late rule or adjustment away from the real one without a word),
    and days of extension need a deadline to count from."""
    tables = data.get("assignments")
    for name, table in tables.items() if isinstance(tables, dict) else ():
        _known_assignment(name, f"assignments.{name}", known, problems)
        if not isinstance(table, dict) or "deadline" in table:
            continue
        extensions = table.get("extensions")
        for student, value in extensions.items() if isinstance(extensions, dict) else ():
            if isinstance(value, int | float) and not isinstance(value, bool):
                problems.add(f"assignments.{name}.extensions.{student}: days of extension "
                             f"need the assignment's deadline")
    adjustments = data.get("adjustments")
    for i, adjustment in enumerate(adjustments if isinstance(adjustments, list) else ()):
        name = adjustment.get("assignment") if isinstance(adjustment, dict) else None
        if isinstance(name, str) and name:
            _known_assignment(name, f"adjustments[{i}].assignment", known, problems)


def _known_assignment(name: str, where: str, known: Collection[str], problems: Problems) -> None:
    if name not in known:
        problems.add(f"{where}: unknown assignment {name!r}{did_you_mean(name, known)}; "
                     f"known: {', '.join(sorted(known)) or 'none'}")


def _course(given: dict[str, Any], source: str) -> Course:
    """The checked values as a ``Course``: times read in its time zone, days of extension
    counted from the deadline."""
    zone = given.get("timezone", Course.timezone)
    tz = ZoneInfo(zone)
    default = given.get("late", LateRule())
    return Course(
        timezone=zone,
        file_times=given.get("file_times", Course.file_times),
        assignments={name: _rules(table, default, tz)
                     for name, table in given.get("assignments", {}).items()},
        adjustments=tuple(Adjustment(student=a["student"], assignment=a.get("assignment"),
                                     test=a.get("test"), points=a["points"],
                                     comment=a["comment"], by=a["by"])
                          for a in given.get("adjustments", ())),
        source=source,
    )


def _rules(given: dict[str, Any], default: LateRule, tz: ZoneInfo) -> Rules:
    deadline = _aware(given["deadline"], tz) if "deadline" in given else None

    def extended(value: float | datetime) -> datetime:
        if isinstance(value, datetime):
            return _aware(value, tz)
        assert deadline is not None  # (``_check_assignments``)
        return deadline + timedelta(days=value)

    return Rules(
        deadline=deadline,
        late=given.get("late", default),
        extensions={s: extended(v) for s, v in given.get("extensions", {}).items()},
        submitted={s: _aware(v, tz) for s, v in given.get("submitted", {}).items()},
        canvas_column=given.get("canvas_column", Rules.canvas_column),
    )


def _aware(moment: datetime, tz: ZoneInfo) -> datetime:
    """A time without an offset, in the course's time zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


# --------------------------------------------------------------------------- students


def resolve(course: Course, students: Sequence[Student], *, roster: bool,
            assignment: str | None = None, tests: Collection[str] = ()) -> Course:
    """The course file with every student it names written as their ``id``, which results
    and final grades go by; ``ProblemsError`` names the key of each name that is nobody's or
    more than one student's, and of each adjustment's test that ``assignment`` lacks
    (``tests``): every problem at once, as ``load`` reports the file's.

    With a ``roster`` the class is known, so every entry is checked, whatever its
    assignment. Without one, ``students`` are those graded in this folder, so only
    ``assignment``'s entries are: another assignment's belong to its own folder."""
    names = _Names(tuple(students), roster)

    def applies(name: str | None) -> bool:
        return roster or assignment is None or name in (None, assignment)

    problems = Problems()
    rules = {name: _resolved_rules(r, f"assignments.{name}", names, problems)
             if applies(name) else r for name, r in course.assignments.items()}
    adjustments = tuple(_resolved_adjustment(a, f"adjustments[{i}]", names, problems)
                        if applies(a.assignment) else a
                        for i, a in enumerate(course.adjustments))
    if assignment is not None and tests:
        _check_tests(adjustments, assignment, tests, problems)
    if problems.lines:
        raise ProblemsError([f"{course.source}: {line}" if course.source else line
                             for line in problems.lines])
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


def _resolved_rules(rules: Rules, where: str, names: _Names, problems: Problems) -> Rules:
    return dataclasses.replace(
        rules, extensions=_by_id(rules.extensions, f"{where}.extensions", names, problems),
        submitted=_by_id(rules.submitted, f"{where}.submitted", names, problems))


def _resolved_adjustment(adjustment: Adjustment, where: str, names: _Names,
                         problems: Problems) -> Adjustment:
    try:
        student = names.id_of(adjustment.student, f"{where}.student")
    except GraderError as exc:
        hint = ("; without assignment, an adjustment is for every assignment: give its own"
                if adjustment.assignment is None and not names.roster else "")
        problems.add(f"{exc}{hint}")
        return adjustment
    return dataclasses.replace(adjustment, student=student)


def _by_id(table: dict[str, datetime], where: str, names: _Names,
           problems: Problems) -> dict[str, datetime]:
    """``table`` keyed by student id; two keys for one student would let one silently win."""
    resolved: dict[str, datetime] = {}
    written: dict[str, str] = {}
    for key, value in table.items():
        try:
            student = names.id_of(key, f"{where}.{key}")
        except GraderError as exc:
            problems.add(str(exc))
            continue
        if student in written:
            problems.add(f"{where}: {written[student]!r} and {key!r} are the same student "
                         f"({student}); keep one")
            continue
        resolved[student], written[student] = value, key
    return resolved


def _check_tests(adjustments: Sequence[Adjustment], assignment: str,
                 tests: Collection[str], problems: Problems) -> None:
    """An adjustment on a test the rubric does not have would change nothing."""
    for i, a in enumerate(adjustments):
        if a.test is None or a.assignment not in (None, assignment) or a.test in tests:
            continue
        hint = ("; without assignment, an adjustment is for every assignment: give its own"
                if a.assignment is None else "")
        problems.add(f"adjustments[{i}].test: {assignment} has no test {a.test!r}"
                     f"{did_you_mean(a.test, tests)}{hint}")


# --------------------------------------------------------------------------- the written reference


DOCS = paths.PROJECT_ROOT / "docs" / "course.md"


def write_docs(path: Path = DOCS) -> Path:
    """docs/course.md from the keys."""
    write_atomic(path, reference_markdown())
    return path


def reference_markdown() -> str:
    """docs/course.md, generated from the keys (a test keeps the file equal to this)."""
    parts = [_DOC_HEAD]
    parts += schema.doc_table("The top level", TOP_KEYS, "Every key is optional.")
    parts += schema.doc_table("[late]", LATE_KEYS, _DOC_LATE)
    parts += schema.doc_table("[assignments.NAME]", ASSIGNMENT_KEYS, _DOC_ASSIGNMENTS)
    parts += schema.doc_table("[[adjustments]]", ADJUSTMENT_KEYS, _DOC_ADJUSTMENTS)
    parts.append(_DOC_TAIL)
    return "\n".join(parts)


_DOC_HEAD = """\
# The course file

<!-- Generated from the keys in grader/course/coursefile.py by
`python -m grader validate --write-docs`; tests/test_course.py fails when this file differs
from what the keys generate. -->

The course file, `course.toml`, holds what a course decides beyond the rubrics: deadlines, the
late rule, extensions, submission times the LMS does not give, and manual adjustments. Give it
to `grade` or `gradebook` with `--course course.toml`; the output folder remembers it. Nothing
in it changes a stored result: final grades are computed from the results and this file each
time, so it survives every regrade.

It is read as strictly as a rubric: every key below is known, so an unknown key, an assignment
without a rubric (`[assignments.backprob]`) or a value of the wrong type stops with exit 2,
naming the key with a "did you mean", and every problem of the file is reported at once, one
line each.

```toml
timezone = "Europe/Berlin"   # for times without an offset, Brightspace's among them
file_times = false           # true: a plain file's modification time is its submission time

[late]                       # for every assignment; [assignments.NAME.late] overrides it
per_day = 0.10               # fraction of the score taken per day or started day late
zero_after_days = 5          # all of it after this many days
grace_minutes = 10

[assignments.backprop]
deadline = 2026-11-20T23:59:00
canvas_column = "Backprop (48213)"
extensions = { s042 = 2, s077 = 2026-11-27T12:00:00 }   # days, or a new deadline
submitted = { s013 = 2026-11-21T09:30:00 }              # when the file names do not say

[[adjustments]]              # per test (with test) or on the total (without)
student = "s042"
assignment = "backprop"
test = "dense_backward: gradient check"
points = 1.5                 # added; negative takes away
comment = "Your dW is right; the check tripped on your float32 cast"
by = "Dr. Lee"
```
"""

_DOC_LATE = """\
The late rule of every assignment without its own. A submission's days late are counted from
its deadline (a student's extension, if any) plus `grace_minutes`, each started day a whole
one."""

_DOC_ASSIGNMENTS = """\
One table per assignment, `NAME` being its rubric's (`solutions/NAME.toml`)."""

_DOC_ADJUSTMENTS = """\
A manual change to one student's score, with why and by whom; one table each. Adjustments
correct the score first (a test stays between 0 and its points), then the late penalty takes
its share; a test waiting for review stays *needs review* until an adjustment on it."""

_DOC_TAIL = """\
## Times

A date-time is written as TOML writes one (`2026-11-20T23:59:00`, with or without an offset
such as `+01:00`) or as the same text in quotes; one without an offset is in `timezone`. A
TOML date alone (`2026-11-20`, unquoted) means the end of that day, 23:59:59.

A submission's time comes from the LMS's file name (Brightspace), else `submitted`, else the
file's modification time where `file_times = true`. Canvas marks late files without a time:
they are *late* with no penalty until `submitted` gives the time.

## Students

A student is named, in `extensions`, `submitted` and an adjustment's `student`, by any
identifier the roster holds: id, SIS id, login, email, Canvas id or Moodle id (with a Canvas
gradebook export as the roster, results are named by Canvas's `ID`, and `s042` above is a
`SIS User ID`); without a roster, by the name of their result. A name that is nobody's or more
than one student's stops with exit 2, naming the key with a "did you mean", and so does an
adjustment's `test` that the rubric does not have: neither would change anyone's grade. With
a roster, names are checked before any notebook runs.
"""
