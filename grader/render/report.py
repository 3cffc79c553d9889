"""Feedback pages: one self-contained HTML file per submission, plus a class overview.

The HTML is a pure function of the ``SubmissionResult`` values and the Jinja templates in
``grader/templates`` (autoescape on). Images are PNGs embedded as ``data:`` URIs and the pages
carry a Content-Security-Policy that forbids scripts and every external fetch, so a page can be
mailed, uploaded to an LMS or opened from disk and it never loads anything. The one exception
is the overview's own script (``overview.js``: it sorts and filters the list of students),
which its page's policy allows by the SHA-256 of its text, computed as the page is drawn.

``details`` dicts are read defensively: every key is optional and a value of the wrong shape is
skipped (or shown as text), never trusted and never allowed to crash the page. Extreme numbers
(inf, NaN, ±1.7e308, subnormals) are drawn on a rescaled colour bar. Should a page still fail to
render, ``render_student`` and ``render_index`` return a plain page with the scores and messages
instead of raising: one strange result must never stop a batch.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import reprlib
import struct
import zlib
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined, Template
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from grader.core.results import SubmissionResult, TestResult
from grader.core.results import number as grade_text
from grader.render import figures
from grader.render.export import ended

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

MAX_NOTICES = 30
MAX_NOTICE_CHARS = 2_000
MAX_MESSAGE_CHARS = 1_500
MAX_SOURCE_CHARS = 30_000
MAX_SMALL_ARRAY = 64
MAX_MAP_SIDE = 64
MAX_DIGITS = 24
# Colour bars and tick locators overflow on spans near the float limit (1.7e308 - 0 gives inf):
# error maps whose largest magnitude lies outside this range are drawn divided by it.
COLOUR_RANGE = (1e-100, 1e100)

STATUS_LABELS = {
    "passed": "Passed",
    "failed": "Failed",
    "error": "Crashed",
    "timeout": "Timed out",
    "review": "Needs review",
}

# the overview's status words (grader.course.final.STATUSES) and their colours
STATUS_CHIPS = {"graded": "ok", "late": "timeout", "needs review": "hidden",
                "ungradable": "bad", "missing": "public"}

_CODE_FORMATTER = HtmlFormatter(cssclass="code", wrapcode=True)
_SHORT_REPR = reprlib.Repr()  # a mismatched "got" as text, without repr() of a huge list first
_SHORT_REPR.maxlevel, _SHORT_REPR.maxlist = 6, MAX_SMALL_ARRAY
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = 200


# --------------------------------------------------------------------------- public API


def render_student(result: SubmissionResult, *, generated: str | None = None,
                   final: dict[str, Any] | None = None) -> str:
    """The feedback page for one submission, as a complete HTML document. ``final``: what the
    class's folder adds (``grader.course.classroom``): the final grade (``FinalGrade.view``: late
    penalty, adjustments with comment and author), which then heads the page, ``changed``
    (whether the course file changes the tests' score), and the student's ``name`` and
    roster ``id``. Never raises: a result the detailed page cannot draw gets the plain page,
    which says so."""
    generated = generated or date.today().isoformat()
    try:
        return _student_page(result, generated, final)
    except Exception as error:  # noqa: BLE001 - one page must not stop the batch
        return _plain_student(result, generated, error, final)


def render_index(
    results: list[SubmissionResult],
    *,
    generated: str | None = None,
    links: dict[str, str] | None = None,
    machine: Sequence[str] = (),
    gradebook: dict[str, Any] | None = None,
    class_view: dict[str, Any] | None = None,
) -> str:
    """The class overview: score histogram, pass rates, common diagnoses, one link per student, and
    the grading machine's facts (``machine``: the sandbox and the reference canary, as the batch
    summary says them; missing sandbox layers are the instructor's business, not each student's).
    ``gradebook``: the final grades' counts and rows (``grader.course.classroom``), which then head
    the page; ``class_view`` links the function and similarity pages (``grader.render.classview``).
    Never raises: if the overview cannot be drawn, a plain list of students."""
    generated = generated or date.today().isoformat()
    links = links or {}
    try:
        return _index_page(results, generated, links, list(machine) or _machine(results),
                           gradebook, class_view)
    except Exception as error:  # noqa: BLE001 - the overview must not stop the batch
        return _plain_index(results, generated, links, error)


def _student_page(result: SubmissionResult, generated: str,
                  final: dict[str, Any] | None = None) -> str:
    final = final if isinstance(final, dict) else None
    return _template("student.html.j2").render(
        r=result,
        final=final,
        generated=generated,
        who=_who(result, final),
        score=_score_view(result, final),
        steps=_grade_steps(result, final),
        fix_first=_fix_first(result),
        sections=_sections(result),
        notices=_notices(result.notices),
        sandbox=_sandbox_rows(result.sandbox),
        timings=_timing_rows(result.timings),
        duration=_seconds(result.duration_s),
        code_css=Markup(_CODE_FORMATTER.get_style_defs(".code")),
    )


def _machine(results: list[SubmissionResult]) -> list[str]:
    """The sandbox as the results recorded it, where the batch did not say more."""
    lines = set()
    for result in results:
        box = result.sandbox if isinstance(result.sandbox, dict) else {}
        layers, missing = box.get("layers") or [], box.get("missing") or []
        if layers or missing:
            text = f"sandbox layers: {', '.join(map(str, layers)) or 'none'}"
            lines.add(text + (f"; missing here: {', '.join(map(str, missing))}" if missing
                              else ""))
    return sorted(lines)


def _index_page(results: list[SubmissionResult], generated: str, links: dict[str, str],
                machine: list[str], gradebook: dict[str, Any] | None = None,
                class_view: dict[str, Any] | None = None) -> str:
    graded = [r for r in results if r.error is None]
    # with a gradebook, the scores shown are the final ones (late penalty, adjustments)
    fractions = gradebook["fractions"] if gradebook else [_fraction(r) for r in graded]
    return _template("index.html.j2").render(
        gradebook=gradebook,
        generated=generated,
        machine=machine,
        assignments=sorted({r.assignment for r in results}),
        count=len(results),
        graded_count=len(fractions),
        stats=_score_stats(fractions),
        histogram=_histogram_svg(fractions),
        pass_rates=_pass_rates(graded),
        diagnoses=_top_diagnoses(graded),
        ungradable=[r for r in results if r.error is not None],
        review=_awaiting_review(results, gradebook),
        students=_student_rows(results, links, gradebook),
        status_chips=STATUS_CHIPS,
        names={row["result"]: row["name"] for row in (gradebook or {}).get("rows") or ()
               if row.get("result") and row.get("name")},
        script=_script("overview.js"),
        stages=_stage_means(results),
        total_time=_seconds(sum(_num(r.duration_s) or 0.0 for r in results)),
        class_view=class_view,
    )


# --------------------------------------------------------------------------- plain pages

# The plain pages are the last resort: every value is turned into text by ``_text``, which
# cannot fail, and the templates only print those strings (escaped) in tables.


def _awaiting_review(results: list[SubmissionResult], gradebook: dict[str, Any] | None
                     ) -> list[tuple[SubmissionResult, TestResult]]:
    """Tests held for review that no instructor adjustment has settled yet."""
    settled = {tuple(pair) for pair in (gradebook or {}).get("reviewed", ())}
    return [(r, t) for r in results for t in r.tests
            if t.status == "review" and (r.student, t.name) not in settled]


def _text(value: Any, limit: int = MAX_MESSAGE_CHARS) -> str:
    try:
        return _clip(value, limit)
    except Exception:  # noqa: BLE001 - even str() of a strange value must not fail here
        return "?"


def _total(tests: Any, attribute: str) -> str:
    try:
        return _points(sum(_num(getattr(t, attribute, None)) or 0.0 for t in tests))
    except Exception:  # noqa: BLE001
        return "?"


def _plain_student(result: SubmissionResult, generated: str, error: Exception,
                   final: Any = None) -> str:
    tests = getattr(result, "tests", ())
    final = final if isinstance(final, dict) else {}
    name = final.get("name") if isinstance(final.get("name"), str) else None
    rows = [
        {
            "name": _text(getattr(t, "name", "?"), 300),
            "status": _text(STATUS_LABELS.get(getattr(t, "status", "?"), "?"), 50),
            "score": _total([t], "score"),
            "max": _total([t], "max_score"),
            "message": _text(getattr(t, "message", "")),
            "diagnosis": _text(getattr(t, "diagnosis", None) or ""),
        }
        for t in (tests if isinstance(tests, tuple | list) else ())
    ]
    return _template("plain_student.html.j2").render(
        student=_text(name or getattr(result, "student", "?"), 300),
        grade=_points(final.get("score")) if _num(final.get("score")) is not None else None,
        assignment=_text(getattr(result, "assignment", "?"), 300),
        submission=_text(getattr(result, "submission", "?"), 300),
        error=_text(getattr(result, "error", None) or ""),
        score=_total(rows and tests, "score"),
        max=_total(rows and tests, "max_score"),
        tests=rows,
        reason=type(error).__name__,
        generated=generated,
    )


def _plain_index(
    results: list[SubmissionResult], generated: str, links: dict[str, str], error: Exception
) -> str:
    rows = []
    for r in results:
        student = _text(getattr(r, "student", "?"), 300)
        link = links.get(student, f"{student}.html") if isinstance(links, dict) else ""
        rows.append(
            {
                "student": student,
                "href": _href(_text(link, 1000)),
                "score": _total(getattr(r, "tests", ()), "score"),
                "max": _total(getattr(r, "tests", ()), "max_score"),
                "error": _text(getattr(r, "error", None) or "", 500),
            }
        )
    return _template("plain_index.html.j2").render(
        rows=rows, reason=type(error).__name__, generated=generated
    )


# a student's page, and what it extends, imports and includes (loaded as it renders)
STUDENT_TEMPLATES = ("student.html.j2", "plain_student.html.j2", "base.html.j2",
                     "macros.html.j2", "final.html.j2")


def warm_up() -> None:
    """Compile the student page's templates and the highlighter's rules in this process, and
    load what its error maps need (NumPy's masked arrays, the pictures' cache key).

    A batch calls it before its pool forks: forked workers inherit all of it instead of each
    paying for it again on its first page (about 0.1 s of CPU per worker and per batch, on the
    cores the workers grade on)."""
    for name in (*STUDENT_TEMPLATES, *_kind_templates()):
        _template(name)
    _code("x = 1\n")
    np.ma.masked_invalid(np.zeros(1))
    try:
        figures.warm_up()
    except Exception:  # noqa: BLE001,S110 - a head start only: a page draws without it
        pass


# --------------------------------------------------------------------------- jinja


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("grader", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["points"] = _points
    env.filters["signed_points"] = _signed_points
    env.filters["moment"] = _moment
    env.filters["pct"] = _pct
    env.filters["clip"] = _clip
    env.filters["sentence"] = _sentence
    env.filters["ended"] = _ended
    # what a kind's template draws its pictures with (``templates/kinds/``)
    env.globals["mnist_view"] = _mnist
    env.globals["diagnostic_view"] = _diagnostic
    return env


def _template(name: str) -> Template:
    return _environment().get_template(name)


@lru_cache(maxsize=4)
def _script(name: str) -> dict[str, str]:
    """A script of the templates' folder and the Content-Security-Policy source that allows
    it and nothing else: its SHA-256, computed from the very text the page embeds. The pages
    keep forbidding every other script, inline handlers and any fetch."""
    env = _environment()
    assert env.loader is not None  # (``_environment``'s PackageLoader)
    text = env.loader.get_source(env, name)[0]
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    # (Markup: the file is ours, and the source is quotes around base64 only)
    return {"text": Markup(text), "source": Markup(f"'sha256-{digest}'")}  # noqa: S704


# --------------------------------------------------------------------------- formatting


def _num(value: Any) -> float | None:
    """A real number, or None for anything else (strings, bools, lists, None)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    """A finite number as an int (indices, shapes, labels), or None (NaN, inf, text...)."""
    number = _num(value)
    return int(number) if number is not None and math.isfinite(number) else None


