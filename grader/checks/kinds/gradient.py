"""``gradient`` tests: the student's forward then backward in the sandbox; each gradient
compared, here, with the reference's and with central differences of the reference forward;
plus the side checks of a good backward (repeatable, leaves its inputs alone, zero in gives
zero out), which only ever deduct from correct gradients (``grader.checks.scoring``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np

from grader.checks import counterexample, diagnose, expectations, inputs, scoring
from grader.checks.compare import (
    Comparison,
    compare,
)
from grader.checks.context import (
    Context,
    MachineBusy,
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
from grader.checks.kinds import called
from grader.checks.kinds.base import Kind, Options, key, options_of
from grader.core import budgets, schema
from grader.core.calls import CallOutcome, Session
from grader.core.errors import GraderError
from grader.core.results import TestResult

if TYPE_CHECKING:
    from grader.checks.spec import Case, Rubric, TestSpec
    from grader.core.reference import Reference

CACHE = {"__ref__": "fwd", "index": 1}  # the student's cache, kept inside the sandbox
NUMERIC_TOLERANCE = 1e-5  # central differences with step 1e-5 are good to about 1e-8
SIDE_CHECKS = ("repeatable", "leaves inputs unchanged", "zero upstream gives zero")
FETCH_TIMEOUT = 10.0  # seconds to fetch the forward's arguments as the sandbox holds them
TIE = 1e-9  # a pooling window's gradient this small off its maxima counts as zero


def _positions(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise GraderError(f"{where} must be a list of argument positions (integers ≥ 0)")
    return tuple(value)


@dataclass(frozen=True)
class GradientOptions(Options):
    shrinks = True

    outputs: tuple[str, ...] = key(
        ("out",), "list of strings",
        "The backward's gradients in order, by name, e.g. `[\"dx\", \"dW\", \"db\"]`: each is "
        "compared and earns its share. A name must be the one the reference's `return` "
        "statement uses, when it returns a plain variable.", schema.strings,
        shown=schema.REQUIRED)
    forward: str = key("", "string",
                       "The forward function (one of `functions`) whose cache feeds the backward "
                       "under test. `args` and `kwargs` are the forward's.", schema.string,
                       required=True)
    bugs: tuple[str, ...] = called.bugs_key()
    shape_formula: str = called.shape_formula_key()
    timeout: budgets.Budget = called.timeout_key()
    tolerance: float = called.tolerance_key(
        " Gradient tests accept at least 1e-5 against central differences.")
    wrt: tuple[int, ...] | None = key(
        None, "list of integers",
        "For each gradient in `outputs`, the position of the forward's argument it is the "
        "gradient of (for the central differences).", _positions, shown="[0, 1, …]")
    kink: str | None = key(
        None, "string",
        "Inputs that sit on a kink on purpose, where any valid subgradient is accepted: `relu` "
        "(slope 0 or 1 at exactly 0), `max_tie` (a pooling window's gradient may go to any of "
        "its tied maxima).", schema.one_of(("relu", "max_tie")), shown="—")
    numeric: bool = key(True, "boolean",
                        "Compare with central differences too; `false` where there is no "
                        "derivative (kinks probed on purpose).", schema.boolean)

    @property
    def positions(self) -> tuple[int, ...]:
        """The forward's arguments whose gradients are measured: ``wrt``, else 0, 1, …"""
        return self.wrt if self.wrt is not None else tuple(range(len(self.outputs)))



def _options(spec: TestSpec) -> GradientOptions:
    return options_of(spec, GradientOptions)

class GradientDetails(TypedDict):
    """What a gradient test records: every case, and the first failing one's outputs (each
    with its error against central differences too), inputs and side checks."""

    cases: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    inputs: str
    properties: list[dict[str, Any]]
    counterexample: NotRequired[dict[str, Any]]
    checks: NotRequired[list[dict[str, Any]]]


