"""``rules`` tests: no forbidden library shortcut anywhere in the notebook (a library
convolution, automatic differentiation, a ready-made network), by the static scan of its
source (``grader.checks.shortcuts``) and the runtime guard in its sandbox. Worth no points of
its own: a function that uses one scores 0 on its own tests (``grader.checks.engine``), and the
rules test says why. Code the scan cannot read waits for an instructor's review.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from grader.checks import shortcuts
from grader.checks.context import Context, result
from grader.checks.kinds.base import Kind, Options
from grader.core import schema
from grader.core.results import TestResult

if TYPE_CHECKING:
    from grader.checks.spec import TestSpec

GUARDS_TIMEOUT = 10.0  # seconds for the runtime guard's report


@dataclass(frozen=True)
class RulesOptions(Options):
    pass


class RulesDetails(TypedDict, total=False):
    uses: list[str]  # what was found, by the names ``shortcuts.explain`` knows
    unresolved: list[str]  # the lines the static scan cannot read


class Rules(Kind):
    name = "rules"
    meaning = "no forbidden library shortcuts."
    options = RulesOptions
    guarded = False  # (it is the guard)
    costs_others = True
    template_may_score = True  # it rewards what is absent: the untouched template passes

    def cross_check(self, spec: TestSpec, *, where: str, functions: tuple[str, ...],
                    problems: schema.Problems) -> None:
        """Its ``function`` is any label ("(whole notebook)"): nothing to check."""

    def run(self, spec: TestSpec, context: Context) -> TestResult:
        """No forbidden shortcut anywhere in the notebook (static scan and runtime guard)."""
        answer = context.session.request({"op": "guards"}, timeout=GUARDS_TIMEOUT)
        seen = set(context.forbidden.get("<notebook>", []))
        if isinstance(answer, dict):
            seen |= set(answer.get("used", []))
        if not seen and context.unresolved:
            unresolved: RulesDetails = {"unresolved": [line.text()
                                                       for line in context.unresolved]}
            return result(spec, 0.0, shortcuts.describe(context.unresolved), status="review",
                          diagnosis="code the grader cannot read", details=unresolved)
        if not seen:
            return result(spec, 1.0, "No library convolution, automatic differentiation or "
                                     "ready-made network found.")
        listed = ", ".join(shortcuts.explain(u) for u in sorted(seen))
        found: RulesDetails = {"uses": sorted(seen)}
        return result(spec, 0.0, f"Your notebook uses {listed}. The practical is to write "
                                 f"forward and backward passes yourself with NumPy.",
                      diagnosis="forbidden shortcut", details=found)
