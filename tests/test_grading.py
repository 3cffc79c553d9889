"""The grading contract: the command line, the result JSON, full marks for the references,
zero for the templates, determinism, the student's self-check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grader.checks import rubric
from grader.grading import grade
from tests.conftest import ROOT, UNIT_KINDS

RESULT_KEYS = {
    "student",
    "assignment",
    "submission",
    "sha256",
    "score",
    "max_score",
    "error",
    "notices",
    "grader_version",
    "duration_s",
    "tests",
}
TEST_KEYS = {
    "name",
    "function",
    "score",
    "max_score",
    "status",
    "message",
    "diagnosis",
    "visibility",
}
VOLATILE = ("duration_s", "timings")


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "grader", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.core
@pytest.mark.parametrize("assignment", [pytest.param("backprop", marks=pytest.mark.slow),
                                        "convolution"])
def test_reference_scores_full_marks(assignment, grade_notebook) -> None:
    result = grade_notebook(ROOT / "solutions" / f"{assignment}.ipynb", assignment)
    failing = [(t.name, t.message) for t in result.tests if t.score != t.max_score]
    assert not failing
    assert result.score == result.max_score == rubric.load(assignment).max_score


@pytest.mark.core
@pytest.mark.parametrize("assignment", ["backprop", "convolution"])
def test_template_scores_zero_with_not_implemented(assignment, grade_notebook) -> None:
    result = grade_notebook(ROOT / "assignments" / f"{assignment}.ipynb", assignment)
    assert result.error is None
    assert result.score == 0
    graded = [t for t in result.tests if t.max_score > 0]
    assert all("not implemented yet" in t.message for t in graded), [t.message for t in graded]


def test_cli_grade_writes_the_result_contract(tmp_path: Path, submission) -> None:
    good = submission("convolution", name="Ada Lovelace (late)")
    out = tmp_path / "out"
    done = cli("grade", "--assignment", "convolution", "--out", str(out), str(good), "--quiet")
    assert done.returncode == 0, done.stderr
    [json_file] = out.glob("*.json")
    assert json_file.stem == grade.student_name(good)
    assert (out / f"{json_file.stem}.html").exists()
    data = json.loads(json_file.read_text())
    assert RESULT_KEYS <= set(data)
    assert data["submission"] == "Ada Lovelace (late).ipynb"
    assert data["score"] == data["max_score"] > 0
    assert all(TEST_KEYS <= set(t) for t in data["tests"])
    assert {t["status"] for t in data["tests"]} <= {"passed", "failed", "error", "timeout"}
    assert {t["visibility"] for t in data["tests"]} == {"public", "hidden"}
    assert (out / "index.html").exists() and (out / "grades.csv").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["grade", "--assignment", "nope", "--out", "x", "submissions"], "unknown assignment"),
        (["grade", "--assignment", "convolution", "--out", "x", "no/such/folder"], "no such file"),
        (["check", "no/such.ipynb", "--assignment", "convolution"], "no such notebook"),
    ],
)
def test_instructor_errors_are_one_line_and_exit_2(args, words, tmp_path: Path) -> None:
    args = [str(tmp_path / "x") if a == "x" else a for a in args]
    done = cli(*args, cwd=ROOT)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], done.stderr
    assert not (tmp_path / "x").exists(), "an instructor error must not leave an output folder"


def test_grading_twice_gives_identical_json(submission, grade_notebook) -> None:
    path = submission(
        "convolution",
        replace={
            "conv2d": """
        def conv2d(x, w, stride=1):
            return np.zeros((2, 2))
        """
        },
    )
    first, second = (grade_notebook(path, "convolution").to_json() for _ in range(2))
    for data in (first, second):
        for key in VOLATILE:
            data.pop(key)
    assert first == second
    assert first["score"] < first["max_score"]


def test_student_name_is_safe_and_distinct() -> None:
    names = [
        grade.student_name(Path(p))
        for p in ["a b.ipynb", "a_b.ipynb", "élève.ipynb", "$(rm -rf x);.ipynb", "../../etc.ipynb"]
    ]
    assert len(set(names)) == len(names)
    assert all(n and all(c.isalnum() or c in "._-" for c in n) for n in names)
    assert names[1] == "a_b"


def test_self_check_runs_public_tests_only(tmp_path: Path, submission) -> None:
    path = submission(
        "convolution",
        replace={
            "conv1d": """
        def conv1d(x, w, stride=1):
            x, w = np.asarray(x, float), np.asarray(w, float)[::-1]
            n = (len(x) - len(w)) // stride + 1
            return np.array([x[i * stride:i * stride + len(w)] @ w for i in range(n)])
        """
        },
    )
    done = cli("check", str(path), "--assignment", "convolution")
    assert done.returncode == 1, done.stderr  # a failing public test: non-zero, for scripts
    public = [t.name for t in rubric.load("convolution").tests if t.visibility == "public"]
    hidden = [t.name for t in rubric.load("convolution").tests if t.visibility == "hidden"]
    assert all(name in done.stdout for name in public)
    assert not any(name in done.stdout for name in hidden)
    assert "FAIL" in done.stdout and "cross-correlation" in done.stdout


@pytest.mark.slow
def test_top_level_experiments_become_notices(submission, grade_notebook) -> None:
    path = submission(
        "convolution",
        extra_cells=[
            "%matplotlib inline\n!pip install torch\n",
            "print(undefined_variable_from_my_laptop)\n",
            "import time\nwhile True:\n    time.sleep(0.01)\n",
        ],
    )
    result = grade_notebook(path, "convolution", kinds=UNIT_KINDS)
    assert result.score == result.max_score
    text = "\n".join(result.notices)
    assert "magics and shell commands were not run" in text
    assert "NameError" in text
    assert "was stopped after" in text


def test_hidden_test_feedback_has_no_source(submission, grade_notebook) -> None:
    result = grade_notebook(submission("convolution", template=True), "convolution")
    hidden = [t for t in result.tests if t.visibility == "hidden"]
    assert hidden
    rubric_text = (ROOT / "solutions" / "convolution.toml").read_text()
    assert all("[[tests]]" not in t.message and "shape = " not in t.message for t in hidden)
    assert "[[tests]]" in rubric_text


NOISY = {
    "numpy": """
        def dense_forward(x, W, b):
            out = x @ W + b
            out = out + np.random.randn(*out.shape) * 1e-3  # no seed anywhere
            return out, (x, W)
        """,
    "random": """
        def dense_forward(x, W, b):
            import random
            out = x @ W + b + random.random() * 1e-3
            return out, (x, W)
        """,
}


@pytest.mark.parametrize("generator", sorted(NOISY))
def test_a_student_without_a_seed_gets_the_same_json_twice(generator, submission,
                                                           grade_notebook) -> None:
    """The global generators are seeded before the cells and before each call."""
    draw = "np.random.rand()" if generator == "numpy" else "__import__('random').random()"
    path = submission("backprop", replace={"dense_forward": NOISY[generator]},
                      extra_cells=[f"print('top-level noise', {draw})"])
    first, second = (grade_notebook(path, "backprop", kinds=UNIT_KINDS).to_json()
                     for _ in range(2))
    for data in (first, second):
        for key in VOLATILE:
            data.pop(key)
    assert first == second
    assert first["score"] < first["max_score"]  # the noise is seen (and scored the same)
