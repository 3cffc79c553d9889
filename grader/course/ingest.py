"""LMS downloads in: which notebook is whose, which attempt is the latest, what fits nobody.

Each LMS's "download all submissions" names files its own way; these are the shapes matched
(from the LMSs' documentation and source, and the tools that read their downloads):

- **Canvas**: ``login_[LATE_]userid_submissionid_file[-N].ipynb``, flat in one zip. ``login``
  is the student's sortable name lower-cased without spaces, ``userid`` Canvas's numeric user id
  (the gradebook's ``ID``), ``LATE`` Canvas's own late mark (no time), and ``-N`` a file the
  student uploaded again under the same name.
- **Moodle**: one folder per student, ``Full Name_participantid_assignsubmission_file[_]/…``
  (or, with "download submissions in folders" off, that prefix on each file name). The
  participant id is what Moodle's grading worksheet calls ``Participant 123456``. Moodle
  writes the full name with its underscores made spaces: the name ends at the first ``_``,
  the prefix at the first ``_assignsubmission_``.
- **Brightspace (D2L)**: ``orgid-submissionid - Last, First - Mon D, YYYY HMM AM - file.ipynb``
  beside an ``index.html`` (or that prefix as a folder around the student's files); the time
  is the submission's, in the org's time zone, which the course file's ``timezone`` gives.

Who a file belongs to is decided by what the LMS wrote, never by what the student wrote: the
LMS is decided once per archive, folder or file given, from all its notebooks' paths (the
naming that reads the most of them, and more than half; a folder an LMS made before a file
name, then Brightspace, Moodle, Canvas, whose shape is the loosest); only that LMS's own fields
are read (the outermost folder in its shape, or the fixed prefix of the file name), and a
notebook of that download outside its naming, with its fields at another depth than the
rest's (in a folder of the student's own) or with a Brightspace time that is no time, is
refused. With a roster, a file whose name also points at another student (an LMS id or name
in the part the student chose, or an LMS name that is another student's) is refused and
listed, never graded as either.

Anything else is a plain file, named from its file name as before (without a roster, two plain
files with one name, or one named like an LMS student's result, are refused). Archives are read
only through :func:`safe_extract`: no absolute paths, no ``..``, no links, a cap on members, on
each member's size and compression ratio and on the total, always into a private temporary
folder. A member that cannot be extracted (encrypted, damaged, a name too long, not the UTF-8
it claims, twice in the archive, a file where another member needs a folder) is refused alone,
with why; only an archive that cannot be read at all stops the run. A notebook that is a
symbolic link, or in a linked folder, is refused too (``grader.core.nofollow``): a link is not a
student's work. ``.ipynb_checkpoints`` and ``__MACOSX`` are ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from grader.core import nofollow
from grader.core.errors import GraderError
from grader.course import zipdir
from grader.course.roster import Roster, Student

LMS = ("canvas", "moodle", "brightspace")
MAX_MEMBERS = 20_000
MAX_MEMBER_BYTES = 200 << 20  # a notebook larger than this is refused when read anyway
MAX_TOTAL_BYTES = 4 << 30
MAX_RATIO = 200  # uncompressed / compressed, for members above RATIO_FLOOR
RATIO_FLOOR = 1 << 20
CHUNK = 1 << 16
MAX_NAME_BYTES = 255  # one file or folder name, as Linux file systems allow
# what extracting one member can raise: that member is refused, the archive goes on
MEMBER_ERRORS = (OSError, RuntimeError, ValueError, EOFError, NotImplementedError,
                 zipfile.BadZipFile, zlib.error)
IGNORED_PARTS = (".ipynb_checkpoints", "__MACOSX")

TITLES = {"canvas": "Canvas", "moodle": "Moodle", "brightspace": "Brightspace"}
# when two namings read a download alike: the one a student's own part imitates least first
PRIORITY = ("brightspace", "moodle", "canvas")

# [0-9], never \d: that takes any script's digits, which no LMS writes. DOTALL: the part the
# student chose may hold anything, a line break too.
CANVAS = re.compile(r"(?P<login>[^_\s]+)_(?:(?P<late>LATE)_)?(?P<user>[0-9]+)_(?P<sub>[0-9]+)_"
                    r"(?P<file>.+)", re.DOTALL)
_MOODLE = r"(?P<name>[^_]*)_(?P<pid>[0-9]+)_assign(?:submission|feedback)_[a-z]+"
MOODLE = re.compile(_MOODLE + r"_(?P<file>.+)", re.DOTALL)
MOODLE_FOLDER = re.compile(_MOODLE + r"_?", re.DOTALL)
_BRIGHTSPACE = (r"(?P<org>[0-9]+)-(?P<sub>[0-9]+) - (?P<name>.+?) ?- "
                r"(?P<when>[A-Z][a-z]{2} [0-9]{1,2}, [0-9]{4} [0-9]{3,4} [AP]M)")
BRIGHTSPACE = re.compile(_BRIGHTSPACE + r" - (?P<file>.+)", re.DOTALL)
BRIGHTSPACE_FOLDER = re.compile(_BRIGHTSPACE, re.DOTALL)
RESUBMITTED = re.compile(r"-([0-9]+)\.ipynb$", re.IGNORECASE)
# what the student's own part may say about someone (see _claims)
CLAIMS = (("moodle", re.compile(r"(?:^|[_/])([0-9]+)_assign(?:submission|feedback)_")),
          ("canvas", re.compile(r"(?:^|/)[^_/\s]+_(?:LATE_)?([0-9]+)_[0-9]+_")),
          ("letters", re.compile(r"(?:^|/)[0-9]+-[0-9]+ - (.+?) ?- [A-Z][a-z]{2} [0-9]",
                                 re.DOTALL)))


@dataclass(frozen=True)
class Submission:
    """One notebook found in a download. ``key`` is who the LMS says it is (Canvas user id,
    Moodle participant id, Brightspace name; for a plain file its name); ``order`` sorts one
    student's attempts, the last being the latest; ``claims`` are the other students its name
    points at (``("moodle", "1001")``, ``("letters", ...)`` for a name), checked against the
    roster."""

    path: Path
    original: str
    lms: str
    key: str
    name: str = ""
    login: str = ""
    order: tuple[int | str, ...] = ()  # (an ISO time is a str)
    submitted: str | None = None  # ISO 8601, no offset: the course file's time zone
    late: bool = False
    mtime: str | None = None  # the file's modification time (not for archive members)
    claims: tuple[tuple[str, str], ...] = ()

    def slug(self) -> str:
        """The result name without a roster: stable per student, unlike the file name."""
        from grader.grading.grade import student_name

        if self.lms == "file":
            return student_name(self.path)
        label = {"canvas": f"{self.login}_{self.key}", "moodle": f"{self.name}_{self.key}",
                 "brightspace": self.name}[self.lms]
        return student_name(Path(label + ".ipynb"))


@dataclass(frozen=True)
class Refused:
    original: str
    why: str


@dataclass(frozen=True)
class Matched:
    """Who gets graded for what: the latest submission per student, the earlier ones (kept
    and listed), the files that fit nobody on the roster and the files refused (archive
    members, and notebooks whose name is not their LMS's or points at another student)."""

    latest: dict[str, Submission]
    earlier: dict[str, tuple[Submission, ...]] = field(default_factory=dict)
    unmatched: tuple[Submission, ...] = ()
    refused: tuple[Refused, ...] = ()


@dataclass(frozen=True)
class _Reading:
    """One LMS's reading of a notebook's path: the fields it wrote (in the part at ``depth``:
    the outermost folder in its shape, or the file name) and the rest, which the student
    chose."""

    depth: int
    fields: dict[str, Any]
    rest: str


# --------------------------------------------------------------------------- public API


@contextlib.contextmanager
def collect(paths: list[Path], *, lms: str = "auto") -> Iterator[tuple[list[Submission],
                                                                         list[Refused]]]:
    """Every notebook under ``paths`` (files, folders, zip archives), recognised, each path
    read in one LMS's naming (``decide``). Archives are extracted into a private temporary
    folder that lives as long as the context."""
    if lms not in (*LMS, "auto", "none"):
        raise GraderError(f"--lms must be one of {', '.join(LMS)}, auto or none, not {lms!r}")
    with tempfile.TemporaryDirectory(prefix="grader-ingest-") as scratch:
        found: list[Submission] = []
        refused: list[Refused] = []
        for number, path in enumerate(paths):
            if path.is_file() and zipfile.is_zipfile(path):
                target = Path(scratch) / str(number)
                refused += safe_extract(path, target)
                entries = _walk(target, prefix=path.name, refused=refused)
                found += _read(entries, lms, prefix=path.name, archived=True, refused=refused)
            elif path.is_dir():
                entries = _walk(path, prefix=path.name, refused=refused)
                found += _read(entries, lms, prefix=path.name, archived=False, refused=refused)
            elif path.is_file():
                entries = [(path, PurePosixPath(path.name))]
                found += _read(entries, lms, prefix="", archived=False, refused=refused)
            else:
                raise GraderError(f"no such file or folder: {path}")
        yield found, refused


def match(found: list[Submission], roster: Roster | None,
          refused: list[Refused] | tuple[Refused, ...] = ()) -> Matched:
    """Map each submission to a student: by roster id when a roster is given (a file that
    matches nobody is listed, never graded as a new student; one whose name points at another
    student too is refused), else by its slug (a plain file sharing its slug is refused). The
    latest attempt per student wins."""
    by_student: dict[str, list[Submission]] = {}
    unmatched: list[Submission] = []
    refused = list(refused)
    finder = _Finder(roster) if roster is not None else None
    for submission in found:
        student = finder.find(submission) if finder else submission.slug()
        if student is None:
            unmatched.append(submission)
        elif finder and (why := finder.contradiction(submission, student)):
            refused.append(Refused(submission.original, why))
        else:
            by_student.setdefault(student, []).append(submission)
    if roster is None:
        refused += _refuse_plain_clashes(by_student)
    latest, earlier = {}, {}
    for student, attempts in by_student.items():
        ordered = sorted(attempts, key=_attempt_order)
        latest[student] = ordered[-1]
        if len(ordered) > 1:
            earlier[student] = tuple(ordered[:-1])
    return Matched(latest, earlier, tuple(unmatched), tuple(refused))


def decide(relatives: list[PurePosixPath], lms: str = "auto") -> str:
    """The naming one download follows, from all its notebooks' paths at once, so that no
    file name decides for itself: ``lms`` when given; for ``auto`` the LMS whose naming reads
    the most of them, and more than half (ties: the fields nearest the top of the path, then
    ``PRIORITY``); ``"file"`` (plain files) when none does."""
    if lms == "none" or not relatives:
        return "file"
    kinds = PRIORITY if lms == "auto" else (lms,)
    ranks = {kind: _rank(kind, relatives) for kind in kinds}
    best = min(kinds, key=lambda kind: (*ranks[kind], kinds.index(kind)))
    if lms == "auto" and -ranks[best][0] * 2 <= len(relatives):
        return "file"
    return best


def safe_extract(archive: Path, target: Path) -> list[Refused]:
    """Extract the notebooks of ``archive`` under ``target`` (created private), refusing
    members that would land outside it, are links or cannot be extracted, and stopping at a
    zip bomb. Returns the members refused with why; raises for an archive that cannot be read
    or is too big."""
    target.mkdir(mode=0o700, parents=True)
    try:
        with open(archive, "rb") as raw:
            members = zipdir.directory(raw).members  # before zipfile reads every entry
        if members > MAX_MEMBERS:
            raise GraderError(f"{archive}: {members} files in the archive, more than "
                              f"the {MAX_MEMBERS} allowed; is it the right download?")
        zf, bad_names = zipdir.open_zip(archive)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise GraderError(f"cannot read the archive {archive}: {exc}; is it a complete zip "
                          f"download? (nothing was graded)") from None
    with zf:
        return _extract(zf, target, bad_names)


# --------------------------------------------------------------------------- extraction


def _extract(zf: zipfile.ZipFile, target: Path, bad_names: frozenset[str]) -> list[Refused]:
    """Each wanted member of ``zf`` under ``target``, or refused with why; one member's problem
    never stops the others."""
    refused: list[Refused] = []
    seen: set[Path] = set()
    total = 0
    members = zf.infolist()
    if len(members) > MAX_MEMBERS:  # the end record undercounted
        raise GraderError(f"{zf.filename}: {len(members)} files in the archive, more than "
                          f"the {MAX_MEMBERS} allowed; is it the right download?")
    for info in members:
        why = _unsafe(info, bad_names)
        if why:
            refused.append(Refused(info.filename, why))
            continue
        if not _wanted(info.filename):
            continue
        relative = _safe_relative(info.filename)
        if relative in seen:
            refused.append(Refused(info.filename, "in the archive twice; the first is kept"))
            continue
        seen.add(relative)
        try:
            written = _copy_member(zf, info, target / relative, MAX_TOTAL_BYTES - total)
        except MEMBER_ERRORS as exc:
            written = _unextractable(exc)
        if isinstance(written, str):
            refused.append(Refused(info.filename, written))
        else:
            total += written
    return refused


def _unextractable(exc: BaseException) -> str:
    """Why one member could not be extracted, in words."""
    if isinstance(exc, (FileExistsError, NotADirectoryError, IsADirectoryError)):
        return "its path clashes with another member's (a file where a folder is needed)"
    if isinstance(exc, OSError):
        return f"cannot be extracted ({exc.strerror or exc})"
    if isinstance(exc, NotImplementedError):
        return f"compressed in a way this grader cannot read ({exc})"
    return f"damaged in the archive ({exc})"


def _unsafe(info: zipfile.ZipInfo, bad_names: frozenset[str] = frozenset()) -> str | None:
    """Why a member must not be extracted, or None."""
    name = info.filename
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    if name in bad_names:
        return "a name that is not the UTF-8 the archive says it is"
    if info.flag_bits & 0x1:
        return "encrypted (password-protected)"
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "an absolute or Windows path"
    if ".." in PurePosixPath(name).parts or "\x00" in name:
        return "a path leading outside the archive"
    if any(len(os.fsencode(part)) > MAX_NAME_BYTES for part in PurePosixPath(name).parts):
        return f"a file or folder name longer than {MAX_NAME_BYTES} bytes"
    return None


def _wanted(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return (not name.endswith("/") and name.lower().endswith(".ipynb")
            and not any(p in IGNORED_PARTS or p.startswith("._") for p in parts))


def _safe_relative(name: str) -> Path:
    return Path(*[p for p in PurePosixPath(name).parts if p not in ("", ".")])


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path,
                 budget: int) -> int | str:
    """Stream one member out, counting the bytes really written (headers can lie). Returns the
    size, or why it was refused (a member too large); raises when the archive's total would
    exceed ``budget``."""
    if info.file_size > MAX_MEMBER_BYTES:
        return f"larger than {MAX_MEMBER_BYTES >> 20} MB"
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with zf.open(info) as source:
        sink = open(dest, "xb")  # noqa: SIM115 (removed below whatever goes wrong)
        try:
            with sink:
                written = _stream(zf, info, source, sink, budget)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
    if written is None:
        dest.unlink()
        return (f"expands more than {MAX_RATIO}-fold or past {MAX_MEMBER_BYTES >> 20} MB "
                f"(zip bomb)")
    return written


def _stream(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: Any, sink: Any,
            budget: int) -> int | None:
    """The bytes copied, or None when the member expands too far."""
    written = 0
    while chunk := source.read(CHUNK):
        written += len(chunk)
        if written > budget:
            raise GraderError(f"{zf.filename}: more than {MAX_TOTAL_BYTES >> 30} GB once "
                              f"extracted; refused as a zip bomb")
        if written > MAX_MEMBER_BYTES or (written > RATIO_FLOOR and written >
                                          MAX_RATIO * max(info.compress_size, 1)):
            return None
        sink.write(chunk)
    return written


def _walk(folder: Path, *, prefix: str, refused: list[Refused]) -> list[tuple[Path,
                                                                          PurePosixPath]]:
    """The notebooks under ``folder``, each with its path inside it; links (to files or
    folders) go to ``refused``."""
    files, links = nofollow.search(folder)
    for link in links:
        linked = link.relative_to(folder).as_posix()
        if _wanted(linked):
            refused.append(Refused(_printable(f"{prefix}/{linked}"), nofollow.LINK))
    found = []
    for path in files:
        relative = PurePosixPath(path.relative_to(folder).as_posix())
        if _wanted(str(relative)):
            found.append((path, relative))
    return found


def _read(entries: list[tuple[Path, PurePosixPath]], lms: str, *, prefix: str, archived: bool,
          refused: list[Refused]) -> list[Submission]:
    """The notebooks of one download, all read in the one naming it follows (``decide``),
    with the LMS's fields where that download has them (a download's folders are all at one
    depth); a notebook outside that naming, or with its fields elsewhere (in a folder of the
    student's own), goes to ``refused``: its name is not what the LMS wrote."""
    kind = decide([relative for _, relative in entries], lms)
    if kind == "file":
        return [_with_original(Submission(path=path, original=str(relative), lms="file",
                                          key=path.name), _joined(prefix, relative),
                               archived=archived) for path, relative in entries]
    readings = [_READERS[kind](relative) for _, relative in entries]
    depth = _usual_depth(readings)
    where = prefix or "the files given"
    found = []
    for (path, relative), reading in zip(entries, readings, strict=True):
        original = _joined(prefix, relative)
        if reading is None or reading.depth != depth:
            refused.append(Refused(_printable(original), (
                f"not named as {TITLES[kind]} names its downloads, unlike the rest of {where}; "
                f"not graded (renamed? --lms chooses the naming)" if reading is None else
                f"its {TITLES[kind]} name is not where the rest of {where} has it (a folder "
                f"of the student's own?); not graded")))
            continue
        submission = Submission(path=path, original=original, **reading.fields,
                                claims=_claims(reading))
        found.append(_with_original(submission, original, archived=archived))
    return found


def _joined(prefix: str, relative: PurePosixPath) -> str:
    return f"{prefix}/{relative}" if prefix else str(relative)


def _usual_depth(readings: list[_Reading | None]) -> int:
    """Where most notebooks of a download have their LMS's fields (the outermost of equals)."""
    depths = Counter(r.depth for r in readings if r is not None)
    return min(depths, key=lambda depth: (-depths[depth], depth), default=0)


def _with_original(submission: Submission, original: str, *, archived: bool) -> Submission:
    """Where the file was in the download, and (outside archives, whose extraction time
    means nothing) when it was last modified. Names that are not UTF-8 (made on another
    system) are shown with U+FFFD, so no report can fail to write them."""
    mtime = None
    if not archived:
        mtime = datetime.fromtimestamp(submission.path.stat().st_mtime, UTC).isoformat()
    return dataclasses.replace(submission, original=_printable(original), mtime=mtime,
                               name=_printable(submission.name),
                               login=_printable(submission.login))


def _printable(text: str) -> str:
    return os.fsencode(text).decode("utf-8", "replace")


# --------------------------------------------------------------------------- LMS naming


def _rank(kind: str, relatives: list[PurePosixPath]) -> tuple[int, int]:
    """How well ``kind``'s naming reads a download, smaller first: how many notebooks it
    reads (negated), then how deep in their paths the deepest of its fields lies (an LMS's
    folder holds what the student named, never the other way round)."""
    readings = [r for r in map(_READERS[kind], relatives) if r is not None]
    return -len(readings), max((r.depth for r in readings), default=0)


def _canvas(relative: PurePosixPath) -> _Reading | None:
    found = CANVAS.fullmatch(relative.name)
    if not found:
        return None
    again = RESUBMITTED.search(found["file"])
    return _Reading(len(relative.parts) - 1, {
        "lms": "canvas", "key": found["user"], "login": found["login"],
        "late": bool(found["late"]), "order": (int(found["sub"]), int(again[1]) if again else 0),
    }, found["file"])


def _moodle(relative: PurePosixPath) -> _Reading | None:
    return _outermost(relative, MOODLE_FOLDER, MOODLE, _moodle_fields)


def _moodle_fields(found: re.Match[str]) -> dict[str, Any]:
    return {"lms": "moodle", "key": found["pid"], "name": found["name"].strip()}


def _brightspace(relative: PurePosixPath) -> _Reading | None:
    return _outermost(relative, BRIGHTSPACE_FOLDER, BRIGHTSPACE, _brightspace_fields)


def _brightspace_fields(found: re.Match[str]) -> dict[str, Any] | None:
    """Brightspace's fields; None for a time that is no time (``Feb 30``): no file's
    lateness is ever read as unknown."""
    when = _brightspace_time(found["when"])
    if when is None:
        return None
    return {"lms": "brightspace", "key": _fold_name(found["name"]),
            "name": found["name"].strip(), "order": (when, int(found["sub"])),
            "submitted": when}


def _outermost(relative: PurePosixPath, folder: re.Pattern[str], file: re.Pattern[str],
               fields: Callable[[re.Match[str]], dict[str, Any] | None]) -> _Reading | None:
    """The LMS's fields from the outermost folder in its shape (the folders and file below
    are the student's), else from the file name's prefix."""
    parts = relative.parts
    for depth, part in enumerate(parts[:-1]):
        found = folder.fullmatch(part)
        if found:
            read = fields(found)
            return _Reading(depth, read, "/".join(parts[depth + 1:])) if read else None
    found = file.fullmatch(relative.name)
    read = fields(found) if found else None
    return _Reading(len(parts) - 1, read, found["file"]) if read and found else None


def _brightspace_time(text: str) -> str | None:
    """'Jan 5, 2021 1208 PM' -> '2021-01-05T12:08:00' (the hour and minute run together)."""
    date, hhmm, half = text.rsplit(" ", 2)
    try:
        parsed = datetime.strptime(f"{date} {hhmm[:-2]}:{hhmm[-2:]} {half}", "%b %d, %Y %I:%M %p")
    except ValueError:
        return None
    return parsed.isoformat()


_READERS = {"canvas": _canvas, "moodle": _moodle, "brightspace": _brightspace}


def _claims(reading: _Reading) -> tuple[tuple[str, str], ...]:
    """Whom else the name points at: LMS ids and names in the student's own part (a Moodle
    prefix, a Canvas one, a Brightspace one), and the LMS's name field itself (which a
    student may edit in their profile), to be checked against the roster."""
    found = {(kind, _letters(value) if kind == "letters" else value)
             for kind, pattern in CLAIMS for value in pattern.findall(reading.rest)}
    name = reading.fields.get("login") or reading.fields.get("name")
    if name:
        found.add(("letters", _letters(name)))
    return tuple(sorted(found))


# --------------------------------------------------------------------------- matching


def _fold_name(name: str) -> str:
    """'Doe, Jane' and 'Jane  Doe' -> 'doe jane': names compared whatever their order."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()
    return " ".join(sorted(re.findall(r"[a-z0-9]+", plain)))


def _letters(name: str) -> str:
    """A name's letters, sorted: 'Lovelace, Ada', 'Ada Lovelace' and Canvas's 'lovelaceada'
    agree (only to recognise a name, never to match a file to a student)."""
    return "".join(sorted(_fold_name(name).replace(" ", "")))


def _attempt_order(submission: Submission) -> tuple[tuple[tuple[str, int | str], ...], str]:
    """One student's attempts, oldest first; orders of different LMSs (a Brightspace time, a
    Canvas id) are compared by kind first, never with each other."""
    return (tuple((type(part).__name__, part) for part in submission.order),
            submission.original)


class _Finder:
    """Finds a submission's student on the roster by what the LMS put in its name."""

    def __init__(self, roster: Roster):
        self.by: dict[str, dict[str, str]] = {"canvas": {}, "moodle": {}, "name": {},
                                              "login": {}, "id": {}, "letters": {}}
        for s in roster.students:
            self._add(s)

    def _add(self, s: Student) -> None:
        self.by["id"][s.id] = s.id
        if s.canvas_id:
            self.by["canvas"][s.canvas_id] = s.id
        if s.moodle_id:
            self.by["moodle"][s.moodle_id] = s.id
        if s.name:  # a name two students share matches neither
            for kind, folded in (("name", _fold_name(s.name)), ("letters", _letters(s.name))):
                self.by[kind][folded] = "" if folded in self.by[kind] else s.id
        for login in (s.login, s.email.split("@")[0], s.sis_id):
            if login:
                self.by["login"][login.casefold()] = s.id

    def find(self, submission: Submission) -> str | None:
        if submission.lms == "canvas":
            return self.by["canvas"].get(submission.key) or None
        if submission.lms == "moodle":
            return self.by["moodle"].get(submission.key) or None
        if submission.lms == "brightspace":
            return self.by["name"].get(submission.key) or None
        stem = submission.path.name[:-6] if submission.path.name.lower().endswith(".ipynb") \
            else submission.path.name
        return (self.by["id"].get(stem) or self.by["login"].get(stem.casefold())
                or self.by["name"].get(_fold_name(stem)) or None)

    def contradiction(self, submission: Submission, student: str) -> str | None:
        """Why a file the LMS filed under ``student`` is not graded: its name also points at
        another student on the roster (None: it does not)."""
        others = sorted({self.by[kind].get(value) or student
                         for kind, value in submission.claims} - {student})
        if not others:
            return None
        return (f"its name points at {', '.join(others)} too, but {TITLES[submission.lms]} "
                f"filed it under {student}; not graded (graded as neither)")


def _refuse_plain_clashes(by_student: dict[str, list[Submission]]) -> list[Refused]:
    """Without a roster a plain file is named by its file name alone: when another file has
    the same result name (another plain file, or an LMS student's), they are two people, not
    two attempts, so the plain ones are refused (and taken out of ``by_student``), never
    graded as someone else."""
    refused = []
    for student, attempts in list(by_student.items()):
        plain = [a for a in attempts if a.lms == "file"]
        if len(attempts) < 2 or not plain:
            continue
        for submission in plain:
            other = next(a for a in attempts if a is not submission)
            refused.append(Refused(submission.original, (
                f"would share the result name {student!r} with {other.original}; not graded "
                f"(rename one of them, or give a --roster)")))
        kept = [a for a in attempts if a.lms != "file"]
        if kept:
            by_student[student] = kept
        else:
            del by_student[student]
    return refused
