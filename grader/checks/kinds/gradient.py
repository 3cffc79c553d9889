"""Gradient tests: the student's forward then backward in the sandbox; each gradient compared,
here, with the reference's and with central differences of the reference forward; plus the
side checks of a good backward (repeatable, leaves its inputs alone, zero in gives zero out),
which only ever deduct from correct gradients (``grader.checks.scoring``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from grader.checks import counterexample, diagnose, expectations, scoring
from grader.checks.compare import (
    Comparison,
    compare,
)
from grader.checks.context import (
    Context,
    as_array,
    call_failure,
    describe_inputs,
    describe_value,
    guard_failure,
    not_a_tuple,
    plain_failure,
    result,
    scored,
    unpack,
)
from grader.checks.diagnose import pool_params
from grader.checks.rubric import TestSpec
from grader.core.calls import CallOutcome, Session
from grader.core.results import TestResult

CACHE = {"__ref__": "fwd", "index": 1}  # the student's cache, kept inside the sandbox
NUMERIC_TOLERANCE = 1e-5  # central differences with step 1e-5 are good to about 1e-8


@dataclass(frozen=True)
class GradientCase:
    """One case of a gradient test, with the reference's answers computed once."""

    spec: TestSpec
    args: list[Any]
    kwargs: dict[str, Any]
    dout: np.ndarray
    forward: Callable[..., Any]  # the reference forward
    backward: Callable[..., Any]  # the reference backward
    expected: list[np.ndarray]
    numeric: list[expectations.Numeric | None]  # central differences, per compared gradient

    @classmethod
    def build(cls, spec: TestSpec, context: Context, number: int) -> GradientCase:
        """The case with what the reference answers, computed once for every submission."""
        known = expectations.gradient_case(spec, context.rubric, context.reference, number)
        forward = context.reference[spec.forward or ""]
        backward = context.reference[spec.function]
        return cls(spec, known.args, known.kwargs, known.dout, forward, backward, known.expected,
                   known.numeric)

    def reference_gradient(self, index: int) -> Callable[..., np.ndarray]:
        """The reference's gradient number ``index`` as a function of the forward's inputs, so
        the bug patterns can recompute it for changed inputs."""

        def gradient(*args: Any, **kwargs: Any) -> np.ndarray:
            _, cache = self.forward(*args, **kwargs)
            dout = self.dout.copy()
            return expectations.as_list(self.backward(dout, cache), len(self.spec.outputs))[index]

        return gradient


def run_gradient(spec: TestSpec, context: Context) -> TestResult:
    """Credit from each correct gradient of each case; a failed side check deducts."""
    verdicts, case_details, diagnosis = [], [], None
    for number in range(len(spec.cases)):
        checked = _check_case(context, GradientCase.build(spec, context, number))
        if isinstance(checked, TestResult):
            return checked
        verdict, details, found = checked
        verdicts.append(verdict)
        case_details.append(details)
        diagnosis = diagnosis or found
    failing = next((d for d in case_details if not d["all_passed"]), case_details[-1])
    details = {
        "cases": case_details,
        **{k: failing[k] for k in ("outputs", "inputs", "properties")},
    }
    wrong = next((n for n, d in enumerate(case_details)
                  if not all(o["passed"] for o in d["outputs"])), None)
    found = (counterexample.search(spec, context, wrong, _student_gradients(spec, context))
             if wrong is not None else None)
    if found is not None:
        diagnosis = f"{diagnosis} {found.text()}" if diagnosis else found.text()
        details["counterexample"] = found.details()
    message = "All gradients match and the backward behaves well."
    return scored(spec, verdicts, message, diagnosis=diagnosis, details=details)


