"""How fast this machine runs right now, measured the same way every time.

Relative budgets (``grader.core.budgets``) are set from what the reference took when the batch
began. When the machine becomes busier later (a second batch, a test suite, another user's
job), a student's call can run out of its budget for no fault of its own, and a timeout would
then blame the student for the machine. ``pace`` times one fixed piece of work in the grader's
own process, where no student code runs: at the start of the batch, beside the reference's
times, and again when a call times out. A timeout is believed only when the machine was about
as fast as when the budgets were set; otherwise the test waits for the instructor and the next
run grades it again.
"""

from __future__ import annotations

import statistics
import time

# The key of the grader's own pace among the reference's measured seconds
# (``Job.reference_seconds``, ``TestSpec.reference_seconds``).
KEY = "machine_pace"
# A timeout is the machine's when the same work takes this many times longer than at the start.
BUSY = 2.0
_ROUNDS = 7  # the median of these many runs of the work, about 3 ms each on a quiet core
_WORK = 60_000


def pace() -> float:
    """Seconds for the fixed work, the median of a few runs (about 20 ms in all)."""
    runs = []
    for _ in range(_ROUNDS):
        start = time.perf_counter()
        _work()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def slowdown(at_start: float | None) -> float | None:
    """How many times slower the machine runs now than when the batch began (None when the
    start was not measured, as in the students' self-check)."""
    if not at_start or at_start <= 0:
        return None
    return pace() / at_start


def busy(at_start: float | None) -> float | None:
    """The slowdown when it is large enough to doubt a timeout (``BUSY``), else None."""
    found = slowdown(at_start)
    return found if found is not None and found >= BUSY else None


def _work() -> int:
    total = 0
    for number in range(_WORK):
        total += number * number % 7
    return total
