"""What a kind of rubric test is: the extension points, declared in one place.

A kind is one class in one module (``grader.checks.kinds`` lists them, in ``KINDS``). It holds,
in the order a test meets them:

- its **keys**: an ``Options`` dataclass whose fields are its rubric keys with their typed
  defaults (``key``), filled in at parse time, and the case-table keys it takes
  (``case_keys``); the parser (``grader.checks.rubric``) and ``docs/rubric.md`` read them;
- its **cross-checks** (``cross_check``): what no single key can say, at parse time, and what
  only the reference can say (``check_reference``), when an assignment is validated;
- what it needs **computed once per batch** (``prepare``), from the reference alone;
- how it **runs** (``run``): a ``TestResult`` from the student's functions, called through a
  ``grader.core.calls.Session``;
- what it **records for re-scoring**: the result's ``fraction`` and ``details``, which
  ``rescore`` turns into points again under a changed rubric, reading only the options named
  in ``scoring_options``; and what the students' self-check records of the reference for it
  (``record``);
- its **view**: a typed ``details`` (a ``TypedDict`` in its module) and the template that
  shows it on the feedback page, ``templates/kinds/<name>.html.j2``.

Adding a kind is one module and its template, and one line in ``grader.checks.kinds``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from grader.checks.context import Context, result
from grader.core import schema

if TYPE_CHECKING:
    from grader.checks.spec import Rubric, TestSpec
    from grader.core.reference import Reference
    from grader.core.results import TestResult


@dataclass(frozen=True)
class KeyDoc:
    """How a key reads in ``docs/rubric.md`` and how its value is parsed."""

    type: str
    meaning: str
    parse: schema.Parser = schema.anything
    shown: Any = None  # its default as the docs show it, where not the value itself ("—")
    required: bool = False


def key(default: Any, type: str, meaning: str, parse: schema.Parser = schema.anything, *,
        shown: Any = None, required: bool = False) -> Any:
    """A field of a kind's ``Options``: a rubric key with its typed default."""
    return field(default=default, metadata={"key": KeyDoc(type, meaning, parse, shown, required)})


@dataclass(frozen=True)
class Options:
    """A kind's rubric keys with their typed defaults (a subclass per kind)."""

    needs_mnist: ClassVar[bool] = False  # its tests train on MNIST (the batch prepares it)
    # which of the reference's calls a relative budget key follows (``grader.core.budgets``):
    # ``timeout`` always follows the test's own function
    budgets_follow: ClassVar[Mapping[str, str]] = {}
    # a failing case is shrunk to the smallest input that shows the bug
    # (``grader.checks.counterexample``)
    shrinks: ClassVar[bool] = False

    @classmethod
    def keys(cls) -> tuple[schema.Key, ...]:
        """Its keys as the schema knows them, in the order they are declared."""
        found = []
        for item in dataclasses.fields(cls):
            doc: KeyDoc = item.metadata["key"]
            shown = doc.shown if doc.shown is not None else (
                schema.REQUIRED if doc.required else item.default)
            found.append(schema.Key(item.name, doc.type, shown, doc.meaning, doc.parse))
        return tuple(found)

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str,
              problems: schema.Problems) -> Options | None:
        """The options from a test's table (only this kind's keys in ``raw``), each parsed and
        every other at its default; None, with the problems recorded, when one is wrong."""
        before, values = len(problems.lines), {}
        for item in dataclasses.fields(cls):
            doc: KeyDoc = item.metadata["key"]
            if item.name in raw:
                values[item.name] = problems.parse(doc.parse, raw[item.name],
                                                   f"{where}: {item.name}")
            elif doc.required:
                problems.add(f"{where}: {item.name} is required")
        return cls(**values) if len(problems.lines) == before else None


OptionsT = TypeVar("OptionsT", bound=Options)


def options_of(spec: TestSpec, kind: type[OptionsT]) -> OptionsT:
    """A test's options as its kind's own dataclass: what its kind's code reads them as (the
    parser made them so; anything else is a grader bug, raised here)."""
    found = spec.options
    if not isinstance(found, kind):
        raise TypeError(f"test {spec.name!r}: its options are {type(found).__name__}, not "
                        f"{kind.__name__}")
    return found


class Kind:
    """A kind of rubric test (see the module's docstring for the hooks, in order)."""

    name: ClassVar[str]
    meaning: ClassVar[str]  # what a test of this kind checks, for docs/rubric.md
    options: ClassVar[type[Options]] = Options
    case_keys: ClassVar[tuple[str, ...]] = ()  # the case-table keys it takes; () takes no cases
    # a forbidden shortcut in its function, or code the static scan cannot read there, takes
    # its points (a test of the whole notebook, or of training, is judged otherwise)
    guarded: ClassVar[bool] = True
    exported: ClassVar[bool] = True  # runs in the students' self-check
    scoring_options: ClassVar[tuple[str, ...]] = ()  # options only scoring reads
    # its finds cost other tests their points, so even a test worth nothing quotes the
    # notebook's sentence (``requirement``) that it checks
    costs_others: ClassVar[bool] = False
    # the untouched template may score here: the test rewards what is absent (the rules)
    template_may_score: ClassVar[bool] = False
    # the side checks its tests make, by name: each needs the notebook's sentence that asks
    # for it (``[assignment].side_checks``) where a test of this kind has points
    side_checks: ClassVar[tuple[str, ...]] = ()

    @property
    def template(self) -> str:
        """Its part of the feedback page: ``templates/kinds/<name>.html.j2``."""
        return f"kinds/{self.name}.html.j2"

    def accepts(self, name: str) -> bool:
        """Whether a ``[[tests]]`` key is one of this kind's own (besides every kind's)."""
        option_names = {item.name for item in dataclasses.fields(self.options)}
        single_case = {"cases"} | set(self.case_keys) if self.case_keys else set()
        return name in option_names or name in single_case

    # --- parse time ---------------------------------------------------------------------

    def cross_check(self, spec: TestSpec, *, where: str, functions: tuple[str, ...],
                    problems: schema.Problems) -> None:
        """What no single key can say (names that must exist, lists that must agree)."""
        if spec.function not in functions:
            problems.add(f"{where}: function {spec.function!r} is not in [assignment].functions"
                         f"{schema.did_you_mean(spec.function, functions)}")

    # --- validation, in the grader's process ----------------------------------------------

    def check_reference(self, spec: TestSpec, rubric: Rubric, reference: Reference) -> list[str]:
        """What the reference says is wrong with the test (a keyword it does not take...)."""
        return []

    # --- once per batch -------------------------------------------------------------------

    def prepare(self, spec: TestSpec, rubric: Rubric, reference: Reference) -> None:
        """Compute what every submission's run of this test needs of the reference."""

    # --- grading --------------------------------------------------------------------------

    def run(self, spec: TestSpec, context: Context) -> TestResult:
        """The test's result for one submission."""
        raise NotImplementedError(self.name)

    # --- re-scoring and the self-check ------------------------------------------------------

    def rescore(self, spec: TestSpec, observed: TestResult) -> TestResult:
        """One stored observation under the scoring part of ``spec``: the function that made
        it at grading time makes it again (``context.result``)."""
        assert observed.fraction is not None  # (``rescore`` checked it)
        return result(spec, observed.fraction, observed.message, diagnosis=observed.diagnosis,
                      status=observed.status, details=dict(observed.details))

    def record(self, spec: TestSpec, context: Context) -> None:
        """Call the (recording) reference as grading this test can, for the self-check."""
