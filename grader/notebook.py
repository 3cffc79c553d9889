"""Read a submitted notebook into plain, checked values: the first stage of the pipeline.

Everything a student can get wrong about the *file* (not JSON, empty, a Python script named
``.ipynb``, an old nbformat, huge embedded outputs) ends here as an ``UnreadableNotebook`` value
with a message for the student; nothing after this stage looks at the raw file again.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

MAX_NOTEBOOK_BYTES = 200 << 20

_MAGIC_LINE = re.compile(r"^(\s*)([%!].*)$")
_ASSIGNED_MAGIC = re.compile(r"^(\s*)([\w., ]+?)\s*=\s*[%!].*$")


# Top-level calls that fetch MNIST or train on it: the grader has no network and trains the
# network itself, so cells that make them fail there (or would waste the setup budget).
DATA_CALLS = frozenset({"load_mnist", "train_mnist", "urlretrieve", "urlopen"})


@dataclass(frozen=True)
class CodeCell:
    index: int  # Jupyter's ``In [n]`` after a top-to-bottom run: non-empty code cells, from 1
    source: str  # with IPython magics and shell escapes replaced by ``pass``
    magics: tuple[str, ...]  # the lines that were removed, for the notices
    # names a cell that downloads MNIST or trains at the top level assigns there (None: the cell
    # is not such a cell); empty: such a cell that assigns nothing
    data_names: frozenset[str] | None = None

    @property
    def loads_data(self) -> bool:
        return self.data_names is not None


@dataclass(frozen=True)
class Notebook:
    path: Path
    sha256: str
    cells: tuple[CodeCell, ...]
    notices: tuple[str, ...]

    @property
    def data_names(self) -> frozenset[str]:
        """What the cells that download MNIST or train at the top level would have defined: a
        NameError for one of these is their consequence, not a mistake of its own."""
        return frozenset().union(*(c.data_names for c in self.cells if c.loads_data))

    def function_sources(self, names: list[str]) -> dict[str, str]:
        """The source of each top-level ``def`` among ``names`` (the last one wins, as when the
        notebook runs top to bottom)."""
        found: dict[str, str] = {}
        for cell in self.cells:
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue
            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and node.name in names:
                    found[node.name] = ast.get_source_segment(cell.source, node) or ""
        return {name: found[name] for name in names if name in found}


@dataclass(frozen=True)
class UnreadableNotebook:
    path: Path
    sha256: str
    error: str


def display_name(path: Path) -> str:
    """The file name as text that any page or file can hold: bytes that are not UTF-8 (a name
    made on another system) show as U+FFFD instead of breaking the reports later."""
    return os.fsencode(path.name).decode("utf-8", "replace")


def read(path: Path) -> Notebook | UnreadableNotebook:
    """Parse ``path``; never raises for a bad submission, only for an unreadable path."""
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:  # checked before reading: the file may be any size at all
        return UnreadableNotebook(path, _digest(path), _too_large(size))
    return from_bytes(path, path.read_bytes())


def from_bytes(path: Path, raw: bytes) -> Notebook | UnreadableNotebook:
    """``read`` for a notebook already in memory (``path`` names it)."""
    digest = hashlib.sha256(raw).hexdigest()
    problem = _file_problem(raw)
    if problem:
        return UnreadableNotebook(path, digest, problem)
    try:
        # a byte order mark is how some Windows editors save UTF-8: harmless, so accepted
        document = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return UnreadableNotebook(path, digest, "not a notebook: the file is not UTF-8 text")
    except json.JSONDecodeError as exc:
        return UnreadableNotebook(path, digest, _json_problem(raw, exc))
    except RecursionError:
        return UnreadableNotebook(path, digest, "not a notebook: JSON nested too deeply")
    return _from_document(path, digest, document)


def _digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _too_large(size: int) -> str:
    return (f"not a notebook: the file is {size >> 20} MB, more than the "
            f"{MAX_NOTEBOOK_BYTES >> 20} MB allowed")


def _file_problem(raw: bytes) -> str | None:
    if not raw.strip():
        return "not a notebook: the file is empty"
    if len(raw) > MAX_NOTEBOOK_BYTES:  # it grew since the size was checked
        return _too_large(len(raw))
    return None


def _json_problem(raw: bytes, exc: json.JSONDecodeError) -> str:
    text = raw[:2000].decode("utf-8", errors="replace").lstrip()
    if re.match(r"(import |from |def |#|\"\"\"|class |print\()", text):
        return (
            "not a notebook: this looks like a Python script saved with an .ipynb name; "
            "submit the notebook itself (File > Save in Jupyter)"
        )
    return f"not a notebook: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"


def _from_document(path: Path, digest: str, document: object) -> Notebook | UnreadableNotebook:
    if not isinstance(document, dict) or "cells" not in document and "worksheets" not in document:
        return UnreadableNotebook(path, digest, "not a notebook: JSON without notebook cells")
    notices = []
    major = document.get("nbformat")
    try:
        node = nbformat.from_dict(document)
        if major != 4:
            node = nbformat.convert(node, 4)
            shown = str(major)[:20]
            notices.append(f"the notebook was in nbformat {shown}; it was converted to nbformat 4")
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds on bad input
        why = f"not a notebook: nbformat could not read it ({str(exc)[:300]})"
        return UnreadableNotebook(path, digest, why)
    raw_cells = node.get("cells", [])
    if not isinstance(raw_cells, list):
        return UnreadableNotebook(path, digest, "not a notebook: its cells are not a list")
    cells = []
    for position, cell in enumerate(raw_cells, start=1):
        source = _code_source(cell)
        if isinstance(source, str) and source.strip():  # (Jupyter does not run empty cells)
            cells.append(_code_cell(len(cells) + 1, source))
        elif source is not None and not isinstance(source, str):
            return UnreadableNotebook(path, digest, f"not a notebook: cell {position} {source[0]}")
    if not cells:
        return UnreadableNotebook(path, digest, "not a notebook to grade: it has no code cells")
    return Notebook(path, digest, tuple(cells), tuple(notices))


def _code_source(cell: object) -> str | tuple[str] | None:
    """A code cell's source; None for another kind of cell; (problem,) for a malformed one."""
    if not isinstance(cell, dict):
        return ("is not a cell (a JSON object with a cell_type)",)
    if cell.get("cell_type") != "code":
        return None
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return "".join(source)
    if isinstance(source, str):
        return source
    return ("has a source that is not text",)


