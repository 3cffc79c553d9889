"""What every kind of test shares when it runs: the grading context, how a result is made, how
a call that returned nothing reads, and how the values the sandbox sends back are read.

The kinds (``grader.checks.kinds``) import this module; nothing here imports a kind, so there
is no import circle.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grader.checks import expectations, inputs, scoring, shortcuts
from grader.checks.compare import Comparison
from grader.checks.spec import Case, Rubric, TestSpec
from grader.core import budgets
from grader.core.calls import CallOutcome, Session
from grader.core.reference import Reference
from grader.core.results import Status, TestResult


@dataclass
class Context:
    """What the runners share while grading one submission."""

    session: Session
    rubric: Rubric
    reference: Reference
    forbidden: dict[str, list[str]]
    mnist: Any = None  # grader.run.mnist.MnistFiles when the rubric needs MNIST
    status: dict[str, str] = field(default_factory=dict)  # function -> worst status so far
    total_budget: str = ""  # the submission's whole time budget in words, for messages
    # what the static scan cannot read (``shortcuts.unresolved``): the whole notebook's lines,
    # and per top-level function the lines it reaches (``shortcuts.unresolved_reach``)
    unresolved: tuple[Any, ...] = ()
    held: dict[str, tuple[Any, ...]] = field(default_factory=dict)


# --- results ------------------------------------------------------------------------------


def result(
    spec: TestSpec,
    fraction: float,
    message: str,
    *,
    diagnosis: str | None = None,
    status: Status | None = None,
    details: Mapping[str, Any] | None = None,
) -> TestResult:
    """A test result worth ``fraction`` of the test's points (see ``grader.checks.scoring``). Only
    the spec's scoring part (points, visibility, description) enters here, so
    ``grader.grading.rescore`` can make the same result again under a changed rubric from what was
    stored."""
    fraction = min(max(float(fraction), 0.0), 1.0)
    if status is None:
        status = "passed" if fraction >= 1.0 else "failed"
    return TestResult(
        name=spec.name,
        function=spec.function,
        score=scoring.points(spec.points, fraction),
        max_score=spec.points,
        status=status,
        message=message,
        diagnosis=diagnosis,
        visibility=spec.visibility,
        description=spec.description,
        details=dict(details or {}),
        fraction=fraction,
        requirement=spec.requirement,
        kind=spec.kind,
    )


def scored(
    spec: TestSpec,
    cases: Sequence[scoring.CaseVerdict],
    passed_message: str,
    *,
    diagnosis: str | None,
    details: Mapping[str, Any],
) -> TestResult:
    """The result of a test whose cases were all compared: credit by ``grader.checks.scoring``, and
    the message names every check with its verdict."""
    details = {**details, "checks": scoring.tally(cases)}
    if all(case.passed for case in cases):
        return result(spec, 1.0, passed_message, details=details)
    message = scoring.named_checks(cases) + "."
    return result(spec, scoring.credit(cases), message, diagnosis=diagnosis, details=details)


def budget_seconds(spec: TestSpec, key: str) -> float:
    """A test's budget in seconds (relative budgets were resolved for this machine)."""
    return budgets.seconds(spec.timeout if key == "timeout" else getattr(spec.options, key))


def call_failure(spec: TestSpec, function: str, outcome: CallOutcome, *,
                 budget_key: str = "timeout", **extra: Any) -> TestResult:
    """A test result for a call that did not return a value."""
    if outcome.busy is not None:
        return machine_busy(spec, function, outcome.busy)
    kind = outcome.kind
    if kind == "missing":
        message = (
            f"`{function}` is not defined in your notebook: keep the name and the "
            f"parameters of the template."
        )
    elif kind == "not_implemented":
        message = f"`{function}` is not implemented yet (it still raises NotImplementedError)."
    elif kind == "timeout":
        message = (
            f"`{function}` did not finish within {budget_seconds(spec, budget_key):g} s"
            f"{budgets.note(spec, budget_key)} and was stopped: look for a loop that never "
            f"ends or work far larger than the inputs need."
        )
    elif kind == "budget":
        message = (
            f"The time for grading your whole notebook ran out before `{function}` could run, "
            f"so this test was not run: earlier calls or cells took too long."
        )
    elif kind == "exit":
        message = (
            f"`{function}` tried to end the program ({outcome.error}); a function should return."
        )
    elif kind == "crash":
        message = f"The sandbox stopped while running `{function}`: {outcome.error}."
    elif outcome.error.startswith("FloatingPointError") and getattr(spec.options, "warnings", None):
        message = (
            f"`{function}` raised {outcome.error}: this test runs it with NumPy's overflow "
            f"warnings as errors, as the notebook's check cell does. Use a formula that never "
            f"exponentiates a large positive number."
        )
    else:
        message = f"`{function}` raised {outcome.error}"
    details = {"traceback": outcome.traceback} if outcome.traceback else {}
    status: Status = "timeout" if kind in ("timeout", "budget") else "error"
    if spec.function != function:
        message = f"This test needs your `{function}` first. " + message
    return result(spec, 0.0, message, status=status, details={**details, **extra})


