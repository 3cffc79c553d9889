"""Find in a notebook's source the library shortcuts the practical forbids (library
convolutions, automatic differentiation, ready-made networks), per function, and the lines
whose calls no reading of the source can name.

The practical is to write these by hand, so a shortcut is reported as a failed rule with a
clear message and the functions that use it lose the points they would have earned with it.
The sandbox's runtime guard catches the spellings a static scan cannot see, but it lives in
the student's own process: code that reaches into that process (a function's
``__kwdefaults__``, its frames, ``gc``, ``sys.modules``, the grader's runtime) can switch it
off. ``unresolved`` lists every line that could: the rules test then waits for a person
instead of passing, so tampering never pays.

Submitted code is untrusted text: nothing here raises on it, and reading it costs time in
proportion to its size, within a budget (``MAX_CODE``).
"""

from __future__ import annotations

import ast
import functools
import gc
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from grader.core import inert
from grader.core.notebook import Notebook

FORBIDDEN_MODULES = {
    "scipy.signal": "a library convolution",
    "scipy.ndimage": "a library convolution",
    "torch": "a deep-learning library with automatic differentiation",
    "tensorflow": "a deep-learning library with automatic differentiation",
    "keras": "a deep-learning library with automatic differentiation",
    "jax": "a library with automatic differentiation",
    "autograd": "a library with automatic differentiation",
    "sklearn": "a ready-made machine-learning library",
    "cv2": "a library convolution",
    "skimage": "a library convolution",
}
FORBIDDEN_CALLS = {
    "convolve": "numpy.convolve, a library convolution",
    "correlate": "numpy.correlate, a library convolution",
}
# numpy's C kernels behind them (numpy._core.multiarray.correlate2...), reported as the public name
_KERNELS = {"correlate2": "correlate"}
# names a notebook uses without importing them (the template imports numpy as np)
_DEFAULT_ALIASES = {"np": "numpy", "numpy": "numpy"}

# What is read of a notebook, in all: the reference notebooks hold 11,000 characters of code.
# Python 3.11 parses an f-string of n fields in n² time, hence the braces' own budget.
MAX_CODE = 300_000
MAX_BRACES = 20_000
MAX_UNRESOLVED = 20  # lines listed
_MAX_DEPTH = 32  # attribute chains and nested calls followed (``a.b.c...``: never honest deeper)


def explain(use: str) -> str:
    """One sentence about a use found here or reported by the sandbox's guard."""
    if use.startswith("numpy."):
        name = use.split(".", 1)[1]
        return f"`{use}` ({FORBIDDEN_CALLS.get(name, 'a library shortcut').split(', ', 1)[-1]})"
    for module, why in FORBIDDEN_MODULES.items():
        if use == module or use.startswith(module + "."):
            return f"`{use}` ({why})"
    return f"`{use}`"


@dataclass(frozen=True)
class Unresolved:
    """A line whose calls the grader cannot name: it may reach the runtime's guard (or hide a
    library call from it), so the rules test cannot pass on its word."""

    cell: int  # the CodeCell's index: Jupyter's In [n]
    line: int  # in the cell, from 1
    function: str | None  # the top-level function whose body holds it; None: the cell's top
    code: str  # the line, stripped, inert (``grader.core.inert``), at most about 120 characters
    why: str  # for the student: "a computed attribute name", "`__kwdefaults__`"...

    def text(self) -> str:
        """``In [3], line 2, in `conv1d`: `code` (why)``."""
        where = f"In [{self.cell}], line {self.line}"
        where += f", in `{self.function}`" if self.function else ""
        return f"{where}: `{self.code}` ({self.why})"


def describe(found: Sequence[Unresolved]) -> str:
    """What the rules test can tell a student whose notebook has such lines."""
    lines = "; ".join(u.text() for u in found)
    more = " (and perhaps more)" if len(found) >= MAX_UNRESOLVED else ""
    return (f"The grader cannot tell what these lines call, so your instructor will look at "
            f"them before this test counts: {lines}{more}. If you meant no shortcut, call "
            f"NumPy's functions by their names (`np.sum(x)`, not `getattr(np, name)(x)`).")


def scan(notebook: Notebook) -> dict[str, list[str]]:
    """Forbidden uses per top-level function (helpers included transitively), plus the key
    ``"<notebook>"`` for every use anywhere in the notebook.

    Names are followed through every import form and plain assignment (``import
    numpy._core.numeric as m``, ``from numpy import correlate as c``, ``m =
    importlib.import_module("numpy._core.numeric")``, ``getattr(m, "correlate")``): bindings at
    the top level of any cell hold in every function that does not use the name for something
    of its own, bindings in a function hold in it. The sandbox's runtime guard catches what
    cannot be read (computed names); ``unresolved`` lists those lines. A cell that cannot be
    parsed, or that is past the budget (``MAX_CODE``), is skipped."""
    return {name: list(uses) for name, uses in _inspected(notebook).forbidden.items()}


