"""A rubric as typed values: the assignment (``Rubric``), its tests (``TestSpec``) and their
calls (``Case``). ``grader.checks.rubric`` makes them from ``solutions/NAME.toml``; every other
stage only reads them.

A test's own keys live in ``TestSpec.options``, a frozen dataclass its kind declares
(``grader.checks.kinds``) with every default filled in at parse time: a check reads
``spec.options.threshold``, never a dict with a default of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.core import budgets
from grader.core.results import Visibility

if TYPE_CHECKING:  # (the kinds' options are dataclasses of grader.checks.kinds.base.Options)
    from grader.checks.kinds.base import Kind, Options


@dataclass(frozen=True)
class Case:
    """One call: positional and keyword arguments, literal values or input specs (tables such
    as ``{shape = [3, 5], dist = "normal"}`` that the grader turns into seeded arrays)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    expected: Any = None  # literal expected value (example tests); else the reference's answer
    upstream: dict[str, Any] | None = None  # spec of dout for gradient tests (default: normal)


# What the keys a test calling a function has (``outputs``, ``timeout``...) are for a test of
# another kind: what every test was given before the kinds had options of their own (the
# observation keys of stored results are made of them, ``grader.grading.rescore``).
NOT_CALLED: Mapping[str, Any] = {"forward": None, "outputs": ("out",), "returns": (),
                                 "bugs": (), "shape_formula": "", "timeout": 10.0}


@dataclass(frozen=True)
class TestSpec:
    __test__ = False

    name: str
    function: str
    kind: str
    points: float
    visibility: Visibility
    description: str
    cases: tuple[Case, ...]
    options: Options  # the kind's keys, typed, defaults filled in
    # the kind itself (``grader.checks.kinds.get(kind)``), as the parser found it: what only
    # holds specs reaches the kind's hooks through it, without importing the registry
    hooks: Kind = field(repr=False, compare=False)
    # the handed-out notebook's sentence this test checks, quoted (``validate`` finds it there)
    requirement: str = ""
    # the kind's keys the rubric (or its [defaults]) set, sorted (its repr keys caches)
    written: tuple[str, ...] = ()
    # set for this machine by ``grader.core.budgets.resolve``: how each relative budget was
    # derived (for timeout messages), and what the reference's calls took here
    budget_notes: Mapping[str, str] = field(default_factory=dict)
    reference_seconds: Mapping[str, float] | None = None

    def with_options(self, **changes: Any) -> TestSpec:
        """This test with some of its kind's keys set as a rubric would set them."""
        return dataclasses.replace(self, options=dataclasses.replace(self.options, **changes),
                                   written=tuple(sorted({*self.written, *changes})))

    # The keys of tests that call a function on cases (example, output, gradient), read the same
    # way for every kind: a test of another kind reads ``NOT_CALLED``.
    @property
    def forward(self) -> str | None:
        """Gradient tests: the forward whose cache feeds ``function``."""
        found: str | None = getattr(self.options, "forward", NOT_CALLED["forward"])
        return found

    @property
    def outputs(self) -> tuple[str, ...]:
        """The names of the returned values that are compared."""
        return tuple(getattr(self.options, "outputs", NOT_CALLED["outputs"]))

    @property
    def returns(self) -> tuple[str, ...]:
        """The names of all returned values (e.g. ("out", "cache"))."""
        return tuple(getattr(self.options, "returns", NOT_CALLED["returns"]))

    @property
    def bugs(self) -> tuple[str, ...]:
        """Bug patterns to look for when a comparison fails."""
        return tuple(getattr(self.options, "bugs", NOT_CALLED["bugs"]))

    @property
    def shape_formula(self) -> str:
        """The output shape in words, quoted when a student's shape is wrong."""
        return str(getattr(self.options, "shape_formula", NOT_CALLED["shape_formula"]))

    @property
    def timeout(self) -> budgets.Budget:
        """Seconds per call, or relative to the reference (``grader.core.budgets``)."""
        found: budgets.Budget = getattr(self.options, "timeout", NOT_CALLED["timeout"])
        return found


@dataclass(frozen=True)
class Rubric:
    name: str
    title: str
    path: Path
    solution: Path
    functions: tuple[str, ...]
    tests: tuple[TestSpec, ...]
    seed: int
    sha256: str
    cell_timeout: float = 10.0
    setup_budget: float = 30.0
    given: tuple[str, ...] = ()  # functions handed to students complete (no solution markers)
    # the notebook's sentence behind each side check of a backward (``kinds.gradient``)
    side_checks: dict[str, str] = field(default_factory=dict)
    # Mixed into every seeded input and every disguise of MNIST: a digest of the reference
    # notebook, which no student holds, so that nothing handed out (the self-check records the
    # reference's answers on its own inputs) answers a grading input. Empty for the
    # self-check's rubric, whose inputs are public.
    secret: str = ""

    @property
    def max_score(self) -> float:
        return sum(t.points for t in self.tests)

    @property
    def needs_mnist(self) -> bool:
        return any(t.options.needs_mnist for t in self.tests)
