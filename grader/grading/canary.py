"""The reference canary: grade the reference solution through exactly the path students take
(same sandbox, same data, same limits) before any student, and stop unless it gets full marks.

A grade is a claim. If the reference loses a point on this machine (a cache the sandbox cannot
read, a missing library, a machine too slow for the budgets), every student would lose it too,
silently; the canary turns that into one line for the instructor, before anyone is graded.
It also measures how long the reference's calls take here, which relative budgets follow
(``grader.core.budgets``). The verdict is cached per grader version, rubric, reference, sandbox and
machine, so an unchanged re-run costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from grader import __version__
from grader.core import budgets, pace, paths
from grader.core.errors import InfrastructureError
from grader.core.files import write_atomic
from grader.core.results import SubmissionResult
from grader.grading import rescore
from grader.run import zygote
from grader.run.layers import SandboxConfig, plan_layers

CALL_PREFIX = "call:"


@dataclass(frozen=True)
class Canary:
    reference_seconds: dict[str, float]  # function (or request) -> its longest call
    seconds: float  # the reference's whole grading
    sandbox: str  # the sandbox in one line
    cached: bool = False
    checked: str = ""  # when the reference was last graded here, local time to the minute

    def line(self) -> str:
        """The verdict in words a first-time user can follow: a cached verdict says when it
        was reached (on a first run, by the rubric check moments before), not "cached"."""
        shown = {k: v for k, v in self.reference_seconds.items()
                 if v >= 0.05 and k != pace.KEY}
        times = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(shown.items())) or "all calls fast"
        origin = (f"checked at {self.checked} on this machine; grader, rubric, reference and "
                  f"sandbox unchanged since" if self.cached
                  else f"graded just now in {self.seconds:.1f} s")
        return (f"reference canary: full marks for the reference solution ({origin}); "
                f"its times: {times}")


def check(rubric: Any, *, config: SandboxConfig, mnist: Any = None,
          cache_dir: Path | None = None) -> Canary:
    """Full marks for the reference on this machine, or InfrastructureError naming the test."""
    from grader.grading.grade import Job, grade_submission  # (grade imports the whole check engine)

    layers, missing = plan_layers(config.mode, allow_unisolated=config.allow_unisolated)
    described = zygote.describe(layers, missing)
    path = (cache_dir or default_cache_dir()) / f"{_key(rubric, config, mnist, described)}.json"
    cached = _load(path, rubric)
    if cached is not None:
        return cached
    began = time.perf_counter()
    result = grade_submission(Job(path=rubric.solution, rubric=rubric, sandbox=config,
                                  mnist=mnist))
    _refuse_unless_full_marks(rubric, result)
    seconds = round(time.perf_counter() - began, 2)
    canary = Canary(
        reference_seconds={**{k[len(CALL_PREFIX):]: v for k, v in result.timings.items()
                              if k.startswith(CALL_PREFIX)}, budgets.TOTAL_KEY: seconds,
                           pace.KEY: pace.pace()},  # the machine's pace when they were taken
        seconds=seconds,
        sandbox=described,
        checked=_minute(time.time()),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # the reference's result too: a rubric change for scoring alone re-scores it (_load)
    write_atomic(path, json.dumps({**asdict(canary), "result": result.to_json()}, indent=1))
    return canary


def _refuse_unless_full_marks(rubric: Any, result: Any) -> None:
    if result.error:
        raise InfrastructureError(
            f"the reference solution {rubric.solution.name} cannot be graded on this machine "
            f"({result.error}), so no student was graded")
    failing = [t for t in result.tests if t.score < t.max_score]
    if not failing:
        return
    first = failing[0]
    reason = " ".join(first.message.split())[:400].rstrip(".")
    more = f" (and {len(failing) - 1} more test(s))" if len(failing) > 1 else ""
    raise InfrastructureError(
        f"the reference solution {rubric.solution.name} does not get full marks on this "
        f"machine, so no student was graded: '{first.name}' gave it {first.score:g}/"
        f"{first.max_score:g}{more}: {reason}. Fix the machine or the rubric and run again")


def _minute(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(moment))


def default_cache_dir() -> Path:
    return paths.cache_dir("canary")


def _key(rubric: Any, config: SandboxConfig, mnist: Any, described: str) -> str:
    solution = hashlib.sha256(rubric.solution.read_bytes()).hexdigest()
    data = ""
    if mnist is not None:
        folder = Path(mnist.sandbox_dir)
        data = str(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                          for p in folder.glob("*.npy")))
    # what the reference is asked (grader.grading.rescore's keys), not the points: a change of
    # points, visibility or threshold re-scores the reference's stored result instead of grading it
    observed = rescore.observation_keys(solution, rubric)
    parts = [__version__, *observed, solution, described, config.mode,
             repr(config.limits), data, platform.node(), sys.executable, sys.version,
             str(os.geteuid())]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _load(path: Path, rubric: Any) -> Canary | None:
    """The cached verdict, with the reference's result re-scored under ``rubric``: full marks
    still, or InfrastructureError as for a fresh grading. None: grade the reference again."""
    try:
        data = json.loads(path.read_text())
        stored = SubmissionResult.from_json(data.pop("result"))
        canary = Canary(**{**data, "cached": True, "checked": _minute(path.stat().st_mtime)})
    except (OSError, ValueError, TypeError, KeyError):
        return None  # unreadable, or written before the result was kept
    if pace.KEY not in canary.reference_seconds:
        return None  # written before the machine's pace was kept with the times
    again = rescore.rescore(stored, rubric, cache_key=stored.cache_key)
    if again is None:
        return None
    _refuse_unless_full_marks(rubric, again)
    return canary