class Gradient(Kind):
    name = "gradient"
    meaning = "the backward after the forward, against the reference and central differences."
    options = GradientOptions
    case_keys = ("args", "kwargs", "upstream")
    side_checks = SIDE_CHECKS

    def cross_check(self, spec: TestSpec, *, where: str, functions: tuple[str, ...],
                    problems: schema.Problems) -> None:
        super().cross_check(spec, where=where, functions=functions, problems=problems)
        if spec.forward not in functions:
            problems.add(f"{where}: forward must name the forward function of a gradient test, "
                         f"one of [assignment].functions (got {spec.forward!r})"
                         f"{schema.did_you_mean(spec.forward or '', functions)}")
        if "outputs" not in spec.written:
            problems.add(f"{where}: outputs is required for a gradient test: the backward's "
                         f"gradients in order, e.g. [\"dx\", \"dW\", \"db\"]")
        wrt = _options(spec).wrt
        if wrt is not None and len(wrt) != len(spec.outputs):
            problems.add(f"{where}: wrt has {len(wrt)} positions for {len(spec.outputs)} "
                         f"outputs ({', '.join(spec.outputs)})")

    def check_reference(self, spec: TestSpec, rubric: Rubric, reference: Reference) -> list[str]:
        return called.check_cases(spec, rubric, reference, _check_reference_case)

    def prepare(self, spec: TestSpec, rubric: Rubric, reference: Reference) -> None:
        for number in range(len(spec.cases)):
            expectations.gradient_case(spec, rubric, reference, number)

    def run(self, spec: TestSpec, context: Context) -> TestResult:
        return run_gradient(spec, context)

    def record(self, spec: TestSpec, context: Context) -> None:
        """The reference's answers and central differences on the test's inputs, the smallest
        candidates, and the bug patterns' reruns (diagnosing made-up wrong gradients)."""
        count, positions = len(spec.outputs), _options(spec).positions
        for number in range(len(spec.cases)):
            counterexample.candidates(spec, context.rubric, context.reference, number)
            # a gradient of the wrong shape is skipped, and the ones after it then draw other
            # random coordinates: every combination has its own calls
            for right_shape in itertools.product((True, False), repeat=len(positions)):
                case = GradientCase.build(spec, context, number)
                got = [np.zeros(np.shape(case.args[p])) if ok else np.zeros(0)
                       for p, ok in zip(positions, right_shape)]
                _numerical_errors(case, got)
            case = GradientCase.build(spec, context, number)
            for index in range(count):
                for wrong in called.wrong_answers(case.expected[index]):
                    got = [wrong if i == index else e for i, e in enumerate(case.expected)]
                    comparisons = [compare(n, g, e)
                                   for n, g, e in zip(spec.outputs, got, case.expected)]
                    outputs = [{"passed": i != index} for i in range(count)]
                    _diagnosis(context, case, comparisons, outputs, [])


def _check_reference_case(spec: TestSpec, reference: Reference, args: list[Any],
                          kwargs: dict[str, Any], case: Case) -> list[str]:
    """The forward returns (out, cache), the backward as many gradients as ``outputs`` names,
    each of the shape of the argument ``wrt`` says it is the gradient of."""
    forward = reference[spec.forward or ""](*[_copy(a) for a in args], **kwargs)
    if not isinstance(forward, tuple) or len(forward) != 2:
        return [f"forward {spec.forward} must return (out, cache); the reference returns "
                f"{called.described(forward)}"]
    out, cache = forward
    upstream = case.upstream or {"shape": list(np.shape(out))}
    dout = inputs.make(upstream, np.random.default_rng(0))
    if dout.shape != np.shape(out):
        return [f"upstream has shape {dout.shape} but {spec.forward} returns out of shape "
                f"{np.shape(out)}"]
    value = reference[spec.function](dout, cache)
    count = len(spec.outputs)
    if count == 1 and isinstance(value, tuple) or count > 1 and (
            not isinstance(value, tuple) or len(value) != count):
        return [f"outputs names {count} gradient(s) ({', '.join(spec.outputs)}) but the "
                f"reference {spec.function} returns {called.described(value)}"]
    gradients = list(value) if count > 1 else [value]
    problems = [f"output {name!r}: the reference returns {called.described(g)}, not an array"
                for name, g in zip(spec.outputs, gradients) if not called.numeric(g)]
    if not _options(spec).numeric or problems:
        return problems
    for name, gradient, position in zip(spec.outputs, gradients, _options(spec).positions):
        if position >= len(args) or np.shape(args[position]) != np.shape(gradient):
            shape = np.shape(args[position]) if position < len(args) else "no argument"
            problems.append(f"wrt: gradient {name!r} has shape {np.shape(gradient)} but argument "
                            f"{position} of {spec.forward} is {shape}: set wrt = [...] to the "
                            f"positions of the arguments of each gradient")
    return problems