def guard_failure(spec: TestSpec, outcome: CallOutcome) -> TestResult | None:
    """Zero for a call during which the runtime guard saw a forbidden shortcut."""
    if not outcome.guards:
        return None
    listed = ", ".join(shortcuts.explain(u) for u in outcome.guards)
    return result(
        spec,
        0.0,
        f"While it ran, `{spec.function}` used {listed}. The practical is "
        f"to write this by hand, so this test gives no points.",
        diagnosis="forbidden shortcut",
    )


class MachineBusy(Exception):
    """Raised where a failure is found far from its call (the diagnostic's training, a gradient
    test's side calls): the time ran out while the machine was busy. The engine
    (``grader.checks.engine``) turns it into ``machine_busy``, for every kind."""

    def __init__(self, function: str, slowdown: float):
        super().__init__(f"{function}: the machine ran {slowdown:.1f}× slower")
        self.function, self.slowdown = function, slowdown


def machine_busy(spec: TestSpec, function: str, slowdown: float, *,
                 subject: str | None = None) -> TestResult:
    """A timeout that may be the machine's (``grader.core.pace``): never blamed on the student.
    It waits for review at 0, and the next run grades the notebook again
    (``SubmissionResult.machine_was_busy``)."""
    return result(
        spec, 0.0,
        f"{subject or f'`{function}`'} ran out of time while the machine grading it was busy "
        f"(the grader's own fixed piece of work ran {slowdown:.1f}× slower than when grading "
        f"began), so the time may not have been your code's. It is graded again when the "
        f"machine is quieter; until then it scores 0. Nothing needs doing on your side.",
        status="review",
        details={"machine_busy": round(slowdown, 1)},
    )


GRADER_FAULT = ("An instructor will look at it before it counts; until then it scores 0. "
                "Nothing needs doing on your side.")


def grader_fault(spec: TestSpec, exc: BaseException) -> TestResult:
    """The result of a test during which the grader's own code failed on what this
    submission gave it (an array of a shape nothing expects, a value the reference cannot
    take): the submission's result, waiting for review, so the batch goes on. The traceback
    is kept for the instructor's report (``details["grader_fault"]``, never on the page)."""
    what = f"{type(exc).__name__}: {exc}"
    what = what if len(what) <= 200 else what[:199] + "…"
    return result(
        spec, 0.0,
        f"The grader could not finish this test on what your notebook gave it ({what}). "
        + GRADER_FAULT,
        status="review",
        details={"grader_fault": "".join(traceback.format_exception(exc))[-6000:]},
    )


def not_a_tuple(spec: TestSpec, function: str, value: Any) -> TestResult:
    return result(
        spec,
        0.0,
        f"`{function}` returned {describe_value(value)}; it must return a tuple "
        f"(out, cache): the output, and what the backward pass will need.",
    )


def plain_failure(comparison: Comparison) -> str:
    if comparison.relative_error is None:
        return f"`{comparison.name}` is wrong."
    where = f" (largest at index {list(comparison.worst_index)})" if comparison.worst_index else ""
    return (
        f"`{comparison.name}` differs from the expected values: relative error "
        f"{comparison.relative_error:.2e}{where}, tolerance {comparison.tolerance:.0e}."
    )


# --- inputs -------------------------------------------------------------------------------


def case_inputs(spec: TestSpec, context: Context, number: int,
                case: Case) -> tuple[list[Any], dict[str, Any]]:
    """A case's seeded inputs (``grader.checks.expectations`` keeps them once per batch)."""
    return expectations.case_inputs(spec, context.rubric, number)


def describe_inputs(context: Context, function: str, args: list[Any],
                    kwargs: dict[str, Any]) -> str:
    """The inputs in words, named as in the function's signature (x, W, b...)."""
    try:
        names = list(inspect.signature(context.reference[function]).parameters)
    except (KeyError, TypeError, ValueError):
        names = None
    return inputs.describe(args, kwargs, names)


# --- values from the sandbox --------------------------------------------------------------


def as_array(value: Any) -> Any:
    """A returned value as an array when it honestly is one (a list of numbers counts)."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, dict) and "__sequence__" in value:
        items = value["__sequence__"]
        if all(isinstance(i, np.ndarray) for i in items):
            try:
                return np.asarray(items, dtype=np.float64) if items else np.zeros(0)
            except (ValueError, TypeError):
                return value
    return value


def describe_value(value: Any) -> str:
    if isinstance(value, dict) and "__unsendable__" in value:
        return f"a {value['__unsendable__']}"
    if isinstance(value, dict) and "__not_tuple__" in value:
        return f"a single {value['__not_tuple__']} instead of a tuple"
    if isinstance(value, dict) and "__sequence__" in value:
        return f"a {value.get('type', 'sequence')} of {len(value['__sequence__'])} items"
    return type(value).__name__


def unpack(value: Any, count: int) -> list[Any] | None:
    """The items of a returned tuple, or None when it is not a tuple of ``count`` items."""
    if count == 1 and not (isinstance(value, dict) and "__sequence__" in value):
        return [value]
    if isinstance(value, dict) and "__sequence__" in value and len(value["__sequence__"]) == count:
        return list(value["__sequence__"])
    if isinstance(value, list) and len(value) == count:
        return value
    return None
