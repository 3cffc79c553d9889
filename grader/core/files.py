"""Writing a file whole: a reader sees the old file or the new one, never a part of one.

Every file the grader writes for something else to read goes through here: results, pages and
gradebooks, the docs, the MNIST cache and its digests, the autograder's ``results.json``. The
bytes go to a temporary file beside the target (a dot file, which no glob of results or
pages picks up), are flushed to the disk (``fsync``, so that a power cut after the rename
cannot leave an empty file under the name), get their mode, and only then replace the target
in one rename (``os.replace``). Whatever goes wrong before the rename, an exception or an
interrupt, removes the temporary file and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# mkstemp makes 0600 files; pages are often served by another user, and the sandbox reads the
# MNIST cache as its own uid.
MODE = 0o644
SUFFIX = ".tmp"  # the temporary file: ``.<name>.<random><suffix>``


@contextlib.contextmanager
def replacing(path: Path, *, mode: int = MODE, suffix: str = SUFFIX) -> Iterator[Path]:
    """A temporary file beside ``path`` for the block to fill, by its path (a downloader,
    ``np.save`` on a handle it opens, ``write_bytes``); when the block ends it is flushed to
    the disk, given ``mode`` and renamed over ``path``. The block may check what it wrote
    first and raise to keep the old file. An exception, in the block or after it, removes the
    temporary file: ``path`` is never a part of the new file, and nothing is left beside it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        _sync(temporary)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str | bytes, *, mode: int = MODE) -> None:
    """Write ``text`` (UTF-8), or bytes as they are, so that readers see the old file or the
    new one, never half of one."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    with replacing(path, mode=mode) as temporary:
        temporary.write_bytes(data)


def _sync(path: Path) -> None:
    """Its bytes on the disk before the rename makes them the file (any descriptor of a file
    flushes all of it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
