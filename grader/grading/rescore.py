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
from grader.checks import kinds
from grader.checks.rubric import Rubric, TestSpec
from grader.checks.spec import NOT_CALLED
from grader.core.results import Status, SubmissionResult, TestResult


def observing_part(spec: TestSpec) -> dict[str, Any]:
    """The spec without what only scoring reads (its points, visibility, description and
    requirement, and its kind's ``scoring_options``): if this is unchanged, so is what the
    sandbox would observe.

    It keeps the form results have always been keyed by, so that results stored before the
    kinds had typed options re-score as they did: the keys of tests that call a function
    (``spec.NOT_CALLED``) for every test, and of the kind's other keys only those the rubric
    (or its [defaults]) set. What the grader adds for this machine (the notes on relative
    budgets, the reference's times) is never part of it."""
    ignored = set(kinds.get(spec.kind).scoring_options)
    options = {name: _plain(getattr(spec.options, name)) for name in sorted(spec.written)
               if name not in NOT_CALLED and name not in ignored}
    return {"name": spec.name, "function": spec.function, "kind": spec.kind,
            "cases": [_plain(case) for case in spec.cases], "forward": spec.forward,
            "outputs": spec.outputs, "returns": spec.returns, "bugs": spec.bugs,
            "shape_formula": spec.shape_formula, "timeout": _plain(spec.timeout),
            "options": options}


def _plain(value: Any) -> Any:
    """A value as ``dataclasses.asdict`` gives it (a relative budget as its table)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


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
    it at grading time make it again (``Kind.rescore``)."""
    return kinds.get(spec.kind).rescore(spec, observed)


def ungraded(rubric: Rubric, why: str, *, public_only: bool = False,
             status: Status = "error") -> tuple[TestResult, ...]:
    """Zero on every test of a notebook that could not be graded, so a gradebook still gets one
    column per test; it depends on the rubric's scoring part alone. (``status="review"``: not
    graded because of the grader, so each test waits for an instructor.)"""
    return tuple(
        TestResult(
            name=t.name,
            function=t.function,
            score=0.0,
            max_score=t.points,
            status=status,
            message=f"Not graded: {why}",
            visibility=t.visibility,
            description=t.description,
            requirement=t.requirement,
            kind=t.kind,
        )
        for t in rubric.tests
        if not public_only or t.visibility == "public"
    )
