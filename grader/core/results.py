"""Results as plain, frozen data: the JSON contract other tools and the feedback pages rely on.

A result is created once, complete, and never patched. Student faults live *inside* results
(a test's status and message, a submission's ``error``); only grader bugs raise.
"""

from __future__ import annotations

import decimal
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

# written whole (``grader.core.files``); imported from here by the check kinds and the caches
from grader.core.files import write_atomic as write_atomic

SCHEMA_VERSION = 1
PLACES = decimal.Decimal("0.01")  # grades are shown to hundredths (see number)

Status = Literal["passed", "failed", "error", "timeout", "review"]  # review: 0 until looked at
Visibility = Literal["public", "hidden"]


@dataclass(frozen=True)
class TestResult:
    """One rubric test, scored. ``details`` holds numbers for the feedback page (errors per
    output, expected/got excerpts, confusion matrix...), all plain JSON values."""

    __test__ = False  # not a pytest class

    name: str
    function: str
    score: float
    max_score: float
    status: Status
    message: str
    diagnosis: str | None = None
    visibility: Visibility = "public"
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    # the share of the points the checks established, before rounding: what re-scoring under a
    # changed rubric starts from (None in results written before re-scoring existed)
    fraction: float | None = None
    # the handed-out notebook's sentence the test checks (``TestSpec.requirement``)
    requirement: str = ""
    # the kind of rubric test (``grader.checks.kinds``): its part of the feedback page is
    # ``templates/kinds/<kind>.html.j2`` ("" in results written before results named it)
    kind: str = ""


@dataclass(frozen=True)
class SubmissionResult:
    student: str
    assignment: str
    submission: str
    sha256: str
    error: str | None
    notices: tuple[str, ...]
    tests: tuple[TestResult, ...]
    grader_version: str
    duration_s: float
    sandbox: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    cache_key: str = ""
    # one key per test, naming what was observed (grader.grading.rescore); empty: cannot be
    # re-scored
    observations: tuple[str, ...] = ()
    # the grader's own traceback where it failed on this submission's data (its tests then wait
    # for review): for the instructor's report, never shown on the student's page
    grader_fault: str = ""

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 6)

    @property
    def max_score(self) -> float:
        return round(sum(t.max_score for t in self.tests), 6)

    @property
    def machine_was_busy(self) -> bool:
        """Whether a test ran out of time while the machine was busy (``grader.core.pace``):
        such a result is not kept, the next run or the server's retry grades it again."""
        return any("machine_busy" in test.details for test in self.tests)

    def to_json(self) -> dict[str, Any]:
        # fields by hand, not asdict: its deep copy of every test's details (error maps, MNIST
        # pixels) was a third of what writing a re-scored result cost; JSON copies them anyway
        data = _fields(self)
        data["tests"] = [_without_empty(_without_empty(_without_none(_fields(t), "fraction"),
                                                       "requirement"), "kind")
                         for t in self.tests]
        data["notices"] = list(self.notices)
        data["observations"] = list(self.observations)
        if not self.observations:  # documents without re-scoring data read as they always did
            del data["observations"]
        if not self.grader_fault:
            del data["grader_fault"]
        return {"schema": SCHEMA_VERSION, "score": self.score, "max_score": self.max_score, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SubmissionResult:
        fields = {k: v for k, v in data.items() if k not in ("schema", "score", "max_score")}
        fields["tests"] = tuple(TestResult(**t) for t in fields["tests"])
        fields["notices"] = tuple(fields["notices"])
        fields["observations"] = tuple(fields.get("observations", ()))
        return cls(**fields)


def _fields(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in fields(value)}


def _without_empty(data: dict[str, Any], key: str) -> dict[str, Any]:
    if not data.get(key):
        data.pop(key, None)
    return data


def _without_none(data: dict[str, Any], key: str) -> dict[str, Any]:
    if data.get(key) is None:
        data.pop(key, None)
    return data


def number(value: float | None) -> str:
    """Points as every page, gradebook and upload shows them: the one rounding rule.

    Hundredths, half up on the decimal value (8.832 -> '8.83', 8.825 -> '8.83', 2/3 ->
    '0.67'), trailing zeros dropped (14.4, 24). Two places because Canvas and Moodle show
    grades to two: a CSV with more would upload a grade that the LMS shows rounded its own
    way, and the student's page, the overview and the LMS would disagree in the last digit.
    Half up on the decimal value, not Python's rounding of the binary float (8.825 is stored
    as 8.82499...), because that is what an instructor checking a grade by hand gets. Sums
    are made of the exact values and rounded once, where shown. None is '' (no grade, never
    a 0 that reads like one); so is a NaN or infinite score (never expected), not 'nan'."""
    if value is None or not math.isfinite(value):
        return ""
    with decimal.localcontext() as context:
        context.prec = 400  # 1.7e308 has 309 digits before the point
        shown = decimal.Decimal(repr(float(value))).quantize(PLACES, decimal.ROUND_HALF_UP)
    text = f"{shown:f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text == "-0" else text


def encode(result: SubmissionResult) -> str:
    """The result file's text. A batch's workers encode it (the indented form takes the
    pure-Python encoder, milliseconds per result), so that the parent, which writes every
    file, does not spend them on one core while both workers want it."""
    return json.dumps(result.to_json(), indent=2, sort_keys=False) + "\n"


def save(result: SubmissionResult, path: Path) -> None:
    write_atomic(path, encode(result))


def load(path: Path) -> SubmissionResult:
    """A stored result; ValueError where the file holds JSON that is no result object (the
    folder is the instructor's: callers skip or regrade what they cannot read)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds no result (a JSON {type(data).__name__})")
    return SubmissionResult.from_json(data)
