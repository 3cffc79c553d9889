"""The check engine: one runner per kind of rubric test, all driven by the same specs.

Inputs are generated here, the student's functions are called in the sandbox through the
session, and every comparison happens here, in the grader's process, against the reference.
A failing, crashing or hanging student function becomes a ``TestResult`` with a message;
only grader bugs raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grader import diagnose, inputs, shortcuts
from grader.compare import Comparison, compare
from grader.execute import CallOutcome, Session
from grader.reference import Reference
from grader.results import TestResult
from grader.rubric import Case, Rubric, TestSpec

Runner = Callable[[TestSpec, "Context"], TestResult]
RUNNERS: dict[str, Runner] = {}


@dataclass
class Context:
    """What the runners share while grading one submission."""

    session: Session
    rubric: Rubric
    reference: Reference
    forbidden: dict[str, list[str]]
    mnist: Any = None  # grader.mnist.MnistFiles when the rubric needs MNIST
    status: dict[str, str] = field(default_factory=dict)  # function -> worst status so far


def runner(kind: str) -> Callable[[Runner], Runner]:
    def register(function: Runner) -> Runner:
        RUNNERS[kind] = function
        return function

    return register


def run(context: Context, *, public_only: bool = False) -> list[TestResult]:
    """Run every test of the rubric (only the public ones for a student's self-check)."""

    results = []
    for spec in context.rubric.tests:
        if public_only and spec.visibility != "public":
            continue
        result = _forbid(spec, context) or RUNNERS[spec.kind](spec, context)
        results.append(result)
        previous = context.status.get(spec.function, "passed")
        if previous == "passed":
            context.status[spec.function] = result.status
    return results


# --- results ------------------------------------------------------------------------------


def result(
    spec: TestSpec,
    fraction: float,
    message: str,
    *,
    diagnosis: str | None = None,
    status: str | None = None,
    details: dict[str, Any] | None = None,
) -> TestResult:
    fraction = float(min(max(fraction, 0.0), 1.0))
    if status is None:
        status = "passed" if fraction >= 1.0 else "failed"
    return TestResult(
        name=spec.name,
        function=spec.function,
        score=round(spec.points * fraction, 2),  # gradebooks want two decimals
        max_score=spec.points,
        status=status,  # type: ignore[arg-type]
        message=message,
        diagnosis=diagnosis,
        visibility=spec.visibility,  # type: ignore[arg-type]
        description=spec.description,
        details=details or {},
    )


def call_failure(spec: TestSpec, function: str, outcome: CallOutcome, **extra: Any) -> TestResult:
    """A test result for a call that did not return a value."""
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
            f"`{function}` did not finish within {spec.timeout:g} s and was stopped: look for "
            f"a loop that never ends or work far larger than the inputs need."
        )
    elif kind == "exit":
        message = (
            f"`{function}` tried to end the program ({outcome.error}); a function should return."
        )
    elif kind == "crash":
        message = f"The sandbox stopped while running `{function}`: {outcome.error}."
    else:
        message = f"`{function}` raised {outcome.error}"
    details = {"traceback": outcome.traceback} if outcome.traceback else {}
    status = "timeout" if kind == "timeout" else "error"
    if spec.function != function:
        message = f"This test needs your `{function}` first. " + message
    return result(spec, 0.0, message, status=status, details={**details, **extra})


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


def guard_failure(spec: TestSpec, outcome: CallOutcome) -> TestResult | None:
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


# --- example and output tests ---------------------------------------------------------------


def describe_inputs(context: Context, function: str, args: list, kwargs: dict) -> str:
    """The inputs in words, named as in the function's signature (x, W, b...)."""
    import inspect

    try:
        names = list(inspect.signature(context.reference[function]).parameters)
    except (KeyError, TypeError, ValueError):
        names = None
    return inputs.describe(args, kwargs, names)


def case_inputs(spec: TestSpec, context: Context, number: int, case: Case) -> tuple[list, dict]:
    rng = inputs.rng_for(context.rubric.seed, spec.name, number)
    args = [inputs.make(a, rng) for a in case.args]
    kwargs = {k: inputs.make(v, rng) for k, v in case.kwargs.items()}
    return args, kwargs


