"""The reference notebook's solution markers, and the template made from it.

Inside a cell of ``solutions/NAME.ipynb``, the lines from a ``### BEGIN SOLUTION`` line to the
matching ``### END SOLUTION`` line (markers are whole lines once surrounding whitespace is
stripped) are replaced by one stub line, indented like the BEGIN marker:

* in code cells, ``raise NotImplementedError("<hint>")``, where the hint is taken from an
  optional first line ``# HINT: <hint>`` inside the region, else :data:`DEFAULT_HINT`;
* in markdown (and raw) cells, the line ``YOUR ANSWER HERE``.

Outputs and execution counts are cleared and volatile metadata is dropped, so the template
depends only on the solution's content and is byte-identical on every run
(``render_assignment``). ``grader.distribute.assign`` writes it for students; validation and
the class view read it too.
"""


from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat

from grader.core import schema
from grader.core.errors import GraderError

BEGIN_MARKER = "### BEGIN SOLUTION"
END_MARKER = "### END SOLUTION"
HINT_PREFIX = "# HINT:"
DEFAULT_HINT = "Replace this line with your code."
MARKDOWN_STUB = "YOUR ANSWER HERE"

#: Cell metadata written by front ends as a side effect of running or viewing a cell.
VOLATILE_CELL_METADATA = frozenset({"execution", "ExecuteTime", "collapsed", "scrolled"})
#: Notebook metadata that is kept; everything else (widget state, editor settings, ...) is not.
KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info", "title", "authors")

# Something that looks like a marker but is not exactly one (``##BEGIN SOLUTION``,
# ``### end solution``, ``### BEGIN SOLUTION here``): left alone it would leak a solution.
_NEAR_MARKER = re.compile(r"#+\s*(BEGIN|END)\s+SOLUTION", re.IGNORECASE)


def _stub_line(cell_type: str, indent: str, hint: str | None) -> str:
    if cell_type == "code":
        message = json.dumps(hint or DEFAULT_HINT, ensure_ascii=False)
        return f"{indent}raise NotImplementedError({message})"
    return f"{indent}{MARKDOWN_STUB}"


def strip_source(source: str, *, cell_type: str = "code", where: str = "cell") -> str:
    """Replace every solution region in one cell's source by its stub line.

    ``where`` names the cell in error messages (e.g. ``"solutions/x.ipynb, cell 3"``).
    Raises :class:`GraderError` for an unclosed region, a nested BEGIN, an END without BEGIN,
    or a line that looks like a misspelt marker.
    """
    if not isinstance(source, str):  # a list of lines, as stored on disk
        source = "".join(source)
    lines = source.split("\n")
    out: list[str] = []
    begin_line = 0  # 1-based line of the open region's BEGIN marker; 0 when outside a region
    indent = ""
    hint: str | None = None
    first_in_region = False
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped == BEGIN_MARKER:
            if begin_line:
                raise GraderError(
                    f"{where}, line {number}: nested {BEGIN_MARKER} (the region opened on line "
                    f"{begin_line} is not closed yet); close it with {END_MARKER} first"
                )
            begin_line = number
            indent = line[: len(line) - len(line.lstrip())]
            hint = None
            first_in_region = True
        elif stripped == END_MARKER:
            if not begin_line:
                raise GraderError(
                    f"{where}, line {number}: {END_MARKER} without a matching {BEGIN_MARKER}"
                )
            out.append(_stub_line(cell_type, indent, hint))
            begin_line = 0
        elif _NEAR_MARKER.search(line):
            raise GraderError(
                f"{where}, line {number}: {stripped!r} looks like a solution marker but is not "
                f"exactly {BEGIN_MARKER!r} or {END_MARKER!r} on a line of its own"
            )
        elif begin_line:
            if first_in_region and stripped.startswith(HINT_PREFIX):
                hint = stripped[len(HINT_PREFIX) :].strip() or None
            first_in_region = False
        else:
            out.append(line)
    if begin_line:
        raise GraderError(
            f"{where}, line {begin_line}: {BEGIN_MARKER} is never closed by {END_MARKER}"
        )
    return "\n".join(out)


def strip_solutions(nb: nbformat.NotebookNode, *, name: str) -> nbformat.NotebookNode:
    """Return an assignment copy of the solution notebook ``nb`` (which is left unchanged).

    ``name`` identifies the notebook in error messages; cells are numbered from 1.
    """
    result = copy.deepcopy(nb)
    result.metadata = _clean_notebook_metadata(result.get("metadata", {}))
    if result.nbformat == 4 and result.get("nbformat_minor", 0) < 5:
        result.nbformat_minor = 5
    used_ids = {cell.get("id") for cell in result.cells if cell.get("id")}
    for number, cell in enumerate(result.cells, start=1):
        cell.source = strip_source(
            cell.source, cell_type=cell.cell_type, where=f"{name}, cell {number}"
        )
        cell.metadata = nbformat.from_dict(
            {k: v for k, v in cell.get("metadata", {}).items() if k not in VOLATILE_CELL_METADATA}
        )
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if not cell.get("id"):
            cell.id = _fresh_id(number, used_ids)
    return result


def _clean_notebook_metadata(metadata: dict[str, Any]) -> nbformat.NotebookNode:
    kept = {key: copy.deepcopy(metadata[key]) for key in KEPT_NOTEBOOK_METADATA if key in metadata}
    if isinstance(kept.get("language_info"), dict):
        kept["language_info"].pop("version", None)  # the Python version of the last kernel
    node: nbformat.NotebookNode = nbformat.from_dict(kept)
    return node


def _fresh_id(number: int, used: set[str]) -> str:
    candidate, suffix = f"cell-{number}", 0
    while candidate in used:
        suffix += 1
        candidate = f"cell-{number}-{suffix}"
    used.add(candidate)
    return candidate


def solution_leaks(
    nb: nbformat.NotebookNode, *, name: str, functions: Iterable[str]
) -> list[str]:
    """One line for each of ``functions`` that ``nb`` defines without a solution region inside
    the definition: the template would hand out its body, solution and all."""
    wanted, leaks = set(functions), []
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        try:
            tree = ast.parse(source)
        except SyntaxError:  # (the reference loader names the cell)
            continue
        lines = source.split("\n")
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            span = lines[node.lineno - 1 : node.end_lineno]
            if node.name in wanted and not any(line.strip() == BEGIN_MARKER for line in span):
                leaks.append(
                    f"{name}, cell {number}: `{node.name}` has no {BEGIN_MARKER} / {END_MARKER}"
                    f" region, so the template would hand out its solution: put its body "
                    f"between the markers, or list it in [assignment].given if students get it "
                    f"complete"
                )
    return leaks


def render_assignment(solution: Path, *, functions: Iterable[str] = ()) -> bytes:
    """The exact bytes of the assignment notebook for one solution notebook file; refuses when
    one of ``functions`` would keep its solution."""
    try:
        nb = nbformat.read(solution, as_version=4)
    except Exception as exc:  # malformed JSON or not a notebook at all
        raise GraderError(f"{solution}: cannot read it as a notebook: {exc}") from exc
    problems = schema.Problems()
    for leak in solution_leaks(nb, name=str(solution), functions=functions):
        problems.add(leak)
    problems.raise_any()
    text: str = nbformat.writes(strip_solutions(nb, name=str(solution)))
    if not text.endswith("\n"):
        text += "\n"
    return text.encode("utf-8")


