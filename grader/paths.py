"""Where the grader keeps its per-user files: ``${XDG_CACHE_HOME:-~/.cache}/backprop-grader``.

One place for the rule, so MNIST, the canary, the diagnostic's memory and the sandbox's locks
all agree on it (and tests that point ``XDG_CACHE_HOME`` elsewhere move all of them)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """A folder under this user's grader cache (not created here)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base.joinpath("backprop-grader", *parts)
