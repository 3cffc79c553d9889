"""Read a submitted notebook into plain, checked values: the first stage of the pipeline.

Everything a student can get wrong about the *file* (not JSON, empty, a Python script named
``.ipynb``, an old nbformat, huge embedded outputs) ends here as an ``UnreadableNotebook`` value
with a message for the student; nothing after this stage looks at the raw file again.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

MAX_NOTEBOOK_BYTES = 200 << 20

_MAGIC_LINE = re.compile(r"^(\s*)([%!].*)$")
_ASSIGNED_MAGIC = re.compile(r"^(\s*)([\w., ]+?)\s*=\s*[%!].*$")


@dataclass(frozen=True)
class CodeCell:
    index: int  # 1-based position among all cells, as a student counts them in Jupyter
    source: str  # with IPython magics and shell escapes replaced by ``pass``
    magics: tuple[str, ...]  # the lines that were removed, for the notices


@dataclass(frozen=True)
class Notebook:
    path: Path
    sha256: str
    cells: tuple[CodeCell, ...]
    notices: tuple[str, ...]

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


def read(path: Path) -> Notebook | UnreadableNotebook:
    """Parse ``path``; never raises for a bad submission, only for an unreadable path."""
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    problem = _file_problem(raw)
    if problem:
        return UnreadableNotebook(path, digest, problem)
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return UnreadableNotebook(path, digest, "not a notebook: the file is not UTF-8 text")
    except json.JSONDecodeError as exc:
        return UnreadableNotebook(path, digest, _json_problem(raw, exc))
    return _from_document(path, digest, document)


def _file_problem(raw: bytes) -> str | None:
    if not raw.strip():
        return "not a notebook: the file is empty"
    if len(raw) > MAX_NOTEBOOK_BYTES:
        return f"not a notebook: the file is {len(raw) >> 20} MB, more than the {MAX_NOTEBOOK_BYTES >> 20} MB allowed"
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
            notices.append(f"the notebook was in nbformat {major}; it was converted to nbformat 4")
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds on bad input
        return UnreadableNotebook(path, digest, f"not a notebook: nbformat could not read it ({exc})")
    cells = []
    for index, cell in enumerate(node.get("cells", []), start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        cells.append(_code_cell(index, source))
    if not cells:
        return UnreadableNotebook(path, digest, "not a notebook to grade: it has no code cells")
    return Notebook(path, digest, tuple(cells), tuple(notices))


def _code_cell(index: int, source: str) -> CodeCell:
    """Neutralise IPython syntax: magics and shell escapes are never executed."""
    if source.lstrip().startswith("%%"):
        first = source.lstrip().splitlines()[0]
        return CodeCell(index, "", (first,))
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
    return CodeCell(index, "\n".join(lines), tuple(removed))
