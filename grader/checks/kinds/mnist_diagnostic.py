"""``mnist_diagnostic`` tests: a fixed 784-128-10 network trained from the student's layer
functions, and when it falls short, the culprit named: the one function whose replacement by
the reference makes it train as correct layers do.

The training loop runs in the grader (``grader.checks.fixed_net``): the student's layer
functions are called one at a time, the weights read back and the network they make measured
here. The culprit search (``grader.checks.culprit``) runs the reference in the grader's
process and the student's functions in a second session with no data and no output kept.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from grader.checks.context import Context, MachineBusy, result
from grader.checks.kinds.base import Kind, Options, key, options_of
from grader.checks.kinds.mnist import (
    FLOOR,
    budget_key,
    labels_of,
    partial,
    percent,
    seed_key,
    threshold_key,
)
from grader.core import budgets, paths, schema
from grader.core.calls import Session
from grader.core.results import TestResult, write_atomic

if TYPE_CHECKING:
    from grader.checks.spec import TestSpec

DIAGNOSTIC_FUNCTIONS = (
    "dense_forward",
    "dense_backward",
    "relu_forward",
    "relu_backward",
    "softmax_cross_entropy",
)
CULPRIT_STEPS = 50  # grader.checks.culprit.STEPS (which the self-check does not carry)
EPOCHS = 1  # of the fixed network's training, unless the rubric says otherwise


@dataclass(frozen=True)
class DiagnosticOptions(Options):
    needs_mnist = True
    budgets_follow = {"budget": "fixed_network"}

    threshold: float = threshold_key("The accuracy the fixed network must reach.")
    budget: budgets.Budget = budget_key(
        "Seconds for training the fixed network; relative budgets follow the reference "
        "layers' own training time.")
    epochs: int = key(EPOCHS, "integer ≥ 1", "Epochs of the fixed network's training.",
                      schema.number(1, integer=True))
    seed: int = seed_key()



def _options(spec: TestSpec) -> DiagnosticOptions:
    return options_of(spec, DiagnosticOptions)

class DiagnosticDetails(TypedDict, total=False):
    """The fixed network's accuracy, and each swap the culprit search tried."""

    threshold: float
    accuracy: float | None
    swaps: list[dict[str, Any]]  # {"replaced", "difference", "fixes"}
    culprit: str | None
    stuck: list[str]


class MnistDiagnostic(Kind):
    name = "mnist_diagnostic"
    meaning = "a fixed network trained from the student's layers."
    options = DiagnosticOptions
    guarded = False
    exported = False

    def run(self, spec: TestSpec, context: Context) -> TestResult:
        return run_diagnostic(spec, context)


def run_diagnostic(spec: TestSpec, context: Context) -> TestResult:
    """Train the fixed network from the student's layers; when it falls short, retrain with one
    function at a time replaced by the reference and name the one that fixes it."""
    threshold = _options(spec).threshold
    stuck = [f for f in DIAGNOSTIC_FUNCTIONS if context.session.stuck(f)]
    if stuck:  # it would only hang again, and wait out the whole budget doing so
        return result(
            spec, 0.0,
            f"Not run: your `{stuck[0]}` had to be stopped in an earlier test (it did not "
            f"finish in time), and the fixed network calls it thousands of times.",
            status="timeout", details={"threshold": threshold, "stuck": stuck},
        )
    labels = labels_of(context)
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
    return result(spec, partial(accuracy, threshold, FLOOR), message, diagnosis=diagnosis,
                  details=details)


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
                            seed=_options(spec).seed,
                            budget=budgets.seconds(_options(spec).budget))


def _epochs(spec: TestSpec) -> str:
    epochs = _options(spec).epochs
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
    parts = [__version__, code, str(_options(spec).epochs),
             str(_options(spec).seed), str(len(labels)), str(int(labels.sum())),
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
        epochs=_options(spec).epochs, seed=_options(spec).seed,
        budget=budgets.seconds(_options(spec).budget))
    if trained.weights is None:
        if trained.busy is not None:
            raise MachineBusy(trained.failed, trained.busy)
        if trained.kind == "not_implemented":
            return None, "NotImplementedError"
        if trained.kind in ("timeout", "budget"):
            return None, f"it ran out of time (in your `{trained.failed}`)"
        return None, f"your `{trained.failed}` failed: {trained.error or trained.kind}"
    session.record_time("fixed_network", time.perf_counter() - began)
    seen = fixed_net.predict_digits(trained.weights, images)
    return float(np.mean(files.digits(seen) == labels)), ""
