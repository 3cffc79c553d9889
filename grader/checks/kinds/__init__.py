"""The kinds of rubric test, named in one place.

Each kind is one class in one module of this package, with its part of the feedback page in
``grader/templates/kinds/<name>.html.j2``; ``base.Kind`` declares what a kind provides (its
keys with typed defaults, its cross-checks, what it computes once per batch, how it runs,
what it records for re-scoring, its view). The parser, the engine, validation, re-scoring, the
self-check and the pages ask a test's kind (``get``) and never spell a kind's name.

To add a kind: write its module and its template, and name it in ``KINDS``.
"""

from __future__ import annotations

from grader.checks.kinds.base import Kind, Options
from grader.checks.kinds.example import Example
from grader.checks.kinds.gradient import Gradient
from grader.checks.kinds.mnist import Mnist
from grader.checks.kinds.mnist_diagnostic import MnistDiagnostic
from grader.checks.kinds.output import Output
from grader.checks.kinds.rules import Rules
from grader.checks.kinds.signature import Signature

# In the order docs/rubric.md presents them.
KINDS: tuple[Kind, ...] = (Example(), Output(), Gradient(), Mnist(), MnistDiagnostic(), Rules(),
                           Signature())
NAMES: tuple[str, ...] = tuple(kind.name for kind in KINDS)
_BY_NAME = {kind.name: kind for kind in KINDS}

__all__ = ["KINDS", "NAMES", "Kind", "Options", "get"]


def get(name: str) -> Kind:
    """The kind of that name (a ``KeyError`` for one the rubric's parser would have refused)."""
    return _BY_NAME[name]
