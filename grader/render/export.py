"""Grades for Gradescope (``results.json``) and the test order the gradebooks use; the
gradebooks themselves are ``grader.course.gradebook``'s."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grader.core.files import write_atomic
from grader.core.results import SubmissionResult, TestResult, number


def _finite(value: float) -> float | None:
    """The value if it is a finite number; NaN, inf and non-numbers are None (no grade)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _points(value: float) -> float:
    """Scores for Gradescope, rounded as every page and gradebook rounds them
    (``results.number``); Gradescope needs a finite number: a NaN or infinite one counts 0."""
    finite = _finite(value)
    return 0.0 if finite is None else float(number(finite))


def rubric_order(results: Iterable[SubmissionResult]) -> list[str]:
    """Test names in the order the rubric runs them (first appearance across the results)."""
    return list(dict.fromkeys(t.name for r in results for t in r.tests))


# --------------------------------------------------------------------------- Gradescope


def ended(text: str) -> str:
    """The text with one full stop at its end, whether or not the rubric wrote one: a
    description quoted in a sentence ('Hidden test: x.') never ends in '..'."""
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


def _test_output(test: TestResult) -> str:
    parts = [test.message]
    if test.diagnosis:
        parts.append(f"Diagnosis: {test.diagnosis}")
    if test.visibility == "hidden" and test.description:
        parts.insert(0, f"Hidden test: {ended(test.description)}")
    return "\n\n".join(p for p in parts if p)


def _gradescope_test(test: TestResult, number: int) -> dict[str, Any]:
    return {
        "name": test.name,
        "number": str(number),
        "score": _points(test.score),
        "max_score": _points(test.max_score),
        "status": "passed" if test.status == "passed" else "failed",
        "output": _test_output(test),
        "output_format": "text",
        "visibility": "after_published" if test.visibility == "hidden" else "visible",
        "tags": [test.function],
    }


def gradescope_json(result: SubmissionResult) -> dict[str, Any]:
    """The submission in Gradescope's autograder ``results.json`` format.

    Hidden tests get ``"visibility": "after_published"``: students see nothing of them (not
    even that they exist) until the instructor publishes grades, then they see the score and
    the message and diagnosis, the same text the feedback page shows. Nothing else about a
    hidden test (inputs, values, source) is ever put in ``output``. Public tests are
    ``"visible"``. All text is sent as ``"text"`` so Gradescope shows it verbatim and never
    interprets student-derived strings as HTML or Markdown.

    An ungradable submission gets score 0, no tests and the reason as the top-level output.
    """
    output = [f"Score {number(result.score)} / {number(result.max_score)}."]
    if result.error is not None:
        output = [f"Your submission could not be graded: {result.error}"]
    output += [f"Notice: {n}" for n in result.notices[:10]]
    return {
        "score": _points(result.score),
        "execution_time": max(0, round(_finite(result.duration_s) or 0.0)),
        "output": "\n\n".join(output),
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [_gradescope_test(t, i) for i, t in enumerate(result.tests, start=1)],
        "extra_data": {
            "student": result.student,
            "submission": result.submission,
            "sha256": result.sha256,
            "grader_version": result.grader_version,
        },
    }


def gradescope_text(result: SubmissionResult) -> str:
    """:func:`gradescope_json` as the text of ``results.json``."""
    text = json.dumps(gradescope_json(result), indent=2, ensure_ascii=False, allow_nan=False)
    return text + "\n"


def write_gradescope(result: SubmissionResult, path: Path) -> None:
    """Write :func:`gradescope_json` to ``path`` (usually ``/autograder/results/results.json``)."""
    write_atomic(Path(path), gradescope_text(result))
