"""Notebooks found in a folder someone else filled (a student's Gradescope submission, a class
download), read without following symbolic links.

A link is a pointer, not work: ``convolution.ipynb -> /autograder/source/solutions/...`` would
otherwise be graded as the solution itself, read by the grader with the grader's rights. So a
notebook found by searching a folder is never graded when it, or a folder between it and the
searched folder, is a symbolic link: it is listed as refused with :data:`LINK`. A file the
instructor names on the command line is theirs to point anywhere and is not checked here.

:func:`private_copy` goes further for files a student controls while grading runs: it opens
every folder and the file itself with ``O_NOFOLLOW`` relative to the previous one (no check
then use, so nothing can swap a link in between), accepts only a regular file with one name,
and copies its bytes into a private folder, which is what gets graded.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

LINK = "a symbolic link, not a notebook: only the file itself is graded (submit the .ipynb)"
NOT_A_FILE = "not a regular file: only a notebook file itself is graded"
HARD_LINK = "a second name of another file (a hard link): only a notebook file itself is graded"


class Refused(ValueError):
    """The file cannot be graded; ``str()`` says why, in words for the person who sent it."""


def search(folder: Path, pattern: str = "*.ipynb") -> tuple[list[Path], list[Path]]:
    """The regular files under ``folder`` matching ``pattern``, and apart, the matches that are
    links or lie in a linked folder (never to be graded), each list sorted."""
    files: list[Path] = []
    links: list[Path] = []
    for path in sorted(folder.rglob(pattern)):
        if link_below(path, folder):
            links.append(path)
        elif path.is_file():
            files.append(path)
    return files, links


def link_below(path: Path, folder: Path) -> bool:
    """Whether ``path`` or any folder between it and ``folder`` (``folder`` itself excluded) is
    a symbolic link. ``path`` must be ``folder / something``, as a folder search returns it."""
    relative = path.relative_to(folder)
    current = folder
    for part in relative.parts:
        current = current / part
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return True
        except OSError:
            return True  # gone or unreadable since the search: nothing to grade there
    return False


def private_copy(path: Path, folder: Path, into: Path) -> Path:
    """Copy ``path`` (found under ``folder``) to ``into / path.name`` without following any link
    below ``folder``; raises :class:`Refused` when it is a link, not a regular file or has
    another name too. ``into`` should be a private folder (``tempfile.mkdtemp``)."""
    parts = path.relative_to(folder).parts
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for part in parts[:-1]:  # each step closes the folder it started from
        directory = _step(directory, part, flags | os.O_DIRECTORY)
    # O_NONBLOCK: a FIFO planted under a notebook's name must not hang the grader
    source = _step(directory, parts[-1], flags | os.O_NONBLOCK)
    with open(source, "rb") as reader:
        info = os.fstat(reader.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Refused(NOT_A_FILE)
        if info.st_nlink != 1:
            raise Refused(HARD_LINK)
        copy = into / parts[-1]
        with open(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600),
                  "wb") as writer:
            shutil.copyfileobj(reader, writer)
    return copy


def _step(directory: int, name: str, flags: int) -> int:
    """Open ``name`` in ``directory`` (always closing ``directory``), refusing a link."""
    try:
        return os.open(name, flags, dir_fd=directory)
    except OSError as exc:
        why = LINK if _is_link(name, directory) else f"unreadable ({exc.strerror})"
        raise Refused(why) from None
    finally:
        os.close(directory)


def _is_link(name: str, directory: int) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=directory).st_mode)
    except OSError:
        return False
