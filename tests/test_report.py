"""Feedback pages and grade exports, checked on hand-written result documents.

Golden file: ``UPDATE_GOLDEN=1 pytest tests/test_report.py`` rewrites it after an intended change.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import html as html_text
import io
import json
import os
import re
from collections.abc import Callable
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from grader.core.results import SubmissionResult, TestResult, load
from grader.course import coursefile as course
from grader.course import final, gradebook
from grader.course.roster import Student
from grader.render.export import gradescope_json, rubric_order, write_gradescope
from grader.render.report import render_index, render_student

FIXTURES = Path(__file__).parent / "fixtures" / "results"
GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "student_full_marks.html"
GENERATED = "2025-06-01"
PAYLOAD = "<script>alert(1)</script>"
PAYLOADS = [PAYLOAD, "<img src=x onerror=alert(1)>", '"><svg onload=alert(1)>']
ALLOWED_TAGS = {
    "svg",  # the overview's histogram: shapes and text, no script, no link
    "rect",
    "line",
    "text",
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "header",
    "main",
    "footer",
    "section",
    "div",
    "span",
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "strong",
    "small",
    "code",
    "pre",
    "a",
    "br",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "figure",
    "figcaption",
    "img",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
}


def fixture(name: str) -> SubmissionResult:
    return load(FIXTURES / f"{name}.json")


@pytest.fixture(scope="module")
def results() -> dict[str, SubmissionResult]:
    return {p.stem: load(p) for p in sorted(FIXTURES.glob("*.json"))}


def student(name: str) -> str:
    return render_student(fixture(name), generated=GENERATED)


class Page(HTMLParser):
    """Every tag with its attributes, and the text a reader would see."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.chunks: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.chunks.append(data)

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def attr(self, name: str) -> list[str]:
        return [a[name] or "" for _, a in self.tags if name in a]


# the overview's filters: controls without a form, so nothing is ever sent anywhere
FILTER_TAGS = {"label", "select", "option", "input"}
OVERVIEW_JS = (Path(__file__).parent.parent / "grader" / "templates" / "overview.js").read_text(
    encoding="utf-8")


def assert_inert(html: str) -> None:
    """Only our own markup: no handlers, no external or javascript: URLs, and no script but
    the overview's own, allowed by the page's Content-Security-Policy through its hash."""
    page = Page(html)
    assert {tag for tag, _ in page.tags} <= ALLOWED_TAGS | FILTER_TAGS | {"script"}
    assert_only_our_script(html)
    for _, attrs in page.tags:
        assert not [a for a in attrs if a.startswith("on")], attrs
    assert all(src.startswith("data:image/png;base64,") for src in page.attr("src"))
    assert all(h.startswith(("#", "./")) for h in page.attr("href")), page.attr("href")


