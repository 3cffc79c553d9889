"""Grades for other systems: a gradebook CSV for LMS import and Gradescope's ``results.json``."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grader.results import SubmissionResult, TestResult, write_atomic

# Spreadsheets run cells that start with these as formulas ("CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _finite(value: float) -> float | None:
    """The value if it is a finite number; NaN, inf and non-numbers are None (no grade)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _number(value: float) -> str:
    """1.0 -> '1', 0.5 -> '0.5', 2/3 -> '0.6667': what gradebooks import without surprises.
    A NaN or infinite score (never expected) is an empty cell, not 'nan' in a gradebook."""
    number = _finite(value)
    return "" if number is None else f"{number:.4f}".rstrip("0").rstrip(".")


def _points(value: float) -> float:
    """Scores for Gradescope, which needs a finite number: a NaN or infinite one counts 0."""
    number = _finite(value)
    return 0.0 if number is None else number


def _text_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def rubric_order(results: Iterable[SubmissionResult]) -> list[str]:
    """Test names in the order the rubric runs them (first appearance across the results)."""
    return list(dict.fromkeys(t.name for r in results for t in r.tests))


def grades_csv(results: list[SubmissionResult]) -> str:
    """The gradebook as CSV text: student, submission, score, max_score, status, then one
    column per test.

    One row per submission, in the order given. ``status`` is ``graded``, ``ungradable`` or
    ``needs review`` (a test waits for the instructor, and scores 0 until then). An ungradable
    submission has no score (an empty cell, never a 0 that reads like a real one) out of the
    rubric's maximum, and empty test cells. Student and file names that a spreadsheet would run
    as a formula get a leading apostrophe.
    """
    names = rubric_order(results)
    maxima = {t.name: t.max_score for r in results for t in r.tests}
    rubric_max = sum(maxima.values())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "submission", "score", "max_score", "status", *names])
    for result in results:
        scores = {t.name: t.score for t in result.tests}
        cells = [_number(scores[n]) if n in scores else "" for n in names]
        total = result.max_score if result.tests else rubric_max
        writer.writerow(
            [
                _text_cell(result.student),
                _text_cell(result.submission),
                "" if result.error else _number(result.score),
                _number(total),
                status(result),
                *cells,
            ]
        )
    return buffer.getvalue()


def status(result: SubmissionResult) -> str:
    """What a gradebook row means: graded, ungradable, or needs review."""
    if result.error:
        return "ungradable"
    if any(t.status == "review" for t in result.tests):
        return "needs review"
    return "graded"


def write_grades_csv(results: list[SubmissionResult], path: Path) -> None:
    """Write :func:`grades_csv` to ``path`` atomically (UTF-8, comma separated, LF line ends)."""
    write_atomic(Path(path), grades_csv(results))


# --------------------------------------------------------------------------- Gradescope


def _test_output(test: TestResult) -> str:
    parts = [test.message]
    if test.diagnosis:
        parts.append(f"Diagnosis: {test.diagnosis}")
    if test.visibility == "hidden" and test.description:
        parts.insert(0, f"Hidden test: {test.description}.")
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
    output = [f"Score {_number(result.score)} / {_number(result.max_score)}."]
    if result.error is not None:
        output = [f"Your submission could not be graded: {result.error}"]
    output += [f"Notice: {n}" for n in result.notices[:10]]
    return {
        "score": _points(result.score),
        "execution_time": max(0, round(_points(result.duration_s))),
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
