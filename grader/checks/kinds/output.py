"""``output`` tests: the function called on seeded random inputs, each named output compared
with the reference's answer on the same inputs; a failing case is explained by the bug
patterns (``grader.checks.diagnose``) and shrunk to the smallest input that shows the bug
(``grader.checks.counterexample``). The ``example`` kind is this one with literal answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NotRequired, TypedDict

import numpy as np

from grader.checks import counterexample, diagnose, expectations, scoring
from grader.checks.compare import Comparison, compare
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
from grader.checks.kinds import called
from grader.checks.kinds.base import Kind, Options, options_of
from grader.core import budgets, schema
from grader.core.results import TestResult

if TYPE_CHECKING:
    from grader.checks.spec import Case, Rubric, TestSpec
    from grader.core.reference import Reference


@dataclass(frozen=True)
class OutputOptions(Options):
    shrinks = True

    returns: tuple[str, ...] = called.returns_key()
    outputs: tuple[str, ...] = called.outputs_key()
    bugs: tuple[str, ...] = called.bugs_key()
    shape_formula: str = called.shape_formula_key()
    timeout: budgets.Budget = called.timeout_key()
    tolerance: float = called.tolerance_key()
    warnings: str | None = called.warnings_key()
    then: str | None = called.then_key()



def _options(spec: TestSpec) -> OutputOptions:
    return options_of(spec, OutputOptions)

class OutputDetails(TypedDict):
    """What an output (or example) test records: every case's inputs and compared outputs,
    the first failing case's again at the top (the page shows it), and the smallest input that
    shows the bug."""

    cases: list[dict[str, Any]]
    outputs: list[dict[str, Any]]  # ``Comparison.details`` of each compared output
    inputs: NotRequired[str]
    counterexample: NotRequired[dict[str, Any]]
    checks: NotRequired[list[dict[str, Any]]]  # ``scoring.tally``


class Output(Kind):
    name = "output"
    meaning = "compared with the reference on seeded random inputs."
    options = OutputOptions
    case_keys: ClassVar[tuple[str, ...]] = ("args", "kwargs")

    def cross_check(self, spec: TestSpec, *, where: str, functions: tuple[str, ...],
                    problems: schema.Problems) -> None:
        super().cross_check(spec, where=where, functions=functions, problems=problems)
        if spec.returns:
            for name in spec.outputs:
                if name not in spec.returns:
                    problems.add(f"{where}: outputs names {name!r}, which is not in returns "
                                 f"({', '.join(spec.returns)})"
                                 f"{schema.did_you_mean(name, spec.returns)}")
        elif len(spec.outputs) != 1:
            problems.add(f"{where}: outputs names {len(spec.outputs)} values; a function "
                         f"returning a tuple needs returns = [...] naming all it returns")

    def check_reference(self, spec: TestSpec, rubric: Rubric, reference: Reference) -> list[str]:
        return called.check_cases(spec, rubric, reference, self._check_case)

    def _check_case(self, spec: TestSpec, reference: Reference, args: list[Any],
                    kwargs: dict[str, Any], case: Case) -> list[str]:
        value = reference[spec.function](*args, **kwargs)
        if spec.returns:
            if not isinstance(value, tuple) or len(value) != len(spec.returns):
                return [f"returns names {len(spec.returns)} values ({', '.join(spec.returns)}) "
                        f"but the reference {spec.function} returns {called.described(value)}"]
            values = {name: value[spec.returns.index(name)] for name in spec.outputs}
        elif isinstance(value, tuple):
            return [f"the reference {spec.function} returns {called.described(value)}: name "
                    f"them with returns = [...] and pick the compared ones with outputs = [...]"]
        else:
            values = {spec.outputs[0]: value}
        return [f"output {name!r}: the reference returns {called.described(v)}, not an array"
                for name, v in values.items() if not called.numeric(v)]

    def prepare(self, spec: TestSpec, rubric: Rubric, reference: Reference) -> None:
        for number in range(len(spec.cases)):
            expectations.output_case(spec, rubric, reference, number)

    def run(self, spec: TestSpec, context: Context) -> TestResult:
        """Call the function on each case and compare the named outputs with the expected ones;
        each output of each case that matches earns its share (``grader.checks.scoring``)."""
        verdicts, diagnosis, notes = [], None, set()
        case_details: list[dict[str, Any]] = []
        for number, case in enumerate(spec.cases):
            checked = _output_case(spec, context, number, case)
            if isinstance(checked, TestResult):
                return checked
            comparisons, args, kwargs = checked
            verdict = scoring.CaseVerdict({c.name: c.passed for c in comparisons})
            verdicts.append(verdict)
            case_details.append({"inputs": describe_inputs(context, spec.function, args, kwargs),
                                 "outputs": [c.details() for c in comparisons]})
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
        failing = next((d for d in case_details if not all(o["passed"] for o in d["outputs"])),
                       None)
        details: OutputDetails = {"cases": case_details,  # (then the failing case's again)
                                  "outputs": (failing or case_details[-1])["outputs"]}
        if failing is not None:
            details = {"cases": case_details, "inputs": failing["inputs"],
                       "outputs": failing["outputs"]}
        if found is not None:
            details["counterexample"] = found.details()
        return scored(spec, verdicts, message, diagnosis=diagnosis, details=details)

    def record(self, spec: TestSpec, context: Context) -> None:
        """The reference's answers on the test's inputs, on the smallest candidates, and the bug
        patterns' reruns, found by diagnosing made-up wrong answers (every pattern runs)."""
        for number, case in enumerate(spec.cases):
            counterexample.candidates(spec, context.rubric, context.reference, number)
            args, kwargs = expectations.case_inputs(spec, context.rubric, number)
            expected = expectations.expected_outputs(spec, case, context.reference[spec.function],
                                                     args, kwargs)
            for index in range(len(expected)):
                for got in called.wrong_answers(expected[index]):
                    comparisons = [compare(n, got if i == index else e, e)
                                   for i, (n, e) in enumerate(zip(spec.outputs, expected))]
                    _explain(spec, context, comparisons, args, kwargs)


