"""The MNIST tests: the student's own network held to an accuracy threshold, and the diagnostic
that trains a fixed network from the student's layer functions and names the culprit.

The training images reach the sandbox as read-only memory-mapped ``.npy`` files; the test
labels never enter it. Accuracy is computed here, in the grader's process.
"""

from __future__ import annotations

import ast
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from grader.checks import scoring
from grader.checks.context import Context, call_failure, describe_value, result
from grader.checks.rubric import TestSpec
from grader.core import budgets, paths
from grader.core.calls import Session
from grader.core.results import TestResult, write_atomic

DIAGNOSTIC_FUNCTIONS = (
    "dense_forward",
    "dense_backward",
    "relu_forward",
    "relu_backward",
    "softmax_cross_entropy",
)
MISCLASSIFIED_SHOWN = 24
CULPRIT_STEPS = 50  # grader.checks.culprit.STEPS (which the self-check does not carry)


def percent(fraction: float) -> str:
    """97.5% as 97.5%, 95% as 95% (``:.0%`` would print 97.5% as 98%)."""
    return f"{round(fraction * 100, 2):g}%"


def _labels(context: Context) -> np.ndarray:
    return np.load(context.mnist.test_labels).astype(np.int64)


def _partial(accuracy: float, spec: TestSpec) -> float:
    """The rubric's threshold and floor, scored by ``grader.checks.scoring``."""
    threshold = float(spec.options.get("threshold", 0.95))
    floor = float(spec.options.get("floor", 0.5))
    return scoring.accuracy_credit(accuracy, threshold=threshold, floor=floor)


def _predictions(value: Any, count: int) -> tuple[np.ndarray | None, str]:
    """The predicted labels, or None with a message; class-score rows are accepted with a note."""
    if not isinstance(value, np.ndarray):
        return (
            None,
            f"`predict` returned {describe_value(value)}; expected an array of {count} labels.",
        )
    if value.ndim == 2 and value.shape == (count, 10):
        return np.argmax(value, axis=1), (
            "`predict` returned class scores of shape "
            f"{value.shape}; the grader took the argmax of each row."
        )
    if value.shape != (count,):
        return (
            None,
            f"`predict` returned shape {value.shape}; expected ({count},), one label per image.",
        )
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        return None, "`predict` returned NaN or inf instead of labels."
    labels = value.astype(np.int64)
    note = ""
    if value.dtype.kind == "f" and not np.array_equal(labels, value):
        return None, "`predict` returned fractional numbers; expected integer labels 0–9."
    if value.dtype.kind not in "iu":
        note = (
            f"`predict` returned {value.dtype} labels; integers are expected (they were converted)."
        )
    return labels, note