def _check_case(
    context: Context, case: GradientCase
) -> TestResult | tuple[scoring.CaseVerdict, dict, str | None]:
    spec, session = case.spec, context.session
    forward = spec.forward or ""
    fwd = session.call(
        forward,
        case.args,
        case.kwargs,
        timeout=spec.timeout,
        store="fwd",
        reply=[0],
        keep_args="fwd_args",
    )
    if not fwd.ok:
        return call_failure(spec, forward, fwd)
    if not isinstance(fwd.value, list):
        return not_a_tuple(spec, forward, fwd.value)
    bwd = session.call(spec.function, [case.dout, CACHE], timeout=spec.timeout, return_inputs=True)
    if not bwd.ok:
        return call_failure(spec, spec.function, bwd)
    if guard := guard_failure(spec, bwd) or guard_failure(spec, fwd):
        return guard
    got = unpack(bwd.value, len(spec.outputs))
    if got is None:
        message = (
            f"`{spec.function}` returned {describe_value(bwd.value)}; expected "
            f"{', '.join(spec.outputs)}."
        )
        return result(
            spec,
            0.0,
            message,
            details={"inputs": describe_inputs(context, forward, case.args, case.kwargs)},
        )
    got = [as_array(g) for g in got]
    comparisons, outputs = _compare_gradients(case, got)
    properties = _properties(session, case, got, bwd)
    verdict = scoring.CaseVerdict(
        values={f"{o['name']} vs reference": o["passed"] for o in outputs},
        side_checks={p["name"]: p["passed"] for p in properties},
    )
    found = None
    if not verdict.passed:
        found = _diagnosis(context, case, comparisons, outputs, properties)
    details = {
        "inputs": describe_inputs(context, forward, case.args, case.kwargs),
        "outputs": outputs,
        "properties": properties,
        "all_passed": verdict.passed,
    }
    return verdict, details, found


def _student_gradients(spec: TestSpec, context: Context) -> Any:
    """The student's forward then backward on a small input (``grader.checks.counterexample``): the
    gradients the test compares, or None where a call gives nothing to compare."""
    session, timeout = context.session, min(float(spec.timeout), 2.0)

    def got_of(candidate: Any) -> list[Any] | None:
        fwd = session.call(spec.forward or "", candidate.args, candidate.kwargs,
                           timeout=timeout, store="small", reply=[0])
        if not fwd.ok or fwd.guards:
            return None
        bwd = session.call(spec.function, [candidate.dout, {"__ref__": "small", "index": 1}],
                           timeout=timeout)
        got = unpack(bwd.value, len(spec.outputs)) if bwd.ok and not bwd.guards else None
        return [as_array(g) for g in got] if got is not None else None

    return got_of


def _compare_gradients(case: GradientCase, got: list[Any]) -> tuple[list[Comparison], list[dict]]:
    """Each gradient against the reference's, and against central differences."""
    comparisons = [
        _accept_subgradient(
            case, compare(name, value, expected, tolerance=case.spec.options.get("tolerance"))
        )
        for name, value, expected in zip(case.spec.outputs, got, case.expected)
    ]
    outputs = []
    for comparison, error in zip(comparisons, _numerical_errors(case, got)):
        data = comparison.details()
        data["numerical_error"] = error
        data["passed"] = comparison.passed and (
            error is None or error <= max(comparison.tolerance, NUMERIC_TOLERANCE)
        )
        outputs.append(data)
    return comparisons, outputs


def _numerical_errors(case: GradientCase, got: list[Any]) -> list[float | None]:
    """Relative error of each student gradient against central differences (float64, step
    1e-5) of the reference forward (``grader.checks.expectations``): sampled coordinates for large
    inputs, plus random directions that cover the whole tensor."""
    errors: list[float | None] = []
    for numeric, value in zip(case.numeric, got):
        if numeric is None or not isinstance(value, np.ndarray) or (
                value.shape != numeric.gradient.shape):
            errors.append(None)
        else:
            errors.append(numeric.error(value))
    if len(errors) < len(got):
        errors += [None] * (len(got) - len(errors))
    return errors


def _accept_subgradient(case: GradientCase, comparison: Comparison) -> Comparison:
    """At a kink probed on purpose, any valid subgradient is right."""
    kink, got = case.spec.options.get("kink"), comparison.got
    if comparison.passed or not kink or not isinstance(got, np.ndarray):
        return comparison
    if got.shape != comparison.expected.shape:
        return comparison
    x = np.asarray(case.args[0], dtype=np.float64)
    expected = comparison.expected.copy()
    if kink == "relu":  # the slope at exactly 0 may be 0 or 1
        at_kink = (x == 0) & (np.isclose(got, 0) | np.isclose(got, case.dout))
        expected[at_kink] = got[at_kink]
    elif kink == "max_tie" and _valid_pool_subgradient(case, x, got):
        expected = got.astype(np.float64)
    return compare(comparison.name, got, expected, tolerance=case.spec.options.get("tolerance"))


def _valid_pool_subgradient(case: GradientCase, x: np.ndarray, got: np.ndarray) -> bool:
    """Non-overlapping windows: each window's gradient sits on its maxima and sums to dout."""
    dout = case.dout
    size, stride = pool_params(case.args, case.kwargs)
    if size is None or stride != size:
        return False
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i * stride, i * stride + size), slice(j * stride, j * stride + size)
            window, grad = x[:, :, rows, cols], got[:, :, rows, cols]
            winners = window == window.max(axis=(2, 3), keepdims=True)
            if np.any(np.abs(grad[~winners]) > 1e-9):
                return False
            if not np.allclose(grad.sum(axis=(2, 3)), dout[:, :, i, j]):
                return False
    return True


