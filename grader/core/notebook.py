"""Read a submitted notebook into plain, checked values: the first stage of the pipeline.

Everything a student can get wrong about the *file* (not JSON, empty, a Python script named
``.ipynb``, an old nbformat, huge embedded outputs) ends here as an ``UnreadableNotebook`` value
with a message for the student; nothing after this stage looks at the raw file again.

The code is read here too, once and within bounds: the grader's own process parses at most
``MAX_CELL_CHARS`` of a cell and ``MAX_READ_CHARS`` of a notebook (the sandbox runs all of it).
Parsing costs about 300 bytes of memory per character, and in Python 3.11 an f-string with many
fields takes time that grows with the square of its length; the caps sit far above any honest
notebook (the course's hold about 10,000 characters of code, 2,300 in their longest cell). Any
exception Python's parser raises on a student's text (``MemoryError`` for ten thousand unary
minus signs, ``RecursionError``, ``ValueError`` for a null byte) leaves that cell unread.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nbformat

MAX_NOTEBOOK_BYTES = 200 << 20
MAX_CELL_CHARS = 25_000  # a longer cell runs, but the grader does not read its code
MAX_READ_CHARS = 100_000  # nor the cells after this much code in all
MAX_SOURCE_CHARS = 10_000  # a function with its helpers, as results keep it (honest: < 3,000)
CUT = "# [cut by the grader"  # how a kept source says that its function was cut
LEFT_OUT = "# [helpers not kept by the grader"  # and that some of its helpers were left out
UNREAD = "the grader did not read the code there"  # how a notice says cells were not read

_TARGETS = re.compile(r"[\w., ]+")  # what ``x, y = %magic`` may assign
_SURROGATES = re.compile("[\ud800-\udfff]")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")  # a line as the parser counts them
# a line break that str.splitlines sees and "\n" is not (\r, \v, \f, \x1c-\x1e, \x85, \u2028-9)
_ODD_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# a line that starts with % or !, or whose first = is followed by one (linear: no backtracking)
_MAYBE_MAGIC = re.compile(r"^(?:[^\S\n]*[%!]|[^\n=]*=[^\S\n]*[%!]).*$", re.MULTILINE)


# Top-level calls that fetch MNIST or train on it: the grader has no network and trains the
# network itself, so cells that make them fail there (or would waste the setup budget).
DATA_CALLS = frozenset({"load_mnist", "train_mnist", "urlretrieve", "urlopen"})

DefinitionKind = Literal["def", "class", "assignment"]


@dataclass(frozen=True)
class Definition:
    """A name the notebook binds when it runs top to bottom, outside any function or class:
    ``def``, ``class`` or ``name = ...`` (in a top-level ``if``, ``try``, ``with`` or loop too)."""

    name: str
    kind: DefinitionKind
    source: str  # as written, decorators included
    uses: tuple[str, ...]  # the names it reads, in order of first use: the helpers it may call


@dataclass(frozen=True)
class CodeCell:
    index: int  # Jupyter's ``In [n]`` after a top-to-bottom run: non-empty code cells, from 1
    source: str  # with IPython magics and shell escapes replaced by ``pass``
    magics: tuple[str, ...]  # the lines that were removed, for the notices
    # names a cell that downloads MNIST or trains at the top level assigns there (None: the cell
    # is not such a cell); empty: such a cell that assigns nothing
    data_names: frozenset[str] | None = None
    # what the grader read of the cell's code (empty: none, or the cell was not read)
    definitions: tuple[Definition, ...] = ()

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
        return frozenset().union(*(c.data_names or () for c in self.cells if c.loads_data))

    def function_sources(self, names: list[str]) -> dict[str, str]:
        """The code of each of ``names`` the notebook defines (the last definition wins, as
        when it runs top to bottom), followed by the notebook's own helpers it uses, functions
        and classes, transitively: what makes the function what it is, whatever it was moved
        into. Helpers among ``names`` have code of their own and are left out. At most
        ``MAX_SOURCE_CHARS`` each: a comment at the end names what was left out."""
        bindings: dict[str, list[Definition]] = {}
        for cell in self.cells:
            for definition in cell.definitions:
                bindings.setdefault(definition.name, []).append(definition)
        wanted = set(names)
        return {name: _with_helpers(name, bindings, wanted) for name in names if name in bindings}


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
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return UnreadableNotebook(path, digest, "not a notebook: the file is not UTF-8 text")
    del raw  # (from here on the file is its text: a 200 MB notebook is not held twice)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        return UnreadableNotebook(path, digest, _json_problem(text[:2000], exc))
    except RecursionError:
        return UnreadableNotebook(path, digest, "not a notebook: JSON nested too deeply")
    except ValueError as exc:  # a number of more than 4,300 digits, which Python refuses
        return UnreadableNotebook(path, digest, f"not a notebook: {str(exc)[:200]}")
    del text
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


def _json_problem(head: str, exc: json.JSONDecodeError) -> str:
    text = head.lstrip()
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
    # nbformat 4 is read as the plain JSON it is: wrapping each line of a 100 MB cell in
    # nbformat's nodes took seconds
    major, node = document.get("nbformat"), document
    try:
        if major != 4:
            node = nbformat.convert(nbformat.from_dict(document), 4)
            shown = str(major)[:20]
            notices.append(f"the notebook was in nbformat {shown}; it was converted to nbformat 4")
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds on bad input
        why = f"not a notebook: nbformat could not read it ({str(exc)[:300]})"
        return UnreadableNotebook(path, digest, why)
    raw_cells = node.get("cells", [])
    if not isinstance(raw_cells, list):
        return UnreadableNotebook(path, digest, "not a notebook: its cells are not a list")
    cells: list[CodeCell] = []
    unread: list[int] = []
    budget = MAX_READ_CHARS
    for position, cell in enumerate(raw_cells, start=1):
        source = _code_source(cell)
        if isinstance(source, str) and source and not source.isspace():  # (Jupyter runs none)
            readable = len(source) <= min(MAX_CELL_CHARS, budget)
            budget -= len(source) if readable else 0
            cells.append(_code_cell(len(cells) + 1, source, readable=readable))
            unread += [] if readable else [cells[-1].index]
        elif source is not None and not isinstance(source, str):
            return UnreadableNotebook(path, digest, f"not a notebook: cell {position} {source[0]}")
    if not cells:
        return UnreadableNotebook(path, digest, "not a notebook to grade: it has no code cells")
    if unread:
        notices.append(_unread_notice(unread))
    return Notebook(path, digest, tuple(cells), tuple(notices))


def _unread_notice(unread: list[int]) -> str:
    shown = ", ".join(f"In [{i}]" for i in unread[:5]) + (" and more" if unread[5:] else "")
    return (f"{'cells' if unread[1:] else 'cell'} {shown} ran as usual, but {UNREAD} "
            f"outside the sandbox (it reads {MAX_CELL_CHARS:,} characters "
            f"of a cell, {MAX_READ_CHARS:,} in all): functions defined there are not shown with "
            f"your results or compared with the class")


def _code_source(cell: object) -> str | tuple[str] | None:
    """A code cell's source; None for another kind of cell; (problem,) for a malformed one."""
    if not isinstance(cell, dict):
        return ("is not a cell (a JSON object with a cell_type)",)
    if cell.get("cell_type") != "code":
        return None
    source = cell.get("source", "")
    if isinstance(source, str):
        return source
    try:
        return "".join(source) if isinstance(source, list) else ("has a source that is not text",)
    except TypeError:  # (a line that is not text: join checks each, at C speed)
        return ("has a source that is not text",)


