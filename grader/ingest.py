"""LMS downloads in: which notebook is whose, which attempt is the latest, what fits nobody.

Each LMS's "download all submissions" names files its own way; these are the shapes matched
(from the LMSs' documentation and the tools that read their downloads):

- **Canvas**: ``login_[LATE_]userid_submissionid_file[-N].ipynb``, flat in one zip. ``login``
  is the student's sortable name lower-cased without spaces, ``userid`` Canvas's numeric user id
  (the gradebook's ``ID``), ``LATE`` Canvas's own late mark (no time), and ``-N`` a file the
  student uploaded again under the same name.
- **Moodle**: one folder per student, ``Full Name_participantid_assignsubmission_file_/…``
  (or, with "download submissions in folders" off, that prefix on each file name). The
  participant id is what Moodle's grading worksheet calls ``Participant 123456``.
- **Brightspace (D2L)**: ``orgid-submissionid - Last, First - Mon D, YYYY HMM AM - file.ipynb``
  beside an ``index.html``; the time is the submission's, in the org's time zone, which the
  course file's ``timezone`` gives.

Anything else is a plain file, named from its file name as before. Archives are read only
through :func:`safe_extract`: no absolute paths, no ``..``, no links, a cap on members, on
each member's size and compression ratio and on the total, always into a private temporary
folder. A member that cannot be extracted (encrypted, damaged, a name too long, not the UTF-8
it claims, twice in the archive, a file where another member needs a folder) is refused alone,
with why; only an archive that cannot be read at all stops the run. A notebook that is a
symbolic link, or in a linked folder, is refused too (``grader.nofollow``): a link is not a
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from grader import nofollow, zipdir
from grader.errors import GraderError
from grader.roster import Roster, Student

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

CANVAS = re.compile(r"^(?P<login>[^_]+)_(?:(?P<late>LATE)_)?(?P<user>\d+)_(?P<sub>\d+)_"
                    r"(?P<file>.+)$")
MOODLE = re.compile(r"^(?P<name>.+)_(?P<pid>\d+)_assign(?:submission|feedback)_[a-z]+_"
                    r"(?P<file>.*)$")
BRIGHTSPACE = re.compile(r"^(?P<org>\d+)-(?P<sub>\d+) - (?P<name>.+?) ?- "
                         r"(?P<when>[A-Z][a-z]{2} \d{1,2}, \d{4} \d{3,4} [AP]M) - (?P<file>.+)$")
RESUBMITTED = re.compile(r"-(\d+)\.ipynb$", re.IGNORECASE)


@dataclass(frozen=True)
class Submission:
    """One notebook found in a download. ``key`` is who the LMS says it is (Canvas user id,
    Moodle participant id, Brightspace name; for a plain file its name); ``order`` sorts one
    student's attempts, the last being the latest."""

    path: Path
    original: str
    lms: str
    key: str
    name: str = ""
    login: str = ""
    order: tuple = ()
    submitted: str | None = None  # ISO 8601, no offset: the course file's time zone
    late: bool = False
    mtime: str | None = None  # the file's modification time (not for archive members)

    def slug(self) -> str:
        """The result name without a roster: stable per student, unlike the file name."""
        from grader.grade import student_name

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
    and listed), the files that fit nobody on the roster and the archive members refused."""

    latest: dict[str, Submission]
    earlier: dict[str, tuple[Submission, ...]] = field(default_factory=dict)
    unmatched: tuple[Submission, ...] = ()
    refused: tuple[Refused, ...] = ()


# --------------------------------------------------------------------------- public API


@contextlib.contextmanager
def collect(paths: list[Path], *, lms: str = "auto") -> Iterator[tuple[list[Submission],
                                                                         list[Refused]]]:
    """Every notebook under ``paths`` (files, folders, zip archives), recognised. Archives are
    extracted into a private temporary folder that lives as long as the context."""
    if lms not in (*LMS, "auto", "none"):
        raise GraderError(f"--lms must be one of {', '.join(LMS)}, auto or none, not {lms!r}")
    with tempfile.TemporaryDirectory(prefix="grader-ingest-") as scratch:
        found: list[Submission] = []
        refused: list[Refused] = []
        for number, path in enumerate(paths):
            if path.is_file() and zipfile.is_zipfile(path):
                target = Path(scratch) / str(number)
                refused += safe_extract(path, target)
                found += _walk(target, lms, prefix=path.name, archived=True, refused=refused)
            elif path.is_dir():
                found += _walk(path, lms, prefix=path.name, archived=False, refused=refused)
            elif path.is_file():
                found.append(_with_original(recognise(path, PurePosixPath(path.name), lms),
                                            path.name, archived=False))
            else:
                raise GraderError(f"no such file or folder: {path}")
        yield found, refused


def match(found: list[Submission], roster: Roster | None,
          refused: list[Refused] | tuple[Refused, ...] = ()) -> Matched:
    """Map each submission to a student: by roster id when a roster is given (a file that
    matches nobody is listed, never graded as a new student), else by its slug. The latest
    attempt per student wins."""
    by_student: dict[str, list[Submission]] = {}
    unmatched: list[Submission] = []
    finder = _Finder(roster) if roster is not None else None
    for submission in found:
        student = finder.find(submission) if finder else submission.slug()
        if student is None:
            unmatched.append(submission)
        else:
            by_student.setdefault(student, []).append(submission)
    if roster is None:
        _refuse_plain_clashes(by_student)
    latest, earlier = {}, {}
    for student, attempts in by_student.items():
        ordered = sorted(attempts, key=lambda s: (s.order, s.original))
        latest[student] = ordered[-1]
        if len(ordered) > 1:
            earlier[student] = tuple(ordered[:-1])
    return Matched(latest, earlier, tuple(unmatched), tuple(refused))


def recognise(path: Path, relative: PurePosixPath, lms: str = "auto") -> Submission:
    """What the LMS's naming says about the notebook at ``relative`` in a download."""
    kinds = LMS if lms == "auto" else (lms,) if lms in LMS else ()
    for kind in kinds:
        parsed = _PARSERS[kind](path, relative)
        if parsed is not None:
            return parsed
    return Submission(path=path, original=str(relative), lms="file", key=path.name)


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