PROPERTIES = {  # the side checks, by the name the student sees
    "repeatable": (
        "Calling the backward twice with the same cache gives identical gradients.",
        "Calling `{function}` twice with the same cache gave different results: it probably "
        "changes the cache in place. Compute new arrays instead.",
    ),
    "zero upstream gives zero": (
        "A zero upstream gradient gives zero gradients.",
        "With a zero upstream gradient `{function}` still returned non-zero gradients: every "
        "gradient must be proportional to dout.",
    ),
    "leaves inputs unchanged": (
        "Forward and backward leave the input arrays unchanged.",
        "Your code changed an input array in place (e.g. `dout[x <= 0] = 0` or `x += …`): work "
        "on a copy, or the caller's data is silently corrupted.",
    ),
}


def _properties(
    session: Session, case: GradientCase, got: list[Any], backward: CallOutcome
) -> list[dict[str, Any]]:
    spec, count = case.spec, len(case.spec.outputs)
    again = session.call(spec.function, [case.dout, CACHE], timeout=spec.timeout)
    again_values = unpack(again.value, count) if again.ok else None
    repeatable = again_values is not None and all(
        _same(as_array(a), b) for a, b in zip(again_values, got)
    )
    zero = session.call(spec.function, [np.zeros_like(case.dout), CACHE], timeout=spec.timeout)
    zero_values = unpack(zero.value, count) if zero.ok else None
    zero_ok = zero_values is not None and all(
        isinstance(as_array(z), np.ndarray) and not np.any(as_array(z)) for z in zero_values
    )
    verdicts = {
        "repeatable": repeatable,
        "leaves inputs unchanged": _inputs_unchanged(session, case, backward),
        "zero upstream gives zero": zero_ok,
    }
    return [
        {"name": name, "passed": passed, "message": PROPERTIES[name][0]}
        for name, passed in verdicts.items()
    ]


def _inputs_unchanged(session: Session, case: GradientCase, backward: CallOutcome) -> bool:
    """The forward's arguments as the sandbox holds them after every call, and the dout the
    backward received, compared with what was sent."""
    fetched = session.request({"op": "fetch", "key": "fwd_args"}, timeout=10)
    stored = fetched.get("value") if isinstance(fetched, dict) else None
    stored = stored.get("__sequence__") if isinstance(stored, dict) else None
    if stored is None:
        return False
    forward_ok = all(
        _same(as_array(s), a) for s, a in zip(stored, case.args) if isinstance(a, np.ndarray)
    )
    sent = backward.inputs[0] if isinstance(backward.inputs, list) and backward.inputs else None
    return forward_ok and _same(as_array(sent), case.dout)


def _diagnosis(
    context: Context,
    case: GradientCase,
    comparisons: list[Comparison],
    outputs: list[dict],
    properties: list[dict],
) -> str:
    spec = case.spec
    notes = []
    failing = [i for i, data in enumerate(outputs) if not data["passed"]]
    if failing:
        index = failing[0]
        found = diagnose.diagnose(
            diagnose.Context(
                function=spec.function,
                output=comparisons[index].name,
                comparison=comparisons[index],
                args=case.args,
                kwargs=case.kwargs,
                reference=case.reference_gradient(index),
                upstream=case.dout,
                shape_formula=spec.shape_formula,
            ),
            spec.bugs,
        )
        notes.append(found or plain_failure(comparisons[index]))
    notes += [
        PROPERTIES[p["name"]][1].format(function=spec.function)
        + quoted(context.rubric.side_checks.get(p["name"], ""))
        for p in properties
        if not p["passed"]
    ]
    forward_status = context.status.get(spec.forward or "")
    if failing and forward_status not in (None, "passed"):
        notes.append(
            f"Your `{spec.forward}` fails its own test, and its cache feeds this backward: fix "
            f"the forward first."
        )
    return " ".join(notes)


def quoted(requirement: str) -> str:
    """A requirement as a feedback sentence ends with it, or nothing."""
    text = " ".join(requirement.split())
    return f" The notebook asks: “{text}”" if text else ""


def _same(a: Any, b: Any) -> bool:
    return (
        isinstance(a, np.ndarray)
        and isinstance(b, np.ndarray)
        and a.shape == b.shape
        and np.array_equal(a.astype(np.float64), np.asarray(b, dtype=np.float64), equal_nan=True)
    )
