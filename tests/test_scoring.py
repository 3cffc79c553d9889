"""The partial-credit policy (``grader.checks.scoring``): credit only from correct values, per
output and per case; a backward's side checks deduct from correct gradients and never earn on their
own. One submission per credit rule, graded in the real sandbox, with its exact scores."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from grader.checks import rubric, scoring
from grader.checks.scoring import CaseVerdict
from grader.grading import grade
from tests.conftest import assert_only_function_loses, grade_here

SIDE_CHECKS = (
    "repeatable: passed; leaves inputs unchanged: passed; zero upstream gives zero: passed"
)

# --- the policy on its own --------------------------------------------------------------------


def test_side_checks_alone_earn_nothing() -> None:
    case = CaseVerdict(
        values={"dx": False, "dW": False},
        side_checks={"repeatable": True, "zero upstream gives zero": True},
    )
    assert case.credit == 0.0
    assert scoring.credit([case, case]) == 0.0


def test_each_correct_value_earns_its_share_of_its_case() -> None:
    cases = [
        CaseVerdict({"loss": True, "dlogits": False}),
        CaseVerdict({"loss": True, "dlogits": True}),
    ]
    assert scoring.credit(cases) == 0.75
    assert scoring.points(2, scoring.credit(cases)) == 1.5


def test_each_failed_side_check_deducts_a_quarter_of_the_earned_credit() -> None:
    correct = {"dx": True, "dW": True, "db": False}
    one = CaseVerdict(correct, {"repeatable": True, "leaves inputs unchanged": False})
    two = CaseVerdict(correct, {"repeatable": False, "leaves inputs unchanged": False})
    assert one.credit == pytest.approx(2 / 3 * 0.75)
    assert two.credit == pytest.approx(2 / 3 * 0.5)
    many = CaseVerdict({"dx": True}, {str(i): False for i in range(5)})
    assert many.credit == 0.0  # never below zero


def test_checks_are_named_with_their_verdicts() -> None:
    cases = [
        CaseVerdict({"dx": False}, {"repeatable": True, "zero upstream gives zero": True}),
        CaseVerdict({"dx": True}, {"repeatable": True, "zero upstream gives zero": False}),
    ]
    assert scoring.named_checks(cases) == (
        "dx: passed in 1 of 2 cases; repeatable: passed; "
        "zero upstream gives zero: passed in 1 of 2 cases"
    )
    assert scoring.tally(cases)[0] == {"name": "dx", "passed": 1, "cases": 2}


@pytest.mark.parametrize(
    "accuracy, expected", [(0.97, 1.0), (0.95, 1.0), (0.725, 0.5), (0.5, 0.0), (0.1, 0.0)]
)
def test_accuracy_credit_is_linear_from_the_floor(accuracy: float, expected: float) -> None:
    assert scoring.accuracy_credit(accuracy, threshold=0.95, floor=0.5) == pytest.approx(expected)


# --- one real submission per credit rule --------------------------------------------------------


@dataclass(frozen=True)
class Credit:
    name: str
    assignment: str
    function: str  # the only function that may lose points
    code: str  # its new definition
    scores: dict[str, float]  # test name -> exact score
    says: tuple[str, ...] = ()  # words every one of those tests' messages must hold


CORRECT_LOSS = """
    def softmax_cross_entropy(logits, y):
        n = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return -log_p[np.arange(n), y].mean(), np.zeros_like(logits)
