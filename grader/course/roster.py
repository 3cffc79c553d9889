"""The class list: who the students are, and the ids each LMS knows them by.

A roster is optional. With one, every submission is matched to a student on it, results are
named by the student's id, and a student without a submission shows as missing; without one,
students are named from their files as before.

The CSV is read leniently where that is safe (headers in any case, order or common spelling:
``ID``, ``Student ID``, ``Full name``, ``SIS Login ID``, a Canvas gradebook export as it is)
and strictly where it matters: an empty or repeated id stops with the row and column named.
Records are split by the ``csv`` module alone: a row ends at a line break outside quotes
(``\r``, ``\n``), never at the other breaks ``str.splitlines`` knows (U+2028, U+0085...),
which a student's display name may hold; those, and control characters, become spaces.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

from grader.core.errors import GraderError
from grader.core.paths import reserved


@dataclass(frozen=True)
class Student:
    """One student. ``id`` names their results; the rest are optional, for gradebooks and for
    matching LMS downloads (``canvas_id``: Canvas's numeric user id, the gradebook's ``ID``;
    ``moodle_id``: Moodle's participant number, as in ``Participant 123456``)."""

    id: str
    name: str = ""
    email: str = ""
    section: str = ""
    sis_id: str = ""
    login: str = ""
    canvas_id: str = ""
    moodle_id: str = ""


# field -> header spellings (compared lower-case, punctuation and spacing folded)
HEADERS: dict[str, tuple[str, ...]] = {
    "id": ("id", "student id", "student number", "matriculation number"),
    "name": ("name", "full name", "student name", "display name", "student"),
    "email": ("email", "email address", "e mail", "mail"),
    "section": ("section", "group", "class"),
    "sis_id": ("sis user id", "sis id", "sis_id", "org defined id", "orgdefinedid"),
    "login": ("sis login id", "login", "login id", "username", "user name"),
    "canvas_id": ("canvas id", "canvas user id", "canvas_id"),
    "moodle_id": ("moodle id", "participant", "participant id", "moodle participant id"),
}
FIRST_LAST = (("first name", "given name"), ("last name", "surname", "family name"))
MAX_ROWS = 100_000
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
# what becomes a space in a roster's cell: line and paragraph separators, control characters
UNPRINTABLE = ("Cc", "Zl", "Zp")


@dataclass(frozen=True)
class Roster:
    students: tuple[Student, ...]

    def __post_init__(self) -> None:
        _refuse_repeats(self.students)

    def get(self, student_id: str) -> Student | None:
        return next((s for s in self.students if s.id == student_id), None)


# The identifiers an instructor may name a student by (in the course file), as said in messages.
IDENTIFIERS = {"id": "id", "sis_id": "SIS id", "login": "login", "email": "email",
               "canvas_id": "Canvas id", "moodle_id": "Moodle id"}


def lookup(students: Iterable[Student], identifier: str) -> list[tuple[Student, str]]:
    """Every student ``identifier`` is an identifier of, each with which one (``'SIS id'``).

    An instructor writes whichever id is at hand (the SIS id from the registry, an email, the
    LMS's number) while results are named by the roster's ``id``, which in a Canvas gradebook
    export is Canvas's number. Emails compare without case; a student is listed once, under
    the first identifier that matches."""
    found = []
    for student in students:
        for name, label in IDENTIFIERS.items():
            value = getattr(student, name)
            if value and (value == identifier or name == "email"
                          and value.casefold() == identifier.casefold()):
                found.append((student, label))
                break
    return found


def identifiers(students: Iterable[Student]) -> dict[str, tuple[Student, str]]:
    """Each identifier of each student, with whose and which (for a "did you mean")."""
    known: dict[str, tuple[Student, str]] = {}
    for student in students:
        for name, label in IDENTIFIERS.items():
            value = getattr(student, name)
            if value:
                known.setdefault(value, (student, label))
    return known


def result_name(student_id: str) -> str:
    """The name of a student's result files: the id itself where it is safe as a file name
    (``s0042``), else a slug of it with a short hash (``ada_uni.edu-1a2b3c``, ``index-1bc04b``),
    so no id can reach outside the output folder, take a name the grader writes itself, and
    two ids never share files."""
    if SAFE_NAME.fullmatch(student_id) and not reserved(student_id):
        return student_id
    plain = unicodedata.normalize("NFKD", student_id).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", plain).strip("._-")[:60] or "student"
    return f"{slug}-{hashlib.sha256(student_id.encode('utf-8', 'surrogatepass')).hexdigest()[:6]}"


def load(path: Path) -> Roster:
    """Read a roster CSV (UTF-8, a BOM allowed, comma or semicolon separated)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise GraderError(f"cannot read the roster {path}: {exc}") from None
    rows = _records(text, path)
    if not rows:
        raise GraderError(f"{path}: the roster is empty; it needs a header row with an id column")
    if len(rows) > MAX_ROWS:
        raise GraderError(f"{path}: more than {MAX_ROWS} rows; a roster holds at most "
                          f"{MAX_ROWS}")
    columns = _columns(rows[0], path)
    found = [_student(row, columns, path, number) for number, row in
             enumerate(rows[1:], start=2) if any(cell.strip() for cell in row)]
    students = [s for s in found if s is not None]
    try:
        return Roster(tuple(students))
    except GraderError as exc:
        raise GraderError(f"{path}: {exc}") from None


def _records(text: str, path: Path) -> list[list[str]]:
    """The CSV's rows as the ``csv`` module reads a file opened with ``newline=''`` (a quoted
    cell may hold a line break; U+2028 and the like never end a row), each cell printable;
    one more than ``MAX_ROWS`` at most."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";" if _semicolons(text) else ",")
    try:
        rows = list(itertools.islice(reader, MAX_ROWS + 1))
    except csv.Error as exc:
        raise GraderError(f"{path}: line {reader.line_num} is not CSV the grader can read "
                          f"({exc})") from None
    return [[_printable(cell) for cell in row] for row in rows]


