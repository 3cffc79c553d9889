"""The check engine in milliseconds: ``compare``, ``diagnose``, the engine's own rules and the
culprit search, on tiny inputs and on notebooks run in this process (``grader.run.inprocess``,
trusted code only). No sandbox starts here; the sandboxed path has end-to-end tests of its own
(``test_grading``, ``test_hostile``...)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from grader.checks import compare, culprit, diagnose, engine, kinds, rubric
from grader.checks.context import Context
from grader.core import notebook, reference
from grader.core.errors import GraderError
from grader.run import inprocess
from tests.conftest import assert_only_function_loses, build_notebook, grade_here

# --------------------------------------------------------------------------- compare


def test_equal_arrays_pass_with_no_error() -> None:
    expected = np.arange(6.0).reshape(2, 3)
    found = compare.compare("out", expected.copy(), expected)
    assert found.passed and found.problem == "" and found.relative_error == 0.0
    assert found.tolerance == compare.DEFAULT_TOLERANCE


def test_the_worst_element_is_named_with_the_error() -> None:
    expected = np.zeros((3, 4))
    got = expected.copy()
    got[2, 1] = 0.5
    got[0, 0] = 0.1
    found = compare.compare("out", got, expected)
    assert not found.passed and found.problem == "values"
    assert found.worst_index == (2, 1) and found.relative_error == pytest.approx(1.0)
    assert found.details()["worst_index"] == [2, 1] and "error_map" in found.details()


def test_float32_gets_its_own_tolerance_and_a_note_never_a_penalty() -> None:
    expected = np.linspace(-1, 1, 10)
    got = (expected * (1 + 1e-5)).astype(np.float32)
    found = compare.compare("out", got, expected)
    assert found.passed and found.tolerance == compare.TOLERANCE[np.dtype("float32")]
    assert "float32" in found.note


@pytest.mark.parametrize("got, problem", [
    (np.zeros((3, 2)), "shape"),
    (np.zeros((2, 3, 1)), "shape"),
    (np.array([[np.nan, 0, 0], [0, 0, 0]]), "nonfinite"),
    ([[0, 0, 0], [0, 0, 0]], "type"),
])
def test_what_cannot_be_compared_says_why(got, problem: str) -> None:
    found = compare.compare("out", got, np.zeros((2, 3)))
    assert not found.passed and found.problem == problem


def test_the_right_values_in_an_extra_axis_are_a_shape_problem_with_an_error() -> None:
    expected = np.arange(6.0).reshape(2, 3)
    found = compare.compare("out", expected.reshape(2, 3, 1), expected)
    assert found.problem == "shape" and found.relative_error == 0.0


def test_relative_error_is_scale_free_and_infinite_for_nan() -> None:
    a = np.array([1.0, 2.0, 4.0])
    assert compare.relative_error(a * 1000, a * 1000 + 4) == pytest.approx(
        compare.relative_error(a, a + 0.004))
    assert compare.relative_error(a, np.array([1.0, np.nan, 4.0])) == float("inf")


def test_central_differences_find_a_known_gradient() -> None:
    weights = np.array([[1.0, -2.0], [0.5, 3.0]])
    x = np.random.default_rng(1).standard_normal((2, 2))
    gradient, measured = compare.numerical_gradient(lambda: float(np.sum(weights * x ** 2)), x)
    assert measured.all() and np.allclose(gradient, 2 * weights * x, atol=1e-8)


# --------------------------------------------------------------------------- diagnose


@pytest.fixture(scope="module")
def backprop_ref() -> reference.Reference:
    return reference.load(rubric.load("backprop").solution)


def diagnosis_of(function: str, got: np.ndarray, args: list, ref: reference.Reference,
                 bugs: tuple[str, ...] = (), output_index: int | None = None,
                 upstream: np.ndarray | None = None, call=None) -> str | None:
    call = call or ref[function]
    expected = np.asarray(call(*args) if output_index is None else call(*args)[output_index])
    found = compare.compare("out", got, expected)
    assert not found.passed
    return diagnose.diagnose(diagnose.Context(
        function=function, output="out", comparison=found, args=args, kwargs={},
        reference=call, output_index=output_index, upstream=upstream), bugs)


def test_a_transposed_answer_is_named(backprop_ref) -> None:
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5)
    out = backprop_ref["dense_forward"](x, W, b)[0]
    said = diagnosis_of("dense_forward", out.T.copy(), [x, W, b], backprop_ref, output_index=0)
    assert said and "transposed" in said


def test_a_batch_size_too_many_is_named_with_n(backprop_ref) -> None:
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((8, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    out = backprop_ref["dense_forward"](x, W, b)[0]
    said = diagnosis_of("dense_forward", out * 8, [x, W, b], backprop_ref, output_index=0)
    assert said and "N = 8 times too large" in said


def test_dout_passed_through_is_named(backprop_ref) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5))
    dout = rng.standard_normal((4, 5))

    def backward(x, dout):
        return backprop_ref["relu_backward"](dout, backprop_ref["relu_forward"](x)[1])

    said = diagnosis_of("relu_backward", dout.copy(), [x, dout], backprop_ref, upstream=dout,
                        call=backward)
    assert said and "`dout` unchanged" in said


def test_a_placeholder_of_zeros_is_named(backprop_ref) -> None:
    x = np.random.default_rng(0).standard_normal((4, 5))
    said = diagnosis_of("relu_forward", np.zeros((4, 5)), [x], backprop_ref, output_index=0)
    assert said and "all zeros" in said


def test_a_flipped_kernel_is_named_only_where_asked() -> None:
    ref = reference.load(rubric.load("convolution").solution)
    x, w = np.arange(8.0), np.array([1.0, 2.0, -1.0])
    flipped = ref["conv1d"](x, w[::-1].copy())
    assert "cross-correlation" in diagnosis_of("conv1d", flipped, [x, w], ref, ("flipped_kernel",))
    assert diagnosis_of("conv1d", flipped, [x, w], ref) is None  # (no generic pattern fits)


# --------------------------------------------------------------------------- the engine


def test_the_reference_scores_full_marks_and_the_template_zero(tmp_path: Path) -> None:
    for assignment in ("convolution", "backprop"):
        full = grade_here(build_notebook(tmp_path, assignment), assignment)
        assert full.score == full.max_score > 0, [t.message for t in full.tests if t.score < 1]
        empty = grade_here(build_notebook(tmp_path, assignment, name="t", template=True),
                           assignment)
        assert all(t.score == 0 for t in empty.tests if t.function != "(whole notebook)")


def test_one_wrong_value_of_two_earns_half_of_each_case(tmp_path: Path) -> None:
    path = build_notebook(tmp_path, "backprop", replace={"softmax_cross_entropy": """
