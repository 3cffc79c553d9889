"""``signature`` tests: the function keeps the template's parameters, as the notebook asks
("keep the name and the parameters of the template"): the same names, in the same order, of
the same kinds, and, with ``defaults = true``, the same default values (``1`` and ``1.0`` are
the same value). A renamed parameter breaks every caller that passes it by name, the grader's
own tests included, which then only say that the call failed: this test says why.

Read from the notebook's source, where its last definition of the function stands (as when it
runs top to bottom), against the reference's own signature: no call runs, so it needs nothing
of the student's code to work yet and nothing of a sandbox. This kind is the example of one:
this module and ``templates/kinds/signature.html.j2``, named in ``grader.checks.kinds``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

from grader.checks.context import Context, result
from grader.checks.kinds.base import Kind, Options, key, options_of
from grader.core import schema
from grader.core.notebook import module_statements
from grader.core.results import TestResult

if TYPE_CHECKING:
    from grader.checks.spec import Rubric, TestSpec
    from grader.core.notebook import Notebook
    from grader.core.reference import Reference


@dataclass(frozen=True)
class SignatureOptions(Options):
    defaults: bool = key(True, "boolean",
                         "Compare the parameters' default values too (`stride=1`); `false`: "
                         "their names, order and kinds only.", schema.boolean)



def _options(spec: TestSpec) -> SignatureOptions:
    return options_of(spec, SignatureOptions)

class SignatureDetails(TypedDict, total=False):
    expected: str  # the template's parameters, e.g. "x, w, stride=1"
    found: str  # the notebook's, where it defines the function


class Parameter(NamedTuple):
    """One parameter: its kind as ``inspect.Parameter`` names it, its name and its default
    as Python writes it (None: none, or not compared), and what the default compares by."""

    kind: str
    name: str
    default: str | None = None
    value: Any = None  # a literal default's value (numbers as floats), else its text

    def compared(self) -> tuple[str, str, Any]:
        return self.kind, self.name, self.value


class Signature(Kind):
    name = "signature"
    meaning = "the function keeps the template's parameters (names, order, defaults)."
    options = SignatureOptions
    guarded = False  # (a library call in the body changes nothing of the parameters)
    exported = False  # (the self-check carries the reference's parameter names, not defaults)
    template_may_score = True  # (the untouched template keeps its own parameters)

    def check_reference(self, spec: TestSpec, rubric: Rubric, reference: Reference) -> list[str]:
        if spec.function in reference.functions and expected(spec, reference) is None:
            return [f"{rubric.path.name}: test {spec.name!r}: the reference {spec.function} "
                    f"has no signature the grader can read"]
        return []

    def prepare(self, spec: TestSpec, rubric: Rubric, reference: Reference) -> None:
        expected(spec, reference)

    def run(self, spec: TestSpec, context: Context) -> TestResult:
        wanted = expected(spec, context.reference) or []
        found = _of_notebook(context.session.notebook, spec.function, _options(spec).defaults)
        details: SignatureDetails = {"expected": _words(wanted)}
        if found is None:
            return result(spec, 0.0, f"`{spec.function}` is not defined in your notebook: keep "
                                     f"the name and the parameters of the template.",
                          status="error", details=details)
        details["found"] = _words(found)
        if [p.compared() for p in found] == [p.compared() for p in wanted]:
            return result(spec, 1.0, f"`{spec.function}({details['found']})` keeps the "
                                     f"template's parameters.", details=details)
        return result(spec, 0.0, f"`{spec.function}` takes ({details['found']}) where the "
                                 f"template has ({details['expected']}): keep the template's "
                                 f"parameter names, order and defaults, so that every caller, "
                                 f"the grader's included, can call it.", details=details)


def expected(spec: TestSpec, reference: Reference) -> list[Parameter] | None:
    """The reference's parameters, once per reference (``Reference.memo``); None where it has
    no signature to read."""
    memo_key = ("signature", spec.function, _options(spec).defaults)
    if memo_key not in reference.memo:
        # read from its source as the notebook's are, so that a default written as a name
        # (`eps=EPS`) compares as text on both sides and a literal by its value
        source = reference.sources.get(spec.function)
        reference.memo[memo_key] = (_of_sources([source], spec.function,
                                                _options(spec).defaults)
                                    if source is not None else None)
    found: list[Parameter] | None = reference.memo[memo_key]
    return found


def _of_notebook(notebook: Notebook, name: str, defaults: bool) -> list[Parameter] | None:
    """The parameters of the notebook's last definition of ``name`` that runs at the module
    level (in a cell, or in its top-level ``if``, ``try``, ``with``... blocks), or None."""
    return _of_sources([cell.source for cell in notebook.cells], name, defaults)


def _of_sources(sources: list[str], name: str, defaults: bool) -> list[Parameter] | None:
    found = None
    for source in sources:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in module_statements(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                found = node.args
    return _of_arguments(found, defaults) if found is not None else None


def _of_arguments(arguments: ast.arguments, defaults: bool) -> list[Parameter]:
    positional = [*arguments.posonlyargs, *arguments.args]
    filled: list[ast.expr | None] = [None] * (len(positional) - len(arguments.defaults))
    filled += arguments.defaults
    found: list[Parameter] = []
    for index, (argument, default) in enumerate(zip(positional, filled)):
        kind = "POSITIONAL_ONLY" if index < len(arguments.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        found.append(_parameter(kind, argument.arg, default, defaults))
    if arguments.vararg is not None:
        found.append(Parameter("VAR_POSITIONAL", arguments.vararg.arg))
    for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults):
        found.append(_parameter("KEYWORD_ONLY", argument.arg, default, defaults))
    if arguments.kwarg is not None:
        found.append(Parameter("VAR_KEYWORD", arguments.kwarg.arg))
    return found


def _parameter(kind: str, name: str, node: ast.expr | None, defaults: bool) -> Parameter:
    if node is None or not defaults:
        return Parameter(kind, name)
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        text = ast.unparse(node)
        return Parameter(kind, name, text, text)
    return Parameter(kind, name, repr(value), _value(value))  # (1.0 as the reference has it)


def _value(value: Any) -> Any:
    """What a default compares by: numbers by value (``1`` is ``1.0``), anything else by how
    Python writes it."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return repr(value)


def _words(parameters: list[Parameter]) -> str:
    """``x, w, stride=1``, with ``*``, ``/`` and ``**`` as Python writes them."""
    parts: list[str] = []
    kinds = [p.kind for p in parameters]
    for index, parameter in enumerate(parameters):
        if (parameter.kind == "KEYWORD_ONLY" and "VAR_POSITIONAL" not in kinds
                and "*" not in parts):
            parts.append("*")
        prefix = {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}.get(parameter.kind, "")
        default = f"={parameter.default}" if parameter.default is not None else ""
        parts.append(f"{prefix}{parameter.name}{default}")
        following = kinds[index + 1] if index + 1 < len(kinds) else None
        if parameter.kind == "POSITIONAL_ONLY" and following != "POSITIONAL_ONLY":
            parts.append("/")
    return ", ".join(parts)
