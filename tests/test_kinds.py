"""The kinds of rubric test (``grader.checks.kinds``): each is one class with its keys, its
checks and its part of the page, named in one registry; and adding one is that module, its
template and one line, shown by the ``signature`` kind: added to a rubric, validated and graded
like any other."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nbformat
import pytest

from grader.checks import kinds, rubric
from grader.core.results import SubmissionResult
from grader.render import report
from tests.conftest import grade_here
from tests.test_rubric import COURSE_CELLS, COURSE_RUBRIC, course, refused, validate

TEMPLATES = Path(__file__).resolve().parent.parent / "grader" / "templates"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "rubric.md"

SIGNATURE_TEST = """
[[tests]]
name = "leaky: parameters"
requirement = "Leaky ReLU with slope alpha below 0."
function = "leaky"
kind = "signature"
points = 1
"""
LEAKY = COURSE_CELLS[3]


def test_every_kind_has_its_template_its_docs_and_typed_defaults() -> None:
    documented = DOCS.read_text()
    for kind in kinds.KINDS:
        assert (TEMPLATES / kind.template).is_file(), kind.name
        assert f'## [[tests]]: kind = "{kind.name}"' in documented or not kind.options.keys()
        assert f"`{kind.name}`: {kind.meaning}" in documented
        defaults = kind.options()  # every key has a default (a required one is checked apart)
        assert dataclasses.is_dataclass(defaults) and kinds.get(kind.name) is kind


def test_defaults_are_filled_in_at_parse_time() -> None:
    loaded = rubric.load("backprop")
    mnist = next(t for t in loaded.tests if t.kind == "mnist")
    assert (mnist.options.predict_budget, mnist.options.review_above) != (None, None)
    output = next(t for t in loaded.tests if t.kind == "output")
    assert output.options.tolerance == 1e-6 and output.timeout == 10.0
    assert "tolerance" not in output.written


def test_a_key_of_another_kind_is_refused_with_the_kinds_that_take_it(tmp_path: Path) -> None:
    text = COURSE_RUBRIC + SIGNATURE_TEST + "tolerance = 0.1\ndefalts = false\n"
    error = refused(tmp_path, text)
    assert "test 'leaky: parameters': tolerance is not a key of signature tests (only of " \
           "example, output, gradient tests)" in error
    assert "test 'leaky: parameters': unknown key 'defalts' (did you mean 'defaults'?)" in error


def course_rubric(tmp_path: Path, extra: str = "") -> rubric.Rubric:
    solutions = course(tmp_path, COURSE_RUBRIC + SIGNATURE_TEST + extra)
    return rubric.load("course", solutions_dir=solutions)


def notebook(folder: Path, leaky: str) -> Path:
    cells = [*COURSE_CELLS[:3], leaky]
    path = folder / "student.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c)
                                                   for c in cells]), path)
    return path


def graded(tmp_path: Path, leaky: str, extra: str = "") -> SubmissionResult:
    loaded = course_rubric(tmp_path, extra)
    return grade_here(notebook(tmp_path, leaky), "course", loaded=loaded,
                      kinds=("example", "signature"))


def test_a_rubric_with_a_signature_test_validates_clean(tmp_path: Path) -> None:
    """Through the students' path in the sandbox: the reference scores full marks, and the
    untouched template, which keeps its parameters, may score on this test."""
    solutions = course(tmp_path, COURSE_RUBRIC + SIGNATURE_TEST)
    done = validate(tmp_path, "course", "--solutions", str(solutions))
    assert done.returncode == 0, done.stderr
    assert "course: valid (4 tests; the reference scores full marks" in done.stdout


def test_the_templates_parameters_pass(tmp_path: Path) -> None:
    result = graded(tmp_path, LEAKY)
    test = next(t for t in result.tests if t.kind == "signature")
    assert (test.status, test.score) == ("passed", 1.0), test.message
    assert test.details == {"expected": "x, alpha=0.1", "found": "x, alpha=0.1"}
    assert "`leaky(x, alpha=0.1)` keeps the template's parameters" in test.message


def test_a_renamed_parameter_is_named_where_the_example_only_fails(tmp_path: Path) -> None:
    result = graded(tmp_path, LEAKY.replace("alpha", "slope"))
    example, signature = result.tests
    assert example.kind == "example" and example.score == 0
    assert "unexpected keyword argument 'alpha'" in example.message
    assert (signature.status, signature.score) == ("failed", 0.0)
    assert signature.message.startswith("`leaky` takes (x, slope=0.1) where the template has "
                                        "(x, alpha=0.1)")
    data = result.to_json()["tests"]
    assert [t["kind"] for t in data] == ["example", "signature"]
    assert SubmissionResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_defaults_are_compared_by_value_unless_the_rubric_says_not(tmp_path: Path) -> None:
    same_value = graded(tmp_path, LEAKY.replace("alpha=0.1", "alpha=1e-1"))
    assert same_value.tests[1].status == "passed"
    other = LEAKY.replace("alpha=0.1", "alpha=0.2")
    assert graded(tmp_path, other).tests[1].status == "failed"
    assert graded(tmp_path, other, "defaults = false\n").tests[1].status == "passed"


@pytest.mark.parametrize("block", ["if True:\n", "try:\n", "with open(__file__):\n"])
def test_a_definition_inside_a_top_level_block_is_read(tmp_path: Path, block: str) -> None:
    """As the cell runs it, and as every other test sees it: defined."""
    indented = "".join(f"    {line}\n" for line in LEAKY.splitlines())
    if block == "try:\n":
        indented += "except ImportError:\n    pass\n"
    result = graded(tmp_path, block + indented)
    assert result.tests[1].status == "passed", result.tests[1].message


def test_a_missing_function_is_an_error(tmp_path: Path) -> None:
    result = graded(tmp_path, LEAKY.replace("def leaky", "def leaky_relu"))
    assert result.tests[1].status == "error"
    assert "is not defined in your notebook" in result.tests[1].message


@pytest.mark.parametrize("hidden", [False, True])
def test_the_page_shows_the_kinds_own_part(tmp_path: Path, hidden: bool) -> None:
    extra = 'visibility = "hidden"\n' if hidden else ""
    result = graded(tmp_path, LEAKY.replace("alpha", "slope"), extra)
    page = report.render_student(result, generated="2026-01-01")
    assert "is not defined" not in page and "Your notebook</dt>" in page or hidden
    shown = "<dd class=\"mono\">leaky(x, slope=0.1)</dd>" in page
    assert shown != hidden  # a hidden test's checks stay secret


def test_a_result_stored_before_results_named_their_kind_still_shows_its_part() -> None:
    """An old result's MNIST test (no ``kind``) still gets the MNIST part of the page."""
    from grader.core.results import TestResult

    old = TestResult(name="MNIST: accuracy", function="train_mnist", score=1.0, max_score=4.0,
                     status="failed", message="below", details={"accuracy": 0.9,
                                                                "threshold": 0.95})
    result = SubmissionResult(student="s", assignment="a", submission="s.ipynb", sha256="0",
                              error=None, notices=(), tests=(old,), grader_version="",
                              duration_s=0.0)
    assert "Test accuracy 90.0%" in report.render_student(result, generated="2026-01-01")


def test_the_references_defaults_are_read_as_a_students_are() -> None:
    """A default written as a name (`eps=EPS`, `cap=np.inf`) compares as text on both sides,
    a literal by value: the template's own parameters always pass."""
    from grader.checks.kinds import signature

    template = ("EPS = 1e-5\n\ndef f(x, eps=EPS, cap=np.inf, k=1, *rest, flag=True, **extra):\n"
                "    return x\n")
    wanted = signature._of_sources([template], "f", True)
    assert wanted is not None
    same = signature._of_sources([template.replace("k=1", "k=1.0")], "f", True)
    assert [p.compared() for p in same] == [p.compared() for p in wanted]
    changed = signature._of_sources([template.replace("eps=EPS", "eps=1e-5")], "f", True)
    assert [p.compared() for p in changed] != [p.compared() for p in wanted]
