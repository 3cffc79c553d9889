"""Rubrics are data an instructor writes: mistakes get a message naming the file and the field,
and the lecture's worked examples in the rubrics agree with the reference implementation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from grader import inputs, reference, rubric
from grader.errors import GraderError
from tests.conftest import SOLUTIONS

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
            if test.options.get("then") == "relu":
                got = np.maximum(got, 0)
            np.testing.assert_allclose(got, case.expected, err_msg=test.name)


def test_lecture_pooling_uses_the_true_values_not_the_slide_slip() -> None:
    pool = next(
        t for t in rubric.load("convolution").tests if t.name == "max_pool2d: lecture example"
    )
    assert pool.cases[0].expected[1] == [34, 34, 26]  # the slide shows 34 26 26
