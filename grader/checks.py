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
from grader.compare import (
    Comparison,
    compare,
    directional_error,
    numerical_gradient,
    relative_error,
)
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
    import grader.mnist_checks  # noqa: F401 - registers the MNIST runners

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


def _guard_failure(spec: TestSpec, outcome: CallOutcome) -> TestResult | None:
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


def _describe(context: Context, function: str, args: list, kwargs: dict) -> str:
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
        if guard := _guard_failure(spec, outcome):
            return guard
        expected = _expected(spec, case, reference, args, kwargs, positions)
        got = unpack(outcome.value, 1) if not spec.returns else outcome.value
        if not isinstance(got, list):
            return _not_a_tuple(spec, spec.function, outcome.value)
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
                details={"inputs": _describe(context, spec.function, args, kwargs)},
            )
        ok = all(c.passed for c in comparisons)
        passed += ok
        case_details.append(
            {
                "inputs": _describe(context, spec.function, args, kwargs),
                "outputs": [c.details() for c in comparisons],
            }
        )
        if not ok and first_failure is None:
            first_failure = _explain(spec, context, comparisons, args, kwargs, positions)
    return _summarise(spec, passed, len(spec.cases), first_failure, case_details, comparisons)


def _not_a_tuple(spec: TestSpec, function: str, value: Any) -> TestResult:
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
    value = reference(*[_copy(a) for a in args], **kwargs)
    if spec.returns:
        return [np.asarray(value[p], dtype=np.float64) for p in positions]
    return [np.asarray(value, dtype=np.float64)]


def _finish(spec: TestSpec, got: Any) -> Any:
    if spec.options.get("then") == "relu" and isinstance(got, np.ndarray):
        return np.maximum(got, 0)
    return got


def _copy(value: Any) -> Any:
    return value.copy() if isinstance(value, np.ndarray) else value


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
        return found or _plain_failure(comparison)
    return ""


def _plain_failure(comparison: Comparison) -> str:
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


# --- gradient tests -------------------------------------------------------------------------


@runner("gradient")
def run_gradient(spec: TestSpec, context: Context) -> TestResult:
    """Forward then backward in the sandbox; each gradient compared with the reference's and
    with central differences of the reference forward; plus properties of a good backward."""
    total_parts, passed_parts, diagnosis, case_details = 0, 0, None, []
    for number, case in enumerate(spec.cases):
        args, kwargs = case_inputs(spec, context, number, case)
        checked = _gradient_case(spec, context, number, case, args, kwargs)
        if isinstance(checked, TestResult):
            return checked
        parts, details, found = checked
        total_parts += len(parts)
        passed_parts += sum(parts)
        case_details.append(details)
        diagnosis = diagnosis or found
    message = (
        "All gradients match and the backward behaves well."
        if passed_parts == total_parts
        else f"{passed_parts} of {total_parts} checks pass."
    )
    failing = next((d for d in case_details if not d["all_passed"]), case_details[-1])
    details = {
        "cases": case_details,
        "outputs": failing["outputs"],
        "inputs": failing["inputs"],
        "properties": failing["properties"],
    }
    return result(spec, passed_parts / total_parts, message, diagnosis=diagnosis, details=details)