def _points(value: Any) -> str:
    """Points rounded as the gradebooks round them (``results.number``: one rule for every
    place a grade is shown); '?' for what is no number."""
    number = _num(value)
    return (grade_text(number) or "?") if number is not None else "?"


def _signed_points(value: Any) -> str:
    """An adjustment: '+0.5', '−1.25' (with a minus sign, as the late penalty is written)."""
    text = _points(value)
    return text if text == "?" else ("−" + text[1:] if text.startswith("-") else "+" + text)


def _moment(value: Any) -> str:
    """'2026-11-21T08:00:00+00:00' -> '2026-11-21 08:00 (UTC+00:00)': a time a student reads,
    with the zone it is in; anything else as it is."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    offset = moment.utcoffset()
    if offset is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    minutes = int(offset.total_seconds() // 60)
    sign, minutes = ("+" if minutes >= 0 else "−"), abs(minutes)
    return f"{moment:%Y-%m-%d %H:%M} (UTC{sign}{minutes // 60:02d}:{minutes % 60:02d})"


def _pct(value: Any) -> str:
    number = _num(value)
    return "?" if number is None or not math.isfinite(number) else f"{number:.1%}"


def _sci(value: Any) -> str:
    """Relative errors and tolerances: 0.67, 2.4e-10, NaN, or an em dash when absent."""
    number = _num(value)
    if number is None:
        return "—"
    if not math.isfinite(number):
        return "NaN" if math.isnan(number) else "infinite"
    if number == 0 or 1e-3 <= abs(number) < 1e4:
        return f"{number:.3g}"
    mantissa, exponent = f"{number:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def _seconds(value: Any) -> str:
    number = _num(value)
    if number is None:
        return "—"
    return f"{number:.2f} s" if number < 10 else f"{number:.0f} s"


def _clip(text: Any, limit: int = MAX_MESSAGE_CHARS) -> str:
    shown = "" if text is None else str(text)
    if len(shown) <= limit:
        return shown
    return f"{shown[:limit]}\n… ({len(shown) - limit} more characters not shown)"


def _sentence(text: Any) -> str:
    """'checks x' -> 'Checks x.' (descriptions are written as lower-case phrases)."""
    shown = _ended(text)
    return shown[:1].upper() + shown[1:]


def _ended(text: Any) -> str:
    return ended(str(text))


def _ints(value: Any) -> list[int] | None:
    if not isinstance(value, list) or len(value) > 32:
        return None
    numbers = [n for n in map(_int, value) if n is not None]
    return numbers if len(numbers) == len(value) else None


def _shape(value: Any) -> str | None:
    numbers = _ints(value)
    if numbers is None:
        return None
    return "(" + ", ".join(map(str, numbers)) + ("," if len(numbers) == 1 else "") + ")"


def _index(value: Any) -> str | None:
    numbers = _ints(value)
    return None if numbers is None else "[" + ", ".join(map(str, numbers)) + "]"


def _declared_size(value: Any) -> int:
    """The size a nested list has if it is regular, read along its first entries only: cheap,
    so a huge list is turned down before numpy copies it."""
    size = 1
    while isinstance(value, list | tuple):
        size *= len(value)
        if not value:
            break
        value = value[0]
    return size


def _float_array(value: Any, limit: int | None = None) -> np.ndarray | None:
    """A nested list of numbers as a float array, or None if it is ragged, not numeric, or
    (given ``limit``) has more entries than that."""
    if isinstance(value, str | bytes | dict) or value is None:
        return None
    if limit is not None and _declared_size(value) > limit:
        return None
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float range
        return None
    return array if limit is None or array.size <= limit else None


# --------------------------------------------------------------------------- student page


def _who(result: SubmissionResult, final: dict[str, Any] | None) -> dict[str, str | None]:
    """The student as the roster (or the LMS) names them, with their id beside; without a
    name, the result's name (from the id or the file)."""
    name = (final or {}).get("name")
    ident = (final or {}).get("id")
    if not isinstance(name, str) or not name.strip():
        return {"name": result.student, "id": None}
    return {"name": name, "id": ident if isinstance(ident, str) and ident != name else None}


