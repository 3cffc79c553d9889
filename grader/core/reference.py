"""The reference implementation: the functions of ``solutions/<name>.ipynb``, loaded into the
grader's own process. The instructor writes each function once, in the notebook students see a
stubbed copy of, and the grader trusts it (the tests check it against the lecture's worked
examples and numerical gradients). Only definitions run: a solution's top-level demo, such as
training on MNIST, is skipped.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from grader.core import notebook
from grader.core.errors import GraderError


@dataclass(frozen=True)
class Reference:
    functions: dict[str, Callable[..., Any]]
    sources: dict[str, str]  # each function with the helpers it uses, runnable on its own
    # the solution notebook's SHA-256; None for a stand-in (``grader.distribute.replay``,
    # ``selfcheck``)
    digest: str | None = None
    # What is computed from the reference alone, once (``grader.checks.expectations``: each
    # case's inputs and answers; ``grader.checks.culprit``: its own short training run): kept
    # with it, so it lives as long as the reference does, and a stand-in that records or
    # replays its calls (``grader.distribute``) gets its own and sees every call.
    memo: dict[Any, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self.functions[name]


@functools.cache
def load(solution: Path) -> Reference:
    """The reference's functions, read the way submissions are read (``grader.core.notebook``:
    plain JSON, no schema validation on each batch's critical path; ``grader validate``
    checks the solution notebooks)."""
    read = notebook.read(solution)
    if isinstance(read, notebook.UnreadableNotebook):
        raise GraderError(f"{solution.name}: {read.error}")
    namespace: dict[str, Any] = {"__name__": "__reference__"}
    definitions: dict[str, ast.stmt] = {}
    imports: list[str] = []
    for cell in read.cells:
        if any(magic.lstrip().startswith("%%") for magic in cell.magics):
            raise GraderError(f"{solution.name}: code cell {cell.index} starts with a cell magic "
                              f"({cell.magics[0].strip()[:40]}), so its code would not run; "
                              f"remove the magic")
        try:
            tree = ast.parse(cell.source)
        except SyntaxError as exc:
            raise GraderError(f"{solution.name}: code cell {cell.index} has a syntax error: "
                              f"{exc}") from None
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imports.append(ast.unparse(node))
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) or _is_constant(node):
                definitions[_name(node)] = node
    body = ast.Module(
        body=[*ast.parse("\n".join(imports)).body, *definitions.values()], type_ignores=[]
    )
    exec(compile(body, str(solution), "exec"), namespace)  # trusted instructor code
    functions = {n: f for n, f in namespace.items() if callable(f) and n in definitions}
    sources = {n: _standalone(n, definitions, imports) for n in functions}
    return Reference(functions, sources, read.sha256)


def _is_constant(node: ast.stmt) -> TypeGuard[ast.Assign]:
    return (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    )


def _name(node: ast.FunctionDef | ast.ClassDef | ast.Assign) -> str:
    """The name a definition binds (an ``Assign`` here is one ``_is_constant`` accepted)."""
    if isinstance(node, ast.Assign):
        target = node.targets[0]
        assert isinstance(target, ast.Name)  # _is_constant: one plain name
        return target.id
    return node.name


def _standalone(name: str, definitions: dict[str, ast.stmt], imports: list[str]) -> str:
    """The source of ``name`` plus every definition it reaches, for the MNIST diagnostic."""
    needed, queue = [], [name]
    while queue:
        current = queue.pop()
        if current in needed or current not in definitions:
            continue
        needed.append(current)
        queue += [n.id for n in ast.walk(definitions[current]) if isinstance(n, ast.Name)]
    parts = imports + [ast.unparse(definitions[n]) for n in reversed(needed)]
    return "\n\n".join(parts)
