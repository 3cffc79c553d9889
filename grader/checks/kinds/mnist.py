"""``mnist`` tests: the student's own network, trained by their ``train_mnist`` on the 60,000
training images within a time budget, then their ``predict`` on the 10,000 test images, held to
an accuracy threshold.

The training images reach the sandbox as read-only memory-mapped ``.npy`` files, disguised per
submission (``grader.run.mnist``); the test labels never enter it. Accuracy is computed here,
in the grader's process, and so is whether the network that ``predict`` runs is the one that
was trained (``_weights_agreement``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np

from grader.checks import scoring
from grader.checks.context import Context, call_failure, describe_value, machine_busy, result
from grader.checks.kinds.base import Kind, Options, key, options_of
from grader.checks.kinds.called import BUDGET_TYPE
from grader.core import budgets, schema
from grader.core.results import TestResult

if TYPE_CHECKING:
    from grader.checks.spec import TestSpec

MISCLASSIFIED_SHOWN = 24
# The keys' defaults, where the rubric does not set them:
THRESHOLD = 0.95  # the accuracy that earns full marks
FLOOR = 0.5  # the accuracy that earns nothing; credit grows linearly up to the threshold
TRAIN_BUDGET = 120.0  # seconds for train_mnist
PREDICT_BUDGET = 60.0  # seconds for predict
REVIEW_ABOVE = 0.99  # a 784-128-10 network trained here stays near 98% without augmentation
REVIEW_FASTER_THAN = 0.01  # of the reference's own training time: far less than one epoch
CLASSES = 10  # the digits
FETCH_TIMEOUT = 10.0  # seconds to fetch one of the trained model's arrays


def _budget(value: Any, where: str) -> budgets.Budget:
    return budgets.parse(value, where)


def threshold_key(meaning: str) -> Any:
    return key(THRESHOLD, "number in [0, 1]", meaning, schema.number(0, 1))


def budget_key(meaning: str) -> Any:
    return key(TRAIN_BUDGET, BUDGET_TYPE, meaning, _budget)


def seed_key() -> Any:
    return key(0, "integer ≥ 0", "Passed to `train_mnist(seed=...)` and the fixed network.",
               schema.number(0, integer=True))


@dataclass(frozen=True)
class MnistOptions(Options):
    needs_mnist = True
    budgets_follow = {"budget": "train_mnist", "predict_budget": "predict"}

    threshold: float = threshold_key("The test accuracy that earns full marks.")
    floor: float = key(FLOOR, "number in [0, 1]",
                       "The accuracy that earns nothing; marks grow linearly from `floor` to "
                       "`threshold`.", schema.number(0, 1))
    budget: budgets.Budget = budget_key(
        "Seconds for the student's `train_mnist`; relative budgets follow the reference's own "
        "training time.")
    predict_budget: budgets.Budget = key(
        PREDICT_BUDGET, BUDGET_TYPE, "Seconds for the student's `predict` on the 10,000 test "
        "images.", _budget)
    seed: int = seed_key()
    review_above: float = key(
        REVIEW_ABOVE, "number in [0, 1]",
        "An accuracy above it waits for review: a 784-128-10 network trained here stays near "
        "98% without augmentation.", schema.number(0, 1))
    review_faster_than: float = key(
        REVIEW_FASTER_THAN, "number in [0, 1]",
        "Training faster than this fraction of the reference's own time on the grading machine, "
        "yet above `floor`, waits for review: a network cannot learn MNIST that fast.",
        schema.number(0, 1))



def _options(spec: TestSpec) -> MnistOptions:
    return options_of(spec, MnistOptions)

class MnistDetails(TypedDict):
    """What training and predicting measured (``judge`` reads nothing else), and what the page
    shows of it."""

    threshold: float
    budget_seconds: float
    train_seconds: NotRequired[float]
    predict_seconds: NotRequired[float]
    accuracy: NotRequired[float]
    predict_note: NotRequired[str]
    reference_train_seconds: NotRequired[float | None]
    weights_agreement: NotRequired[float | None]
    weights_note: NotRequired[str]
    pasted_data: NotRequired[int]
    confusion: NotRequired[list[list[int]]]
    misclassified: NotRequired[list[dict[str, Any]]]


class Mnist(Kind):
    name = "mnist"
    meaning = "the student's network trained on MNIST."
    options = MnistOptions
    guarded = False  # (the network is judged as a whole: the rules test finds shortcuts)
    exported = False  # (the self-check has no MNIST and minutes of training to spare)
    scoring_options = ("threshold", "floor", "review_above", "review_faster_than")

    def cross_check(self, spec: TestSpec, *, where: str, functions: tuple[str, ...],
                    problems: schema.Problems) -> None:
        super().cross_check(spec, where=where, functions=functions, problems=problems)
        if "predict" not in functions:
            problems.add(f"{where}: an mnist test calls predict after train_mnist: add "
                         f"\"predict\" to [assignment].functions")
        floor, threshold = _options(spec).floor, _options(spec).threshold
        if {"floor", "threshold"} <= set(spec.written) and floor > threshold:
            problems.add(f"{where}: floor ({floor:g}) must not exceed threshold "
                         f"({threshold:g})")

    def run(self, spec: TestSpec, context: Context) -> TestResult:
        return run_mnist(spec, context)

    def rescore(self, spec: TestSpec, observed: TestResult) -> TestResult:
        """A stored measurement judged again under the rubric's threshold, floor and review
        rules, without training again."""
        details = dict(observed.details)
        if "threshold" in details:
            details["threshold"] = _options(spec).threshold
            if "accuracy" in details and observed.status not in ("error", "timeout"):
                return judge(spec, details)
        assert observed.fraction is not None  # (``rescore`` checked it)
        return result(spec, observed.fraction, observed.message, diagnosis=observed.diagnosis,
                      status=observed.status, details=details)


def percent(fraction: float) -> str:
    """97.5% as 97.5%, 95% as 95% (``:.0%`` would print 97.5% as 98%)."""
    return f"{round(fraction * 100, 2):g}%"


def labels_of(context: Context) -> np.ndarray:
    """The test images' true digits (they never enter a sandbox)."""
    labels: np.ndarray = np.load(context.mnist.test_labels).astype(np.int64)
    return labels