def unresolved(notebook: Notebook) -> tuple[Unresolved, ...]:
    """The lines (at most ``MAX_UNRESOLVED``, by cell and line) that reach objects no name in
    them says: attributes by computed names (``getattr(np, "corr" + "elate")``), a function's
    or frame's internals (``__kwdefaults__``, ``__globals__``, ``f_back``...), the interpreter's
    (``gc``, ``ctypes``, ``sys.modules``, ``importlib``, ``builtins``, ``eval``...), other
    processes and descriptors (``subprocess``, ``os.write``, ``signal``), and the grader's own
    code. Aliases are followed as ``scan`` follows them.

    A cell the grader cannot read although the runtime might run it (nested too deeply for
    this process, or past the budget) is such a line too. A syntax error is not: the runtime,
    the same Python parsing the same text, cannot run that cell either, and says so."""
    return _inspected(notebook).unresolved


def unresolved_reach(notebook: Notebook) -> dict[str, tuple[Unresolved, ...]]:
    """For each top-level function, the ``unresolved`` lines in it or in the notebook's
    functions it calls, directly or not: the lines its tests cannot be credited without
    (a computed name inside a helper hides a library call as well as one inside it)."""
    inspection = _inspected(notebook)
    direct: dict[str, set[str]] = {name: set() for name in inspection.calls}
    lines: dict[str, Unresolved] = {}
    for number, found in enumerate(inspection.unresolved):
        if found.function in direct:
            direct[found.function].add(str(number))
            lines[str(number)] = found
    reached = _reach_all(direct, {n: set(c) for n, c in inspection.calls.items()})
    return {name: tuple(lines[k] for k in sorted(keys, key=int))
            for name, keys in reached.items() if keys}


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cell:
    index: int
    source: str
    tree: ast.Module | None  # None: a syntax error, or not read (``unread``)
    unread: str | None  # why the grader did not read what the runtime may run


@dataclass(frozen=True)
class _Inspection:
    forbidden: dict[str, tuple[str, ...]]
    unresolved: tuple[Unresolved, ...]
    calls: dict[str, frozenset[str]]  # each top-level function: the names it uses


def _read(notebook: Notebook) -> list[_Cell]:
    """The cells' syntax trees, within the budget: a cell that does not fit is not read (the
    ones after it may still fit)."""
    cells, room, braces = [], MAX_CODE, MAX_BRACES
    for cell in notebook.cells:
        size, fields = len(cell.source), cell.source.count("{")
        if size > room or fields > braces:
            why = "more code than the grader reads"
            cells.append(_Cell(cell.index, cell.source, None, why))
            continue
        room, braces = room - size, braces - fields
        cells.append(_Cell(cell.index, cell.source, *_parse(cell.source)))
    return cells


def _parse(source: str) -> tuple[ast.Module | None, str | None]:
    collecting = gc.isenabled()
    gc.disable()  # a large tree builds in half the time without collections meanwhile
    try:
        # warnings ignored: a student's "\d" must neither print on the grader's terminal nor,
        # where warnings are errors (-W error), become a syntax error here and not in the
        # sandbox (whose Python runs with -I), hiding the cell
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source), None
    except (SyntaxError, ValueError):  # (null bytes were a ValueError before 3.12)
        return None, None
    except (MemoryError, RecursionError):  # e.g. 10,000 unary minus signs, a deep chain
        return None, "a cell nested too deeply for the grader to read"
    except Exception:  # noqa: BLE001 - whatever else the parser raises on hostile text
        return None, "a cell the grader cannot read"
    finally:
        if collecting:
            gc.enable()


_Def = ast.FunctionDef | ast.AsyncFunctionDef


@functools.lru_cache(maxsize=1)  # the grader asks for both of one notebook: one reading
def _inspected(notebook: Notebook) -> _Inspection:
    cells = _read(notebook)
    top = _bind([n for c in cells if c.tree for n in _top_level(c.tree)], _Names.notebook())
    functions = [(cell.index, node, _function_names(node, top)) for cell in cells if cell.tree
                 for node in cell.tree.body if isinstance(node, _Def)]
    calls = {node.name: frozenset(n.id for n in _walk(node) if isinstance(n, ast.Name))
             for _, node, _ in functions}
    return _Inspection(_forbidden_uses(cells, functions, top),
                       _unresolved_lines(cells, functions, top), calls)