def softmax_cross_entropy(logits, y):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(y)), y].mean(), np.zeros_like(logits)
"""})
    result = grade_here(path, "backprop")
    assert_only_function_loses(result, {"softmax_cross_entropy"})
    test = next(t for t in result.tests if t.name == "softmax_cross_entropy: loss and gradient")
    assert test.score == test.max_score / 2 and "loss: passed; dlogits: failed" in test.message


def test_a_forbidden_shortcut_zeroes_that_function_alone(tmp_path: Path) -> None:
    path = build_notebook(tmp_path, "convolution", replace={"conv1d": """
def conv1d(x, w, stride=1):
    return np.correlate(np.asarray(x, float), np.asarray(w, float), "valid")[::stride]
"""})
    result = grade_here(path, "convolution")
    assert_only_function_loses(result, {"conv1d"})
    lost = [t for t in result.tests if t.score < t.max_score]
    assert lost and all(t.diagnosis == "forbidden shortcut" for t in lost)
    rules = next(t for t in result.tests if t.function == "(whole notebook)")
    assert rules.status == "failed" and "numpy.correlate" in rules.details["uses"]


def test_code_the_scan_cannot_read_waits_for_review_with_what_it_would_earn(
        tmp_path: Path) -> None:
    path = build_notebook(tmp_path, "convolution", replace={"conv1d": """
def conv1d(x, w, stride=1):
    x, w = np.asarray(x, float), np.asarray(w, float)
    slide = getattr(np.lib.stride_tricks, "sliding_" + "window_view")
    return (slide(x, len(w)) @ w)[::stride]
