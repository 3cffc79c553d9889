"""The smallest input that shows the bug (``grader.checks.counterexample``): a fixed, small list of
fresh inputs per test, tried through the session, the first disagreement shown; bounded in
calls, the same for every student, and carried by the self-check."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grader.checks import counterexample, expectations, rubric
from grader.checks.context import Context
from grader.core import reference
from grader.core.calls import CallOutcome
from grader.distribute import selfcheck
from tests.conftest import UNIT_KINDS, build_notebook
from tests.test_bug_patterns import BUGS

SEARCHED = [(name, spec.name, number)
            for name in ("backprop", "convolution")
            for spec in rubric.load(name).tests if spec.kind in ("output", "gradient")
            for number in range(len(spec.cases))]


@pytest.fixture(scope="module")
def loaded() -> dict[str, tuple[Any, Any]]:
    return {name: (rubric.load(name), reference.load(rubric.load(name).solution))
            for name in ("backprop", "convolution")}


@pytest.mark.parametrize("assignment, test, number", SEARCHED)
def test_candidates_are_small_fresh_and_the_same_every_time(loaded, assignment: str,
                                                            test: str, number: int) -> None:
    spec_rubric, ref = loaded[assignment]
    spec = next(t for t in spec_rubric.tests if t.name == test)
    found = counterexample.candidates(spec, spec_rubric, ref, number)
    if getattr(spec.options, "kink", None):
        assert found == []  # (any subgradient is right there: no single answer to show)
        return
    assert 1 <= len(found) <= counterexample.MAX_TRIES
    args, _ = expectations.case_inputs(spec, spec_rubric, number)
    for candidate in found:
        numbers = sum(a.size for a in candidate.args if isinstance(a, np.ndarray))
        assert numbers <= counterexample.MAX_NUMBERS
        assert all(np.all(np.isfinite(e)) and e.size for e in candidate.expected)
        assert not any(isinstance(a, np.ndarray) and a.shape == b.shape and np.array_equal(a, b)
                       for a, b in zip(candidate.args, args))  # never the test's own input
    ref.memo.clear()
    again = counterexample.candidates(spec, spec_rubric, ref, number)
    assert [c.same_input(d) for c, d in zip(found, again)] == [True] * len(found)


class Counting:
    """A session whose every call returns zeros of the right kind, counting the calls."""

    out_of_time = False

    def __init__(self) -> None:
        self.calls = 0

    def call(self, function: str, args: list, kwargs: dict | None = None, **_: Any
             ) -> CallOutcome:
        self.calls += 1
        return CallOutcome(True, value=[np.zeros(1)] * 3)


def test_the_search_is_bounded_in_calls(loaded) -> None:
    """A function that is wrong everywhere in a way that never compares (the wrong shape every
    time) costs at most MAX_TRIES calls of it."""
    spec_rubric, ref = loaded["backprop"]
    spec = next(t for t in spec_rubric.tests if t.name == "dense_forward: output")
    session = Counting()
    context = Context(session=session, rubric=spec_rubric, reference=ref, forbidden={})
    found = counterexample.search(spec, context, 0, lambda c: [session.call("x", [])] and None)
    tried = counterexample.candidates(spec, spec_rubric, ref, 0)
    assert found is None and session.calls == len(tried) <= counterexample.MAX_TRIES


def test_labels_shrink_with_their_scores_class_axis(loaded) -> None:
    """A labels input's class count is its scores' class axis, a dimension of theirs alone
    (keyed by array and axis, not by size): the labels shrink with it, so every draw is an
    input the reference takes and none is thrown away."""
    spec_rubric, ref = loaded["backprop"]
    spec = next(t for t in spec_rubric.tests
                if t.name == "softmax_cross_entropy: loss and gradient")
    args, kwargs = expectations.case_inputs(spec, spec_rubric, 0)
    assert [a.shape for a in args] == [(5, 4), (5,)]  # scores, and labels of 4 classes
    choice = {("size", 5): 3, (0, 1): 2}  # 3 rows of 2 classes
    for seed in range(20):
        made = counterexample._candidate(spec, ref, spec.cases[0], args, kwargs, choice,
                                         np.random.default_rng(seed), False)
        assert made is not None
        scores, labels = made.args
        assert scores.shape == (3, 2) and labels.shape == (3,) and labels.max() < 2
    # and never one class: every loss and gradient would be 0, which shows no bug
    found = counterexample.candidates(spec, spec_rubric, ref, 0)
    assert len(found) == counterexample.MAX_SMALL
    assert all(c.args[0].shape[1] >= 2 and c.args[1].max() < c.args[0].shape[1] for c in found)


BY_NAME = {bug.name: bug for bug in BUGS}


def array_numbers(inputs: str) -> int:
    """How many numbers the arrays of a counterexample's inputs hold (not its keywords)."""
    rows = re.findall(r"\[[^\[\]]*\]", inputs)  # the arrays' innermost lists
    return sum(len(re.findall(r"-?\d+(?:\.\d+)?", row)) for row in rows)