def _code_cell(index: int, source: str, *, readable: bool = True) -> CodeCell:
    """Neutralise IPython syntax (magics and shell escapes are never executed) and, if
    ``readable``, read the code. A lone surrogate (a broken emoji from an editor) is no code in
    any Python, and no page or file could hold it: it becomes U+FFFD."""
    source = without_surrogates(source)
    if source.lstrip().startswith("%%"):
        first = source.lstrip().splitlines()[0]
        return CodeCell(index, "", (first,))
    code, removed = _without_magics(source)
    tree = _parse(code) if readable else None
    if tree is None:
        return CodeCell(index, code, removed)
    return CodeCell(index, code, removed, _data_names(code, tree), _definitions(code, tree))


def without_surrogates(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD: JSON can carry one, but no page
    or file written as UTF-8 can."""
    return text if text.isascii() else _SURROGATES.sub("\ufffd", text)  # (isascii: a flag)


def _parse(source: str) -> ast.Module | None:
    """The cell's syntax tree; None for anything Python's parser refuses, however it refuses:
    a student's text is never the grader's error."""
    try:
        with warnings.catch_warnings():  # ("invalid escape sequence": the student's business)
            warnings.simplefilter("ignore")
            return ast.parse(source)
    except Exception:  # noqa: BLE001 - SyntaxError, ValueError, MemoryError, RecursionError...
        return None


def _data_names(source: str, tree: ast.Module) -> frozenset[str] | None:
    """The names assigned at the top level of a cell that calls ``DATA_CALLS`` at its top level
    (outside any function or class); None for any other cell."""
    if not any(name in source for name in DATA_CALLS):  # (a call names its function)
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


def _top_level_nodes(node: ast.AST) -> list[ast.AST]:
    """``node`` and what it contains, but not the bodies of functions, lambdas and classes."""
    return _walk(node, skip=(ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))


def _walk(node: ast.AST, skip: tuple[type, ...] = ()) -> list[ast.AST]:
    """``node`` and every node under it (not under a ``skip`` kind), in source order mostly.
    A stack, not recursion: an expression may nest as deep as the parser allows; and three
    times faster than ``ast.walk``, whose generators dominated reading a long cell."""
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        found.append(current)
        children = []
        for field in current._fields:
            value = getattr(current, field, None)
            if isinstance(value, list):
                children += [v for v in value if isinstance(v, ast.AST)]
            elif isinstance(value, ast.AST):
                children.append(value)
        stack += [c for c in reversed(children) if not isinstance(c, skip)]
    return found


def _without_magics(source: str) -> tuple[str, tuple[str, ...]]:
    """Each line of IPython syntax replaced by ``pass`` (``x = %magic`` by ``x = None``), the
    lines joined by ``\\n``. One pass of a regular expression finds the lines that may be
    magics: a cell of 200 MB is not split into millions of strings."""
    odd = any(mark in source for mark in _ODD_BREAKS)  # (a scan each: 20 times a regex's speed)
    text = "\n".join(source.splitlines()) if odd else (
        source[:-1] if source.endswith("\n") else source)
    removed: list[str] = []
    if "%" not in text and "!" not in text:
        return text, ()

    def neutralised(match: re.Match[str]) -> str:
        line = match.group()
        assigned = _assigned_magic(line)
        if assigned:
            removed.append(line.strip())
            return f"{assigned} = None"
        if line.lstrip().startswith(("%", "!")):
            removed.append(line.strip())
            return f"{line[:len(line) - len(line.lstrip())]}pass"
        return line

    return _MAYBE_MAGIC.sub(neutralised, text), tuple(removed)


def _assigned_magic(line: str) -> str | None:
    """``x = %timeit f()`` or ``files = !ls``: the indented targets (``x``, ``files``), else
    None. Not a regular expression: the one this replaces took 25 s to reject a line of 4,000
    spaces, its time growing with the cube of the line's length."""
    before, equals, after = line.partition("=")
    if not equals or "==" in line or not after.lstrip().startswith(("%", "!")):
        return None
    targets = before.strip()
    if not targets or not _TARGETS.fullmatch(targets):
        return None
    return before[:len(before) - len(before.lstrip())] + targets


# --------------------------------------------------------------------------- definitions


def _definitions(source: str, tree: ast.Module) -> tuple[Definition, ...]:
    """Every name the cell binds outside functions and classes, with its code. Each source is
    cut from the cell's lines, split once: ``ast.get_source_segment`` splits the whole cell on
    every call, which made 4,000 definitions in one cell cost a minute."""
    lines, found = _Lines(source), []
    for node in module_statements(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            kind: DefinitionKind = "class" if isinstance(node, ast.ClassDef) else "def"
            found.append(Definition(node.name, kind, lines.segment(node), _uses(node)))
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if len(targets) == 1 and isinstance(targets[0], ast.Name):
                found.append(Definition(targets[0].id, "assignment", lines.segment(node),
                                        _uses(node.value)))
    return tuple(found)


_BLOCK_FIELDS = ("body", "handlers", "orelse", "finalbody", "cases")


def module_statements(tree: ast.Module) -> list[ast.stmt]:
    """The statements that run at the module level, in source order: the cell's own and those
    in its top-level ``if``, ``for``, ``while``, ``with``, ``try`` and ``match`` blocks."""
    found, stack = [], list(reversed(tree.body))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.stmt):
            found.append(node)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        inner = [child for field in _BLOCK_FIELDS for child in getattr(node, field, None) or ()]
        stack += reversed(inner)
    return found


def _uses(node: ast.AST) -> tuple[str, ...]:
    """The names ``node`` reads but does not bind itself (its parameters, its locals, its
    imports), in order of first use: the globals it needs, among them the helpers it calls.
    Then the names it reaches otherwise: ``from __main__ import helper``, and a string that
    is a name (``globals()["helper"]``, ``getattr(module, "helper")``). (Its nested scopes
    count as its own: a shadowed global is missed rather than a local mistaken for a
    helper.)"""
    nodes = _walk(node)
    bound, declared, reached = set(), set(), []
    for inner in nodes:
        if isinstance(inner, ast.Name) and not isinstance(inner.ctx, ast.Load):
            bound.add(inner.id)
        elif isinstance(inner, ast.arg):
            bound.add(inner.arg)
        elif isinstance(inner, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).split(".")[0] for a in inner.names)
            if isinstance(inner, ast.ImportFrom) and inner.module == "__main__":
                reached += [a.name for a in inner.names]
        elif isinstance(inner, ast.Global):
            declared.update(inner.names)
        elif inner is not node and isinstance(inner, _SCOPES):
            bound.add(inner.name)
        elif isinstance(inner, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and inner.name:
            bound.add(inner.name)
        elif isinstance(inner, ast.Constant) and isinstance(inner.value, str) \
                and inner.value.isidentifier():
            reached.append(inner.value)
    bound -= declared
    loaded = [n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
              and n.id not in bound]
    return tuple(dict.fromkeys(loaded + reached))


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class _Lines:
    """A cell's lines as the parser numbers them, each encoded once on demand (a column is an
    offset in UTF-8 bytes)."""

    def __init__(self, source: str) -> None:
        self.lines = _LINE.findall(source)
        self.encoded: dict[int, bytes] = {}

    def segment(self, node: ast.stmt) -> str:
        decorators = getattr(node, "decorator_list", None)
        first = decorators[0].lineno if decorators else node.lineno
        last, end = node.end_lineno or node.lineno, node.end_col_offset or 0
        if first == last:
            return self._bytes(first)[node.col_offset:end].decode("utf-8", "replace")
        head = self._bytes(first)[node.col_offset:].decode("utf-8", "replace")
        tail = self._bytes(last)[:end].decode("utf-8", "replace")
        return head + "".join(self.lines[first:last - 1]) + tail

    def _bytes(self, number: int) -> bytes:
        if number not in self.encoded:
            line = self.lines[number - 1] if number <= len(self.lines) else ""
            self.encoded[number] = line.encode("utf-8", "replace")
        return self.encoded[number]


def _with_helpers(name: str, bindings: dict[str, list[Definition]], wanted: set[str]) -> str:
    """``name``'s code, then its helpers' (breadth first, in order of first use). A rebinding
    that wraps the name's earlier definition (``f = timed(f)``) keeps that one too."""
    earlier = list(bindings[name])
    chain = [earlier.pop()]
    while chain[-1].kind == "assignment" and name in chain[-1].uses and earlier:
        chain.append(earlier.pop())
    unit = _Unit(chain[0].source)
    for definition in chain[1:]:
        unit.add(definition)
    queue, seen = deque(use for d in chain for use in d.uses), {name}
    while queue:
        helper = queue.popleft()
        if helper in seen or helper in wanted or helper not in bindings:
            continue
        seen.add(helper)
        definition = bindings[helper][-1]
        if unit.add(definition):
            queue.extend(definition.uses)
    return unit.text()


class _Unit:
    """A function's code with its helpers', at most ``MAX_SOURCE_CHARS``: what results keep,
    pages show and similarity compares, so that none of them costs more for a giant."""

    SEPARATOR = "\n\n\n"

    def __init__(self, main: str) -> None:
        if len(main) > MAX_SOURCE_CHARS:
            cut = main.rfind("\n", 0, MAX_SOURCE_CHARS) + 1 or MAX_SOURCE_CHARS
            main = (f"{main[:cut]}\n{CUT}, which keeps the first "
                    f"{MAX_SOURCE_CHARS:,} characters of a function: this one has {len(main):,}]")
        self.parts, self.size = [main], len(main)
        self.left_out: list[str] = []

    def add(self, definition: Definition) -> bool:
        grown = self.size + len(self.SEPARATOR) + len(definition.source)
        if grown > MAX_SOURCE_CHARS:
            self.left_out.append(definition.name)
            return False
        self.parts.append(definition.source)
        self.size = grown
        return True

    def text(self) -> str:
        if not self.left_out:
            return self.SEPARATOR.join(self.parts)
        names = ", ".join(name[:40] for name in self.left_out[:5])
        more = f" and {len(self.left_out) - 5:,} more" if self.left_out[5:] else ""
        note = (f"{LEFT_OUT}, which keeps {MAX_SOURCE_CHARS:,} characters "
                f"of a function with its helpers: {names}{more}]")
        return self.SEPARATOR.join([*self.parts, note])