@runner("example")
@runner("output")
def run_output(spec: TestSpec, context: Context) -> TestResult:
    """Call the function on each case and compare the named outputs with the expected ones."""
    reference = context.reference[spec.function]
    returns = list(spec.returns) or list(spec.outputs)
    positions = [returns.index(name) for name in spec.outputs]
    passed, first_failure, case_details = 0, None, []
    for number, case in enumerate(spec.cases):
        args, kwargs = case_inputs(spec, context, number, case)
        outcome = context.session.call(
            spec.function,
            args,
            kwargs,
            timeout=spec.timeout,
            reply=positions if spec.returns else "value",
        )
        if not outcome.ok:
            return call_failure(spec, spec.function, outcome)
        if guard := guard_failure(spec, outcome):
            return guard
        expected = _expected(spec, case, reference, args, kwargs, positions)
        got = unpack(outcome.value, 1) if not spec.returns else outcome.value
        if not isinstance(got, list):
            return not_a_tuple(spec, spec.function, outcome.value)
        comparisons = [
            compare(n, _finish(spec, as_array(g)), e)
            for n, g, e in zip(spec.outputs, got or [], expected)
        ]
        if got is None or len(comparisons) != len(expected):
            return result(
                spec,
                0.0,
                f"`{spec.function}` returned {describe_value(outcome.value)}; "
                f"expected {', '.join(spec.outputs)}.",
                details={"inputs": describe_inputs(context, spec.function, args, kwargs)},
            )
        ok = all(c.passed for c in comparisons)
        passed += ok
        case_details.append(
            {
                "inputs": describe_inputs(context, spec.function, args, kwargs),
                "outputs": [c.details() for c in comparisons],
            }
        )
        if not ok and first_failure is None:
            first_failure = _explain(spec, context, comparisons, args, kwargs, positions)
    return _summarise(spec, passed, len(spec.cases), first_failure, case_details, comparisons)


def not_a_tuple(spec: TestSpec, function: str, value: Any) -> TestResult:
    return result(
        spec,
        0.0,
        f"`{function}` returned {describe_value(value)}; it must return a tuple "
        f"(out, cache): the output, and what the backward pass will need.",
    )


def _expected(
    spec: TestSpec, case: Case, reference: Callable, args: list, kwargs: dict, positions: list[int]
) -> list[np.ndarray]:
    if spec.kind == "example":
        return [np.asarray(case.expected, dtype=np.float64)]
    value = reference(*copies(args), **kwargs)
    if spec.returns:
        return [np.asarray(value[p], dtype=np.float64) for p in positions]
    return [np.asarray(value, dtype=np.float64)]


def _finish(spec: TestSpec, got: Any) -> Any:
    if spec.options.get("then") == "relu" and isinstance(got, np.ndarray):
        return np.maximum(got, 0)
    return got


def copies(args: list[Any]) -> list[Any]:
    """Fresh copies of array arguments: the reference must not see, or cause, in-place edits."""
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def _explain(
    spec: TestSpec,
    context: Context,
    comparisons: list[Comparison],
    args: list,
    kwargs: dict,
    positions: list[int],
) -> str:
    for comparison, position in zip(comparisons, positions):
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


def plain_failure(comparison: Comparison) -> str:
    if comparison.relative_error is None:
        return f"`{comparison.name}` is wrong."
    where = f" (largest at index {list(comparison.worst_index)})" if comparison.worst_index else ""
    return (
        f"`{comparison.name}` differs from the expected values: relative error "
        f"{comparison.relative_error:.2e}{where}, tolerance {comparison.tolerance:.0e}."
    )


def _summarise(
    spec: TestSpec,
    passed: int,
    total: int,
    diagnosis: str | None,
    case_details: list[dict],
    last: list[Comparison],
) -> TestResult:
    notes = sorted({c.note for c in last if c.note})
    details = {
        "cases": case_details,
        "outputs": case_details[-1]["outputs"] if case_details else [],
    }
    if diagnosis is None:
        message = f"All {total} case{'s' * (total != 1)} match." if total > 1 else "Correct."
        if notes:
            message += " Note: " + "; ".join(notes) + "."
        return result(spec, 1.0, message, details=details)
    failing = next(d for d in case_details if not all(o["passed"] for o in d["outputs"]))
    details["outputs"] = failing["outputs"]
    details["inputs"] = failing["inputs"]
    message = f"{passed} of {total} cases match." if total > 1 else "The result is wrong."
    return result(spec, passed / total, message, diagnosis=diagnosis, details=details)


# --- rules ----------------------------------------------------------------------------------


@runner("rules")
def run_rules(spec: TestSpec, context: Context) -> TestResult:
    """No forbidden shortcut anywhere in the notebook (static scan and runtime guard)."""
    answer = context.session.request({"op": "guards"}, timeout=10)
    seen = set(context.forbidden.get("<notebook>", []))
    if isinstance(answer, dict):
        seen |= set(answer.get("used", []))
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


# The runners of the other kinds live in their own modules; importing them registers them.
from grader import gradient_checks, mnist_checks  # noqa: E402, F401, I001