def _gradient_case(
    spec: TestSpec, context: Context, number: int, case: Case, args: list, kwargs: dict
) -> TestResult | tuple[list[bool], dict, str | None]:
    session, forward = context.session, spec.forward or ""
    ref_forward, ref_backward = context.reference[forward], context.reference[spec.function]
    ref_out, ref_cache = ref_forward(*[_copy(a) for a in args], **kwargs)
    rng = inputs.rng_for(context.rubric.seed, spec.name, number, "upstream")
    dout = inputs.make(case.upstream or {"shape": list(np.shape(ref_out))}, rng)
    expected = _as_tuple(ref_backward(dout.copy(), ref_cache), len(spec.outputs))

    fwd = session.call(
        forward, args, kwargs, timeout=spec.timeout, store="fwd", reply=[0], keep_args="fwd_args"
    )
    if not fwd.ok:
        return call_failure(spec, forward, fwd)
    if not isinstance(fwd.value, list):
        return _not_a_tuple(spec, forward, fwd.value)
    cache_ref = {"__ref__": "fwd", "index": 1}
    bwd = session.call(spec.function, [dout, cache_ref], timeout=spec.timeout, return_inputs=True)
    if not bwd.ok:
        return call_failure(spec, spec.function, bwd)
    if guard := _guard_failure(spec, bwd) or _guard_failure(spec, fwd):
        return guard
    got = unpack(bwd.value, len(spec.outputs))
    if got is None:
        return result(
            spec,
            0.0,
            f"`{spec.function}` returned {describe_value(bwd.value)}; expected "
            f"{', '.join(spec.outputs)}.",
            details={"inputs": _describe(context, forward, args, kwargs)},
        )
    got = [as_array(g) for g in got]
    comparisons = [compare(n, g, e) for n, g, e in zip(spec.outputs, got, expected)]
    comparisons = [_accept_subgradient(spec, c, args, kwargs, dout) for c in comparisons]
    numeric = _numerical_errors(spec, ref_forward, args, kwargs, dout, got, rng)
    outputs = []
    for comparison, error in zip(comparisons, numeric):
        data = comparison.details()
        data["numerical_error"] = error
        data["passed"] = comparison.passed and (
            error is None or error <= max(comparison.tolerance, 1e-5)
        )
        outputs.append(data)
    properties = _properties(spec, session, args, dout, got, bwd.inputs)
    parts = [o["passed"] for o in outputs] + [p["passed"] for p in properties]
    found = None
    if not all(parts):
        found = _gradient_diagnosis(
            spec,
            context,
            comparisons,
            outputs,
            properties,
            args,
            kwargs,
            dout,
            ref_forward,
            ref_backward,
            ref_out,
        )
    details = {
        "inputs": _describe(context, forward, args, kwargs),
        "outputs": outputs,
        "properties": properties,
        "all_passed": all(parts),
    }
    return parts, details, found


def _as_tuple(value: Any, count: int) -> list[np.ndarray]:
    if count == 1:
        return [np.asarray(value, dtype=np.float64)]
    return [np.asarray(v, dtype=np.float64) for v in value]


def _numerical_errors(
    spec: TestSpec,
    ref_forward: Callable,
    args: list,
    kwargs: dict,
    dout: np.ndarray,
    got: list[Any],
    rng: np.random.Generator,
) -> list[float | None]:
    """Relative error of each student gradient against central differences (float64, step
    1e-5) of the reference forward; large inputs use a random sample of coordinates."""
    positions = spec.options.get("wrt", list(range(len(spec.outputs))))
    if spec.options.get("numeric") is False:  # kinks probed on purpose: no derivative there
        return [None] * len(got)
    work = [a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in args]
    errors: list[float | None] = []
    for position, value in zip(positions, got):
        target = work[position]
        if not isinstance(value, np.ndarray) or value.shape != np.shape(target):
            errors.append(None)
            continue

        def loss() -> float:
            return float(np.sum(np.asarray(ref_forward(*work, **kwargs)[0]) * dout))

        numeric, measured = numerical_gradient(loss, target, rng=rng)
        sampled = relative_error(value[measured], numeric[measured])
        errors.append(max(sampled, directional_error(loss, target, value, rng=rng)))
    return errors


def _accept_subgradient(
    spec: TestSpec, comparison: Comparison, args: list, kwargs: dict, dout: np.ndarray
) -> Comparison:
    """At a kink probed on purpose, any valid subgradient is right."""
    kink, got = spec.options.get("kink"), comparison.got
    if (
        comparison.passed
        or not kink
        or not isinstance(got, np.ndarray)
        or got.shape != comparison.expected.shape
    ):
        return comparison
    x = np.asarray(args[0], dtype=np.float64)
    expected = comparison.expected.copy()
    if kink == "relu":  # slope at exactly 0 may be 0 or 1
        at_kink = (x == 0) & (np.isclose(got, 0) | np.isclose(got, dout))
        expected[at_kink] = got[at_kink]
    elif kink == "max_tie" and _valid_pool_subgradient(x, got, dout, kwargs, args):
        expected = got.astype(np.float64)
    return compare(comparison.name, got, expected)


def _valid_pool_subgradient(x, got, dout, kwargs, args) -> bool:
    """Non-overlapping windows: each window's gradient sits on its maxima and sums to dout."""
    size = int(kwargs.get("size", args[1] if len(args) > 1 else 2))
    stride = int(kwargs.get("stride", args[2] if len(args) > 2 else size))
    if stride != size:
        return False
    n, c, oh, ow = dout.shape
    for i in range(oh):
        for j in range(ow):
            window = x[:, :, i * stride : i * stride + size, j * stride : j * stride + size]
            grad = got[:, :, i * stride : i * stride + size, j * stride : j * stride + size]
            winners = window == window.max(axis=(2, 3), keepdims=True)
            if np.any(np.abs(grad[~winners]) > 1e-9):
                return False
            if not np.allclose(grad.sum(axis=(2, 3)), dout[:, :, i, j]):
                return False
    return True