def _forbidden_uses(cells: list[_Cell], functions: list[tuple[int, _Def, _Names]],
                    top: _Names) -> dict[str, tuple[str, ...]]:
    direct: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    everywhere = set().union(*(_uses(c.tree, top) for c in cells if c.tree))
    for _, node, names in functions:  # (a later definition wins, as when the notebook runs)
        direct[node.name] = _uses(node, names)
        everywhere |= direct[node.name]
        calls[node.name] = {n.id for n in _walk(node) if isinstance(n, ast.Name)}
    forbidden = {name: tuple(sorted(uses)) for name, uses in _reach_all(direct, calls).items()}
    forbidden["<notebook>"] = tuple(sorted(everywhere))
    return forbidden


def _unresolved_lines(cells: list[_Cell], functions: list[tuple[int, _Def, _Names]],
                      top: _Names) -> tuple[Unresolved, ...]:
    found: list[Unresolved] = []
    by_cell: dict[int, list[tuple[_Def, _Names]]] = {}
    for index, node, names in functions:
        by_cell.setdefault(index, []).append((node, names))
    for cell in cells:
        if len(found) >= MAX_UNRESOLVED:
            break
        if cell.tree is None:
            found += _unread(cell)
            continue
        defs = by_cell.get(cell.index, [])
        outside: list[ast.AST] = [n for n in cell.tree.body if not isinstance(n, _Def)]
        for node, _ in defs:  # what a def runs where it stands: decorators, defaults
            outside += [*node.decorator_list, node.args, *filter(None, [node.returns])]
        parts: list[tuple[str | None, Sequence[ast.AST], _Names]] = [
            (None, outside, top), *((node.name, node.body, names) for node, names in defs)]
        found += _cell_findings(cell, parts)
    return tuple(found[:MAX_UNRESOLVED])


def _reach_all(direct: dict[str, set[str]], calls: dict[str, set[str]]) -> dict[str, set[str]]:
    """Each function's uses and those of every function it calls, directly or not: one walk
    up the callers per kind of use (a few kinds), so a notebook of many functions calling
    each other costs in proportion to its calls, not their square."""
    callers: dict[str, list[str]] = {}
    for name, called in calls.items():
        for callee in called & direct.keys():
            callers.setdefault(callee, []).append(name)
    reached = {name: set(uses) for name, uses in direct.items()}
    for use in set().union(*direct.values()):
        queue = [name for name, uses in direct.items() if use in uses]
        seen = set(queue)
        while queue:
            for caller in callers.get(queue.pop(), ()):
                if caller not in seen:
                    seen.add(caller)
                    reached[caller].add(use)
                    queue.append(caller)
    return reached


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """``ast.walk``, parents first, without the expression contexts (``Load``, ``Store``: a
    quarter of the nodes, never of interest here), in two thirds of its time."""
    stack = [node]
    while stack:
        node = stack.pop()
        yield node
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                stack += [v for v in value if isinstance(v, ast.AST)]
            elif isinstance(value, ast.AST) and field != "ctx":
                stack.append(value)


def _top_level(tree: ast.AST) -> list[ast.AST]:
    """The bindings of a cell outside its function bodies (cell order is ignored on purpose: a
    name bound anywhere in the notebook to a forbidden thing is suspect)."""
    found: list[ast.AST] = []
    queue = [tree]
    while queue:
        node = queue.pop()
        if isinstance(node, _BINDINGS):
            found.append(node)
        if not isinstance(node, _Def | ast.Lambda):
            queue += ast.iter_child_nodes(node)
    return found


# --- names ---------------------------------------------------------------------------------


class _Names:
    """What names stand for where code is read: the dotted path of each name bound to a
    module or a library function. A function's own names hide the notebook's (looked up
    through ``outer``, never copied: a notebook of many functions and many imports would
    otherwise cost their product)."""

    def __init__(self, outer: _Names | None = None, hidden: frozenset[str] = frozenset()):
        self.bound: dict[str, str] = {}
        self.outer, self.hidden = outer, hidden
        # every module an import anywhere names (one set for the notebook)
        self.modules: set[str] = outer.modules if outer is not None else {"numpy"}

    @classmethod
    def notebook(cls) -> _Names:
        names = cls()
        names.bound.update(_DEFAULT_ALIASES)
        return names

    def get(self, name: str) -> str | None:
        if name in self.bound:
            return self.bound[name]
        if self.outer is None or name in self.hidden:
            return None
        return self.outer.get(name)


