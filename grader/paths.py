"""Where the grader keeps its per-user files: ``${XDG_CACHE_HOME:-~/.cache}/backprop-grader``.

One place for the rule, so MNIST, the canary, the diagnostic's memory and the sandbox's locks
all agree on it (and tests that point ``XDG_CACHE_HOME`` elsewhere move all of them)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from grader.errors import GraderError


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