def _score_view(result: SubmissionResult, final: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """The grade that counts, for the page's header: the final one where the course file
    changes the tests' score (late penalty, adjustments), else the tests' score, which then
    is the grade. None where there is none (an ungradable submission nobody adjusted)."""
    if final is not None and "score" in final:
        score, total = _num(final.get("score")), _num(final.get("max"))
    else:
        score, total = (None if result.error else result.score), result.max_score
    if score is None:
        return {"graded": False}
    total = total if total is not None else result.max_score
    fraction = score / total if total else 0.0
    return {
        "graded": True,
        "score": _points(score),
        "max": _points(total),
        "percent": _pct(fraction) if total else "",
        "width": f"{max(0.0, min(fraction, 1.0)) * 100:.1f}",
        "full": bool(total) and score >= total,
    }


def _grade_steps(result: SubmissionResult, final: dict[str, Any] | None
                 ) -> list[dict[str, str]]:
    """What made the final grade, shown beside it: the tests' score, the instructor's
    adjustments, the late penalty, tests still waiting for review. Empty where the tests'
    score is the grade."""
    if final is None or _num(final.get("score")) is None:
        return []
    steps = [{"label": "tests", "text": f"{_points(result.score)} / {_points(result.max_score)}"}]
    adjustments = [a for a in final.get("adjustments") or () if isinstance(a, dict)]
    if adjustments:
        total = sum(_num(a.get("points")) or 0.0 for a in adjustments)
        steps.append({"label": "adjusted", "text": _signed_points(total)})
    days = _int(final.get("late_days")) or 0
    if days:
        percent = _num(final.get("penalty_percent"))
        taken = f"−{grade_text(percent)}%" if percent is not None else ""
        steps.append({"label": f"{days} day{'s' * (days != 1)} late", "text": taken})
    waiting = sum(1 for t in result.tests if t.status == "review")
    if final.get("status") == "needs review" and waiting:
        steps.append({"label": "waiting for review",
                      "text": f"{waiting} test{'s' * (waiting != 1)}, 0 until looked at"})
    return steps if len(steps) > 1 else []


def _fix_first(result: SubmissionResult) -> dict[str, Any]:
    if result.error is not None:
        return {"kind": "error", "text": "none of your code ran, so no test could give "
                                         "points. Below: what happened and what to do."}
    sections = _section_order(result.tests)
    for test in result.tests:
        if test.status != "passed":
            anchor = f"fn-{sections.index(test.function) + 1}"
            text = test.diagnosis or test.message
            return {
                "kind": "fix",
                "function": test.function,
                "text": _clip(text, 300),
                "anchor": anchor,
            }
    if not result.tests:
        return {"kind": "empty", "text": "No tests were run."}
    return {"kind": "done", "text": "Every test passes. Well done!"}


def _section_order(tests: tuple[TestResult, ...]) -> list[str]:
    return list(dict.fromkeys(t.function for t in tests))


def _sections(result: SubmissionResult) -> list[dict[str, Any]]:
    """One section per function, in the rubric's order. None for a submission that could not
    be graded: its tests never ran, and a row of failures would say otherwise."""
    if result.error is not None:
        return []
    sections = []
    for number, function in enumerate(_section_order(result.tests), start=1):
        tests = [t for t in result.tests if t.function == function]
        score = sum(_num(t.score) or 0.0 for t in tests)
        total = sum(_num(t.max_score) or 0.0 for t in tests)
        sections.append(
            {
                "anchor": f"fn-{number}",
                "function": function,
                "score": _points(score),
                "max": _points(total),
                "passed": all(t.status == "passed" for t in tests),
                # a check worth nothing itself (the rules: a function that breaks them scores
                # 0 on its own tests): "no points of its own", not a puzzling "0 / 0"
                "no_points": total == 0 and all(_num(t.max_score) == 0 for t in tests),
                "tests": [_test_view(t) for t in tests],
                "code": _code(result.sources.get(function)),
            }
        )
    return sections


def _test_view(test: TestResult) -> dict[str, Any]:
    hidden = test.visibility == "hidden"
    details = test.details if isinstance(test.details, dict) else {}
    view = {
        "name": test.name,
        "function": test.function,
        "status": test.status,
        "status_label": STATUS_LABELS.get(test.status, str(test.status)),
        "status_class": test.status if test.status in STATUS_LABELS else "error",
        "score": _points(test.score),
        "max": _points(test.max_score),
        "hidden": hidden,
        "description": test.description,
        # what the handed-out notebook asked, quoted where points were lost (rubric.requirement)
        "requirement": (_clip(test.requirement, 500)
                        if getattr(test, "requirement", "") and test.score < test.max_score
                        else None),
        "message": _clip(test.message),
        "diagnosis": _clip(test.diagnosis) if test.diagnosis else None,
        "outputs": _outputs(details.get("outputs"), hidden),
        "inputs": None,
        # the test's kind shows the rest (``templates/kinds/<kind>.html.j2``), from ``details``:
        # of a hidden test, whose checks stay secret, only the outputs' verdicts above
        "template": _kind_template(test, details),
        "details": {} if hidden else details,
    }
    if hidden:  # what a hidden test checks stays secret: no inputs, values or pictures
        return view
    if isinstance(details.get("inputs"), str):
        view["inputs"] = _clip(details["inputs"], 500)
    return view


def _kind_template(test: TestResult, details: dict[str, Any]) -> str:
    """The template of the test's part of the page, chosen by its kind."""
    kind = getattr(test, "kind", "") or _kind_before_results_named_it(test, details)
    name = f"kinds/{kind}.html.j2"
    return name if name in _kind_templates() else "kinds/output.html.j2"


def _kind_before_results_named_it(test: TestResult, details: dict[str, Any]) -> str:
    """The kind of a test in a result stored before ``TestResult.kind`` existed (a course
    server's history, an old feedback folder), as the pages used to tell it."""
    if "swaps" in details or "culprit" in details or "diagnostic" in test.name.lower():
        return "mnist_diagnostic"
    if "accuracy" in details or "confusion" in details:
        return "mnist"
    return "output"


@lru_cache(maxsize=1)
def _kind_templates() -> frozenset[str]:
    return frozenset(_environment().list_templates(filter_func=_is_kind_template))


def _is_kind_template(name: str) -> bool:
    return name.startswith("kinds/") and name.endswith(".html.j2")


def _code(source: Any) -> Markup | None:
    if not isinstance(source, str) or not source.strip():
        return None
    # Pygments escapes every character of the source; its markup is safe to embed as is.
    return Markup(_highlighted(source))  # noqa: S704


@lru_cache(maxsize=4096)
def _highlighted(source: str) -> str:
    """Remembered per source: a page drawn again (to name the student, after a change of the
    course file) reuses it; highlighting is nine tenths of what a page costs."""
    return highlight(_clip(source, MAX_SOURCE_CHARS), PythonLexer(), _CODE_FORMATTER)


def prepare(result: SubmissionResult) -> None:
    """Highlight the result's code now, for a page drawn later in this process. Never raises:
    the page itself says what fails."""
    try:
        for source in result.sources.values():
            _code(source)
    except Exception:  # noqa: BLE001,S110 - only a head start
        pass


# --------------------------------------------------------------------------- outputs


def _outputs(outputs: Any, hidden: bool) -> list[dict[str, Any]]:
    if not isinstance(outputs, list):
        return []
    return [_output_view(o, hidden) for o in outputs if isinstance(o, dict)]


def _output_view(out: dict[str, Any], hidden: bool) -> dict[str, Any]:
    passed = out.get("passed") is True
    expected_shape, got_shape = _shape(out.get("expected_shape")), _shape(out.get("got_shape"))
    view = {
        "name": str(out.get("name", "?")),
        "passed": passed,
        "relative_error": _sci(out.get("relative_error")),
        "tolerance": _sci(out.get("tolerance")),
        "expected_shape": expected_shape,
        "got_shape": got_shape,
        "shape_mismatch": bool(expected_shape and got_shape and expected_shape != got_shape),
        "missing": "got_shape" in out and out.get("got_shape") is None,
        "dtype": str(out["dtype"]) if isinstance(out.get("dtype"), str) else None,
        "worst_index": None,
        "arrays": None,
        "heatmap": None,
    }
    if hidden or passed:
        return view
    view["worst_index"] = _index(out.get("worst_index"))
    view["arrays"] = _compare(out.get("expected"), out.get("got"), _num(out.get("tolerance")))
    error_map = _float_array(out.get("error_map"), MAX_MAP_SIDE * MAX_MAP_SIDE)
    # a heatmap helps where arrays are too big to read; a single row is clearer as the table
    if error_map is not None and error_map.ndim == 2 and error_map.shape[0] > 1:
        view["heatmap"] = _heatmap_uri(out.get("error_map"))
    return view


def _compare(expected: Any, got: Any, tolerance: float | None) -> dict[str, Any] | None:
    """Small expected/got arrays as tables, with the entries that differ marked."""
    if expected is None and got is None:
        return None
    exp = _float_array(expected, MAX_SMALL_ARRAY)
    act = _float_array(got, MAX_SMALL_ARRAY)
    if exp is None:
        return None
    if act is None or act.shape != exp.shape:
        return {
            "expected": _slices(exp, None),
            "got": _slices(act, None) if act is not None else None,
            "got_text": _clip(_SHORT_REPR.repr(got), 500),
        }
    tol = tolerance if tolerance and math.isfinite(tolerance) else 1e-7
    differs = ~np.isclose(act, exp, rtol=tol, atol=tol, equal_nan=False)
    return {
        "expected": _slices(exp, None),
        "got": _slices(act, differs),
        "got_text": None,
        "count": int(differs.sum()),
        "size": int(exp.size),
    }


def _slices(array: np.ndarray, marks: np.ndarray | None) -> list[dict[str, Any]]:
    """Up to 2-D tables: (rows of cells) per leading index, labelled like ``[0, 1, :, :]``."""
    if array.ndim <= 2:
        return [{"label": None, "rows": _rows(array, marks)}]
    tables = []
    for lead in np.ndindex(*array.shape[:-2]):
        label = "[" + ", ".join(str(i) for i in lead) + ", :, :]"
        part = marks[lead] if marks is not None else None
        tables.append({"label": label, "rows": _rows(array[lead], part)})
    return tables


def _rows(array: np.ndarray, marks: np.ndarray | None) -> list[list[dict[str, Any]]]:
    table = np.atleast_2d(array)
    flags = np.atleast_2d(marks) if marks is not None else np.zeros(table.shape, bool)
    return [
        [{"text": f"{v:.6g}", "diff": bool(m)} for v, m in zip(row, mrow, strict=True)]
        for row, mrow in zip(table, flags, strict=True)
    ]


# --------------------------------------------------------------------------- images


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _new_figure(**options: Any) -> Figure:
    """Matplotlib is imported on the first plot only: most pages need none, and importing it
    costs every worker and every command-line start almost half a second."""
    from matplotlib.figure import Figure

    return Figure(**options)


def _integer_ticks(**options: Any) -> MaxNLocator:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True, **options)


