"""The seam between the check engine and whatever runs a notebook: the ``Session`` protocol the
checks call a student's functions through, and what one call gives back (``CallOutcome``).

Two things implement it. ``grader.run.session.Session`` runs the notebook in the sandbox and is
what grading uses. ``grader.run.inprocess.InProcessSession`` runs trusted code in the grader's
own process, for tests: the check logic, the diagnoses, the credit policy and the bug corpus are
then tested in milliseconds, and the sandbox keeps end-to-end tests of its own.

Only plain data crosses: arguments and return values are NumPy arrays, numbers and the
runtime's tagged forms (``{"__sequence__": [...]}``, ``{"__ref__": key}`` for a value kept on
the other side), never objects of the notebook's.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from grader.core.notebook import Notebook


@dataclass(frozen=True)
class CallOutcome:
    """What one call of a student function produced, as plain data."""

    ok: bool
    value: Any = None
    kind: str = ""  # missing | not_implemented | exception | exit | timeout | crash | unsendable
    error: str = ""
    traceback: str = ""
    seconds: float = 0.0  # measured by the grader, around the call
    inputs: Any = None
    guards: tuple[str, ...] = ()
    # a timeout while the machine ran this many times slower than when the budgets were set
    # (``grader.core.pace``): the time may have been the machine's, not the student's
    busy: float | None = None


Answer = dict[str, Any] | str | None  # a raw request's answer, a crash's words, or no answer


class Session(Protocol):
    """A notebook whose cells have run, ready for the checks' calls."""

    @property
    def notebook(self) -> Notebook: ...

    @property
    def out_of_time(self) -> bool:
        """Whether the submission's whole time budget is spent."""
        ...

    def call(self, function: str, args: list[Any], kwargs: dict[str, Any] | None = None, *,
             timeout: float, store: str | None = None, reply: Any = "value",
             return_inputs: bool = False, keep_args: str | None = None,
             warnings: str | None = None) -> CallOutcome:
        """Call ``function`` of the notebook; ``store`` keeps the value on the other side under
        that key, ``reply`` says what comes back (``"value"``, ``"none"``, or positions of a
        returned tuple), ``keep_args`` keeps the arguments as they are after the call."""
        ...

    def pipeline(self, calls: list[dict[str, Any]], *, timeout: float,
                 each: float) -> tuple[int, CallOutcome]:
        """Several calls in one request: how many succeeded, and the first failure's outcome."""
        ...

    def request(self, message: dict[str, Any], *, timeout: float) -> Answer:
        """A raw request of the runtime (``fetch``, ``guards``, ``put``...)."""
        ...

    def stuck(self, function: str) -> str | None:
        """Why ``function`` is no longer called (it had to be killed), or None."""
        ...

    def busy(self) -> float | None:
        """How many times slower the machine runs now than when the budgets were set, when
        that is enough to doubt a timeout (``grader.core.pace``); None otherwise."""
        ...

    def record_time(self, what: str, seconds: float) -> None:
        """Keep how long something took that the grader measured around several requests."""
        ...

    def private(self) -> AbstractContextManager[Session]:
        """A second session of the same notebook, with no data and no output kept (the MNIST
        diagnostic's culprit search: what it shows the student's functions of the reference's
        values never reaches the feedback page)."""
        ...
