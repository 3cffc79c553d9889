"""Rubrics are data an instructor writes: mistakes get a message naming the file and the field,
and the lecture's worked examples in the rubrics agree with the reference implementation."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from grader.checks import inputs, rubric
from grader.core import reference
from grader.core.errors import GraderError
from grader.grading import validate as validate_module
from tests.conftest import ROOT, SOLUTIONS

DOCS = ROOT / "docs" / "rubric.md"

GOOD_TEST = """
[[tests]]
name = "conv1d: example"
function = "conv1d"
kind = "example"
points = 1
args = [[1, 2, 3], [1]]
expected = [1, 2, 3]
"""
HEAD = """
[assignment]
functions = ["conv1d"]
"""


def write_rubric(folder: Path, text: str) -> Path:
    shutil.copy(SOLUTIONS / "convolution.ipynb", folder / "course.ipynb")
    (folder / "course.toml").write_text(text)
    return folder


T = "course.toml: test 'conv1d: example'"


@pytest.mark.parametrize(
    "text, words",
    [
        ("not = [valid", "course.toml: not valid TOML"),
        (GOOD_TEST, "course.toml: needs an [assignment] table"),
        (HEAD, "needs at least one [[tests]] table"),
        (
            HEAD + GOOD_TEST.replace("points = 1", 'points = "many"'),
            f"{T}: points must be a number ≥ 0 (got 'many')",
        ),
        (HEAD + GOOD_TEST.replace('"example"', '"magic"'), f"{T}: kind must be one of"),
        (
            HEAD + GOOD_TEST.replace('function = "conv1d"', 'function = "conv9d"'),
            f"{T}: function 'conv9d' is not in [assignment].functions (did you mean 'conv1d'?)",
        ),
        (
            HEAD + GOOD_TEST.replace("expected = [1, 2, 3]", ""),
            f"{T}: expected is required for an example test",
        ),
        (HEAD + GOOD_TEST + GOOD_TEST, "test names must be unique"),
        (
            HEAD + GOOD_TEST.replace('kind = "example"', 'kind = "gradient"'),
            f"{T}: forward is required",
        ),
        (
            HEAD + GOOD_TEST.replace('kind = "example"', 'kind = "gradient"'),
            f"{T}: expected is not a key of gradient tests (only of example tests)",
        ),
        (HEAD + GOOD_TEST + "threshold = 0.9\n", f"{T}: threshold is not a key of example"),
        (HEAD + GOOD_TEST + "tolerance = 0\n", f"{T}: tolerance must be a number > 0"),
        (HEAD + GOOD_TEST + "timeout = -1\n", f"{T}: timeout must be a number of seconds > 0"),
        (
            HEAD + GOOD_TEST + "timeout = { times_reference = 2 }\n",
            f"{T}: timeout must be seconds or a table with exactly the keys",
        ),
        (
            HEAD + GOOD_TEST.replace('name = "conv1d: example"\n', ""),
            "course.toml: tests[0] (no name): name is required",
        ),
        (
            HEAD.replace("[assignment]", "[asignment]") + GOOD_TEST,
            "course.toml: unknown table [asignment] (did you mean [assignment]?)",
        ),
        (HEAD + "seed = -3\n" + GOOD_TEST, "course.toml: [assignment]: seed must be an integer"),
        (HEAD + 'given = ["conv2d"]\n' + GOOD_TEST, "given: 'conv2d' is not in functions"),
        (
            HEAD + "[defaults]\nvisiblity = 'hidden'\n" + GOOD_TEST,
            "course.toml: [defaults]: unknown key 'visiblity' (did you mean 'visibility'?)",
        ),
        (
            HEAD + GOOD_TEST.replace("args = [[1, 2, 3], [1]]", "args = [{ shpe = [3] }, [1]]"),
            f"{T}: args[0]: unknown input spec key 'shpe' (did you mean 'shape'?)",
        ),
        (
            HEAD + GOOD_TEST.replace("args = [[1, 2, 3], [1]]",
                                     'args = [{ shape = [3], dist = "labels" }, [1]]'),
            f"{T}: args[0]: dist = \"labels\" needs classes = C",
        ),
        (
            HEAD + GOOD_TEST.replace("args = [[1, 2, 3], [1]]",
                                     "cases = [{ args = [[1, 2, 3], [1]], expected = [1] }]"),
            f"{T}: give either cases = [...] or expected for a single case, not both",
        ),
    ],
)
def test_rubric_mistakes_name_the_field(tmp_path: Path, text: str, words: str) -> None:
    folder = write_rubric(tmp_path, text)
    with pytest.raises(GraderError) as error:
        rubric.load("course", solutions_dir=folder)
    assert words in str(error.value)


def test_unknown_assignment_lists_the_known_ones() -> None:
    with pytest.raises(GraderError, match="unknown assignment 'nope' .*backprop, convolution"):
        rubric.load("nope")


@pytest.mark.parametrize("name", ["backprop", "convolution"])
def test_examples_agree_with_the_reference(name: str) -> None:
    """An example's literal expected values must be what the reference computes: this is
    where a slip copied from a slide would be caught."""
    loaded = rubric.load(name)
    ref = reference.load(loaded.solution)
    examples = [t for t in loaded.tests if t.kind == "example"]
    assert examples or name == "backprop"
    for test in examples:
        for case in test.cases:
            rng = inputs.rng_for(0, test.name)
            args = [inputs.make(a, rng) for a in case.args]
            got = np.asarray(ref[test.function](*args, **case.kwargs))
            if test.options.then == "relu":
                got = np.maximum(got, 0)
            np.testing.assert_allclose(got, case.expected, err_msg=test.name)


def test_lecture_pooling_uses_the_true_values_not_the_slide_slip() -> None:
    pool = next(
        t for t in rubric.load("convolution").tests if t.name == "max_pool2d: lecture example"
    )
    assert pool.cases[0].expected[1] == [34, 34, 26]  # the slide shows 34 26 26


# --- python -m grader validate: each mistake that used to reach students ----------------------

COURSE_CELLS = [
    "import numpy as np\n# Backward passes leave their inputs unchanged, give the same result "
    "twice, and zero for a zero dout.",
    '''def relu_forward(x):
    """ReLU: returns (out, cache)."""
    ### BEGIN SOLUTION
    # HINT: keep the positive part, and what the backward needs
    out = np.maximum(0, x)
    cache = x
    ### END SOLUTION
    return out, cache''',
    '''def relu_backward(dout, cache):
    """Gradient of ReLU."""
    ### BEGIN SOLUTION
    dx = dout * (cache > 0)
    ### END SOLUTION
    return dx''',
    '''def leaky(x, alpha=0.1):
    """Leaky ReLU with slope alpha below 0."""
    ### BEGIN SOLUTION
    out = np.where(x > 0, x, alpha * x)
    ### END SOLUTION
    return out''',
]

# Written the way docs/instructors.md's "Add an assignment" says: example, output and
# gradient tests, as in solutions/convolution.toml.
COURSE_RUBRIC = """
[assignment]
title = "A small course"
functions = ["relu_forward", "relu_backward", "leaky"]
seed = 3