def _figure_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return _png_uri(buffer.getvalue())


def _heatmap_uri(error_map: Any) -> dict[str, Any] | None:
    data = _float_array(error_map, MAX_MAP_SIDE * MAX_MAP_SIDE)
    if data is not None and data.ndim == 1:  # a bias gradient: draw it as one row
        data = data.reshape(1, -1)
    if data is None or data.ndim != 2 or data.size == 0 or max(data.shape) > MAX_MAP_SIDE:
        return None
    masked = np.ma.masked_invalid(data)
    if masked.count() == 0:
        return {"uri": None, "note": "Every entry is NaN or infinite.", "shape": None}
    scale = _colour_scale(masked)
    label = "absolute error" if scale == 1.0 else f"absolute error (× {_sci(scale)})"
    notes = ["Light blue cells are NaN or infinite."] if masked.count() < data.size else []
    try:
        uri = figures.remembered((masked / scale, label),
                                 lambda: _draw_heatmap(masked / scale, label))
    except Exception as error:  # noqa: BLE001 - a picture must never cost the page
        uri = None
        notes.append(f"The picture could not be drawn ({type(error).__name__}).")
    return {"uri": uri, "note": " ".join(notes) or None, "shape": _shape(list(data.shape))}


def _colour_scale(masked: np.ma.MaskedArray) -> float:
    """What to divide an error map by so that its colour bar's ticks stay finite: 1 for
    ordinary magnitudes, else the largest magnitude (1.7e308, 5e-324...)."""
    peak = float(np.abs(masked).max())
    low, high = COLOUR_RANGE
    return 1.0 if peak == 0 or low <= peak <= high else peak