def _function_names(function: ast.FunctionDef | ast.AsyncFunctionDef, outer: _Names) -> _Names:
    """The names as the function sees them: its own names (arguments, variables) hide the
    notebook's, its own imports and assignments of modules or functions are added."""
    nodes = list(_walk(function))
    own = {a.arg for a in _walk(function.args) if isinstance(a, ast.arg)}
    own |= {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return _bind([n for n in nodes if isinstance(n, _BINDINGS)], _Names(outer, frozenset(own)))


def _bind(nodes: list[ast.AST], names: _Names) -> _Names:
    """``names`` with every name the nodes bind to a module or a library function added."""
    assignments: list[tuple[ast.expr, ast.expr]] = []  # (target, value)
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:  # `import a.b` binds a to a; `import a.b as c` binds c to a.b
                top = a.name.split(".")[0]
                names.bound[a.asname or top] = a.name if a.asname else top
                parts = a.name.split(".")
                names.modules.update(".".join(parts[:n]) for n in range(1, len(parts) + 1))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name == "*":
                    names.bound.update(_star(node.module))
                else:
                    names.bound[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr) and node.value:
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            assignments.append((target, node.value))
    for _ in range(3):  # `m = np._core; n = m.numeric; f = n.correlate`: a few rounds
        for target, value in assignments:
            path = _resolve(value, names)
            if isinstance(target, ast.Name) and path is not None:
                names.bound[target.id] = path
    return names


def _star(module: str) -> dict[str, str]:
    """What ``from module import *`` may bind that matters here."""
    if module == "numpy" or module.startswith("numpy."):
        return {name: f"{module}.{name}" for name in (*FORBIDDEN_CALLS, *_KERNELS)}
    return {}


_CLASS = "<a class>"  # the path of type(x), for any x
_BINDINGS = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.NamedExpr)
_GETATTR = ("getattr", "builtins.getattr")
_IMPORTERS = ("importlib.import_module", "__import__", "builtins.__import__")


def _resolve(node: ast.AST, names: _Names, memo: dict[int, str | None] | None = None,
             depth: int = 0) -> str | None:
    """The dotted path an expression names, where it can be read: ``np._core.numeric``,
    ``getattr(np, "convolve")``, ``importlib.import_module("numpy._core")``, ``__import__``.

    ``memo`` (node id -> path) is the walk's: a walk resolves every link of an attribute chain
    thousands deep, each in a step. No path is longer than ``_MAX_DEPTH`` names."""
    memo = {} if memo is None else memo
    chain = []
    while isinstance(node, ast.Attribute) and id(node) not in memo:
        chain.append(node)
        node = node.value
    if id(node) in memo:
        path = memo[id(node)]
    elif isinstance(node, ast.Name):
        path = names.get(node.id)
    elif isinstance(node, ast.Call) and depth < _MAX_DEPTH:
        path = memo[id(node)] = _resolve_call(node, names, memo, depth + 1)
    else:
        path = None
    for link in reversed(chain):
        deep = path is None or path.count(".") >= _MAX_DEPTH
        path = memo[id(link)] = None if deep else f"{path}.{link.attr}"
    return path


def _resolve_call(node: ast.Call, names: _Names, memo: dict[int, str | None],
                  depth: int) -> str | None:
    if not node.args:
        return None
    function = _callee(node, names, memo, depth)
    if function == "type" and len(node.args) == 1 and not node.keywords:
        return _CLASS  # (which class, no reading can say: that a class is changed, it can)
    if function in _GETATTR and len(node.args) >= 2:
        base, attribute = _resolve(node.args[0], names, memo, depth), _text(node.args[1])
        return f"{base}.{attribute}" if base and attribute else None
    text = _text(node.args[0])
    if function in _IMPORTERS and text:
        # import_module("a.b") and __import__("a.b", fromlist=[...]) return a.b, __import__
        # without a fromlist a
        whole = function == "importlib.import_module" or any(
            k.arg == "fromlist" for k in node.keywords) or len(node.args) >= 4
        return text if whole else text.split(".")[0]
    return None


def _callee(node: ast.Call, names: _Names, memo: dict[int, str | None] | None = None,
            depth: int = 0) -> str | None:
    """The function a call calls, as a dotted path, else its bare name (builtins)."""
    return _resolve(node.func, names, memo, depth) or getattr(node.func, "id", None)


def _text(node: ast.AST) -> str | None:
    """A string constant's value."""
    value = getattr(node, "value", None) if isinstance(node, ast.Constant) else None
    return value if isinstance(value, str) else None


