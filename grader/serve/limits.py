"""What an upload may be, and how often a student may ask: checked before anything is stored.

An upload is refused (with a sentence saying why, and nothing stored) when it is larger than
``max_bytes``, is not a ``.ipynb`` or ``.py`` file, or, for a notebook, is no notebook at all,
holds more than ``max_cells`` cells or more than ``max_output_bytes`` of outputs. What the
notebook does when it runs is the grader's business, as in a batch.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 8 << 20
    max_cells: int = 500
    max_output_bytes: int = 4 << 20


def check_upload(filename: str, data: bytes, limits: UploadLimits) -> str | None:
    """Why this upload is refused, or None."""
    lower = filename.lower()
    if not lower.endswith((".ipynb", ".py")):
        return "only a notebook (.ipynb) or a Python file (.py) can be handed in"
    if len(data) > limits.max_bytes:
        return (f"the file is {len(data) / 1e6:.1f} MB; at most {limits.max_bytes / 1e6:.1f} MB "
                f"can be handed in (clear the notebook's outputs and try again)")
    if not data.strip():
        return "the file is empty"
    if lower.endswith(".py"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return "the .py file is not UTF-8 text"
        return None
    return _notebook_problem(data, limits)


def _notebook_problem(data: bytes, limits: UploadLimits) -> str | None:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return "the file is not a notebook (it is not JSON); save it from Jupyter and try again"
    cells = document.get("cells") if isinstance(document, dict) else None
    if not isinstance(cells, list):
        return "the file is not a notebook (it has no list of cells)"
    if len(cells) > limits.max_cells:
        return f"the notebook has {len(cells)} cells; at most {limits.max_cells} are accepted"
    outputs = sum(len(json.dumps(c.get("outputs", []))) for c in cells if isinstance(c, dict))
    if outputs > limits.max_output_bytes:
        return (f"the notebook's outputs take {outputs / 1e6:.1f} MB; at most "
                f"{limits.max_output_bytes / 1e6:.1f} MB are accepted (Kernel → Restart & "
                f"Clear Output, then save)")
    return None


class RateLimiter:
    """At most ``count`` events per ``seconds`` per key (a sliding window), in this process.
    Keys that went quiet are forgotten, so memory stays bounded by the active keys."""

    def __init__(self, count: int, seconds: float = 60.0):
        self.count, self.seconds = count, seconds
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._swept > self.seconds:
                self._sweep(now)
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.seconds:
                events.popleft()
            if len(events) >= self.count:
                return False
            events.append(now)
            return True

    def blocked(self, key: str) -> bool:
        """Whether ``key`` has used up its events, without counting one (for failures:
        only a failed sign-in counts, so a class behind one address signs in freely)."""
        now = time.monotonic()
        with self._lock:
            events = self._events.get(key, ())
            return sum(1 for t in events if t > now - self.seconds) >= self.count

    def _sweep(self, now: float) -> None:
        self._events = {k: v for k, v in self._events.items()
                        if v and v[-1] > now - self.seconds}
        self._swept = now