def _properties(
    spec: TestSpec, session: Session, args: list, dout: np.ndarray, got: list, backward_inputs: Any
) -> list[dict[str, Any]]:
    """Repeatable, leaves its inputs alone, zero in gives zero out."""
    cache_ref = {"__ref__": "fwd", "index": 1}
    again = session.call(spec.function, [dout, cache_ref], timeout=spec.timeout)
    again_values = unpack(again.value, len(spec.outputs)) if again.ok else None
    repeatable = again_values is not None and all(
        _same(as_array(a), b) for a, b in zip(again_values, got)
    )
    zero = session.call(spec.function, [np.zeros_like(dout), cache_ref], timeout=spec.timeout)
    zero_values = unpack(zero.value, len(spec.outputs)) if zero.ok else None
    zero_ok = zero_values is not None and all(
        isinstance(as_array(z), np.ndarray) and not np.any(as_array(z)) for z in zero_values
    )
    fetched = session.request({"op": "fetch", "key": "fwd_args"}, timeout=10)
    stored = fetched.get("value") if isinstance(fetched, dict) else None
    stored = stored.get("__sequence__") if isinstance(stored, dict) else None
    untouched = stored is not None and all(
        _same(as_array(s), a) for s, a in zip(stored, args) if isinstance(a, np.ndarray)
    )
    sent_dout = (
        backward_inputs[0] if isinstance(backward_inputs, list) and backward_inputs else None
    )
    untouched = untouched and _same(as_array(sent_dout), dout)
    return [
        {
            "name": "repeatable",
            "passed": repeatable,
            "message": "Calling the backward twice with the same cache gives identical gradients.",
        },
        {
            "name": "zero upstream",
            "passed": zero_ok,
            "message": "A zero upstream gradient gives zero gradients.",
        },
        {
            "name": "inputs unchanged",
            "passed": untouched,
            "message": "Forward and backward leave the input arrays unchanged.",
        },
    ]


def _same(a: Any, b: Any) -> bool:
    return (
        isinstance(a, np.ndarray)
        and isinstance(b, np.ndarray)
        and a.shape == b.shape
        and np.array_equal(a.astype(np.float64), np.asarray(b, dtype=np.float64), equal_nan=True)
    )


def _gradient_diagnosis(
    spec,
    context,
    comparisons,
    outputs,
    properties,
    args,
    kwargs,
    dout,
    ref_forward,
    ref_backward,
    ref_out,
) -> str:
    notes = []
    forward_status = context.status.get(spec.forward or "")
    for comparison, data, index in zip(comparisons, outputs, range(len(comparisons))):
        if data["passed"]:
            continue

        def gradient_for(*a, _index=index, **k):
            out, cache = ref_forward(*a, **k)
            return _as_tuple(ref_backward(dout.copy(), cache), len(spec.outputs))[_index]

        found = diagnose.diagnose(
            diagnose.Context(
                function=spec.function,
                output=comparison.name,
                comparison=comparison,
                args=args,
                kwargs=kwargs,
                reference=gradient_for,
                upstream=dout,
                forward_output=ref_out,
                shape_formula=spec.shape_formula,
            ),
            spec.bugs,
        )
        notes.append(found or _plain_failure(comparison))
        break
    for prop in properties:
        if not prop["passed"]:
            notes.append(PROPERTY_ADVICE[prop["name"]].format(function=spec.function))
    if forward_status and forward_status != "passed" and any(not o["passed"] for o in outputs):
        notes.append(
            f"Your `{spec.forward}` fails its own test, and its cache feeds this "
            f"backward: fix the forward first."
        )
    return " ".join(notes)


PROPERTY_ADVICE = {
    "repeatable": (
        "Calling `{function}` twice with the same cache gave different results: it "
        "probably changes the cache in place. Compute new arrays instead."
    ),
    "zero upstream": (
        "With a zero upstream gradient `{function}` still returned non-zero "
        "gradients: every gradient must be proportional to dout."
    ),
    "inputs unchanged": (
        "Your code changed an input array in place (e.g. `dout[x <= 0] = 0` or "
        "`x += …`): work on a copy, or the caller's data is silently corrupted."
    ),
}


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


__all__ = ["Context", "run", "RUNNERS", "result", "call_failure", "relative_error"]