def partial(accuracy: float, threshold: float, floor: float) -> float:
    """The rubric's threshold and floor, scored by ``grader.checks.scoring``."""
    return scoring.accuracy_credit(accuracy, threshold=threshold, floor=floor)


def _predictions(value: Any, count: int) -> tuple[np.ndarray | None, str]:
    """The predicted labels, or None with a message; class-score rows are accepted with a note."""
    if not isinstance(value, np.ndarray):
        return (
            None,
            f"`predict` returned {describe_value(value)}; expected an array of {count} labels.",
        )
    if value.ndim == 2 and value.shape == (count, CLASSES):
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
    confusion = np.zeros((CLASSES, CLASSES), dtype=np.int64)
    valid = (predicted >= 0) & (predicted < CLASSES)
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
    budget = budgets.seconds(_options(spec).budget)
    threshold = _options(spec).threshold
    base: dict[str, Any] = {"threshold": threshold, "budget_seconds": budget}
    train = context.session.call(
        "train_mnist",
        [{"__data__": "train_images"}, {"__data__": "train_labels"}],
        {"seed": _options(spec).seed},
        timeout=budget,
        store="model",
        reply="none",
    )
    if not train.ok:
        if train.busy is not None:
            return machine_busy(spec, "train_mnist", train.busy)
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
    labels = labels_of(context)
    predict = context.session.call(
        "predict",
        [{"__ref__": "model"}, {"__data__": "test_images"}],
        timeout=budgets.seconds(_options(spec).predict_budget),
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
    reference = (spec.reference_seconds or {}).get("train_mnist")
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
    threshold = _options(spec).threshold
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
    return result(spec, partial(accuracy, threshold, _options(spec).floor), message,
                  details=details)


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
    floor = _options(spec).floor
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
    above = _options(spec).review_above
    if accuracy > above:
        return (f"Needs review: {accuracy:.2%} is above the {percent(above)} that a 784-128-10 "
                f"network trained here can reach.")
    faster = _options(spec).review_faster_than
    floor = _options(spec).floor
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
            {"op": "fetch", "key": "model", "item": name, "timeout": FETCH_TIMEOUT},
            timeout=FETCH_TIMEOUT)
        value = answer.get("value") if isinstance(answer, dict) and answer.get("ok") else None
        if isinstance(answer, dict) and answer.get("kind") == "too_large":
            return None, f"the model's `{name}` is {answer.get('error')}"
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            return None, f"the model `train_mnist` returned has no array `{name}`"
        weights[name] = value.astype(np.float32)
    w1, b1, w2, b2 = (weights[name] for name in WEIGHTS)
    images = context.mnist.test_images()  # as the sandbox has them, in its order
    if (w1.ndim != 2 or w1.shape[0] != images.shape[1] or b1.shape != w1.shape[1:]
            or w2.shape != (w1.shape[1], CLASSES) or b2.shape != (CLASSES,)):
        shapes = ", ".join(f"{n} {weights[n].shape}" for n in WEIGHTS)
        return None, f"the model's arrays do not make a 784-hidden-10 network ({shapes})"
    with np.errstate(all="ignore"):  # a diverged network's NaNs give its own argmax
        own = (np.maximum(np.asarray(images) @ w1 + b1, 0) @ w2 + b2).argmax(axis=1)
    return float(np.mean(own == predicted)), ""


def _not_from_weights(spec: TestSpec, accuracy: float, details: dict[str, Any]) -> str:
    """Why the accuracy cannot be credited to the trained network, or "" (also for results
    measured before the check existed, which have no ``weights_agreement``)."""
    floor = _options(spec).floor
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