"""})
    result = grade_here(path, "convolution")
    held = [t for t in result.tests if t.function == "conv1d" and t.max_score]
    assert held and all(t.status == "review" and t.score == 0 for t in held)
    assert all(t.details["would_earn"] == t.max_score for t in held)


def test_tests_after_the_time_runs_out_are_not_run(tmp_path: Path) -> None:
    loaded = rubric.load("convolution")
    read = notebook.read(build_notebook(tmp_path, "convolution"))
    with inprocess.session(read, deadline=time.monotonic() + 3600) as session:
        session.deadline = time.monotonic() - 1  # (spent by the cells, say)
        context = Context(session=session, rubric=loaded,
                          reference=reference.load(loaded.solution), forbidden={},
                          total_budget="120 s (the cap)")
        results = engine.run(context)
    assert all(r.status == "timeout" and r.message.startswith("Not run") for r in results)


def test_the_graders_fault_on_one_submission_is_that_tests_review(
        tmp_path: Path, monkeypatch) -> None:
    def broken(spec, context):
        raise ValueError("a shape nothing expects")

    monkeypatch.setattr(kinds.get("example"), "run", broken)
    loaded = rubric.load("convolution")
    result = grade_here(build_notebook(tmp_path, "convolution"), "convolution")
    examples = [t for t, spec in zip(result.tests, loaded.tests) if spec.kind == "example"]
    assert examples and all(t.status == "review" and "a shape nothing expects" in t.message
                            and "grader_fault" in t.details for t in examples)
    assert all(t.score == t.max_score for t in result.tests if t not in examples)


def test_an_instructors_mistake_still_stops_the_batch(tmp_path: Path, monkeypatch) -> None:
    def misconfigured(spec, context):
        raise GraderError("a rubric the grader cannot use")

    monkeypatch.setattr(kinds.get("output"), "run", misconfigured)
    with pytest.raises(GraderError, match="cannot use"):
        grade_here(build_notebook(tmp_path, "convolution"), "convolution")


def test_a_missing_function_and_an_exception_read_as_such(tmp_path: Path) -> None:
    path = build_notebook(tmp_path, "backprop", replace={
        "relu_forward": "def relu_forward_renamed(x):\n    return x, x\n",
        "dense_forward": "def dense_forward(x, W, b):\n    raise KeyError('W')\n"})
    result = grade_here(path, "backprop")
    relu = next(t for t in result.tests if t.function == "relu_forward")
    dense = next(t for t in result.tests if t.function == "dense_forward")
    assert relu.status == "error" and "is not defined in your notebook" in relu.message
    assert dense.status == "error" and "raised KeyError: 'W'" in dense.message


# --------------------------------------------------------------------------- the culprit search


ORDER = ["dense_forward", "relu_forward", "dense_backward", "relu_backward",
         "softmax_cross_entropy"]


@pytest.fixture
def short_runs(monkeypatch) -> None:
    """Five batches instead of fifty: the search's logic is the same, and so is what a bug
    does to the weights."""
    monkeypatch.setattr(culprit, "STEPS", 5)


def small_mnist(rows: int = 64 * 50) -> tuple[np.ndarray, np.ndarray]:
    """Stand-in training data: the search compares weights, not accuracy, so any will do."""
    rng = np.random.default_rng(3)
    return rng.random((rows, 784), dtype=np.float32), rng.integers(0, 10, rows).astype(np.uint8)


def tiny_notebook(tmp_path: Path, **replace: str) -> notebook.Notebook:
    return notebook.read(build_notebook(tmp_path, "backprop", replace=replace))


def test_the_culprit_is_the_one_function_whose_swap_trains_like_the_reference(
        tmp_path: Path, backprop_ref, short_runs) -> None:
    read = tiny_notebook(tmp_path, relu_backward="""
def relu_backward(dout, cache):
    return dout * 1.0
""")
    with inprocess.session(read) as session, session.private() as private:
        found, swaps = culprit.find(private, backprop_ref, ORDER, small_mnist(), seed=0,
                                    budget=60)
    assert found == "relu_backward"
    assert [s["fixes"] for s in swaps] == [False, False, False, True]
    assert all(s["difference"] > culprit.TOLERANCE for s in swaps[:3])


def test_no_single_swap_fixes_two_wrong_layers(tmp_path: Path, backprop_ref,
                                               short_runs) -> None:
    read = tiny_notebook(tmp_path, relu_backward="""
def relu_backward(dout, cache):
    return dout * 1.0
""", dense_backward="""
def dense_backward(dout, cache):
    x, W = cache
    return dout @ W.T, x.T @ dout / len(x), dout.sum(axis=0)
""")
    with inprocess.session(read) as session, session.private() as private:
        found, swaps = culprit.find(private, backprop_ref, ORDER, small_mnist(), seed=0,
                                    budget=60)
    assert found is None and [s["fixes"] for s in swaps] == [False] * 5


def test_a_layer_that_raises_fails_its_swap_only(tmp_path: Path, backprop_ref,
                                                 short_runs) -> None:
    read = tiny_notebook(tmp_path, relu_forward="""
def relu_forward(x):
    raise ValueError("not yet")
""")
    with inprocess.session(read) as session, session.private() as private:
        found, swaps = culprit.find(private, backprop_ref, ORDER, small_mnist(), seed=0,
                                    budget=60)
    assert found == "relu_forward" and swaps[0]["difference"] is None


# --------------------------------------------------------------------------- the seam itself


def test_the_in_process_session_runs_cells_as_the_sandbox_does(tmp_path: Path) -> None:
    notebook_path = tmp_path / "tiny.ipynb"
    made = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import numpy as np\ndef double(x):\n    return 2 * x\n"),
        nbformat.v4.new_code_cell("print('hello')\nraise RuntimeError('a broken demo')"),
        nbformat.v4.new_code_cell("def later():\n    return 1\n")])
    nbformat.write(made, notebook_path)
    with inprocess.session(notebook.read(notebook_path)) as session:
        doubled = session.call("double", [np.arange(3.0)], timeout=5)
        missing = session.call("nowhere", [], timeout=5)
        later = session.call("later", [], timeout=5)
    assert doubled.ok and np.array_equal(doubled.value, [0, 2, 4])
    assert not missing.ok and missing.kind == "missing" and later.ok
    assert "hello" in session.output()
    assert any("a broken demo" in n for n in session.notices), session.notices


def test_the_engine_reaches_no_sandbox() -> None:
    """What the engine is given is a ``grader.core.calls.Session``: the in-process one is one."""
    assert dataclasses.is_dataclass(inprocess.InProcessSession)
    assert not [m for m in ("grader.run.sandbox", "grader.run.session")
                if m in engine.__dict__.values()]