def _draw_heatmap(masked: np.ma.MaskedArray, label: str) -> str:
    from matplotlib import colormaps

    fig = _new_figure(figsize=(4.2, 3.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    cmap = colormaps["magma"].with_extremes(bad="#7fd3ff")
    square = max(masked.shape) <= 4 * min(masked.shape)
    image = ax.imshow(
        masked, cmap=cmap, interpolation="nearest", aspect="equal" if square else "auto"
    )
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(_integer_ticks(nbins=8))
    fig.colorbar(image, ax=ax, label=label)
    return _figure_uri(fig)


def _digit_uri(pixels: Any) -> str | None:
    """A grayscale PNG, dark ink on white, written by hand: small and byte-for-byte stable."""
    array = _float_array(pixels, MAX_MAP_SIDE * MAX_MAP_SIDE)
    if array is None or array.ndim != 2 or array.size == 0 or max(array.shape) > MAX_MAP_SIDE:
        return None
    ink = 255 - np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    height, width = ink.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in ink)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9))
    return _png_uri(png + _chunk(b"IEND", b""))


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


# --------------------------------------------------------------------------- MNIST


def _mnist(details: dict[str, Any]) -> dict[str, Any]:
    return {
        "accuracy": _accuracy(details),
        "confusion": _confusion(details.get("confusion")),
        "misclassified": _misclassified(details.get("misclassified")),
        "timing": _mnist_timing(details),
    }


