"""The check engine: ``run`` drives one runner per kind of rubric test, all driven by the same
specs. The output, example and rules runners live here, the gradient and MNIST runners in their
own modules; ``RUNNERS`` names them all, and ``grader.checks.scoring`` turns verdicts into points.

The inputs and the reference's answers come from ``grader.checks.expectations`` (computed once per
batch, not per student); the student's functions are called in the sandbox through the session, and
every comparison happens here, in the grader's process. Each result keeps the fraction of its points
that the checks established, which ``grader.grading.rescore`` starts from when only the rubric's
scoring changes. A failing, crashing or hanging student function becomes a ``TestResult`` with a
message; only grader bugs raise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from grader.checks import counterexample, diagnose, expectations, scoring, shortcuts
from grader.checks.compare import Comparison, compare
from grader.checks.context import (
    Context,
    Runner,
    as_array,
    call_failure,
    describe_inputs,
    describe_value,
    grader_fault,
    guard_failure,
    not_a_tuple,
    plain_failure,
    result,
    scored,
    unpack,
)
from grader.checks.kinds import gradient as gradient_checks
from grader.checks.kinds import mnist as mnist_checks
from grader.checks.rubric import Case, TestSpec
from grader.core.errors import GraderError
from grader.core.results import TestResult

__all__ = ["Context", "run"]
SMALL_CALL = 2.0  # seconds for a call on a counterexample's few numbers


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
        return _held(spec, context, _out_of_time(spec, context) or _forbid(spec, context)
                     or RUNNERS[spec.kind](spec, context))
    except (GraderError, OSError):  # (OSError: a full disk, a cache gone: the machine's)
        raise
    except Exception as exc:  # noqa: BLE001 - attributed to this submission, kept for review
        return grader_fault(spec, exc)


def _held(spec: TestSpec, context: Context, found: TestResult) -> TestResult:
    """A test whose function reaches code the static scan cannot read (a computed attribute
    name, a function's ``__kwdefaults__``...) earns nothing until an instructor has looked:
    such code can hide a library call from the scan and silence the runtime's guard, which
    lives in the student's process. What it would earn is kept for the review."""
    lines = context.held.get(spec.function, ()) + context.held.get(spec.forward or "", ())
    if not lines or found.score <= 0 or spec.kind in ("rules", "mnist", "mnist_diagnostic"):
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
    return result(
        spec, 0.0,
        f"Not run: the time for grading your whole notebook ({context.total_budget}) ran out "
        f"before this test. Look for the cells or calls that took long in the tests above.",
        status="timeout",
    )


def _forbid(spec: TestSpec, context: Context) -> TestResult | None:
    """A function that uses a forbidden shortcut earns nothing for it."""
    if spec.kind in ("rules", "mnist", "mnist_diagnostic"):
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


# --- example and output tests ---------------------------------------------------------------


def run_output(spec: TestSpec, context: Context) -> TestResult:
    """Call the function on each case and compare the named outputs with the expected ones;
    each output of each case that matches earns its share (``grader.checks.scoring``)."""
    verdicts, case_details, diagnosis, notes = [], [], None, set()
    for number, case in enumerate(spec.cases):
        checked = _output_case(spec, context, number, case)
        if isinstance(checked, TestResult):
            return checked
        comparisons, args, kwargs = checked
        verdict = scoring.CaseVerdict({c.name: c.passed for c in comparisons})
        verdicts.append(verdict)
        case_details.append(
            {
                "inputs": describe_inputs(context, spec.function, args, kwargs),
                "outputs": [c.details() for c in comparisons],
            }
        )
        notes |= {c.note for c in comparisons if c.note}
        if diagnosis is None and not verdict.passed:
            diagnosis = _explain(spec, context, comparisons, args, kwargs)
    total = len(spec.cases)
    failed = next((n for n, v in enumerate(verdicts) if not v.passed), None)
    found = (counterexample.search(spec, context, failed, _student_output(spec, context))
             if failed is not None else None)
    if found is not None:
        diagnosis = f"{diagnosis} {found.text()}" if diagnosis else found.text()
    message = f"All {total} case{'s' * (total != 1)} match." if total > 1 else "Correct."
    if notes:
        message += " Note: " + "; ".join(sorted(notes)) + "."
    failing = next((d for d in case_details if not all(o["passed"] for o in d["outputs"])), None)
    details = {"cases": case_details, **(failing or {"outputs": case_details[-1]["outputs"]})}
    if found is not None:
        details["counterexample"] = found.details()
    return scored(spec, verdicts, message, diagnosis=diagnosis, details=details)


def _student_output(spec: TestSpec, context: Context) -> Callable[[Any], list[Any] | None]:
    """What the student's function gives on a small input (``grader.checks.counterexample``), as the
    values the test compares; None where the call gives nothing to compare."""
    positions = expectations.positions(spec)

    def got_of(candidate: Any) -> list[Any] | None:
        outcome = context.session.call(
            spec.function, candidate.args, candidate.kwargs,
            timeout=min(float(spec.timeout), SMALL_CALL), warnings=spec.options.get("warnings"),
            reply=positions if spec.returns else "value")
        got = unpack(outcome.value, 1) if outcome.ok and not spec.returns else outcome.value
        if not outcome.ok or outcome.guards or not isinstance(got, list):
            return None
        return [_finish(spec, as_array(g)) for g in got]

    return got_of


def _output_case(
    spec: TestSpec, context: Context, number: int, case: Case
) -> TestResult | tuple[list[Comparison], list, dict]:
    """One case's comparisons, or the result of a call that gave nothing to compare."""
    known = expectations.output_case(spec, context.rubric, context.reference, number)
    args, kwargs, expected = known.args, known.kwargs, known.expected
    positions = expectations.positions(spec)
    outcome = context.session.call(
        spec.function,
        args,
        kwargs,
        timeout=spec.timeout,
        reply=positions if spec.returns else "value",
        warnings=spec.options.get("warnings"),
    )
    if not outcome.ok:
        return call_failure(spec, spec.function, outcome)
    if guard := guard_failure(spec, outcome):
        return guard
    got = unpack(outcome.value, 1) if not spec.returns else outcome.value
    if not isinstance(got, list):
        return not_a_tuple(spec, spec.function, outcome.value)
    if len(got) < len(expected):
        return result(
            spec,
            0.0,
            f"`{spec.function}` returned {describe_value(outcome.value)}; "
            f"expected {', '.join(spec.outputs)}.",
            details={"inputs": describe_inputs(context, spec.function, args, kwargs)},
        )
    comparisons = [
        compare(n, _finish(spec, as_array(g)), e, tolerance=spec.options.get("tolerance"))
        for n, g, e in zip(spec.outputs, got, expected)
    ]
    return comparisons, args, kwargs


# (grader.distribute.selfcheck records the reference's answers through these two)
_positions = expectations.positions


def _expected(spec: TestSpec, case: Case, reference: Callable, args: list, kwargs: dict,
              positions: list[int]) -> list[np.ndarray]:
    return expectations.expected_outputs(spec, case, reference, args, kwargs)


def _finish(spec: TestSpec, got: Any) -> Any:
    if spec.options.get("then") == "relu" and isinstance(got, np.ndarray):
        return np.maximum(got, 0)
    return got


def _explain(
    spec: TestSpec, context: Context, comparisons: list[Comparison], args: list, kwargs: dict
) -> str:
    for comparison, position in zip(comparisons, expectations.positions(spec)):
        if comparison.passed:
            continue
        reference = context.reference[spec.function]
        if spec.options.get("then") == "relu":  # the bug patterns must see what was compared

            def reference(*a, _plain=reference, **k):
                return np.maximum(_plain(*a, **k), 0)

        found = diagnose.diagnose(
            diagnose.Context(
                function=spec.function,
                output=comparison.name,
                comparison=comparison,
                args=args,
                kwargs=kwargs,
                reference=reference,
                output_index=position if spec.returns else None,
                shape_formula=spec.shape_formula,
            ),
            spec.bugs,
        )
        return found or plain_failure(comparison)
    return ""


# --- rules ----------------------------------------------------------------------------------


def run_rules(spec: TestSpec, context: Context) -> TestResult:
    """No forbidden shortcut anywhere in the notebook (static scan and runtime guard)."""
    answer = context.session.request({"op": "guards"}, timeout=10)
    seen = set(context.forbidden.get("<notebook>", []))
    if isinstance(answer, dict):
        seen |= set(answer.get("used", []))
    if not seen and context.unresolved:
        return result(spec, 0.0, shortcuts.describe(context.unresolved), status="review",
                      diagnosis="code the grader cannot read",
                      details={"unresolved": [line.text() for line in context.unresolved]})
    if not seen:
        return result(
            spec,
            1.0,
            "No library convolution, automatic differentiation or ready-made network found.",
        )
    listed = ", ".join(shortcuts.explain(u) for u in sorted(seen))
    return result(
        spec,
        0.0,
        f"Your notebook uses {listed}. The practical is to write forward "
        f"and backward passes yourself with NumPy.",
        diagnosis="forbidden shortcut",
        details={"uses": sorted(seen)},
    )


RUNNERS: dict[str, Runner] = {
    "example": run_output,
    "output": run_output,
    "gradient": gradient_checks.run_gradient,
    "mnist": mnist_checks.run_mnist,
    "mnist_diagnostic": mnist_checks.run_diagnostic,
    "rules": run_rules,
}