def assert_only_our_script(html: str) -> None:
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert html.lower().count("<script") == len(scripts) <= 1
    [policy] = re.findall(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    allowed = re.findall(r"script-src ([^;]*)", policy)
    if not scripts:
        assert allowed == []  # default-src 'none': no script at all
        return
    [script] = scripts
    assert script == OVERVIEW_JS
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert allowed == [f"'sha256-{digest}'"]  # that script alone: no 'unsafe-inline'
    assert "default-src 'none'" in policy


def assert_no_urls(html: str) -> None:
    for needle in ("http://", "https://", 'src="//', "src='//", 'href="//', "url("):
        assert needle not in html


# --------------------------------------------------------------------------- student page


@pytest.mark.parametrize("name", ["failures", "full_marks", "ungradable", "hostile"])
def test_every_fixture_renders_a_self_contained_page(name):
    html = student(name)
    assert html.startswith("<!DOCTYPE html>")
    assert 'name="viewport"' in html and "@media print" in html
    assert "Content-Security-Policy" in html
    assert_inert(html)
    if name != "hostile":  # the hostile one quotes URLs as text; assert_inert covers it
        assert_no_urls(html)


def test_rendering_is_deterministic(results):
    for result in results.values():
        first = render_student(result, generated=GENERATED)
        again = render_student(SubmissionResult.from_json(result.to_json()), generated=GENERATED)
        assert first == again
    everyone = list(results.values())
    index = render_index(everyone, generated=GENERATED)
    assert index == render_index(everyone, generated=GENERATED)


def test_date_defaults_to_today():
    assert f"Generated {date.today().isoformat()}" in render_student(fixture("full_marks"))


def test_score_summary_and_fix_first():
    page = Page(student("failures")).text
    assert "5 / 15 points" in page and "33.3%" in page
    assert re.search(r"Fix first: dense_backward\. dW is exactly 1/3", page)
    assert "Every test passes" in Page(student("full_marks")).text


def test_one_section_per_function_in_test_order():
    result = fixture("failures")
    html = student("failures")
    order = list(dict.fromkeys(t.function for t in result.tests))
    found = re.findall(
        r'data-testid="function">\s*<div class="card-head">\s*<h2 class="mono">'
        r"([^<]+)</h2>",
        html,
    )
    assert found == order


def test_failed_gradient_shows_errors_per_output_and_a_heatmap():
    html = student("failures")
    section = html.split('id="fn-2"')[1].split('id="fn-3"')[0]
    for name, error in (("dx", "2.4e-10"), ("dW", "0.667"), ("db", "8.7e-11")):
        assert re.search(
            rf'<td class="mono">{name}</td>.*?<td class="num">{error}</td>', section, re.S
        )
    uris = re.findall(r'src="data:image/png;base64,([^"]+)" width="420"', section)
    assert len(uris) == 1  # dW only: the hidden test's error map is not drawn
    assert base64.b64decode(uris[0]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "The largest difference is at index <code>[1, 2]</code>" in section


def test_small_arrays_are_shown_whole_with_differences_marked():
    result = fixture("failures")
    out = next(t for t in result.tests if t.function == "conv_forward").details["outputs"][0]
    expected, got = np.array(out["expected"]), np.array(out["got"])
    differing = int((~np.isclose(got, expected, rtol=1e-7, atol=1e-7)).sum())
    html = student("failures")
    section = html.split('id="fn-5"')[1].split('id="fn-6"')[0]
    assert section.count('<td class="diff">') == differing == 4
    assert section.count("<td") >= 2 * expected.size
    assert f"{differing} of {expected.size} entries differ" in section
    assert "[0, 1, :, :]" in section


def test_mnist_confusion_digits_and_diagnostic():
    html = student("failures")
    page = Page(html).text
    assert "Test accuracy 92.7%: below the 95.0% needed." in page
    assert html.count('class="confusion"') == 1
    assert len(re.findall(r"<tr><th>\d</th>", html)) == 10
    assert len(re.findall(r'alt="handwritten \d predicted as \d"', html)) == 20
    assert "Most frequent mistake: a 2 predicted as 7 (49 times)" in page
    assert "Verdict: dense_backward is the most likely cause" in page
    assert "Verdict: nothing to diagnose" in Page(student("full_marks")).text


def test_hidden_test_shows_message_and_diagnosis_but_nothing_secret():
    html = student("failures")
    page = Page(html).text
    assert "Hidden test: checks dense_backward on a batch size the notebook does not use" in page
    assert "dW differs from the expected gradient." in page
    assert "Same cause as the public gradient test" in page
    assert "SECRET-HIDDEN" not in html  # neither its source nor its inputs
    assert "0.123457" not in html and "0.987654" not in html  # nor its values
    hostile = student("hostile")
    assert "SECRET-HIDDEN" not in hostile and 'class="diff">9<' not in hostile


def test_a_hidden_description_ends_in_one_full_stop():
    """Rubrics write descriptions as sentences ("Odd lengths, ... kernels."): quoted in the
    page's and Gradescope's "Hidden test: ..." they must not end in '..'."""
    result = fixture("failures")
    index = next(i for i, t in enumerate(result.tests) if t.visibility == "hidden")
    result = _test(result, index, description="Odd lengths and strides.")
    page = Page(render_student(result, generated=GENERATED)).text
    assert "Hidden test: Odd lengths and strides. Its inputs stay secret" in page
    assert ".." not in page.replace("...", "")
    [output] = [t["output"] for t in gradescope_json(result)["tests"]
                if t["name"] == result.tests[index].name]
    assert output.startswith("Hidden test: Odd lengths and strides.\n")


def test_public_and_hidden_tests_are_labelled_and_statuses_worded():
    result = fixture("full_marks")
    result = _test(_test(result, 0, status="timeout"), 1, status="error")
    page = Page(render_student(result, generated=GENERATED)).text
    assert page.count("public test") == sum(t.visibility == "public" for t in result.tests)
    assert page.count("hidden test") == 1
    assert "Timed out" in page and "Crashed" in page


def test_student_code_is_highlighted():
    html = student("full_marks")
    assert '<div class="code"><pre>' in html
    assert re.search(r'<span class="k">def</span>.{0,40}<span class="nf">dense_forward<', html)
    assert ".code .k {" in html  # the style sheet travels with the page


def test_ungradable_submission_says_why_and_scores_nothing():
    result = fixture("ungradable")
    html = student("ungradable")
    page = Page(html).text
    assert "Not graded" in page and "could not be graded" in page
    assert result.error[:60] in page
    assert "so no test ran: no test failed, and none gave points" in page
    assert 'data-testid="function"' not in html


def test_an_ungradable_page_says_what_happened_and_what_to_do_not_needs_work():
    """An unreadable notebook's result still lists every test (a 0 each, for the gradebook's
    columns), but none ran: no function is shown as failing."""
    base = fixture("ungradable")
    tests = tuple(dataclasses.replace(t, score=0.0, status="error", message=f"Not graded: "
                                      f"{base.error}") for t in fixture("failures").tests)
    html = render_student(dataclasses.replace(base, tests=tests), generated=GENERATED)
    page = Page(html).text
    assert "needs work" not in page and "Crashed" not in page and "0 / 15" not in page
    assert 'data-testid="function"' not in html and 'id="overview"' not in html
    assert "Not graded" in page and "What happened" in page and "What to do" in page
    assert base.error[:60] in page
    assert f"none of the {len(tests)} tests ran" in page
    assert "submit the .ipynb file again" in page


def test_a_check_worth_no_points_says_so_instead_of_zero_out_of_zero():
    result = fixture("full_marks")
    rules = TestResult(name="Rules: NumPy only", function="(whole notebook)", score=0.0,
                       max_score=0.0, status="passed", message="No library shortcut found.",
                       description="No library convolution or automatic differentiation.")
    result = dataclasses.replace(result, tests=(*result.tests, rules))
    html = render_student(result, generated=GENERATED)
    row = re.search(r"<tr><td><a href=\"#fn-\d+\">\(whole notebook\)</a>.*?</tr>", html)[0]
    assert "no points of its own" in Page(row).text and "0 / 0" not in row
    assert "0 / 0 points" not in Page(html).text
    assert "A row with no points of its own is a check" in Page(html).text


def test_notices_are_truncated():
    html = student("hostile")
    assert "x" * 2001 not in html
    assert "more characters not shown" in html
    assert "76 more notices not shown" in html
    assert "A" * 1501 not in html


# --------------------------------------------------------------------------- escaping


def test_hostile_fixture_shows_injected_markup_as_text():
    html = student("hostile")
    page = Page(html)
    for payload in PAYLOADS:
        assert payload not in html
        assert payload in page.text
    assert "{{ 7*7 }}" in page.text
    assert_inert(html)


def _test(result: SubmissionResult, index: int = 0, **changes) -> SubmissionResult:
    tests = list(result.tests)
    tests[index] = dataclasses.replace(tests[index], **changes)
    return dataclasses.replace(result, tests=tuple(tests))


def _details(result: SubmissionResult, name: str, change: Callable[[dict], None]):
    index = next(i for i, t in enumerate(result.tests) if t.name == name)
    details = json.loads(json.dumps(result.tests[index].details))
    change(details)
    return _test(result, index, details=details)


def _set_output(key, value):
    def change(details):
        details["outputs"][1][key] = value

    return change


def _set(key, value):
    def change(details):
        details[key] = value

    return change


def _first_swap(details):
    details["swaps"][0]["replaced"] = PAYLOAD


FIELDS: dict[str, Callable[[SubmissionResult], SubmissionResult]] = {
    "student": lambda r: dataclasses.replace(r, student=PAYLOAD),
    "assignment": lambda r: dataclasses.replace(r, assignment=PAYLOAD),
    "submission": lambda r: dataclasses.replace(r, submission=PAYLOAD + ".ipynb"),
    "error": lambda r: dataclasses.replace(r, error=PAYLOAD),
    "notices": lambda r: dataclasses.replace(r, notices=(PAYLOAD,)),
    "grader_version": lambda r: dataclasses.replace(r, grader_version=PAYLOAD),
    "sha256": lambda r: dataclasses.replace(r, sha256=PAYLOAD),
    "sandbox": lambda r: dataclasses.replace(r, sandbox={PAYLOAD: [PAYLOAD]}),
    "timings": lambda r: dataclasses.replace(r, timings={PAYLOAD: 1.0}),
    "source": lambda r: dataclasses.replace(r, sources={"dense_forward": PAYLOAD}),
    "test name": lambda r: _test(r, name=PAYLOAD),
    "function": lambda r: _test(r, function=PAYLOAD),
    "message": lambda r: _test(r, message=PAYLOAD),
    "diagnosis": lambda r: _test(r, status="failed", diagnosis=PAYLOAD),
    "description": lambda r: _test(r, description=PAYLOAD),
    "hidden description": lambda r: _test(r, 2, description=PAYLOAD),
    "status": lambda r: _test(r, status=PAYLOAD),
    "inputs": lambda r: _details(r, "dense_forward/output", _set("inputs", PAYLOAD)),
    "output name": lambda r: _details(r, "dense_backward/gradients", _set_output("name", PAYLOAD)),
    "dtype": lambda r: _details(r, "dense_backward/gradients", _set_output("dtype", PAYLOAD)),
    "got": lambda r: _details(
        r,
        "dense_backward/gradients",
        lambda d: d["outputs"][1].update(passed=False, expected=[1.0], got=[PAYLOAD]),
    ),
    "culprit": lambda r: _details(r, "train_mnist/diagnostic", _set("culprit", PAYLOAD)),
    "swap": lambda r: _details(
        r, "train_mnist/diagnostic", _set("swaps", [{"replaced": PAYLOAD, "difference": 0.3}])
    ),
}


@pytest.mark.parametrize("field", FIELDS)
def test_every_student_derived_field_is_escaped(field):
    result = FIELDS[field](fixture("full_marks"))
    html = render_student(result, generated=GENERATED)
    index = render_index([result], generated=GENERATED)
    for page in (html, index):
        assert PAYLOAD not in page
        assert_inert(page)
    assert PAYLOAD in Page(html).text  # shown, as text


def test_index_links_cannot_become_scripts_or_leave_the_folder_tree():
    base = fixture("full_marks")
    tricky = [
        dataclasses.replace(base, student=s)
        for s in ("javascript:alert(1)//", "//evil.example/x", PAYLOAD, "a b&c")
    ]
    html = render_index(tricky, generated=GENERATED)
    hrefs = Page(html).attr("href")
    assert len(hrefs) == 4
    assert all(h.startswith("./") and ":" not in h for h in hrefs)
    assert "./a%20b%26c.html" in hrefs
    assert_no_urls(html)


# --------------------------------------------------------------------------- class overview


def test_index_summarises_the_class(results):
    everyone = list(results.values())
    links = {r.student: f"page-{i}.html" for i, r in enumerate(everyone)}
    html = render_index(everyone, generated=GENERATED, links=links)
    page = Page(html)
    assert sorted(page.attr("href")) == sorted(f"./{v}" for v in links.values())
    assert html.count('class="student-link"') == len(everyone)
    histogram = re.search(r'<svg class="plot".*?</svg>', html).group(0)
    # 3 graded submissions: one bar per score, each saying what it counts
    assert histogram.count("<rect") == 10
    assert len(re.findall(r"<title>1 submission scored", histogram)) == 3
    assert "4 submissions" in page.text and "3 graded" in page.text
    assert "Could not be graded (1)" in page.text
    assert results["ungradable"].error[:60] in page.text
    assert re.search(r"dense_forward/output</span></td><td class=\"num\">2 / 2</td>", html)
    assert re.search(r"dense_backward/gradients</span></td><td class=\"num\">1 / 3</td>", html)
    assert "Most common diagnoses" in page.text
    assert "Total grading time 250 s." in page.text
    assert_inert(html)


def test_the_overview_lists_every_student_before_the_statistics(results):
    everyone = list(results.values())
    html = render_index(everyone, generated=GENERATED)
    assert html.index('id="students"') < html.index('id="scores"') < html.index('id="pass-rates"')
    ids = [html_text.unescape(i) for i in re.findall(r'<tr data-id="([^"]*)"', html)]
    assert sorted(ids) == sorted(r.student for r in everyone)
    ungradable = re.search(r'<tr data-id="li.wei" data-status="([^"]+)"', html)
    assert ungradable[1] == "ungradable"
    text = Page(html).text
    assert "Notices: what happened while the notebook ran besides the tests" in text
    assert "They cost no points" in text
    assert_inert(html)  # its script is the overview's own, allowed by its hash


def test_the_overview_script_writes_no_markup():
    """It moves and hides rows: nothing a student wrote is ever parsed as HTML or code."""
    for risky in ("innerHTML", "outerHTML", "insertAdjacent", "document.write", "eval(",
                  "Function(", "setTimeout", "fetch", "XMLHttpRequest", "location", "import"):
        assert risky not in OVERVIEW_JS, risky


def test_index_of_nothing_renders():
    html = render_index([], generated=GENERATED)
    assert "No submission could be graded." in html
    assert_no_urls(html)


def test_most_common_diagnosis_is_counted_first():
    base = fixture("failures")
    html = render_index([base, dataclasses.replace(base, student="x")], generated=GENERATED)
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td>([^<]+)<br>', html)
    assert rows and all(count == "2" for count, _ in rows)


# --------------------------------------------------------------------------- exports


def grades_csv(results: list[SubmissionResult]) -> str:
    """The grades.csv the pipeline writes (``grader.course.gradebook``) for these results, with no
    roster and no course file: one row per result, named by its student."""
    top = sum({t.name: t.max_score for r in results for t in r.tests}.values())
    finals = [final.compute(r, Student(id=r.student), course.NO_COURSE, assignment=r.assignment,
                            max_score=top) for r in results]
    return gradebook.grades_csv(finals, rubric_order(results))


def test_grades_csv_columns_and_rows(results):
    everyone = [results[n] for n in ("failures", "full_marks", "ungradable", "hostile")]
    rows = list(csv.reader(io.StringIO(grades_csv(everyone))))
    names = list(dict.fromkeys(t.name for r in everyone for t in r.tests))
    assert rows[0] == [*gradebook.GRADES_HEADER, *names]
    assert [r[0] for r in rows[1:]] == [r.student for r in everyone]
    assert rows[1][4:7] == ["5", "15", "graded"] and rows[2][4:7] == ["15", "15", "graded"]
    # ungradable: no score at all (not a 0 that reads like a real one), said in the status
    assert rows[3][4] == "" and rows[3][6] == "ungradable"
    assert rows[3][len(gradebook.GRADES_HEADER):] == [""] * len(names)
    by_name = dict(zip(rows[0], rows[1], strict=True))
    assert by_name["dense_backward/gradients"] == "0"
    assert by_name["train_mnist/accuracy"] == "1"


def test_grades_csv_defuses_spreadsheet_formulas():
    result = dataclasses.replace(fixture("full_marks"), student='=HYPERLINK("x")')
    rows = list(csv.reader(io.StringIO(grades_csv([result]))))
    assert rows[1][0] == '\'=HYPERLINK("x")'


def test_gradescope_json_shape(results, tmp_path):
    result = results["failures"]
    data = gradescope_json(result)
    assert data["score"] == result.score == 5
    assert isinstance(data["execution_time"], int) and isinstance(data["output"], str)
    assert len(data["tests"]) == len(result.tests)
    for entry, test in zip(data["tests"], result.tests, strict=True):
        assert {"name", "score", "max_score", "output", "visibility"} <= set(entry)
        assert entry["name"] == test.name and entry["max_score"] == test.max_score
        expected = "after_published" if test.visibility == "hidden" else "visible"
        assert entry["visibility"] == expected
    hidden = next(e for e in data["tests"] if e["visibility"] == "after_published")
    assert "Same cause as the public gradient test" in hidden["output"]
    assert "SECRET" not in json.dumps(data)
    path = tmp_path / "results.json"
    write_gradescope(result, path)
    assert json.loads(path.read_text(encoding="utf-8")) == data


def test_gradescope_json_for_an_ungradable_submission(results):
    data = gradescope_json(results["ungradable"])
    assert data["score"] == 0 and data["tests"] == []
    assert data["output"].startswith("Your submission could not be graded: The notebook")


# --------------------------------------------------------------------------- golden file


def normalise(html: str) -> str:
    """Drop what legitimately varies between library versions: the bytes of embedded PNGs."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,…", html)


def test_full_marks_page_matches_golden_file():
    html = normalise(student("full_marks"))
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(html, encoding="utf-8")
    assert GOLDEN.exists(), "no golden file yet: run with UPDATE_GOLDEN=1"
    assert html == GOLDEN.read_text(encoding="utf-8"), (
        "the full-marks page changed; if intended, rerun with UPDATE_GOLDEN=1 and review the diff"
    )


def test_result_fixtures_round_trip(results):
    for name, result in results.items():
        raw = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
        assert json.dumps(result.to_json()) == json.dumps(raw), name
        assert all(isinstance(t, TestResult) for t in result.tests)


def test_written_files_are_readable_by_others(tmp_path):
    """Feedback is often served by a web server running as another user."""
    from grader.core.results import write_atomic

    target = tmp_path / "page.html"
    write_atomic(target, "<p>hi</p>")
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]


# --------------------------------------------------------------------------- extreme values

# One page must never stop a batch (issue 11): every number a result can carry, in every place
# a page draws one, renders the detailed page; anything else falls back to the plain page.
EXTREMES = [
    float("inf"),
    float("-inf"),
    float("nan"),
    1.7e308,
    -1.7e308,
    1e308,
    -1e308,
    -0.0,
    5e-324,
    1e-300,
    10**30,
]


def _arrays(v: float) -> dict[str, object]:
    """Where an array is expected: one extreme entry, all extreme, mixed signs, a 0-d value,
    empty lists, and the grader's own encoding of non-finite entries as text."""
    return {
        "one": [[0.0, 1.0], [2.0, v]],
        "all": [[v, v], [v, v]],
        "mixed": [[v, -v], [0.0, 1e-300]],
        "row": [v, 0.0, 1.0],
        "scalar": v,
        "empty": [],
        "empty rows": [[], []],
        "as text": [["nan", "inf"], ["-inf", v]],
    }


def _output(key: str, value) -> Callable[[SubmissionResult], SubmissionResult]:
    return lambda r: _details(r, "dense_backward/gradients", _set_output(key, value))


def _mnist_detail(key: str, value, name: str = "train_mnist/accuracy"):
    return lambda r: _details(r, name, _set(key, value))


def _extreme_variants(v: float) -> dict[str, Callable[[SubmissionResult], SubmissionResult]]:
    variants = {}
    for label, array in _arrays(v).items():
        for key in ("error_map", "expected", "got"):
            variants[f"{key} {label}"] = _output(key, array)
        variants[f"confusion {label}"] = _mnist_detail("confusion", array)
        digit = [{"pixels": array, "true": 1, "predicted": 7, "index": 3}]
        variants[f"digit {label}"] = _mnist_detail("misclassified", digit)
    for key in ("relative_error", "tolerance"):
        variants[key] = _output(key, v)
    for key in ("worst_index", "expected_shape", "got_shape"):
        variants[key] = _output(key, [v, 1])
    for key in ("accuracy", "threshold", "train_seconds", "budget_seconds"):
        variants[key] = _mnist_detail(key, v)
    label = [{"pixels": [[1.0]], "true": v, "predicted": v, "index": v}]
    variants["digit labels"] = _mnist_detail("misclassified", label)
    variants["swap"] = _mnist_detail(
        "swaps", [{"replaced": "dense_forward", "difference": v, "fixes": True}],
        "train_mnist/diagnostic",
    )
    variants["score"] = lambda r: _test(r, 1, score=v)
    variants["max_score"] = lambda r: _test(r, 1, max_score=v)
    variants["times"] = lambda r: dataclasses.replace(r, duration_s=v, timings={"read": v})
    return variants


def assert_drawn_in_full(html: str, where: str) -> None:
    assert 'id="plain-page"' not in html, where  # no fallback to the plain page
    assert "could not be drawn" not in html, where  # nor to a note instead of a picture
    assert_inert(html)


@pytest.mark.slow  # a real matplotlib page per value: seconds each
@pytest.mark.parametrize("value", EXTREMES, ids=repr)
def test_extreme_values_render_the_detailed_page(value):
    # the fixture's own error map is dropped, so that only the variants that change it pay
    # for a matplotlib figure (the suite runs on two cores)
    base = _details(fixture("failures"), "dense_backward/gradients", _set_output("error_map", None))
    results = []
    for where, change in _extreme_variants(value).items():
        result = dataclasses.replace(change(base), student=where)
        html = render_student(result, generated=GENERATED)
        assert_drawn_in_full(html, where)
        assert 'data-testid="function"' in html, where
        json.dumps(gradescope_json(result), allow_nan=False)  # Gradescope rejects NaN
        results.append(result)
    assert_drawn_in_full(render_index(results, generated=GENERATED), "index")
    assert len(list(csv.reader(io.StringIO(grades_csv(results))))) == len(results) + 1


@pytest.mark.parametrize("value", [1.7e308, -1.7e308, 5e-324, float("inf")], ids=repr)
def test_error_map_with_an_extreme_entry_is_still_drawn(value):
    # 1.7e308 is what compare.error_map makes of an inf entry (nan_to_num): the colour bar's
    # ticks overflowed on it and stopped the batch.
    error_map = [[0.0, 1.0], [2.0, value]]
    result = _details(
        fixture("failures"), "dense_backward/gradients", _set_output("error_map", error_map)
    )
    html = render_student(result, generated=GENERATED)
    section = html.split('id="fn-2"')[1].split('id="fn-3"')[0]
    uris = re.findall(r'src="data:image/png;base64,([^"]+)" width="420"', section)
    assert len(uris) == 1 and base64.b64decode(uris[0]).startswith(b"\x89PNG")


def test_huge_arrays_are_neither_drawn_nor_tabulated():
    side = 300
    big = [[1.0] * side for _ in range(side)]
    result = _details(
        fixture("failures"),
        "dense_backward/gradients",
        lambda d: d["outputs"][1].update(error_map=big, expected=big, got=big[:-1]),
    )
    result = _details(result, "train_mnist/accuracy", _set("confusion", big))
    html = render_student(result, generated=GENERATED)
    section = html.split('id="fn-2"')[1].split('id="fn-3"')[0]
    assert 'width="420"' not in section and '<table class="array">' not in section
    assert 'class="confusion"' not in html and 'id="plain-page"' not in html


def test_a_page_that_cannot_be_drawn_falls_back_to_a_plain_page(monkeypatch):
    import grader.render.report as report

    def broken(*args, **kwargs):
        raise OverflowError("cannot convert float infinity to integer")

    result = _test(fixture("failures"), 1, message=PAYLOAD, diagnosis=PAYLOAD + " diag")
    monkeypatch.setattr(report, "_sections", broken)
    html = render_student(result, generated=GENERATED)
    page = Page(html).text
    assert "detailed feedback page could not be drawn (OverflowError)" in page
    assert "5 / 15 points" in page
    assert all(t.name in page and t.message in page for t in result.tests)
    assert PAYLOAD not in html and f"{PAYLOAD} diag" in page  # messages escaped, shown as text
    assert_inert(html)

    monkeypatch.setattr(report, "_pass_rates", broken)
    index = render_index([result, fixture("ungradable")], generated=GENERATED)
    text = Page(index).text
    assert "detailed overview could not be drawn (OverflowError)" in text
    assert result.student in text and "5 / 15" in text
    assert fixture("ungradable").error[:60] in text
    assert Page(index).attr("href") == [f"./{result.student}.html", "./li.wei.html"]
    assert_inert(index)


def test_the_plain_page_keeps_the_final_grade_and_the_name(monkeypatch):
    import grader.render.report as report

    def broken(*args, **kwargs):
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(report, "_sections", broken)
    final = {"score": 4.0, "max": 15.0, "status": "late", "name": "Amira Haddad", "id": "s7"}
    page = Page(render_student(fixture("failures"), generated=GENERATED, final=final)).text
    assert "Amira Haddad" in page and "4 / 15 points" in page and "the tests gave 5" in page


def test_a_malformed_result_gets_the_plain_page_not_an_exception():
    # a score that is not a number (a hand-edited or corrupt results JSON) breaks the totals
    result = _test(fixture("failures"), 0, score="2", name=PAYLOAD)
    html = render_student(result, generated=GENERATED)
    index = render_index([result], generated=GENERATED)
    assert 'id="plain-page"' in html and 'id="plain-page"' in index
    assert PAYLOAD not in html and PAYLOAD in Page(html).text
    assert_inert(html)
    assert_inert(index)


def test_non_finite_scores_export_as_no_grade_not_nan():
    result = _test(fixture("full_marks"), 0, score=float("nan"))
    result = dataclasses.replace(result, duration_s=float("inf"))
    rows = list(csv.reader(io.StringIO(grades_csv([result]))))
    assert "nan" not in grades_csv([result]).lower()
    first = len(gradebook.GRADES_HEADER)  # total and that test: empty, not 'nan'
    assert rows[1][4] == "" and rows[1][first] == ""
    data = gradescope_json(result)
    json.dumps(data, allow_nan=False)
    assert data["score"] == 0 and data["tests"][0]["score"] == 0 and data["execution_time"] == 0


@pytest.mark.slow
def test_graded_submission_with_a_huge_entry_renders(submission, grade_notebook):
    """End to end: the reproduction of issue 11 item 5, from notebook to page."""
    from tests.conftest import UNIT_KINDS

    code = """
        def dense_forward(x, W, b):
            out = x @ W + b
            out.flat[0] = 1.7e308
            return out, (x, W)
        """
    path = submission("backprop", replace={"dense_forward": code})
    result = grade_notebook(path, "backprop", kinds=UNIT_KINDS)
    failed = [t for t in result.tests if t.function == "dense_forward" and t.status != "passed"]
    assert failed, [t.message for t in result.tests]
    html = render_student(result)
    assert 'id="plain-page"' not in html and "could not be drawn" not in html
    assert all(t.name in Page(html).text for t in failed)
    assert_inert(html)
    assert render_index([result])


def test_grades_csv_says_which_results_wait_for_review():
    result = fixture("full_marks")
    tests = tuple(dataclasses.replace(t, status="review", score=0.0)
                  if t.name == "train_mnist/accuracy" else t for t in result.tests)
    rows = list(csv.reader(io.StringIO(grades_csv([dataclasses.replace(result, tests=tests)]))))
    assert rows[1][6] == "needs review"


def test_a_lost_point_quotes_the_notebooks_sentence() -> None:
    """Every lost point traces to a sentence the student was given: the page quotes the
    test's requirement where points were lost, and only there."""
    failures = load(Path(__file__).parent / "fixtures" / "results" / "failures.json")
    asked = "A backward pass computes new arrays & leaves <dout> unchanged"
    lost = dataclasses.replace(failures.tests[0], score=0.0, requirement=asked)
    kept = dataclasses.replace(failures.tests[1], score=failures.tests[1].max_score,
                               requirement="Another sentence")
    page = render_student(dataclasses.replace(failures, tests=(lost, kept)))
    assert ("The notebook asks: “A backward pass computes new arrays &amp; leaves "
            "&lt;dout&gt; unchanged”") in page
    assert "Another sentence" not in page
    assert json.loads(json.dumps(dataclasses.replace(failures, tests=(lost,)).to_json())
                      )["tests"][0]["requirement"] == asked