def _accuracy(details: dict[str, Any]) -> dict[str, Any] | None:
    accuracy, threshold = _num(details.get("accuracy")), _num(details.get("threshold"))
    if accuracy is None:
        return None
    return {
        "value": _pct(accuracy),
        "threshold": _pct(threshold) if threshold is not None else None,
        "reached": threshold is None or accuracy >= threshold,
        "width": f"{max(0.0, min(accuracy, 1.0)) * 100:.1f}",
        "mark": f"{max(0.0, min(threshold, 1.0)) * 100:.1f}" if threshold is not None else None,
    }


def _confusion(matrix: Any) -> dict[str, Any] | None:
    data = _float_array(matrix, MAX_MAP_SIDE * MAX_MAP_SIDE)
    if data is None or data.ndim != 2 or data.shape[0] != data.shape[1] or data.size == 0:
        return None
    # counts: NaN, inf and negatives are nonsense, and a bounded range keeps sums in int64
    counts = np.clip(np.nan_to_num(data, nan=0, posinf=0, neginf=0), 0, 1e12).astype(np.int64)
    off = counts * (1 - np.eye(len(counts), dtype=int))
    peak_diag, peak_off = max(int(counts.diagonal().max()), 1), max(int(off.max()), 1)
    rows = []
    for t, row in enumerate(counts):
        total = int(row.sum())
        cells = [
            _confusion_cell(int(v), t == p, peak_diag if t == p else peak_off)
            for p, v in enumerate(row)
        ]
        rows.append({"label": t, "cells": cells, "recall": _pct(row[t] / total) if total else "—"})
    worst = np.unravel_index(int(off.argmax()), off.shape)
    top = {"true": int(worst[0]), "predicted": int(worst[1]), "count": int(off.max())}
    return {
        "rows": rows,
        "labels": list(range(len(counts))),
        "top": top if top["count"] > 0 else None,
    }