def _walk(folder: Path, lms: str, *, prefix: str, archived: bool,
          refused: list[Refused]) -> list[Submission]:
    """The notebooks under ``folder``; links (to files or folders) go to ``refused``."""
    files, links = nofollow.search(folder)
    for link in links:
        relative = link.relative_to(folder).as_posix()
        if _wanted(relative):
            refused.append(Refused(_printable(f"{prefix}/{relative}"), nofollow.LINK))
    found = []
    for path in files:
        relative = PurePosixPath(path.relative_to(folder).as_posix())
        if not _wanted(str(relative)):
            continue
        submission = recognise(path, relative, lms)
        found.append(_with_original(submission, f"{prefix}/{relative}", archived=archived))
    return found


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


def _canvas(path: Path, relative: PurePosixPath) -> Submission | None:
    found = CANVAS.match(relative.name)
    if not found:
        return None
    again = RESUBMITTED.search(found["file"])
    return Submission(path=path, original=str(relative), lms="canvas", key=found["user"],
                      login=found["login"], late=bool(found["late"]),
                      order=(int(found["sub"]), int(again[1]) if again else 0))


def _moodle(path: Path, relative: PurePosixPath) -> Submission | None:
    for part in (*relative.parts[:-1], relative.name):
        found = MOODLE.match(part)
        if found:
            return Submission(path=path, original=str(relative), lms="moodle",
                              key=found["pid"], name=found["name"].strip())
    return None


def _brightspace(path: Path, relative: PurePosixPath) -> Submission | None:
    found = BRIGHTSPACE.match(relative.name)
    if not found:
        return None
    when = _brightspace_time(found["when"])
    return Submission(path=path, original=str(relative), lms="brightspace",
                      key=_fold_name(found["name"]), name=found["name"].strip(),
                      order=(when or "", int(found["sub"])), submitted=when)


def _brightspace_time(text: str) -> str | None:
    """'Jan 5, 2021 1208 PM' -> '2021-01-05T12:08:00' (the hour and minute run together)."""
    date, hhmm, half = text.rsplit(" ", 2)
    try:
        parsed = datetime.strptime(f"{date} {hhmm[:-2]}:{hhmm[-2:]} {half}", "%b %d, %Y %I:%M %p")
    except ValueError:
        return None
    return parsed.isoformat()


_PARSERS = {"canvas": _canvas, "moodle": _moodle, "brightspace": _brightspace}


# --------------------------------------------------------------------------- matching


def _fold_name(name: str) -> str:
    """'Doe, Jane' and 'Jane  Doe' -> 'doe jane': names compared whatever their order."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()
    return " ".join(sorted(re.findall(r"[a-z0-9]+", plain)))


class _Finder:
    """Finds a submission's student on the roster by what the LMS put in its name."""

    def __init__(self, roster: Roster):
        self.by: dict[str, dict[str, str]] = {"canvas": {}, "moodle": {}, "name": {},
                                              "login": {}, "id": {}}
        for s in roster.students:
            self._add(s)

    def _add(self, s: Student) -> None:
        self.by["id"][s.id] = s.id
        if s.canvas_id:
            self.by["canvas"][s.canvas_id] = s.id
        if s.moodle_id:
            self.by["moodle"][s.moodle_id] = s.id
        if s.name:  # a name two students share matches neither
            folded = _fold_name(s.name)
            self.by["name"][folded] = "" if folded in self.by["name"] else s.id
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


def _refuse_plain_clashes(by_student: dict[str, list[Submission]]) -> None:
    """Without a roster two plain files with one name are two people, not two attempts."""
    for student, attempts in by_student.items():
        plain = [a for a in attempts if a.lms == "file"]
        if len(plain) > 1:
            raise GraderError(f"two submissions would share the result name {student!r}: "
                              f"{plain[0].original} and {plain[1].original}; rename one of "
                              f"them, or give a --roster")

