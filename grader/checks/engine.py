"""The check engine: ``run`` runs every test of the rubric through its kind
(``grader.checks.kinds``: one class per kind of rubric test, named in one registry), and keeps
what every kind shares here: a function that uses a forbidden shortcut, or code the static scan
cannot read, earns nothing on the tests its kind guards (``Kind.guarded``); once the
submission's time is spent the remaining tests are not run; and whatever the grader's own code
raises on one submission's values is that test's result.

The inputs and the reference's answers come from ``grader.checks.expectations`` (computed once per
batch, not per student); the student's functions are called in the sandbox through the session, and
every comparison happens in the grader's process. Each result keeps the fraction of its points
that the checks established, which ``grader.grading.rescore`` starts from when only the rubric's
scoring changes. A failing, crashing or hanging student function becomes a ``TestResult`` with a
message; only grader bugs raise.
"""

from __future__ import annotations

from grader.checks import kinds, shortcuts
from grader.checks.context import Context, MachineBusy, grader_fault, machine_busy, result
from grader.checks.spec import TestSpec
from grader.core.errors import GraderError
from grader.core.results import TestResult

__all__ = ["Context", "run"]


def run(context: Context, *, public_only: bool = False) -> list[TestResult]:
    """Run every test of the rubric (only the public ones for a student's self-check)."""

    results = []
    for spec in context.rubric.tests:
        if public_only and spec.visibility != "public":
            continue
        result = _run_one(spec, context)
        results.append(result)
        previous = context.status.get(spec.function, "passed")
        if previous == "passed":
            context.status[spec.function] = result.status
    return results


def _run_one(spec: TestSpec, context: Context) -> TestResult:
    """One test's result. Whatever the grader's own code raises on this submission's values
    is that test's result (``grader_fault``), never the batch's end: only the instructor's
    mistakes and the machine's faults (``GraderError``) go further."""
    try:
        kind = kinds.get(spec.kind)
        return _held(spec, context, _out_of_time(spec, context) or _forbid(spec, context)
                     or kind.run(spec, context))
    except (GraderError, OSError):  # (OSError: a full disk, a cache gone: the machine's)
        raise
    except MachineBusy as busy:  # a side call's time ran out while the machine was busy
        return machine_busy(spec, busy.function, busy.slowdown)
    except Exception as exc:  # noqa: BLE001 - attributed to this submission, kept for review
        return grader_fault(spec, exc)


def _held(spec: TestSpec, context: Context, found: TestResult) -> TestResult:
    """A test whose function reaches code the static scan cannot read (a computed attribute
    name, a function's ``__kwdefaults__``...) earns nothing until an instructor has looked:
    such code can hide a library call from the scan and silence the runtime's guard, which
    lives in the student's process. What it would earn is kept for the review."""
    lines = context.held.get(spec.function, ()) + context.held.get(spec.forward or "", ())
    if not lines or found.score <= 0 or not kinds.get(spec.kind).guarded:
        return found
    return result(
        spec, 0.0,
        f"{found.message} It would earn {found.score:g} of {found.max_score:g} points, but "
        + shortcuts.describe(lines[:3]),
        diagnosis="code the grader cannot read", status="review",
        details={**found.details, "would_earn": found.score,
                 "unresolved": [line.text() for line in lines]})


def _out_of_time(spec: TestSpec, context: Context) -> TestResult | None:
    """Once the submission's total budget is spent, the remaining tests are not run."""
    if not context.session.out_of_time:
        return None
    busy = context.session.busy()
    if busy is not None:
        return machine_busy(spec, spec.function, busy, subject="Grading your whole notebook")
    return result(
        spec, 0.0,
        f"Not run: the time for grading your whole notebook ({context.total_budget}) ran out "
        f"before this test. Look for the cells or calls that took long in the tests above.",
        status="timeout",
    )


def _forbid(spec: TestSpec, context: Context) -> TestResult | None:
    """A function that uses a forbidden shortcut earns nothing for it."""
    if not kinds.get(spec.kind).guarded:
        return None
    uses = context.forbidden.get(spec.function, []) + context.forbidden.get(spec.forward or "", [])
    if not uses:
        return None
    listed = ", ".join(shortcuts.explain(u) for u in sorted(set(uses)))
    return result(
        spec,
        0.0,
        f"`{spec.function}` uses {listed}. The practical is to write this "
        f"by hand with NumPy array operations, so this test gives no points.",
        diagnosis="forbidden shortcut",
    )
