"""Find the library shortcuts the practical forbids (library convolutions, automatic
differentiation, ready-made networks) in a notebook's source, per function.

The practical is to write these by hand, so a shortcut is reported as a failed rule with a
clear message and the functions that use it lose the points they would have earned with it.
The sandbox's runtime guard catches the spellings a static scan cannot see.
"""

from __future__ import annotations

import ast

from grader.notebook import Notebook

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


def explain(use: str) -> str:
    """One sentence about a use found here or reported by the sandbox's guard."""
    if use.startswith("numpy."):
        name = use.split(".", 1)[1]
        return f"`{use}` ({FORBIDDEN_CALLS.get(name, 'a library shortcut').split(', ', 1)[-1]})"
    for module, why in FORBIDDEN_MODULES.items():
        if use == module or use.startswith(module + "."):
            return f"`{use}` ({why})"
    return f"`{use}`"


def scan(notebook: Notebook) -> dict[str, list[str]]:
    """Forbidden uses per top-level function (helpers included transitively), plus the key
    ``"<notebook>"`` for every use anywhere in the notebook.

    Names are followed through every import form and plain assignment (``import
    numpy._core.numeric as m``, ``from numpy import correlate as c``, ``m =
    importlib.import_module("numpy._core.numeric")``, ``getattr(m, "correlate")``): bindings at
    the top level of any cell hold in every function that does not use the name for something
    of its own, bindings in a function hold in it. The sandbox's runtime guard catches what
    cannot be read (computed names)."""
    trees = []
    for cell in notebook.cells:
        try:
            trees.append(ast.parse(cell.source))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    aliases = _aliases([n for tree in trees for n in _top_level(tree)], _DEFAULT_ALIASES)
    direct: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    everywhere: set[str] = set()
    for tree in trees:
        everywhere |= _uses(tree, aliases)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                direct[node.name] = _uses(node, _function_aliases(node, aliases))
                everywhere |= direct[node.name]
                calls[node.name] = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    result = {name: sorted(_reach(name, direct, calls)) for name in direct}
    result["<notebook>"] = sorted(everywhere)
    return result


def _reach(name: str, direct: dict[str, set[str]], calls: dict[str, set[str]]) -> set[str]:
    seen, queue, found = set(), [name], set()
    while queue:
        current = queue.pop()
        if current in seen or current not in direct:
            continue
        seen.add(current)
        found |= direct[current]
        queue += calls[current]
    return found


def _top_level(tree: ast.AST) -> list[ast.AST]:
    """The nodes of a cell outside its function bodies (cell order is ignored on purpose: a
    name bound anywhere in the notebook to a forbidden thing is suspect)."""
    found, queue = [], [tree]
    while queue:
        node = queue.pop()
        found.append(node)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            queue += ast.iter_child_nodes(node)
    return found


def _function_aliases(function: ast.FunctionDef, outer: dict[str, str]) -> dict[str, str]:
    """The names as the function sees them: its own names (arguments, variables) hide the
    notebook's, its own imports and assignments of modules or functions are added."""
    own = {a.arg for a in ast.walk(function.args) if isinstance(a, ast.arg)}
    own |= {n.id for n in ast.walk(function) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Store)}
    visible = {name: path for name, path in outer.items() if name not in own}
    return _aliases(list(ast.walk(function)), visible)


def _aliases(nodes: list[ast.AST], start: dict[str, str]) -> dict[str, str]:
    """``start`` plus every name the nodes bind to a module or a library function: name ->
    dotted path."""
    aliases = dict(start)
    assignments = []
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:  # `import a.b` binds a to a; `import a.b as c` binds c to a.b
                top = a.name.split(".")[0]
                aliases[a.asname or top] = a.name if a.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name == "*":
                    aliases.update(_star(node.module))
                else:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr) and node.value:
            assignments.append(node)
    for _ in range(3):  # `m = np._core; n = m.numeric; f = n.correlate`: a few rounds
        for node in assignments:
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            path = _resolve(node.value, aliases)
            if isinstance(target, ast.Name) and path is not None:
                aliases[target.id] = path
    return aliases


def _star(module: str) -> dict[str, str]:
    """What ``from module import *`` may bind that matters here."""
    if module == "numpy" or module.startswith("numpy."):
        return {name: f"{module}.{name}" for name in (*FORBIDDEN_CALLS, *_KERNELS)}
    return {}


def _resolve(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The dotted path an expression names, where it can be read: ``np._core.numeric``,
    ``getattr(np, "convolve")``, ``importlib.import_module("numpy._core")``, ``__import__``."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, ast.Call) and node.args:
        function = _resolve(node.func, aliases) or getattr(node.func, "id", None)
        first = node.args[0]
        text = first.value if isinstance(first, ast.Constant) else None
        if function in ("getattr", "builtins.getattr") and len(node.args) >= 2:
            base, attribute = _resolve(first, aliases), node.args[1]
            if base and isinstance(attribute, ast.Constant) and isinstance(attribute.value, str):
                return f"{base}.{attribute.value}"
        if function in ("importlib.import_module", "__import__", "builtins.__import__"):
            if isinstance(text, str):
                # __import__("a.b") returns a, import_module("a.b") returns a.b
                return text if function == "importlib.import_module" else text.split(".")[0]
    return None


def _uses(tree: ast.AST, aliases: dict[str, str]) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        paths: list[str] = []
        if isinstance(node, ast.Import):
            paths = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            paths = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Name | ast.Attribute):
            paths = [_resolve(node, aliases) or ""]
        elif isinstance(node, ast.Call):
            paths = [_resolve(node, aliases) or ""]
            function = _resolve(node.func, aliases) or getattr(node.func, "id", None)
            if function in ("importlib.import_module", "__import__", "builtins.__import__"):
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    paths.append(arg.value)
        found |= {use for use in map(_forbidden, paths) if use}
    return found


def _forbidden(path: str) -> str | None:
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
