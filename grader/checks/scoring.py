"""How a test's points are computed: the one partial-credit policy, for every kind of test.

Credit comes only from correct values.

- **Output, example and gradient tests.** A test's points are shared equally among its cases,
  and a case's share equally among the values it compares (``loss`` and ``dlogits``; ``dx``,
  ``dW`` and ``db``). Each value that matches the reference earns its share; a gradient must also
  agree with central differences. So ``softmax_cross_entropy`` with the right loss and a wrong
  ``dlogits`` earns half of every case.
- **Side checks of a backward** (repeatable, leaves its inputs unchanged, zero upstream gives
  zero) earn nothing on their own: each one that fails takes ``SIDE_CHECK_DEDUCTION`` of what the
  case's correct gradients earned. A backward that returns zeros, a constant or ``dout`` itself
  has no correct gradient, so it scores 0 however well it behaves.
- **MNIST tests.** Full credit at the accuracy threshold, linear from the floor up to it, none
  below the floor.
- **Rules** are all or nothing.
- **Nothing to compare, no credit:** a function that is missing, raises, times out, returns the
  wrong kind of value, or uses a forbidden shortcut scores 0 on the test.

Everything here is a pure function of what the checks observed and the rubric's numbers, so a
change of points, visibility or MNIST threshold re-scores stored results without running any
notebook (``grader.grading.rescore``); a layer on top (late penalties) composes the same way.

Scores are rounded to two decimals, as gradebooks want them. The checks behind a score are
named in the message, passed or failed, so a student can see where every point went.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict

SIDE_CHECK_DEDUCTION = 0.25  # of a case's earned credit, per failed side check


@dataclass(frozen=True)
class CaseVerdict:
    """What one case of a test established: which values are correct, and which side checks
    of the function passed (a failure deducts; a pass earns nothing)."""

    values: dict[str, bool]
    side_checks: dict[str, bool] = field(default_factory=dict)

    @property
    def credit(self) -> float:
        """This case's fraction of its share of the points, from 0 to 1."""
        if not self.values:
            return 0.0
        earned = sum(self.values.values()) / len(self.values)
        failed = sum(not passed for passed in self.side_checks.values())
        return earned * max(0.0, 1.0 - SIDE_CHECK_DEDUCTION * failed)

    @property
    def passed(self) -> bool:
        return all(self.values.values()) and all(self.side_checks.values())


def credit(cases: Sequence[CaseVerdict]) -> float:
    """A test's fraction of its points: the mean of its cases' credit."""
    if not cases:
        return 0.0
    return sum(case.credit for case in cases) / len(cases)


def accuracy_credit(accuracy: float, *, threshold: float, floor: float) -> float:
    """Full credit at the threshold; linear partial credit from ``floor`` up to it."""
    if accuracy >= threshold:
        return 1.0
    if threshold <= floor:
        return 0.0
    return max(0.0, (accuracy - floor) / (threshold - floor))


def points(available: float, fraction: float) -> float:
    """The score of a test worth ``available`` points that earned ``fraction`` of them."""
    fraction = float(min(max(fraction, 0.0), 1.0))
    return round(available * fraction, 2)  # gradebooks want two decimals


class Tally(TypedDict):
    """One check in a test's details (``checks``): in how many of the cases it passed."""

    name: str
    passed: int
    cases: int


def tally(cases: Sequence[CaseVerdict]) -> list[Tally]:
    """Every check by name, values first, with the number of cases it passed in."""
    verdicts: dict[str, list[bool]] = {}
    for case in cases:
        for name, passed in (*case.values.items(), *case.side_checks.items()):
            verdicts.setdefault(name, []).append(passed)
    return [{"name": n, "passed": sum(v), "cases": len(v)} for n, v in verdicts.items()]


def named_checks(cases: Sequence[CaseVerdict]) -> str:
    """The checks in words: ``dx vs reference: failed; repeatable: passed; zero upstream gives
    zero: passed in 1 of 2 cases``."""
    return "; ".join(f"{c['name']}: {_verdict(c['passed'], c['cases'])}" for c in tally(cases))


def _verdict(passed: int, cases: int) -> str:
    if passed == cases:
        return "passed"
    if passed == 0:
        return "failed"
    return f"passed in {passed} of {cases} cases"