def _printable(cell: str) -> str:
    """A cell with its line separators and control characters made spaces: they would split
    the row again in whatever reads the gradebooks and pages the grader writes from it."""
    if cell.isprintable():
        return cell
    return "".join(" " if unicodedata.category(c) in UNPRINTABLE else c for c in cell)


def _semicolons(text: str) -> bool:
    header = re.split(r"\r\n?|\n", text, maxsplit=1)[0]
    return header.count(";") > header.count(",")


def _fold(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", header.casefold()).strip()


def _columns(header: list[str], path: Path) -> dict[str, int]:
    """Field -> column index, from the header row."""
    folded = [_fold(h) for h in header]
    columns: dict[str, int] = {}
    for name, spellings in HEADERS.items():
        for spelling in spellings:
            if _fold(spelling) in folded:
                columns[name] = folded.index(_fold(spelling))
                break
    if "canvas_id" not in columns and "sis_id" in columns and "id" in folded:
        columns["canvas_id"] = folded.index("id")  # a Canvas gradebook export: ID is Canvas's
    if "name" not in columns:  # "First name" + "Last name", as Moodle exports them
        first = [folded.index(s) for s in FIRST_LAST[0] if s in folded]
        last = [folded.index(s) for s in FIRST_LAST[1] if s in folded]
        if first and last:
            columns["first"], columns["last"] = first[0], last[0]
    if "id" not in columns:
        for fallback in ("sis_id", "login", "email", "canvas_id", "moodle_id"):
            if fallback in columns:
                columns["id"] = columns[fallback]
                break
        else:
            raise GraderError(f"{path}: no id column in the header {header!r}; name one "
                              f"'id' (or 'Student ID', 'SIS User ID', 'email')")
    return columns


def _student(row: list[str], columns: dict[str, int], path: Path, number: int) -> Student | None:
    def cell(name: str) -> str:
        index = columns.get(name)
        return row[index].strip() if index is not None and index < len(row) else ""

    student_id = cell("id")
    if not student_id and any(c.strip().casefold() == "points possible" for c in row):
        return None  # the second row of a Canvas gradebook export (a student's name is not)
    if not student_id:
        raise GraderError(f"{path}: row {number}, column {_header_of('id')}: the id is empty")
    values = {f.name: cell(f.name) for f in fields(Student) if f.name != "id"}
    if not values["name"] and "first" in columns:
        values["name"] = f"{cell('first')} {cell('last')}".strip()
    if values["moodle_id"].casefold().startswith("participant"):
        values["moodle_id"] = values["moodle_id"].split()[-1]
    return Student(id=student_id, **values)


def _header_of(name: str) -> str:
    return repr(HEADERS[name][0])


def _refuse_repeats(students: tuple[Student, ...]) -> None:
    """Two rows for one id (or one LMS id) would grade one file for two students."""
    for name in ("id", "canvas_id", "moodle_id", "sis_id"):
        seen: dict[str, int] = {}
        for row, student in enumerate(students, start=2):
            value = getattr(student, name)
            if not value:
                continue
            if value in seen:
                raise GraderError(f"column {_header_of(name)}: {value!r} appears twice "
                                  f"(rows {seen[value]} and {row}); each student needs "
                                  f"their own")
            seen[value] = row


def to_rows(roster: Roster) -> list[dict[str, str]]:
    """The roster as plain data, to keep with the results (``classroom`` stores it)."""
    return [{f.name: getattr(s, f.name) for f in fields(Student)} for s in roster.students]


def from_rows(rows: list[dict[str, str]]) -> Roster:
    names = {f.name for f in fields(Student)}
    return Roster(tuple(Student(**{k: str(v) for k, v in row.items() if k in names})
                        for row in rows))