"""

CREDITS = [
    Credit(
        "backward returning zeros",
        "backprop",
        "dense_backward",
        """
        def dense_backward(dout, cache):
            x, W = cache
            return np.zeros_like(x), np.zeros_like(W), np.zeros(W.shape[1])
        """,
        {"dense_backward: gradient check": 0.0},
        (
            "dx vs reference: failed; dW vs reference: failed; db vs reference: failed; "
            + SIDE_CHECKS,
        ),
    ),
    Credit(
        "sigmoid backward returning zeros",
        "backprop",
        "sigmoid_backward",
        """
        def sigmoid_backward(dout, cache):
            return np.zeros_like(dout)
        """,
        {"sigmoid_backward: gradient check": 0.0},
        ("dx vs reference: failed; " + SIDE_CHECKS, "all zeros"),
    ),
    Credit(
        "backward returning a constant",
        "backprop",
        "relu_backward",
        """
        def relu_backward(dout, cache):
            return np.full(dout.shape, 0.5)
        """,
        {"relu_backward: gradient check": 0.0, "relu_backward: at exactly zero": 0.0},
        ("zero upstream gives zero: failed", "same value (0.5) everywhere"),
    ),
    Credit(
        "relu backward returning its input",
        "backprop",
        "relu_backward",
        """
        def relu_backward(dout, cache):
            return dout
        """,
        {"relu_backward: gradient check": 0.0, "relu_backward: at exactly zero": 0.0},
        ("dx vs reference: failed; " + SIDE_CHECKS,),
    ),
    Credit(
        "sigmoid backward returning its input",
        "backprop",
        "sigmoid_backward",
        """
        def sigmoid_backward(dout, cache):
            return dout
        """,
        {"sigmoid_backward: gradient check": 0.0},
        ("dx vs reference: failed", "`dout` unchanged"),
    ),
    Credit(
        "max-pool backward returning zeros",
        "convolution",
        "max_pool2d_backward",
        """
        def max_pool2d_backward(dout, cache):
            x, size, stride = cache
            return np.zeros(x.shape)
        """,
        {"max_pool2d_backward: gradient check": 0.0, "max_pool2d_backward: tied maxima": 0.0},
        ("dx vs reference: failed; " + SIDE_CHECKS,),
    ),
    Credit(
        "sigmoid backward with the tanh formula",
        "backprop",
        "sigmoid_backward",
        """
        def sigmoid_backward(dout, cache):
            return dout * (1 - cache ** 2)
        """,
        {"sigmoid_backward: gradient check": 0.0},
        ("dx vs reference: failed; " + SIDE_CHECKS,),
    ),
    Credit(
        "softmax with the right loss and a wrong gradient",
        "backprop",
        "softmax_cross_entropy",
        CORRECT_LOSS,
        {
            "softmax_cross_entropy: loss and gradient": 1.0,  # the loss's half of 2 points
            "softmax_cross_entropy: large and shifted logits": 0.5,
        },
        ("loss: passed; dlogits: failed",),
    ),
    Credit(
        "dense backward with a wrong db only",
        "backprop",
        "dense_backward",
        """
        def dense_backward(dout, cache):
            x, W = cache
            return dout @ W.T, x.T @ dout, dout.mean(axis=0)
        """,
        {"dense_backward: gradient check": 2.0},  # dx and dW: two thirds of 3 points
        ("dx vs reference: passed; dW vs reference: passed; db vs reference: failed",),
    ),
    Credit(
        "right gradient, but dout edited in place",
        "backprop",
        "relu_backward",
        """
        def relu_backward(dout, cache):
            dout[cache <= 0] = 0
            return dout
        """,
        # a quarter off the correct gradient's credit: 0.75 × 1.5 and 0.75 × 0.5
        {"relu_backward: gradient check": 1.12, "relu_backward: at exactly zero": 0.38},
        ("dx vs reference: passed; repeatable: passed; leaves inputs unchanged: failed",),
    ),
]


@pytest.mark.parametrize("credit", CREDITS, ids=[c.name for c in CREDITS])
def test_credit_comes_from_correct_values(credit: Credit, submission) -> None:
    path = submission(credit.assignment, replace={credit.function: credit.code})
    result = grade_here(path, credit.assignment)
    assert_only_function_loses(result, {credit.function})
    tests = {t.name: t for t in result.tests if t.function == credit.function}
    assert {name: tests[name].score for name in credit.scores} == credit.scores
    for name in credit.scores:
        text = f"{tests[name].message} {tests[name].diagnosis or ''}"
        missing = [words for words in credit.says if words not in text]
        assert not missing, f"{name}: {missing} not in {text!r}"
        checks = tests[name].details["checks"]
        assert checks and all(isinstance(c.get("name"), str) and c["name"] for c in checks), (
            "every check is named in details")


# --- tanh: a rubric of its own (no course rubric has tanh) -------------------------------------

TANH_RUBRIC = """
[assignment]
title = "tanh"
functions = ["tanh_forward", "tanh_backward"]
seed = 7

[[tests]]
name = "tanh_forward: output"
function = "tanh_forward"
kind = "output"
returns = ["out", "cache"]
outputs = ["out"]
points = 0.5
cases = [{ args = [{ shape = [4, 5] }] }]

[[tests]]
name = "tanh_backward: gradient check"
function = "tanh_backward"
forward = "tanh_forward"
kind = "gradient"
outputs = ["dx"]
points = 2
cases = [{ args = [{ shape = [4, 5] }] }, { args = [{ shape = [3, 2] }] }]
"""

TANH_FORWARD = """
def tanh_forward(x):
    out = np.tanh(x)
    return out, out
"""


def _notebook(path: Path, backward: str) -> Path:
    cells = ["import numpy as np", TANH_FORWARD, textwrap.dedent(backward)]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(notebook, path)
    return path


@pytest.mark.parametrize(
    "backward, score",
    [
        ("def tanh_backward(dout, cache):\n    return dout * (1 - cache ** 2)\n", 2.0),
        ("def tanh_backward(dout, cache):\n    return dout * cache * (1 - cache)\n", 0.0),
        ("def tanh_backward(dout, cache):\n    return dout * (1 - cache)\n", 0.0),
    ],
    ids=["right", "sigmoid's formula", "missing square"],
)
def test_tanh_backward_with_a_wrong_formula_scores_zero(
    backward: str, score: float, tmp_path: Path, sandbox_config
) -> None:
    (tmp_path / "tanh.toml").write_text(TANH_RUBRIC)
    _notebook(
        tmp_path / "tanh.ipynb",
        "def tanh_backward(dout, cache):\n    return dout * (1 - cache ** 2)\n",
    )
    loaded = rubric.load("tanh", solutions_dir=tmp_path)
    student = _notebook(tmp_path / "student.ipynb", backward)
    result = grade.grade_submission(grade.Job(student, loaded, sandbox_config))
    scores = {t.name: t.score for t in result.tests}
    assert scores == {"tanh_forward: output": 0.5, "tanh_backward: gradient check": score}
    backward_test = result.tests[1]
    if score == 0:
        assert backward_test.message == "dx vs reference: failed; " + SIDE_CHECKS + "."