[assignment.side_checks]
"repeatable" = "give the same result twice"
"leaves inputs unchanged" = "leave their inputs unchanged"
"zero upstream gives zero" = "zero for a zero dout"

[[tests]]
name = "relu_forward: output"
requirement = "ReLU: returns (out, cache)."
function = "relu_forward"
kind = "output"
returns = ["out", "cache"]
outputs = ["out"]
points = 1
cases = [{ args = [{ shape = [3, 4], away_from_zero = 0.1 }] }]

[[tests]]
name = "relu_backward: gradient check"
requirement = "Gradient of ReLU."
function = "relu_backward"
forward = "relu_forward"
kind = "gradient"
outputs = ["dx"]
points = 2
visibility = "hidden"
cases = [{ args = [{ shape = [3, 4], away_from_zero = 0.1 }] }]

[[tests]]
name = "leaky: lecture example"
requirement = "Leaky ReLU with slope alpha below 0."
function = "leaky"
kind = "example"
points = 1
args = [[-2, 0, 3]]
kwargs = { alpha = 0.5 }
expected = [-1, 0, 3]
"""


def course(folder: Path, text: str = COURSE_RUBRIC, cells: list[str] = COURSE_CELLS) -> Path:
    """solutions/course.{toml,ipynb} under ``folder``; returns the solutions folder."""
    solutions = folder / "solutions"
    solutions.mkdir(exist_ok=True)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(notebook, solutions / "course.ipynb")
    (solutions / "course.toml").write_text(text)
    return solutions


def validate(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m grader validate`` as an instructor runs it, with its own verdict cache."""
    env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache")}
    return subprocess.run([sys.executable, "-m", "grader", "validate", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def refused(folder: Path, text: str = COURSE_RUBRIC, cells: list[str] = COURSE_CELLS) -> str:
    """The error validate gives the course: exit 2, and every line a problem."""
    done = validate(folder, "course", "--solutions", str(course(folder, text, cells)))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("grader: error: ") and "Traceback" not in done.stderr
    return done.stderr


BACKWARD = "test 'relu_backward: gradient check'"
UNMARKED_LEAKY = ('def leaky(x, alpha=0.1):\n    """Leaky ReLU with slope alpha below 0."""\n'
                  "    return np.where(x > 0, x, alpha * x)")


def test_a_rubric_written_as_the_readme_says_validates_clean(tmp_path: Path) -> None:
    solutions = course(tmp_path)
    done = validate(tmp_path, "course", "--solutions", str(solutions))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "course: valid (3 tests; the reference scores full marks; the template scores 0)")
    again = validate(tmp_path, "course", "--solutions", str(solutions))
    assert "full marks, cached; the template scores 0, cached" in again.stdout


def test_a_visibility_typo_is_refused(tmp_path: Path) -> None:
    text = COURSE_RUBRIC.replace('visibility = "hidden"', 'visiblity = "hidden"')
    assert (f"course.toml: {BACKWARD}: unknown key 'visiblity' (did you mean 'visibility'?)"
            in refused(tmp_path, text))


def test_a_points_typo_names_the_unknown_key(tmp_path: Path) -> None:
    error = refused(tmp_path, COURSE_RUBRIC.replace("points = 2", "point = 2"))
    assert f"course.toml: {BACKWARD}: unknown key 'point' (did you mean 'points'?)" in error
    assert f"course.toml: {BACKWARD}: points is required" in error
    assert error.startswith("grader: error: 2 problems:\n  course.toml")


def test_outputs_not_what_the_reference_returns(tmp_path: Path) -> None:
    error = refused(tmp_path, COURSE_RUBRIC.replace('outputs = ["dx"]', 'outputs = ["y"]'))
    assert (f"course.toml: {BACKWARD}: outputs names 'y' but relu_backward returns 'dx' there"
            in error)


def test_outputs_not_among_returns(tmp_path: Path) -> None:
    error = refused(tmp_path, COURSE_RUBRIC.replace('outputs = ["out"]', 'outputs = ["y"]'))
    assert ("course.toml: test 'relu_forward: output': outputs names 'y', which is not in "
            "returns (out, cache)") in error


def test_returns_not_what_the_reference_returns(tmp_path: Path) -> None:
    text = COURSE_RUBRIC.replace('returns = ["out", "cache"]', 'returns = ["out"]')
    assert ("course.toml: test 'relu_forward: output': returns names 1 values (out) but the "
            "reference relu_forward returns a tuple of 2 values") in refused(tmp_path, text)


def test_a_function_missing_from_the_solution_notebook(tmp_path: Path) -> None:
    text = COURSE_RUBRIC.replace('"leaky"]', '"leaky", "sigmoid"]') + """
[[tests]]
name = "sigmoid: output"
function = "sigmoid"
kind = "output"
points = 1
args = [{ shape = [2, 3] }]
"""
    assert ("course.ipynb: `sigmoid` is in course.toml [assignment].functions but the notebook "
            "does not define it") in refused(tmp_path, text)


def test_a_keyword_the_function_does_not_take(tmp_path: Path) -> None:
    error = refused(tmp_path, COURSE_RUBRIC.replace("alpha = 0.5", "alfa = 0.2"))
    assert ("course.toml: test 'leaky: lecture example': kwargs: leaky() has no parameter "
            "'alfa' (did you mean 'alpha'?); its parameters: x, alpha") in error


def test_too_many_arguments_for_the_forward(tmp_path: Path) -> None:
    text = COURSE_RUBRIC.replace('visibility = "hidden"\ncases = [{ args = [{ shape = [3, 4], '
                        'away_from_zero = 0.1 }] }]',
                        'visibility = "hidden"\nargs = [{ shape = [3, 4] }, 2]')
    assert (f"course.toml: {BACKWARD}: relu_forward(x) cannot be called with these arguments"
            in refused(tmp_path, text))


def test_forgotten_solution_markers(tmp_path: Path) -> None:
    cells = [*COURSE_CELLS[:3], UNMARKED_LEAKY]
    assert ("course.ipynb, cell 4: `leaky` has no ### BEGIN SOLUTION / ### END SOLUTION region, "
            "so the template would hand out its solution") in refused(tmp_path, cells=cells)


def test_a_given_function_needs_no_markers(tmp_path: Path) -> None:
    cells = [*COURSE_CELLS[:3], UNMARKED_LEAKY]
    text = COURSE_RUBRIC.replace('seed = 3', 'seed = 3\ngiven = ["leaky"]')
    done = validate(tmp_path, "course", "--solutions", str(course(tmp_path, text, cells)))
    assert done.returncode == 0, done.stderr


def test_an_unknown_distribution_names_file_test_and_key(tmp_path: Path) -> None:
    text = COURSE_RUBRIC.replace("away_from_zero = 0.1 }] }]\n\n[[tests]]\nname = \"relu_back",
                                 'dist = "gauss" }] }]\n\n[[tests]]\nname = "relu_back')
    assert ("course.toml: test 'relu_forward: output': cases[0].args[0].dist must be one of "
            "normal, uniform, labels, distinct, ties, zeros (got 'gauss')") in refused(tmp_path,
                                                                                      text)


def test_a_solution_left_outside_the_markers_scores_in_the_template(tmp_path: Path) -> None:
    cells = [*COURSE_CELLS[:3], '''def leaky(x, alpha=0.1):
    """Leaky ReLU with slope alpha below 0."""
    if np.ndim(x) == 0:
        ### BEGIN SOLUTION
        return x if x > 0 else alpha * x
        ### END SOLUTION
    out = np.where(x > 0, x, alpha * x)
    return out''']
    error = refused(tmp_path, cells=cells)
    assert ("course.toml: the untouched template of course.ipynb scores 1/1 on test "
            "'leaky: lecture example'") in error
    assert "solution survives in `leaky`" in error


def test_a_reference_without_full_marks(tmp_path: Path) -> None:
    wrong = COURSE_RUBRIC.replace("expected = [-1, 0, 3]", "expected = [-1, 0, 4]")
    error = refused(tmp_path, wrong)
    assert "the reference solution course.ipynb does not get full marks" in error
    assert "'leaky: lecture example' gave it 0/1" in error


@pytest.mark.slow
def test_a_tolerance_set_per_test_reaches_the_comparison(tmp_path: Path) -> None:
    slightly_off = COURSE_RUBRIC.replace("expected = [-1, 0, 3]", "expected = [-1, 0, 3.0001]")
    assert "does not get full marks" in refused(tmp_path, slightly_off)
    tolerant = slightly_off.replace("expected = [-1", "tolerance = 1e-3\nexpected = [-1")
    done = validate(tmp_path, "course", "--solutions", str(course(tmp_path, tolerant)))
    assert done.returncode == 0, done.stderr
    spec = rubric.load("course", solutions_dir=tmp_path / "solutions").tests[2]
    assert spec.options.tolerance == 1e-3 and spec.written == ("tolerance",)


def test_every_problem_of_every_rubric_at_once(tmp_path: Path) -> None:
    text = COURSE_RUBRIC.replace('visibility = "hidden"', 'visiblity = "hidden"').replace(
        'kind = "example"', 'kind = "exmaple"')
    error = refused(tmp_path, text)
    lines = error.splitlines()
    assert lines[0] == "grader: error: 2 problems:"
    assert "unknown key 'visiblity'" in lines[1]
    assert "test 'leaky: lecture example': kind must be one of example, output, gradient, " \
           "mnist, mnist_diagnostic, rules, signature (got 'exmaple') (did you mean " \
           "'example'?)" in lines[2]


def test_the_real_rubrics_pass_the_static_checks() -> None:
    for name in rubric.available():
        assert validate_module.static(rubric.load(name)) == [], name


def test_the_real_rubrics_validate_clean(mnist_files) -> None:
    """With the instructor's own cache (as `make validate`): free when nothing changed."""
    done = subprocess.run([sys.executable, "-m", "grader", "validate"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == [
        "backprop", "convolution"]


def test_the_documented_example_validates_clean(tmp_path: Path) -> None:
    """The example at the top of docs/rubric.md, with the convolution reference."""
    text = DOCS.read_text().split("```toml\n")[1].split("```")[0]
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    shutil.copy(SOLUTIONS / "convolution.ipynb", solutions / "docs.ipynb")
    (solutions / "docs.toml").write_text(text)
    done = validate(tmp_path, "docs", "--solutions", str(solutions))
    assert done.returncode == 0, done.stderr


def test_docs_are_generated_from_the_schema() -> None:
    """docs/rubric.md cannot drift: regenerate it with `python -m grader validate --write-docs`."""
    assert DOCS.read_text() == rubric.reference_markdown()
    documented = set(re.findall(r"^\| `(\w+)` \|", DOCS.read_text(), re.MULTILINE))
    for keys in rubric.SCHEMA.values():
        assert {k.name for k in keys} <= documented
    for used in ("timeout", "upstream", "wrt", "kink", "numeric", "then", "floor", "budget",
                 "epochs", "predict_budget", "threshold", "tolerance", "given"):
        assert used in documented, used


def test_a_cell_magic_in_the_reference_is_refused(tmp_path: Path) -> None:
    """A reference cell behind ``%%time`` would not run: its functions would be missing from
    every comparison, so the instructor is told instead."""
    notebook = nbformat.read(SOLUTIONS / "backprop.ipynb", as_version=4)
    cell = next(c for c in notebook.cells if "def relu_forward" in c.source)
    cell.source = "%%time\n" + cell.source
    path = tmp_path / "backprop.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(GraderError, match="starts with a cell magic \\(%%time\\)"):
        reference.load(path)


# --- every lost point traces to a sentence the student was given --------------------------------


def test_a_test_that_can_take_points_needs_a_requirement(tmp_path: Path) -> None:
    text = COURSE_RUBRIC.replace('requirement = "ReLU: returns (out, cache)."\n', "")
    assert ("course.toml: test 'relu_forward: output': requirement is required: quote the "
            "sentence of the handed-out notebook") in refused(tmp_path, text)


def test_a_requirement_must_be_in_the_template(tmp_path: Path) -> None:
    """A quote of the solution's own code (gone from the template) or a paraphrase is refused;
    line breaks and runs of spaces may differ."""
    text = COURSE_RUBRIC.replace('"Gradient of ReLU."', '"dx = dout * (cache > 0)"')
    error = refused(tmp_path, text)
    assert ("test 'relu_backward: gradient check': requirement 'dx = dout * (cache > 0)' is "
            "not in the template made from course.ipynb") in error
    spaced = COURSE_RUBRIC.replace('"Gradient of ReLU."', '"Gradient   of\\nReLU."')
    done = validate(tmp_path, "course", "--solutions", str(course(tmp_path, spaced)))
    assert done.returncode == 0, done.stderr


def test_side_checks_need_their_sentences(tmp_path: Path) -> None:
    text = COURSE_RUBRIC.replace('"repeatable" = "give the same result twice"\n', "")
    assert ("course.toml: [assignment] side_checks: 'repeatable' is required: a failed side "
            "check of a backward deducts") in refused(tmp_path, text)
    typo = COURSE_RUBRIC.replace('"repeatable" =', '"repeatabel" =')
    assert "unknown side check 'repeatabel' (did you mean 'repeatable'?)" in refused(tmp_path,
                                                                                  typo)
