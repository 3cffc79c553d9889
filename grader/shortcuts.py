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
    ``"<notebook>"`` for every use anywhere in the notebook."""
    direct: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    everywhere: set[str] = set()
    for cell in notebook.cells:
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        everywhere |= _uses(tree)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                direct[node.name] = _uses(node)
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


def _uses(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {_forbidden_module(a.name) for a in node.names} - {None}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found |= {_forbidden_module(m) for m in modules} - {None}
            if node.module == "numpy":
                found |= {f"numpy.{a.name}" for a in node.names if a.name in FORBIDDEN_CALLS}
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_CALLS:
            if isinstance(node.value, ast.Name) and node.value.id in ("np", "numpy"):
                found.add(f"numpy.{node.attr}")
    return found


def _forbidden_module(name: str) -> str | None:
    for module in FORBIDDEN_MODULES:
        if name == module or name.startswith(module + "."):
            return module
    return None
