"""Real students' and textbooks' layers, ported into the course's signatures.

Each module here is one author's implementation of some of an assignment's functions: a header
names the source (repository, file, commit, licence when one is stated) and the glue our
signatures needed. The code is re-stated, not copied: the same operations in the same order,
so it computes exactly what the source computes, bugs included, and nothing of theirs is fixed.
Everything below the line ``# --- port ---`` goes into the notebook in place of the reference's
definitions.

``EXPECTED`` names each function our own checker (``tests/corpus/checker.py``) finds wrong, with
the probe that finds it and the words the grader's feedback must use; a function a port defines
and ``EXPECTED`` does not name is correct.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
MARKER = "# --- port ---"

FUNCTIONS = {  # each assignment's graded functions, in the order its notebook defines them
    "backprop": ("dense_forward", "dense_backward", "relu_forward", "relu_backward",
                 "sigmoid_forward", "sigmoid_backward", "softmax_cross_entropy"),
    "convolution": ("conv1d", "conv2d", "max_pool2d", "avg_pool2d", "conv2d_forward",
                    "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward"),
}


@dataclass(frozen=True)
class Bug:
    """A function of a port that is wrong, as our checker finds it and as feedback must say it."""

    what: str  # the bug in plain words
    probe: str  # the checker's probe that finds it (``checker.PROBES``)
    words: tuple[str, ...] = ()  # what the grader's feedback must say; () = it names no cause


@dataclass(frozen=True)
class Port:
    name: str  # the module's name: author and layers
    author: str
    assignment: str
    functions: tuple[str, ...]  # the assignment's functions it defines, in notebook order
    expected: dict[str, Bug]
    code: str  # what goes into the notebook
    module: ModuleType

    @property
    def correct(self) -> tuple[str, ...]:
        return tuple(f for f in self.functions if f not in self.expected)


def load(name: str) -> Port:
    module = importlib.import_module(f"{__name__}.{name}")
    text = (HERE / f"{name}.py").read_text()
    assert MARKER in text, f"{name}.py has no '{MARKER}' line"
    functions = tuple(f for f in FUNCTIONS[module.ASSIGNMENT] if hasattr(module, f))
    unknown = set(module.EXPECTED) - set(functions)
    assert not unknown, f"{name}.py: EXPECTED names functions it does not define: {unknown}"
    return Port(name, module.AUTHOR, module.ASSIGNMENT, functions, dict(module.EXPECTED),
                text.split(MARKER, 1)[1], module)


def names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)])
                  if m.name not in ("checker",))


def ports() -> list[Port]:
    return [load(name) for name in names()]
