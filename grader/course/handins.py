"""Everything handed in besides notebooks: nothing a student hands in vanishes.

``grader.course.ingest`` finds the notebooks of the folders and archives the instructor gives
``grade``. Here every *other* file of those folders and archives is accounted for:

- a Python file (``.py``, as "File > Download as" or a script editor makes it) is a hand-in:
  it is matched to its student as a notebook would be (its download's naming, the roster) and
  graded as a notebook of one cell holding the whole file (``grader.core.scripts.read``), saying
  so on the student's page. A student who handed in a notebook too is graded on the notebook.
- any other file (a report, notes, a zip inside the zip, Jupyter's checkpoint copies) is
  listed as not graded, with why, on the overview and in the batch summary.

A folder or archive with no notebook and no Python file at all stops the run (exit 2), where
it would have graded "0 submissions" and written an empty overview.

A Python file is student code like a notebook: it runs only in the sandbox, through the same
reader as any notebook (``grader.core.scripts``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from grader.core import nofollow
from grader.core.errors import GraderError
from grader.core.scripts import is_script
from grader.course import ingest, zipdir
from grader.course.ingest import Matched, Refused, Submission
from grader.course.roster import Roster

Entries = list[tuple[Path, PurePosixPath]]  # a file and its path in its folder or archive

NOT_A_NOTEBOOK = "not a notebook or a Python file ({kind}); not graded"
DEBRIS = ("a copy Jupyter or macOS makes beside the real file (in .ipynb_checkpoints, "
          "__MACOSX or a ._ file); not graded")
BESIDE_A_NOTEBOOK = "a Python file of a student whose notebook {notebook} is graded; not graded"


# --------------------------------------------------------------------------- collecting


@dataclasses.dataclass(frozen=True)
class Found:
    """What the folders and archives given hold besides their notebooks: the Python files to
    grade (as ``ingest.Submission``) and the files not graded (``ingest.Refused``)."""

    scripts: list[Submission]
    skipped: list[Refused]


@contextlib.contextmanager
def collect(paths: list[Path], *, lms: str = "auto") -> Iterator[Found]:
    """Every file under the folders and in the archives of ``paths`` that ``ingest`` leaves
    out: Python files, each read in its download's naming (``ingest._read``), and the rest
    with why. A file given by name is ingest's, whatever it is. Raises when the folders and
    archives given hold no notebook and no Python file, and no file was given by name.
    Python files in archives are extracted, as ingest extracts notebooks, into a private
    folder that lives as long as the context."""
    with tempfile.TemporaryDirectory(prefix="grader-handins-") as scratch:
        scripts: list[Submission] = []
        skipped: list[Refused] = []
        candidates = 0
        for number, path in enumerate(paths):
            if path.is_file() and not zipfile.is_zipfile(path):
                candidates += 1
                continue
            if path.is_dir():
                entries, count = _folder(path, skipped)
            else:
                entries, count = _archive(path, Path(scratch) / str(number), skipped)
            candidates += count
            scripts += ingest._read(entries, lms, prefix=path.name, archived=not path.is_dir(),
                                    refused=skipped)
        if paths and not candidates:  # (no paths: a rebuild, ``grade``'s gradebook)
            raise GraderError(nothing_to_grade(paths, skipped))
        yield Found(scripts, skipped)


def _folder(folder: Path, skipped: list[Refused]) -> tuple[Entries, int]:
    """The Python files of ``folder`` (read without following links), the others into
    ``skipped``, and how many notebooks and Python files it holds."""
    files, links = nofollow.search(folder, "*")
    entries, count = [], 0
    for link in links:
        linked = link.relative_to(folder).as_posix()
        if not ingest._wanted(linked):  # (a linked notebook: ingest refuses it)
            skipped.append(Refused(ingest._printable(f"{folder.name}/{linked}"),
                                          nofollow.LINK))
    for path in files:
        relative = PurePosixPath(path.relative_to(folder).as_posix())
        kind = _kind(str(relative))
        count += kind in ("notebook", "script")
        if kind == "script":
            entries.append((path, relative))
        elif kind != "notebook":
            skipped.append(Refused(ingest._printable(f"{folder.name}/{relative}"), kind))
    return entries, count


def _archive(archive: Path, target: Path, skipped: list[Refused]) -> tuple[Entries, int]:
    """``_folder`` for a zip: its Python files extracted under ``target`` (with ingest's
    limits), its other files into ``skipped``. Members ingest refuses are left to it."""
    zf, bad_names = zipdir.open_zip(archive)  # (ingest has read it already: it can be read)
    entries, count, seen, total = [], 0, set(), 0
    with zf:
        for info in zf.infolist():
            if info.filename.endswith("/") or ingest._unsafe(info, bad_names):
                continue
            kind = _kind(info.filename)
            count += kind in ("notebook", "script")
            shown = ingest._printable(f"{archive.name}/{info.filename}")
            if kind not in ("notebook", "script"):
                skipped.append(Refused(shown, kind))
            if kind != "script":
                continue
            relative = ingest._safe_relative(info.filename)
            if relative in seen:
                skipped.append(Refused(shown, "in the archive twice; the first is kept"))
                continue
            seen.add(relative)
            written = _extract(zf, info, target / relative, ingest.MAX_TOTAL_BYTES - total)
            if isinstance(written, str):
                skipped.append(Refused(shown, written))
            else:
                total += written
                entries.append((target / relative, PurePosixPath(relative.as_posix())))
    return entries, count


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: int) -> int | str:
    """One Python file out of an archive, as ingest extracts a notebook (within ``budget``
    bytes for all of them): the size it wrote, or why it was not extracted."""
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        return ingest._copy_member(zf, info, dest, budget)
    except ingest.MEMBER_ERRORS as exc:
        return ingest._unextractable(exc)


def _kind(relative: str) -> str:
    """``notebook`` (ingest's), ``script``, or why any other file is not graded."""
    parts = PurePosixPath(relative).parts
    if any(p in ingest.IGNORED_PARTS or p.startswith("._") for p in parts):
        return DEBRIS
    if relative.lower().endswith(".ipynb"):
        return "notebook"
    if is_script(relative):
        return "script"
    suffix = PurePosixPath(relative).suffix.lower()
    return NOT_A_NOTEBOOK.format(kind=f"a {suffix} file" if suffix else "no file extension")


def nothing_to_grade(paths: list[Path], skipped: list[Refused]) -> str:
    """Why a run stops that found nothing to grade, with what the paths hold instead."""
    given = ", ".join(str(p) for p in paths) or "nothing"
    others = [s.original for s in skipped]
    seen = (f"; it holds {len(others)} other file(s): {', '.join(others[:5])}"
            f"{' …' if len(others) > 5 else ''}" if others else ", and no other file")
    return (f"nothing to grade in {given}: no notebook (.ipynb) and no Python file (.py)"
            f"{seen}. Is it the right folder or download?")


# --------------------------------------------------------------------------- matching


def join(matched: Matched, scripts: list[Submission], roster: Roster | None) -> Matched:
    """``matched`` (``ingest.Matched``, the notebooks) with the Python files matched to their
    students the same way: graded for a student without a notebook, listed as not graded
    beside one that has a notebook (the notebook is the hand-in)."""
    if not scripts:
        return matched
    # a notebook and a Python file of one name (``a.ipynb``, ``a.py``) are one student's
    notebooks = {_stem(s.original): s for s in [*matched.latest.values(), *matched.unmatched]}
    refused = list(matched.refused)
    for script in [s for s in scripts if _stem(s.original) in notebooks]:
        why = BESIDE_A_NOTEBOOK.format(notebook=notebooks[_stem(script.original)].original)
        refused.append(Refused(script.original, why))
    extra = ingest.match([s for s in scripts if _stem(s.original) not in notebooks], roster)
    latest, earlier = dict(matched.latest), dict(matched.earlier)
    refused += extra.refused
    for student, script in extra.latest.items():
        attempts = (*extra.earlier.get(student, ()), script)
        if student in latest:
            why = BESIDE_A_NOTEBOOK.format(notebook=latest[student].original)
            refused += [Refused(s.original, why) for s in attempts]
        else:
            latest[student] = script
            if attempts[:-1]:
                earlier[student] = attempts[:-1]
    return dataclasses.replace(matched, latest=latest, earlier=earlier, refused=tuple(refused),
                               unmatched=(*matched.unmatched, *extra.unmatched))


def _stem(original: str) -> str:
    return original.rsplit(".", 1)[0].casefold()
