"""The MNIST tests on the real data: threshold and partial credit, the time budget, the test
labels out of reach, and the diagnostic naming the culprit layer."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tests.test_bug_patterns import BUGS

pytestmark = [pytest.mark.slow, pytest.mark.core]

MNIST = ("mnist",)
DIAGNOSTIC = ("mnist_diagnostic",)


def only(result, kind_name: str):
    return next(t for t in result.tests if t.name.startswith(kind_name))


def test_reference_reaches_the_threshold(grade_notebook) -> None:
    result = grade_notebook(ROOT / "solutions" / "backprop.ipynb", "backprop", kinds=MNIST)
    test = only(result, "MNIST: test accuracy")
    assert test.status == "passed" and test.score == test.max_score
    details = test.details
    assert details["accuracy"] >= details["threshold"] == 0.95
    assert details["train_seconds"] < details["budget_seconds"]
    assert sum(map(sum, details["confusion"])) == 10000
    assert all(m["true"] != m["predicted"] for m in details["misclassified"])
    assert len(details["misclassified"][0]["pixels"]) == 28


# A real but weak network: 784-16-10, 60 small steps of SGD on 300 images each (about 86%),
# returned as the assignment asks (a dict of W1, b1, W2, b2) and run by predict.
WEAK_TRAIN = """
    def train_mnist(X, y, seed=0):
        rng = np.random.default_rng(seed)
        model = {"W1": rng.standard_normal((784, 16)).astype(np.float32) * 0.05,
                 "b1": np.zeros(16, np.float32),
                 "W2": rng.standard_normal((16, 10)).astype(np.float32) * 0.3,
                 "b2": np.zeros(10, np.float32)}
        for _ in range(60):
            idx = rng.choice(len(X), 300, replace=False)
            xb, yb = np.asarray(X[idx], np.float32), np.asarray(y[idx])
            h, c1 = dense_forward(xb, model["W1"], model["b1"])
            a, c2 = relu_forward(h)
            logits, c3 = dense_forward(a, model["W2"], model["b2"])
            _, dlogits = softmax_cross_entropy(logits, yb)
            da, dW2, db2 = dense_backward(dlogits, c3)
            _, dW1, db1 = dense_backward(relu_backward(da, c2), c1)
            for name, grad in (("W1", dW1), ("b1", db1), ("W2", dW2), ("b2", db2)):
                model[name] -= 0.5 * grad
        return model
    """
WEAK_PREDICT = """
    def predict(model, X):
        hidden = np.maximum(np.asarray(X, np.float32) @ model["W1"] + model["b1"], 0)
        return np.argmax(hidden @ model["W2"] + model["b2"], axis=1)
    """


def test_weak_network_gets_partial_credit(submission, grade_notebook) -> None:
    path = submission("backprop", replace={"train_mnist": WEAK_TRAIN, "predict": WEAK_PREDICT})
    test = only(grade_notebook(path, "backprop", kinds=MNIST), "MNIST: test accuracy")
    assert test.status == "failed"
    assert 0 < test.score < test.max_score
    assert f"{test.details['accuracy']:.2%}" in test.message
    assert "falls short" in test.message


def test_training_that_never_returns_times_out(submission, grade_notebook) -> None:
    forever = """
        def train_mnist(X, y, seed=0):
            while True:
                pass
        """
    path = submission("backprop", replace={"train_mnist": forever})
    result = grade_notebook(
        path, "backprop", kinds=("output", "gradient", "mnist"), options={"mnist": {"budget": 3}}
    )
    test = only(result, "MNIST: test accuracy")
    assert test.status == "timeout" and test.score == 0
    assert "3 s" in test.message
    others = [t for t in result.tests if t is not test]
    assert others and all(t.score == t.max_score for t in others)


def test_predict_cannot_find_the_test_labels(submission, grade_notebook) -> None:
    snoop = """
        def predict(model, X):
            import os
            roots = ["/data", "/scratch", "/tmp", "/root", "/home", "/work", "/var", "/opt",
                     "/python", "/site", os.path.expanduser("~"), "/"]
            for root in roots:
                for folder, dirs, files in os.walk(root):
                    skip = ("proc", "sys", "usr", "dev") if folder == "/" else ()
                    dirs[:] = [d for d in dirs if d not in skip]
                    for name in files:
                        if "label" in name or "t10k" in name:
                            try:
                                data = np.load(os.path.join(folder, name))
                            except Exception:
                                continue
                            if data.shape == (10000,):
                                return data
            return np.zeros(len(X), dtype=int)
        """
    path = submission("backprop", replace={"predict": snoop})
    test = only(grade_notebook(path, "backprop", kinds=MNIST), "MNIST: test accuracy")
    assert test.details["accuracy"] < 0.2
    assert test.score < test.max_score


def test_class_score_rows_are_accepted_with_a_note(submission, grade_notebook) -> None:
    scores = """
        def predict(model, X):
            h = np.maximum(0, np.asarray(X, np.float32) @ model["W1"] + model["b1"])
            return h @ model["W2"] + model["b2"]
        """
    path = submission("backprop", replace={"predict": scores})
    test = only(grade_notebook(path, "backprop", kinds=MNIST), "MNIST: test accuracy")
    assert test.score == test.max_score
    assert "argmax" in test.message


CULPRITS = {
    "dense_backward": """
        def dense_backward(dout, cache):
            x, W = cache
            return dout @ W.T, -(x.T @ dout), dout.sum(axis=0)
        """,
    **{bug.function: bug.code for bug in BUGS if bug.name in (
        "softmax gradient without 1/N", "relu backward without its mask")},
}


@pytest.mark.parametrize("culprit", sorted(CULPRITS))
def test_diagnostic_names_the_culprit(culprit, submission, grade_notebook) -> None:
    path = submission("backprop", replace={culprit: CULPRITS[culprit]})
    test = only(grade_notebook(path, "backprop", kinds=DIAGNOSTIC), "MNIST: a fixed network")
    assert test.details["culprit"] == culprit, test.details
    assert f"With your `{culprit}` replaced by the reference" in test.diagnosis
    assert test.details["accuracy"] < test.details["threshold"]


def test_diagnostic_passes_the_reference(grade_notebook) -> None:
    result = grade_notebook(ROOT / "solutions" / "backprop.ipynb", "backprop", kinds=DIAGNOSTIC)
    test = only(result, "MNIST: a fixed network")
    assert test.status == "passed" and test.details["culprit"] is None


def test_the_culprit_search_sends_no_reference_code_to_any_sandbox(
    submission, grade_notebook, monkeypatch
) -> None:
    """Every message to every sandbox is recorded while the diagnostic looks for the culprit:
    none carries the reference's relu_backward (the one function this student lacks), and no
    request asks the sandbox to run replacement code."""
    from grader.core import reference
    from grader.run import sandbox

    sent: list[bytes] = []
    original = sandbox.wire.dumps

    def recording(message):
        data = original(message)
        sent.append(data)
        return data

    monkeypatch.setattr(sandbox.wire, "dumps", recording)
    path = submission("backprop", replace={"relu_backward": CULPRITS["relu_backward"]})
    test = only(grade_notebook(path, "backprop", kinds=DIAGNOSTIC), "MNIST: a fixed network")
    assert test.details["culprit"] == "relu_backward", test.details
    secret = reference.load(ROOT / "solutions" / "backprop.ipynb").sources["relu_backward"]
    student = path.read_text()
    lines = [line.strip() for line in secret.splitlines()
             if len(line.strip()) > 12 and line.strip() not in student]
    assert lines, "the reference relu_backward should differ from the student's"
    wire_text = b"".join(sent).decode("utf-8", "replace")
    assert len(sent) > 100  # the short runs' calls were recorded
    assert not any(line in wire_text for line in lines)
    assert '"replace"' not in wire_text


def test_memorised_labels_score_like_guessing(submission, grade_notebook, mnist_files) -> None:
    """predict returning the public test labels in the file's order: the sandbox gets the
    images in a secret order, so the memorised list is right only by chance."""
    import numpy as np

    labels = np.load(mnist_files.test_labels).tolist()
    cheat = {"train_mnist": "def train_mnist(X, y, seed=0):\n    return None",
             "predict": f"def predict(model, X):\n    return np.array({labels})"}
    path = submission("backprop", replace=cheat)
    test = only(grade_notebook(path, "backprop", kinds=MNIST), "MNIST: test accuracy")
    assert test.details["accuracy"] < 0.2, test.details["accuracy"]
    assert test.score == 0


def lookup_cheat(mnist_files) -> dict[str, str]:
    """A notebook that carries a hash of every public test image with its label and looks
    answers up in predict, training nothing."""
    import hashlib

    import numpy as np

    images = np.load(mnist_files.labelled_test_images)
    labels = np.load(mnist_files.test_labels)
    table = {hashlib.sha1(row.tobytes()).hexdigest()[:10]: int(label)
             for row, label in zip(images, labels)}
    return {
        "train_mnist": "def train_mnist(X, y, seed=0):\n    return None",
        "predict": "def predict(model, X):\n"
                   "    import hashlib\n"
                   f"    table = {table!r}\n"
                   "    return np.array([table.get(hashlib.sha1(np.asarray(row, np.float32)"
                   ".tobytes()).hexdigest()[:10], 0) for row in X])",
    }


def test_a_lookup_of_the_public_test_images_finds_none(submission, grade_notebook,
                                                       mnist_files) -> None:
    """Hashes of the public test images with their labels (on main before the disguise: 97%):
    the sandbox's images have their pixels in a secret order, so no hash is found, and the
    page says why such a network scores like guessing."""
    path = submission("backprop", replace=lookup_cheat(mnist_files))
    test = only(grade_notebook(path, "backprop", kinds=MNIST), "MNIST: test accuracy")
    assert test.details["accuracy"] < 0.2, test.details["accuracy"]
    assert test.score == 0
    assert "pixels in a secret order" in test.message, test.message


RANDOM_WEIGHTS = ("{'W1': np.zeros((784, 8), np.float32), 'b1': np.zeros(8, np.float32), "
                  "'W2': np.ones((8, 10), np.float32), 'b2': np.arange(10, dtype=np.float32)}")


def hidden_model(model: str) -> dict[str, str]:
    """train_mnist keeps a nearest-neighbour model in a global and returns ``model``; predict
    ignores the model it is given and answers from the global."""
    return {
        "train_mnist": "def train_mnist(X, y, seed=0):\n"
                       "    global KEPT\n"
                       "    import time\n"
                       "    time.sleep(0.3)\n"
                       "    KEPT = np.asarray(X[:6000], np.float32), np.asarray(y[:6000])\n"
                       f"    return {model}",
        "predict": "def predict(model, X):\n"
                   "    train, labels = KEPT\n"
                   "    X = np.asarray(X, np.float32)\n"
                   "    norms = (train ** 2).sum(axis=1)\n"
                   "    return np.concatenate([labels[np.argmin(norms[None, :] - 2 * X[s:s + 500]"
                   " @ train.T, axis=1)] for s in range(0, len(X), 500)])",
    }


@pytest.mark.parametrize(("model", "says"), [
    (RANDOM_WEIGHTS, "another digit than the network its own trained weights define"),
    ("None", "could not check that `predict` runs the network"),
])
def test_predict_that_ignores_its_model_needs_review(model, says, submission, grade_notebook,
                                                     mnist_files) -> None:
    """A predict that answers from something else than the model train_mnist returned: the
    grader runs the network the returned weights define and finds predict does not follow it
    (or that there are no weights to follow). It scores 0 until an instructor looks."""
    path = submission("backprop", replace=hidden_model(model))
    test = only(grade_notebook(path, "backprop", kinds=MNIST), "MNIST: test accuracy")
    assert 0.85 < test.details["accuracy"] < 0.99, test.details["accuracy"]
    assert test.status == "review" and test.score == 0, test.message
    assert says in test.diagnosis, test.diagnosis


NEAREST_NEIGHBOUR = {
    "train_mnist": """
        def train_mnist(X, y, seed=0):
            return np.asarray(X[:8000], np.float32), np.asarray(y[:8000])
        """,
    "predict": """
        def predict(model, X):
            train, labels = model
            X = np.asarray(X, np.float32)
            norms = (train ** 2).sum(axis=1)
            out = []
            for start in range(0, len(X), 500):
                chunk = X[start:start + 500]
                out.append(labels[np.argmin(norms[None, :] - 2 * chunk @ train.T, axis=1)])
            return np.concatenate(out)
        """,
}


def test_no_training_at_all_needs_review(submission, mnist_files, sandbox_config) -> None:
    """A nearest-neighbour lookup 'trains' in no time and classifies well: not the network the
    practical asks for, so the instructor decides; until then it scores 0. (The time is the
    grader's, measured around the call: a reference of 30 s puts the "too fast" line at
    0.3 s, far above a round trip on a busy machine.)"""
    import dataclasses

    from grader.checks import rubric
    from grader.grading import grade

    loaded = rubric.load("backprop")
    loaded = dataclasses.replace(loaded, tests=tuple(t for t in loaded.tests if t.kind == "mnist"))
    path = submission("backprop", replace=NEAREST_NEIGHBOUR)
    job = grade.Job(path, loaded, sandbox_config, mnist_files,
                    reference_seconds={"train_mnist": 30.0, "predict": 0.05})
    [test] = grade.grade_submission(job).tests
    assert test.details["accuracy"] > 0.85
    assert test.status == "review" and test.score == 0, test.message
    assert "Needs review: training took" in test.diagnosis
    assert "An instructor will look at this result" in test.message


def test_the_overview_lists_results_that_need_review() -> None:
    import dataclasses

    from grader.render.report import render_index
    from tests.test_report import fixture

    result = fixture("full_marks")
    tests = tuple(dataclasses.replace(t, status="review", score=0.0,
                                      diagnosis="Needs review: too good to be true")
                  if t.name == "train_mnist/accuracy" else t for t in result.tests)
    html = render_index([dataclasses.replace(result, tests=tests)], generated="2026-01-01")
    assert "Needs your review (1)" in html and "too good to be true" in html


def test_implausible_accuracy_needs_review() -> None:
    from grader.checks import rubric
    from grader.checks.kinds import mnist as mnist_checks

    [spec] = [t for t in rubric.load("backprop").tests if t.kind == "mnist"]
    assert "above the 99%" in mnist_checks._implausible(spec, 0.995, 30.0)
    assert mnist_checks._implausible(spec, 0.975, 30.0) == ""


def test_the_diagnostic_does_not_train_again_for_the_same_code(
    submission, grade_notebook, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = submission("backprop")
    first = grade_notebook(path, "backprop", kinds=DIAGNOSTIC)
    again = grade_notebook(path, "backprop", kinds=DIAGNOSTIC)
    assert "call:fixed_network" in first.timings
    assert "call:fixed_network" not in again.timings  # remembered, not retrained
    assert first.tests == again.tests


def test_a_model_too_large_to_read_back_is_said_so() -> None:
    """The runtime sends float weights as float32 (all the grader computes in) and refuses,
    in words, an array its answer could not carry: a hidden layer of 6,000 is not a broken
    protocol, and the review says why the weights could not be checked."""
    from types import SimpleNamespace

    import numpy as np

    from grader.checks.kinds import mnist as mnist_checks
    from grader.run.inside.runtime import Runtime

    runtime = Runtime({})
    runtime.stored["model"] = {"W1": np.ones((784, 6000)), "b1": np.zeros(6000),
                               "W2": np.ones((6000, 10))}
    small = runtime.op_fetch({"key": "model", "item": "b1", "timeout": 5})
    assert small["ok"] and small["value"].dtype == np.float32
    answer = runtime.op_fetch({"key": "model", "item": "W1", "timeout": 5})
    assert answer == {"ok": False, "kind": "too_large",
                      "error": "an array of 17 MB, too large to read back"}
    missing = runtime.op_fetch({"key": "model", "item": "b2", "timeout": 5})
    assert not missing["ok"] and missing["kind"] == "exception"

    context = SimpleNamespace(session=SimpleNamespace(request=lambda message, timeout: answer))
    agreement, why = mnist_checks._weights_agreement(context, np.zeros(10000, int))
    assert agreement is None
    assert why == "the model's `W1` is an array of 17 MB, too large to read back"
