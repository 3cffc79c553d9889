"""Where the grader keeps its per-user files: ``${XDG_CACHE_HOME:-~/.cache}/backprop-grader``.

One place for the rule, so MNIST, the canary, the diagnostic's memory and the sandbox's locks
all agree on it (and tests that point ``XDG_CACHE_HOME`` elsewhere move all of them)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from grader.core.errors import GraderError

PACKAGE = Path(__file__).resolve().parent.parent  # grader/
PROJECT_ROOT = PACKAGE.parent  # the checkout (or the autograder's source folder)
SOLUTIONS_DIR = PROJECT_ROOT / "solutions"
# The names of what the grader itself writes into an output folder (batch: gradescope/,
# superseded/, grader-error.txt; classroom: index.html, grades.csv, canvas.csv, moodle.csv,
# intake/; classview: class/), which no student's result may take, and the device names
# Windows refuses as a file name whatever follows, for a folder copied there.
RESERVED = frozenset({"index", "grades", "canvas", "moodle", "class", "gradescope", "intake",
                      "superseded", "grader-error", "grader-faults", "con", "prn", "aux",
                      "nul",
                      *(f"{port}{n}" for port in ("com", "lpt") for n in range(1, 10))})


def cache_dir(*parts: str) -> Path:
    """A folder under this user's grader cache (not created here)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base.joinpath("backprop-grader", *parts)


def private_dir(path: Path) -> Path:
    """``path`` as a folder of this user's alone (0700), created if need be; GraderError when
    it belongs to someone else or is not a plain folder."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise GraderError(f"cannot create the grader's folder {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise GraderError(f"{path} is not a folder of this user's (owner uid {info.st_uid}); "
                          f"remove it, or set XDG_RUNTIME_DIR to a folder of your own")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def reserved(name: str) -> bool:
    """Whether a result named ``name`` would take the name of a file or folder the grader
    writes itself (``index`` would overwrite the overview), compared without case as macOS
    and Windows compare file names."""
    return name.casefold() in RESERVED