def _uses(tree: ast.AST, names: _Names) -> set[str]:
    found: set[str] = set()
    memo: dict[int, str | None] = {}
    for node in _walk(tree):
        paths: list[str] = []
        if isinstance(node, ast.Import):
            paths = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            paths = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Name | ast.Attribute):
            paths = [_resolve(node, names, memo) or ""]
        elif isinstance(node, ast.Call):
            paths = [_resolve(node, names, memo) or ""]
            callee = _callee(node, names, memo)
            if callee is not None and callee in _IMPORTERS:
                paths.append((_text(node.args[0]) if node.args else None) or "")
        found |= {use for use in map(_forbidden, paths) if use}
    return found


def _forbidden(path: str | None) -> str | None:
    """The use a dotted path is, as reported: a forbidden module, or numpy's function by its
    public name (``numpy._core.numeric.correlate`` -> ``numpy.correlate``)."""
    if not path:
        return None
    module = _forbidden_module(path)
    if module is not None:
        return module
    head, _, name = path.rpartition(".")
    name = _KERNELS.get(name, name)
    if name in FORBIDDEN_CALLS and (head == "numpy" or head.startswith("numpy.")):
        return f"numpy.{name}"
    return None


def _forbidden_module(name: str) -> str | None:
    for module in FORBIDDEN_MODULES:
        if name == module or name.startswith(module + "."):
            return module
    return None


# --- what no name says ---------------------------------------------------------------------

# Modules (with their submodules) that reach objects, code or processes by other ways than
# names in the source; `os` and `sys` are everyday modules, only some of their functions are.
UNRESOLVED_MODULES = {
    **dict.fromkeys(("gc", "ctypes", "cffi", "inspect", "importlib", "imp", "pkgutil", "runpy",
                     "zipimport", "pydoc", "builtins", "__builtin__", "marshal", "pickle",
                     "copyreg", "shelve", "dill", "cloudpickle", "joblib", "signal",
                     "faulthandler", "resource", "mmap", "socket", "threading", "site",
                     "code", "codeop", "doctest", "pdb", "bdb", "unittest.mock", "mock",
                     "logging.config", "multiprocessing", "concurrent", "subprocess", "pty",
                     "posix", "nt", "__main__"), None),
    "grader": "the grader's own code",
    "inside": "the grader's own code",  # (the sandbox's name for grader.run.inside)
}
_OS_MODULES = frozenset({"os", "posix", "nt"})
# os functions on descriptors (the runtime's pipes to the grader are inherited ones) and
# processes; exec*, spawn* and posix_spawn* too
_OS_FUNCTIONS = frozenset({
    "write", "writev", "pwrite", "pwritev", "read", "readv", "pread", "preadv", "open",
    "openpty", "fdopen", "dup", "dup2", "close", "closerange", "pipe", "pipe2", "fork",
    "forkpty", "register_at_fork", "system", "popen", "kill", "killpg", "sendfile", "lseek",
    "ftruncate", "set_inheritable", "set_blocking", "splice", "copy_file_range",
    "memfd_create", "eventfd", "fchdir", "fchmod", "fchown", "setsid", "setpgid", "_exit",
    "abort"})
_SYS_ATTRIBUTES = frozenset({
    "modules", "_getframe", "_current_frames", "_current_exceptions", "settrace", "setprofile",
    "gettrace", "getprofile", "meta_path", "path_hooks", "path_importer_cache", "addaudithook",
    "call_tracing", "monitoring"})
_FRAME_ATTRIBUTES = frozenset({
    "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next",
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "func_globals",
    "func_closure", "func_code", "func_defaults"})
# attribute names of modules above, which other modules hold (numpy.testing's `gc`...)
_MODULE_ATTRIBUTES = frozenset({
    "gc", "ctypes", "ctypeslib", "cffi", "inspect", "importlib", "builtins", "marshal",
    "pickle", "copyreg", "subprocess", "sys", "os", "posix", "multiprocessing", "faulthandler",
    "pty", "runpy", "pydoc", "pkgutil", "threading", "_thread", "operator"})
# The dunders honest NumPy code reads: names and documentation (strings), `__init__` for
# `super().__init__()`, `__class__` for `x.__class__.__name__` (no more than `type(x)`, which
# is always allowed; what leads on from either, `__subclasses__`, `__mro__`, `__bases__`,
# `__globals__`, `__dict__`, is not in this list). Only the strings may be set.
_DUNDER_READ = frozenset({"__name__", "__qualname__", "__doc__", "__module__", "__version__",
                          "__file__", "__init__", "__class__"})