def _feedback(context: Context, predicted: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    confusion = np.zeros((10, 10), dtype=np.int64)
    valid = (predicted >= 0) & (predicted < 10)
    np.add.at(confusion, (truth[valid], predicted[valid]), 1)
    wrong = np.flatnonzero(predicted != truth)[:MISCLASSIFIED_SHOWN]
    images = np.load(context.mnist.labelled_test_images, mmap_mode="r")
    return {
        "confusion": confusion.tolist(),
        "misclassified": [
            {
                "index": int(i),
                "true": int(truth[i]),
                "predicted": int(predicted[i]),
                "pixels": np.round(np.asarray(images[i]).reshape(28, 28) * 255)
                .astype(int)
                .tolist(),
            }
            for i in wrong
        ],
    }


def run_mnist(spec: TestSpec, context: Context) -> TestResult:
    """train_mnist on the 60,000 training images under a time budget, then predict."""
    budget = float(spec.options.get("budget", 120.0))
    threshold = float(spec.options.get("threshold", 0.95))
    base = {"threshold": threshold, "budget_seconds": budget}
    train = context.session.call(
        "train_mnist",
        [{"__data__": "train_images"}, {"__data__": "train_labels"}],
        {"seed": int(spec.options.get("seed", 0))},
        timeout=budget,
        store="model",
        reply="none",
    )
    if not train.ok:
        if train.kind == "timeout":
            return result(
                spec,
                0.0,
                f"`train_mnist` was still training after {budget:g} s, the budget"
                f"{budgets.note(spec, 'budget')}, and was stopped. Train for fewer epochs or "
                f"vectorise the batch loop.",
                status="timeout",
                details=base,
            )
        return call_failure(spec, "train_mnist", train, **base)
    labels = _labels(context)
    predict = context.session.call(
        "predict",
        [{"__ref__": "model"}, {"__data__": "test_images"}],
        timeout=float(spec.options.get("predict_budget", 60.0)),
    )
    if not predict.ok:
        return call_failure(spec, "predict", predict, budget_key="predict_budget", **base)
    seen, note = _predictions(predict.value, len(labels))
    timing = {  # (measured by the grader, around each call)
        "train_seconds": round(train.seconds, 2),
        "predict_seconds": round(predict.seconds, 2),
    }
    if seen is None:
        return result(spec, 0.0, note, status="failed", details={**base, **timing})
    predicted = context.mnist.digits(seen)  # back from the disguise: true digits, true order
    accuracy = float(np.mean(predicted == labels))
    reference = (spec.options.get("reference_seconds") or {}).get("train_mnist")
    agreement, why_not = _weights_agreement(context, seen)
    measured = {"accuracy": accuracy, "predict_note": note, "reference_train_seconds": reference,
                "weights_agreement": agreement, "weights_note": why_not,
                "pasted_data": pasted_data(context.session.notebook)}
    return judge(spec, {**base, **timing, **measured, **_feedback(context, predicted, labels)})


def judge(spec: TestSpec, details: dict[str, Any]) -> TestResult:
    """The verdict on a measured accuracy under the rubric's threshold, floor and review rules.
    It reads only ``details`` (what training and predicting measured) and the spec's scoring
    keys, so ``grader.grading.rescore`` re-judges a stored measurement after a threshold change
    without training again, and gets the result a fresh grading would."""
    threshold = float(spec.options.get("threshold", 0.95))
    details = {**details, "threshold": threshold}
    accuracy, seconds = details["accuracy"], details["train_seconds"]
    verdict = "reaches" if accuracy >= threshold else "falls short of"
    message = (
        f"Test accuracy {accuracy:.2%} {verdict} the {percent(threshold)} threshold "
        f"(trained in {seconds:.1f} s of the {details['budget_seconds']:g} s budget)."
    )
    if details.get("predict_note"):
        message += " " + details["predict_note"]
    if accuracy < CHANCE:
        message += " " + AT_CHANCE
    why = (_implausible(spec, accuracy, seconds, details.get("reference_train_seconds"))
           or _not_from_weights(spec, accuracy, details) or _pasted(spec, accuracy, details))
    if why:
        return result(spec, 0.0, message + " " + REVIEW, diagnosis=why, status="review",
                      details=details)
    return result(spec, _partial(accuracy, spec), message, details=details)


REVIEW = ("An instructor will look at this result before it counts: until then it scores 0. "
          "Nothing needs doing on your side if your notebook trains the network honestly.")
CHANCE = 0.2
AT_CHANCE = ("That is about what guessing gets: the network has not learned (does the loss go "
             "down while it trains? the tests above point to the layer). Weights made outside "
             "`train_mnist` score like this too: the grader shows your code the images with "
             "their pixels in a secret order and the digits under other names, as the notebook "
             "says.")
# What a notebook's code may carry as literal data (numbers, strings, bytes) before an MNIST
# result waits for review: the reference notebook carries about 3,000 characters of text (its
# docstrings and messages); a network trained elsewhere, even a tiny one, needs tens of kB.
PASTED_DATA = 20_000


def pasted_data(notebook: Any) -> int:
    """How many characters of literal data the notebook's code carries: strings and bytes
    (docstrings included), and numbers (as written). A network's weights pasted into the
    notebook, or a fingerprint of MNIST to undo the disguise with, are data of this kind; an
    honest notebook has a few kB of it. Cells the grader cannot parse count by their size."""
    total = 0
    for cell in getattr(notebook, "cells", ()):
        try:
            tree = ast.parse(cell.source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            total += len(cell.source)
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
                total += len(node.value)
            elif isinstance(node, ast.Constant) and isinstance(node.value, int | float | complex):
                total += len(repr(node.value)) if isinstance(node.value, int | float) else 8
    return total


def _pasted(spec: TestSpec, accuracy: float, details: dict[str, Any]) -> str:
    """Why a notebook that carries this much literal data waits for review, or "" (also for
    results measured before the check existed)."""
    floor = float(spec.options.get("floor", 0.5))
    size = details.get("pasted_data")
    if not isinstance(size, int) or size <= PASTED_DATA or accuracy <= floor:
        return ""
    return (f"Needs review: your notebook's code carries {size:,} characters of literal data "
            f"(numbers and strings), far more than training needs; weights made elsewhere and "
            f"pasted in do not count, so an instructor will check where the network came from.")


def _implausible(spec: TestSpec, accuracy: float, train_seconds: float,
                 reference: float | None = None) -> str:
    """Why no 784-128-10 network trained in that time reaches that accuracy, or "".

    Two rubric keys: ``review_above`` (default 0.99: MLPs of this size stay near 98% without
    augmentation) and ``review_faster_than`` (default 0.01: a fraction of the reference's own
    training time on this machine, far less than one epoch of its ten)."""
    above = float(spec.options.get("review_above", 0.99))
    if accuracy > above:
        return (f"Needs review: {accuracy:.2%} is above the {percent(above)} that a 784-128-10 "
                f"network trained here can reach.")
    faster = float(spec.options.get("review_faster_than", 0.01))
    floor = float(spec.options.get("floor", 0.5))
    if reference and accuracy > floor and train_seconds < faster * reference:
        return (f"Needs review: training took {train_seconds:.3f} s, under "
                f"{percent(faster)} of the reference's {reference:.1f} s, yet reached "
                f"{accuracy:.2%}; a network cannot learn MNIST that fast.")
    return ""


# The model the assignment asks ``train_mnist`` to return: a dict of these arrays.
WEIGHTS = ("W1", "b1", "W2", "b2")
# An honest ``predict`` runs the network its weights define: it agrees with that network on
# every image but for float rounding at near-ties (the reference: all 10,000).
AGREEMENT = 0.99


def _weights_agreement(context: Context, predicted: np.ndarray) -> tuple[float | None, str]:
    """How often ``predict`` gives the digit that the network its own trained weights define
    gives, that network run here (dense, ReLU, dense, argmax) on the same images (as the
    sandbox has them, and ``predicted`` as it came back); or None and why it could not be run.

    A ``predict`` that looks answers up (hashes of the public test images with their labels,
    carried in the notebook) instead of running the network agrees on about one image in ten,
    whatever the accuracy it reports."""
    weights = {}
    for name in WEIGHTS:
        answer = context.session.request(
            {"op": "fetch", "key": "model", "item": name, "timeout": 10.0}, timeout=10.0)
        value = answer.get("value") if isinstance(answer, dict) and answer.get("ok") else None
        if isinstance(answer, dict) and answer.get("kind") == "too_large":
            return None, f"the model's `{name}` is {answer.get('error')}"
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            return None, f"the model `train_mnist` returned has no array `{name}`"
        weights[name] = value.astype(np.float32)
    w1, b1, w2, b2 = (weights[name] for name in WEIGHTS)
    images = context.mnist.test_images()  # as the sandbox has them, in its order
    if (w1.ndim != 2 or w1.shape[0] != images.shape[1] or b1.shape != w1.shape[1:]
            or w2.shape != (w1.shape[1], 10) or b2.shape != (10,)):
        shapes = ", ".join(f"{n} {weights[n].shape}" for n in WEIGHTS)
        return None, f"the model's arrays do not make a 784-hidden-10 network ({shapes})"
    with np.errstate(all="ignore"):  # a diverged network's NaNs give its own argmax
        own = (np.maximum(np.asarray(images) @ w1 + b1, 0) @ w2 + b2).argmax(axis=1)
    return float(np.mean(own == predicted)), ""


def _not_from_weights(spec: TestSpec, accuracy: float, details: dict[str, Any]) -> str:
    """Why the accuracy cannot be credited to the trained network, or "" (also for results
    measured before the check existed, which have no ``weights_agreement``)."""
    floor = float(spec.options.get("floor", 0.5))
    if "weights_agreement" not in details or accuracy <= floor:
        return ""  # (no credit to hold back below the floor)
    agreement = details["weights_agreement"]
    if agreement is None:
        return (f"Needs review: {details.get('weights_note') or 'the model is not readable'}, "
                f"so the grader could not check that `predict` runs the network that was "
                f"trained. The assignment asks for a dict of {', '.join(WEIGHTS)}.")
    if agreement < AGREEMENT:
        return (f"Needs review: on {1 - agreement:.1%} of the test images `predict` gives "
                f"another digit than the network its own trained weights define; it should "
                f"run dense → ReLU → dense with those weights, then argmax.")
    return ""


def run_diagnostic(spec: TestSpec, context: Context) -> TestResult:
    """Train the fixed network from the student's layers; when it falls short, retrain with one
    function at a time replaced by the reference and name the one that fixes it."""
    threshold = float(spec.options.get("threshold", 0.95))
    stuck = [f for f in DIAGNOSTIC_FUNCTIONS if context.session.stuck(f)]
    if stuck:  # it would only hang again, and wait out the whole budget doing so
        return result(
            spec, 0.0,
            f"Not run: your `{stuck[0]}` had to be stopped in an earlier test (it did not "
            f"finish in time), and the fixed network calls it thousands of times.",
            status="timeout", details={"threshold": threshold, "stuck": stuck},
        )
    labels = _labels(context)
    accuracy, problem = _fixed_network(context.session, spec, labels, context.mnist)
    details: dict[str, Any] = {
        "threshold": threshold,
        "accuracy": accuracy,
        "swaps": [],
        "culprit": None,
    }
    if accuracy is None:
        if problem.startswith("NotImplementedError"):
            return result(
                spec,
                0.0,
                "The grader's fixed network is built from your layer "
                "functions, and they are not implemented yet.",
                status="error",
                details=details,
            )
        return result(
            spec,
            0.0,
            f"The grader's fixed network could not be trained with your layer functions: {problem}",
            status="error",
            details=details,
        )
    if accuracy >= threshold:
        return result(
            spec,
            1.0,
            f"A fixed 784-128-10 network built from your layer functions "
            f"reaches {accuracy:.2%} after {_epochs(spec)}: your layers learn.",
            details=details,
        )
    found, swaps = _find_culprit(spec, context)
    details.update(swaps=swaps, culprit=found)
    message = (
        f"A fixed 784-128-10 network built from your layer functions reaches only "
        f"{accuracy:.2%} after {_epochs(spec)}, below the {percent(threshold)} that correct "
        f"layers reach."
    )
    if found:
        diagnosis = (
            f"With your `{found}` replaced by the reference the network trains exactly as "
            f"correct layers do (the same weights after {CULPRIT_STEPS} batches): the bug is "
            f"there."
        )
    else:
        diagnosis = (
            "No single replacement fixes it: more than one layer function is wrong. "
            "Start with the first failing test above."
        )
    return result(spec, _partial(accuracy, spec), message, diagnosis=diagnosis, details=details)


def _find_culprit(spec: TestSpec, context: Context) -> tuple[str | None, list[dict[str, Any]]]:
    """Retrain a short run with one layer function at a time replaced by the reference (the
    functions that failed a test first). The loop runs in the grader (``grader.checks.culprit``):
    the reference never enters a sandbox. The student's functions run in a second sandbox with no
    data and no output kept, so what they see of the reference's values cannot reach the feedback
    page."""
    from grader.checks import culprit

    order = sorted(DIAGNOSTIC_FUNCTIONS, key=lambda f: context.status.get(f, "passed") == "passed")
    data = (np.load(context.mnist.train_images, mmap_mode="r"),
            np.load(context.mnist.train_labels, mmap_mode="r"))
    with context.session.private() as private:
        return culprit.find(private, context.reference, order, data,
                            seed=int(spec.options.get("seed", 0)),
                            budget=float(spec.options.get("budget", 120.0)))


def _epochs(spec: TestSpec) -> str:
    epochs = int(spec.options.get("epochs", 1))
    return f"{epochs} epoch{'s' * (epochs != 1)}"


def _fixed_network(
    session: Session, spec: TestSpec, labels: np.ndarray, files: Any
) -> tuple[float | None, str]:
    """The fixed network's accuracy, or None and why. The same layer code on the same data
    trains to the same accuracy, so it is remembered per notebook code, settings and grader:
    regrading after a rubric change does not train again."""
    key = _diagnostic_key(session, spec, labels, files.seed)
    remembered = _DIAGNOSTIC_CACHE.get(key)
    if remembered is None:
        remembered = _train_fixed_network(session, spec, labels, files)
        if remembered[0] is not None:  # failures may be the machine's load: not remembered
            _DIAGNOSTIC_CACHE.put(key, remembered)
    return remembered


def _diagnostic_key(session: Session, spec: TestSpec, labels: np.ndarray,
                    disguise_seed: int) -> str:
    from grader import __version__

    code = "\x00".join(cell.source for cell in session.notebook.cells)
    parts = [__version__, code, str(spec.options.get("epochs", 1)),
             str(spec.options.get("seed", 0)), str(len(labels)), str(int(labels.sum())),
             str(disguise_seed)]
    return hashlib.sha256("\x01".join(parts).encode()).hexdigest()[:32]


class _ResultCache:
    """Small JSON files under the user's cache folder; unreadable entries count as absent."""

    def __init__(self, name: str):
        self.name = name

    def _path(self, key: str) -> Path:
        return paths.cache_dir(self.name) / f"{key}.json"

    def get(self, key: str) -> tuple[float | None, str] | None:
        try:
            accuracy, problem = json.loads(self._path(key).read_text())
            return float(accuracy), str(problem)
        except (OSError, ValueError, TypeError):
            return None

    def put(self, key: str, value: tuple[float | None, str]) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(list(value)))
        except OSError:
            pass  # a cache that cannot be written only costs time


_DIAGNOSTIC_CACHE = _ResultCache("diagnostic")


def _train_fixed_network(
    session: Session, spec: TestSpec, labels: np.ndarray, files: Any
) -> tuple[float | None, str]:
    """Train it from the grader's side (``fixed_net.train_remote``) and measure the network
    its weights make, here, on the test images as the sandbox has them."""
    from grader.checks import fixed_net

    began = time.perf_counter()
    images = files.test_images()
    trained = fixed_net.train_remote(
        session, len(files.train_labels_seen()), images.shape[1],
        epochs=int(spec.options.get("epochs", 1)), seed=int(spec.options.get("seed", 0)),
        budget=float(spec.options.get("budget", 120.0)))
    if trained.weights is None:
        if trained.kind == "not_implemented":
            return None, "NotImplementedError"
        if trained.kind in ("timeout", "budget"):
            return None, f"it ran out of time (in your `{trained.failed}`)"
        return None, f"your `{trained.failed}` failed: {trained.error or trained.kind}"
    session.record_time("fixed_network", time.perf_counter() - began)
    seen = fixed_net.predict_digits(trained.weights, images)
    return float(np.mean(files.digits(seen) == labels)), ""