@pytest.mark.slow
@pytest.mark.parametrize("bug, test, shows", [
    ("dense backward with a flipped sign", "dense_backward: gradient check", "dx"),
    ("softmax gradient without 1/N", "softmax_cross_entropy: loss and gradient", "dlogits"),
    ("conv1d flips the kernel", "conv1d: random sizes and strides", "out"),
    ("conv1d ignores the stride", "conv1d: random sizes and strides", "out"),
    ("max pooling that averages", "max_pool2d: random sizes, overlapping windows", "out"),
    ("conv2d_forward ignores the padding",
     "conv2d_forward: batches, channels, stride and padding", "out"),
])
def test_a_failing_test_shows_a_counterexample_of_a_dozen_numbers(
        bug: str, test: str, shows: str, submission, grade_notebook) -> None:
    found = BY_NAME[bug]
    path = submission(found.assignment, replace={found.function: found.code})
    result = grade_notebook(path, found.assignment, kinds=UNIT_KINDS)
    failed = next(t for t in result.tests if t.name == test)
    shown = failed.details["counterexample"]
    assert shown["output"] == shows and shown["expected"] != shown["got"]
    assert not shown["large"]
    assert array_numbers(shown["inputs"]) <= 16, shown["inputs"]
    assert "Smallest failing input: " in failed.diagnosis
    assert f"Expected {shows} = " in failed.diagnosis and ", yours " in failed.diagnosis


@pytest.mark.slow
def test_a_bug_only_large_values_show_says_so(submission, grade_notebook) -> None:
    """Softmax without the shift is right on small logits: the smallest failing input is one
    with logits as large as the test's, and the page says no small integers show it."""
    found = BY_NAME["softmax that overflows"]
    path = submission("backprop", replace={found.function: found.code})
    result = grade_notebook(path, "backprop", kinds=UNIT_KINDS)
    failed = next(t for t in result.tests if t.name.startswith("softmax_cross_entropy: large"))
    assert failed.details["counterexample"]["large"]
    assert "no small integers show it" in failed.diagnosis


@pytest.mark.slow
def test_the_self_check_shows_its_own_counterexample(tmp_path: Path) -> None:
    """The checker carries the reference's answers to its own candidates (it has no reference
    code), so a student sees a counterexample before submitting."""
    pyz = selfcheck.export("backprop", tmp_path / "check.pyz")
    found = BY_NAME["dense backward with a flipped sign"]
    path = build_notebook(tmp_path, "backprop", replace={found.function: found.code})
    done = subprocess.run([sys.executable, str(pyz), str(path), "--json"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    tests = {t["name"]: t for t in json.loads(done.stdout)["tests"]}
    failed = tests["dense_backward: gradient check"]
    assert "Smallest failing input: " in failed["diagnosis"], failed["diagnosis"]


@pytest.mark.slow
def test_the_self_check_quotes_the_notebooks_sentence(tmp_path: Path) -> None:
    """A failing test in the checker's report says what the notebook asked, and its
    counterexample, on a terminal as on the page."""
    pyz = selfcheck.export("backprop", tmp_path / "check.pyz")
    found = BY_NAME["dense backward with a flipped sign"]
    path = build_notebook(tmp_path, "backprop", replace={found.function: found.code})
    done = subprocess.run([sys.executable, str(pyz), str(path)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    text = " ".join(done.stdout.split())
    assert ("the notebook asks: “Backward pass of a dense layer: returns (dx, dW, db) for the "
            "upstream gradient dout.”") in text
    assert "Smallest failing input: x = " in text


EXAMPLES = sorted((Path(__file__).parent.parent / "submissions").glob("*/*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=[f"{p.parent.name}/{p.stem}" for p in EXAMPLES])
def test_every_failing_test_of_the_examples_shows_a_counterexample(path: Path,
                                                                   grade_notebook) -> None:
    """Where one exists: every output or gradient test of the example submissions that lost
    points on its values (not a call that failed, not a forbidden shortcut, not a kink where
    any subgradient is right) shows one, of at most about a dozen numbers (17 for a pooling
    window that overlaps its neighbour)."""
    result = grade_notebook(path, path.parent.name, kinds=("output", "gradient"))
    for test in result.tests:
        spec = next(t for t in rubric.load(path.parent.name).tests if t.name == test.name)
        wrong_values = test.status == "failed" and test.diagnosis != "forbidden shortcut" and any(
            not o.get("passed", True) for o in test.details.get("outputs", []))
        if not wrong_values or getattr(spec.options, "kink", None):
            continue
        shown = test.details.get("counterexample")
        assert shown, f"{test.name}: no counterexample ({test.diagnosis})"
        assert array_numbers(shown["inputs"]) <= 17, shown["inputs"]