_DUNDER_SET = frozenset({"__name__", "__qualname__", "__doc__", "__module__"})
_DUNDER_NAMES = frozenset({"__name__", "__doc__", "__debug__", "__file__"})  # bare names
_CODE_BUILTINS = {
    "eval": "`eval`", "exec": "`exec`", "compile": "`compile`", "globals": "`globals()`",
    "locals": "`locals()`", "vars": "`vars()`", "breakpoint": "`breakpoint()`"}
_BY_NAME = frozenset({"getattr", "setattr", "delattr", "hasattr", "builtins.getattr",
                      "builtins.setattr", "builtins.delattr", "builtins.hasattr"})
_ATTRGETTERS = frozenset({"operator.attrgetter", "operator.methodcaller"})
_OPENERS = frozenset({"open", "io.open", "io.FileIO", "io.open_code"})
_STAR_WATCHED = frozenset({"os", "posix", "nt", "sys", "operator", "io", "string"})
_VALUE_WATCHED = frozenset({"os", "posix", "nt", "sys", "operator", "io", "timeit"})
# functions that find objects by a name or in the interpreter's memory, or descriptors, by
# their names wherever they are reached (numpy's modules hold some: `np.ma.core.operator`...)
_LOOKUPS = frozenset({
    "import_module", "reload", "get_objects", "get_referrers", "get_referents", "getmembers",
    "getmembers_static", "getclosurevars", "currentframe", "getframeinfo", "getouterframes",
    "getinnerframes", "resolve_name", "locate", "from_address", "attrgetter", "methodcaller",
    "get_field", "fileno"})
_DUNDER_WORD = re.compile(r"(?<![A-Za-z0-9_])__[A-Za-z][A-Za-z0-9_]*__(?![A-Za-z0-9_])")
_RISKY_WORDS = re.compile(
    r"\b(?P<frame>" + "|".join(sorted(_FRAME_ATTRIBUTES)) + r")\b"
    r"|(?P<grader>\b_grader|grader\.inside|\binside\.(?:runtime|wire|limits|zygote|fixed_net)\b"
    r"|\b_Guard\b|\bguard_log\b)"
    r"|(?P<proc>/proc/|/dev/fd)")


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _module_why(module: str) -> str | None:
    """Why an import of ``module`` (dotted) is a line to look at."""
    parts = module.split(".")
    if parts[0].startswith("_") and parts[0] != "__future__":
        return f"the `{parts[0]}` module"
    for end in range(1, len(parts) + 1):
        prefix = ".".join(parts[:end])
        if prefix in UNRESOLVED_MODULES:
            return UNRESOLVED_MODULES[prefix] or f"the `{prefix}` module"
    return None


def _attribute_why(name: str, *, setting: bool = False) -> str | None:
    """Why an attribute of this name (read, or set or deleted) is a line to look at, whatever
    it is an attribute of."""
    if _is_dunder(name):
        allowed = _DUNDER_SET if setting else _DUNDER_READ
        return None if name in allowed else f"`{name}`"
    if name in _FRAME_ATTRIBUTES:
        return f"`{name}`"
    if name in _SYS_ATTRIBUTES:
        return f"`sys.{name}`"
    if name in _MODULE_ATTRIBUTES:
        return f"the `{name}` module"
    if name.startswith("_grader") or name in ("guard_log", "_Guard"):
        return "the grader's runtime"
    if name in _LOOKUPS:
        return f"`{name}`"
    return None


def _path_why(path: str) -> str | None:
    """Why a use of the dotted ``path`` (as ``scan`` resolves names) is a line to look at."""
    why = _module_why(path)
    if why:
        return why
    head, _, name = path.rpartition(".")
    module = head.rpartition(".")[2]
    if module in _OS_MODULES and (name in _OS_FUNCTIONS or name.startswith(
            ("exec", "spawn", "posix_spawn"))):
        return f"`os.{name}`"
    if module == "sys" and name in _SYS_ATTRIBUTES:
        return f"`sys.{name}`"
    return None


