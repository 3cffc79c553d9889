"""The self-check's report in a terminal (``python -m grader check`` and the students'
``NAME-check.pyz``): one line per public test, then what to fix first."""

from __future__ import annotations

from grader.core import inert
from grader.core.results import SubmissionResult

MESSAGE_INDENT = " " * 9  # where a test's message starts in the self-check's summary


def summary(result: SubmissionResult, *, width: int | None = None) -> str:
    """The self-check's terminal report: one line per public test, then what to fix first.

    Everything in it that a submission can shape (its file name, its exception messages, its
    notices) is made inert (``grader.core.inert``): a student's escape sequences or newlines cannot
    hide a real line or print a fake one. ``width``: the terminal's, to wrap lines at."""
    lines = [f"{inert.line(result.submission)}: {result.score:.2f} / {result.max_score:g} on "
             f"the public tests"]
    if result.error:
        lines.append(f"  cannot be graded: {inert.block(result.error, MESSAGE_INDENT)}")
        return inert.wrap("\n".join(lines), width, MESSAGE_INDENT)
    for test in result.tests:
        mark = {"passed": "ok  ", "failed": "FAIL", "error": "ERR ", "timeout": "TIME",
                "review": "REVW"}[test.status]
        lines.append(f"  {mark} {test.score:>5.2f}/{test.max_score:<4g} {inert.line(test.name)}")
        if test.status != "passed":
            lines.append(MESSAGE_INDENT + inert.block(test.message, MESSAGE_INDENT))
            if test.diagnosis:
                lines.append(f"{MESSAGE_INDENT}hint: {inert.block(test.diagnosis, MESSAGE_INDENT)}")
            if getattr(test, "requirement", "") and test.score < test.max_score:
                asked = " ".join(test.requirement.split())
                lines.append(f"{MESSAGE_INDENT}the notebook asks: “{inert.line(asked)}”")
    for notice in result.notices:
        if notice.startswith("your notebook printed"):
            notice = "your notebook printed output; the feedback page shows it"
        first = notice.split("\n", 1)[0]
        lines.append(f"  note: {inert.line(first)}")  # (whole: inert.wrap wraps it below)
    lines.append(
        "Hidden tests run too when your notebook is graded; they use other sizes and "
        "strides, so test more than the examples."
    )
    return inert.wrap("\n".join(lines), width, MESSAGE_INDENT)
