"""Time budgets that follow the machine: multiples of the reference's own time on it.

The reference trained in 2.9 s on one machine and in 12–20 s on another of the same size, so a
fixed number of seconds is either too tight on a slow or busy machine (a correct submission
times out) or too loose on a fast one. A rubric may give any budget as a table,

    budget = { times_reference = 20, at_least = 60, at_most = 600 }

meaning 20 × what the reference took for the same call on this machine (measured by the
canary before every batch), never under 60 s nor over 600 s. A plain number stays a fixed
budget. The budgets and what each call of the reference measured:

    timeout         any call of the test's function     (the function's own time)
    budget          ``mnist``: ``train_mnist``; ``mnist_diagnostic``: the fixed network's training
    predict_budget  ``mnist``: ``predict``
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grader.core.errors import GraderError

KEYS = ("times_reference", "at_least", "at_most")


@dataclass(frozen=True)
class Relative:
    times_reference: float
    at_least: float
    at_most: float

    def seconds(self, reference_s: float | None) -> float:
        if reference_s is None:  # not measured yet (the canary itself): the cap
            return self.at_most
        return min(max(self.times_reference * reference_s, self.at_least), self.at_most)

    def explain(self, reference_s: float | None) -> str:
        if reference_s is None:
            return f"the cap of {self.at_most:g} s"
        return (f"{self.times_reference:g} × the reference's {reference_s:.2f} s on this "
                f"machine, at least {self.at_least:g} s and at most {self.at_most:g} s")


Budget = float | Relative

# The whole submission (notebook cells, every test, MNIST training, the diagnostic): a multiple
# of what grading the reference took here, so that calls sleeping just under their limits, a
# slow training and hanging reruns cannot hold a worker for many minutes.
TOTAL = Relative(times_reference=5, at_least=120, at_most=1200)
TOTAL_KEY = "submission"  # the canary's whole grading time, in reference_seconds


def total_seconds(reference_seconds: Mapping[str, float] | None) -> tuple[float, str]:
    """The total budget of one submission in seconds, and how it was set."""
    measured = (reference_seconds or {}).get(TOTAL_KEY)
    return TOTAL.seconds(measured), TOTAL.explain(measured)


def seconds(budget: Budget) -> float:
    """A budget in seconds: one ``resolve`` made absolute for this machine, or, where nothing
    resolved it, a relative budget's cap (as ``resolve`` gives it with nothing measured)."""
    return budget.seconds(None) if isinstance(budget, Relative) else float(budget)


def parse(value: Any, where: str) -> Budget:
    """A budget from the rubric: seconds, or a ``times_reference`` table."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(KEYS))
        if unknown or set(value) != set(KEYS):
            raise GraderError(f"{where} must be seconds or a table with exactly the keys "
                              f"{', '.join(KEYS)} (got {', '.join(sorted(value)) or 'none'})")
        numbers = [_positive(value[k], f"{where}.{k}") for k in KEYS]
        if numbers[1] > numbers[2]:
            raise GraderError(f"{where}.at_least must not exceed {where}.at_most")
        return Relative(*numbers)
    return _positive(value, where)


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise GraderError(f"{where} must be a number of seconds > 0")
    return float(value)


def measured_by(spec: Any, key: str) -> str:
    """Which of the reference's calls a budget follows: ``timeout`` the test's own function,
    another budget what its kind's options say (``Options.budgets_follow``)."""
    if key == "timeout":
        return str(spec.function)
    return str(spec.options.budgets_follow[key])


def resolve(rubric: Any, reference_seconds: Mapping[str, float] | None) -> Any:
    """The rubric with every budget in seconds for this machine; ``TestSpec.budget_notes``
    says how each was derived, for timeout messages. ``None``: the caps (for the canary)."""
    tests = []
    for spec in rubric.tests:
        seconds, notes = {}, {}
        for key in ("timeout", *spec.options.budgets_follow):
            value = getattr(spec.options, key, None)
            if not isinstance(value, Relative):
                continue
            measured = (reference_seconds or {}).get(measured_by(spec, key))
            if reference_seconds is not None and measured is None:
                measured = 0.0  # the reference never made that call: the floor applies
            seconds[key] = value.seconds(measured)
            notes[key] = value.explain(measured)
        changes: dict[str, Any] = {"options": dataclasses.replace(spec.options, **seconds)}
        if notes:
            changes["budget_notes"] = notes
        if reference_seconds is not None:  # what the reference took here, for plausibility
            changes["reference_seconds"] = dict(reference_seconds)
        tests.append(dataclasses.replace(spec, **changes))
    return dataclasses.replace(rubric, tests=tuple(tests))


def note(spec: Any, key: str) -> str:
    """`` (how the budget was set)``, or nothing for a fixed budget; for timeout messages."""
    text = spec.budget_notes.get(key)
    return f" ({text})" if text else ""