def _string_why(value: str | bytes) -> str | None:
    """Why a string constant is a line to look at: names a lookup by string can reach."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    for match in _DUNDER_WORD.finditer(text):
        if match.group() not in _DUNDER_READ | {"__main__"}:
            return f"`{match.group()}` in a string"
    risky = _RISKY_WORDS.search(text)
    if risky is None:
        return None
    if risky.group("frame"):
        return f"`{risky.group('frame')}` in a string"
    return "the grader's runtime" if risky.group("grader") else "a path into `/proc`"


class _Finder:
    """Reads a part of a cell (a statement, or a function's body) and notes each node that
    reaches what no name says, with its line and column."""

    def __init__(self, names: _Names):
        self.names = names
        self.memo: dict[int, str | None] = {}  # (``_resolve``'s)
        self.found: list[tuple[int, int, str]] = []
        # nodes by role, marked by their parents (``_walk`` visits parents first)
        self.called: set[int] = set()
        self.bases: set[int] = set()
        self.aliased: set[int] = set()

    def read(self, nodes: Iterable[ast.AST]) -> list[tuple[int, int, str]]:
        for root in nodes:
            for node in _walk(root):
                self._mark(node)
                why = self._why(node)
                if why:
                    self.found.append((getattr(node, "lineno", 1) or 1,
                                       getattr(node, "col_offset", 0) or 0, why))
        return self.found

    def _mark(self, node: ast.AST) -> None:
        if isinstance(node, ast.Call):
            self.called.add(id(node.func))
            if getattr(node.func, "id", None) in _BY_NAME and node.args:
                self.bases.add(id(node.args[0]))  # getattr(np, "sum") reads np's attribute
        elif isinstance(node, ast.Attribute):
            self.bases.add(id(node.value))
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
            self.aliased.add(id(node.value))  # `o = os`: followed, as scan follows it

    def _why(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.Attribute):
            path = _resolve(node, self.names, self.memo)
            if path in _ATTRGETTERS:  # operator's own: its call is read (``_call``)
                return self._path(node)
            setting = not isinstance(node.ctx, ast.Load)
            return (_attribute_why(node.attr, setting=setting)
                    or (self._changed(node.value, node.attr) if setting else None)
                    or self._path(node))
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            return _string_why(node.value)
        if isinstance(node, ast.Import):
            return next(filter(None, (_module_why(a.name) for a in node.names)), None)
        if isinstance(node, ast.ImportFrom):
            return self._import_from(node)
        if isinstance(node, ast.MatchClass):  # `case object(__kwdefaults__=k)` reads it too
            return next(filter(None, map(_attribute_why, node.kwd_attrs)), None)
        return None

    def _name(self, node: ast.Name) -> str | None:
        name, reading = node.id, isinstance(node.ctx, ast.Load)
        if reading and name in _CODE_BUILTINS:
            return _CODE_BUILTINS[name]
        if reading and name in (*_BY_NAME, "__import__") and id(node) not in self.called:
            return f"`{name}` passed as a value"
        if _is_dunder(name) and name not in _DUNDER_NAMES | {"__import__"}:
            return f"`{name}`"
        path = self.names.get(name) if reading else None
        module = path in self.names.modules or path in _VALUE_WATCHED
        if module and not {id(node)} & (self.bases | self.aliased | self.called):
            return f"the `{path}` module passed as a value"
        return self._path(node) if reading else None

    def _path(self, node: ast.AST) -> str | None:
        path = _resolve(node, self.names, self.memo)
        if path in _ATTRGETTERS and id(node) not in self.called:
            return f"`{path}` passed as a value"
        return _path_why(path) if path else None

    def _changed(self, base: ast.AST, attribute: str) -> str | None:
        """``json.dumps = f``: a library changed where the runtime, in the same process, may
        rely on it (to send its answers, the guard's among them)."""
        if isinstance(base, ast.Attribute) and base.attr == "__class__":
            return "changing a class"
        path = _resolve(base, self.names, self.memo)
        if path is None:
            return None
        return "changing a class" if path.startswith(_CLASS) else f"changing `{path}.{attribute}`"

    def _import_from(self, node: ast.ImportFrom) -> str | None:
        if node.level:
            return "a relative import"
        module = node.module or ""
        for a in node.names:
            if a.name == "*" and module in _STAR_WATCHED:
                return f"everything from `{module}`"
            path = f"{module}.{a.name}"
            why = _module_why(module) or _path_why(path) or (
                None if path in _ATTRGETTERS else _attribute_why(a.name))
            if why:
                return why
        return None

    def _call(self, node: ast.Call) -> str | None:
        callee = _callee(node, self.names, self.memo)
        why = None
        if callee in _BY_NAME:
            why = self._by_name(node, node.args[1:2])
            name = _text(node.args[1]) if len(node.args) > 1 else None
            if not why and name and callee.endswith(("setattr", "delattr")):
                why = self._changed(node.args[0], name)
        elif callee in _ATTRGETTERS:
            why = self._by_name(node, node.args if callee == "operator.attrgetter"
                                else node.args[:1], dotted=True)
        elif callee in _IMPORTERS:
            name = _text(node.args[0]) if node.args else None
            why = _module_why(name) if name else "a computed module name"
        elif callee == "type" and (len(node.args) + len(node.keywords) >= 3 or any(
                isinstance(a, ast.Starred) for a in node.args)):
            why = "`type(name, bases, dict)`"
        elif callee in _OPENERS:
            why = _opener_why(node)
        elif callee in ("timeit.timeit", "timeit.repeat", "timeit.Timer"):
            why = _timeit_why(node)
        return why or _keywords_why(node)

    def _by_name(self, node: ast.Call, arguments: Sequence[ast.expr], *,
                 dotted: bool = False) -> str | None:
        """``getattr(x, "name")`` and the like: a constant name is read as an attribute."""
        if not arguments or any(isinstance(a, ast.Starred) for a in node.args):
            return "a computed attribute name"
        for argument in arguments:
            name = _text(argument)
            if name is None:
                return "a computed attribute name"
            for part in name.split(".") if dotted else [name]:
                why = _attribute_why(part) or _string_why(part)
                if why:
                    return why
        path = _resolve(node, self.names, self.memo)  # getattr(os, "write")
        return _path_why(path) if path else None


def _opener_why(node: ast.Call) -> str | None:
    """``open(3, "wb")``: a descriptor, perhaps one of the runtime's pipes to the grader."""
    first = node.args[0] if node.args else None
    number = isinstance(first, ast.Constant) and isinstance(first.value, int)
    if number or any(k.arg in ("closefd", "opener") for k in node.keywords):
        return "a file descriptor"
    return None


def _timeit_why(node: ast.Call) -> str | None:
    """``timeit.timeit("code")`` runs code from a string; ``timeit.timeit(f)`` is fine."""
    given = [*node.args[:2], *(k.value for k in node.keywords if k.arg in ("stmt", "setup"))]
    if any(not isinstance(g, ast.Name | ast.Attribute | ast.Lambda) for g in given):
        return "`timeit` of code in a string"
    return None


def _keywords_why(node: ast.Call) -> str | None:
    for keyword in node.keywords:
        value = keyword.value
        if keyword.arg == "allow_pickle" and not (isinstance(value, ast.Constant)
                                                  and value.value is False):
            return "`allow_pickle`"
        if keyword.arg and (keyword.arg.startswith("_grader") or _is_dunder(keyword.arg)):
            return _attribute_why(keyword.arg) or "the grader's runtime"
    return None


def _cell_findings(cell: _Cell,
                   parts: list[tuple[str | None, Sequence[ast.AST], _Names]]
                   ) -> list[Unresolved]:
    """The cell's lines to look at, in order, each once (with up to three reasons)."""
    lines: dict[int, tuple[str | None, int, list[str]]] = {}
    for function, nodes, names in parts:
        for line, column, why in sorted(_Finder(names).read(nodes)):
            entry = lines.setdefault(line, (function, column, []))
            if why not in entry[2]:
                entry[2].append(why)
    if not lines:
        return []
    source = _lines(cell.source)
    return [Unresolved(cell.index, line, function,
                       _excerpt(source[line - 1] if line <= len(source) else "", column),
                       ", ".join(whys[:3]))
            for line, (function, column, whys) in sorted(lines.items())[:MAX_UNRESOLVED]]


def _unread(cell: _Cell) -> list[Unresolved]:
    if cell.unread is None:
        return []  # a syntax error: the runtime cannot run it either
    first = cell.source.lstrip("\n").split("\n", 1)[0]
    return [Unresolved(cell.index, 1, None, _excerpt(first, 0), cell.unread)]


def _lines(source: str) -> list[str]:
    """The lines as Python's parser counts them (not ``str.splitlines``: a form feed or a
    U+2028 in a string is no line break to it)."""
    return re.split(r"\r\n|\r|\n", source)


def _excerpt(line: str, column: int, width: int = 120) -> str:
    """The line as the student wrote it, stripped, inert; a long one around ``column`` (a
    UTF-8 offset, as ``ast`` gives it)."""
    character = len(line.encode("utf-8", "surrogatepass")[:column].decode("utf-8", "ignore"))
    text = line.strip()
    character = max(0, character - (len(line) - len(line.lstrip())))
    if len(text) > width:
        start = max(0, min(character - 40, len(text) - width + 2))
        text = ("…" if start else "") + text[start:start + width - 2] + "…"
    shown = inert.line(text)
    return shown if len(shown) <= width else shown[:width - 1] + "…"