def _confusion_cell(value: int, diagonal: bool, peak: int) -> dict[str, Any]:
    strength = min(value / peak, 1.0) if value > 0 else 0.0
    colour = "26, 127, 55" if diagonal else "207, 34, 46"
    alpha = 0.12 + 0.6 * strength if value else 0.0
    return {
        "value": value,
        "diagonal": diagonal,
        "style": f"background-color: rgba({colour}, {alpha:.2f})",
        "strong": (not diagonal) and strength >= 0.5,
    }


def _misclassified(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        return []
    digits = []
    for item in items[:MAX_DIGITS]:
        if not isinstance(item, dict):
            continue
        uri = _digit_uri(item.get("pixels"))
        true, predicted = _int(item.get("true")), _int(item.get("predicted"))
        if uri is None or true is None or predicted is None:
            continue
        digits.append(
            {"uri": uri, "true": true, "predicted": predicted, "index": _int(item.get("index"))}
        )
    return digits


def _mnist_timing(details: dict[str, Any]) -> dict[str, Any] | None:
    train, predict = _num(details.get("train_seconds")), _num(details.get("predict_seconds"))
    budget = _num(details.get("budget_seconds"))
    if train is None and predict is None:
        return None
    used = (train or 0.0) + (predict or 0.0)
    return {
        "train": _seconds(train),
        "predict": _seconds(predict),
        "budget": _seconds(budget) if budget is not None else None,
        "over": budget is not None and used > budget,
    }


def _diagnostic(details: dict[str, Any]) -> dict[str, Any]:
    swaps = []
    for swap in details.get("swaps") or []:
        if not isinstance(swap, dict) or not isinstance(swap.get("replaced"), str):
            continue
        difference = _num(swap.get("difference"))
        shown = "failed" if difference is None else f"{difference:.1e}"
        swaps.append({"replaced": swap["replaced"], "difference": shown,
                      "fixes": swap.get("fixes") is True})
    culprit = details.get("culprit")
    return {
        "accuracy": _accuracy(details),
        "swaps": swaps,
        "culprit": culprit if isinstance(culprit, str) and culprit else None,
    }


# --------------------------------------------------------------------------- run info


def _notices(notices: tuple[str, ...]) -> dict[str, Any]:
    shown = [_clip(n, MAX_NOTICE_CHARS) for n in notices[:MAX_NOTICES]]
    return {"shown": shown, "hidden": max(len(notices) - MAX_NOTICES, 0)}


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items()) or "none"
    return str(value)


def _sandbox_rows(sandbox: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(k), _clip(_plain(v), 300)) for k, v in sandbox.items()]


def _timing_rows(timings: dict[str, float]) -> list[tuple[str, str]]:
    return [(str(k), _seconds(v)) for k, v in timings.items()]


# --------------------------------------------------------------------------- class overview


def _fraction(result: SubmissionResult) -> float:
    return result.score / result.max_score if result.max_score else 0.0


def _score_stats(scores: list[float]) -> dict[str, str] | None:
    """Mean, median and full marks of the scores (fractions of the maximum)."""
    if not scores:
        return None
    fractions = np.array(scores, dtype=float)
    return {
        "mean": _pct(float(fractions.mean())),
        "median": _pct(float(np.median(fractions))),
        "full": str(int((fractions >= 1.0 - 1e-9).sum())),
    }


def _histogram_svg(scores: list[float]) -> Markup | None:
    """The class's scores in ten bins of 10 %, as an inline SVG drawn here: a few rectangles
    need no plotting library, so the overview (rebuilt after every run, and by ``gradebook``)
    costs neither Matplotlib's import nor its rendering, and stays sharp at any zoom. Every
    value written into it is a number this function made."""
    if not scores:
        return None
    percents = np.clip(np.nan_to_num(np.array(scores, dtype=float) * 100), 0, 100)
    counts, _ = np.histogram(percents, bins=np.linspace(0, 100, 11))  # the last bin holds 100
    width, height, left, right, top, bottom = 560, 260, 48, 12, 12, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    step = _tick_step(int(counts.max()))
    y_max = max(step * math.ceil(int(counts.max()) / step), 1)

    def x(percent: float) -> float:
        return left + plot_w * percent / 100

    def y(count: float) -> float:
        return top + plot_h * (1 - count / y_max)

    parts = [f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="Histogram of scores as a percentage '
             f'of the maximum">']
    for tick in range(0, y_max + 1, step):
        parts.append(f'<line class="h-grid" x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}"/><text class="h-tick" x="{left - 6}" '
                     f'y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>')
    for number, count in enumerate(counts.tolist()):
        low, high = 10 * number, 10 * number + 10
        label = (f"{count} submission{'s' * (count != 1)} scored {low}–{high} %"
                 f"{' (100 included)' if high == 100 else ''}")
        parts.append(f'<rect class="h-bar" x="{x(low) + 1:.1f}" y="{y(count):.1f}" '
                     f'width="{x(high) - x(low) - 2:.1f}" height="{y(0) - y(count):.1f}">'
                     f'<title>{label}</title></rect>')
    for tick in range(0, 101, 20):
        parts.append(f'<text class="h-tick" x="{x(tick):.1f}" y="{y(0) + 16:.1f}" '
                     f'text-anchor="middle">{tick}</text>')
    parts.append(f'<line class="h-axis" x1="{left}" x2="{width - right}" y1="{y(0):.1f}" '
                 f'y2="{y(0):.1f}"/>')
    parts.append(f'<text class="h-label" x="{left + plot_w / 2:.1f}" y="{height - 6}" '
                 f'text-anchor="middle">score (% of maximum)</text>')
    parts.append(f'<text class="h-label" transform="translate(14 {top + plot_h / 2:.1f}) '
                 f'rotate(-90)" text-anchor="middle">submissions</text></svg>')
    return Markup("".join(parts))  # noqa: S704 - numbers and fixed words only


