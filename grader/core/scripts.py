"""A Python file handed in instead of a notebook, read as a notebook with one cell holding the
whole file (``read``), with a notice saying so on the student's page.

It is student code like any notebook: its text goes through the notebook reader
(``grader.core.notebook.from_bytes``: size cap, magics neutralised) and runs only in the sandbox.
Standard library, NumPy and nbformat only: the students' checker (``grader.distribute.checker``)
reads a ``.py`` with it too.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path, PurePosixPath

from grader.core import notebook

SCRIPT_SUFFIX = ".py"
SCRIPT_NOTICE = ("you handed in a Python file, not a notebook: it was graded as a notebook "
                 "with one cell holding the whole file (a line that fails stops the rest of "
                 "that cell, as in Jupyter: only the imports and definitions after it count). "
                 "Hand in the .ipynb itself next time")


def is_script(path: Path | PurePosixPath | str) -> bool:
    return str(path).lower().endswith(SCRIPT_SUFFIX)


def read(path: Path) -> notebook.Notebook | notebook.UnreadableNotebook:
    """``notebook.read``, and a Python file read as a notebook with one cell holding it all,
    with a notice saying so. Its digest is the file's own, so an unchanged file is not graded
    again."""
    if not is_script(path):
        return notebook.read(path)
    size = path.stat().st_size
    if size > notebook.MAX_NOTEBOOK_BYTES:  # checked before reading, as for a notebook
        return notebook.UnreadableNotebook(path, notebook._digest(path),
                                           notebook._too_large(size))
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    problem = _script_problem(raw)
    if problem:
        return notebook.UnreadableNotebook(path, digest, problem)
    read = notebook.from_bytes(path, _one_cell(raw.decode("utf-8-sig")))
    if isinstance(read, notebook.UnreadableNotebook):
        return dataclasses.replace(read, sha256=digest)
    return dataclasses.replace(read, sha256=digest, notices=(SCRIPT_NOTICE, *read.notices))


def _script_problem(raw: bytes) -> str | None:
    if not raw.strip():
        return "not gradable: the Python file is empty"
    try:
        raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "not gradable: the Python file is not UTF-8 text"
    return None


def _one_cell(source: str) -> bytes:
    import nbformat

    document = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    document.cells[0]["id"] = "handed-in-file"  # (not random: one file, one notebook)
    text: str = nbformat.writes(document, version=4)
    return text.encode("utf-8")
