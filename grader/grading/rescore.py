"""Observing apart from scoring: re-score a stored result under a changed rubric without
running any student code.

Every rubric test has two parts. Its *observing* part decides what the sandbox is asked and
how values are compared (function, inputs, cases, seeds, tolerances, budgets, bug patterns);
its *scoring* part only turns what was observed into points (``SCORING_KEYS``: points,
visibility, description and, for ``mnist`` tests, the accuracy threshold, floor and review
rules). A result stores, per test, what the checks established before points (its message,
details, status and ``fraction`` of the points) and an observation key: a hash of the
submission, the reference, the grader's version, the rubric's settings that shape a run and
the observing parts of this test and of every test before it (they share one sandbox, whose
state and clock one test hands to the next). When every key of a stored result matches the
current rubric's, ``rescore`` rebuilds the result from the stored observations, through the
same functions the checks use, and gets what a fresh grading would; else the submission runs
again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from grader import __version__
from grader.checks.context import result
from grader.checks.kinds.mnist import judge
from grader.checks.rubric import Rubric, TestSpec
from grader.core.results import SubmissionResult, TestResult

SCORING_FIELDS = ("points", "visibility", "description", "requirement")
# kind -> the options that only scoring reads. (The diagnostic's threshold is observing: it
# decides whether the culprit search runs.)
SCORING_OPTIONS = {"mnist": ("threshold", "floor", "review_above", "review_faster_than")}
# options the grader adds for this machine (grader.core.budgets.resolve), never in a rubric file
MACHINE_OPTIONS = ("reference_seconds", "budget_notes")


def observing_part(spec: TestSpec) -> dict[str, Any]:
    """The spec without what only scoring reads: if this is unchanged, so is what the sandbox
    would observe."""
    data = dataclasses.asdict(spec)
    for name in SCORING_FIELDS:
        data.pop(name)
    ignored = (*SCORING_OPTIONS.get(spec.kind, ()), *MACHINE_OPTIONS)
    data["options"] = {k: v for k, v in data["options"].items() if k not in ignored}
    return data


def observation_keys(sha256: str, rubric: Rubric, *, public_only: bool = False) -> tuple[str, ...]:
    """One key per test that runs, chained: each covers the tests before it too."""
    solution = hashlib.sha256(rubric.solution.read_bytes()).hexdigest()
    settings = [sha256, solution, __version__, public_only, rubric.name, rubric.seed,
                rubric.cell_timeout, rubric.setup_budget, rubric.functions, rubric.given]
    key = _digest(settings)
    keys = []
    for spec in rubric.tests:
        if public_only and spec.visibility != "public":
            continue
        key = _digest([key, observing_part(spec)])
        keys.append(key)
    return tuple(keys)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def rescore(previous: SubmissionResult, rubric: Rubric, *,
            cache_key: str) -> SubmissionResult | None:
    """``previous`` scored under ``rubric``, or None when it observed something else (another
    submission, reference, grader or observing part of any test): then it must run again."""
    if previous.error is not None:  # nothing observed: the notebook could not be read
        if previous.grader_version != __version__:
            return None
        tests = ungraded(rubric, previous.error)
        return dataclasses.replace(previous, tests=tests, cache_key=cache_key)
    if not previous.observations:
        return None
    if previous.observations != observation_keys(previous.sha256, rubric):
        return None
    if any(t.fraction is None for t in previous.tests):
        return None
    tests = tuple(score(spec, observed) for spec, observed in zip(rubric.tests, previous.tests))
    return dataclasses.replace(previous, tests=tests, cache_key=cache_key)


def score(spec: TestSpec, observed: TestResult) -> TestResult:
    """One stored observation under the scoring part of ``spec``: the same functions that made
    it at grading time (``checktypes.result``, ``mnist_checks.judge``) make it again."""
    details = dict(observed.details)
    if spec.kind == "mnist" and "threshold" in details:
        details["threshold"] = float(spec.options.get("threshold", 0.95))
        if "accuracy" in details and observed.status not in ("error", "timeout"):
            return judge(spec, details)
    assert observed.fraction is not None  # rescore checked it
    return result(spec, observed.fraction, observed.message, diagnosis=observed.diagnosis,
                  status=observed.status, details=details)


def ungraded(rubric: Rubric, why: str, *, public_only: bool = False,
             status: str = "error") -> tuple[TestResult, ...]:
    """Zero on every test of a notebook that could not be graded, so a gradebook still gets one
    column per test; it depends on the rubric's scoring part alone. (``status="review"``: not
    graded because of the grader, so each test waits for an instructor.)"""
    return tuple(
        TestResult(
            name=t.name,
            function=t.function,
            score=0.0,
            max_score=t.points,
            status=status,  # type: ignore[arg-type]
            message=f"Not graded: {why}",
            visibility=t.visibility,  # type: ignore[arg-type]
            description=t.description,
            requirement=t.requirement,
        )
        for t in rubric.tests
        if not public_only or t.visibility == "public"
    )