def _code_cell(index: int, source: str) -> CodeCell:
    """Neutralise IPython syntax: magics and shell escapes are never executed."""
    if source.lstrip().startswith("%%"):
        first = source.lstrip().splitlines()[0]
        return CodeCell(index, "", (first,))
    code, removed = _without_magics(source)
    return CodeCell(index, code, removed, _data_names(code))


def _data_names(source: str) -> frozenset[str] | None:
    """The names assigned at the top level of a cell that calls ``DATA_CALLS`` at its top level
    (outside any function or class); None for any other cell."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    found, names = False, set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for inner in _top_level_nodes(node):
            if isinstance(inner, ast.Call):
                callee = inner.func  # load_mnist(...), urllib.request.urlretrieve(...)
                name = getattr(callee, "attr", None) or getattr(callee, "id", "")
                found = found or name in DATA_CALLS
            elif isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                names.add(inner.id)
    return frozenset(names) if found else None


def _top_level_nodes(node: ast.AST):
    """``node`` and what it contains, but not the bodies of functions, lambdas and classes."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                  ast.Lambda)):
            yield from _top_level_nodes(child)


def _without_magics(source: str) -> tuple[str, tuple[str, ...]]:
    lines, removed = [], []
    for line in source.splitlines():
        assigned, magic = _ASSIGNED_MAGIC.match(line), _MAGIC_LINE.match(line)
        if assigned and "==" not in line:
            lines.append(f"{assigned.group(1)}{assigned.group(2)} = None")
            removed.append(line.strip())
        elif magic:
            lines.append(f"{magic.group(1)}pass")
            removed.append(line.strip())
        else:
            lines.append(line)
    return "\n".join(lines), tuple(removed)