def _tick_step(peak: int) -> int:
    """An integer step that gives the count axis at most six ticks (1, 2, 5, 10, 20...)."""
    step = 1
    while math.ceil(peak / step) > 5:
        step = step * 5 // 2 if str(step).startswith("2") else step * 2
    return step


def _pass_rates(graded: list[SubmissionResult]) -> list[dict[str, Any]]:
    order: dict[str, TestResult] = {}
    for result in graded:
        for test in result.tests:
            order.setdefault(test.name, test)
    rows = []
    for name, first in order.items():
        runs = [t for r in graded for t in r.tests if t.name == name]
        passed = sum(1 for t in runs if t.status == "passed")
        rate = passed / len(runs) if runs else 0.0
        rows.append(
            {
                "name": name,
                "function": first.function,
                "hidden": first.visibility == "hidden",
                "passed": passed,
                "runs": len(runs),
                "rate": _pct(rate),
                "width": f"{rate * 100:.1f}",
            }
        )
    return rows


def _top_diagnoses(graded: list[SubmissionResult], limit: int = 10) -> list[dict[str, Any]]:
    counts: Counter[str] = Counter()
    tests: dict[str, list[str]] = {}
    for result in graded:
        for test in result.tests:
            if test.status != "passed" and test.diagnosis:
                counts[test.diagnosis] += 1
                names = tests.setdefault(test.diagnosis, [])
                if test.name not in names:
                    names.append(test.name)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [{"text": _clip(text, 500), "count": n, "tests": tests[text]} for text, n in ranked]


def _href(link: str) -> str:
    """A relative link that cannot become a ``javascript:`` or protocol-relative URL."""
    return "./" + quote(link, safe="/").lstrip("/")


def _student_rows(results: list[SubmissionResult], links: dict[str, str],
                  gradebook: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every student once, for the overview's list: the gradebook's rows (the roster's order,
    final grades) with what their results add (a link, the notices), or, without a gradebook,
    one row per result."""
    by_name = {r.student: r for r in results}
    rows = (gradebook or {}).get("rows")
    if rows is None:
        rows = [_result_row(r) for r in
                sorted(results, key=lambda r: (r.student.casefold(), r.student, r.submission))]
    return [_student_row(row, by_name.get(row["result"]) if row["result"] else None, links)
            for row in rows]


def _result_row(result: SubmissionResult) -> dict[str, Any]:
    """A result as a gradebook row, where there is no gradebook (no course folder)."""
    waiting = any(t.status == "review" for t in result.tests)
    status = "ungradable" if result.error else "needs review" if waiting else "graded"
    graded = result.error is None
    return {"id": result.student, "name": "", "show_id": False, "section": "", "status": status,
            "result": result.student, "score": _points(result.score) if graded else "",
            "max": _points(result.max_score),
            "fraction": _fraction(result) if graded and result.max_score else None,
            "tests": _points(result.score) if graded else "", "late": False, "late_days": 0,
            "penalty": "", "adjustments": [], "notes": []}


def _student_row(row: dict[str, Any], result: SubmissionResult | None,
                 links: dict[str, str]) -> dict[str, Any]:
    fraction = _num(row.get("fraction"))
    percent = fraction * 100 if fraction is not None and math.isfinite(fraction) else None
    return {
        **row,
        "href": (_href(links.get(result.student, f"{result.student}.html"))
                 if result is not None else None),
        "percent": _pct(fraction) if percent is not None else "",
        # what the list's script sorts and filters by: plain numbers and fixed words
        "sort_final": f"{percent:.4f}" if percent is not None else "",
        "review": row.get("status") == "needs review",
        "notices": len(result.notices) if result is not None else None,
        "sort_name": f"{row.get('name') or ''} {row.get('id')}".casefold(),
    }


def _stage_means(results: list[SubmissionResult]) -> list[tuple[str, str, str]]:
    stages: dict[str, list[float]] = {}
    for result in results:
        for stage, seconds in result.timings.items():
            if _num(seconds) is not None:
                stages.setdefault(str(stage), []).append(float(seconds))
    return [(stage, _seconds(sum(v) / len(v)), _seconds(max(v))) for stage, v in stages.items()]