def _copy(value: Any) -> Any:
    return value.copy() if isinstance(value, np.ndarray) else value


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
        verdict, details, explained = checked
        verdicts.append(verdict)
        case_details.append(details)
        diagnosis = diagnosis or explained
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
) -> TestResult | tuple[scoring.CaseVerdict, dict[str, Any], str | None]:
    spec, session = case.spec, context.session
    forward = spec.forward or ""
    fwd = session.call(
        forward,
        case.args,
        case.kwargs,
        timeout=budgets.seconds(spec.timeout),
        store="fwd",
        reply=[0],
        keep_args="fwd_args",
    )
    if not fwd.ok:
        return call_failure(spec, forward, fwd)
    if not isinstance(fwd.value, list):
        return not_a_tuple(spec, forward, fwd.value)
    bwd = session.call(spec.function, [case.dout, CACHE], timeout=budgets.seconds(spec.timeout),
                       return_inputs=True)
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
    session, timeout = context.session, min(budgets.seconds(spec.timeout), called.SMALL_CALL)

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


def _compare_gradients(case: GradientCase,
                       got: list[Any]) -> tuple[list[Comparison], list[dict[str, Any]]]:
    """Each gradient against the reference's, and against central differences."""
    comparisons = [
        _accept_subgradient(
            case, compare(name, value, expected, tolerance=_options(case.spec).tolerance)
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
    kink, got = _options(case.spec).kink, comparison.got
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
    return compare(comparison.name, got, expected, tolerance=_options(case.spec).tolerance)


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
            if np.any(np.abs(grad[~winners]) > TIE):
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
    again = session.call(spec.function, [case.dout, CACHE], timeout=budgets.seconds(spec.timeout))
    _unless_busy(spec.function, again)
    again_values = unpack(again.value, count) if again.ok else None
    repeatable = again_values is not None and all(
        _same(as_array(a), b) for a, b in zip(again_values, got)
    )
    zero = session.call(spec.function, [np.zeros_like(case.dout), CACHE],
                        timeout=budgets.seconds(spec.timeout))
    _unless_busy(spec.function, zero)
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


def _unless_busy(function: str, outcome: CallOutcome) -> None:
    """A side check's call that ran out of time on a busy machine fails nothing: the whole
    test waits for review (``grader.checks.engine`` turns this into ``machine_busy``)."""
    if outcome.busy is not None:
        raise MachineBusy(function, outcome.busy)


def _inputs_unchanged(session: Session, case: GradientCase, backward: CallOutcome) -> bool:
    """The forward's arguments as the sandbox holds them after every call, and the dout the
    backward received, compared with what was sent."""
    fetched = session.request({"op": "fetch", "key": "fwd_args"}, timeout=FETCH_TIMEOUT)
    if fetched is None and (slowdown := session.busy()) is not None:
        raise MachineBusy(case.spec.function, slowdown)
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
    outputs: list[dict[str, Any]],
    properties: list[dict[str, Any]],
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