def _student_output(spec: TestSpec, context: Context) -> Callable[[Any], list[Any] | None]:
    """What the student's function gives on a small input (``grader.checks.counterexample``),
    as the values the test compares; None where the call gives nothing to compare."""
    positions = expectations.positions(spec)

    def got_of(candidate: Any) -> list[Any] | None:
        outcome = context.session.call(
            spec.function, candidate.args, candidate.kwargs,
            timeout=min(budgets.seconds(spec.timeout), called.SMALL_CALL),
            warnings=_options(spec).warnings,
            reply=positions if spec.returns else "value")
        got = unpack(outcome.value, 1) if outcome.ok and not spec.returns else outcome.value
        if not outcome.ok or outcome.guards or not isinstance(got, list):
            return None
        return [_finish(spec, as_array(g)) for g in got]

    return got_of


def _output_case(spec: TestSpec, context: Context, number: int,
                 case: Case) -> TestResult | tuple[list[Comparison], list[Any], dict[str, Any]]:
    """One case's comparisons, or the result of a call that gave nothing to compare."""
    known = expectations.output_case(spec, context.rubric, context.reference, number)
    args, kwargs, expected = known.args, known.kwargs, known.expected
    positions = expectations.positions(spec)
    outcome = context.session.call(spec.function, args, kwargs,
                                   timeout=budgets.seconds(spec.timeout),
                                   reply=positions if spec.returns else "value",
                                   warnings=_options(spec).warnings)
    if not outcome.ok:
        return call_failure(spec, spec.function, outcome)
    if guard := guard_failure(spec, outcome):
        return guard
    got = unpack(outcome.value, 1) if not spec.returns else outcome.value
    if not isinstance(got, list):
        return not_a_tuple(spec, spec.function, outcome.value)
    if len(got) < len(expected):
        return result(spec, 0.0, f"`{spec.function}` returned {describe_value(outcome.value)}; "
                                 f"expected {', '.join(spec.outputs)}.",
                      details={"inputs": describe_inputs(context, spec.function, args, kwargs)})
    comparisons = [compare(n, _finish(spec, as_array(g)), e, tolerance=_options(spec).tolerance)
                   for n, g, e in zip(spec.outputs, got, expected)]
    return comparisons, args, kwargs


def _finish(spec: TestSpec, got: Any) -> Any:
    if _options(spec).then == "relu" and isinstance(got, np.ndarray):
        return np.maximum(got, 0)
    return got


def _explain(spec: TestSpec, context: Context, comparisons: list[Comparison], args: list[Any],
             kwargs: dict[str, Any]) -> str:
    for comparison, position in zip(comparisons, expectations.positions(spec)):
        if comparison.passed:
            continue
        reference = context.reference[spec.function]
        if _options(spec).then == "relu":  # the bug patterns must see what was compared

            def reference(*a: Any, _plain: Callable[..., Any] = reference, **k: Any) -> Any:
                return np.maximum(_plain(*a, **k), 0)

        found = diagnose.diagnose(
            diagnose.Context(function=spec.function, output=comparison.name,
                             comparison=comparison, args=args, kwargs=kwargs,
                             reference=reference,
                             output_index=position if spec.returns else None,
                             shape_formula=spec.shape_formula),
            spec.bugs)
        return found or plain_failure(comparison)
    return ""
