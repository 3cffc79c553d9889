"""``signature`` tests: the function keeps the template's parameters, as the notebook asks
("keep the name and the parameters of the template"): the same names, in the same order, of
the same kinds, and, with ``defaults = true``, the same default values.

Read from the notebook's source, where its last definition of the function stands (as when it
runs top to bottom), against the reference's own signature: no call runs, so it needs nothing
of the student's code to work yet and nothing of a sandbox. This kind is the example of one:
this module and ``templates/kinds/signature.html.j2``, named in ``grader.checks.kinds``.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from grader.checks.context import Context, result
from grader.checks.kinds.base import Kind, Options, key
from grader.core import schema
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


class SignatureDetails(TypedDict, total=False):
    expected: str  # the template's parameters, e.g. "x, w, stride=1"
    found: str  # the notebook's, where it defines the function


class Signature(Kind):
    name = "signature"
    meaning = "the function keeps the template's parameters (names, order, defaults)."
    options = SignatureOptions
    guarded = False  # (a library call in the body changes nothing of the parameters)
    exported = False  # (the self-check carries the reference's parameter names, not defaults)

    def check_reference(self, spec: TestSpec, rubric: Rubric, reference: Reference) -> list[str]:
        if spec.function in reference.functions and _of_reference(
                reference[spec.function], spec.options.defaults) is None:
            return [f"{rubric.path.name}: test {spec.name!r}: the reference {spec.function} "
                    f"has no signature the grader can read"]
        return []

    def prepare(self, spec: TestSpec, rubric: Rubric, reference: Reference) -> None:
        expected(spec, reference)

    def run(self, spec: TestSpec, context: Context) -> TestResult:
        wanted = expected(spec, context.reference)
        found = _of_notebook(context.session.notebook, spec.function, spec.options.defaults)
        details: SignatureDetails = {"expected": wanted or ""}
        if found is None:
            return result(spec, 0.0, f"`{spec.function}` is not defined in your notebook: keep "
                                     f"the name and the parameters of the template.",
                          status="error", details=details)
        details["found"] = found
        if found == wanted:
            return result(spec, 1.0, f"`{spec.function}({found})` keeps the template's "
                                     f"parameters.", details=details)
        return result(spec, 0.0, f"`{spec.function}` takes ({found}) where the template has "
                                 f"({wanted}): keep the template's parameter names, order and "
                                 f"defaults, so that every caller, the grader's included, can "
                                 f"call it.", details=details)


def expected(spec: TestSpec, reference: Reference) -> str | None:
    """The reference's parameters in words, once per reference (``Reference.memo``)."""
    memo_key = ("signature", spec.function, spec.options.defaults)
    if memo_key not in reference.memo:
        function = reference.functions.get(spec.function)
        reference.memo[memo_key] = (_of_reference(function, spec.options.defaults)
                                    if function is not None else None)
    found: str | None = reference.memo[memo_key]
    return found


def _of_reference(function: Callable[..., Any], defaults: bool) -> str | None:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    shown = []
    for parameter in parameters:
        default = (None if parameter.default is inspect.Parameter.empty or not defaults
                   else repr(parameter.default))
        shown.append((parameter.kind.name, parameter.name, default))
    return _words(shown)


def _of_notebook(notebook: Notebook, name: str, defaults: bool) -> str | None:
    """The parameters of the notebook's last top-level definition of ``name``, or None."""
    found = None
    for cell in notebook.cells:
        try:
            tree = ast.parse(cell.source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                found = node.args
    return _words(_of_arguments(found, defaults)) if found is not None else None


def _of_arguments(arguments: ast.arguments, defaults: bool) -> list[tuple[str, str, str | None]]:
    """(kind, name, default) of each parameter, as ``inspect.Parameter`` names the kinds."""
    positional = [*arguments.posonlyargs, *arguments.args]
    filled = [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
    shown: list[tuple[str, str, str | None]] = []
    for index, (argument, default) in enumerate(zip(positional, filled)):
        kind = "POSITIONAL_ONLY" if index < len(arguments.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        shown.append((kind, argument.arg, _default(default, defaults)))
    if arguments.vararg is not None:
        shown.append(("VAR_POSITIONAL", arguments.vararg.arg, None))
    for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults):
        shown.append(("KEYWORD_ONLY", argument.arg, _default(default, defaults)))
    if arguments.kwarg is not None:
        shown.append(("VAR_KEYWORD", arguments.kwarg.arg, None))
    return shown


def _default(node: ast.expr | None, defaults: bool) -> str | None:
    if node is None or not defaults:
        return None
    try:
        return repr(ast.literal_eval(node))  # (as the reference's default reads: 1.0, not 1.)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return ast.unparse(node)


def _words(parameters: list[tuple[str, str, str | None]]) -> str:
    """``x, w, stride=1``, with ``*``, ``/`` and ``**`` as Python writes them."""
    parts: list[str] = []
    for index, (kind, name, default) in enumerate(parameters):
        if kind == "KEYWORD_ONLY" and not any(k == "VAR_POSITIONAL" for k, _, _ in parameters) \
                and "*" not in parts:
            parts.append("*")
        prefix = {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}.get(kind, "")
        parts.append(f"{prefix}{name}" + (f"={default}" if default is not None else ""))
        following = parameters[index + 1][0] if index + 1 < len(parameters) else None
        if kind == "POSITIONAL_ONLY" and following != "POSITIONAL_ONLY":
            parts.append("/")
    return ", ".join(parts)
