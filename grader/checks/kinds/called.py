"""What the kinds whose tests call a function on cases share (``example``, ``output``,
``gradient``): the keys they have in common, and checking each case against the reference
before any student sees it (``check_cases``): a keyword the function does not take, an output
name it does not return.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from grader.checks import expectations
from grader.checks.compare import DEFAULT_TOLERANCE
from grader.checks.kinds.base import key
from grader.core import budgets, schema

if TYPE_CHECKING:
    from grader.checks.spec import Case, Rubric, TestSpec
    from grader.core.reference import Reference

BUDGET_TYPE = "seconds > 0, or { times_reference, at_least, at_most }"
TIMEOUT = 10.0  # seconds each call may take, unless the rubric says otherwise
SMALL_CALL = 2.0  # seconds for a call on a counterexample's few numbers


def _budget(value: Any, where: str) -> budgets.Budget:
    return budgets.parse(value, where)


# --- the keys they share (fresh fields: each kind declares its own, in its own order) ---------


def returns_key() -> Any:
    return key((), "list of strings",
               "Names of everything the function returns, in order, when it returns a tuple "
               "(e.g. `[\"out\", \"cache\"]`). Leave out for a function returning one value.",
               schema.strings, shown=[])


def outputs_key() -> Any:
    return key(("out",), "list of strings",
               "The returned values that are compared and earn points, by name: a subset of "
               "`returns`. A name must be the one the reference's `return` statement uses, when "
               "it returns a plain variable.", schema.strings, shown=["out"])


def bugs_key() -> Any:
    return key((), "list of strings",
               "Bug patterns to look for when a comparison fails, to explain it (e.g. "
               "`flipped_kernel`, `stride_ignored`, `relu_no_mask`; see "
               "`grader/checks/diagnose.py`).", schema.strings, shown=[])


def shape_formula_key() -> Any:
    return key("", "string", "The output shape in words, quoted when a student's shape is wrong.",
               schema.text)


def timeout_key() -> Any:
    return key(TIMEOUT, BUDGET_TYPE,
               "Seconds each call of the function may take, or relative to the reference's own "
               "time for it on the grading machine.", _budget)


def tolerance_key(extra: str = "") -> Any:
    return key(DEFAULT_TOLERANCE, "number > 0",
               "The largest relative error accepted, max |got − expected| / max(max |expected|, "
               "max |got|). A float32 result is allowed float32's tolerance (with a note)."
               + extra, schema.number(0, above=True))


def warnings_key() -> Any:
    return key(None, "string",
               "`\"error\"`: the call runs with NumPy's overflow, invalid-value and "
               "division-by-zero warnings raised as errors, as a notebook's own check cell can "
               "make them: a formula that is not numerically stable fails even where its values "
               "come out right.", schema.one_of(("error",)), shown="—")


def then_key() -> Any:
    return key(None, "string",
               "`\"relu\"`: apply ReLU to the returned value before comparing (the lecture's "
               "\"convolution then ReLU\" examples).", schema.one_of(("relu",)), shown="—")


# --- checking the cases against the reference -------------------------------------------------


def target(spec: TestSpec) -> str:
    """The function a case's arguments go to: the forward, for gradient tests."""
    return spec.forward or spec.function


def check_cases(spec: TestSpec, rubric: Rubric, reference: Reference,
                check: Callable[[TestSpec, Reference, list[Any], dict[str, Any], Case],
                                list[str]]) -> list[str]:
    """Every case called on the reference in this process, on the very inputs the grader will
    generate (``check`` says what is wrong with what came back), then the names of the
    compared outputs against the reference's ``return`` statement."""
    if target(spec) not in reference.functions:
        return []  # (validation says the notebook does not define it)
    where = f"{rubric.path.name}: test {spec.name!r}"
    function = reference[target(spec)]
    problems: list[str] = []
    for number, case in enumerate(spec.cases):
        spot = f"{where}: cases[{number}]" if len(spec.cases) > 1 else where
        wrong = _signature(spot, target(spec), function, case)
        if wrong:
            problems.append(wrong)
            continue
        args, kwargs = expectations.case_inputs(spec, rubric, number)
        try:
            found = check(spec, reference, args, kwargs, case)
        except Exception as exc:  # noqa: BLE001 - the instructor's reference on the rubric's inputs
            found = [f"the reference {target(spec)} raised {type(exc).__name__}: {exc}"]
        problems += [f"{spot}: {line}" for line in found]
        if found:
            break  # the other cases would say the same
    return problems + _names(where, spec, reference)


def _signature(spot: str, name: str, function: Callable[..., Any], case: Case) -> str | None:
    signature = inspect.signature(function)
    parameters = signature.parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for key_name in case.kwargs:
        if key_name not in parameters and not takes_any:
            return (f"{spot}: kwargs: {name}() has no parameter {key_name!r}"
                    f"{schema.did_you_mean(key_name, parameters)}; its parameters: "
                    f"{', '.join(parameters)}")
    try:
        signature.bind(*case.args, **case.kwargs)
    except TypeError as exc:
        return f"{spot}: {name}{signature} cannot be called with these arguments: {exc}"
    return None


def _names(where: str, spec: TestSpec, reference: Reference) -> list[str]:
    """A compared output must carry the name the reference returns it under, when the reference
    returns a plain variable there: the feedback names it, and so does the template."""
    returned = returned_names(reference.sources.get(spec.function, ""), spec.function)
    if returned is None:
        return []
    problems = []
    for index, name in enumerate(spec.outputs):
        position = spec.returns.index(name) if spec.returns else index
        actual = returned[position] if position < len(returned) else None
        if actual is not None and actual != name:
            problems.append(f"{where}: outputs names {name!r} but {spec.function} returns "
                            f"{actual!r} there (return {', '.join(n or '…' for n in returned)})")
    return problems


def returned_names(source: str, function: str) -> list[str | None] | None:
    """The variable names of the function's return statements, position by position (None
    where it returns an expression), or None when its returns disagree."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    definition = next((n for n in tree.body if isinstance(n, ast.FunctionDef)
                       and n.name == function), None)
    if definition is None:
        return None
    shapes = set()
    for node in ast.walk(definition):
        if isinstance(node, ast.Return) and node.value is not None:
            items = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            shapes.add(tuple(i.id if isinstance(i, ast.Name) else None for i in items))
    return list(shapes.pop()) if len(shapes) == 1 else None


def numeric(value: Any) -> bool:
    try:
        return bool(np.asarray(value, dtype=np.float64).dtype == np.float64)
    except (TypeError, ValueError):
        return False


def described(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} values"
    if isinstance(value, np.ndarray):
        return f"one array of shape {value.shape}"
    return f"a {type(value).__name__}"


# --- the self-check's made-up wrong answers --------------------------------------------------


def wrong_answers(expected: np.ndarray) -> list[np.ndarray]:
    """Answers that match no bug pattern, so that every pattern runs (and reruns the
    reference); the patterns' reruns depend on the inputs, not on the answer's values."""
    rng = np.random.default_rng(0)
    return [rng.standard_normal(expected.shape), np.zeros(expected.shape),
            rng.standard_normal((expected.size + 1,))]
