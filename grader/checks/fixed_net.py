"""The MNIST diagnostic's fixed network, assembled from whatever layer functions it is given.

This is a training *loop*, not a solution: every layer's forward, backward and the loss are the
functions handed in (the student's, or the reference for one of them in a diagnostic rerun).
784-128-10, ReLU, softmax cross-entropy, plain SGD with learning rate 0.1, batches of 64.

The loop always runs here, in the grader's process: ``train`` with functions at hand (the
culprit search's short runs), ``train_remote`` with the student's functions in their sandbox,
called one at a time. Nothing of the loop, and nothing of its verdict, is left to the
student's process: the grader chooses every batch, reads the weights back at the end and
measures the network they make itself (``predict_digits``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from grader.core.calls import Session

HIDDEN, CLASSES, LEARNING_RATE, BATCH = 128, 10, 0.1, 64
WEIGHTS = ("W1", "b1", "W2", "b2")
CALL_TIMEOUT = 10.0  # one layer call on a batch of 64 takes well under a millisecond
PIPELINED = 16  # batches per request to the sandbox


@dataclass(frozen=True)
class Trained:
    """The weights a remote run ended with, or why it stopped (``failed``: the function whose
    call failed, and the failure's text; ``kind`` as ``CallOutcome.kind``)."""

    weights: dict[str, np.ndarray] | None = None
    failed: str = ""
    kind: str = ""
    error: str = ""
    busy: float | None = None  # a timeout while the machine was busy (``CallOutcome.busy``)


def initial(features: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """He-initialised weights and zero biases, drawn from ``rng`` (the same seed, the same
    start, for the local and the remote loop)."""
    return {
        "W1": rng.standard_normal((features, HIDDEN)) * np.sqrt(2.0 / features),
        "b1": np.zeros(HIDDEN),
        "W2": rng.standard_normal((HIDDEN, CLASSES)) * np.sqrt(2.0 / HIDDEN),
        "b2": np.zeros(CLASSES),
    }


def train_remote(session: Session, count: int, features: int, *, epochs: int, seed: int,
                 budget: float) -> Trained:
    """Train the fixed network on the sandbox's training data (``count`` images) with the
    student's layer functions, called one at a time through ``session``
    (``grader.core.calls.Session``). The batches' images, the activations and the gradients stay
    in the sandbox (references, not copies, cross the channel); the grader sends the starting
    weights, asks for one SGD step per batch and reads the weights back at the end."""
    rng = np.random.default_rng(seed)
    deadline = time.monotonic() + budget
    put = session.request({"op": "put", "values": initial(features, rng)}, timeout=CALL_TIMEOUT)
    if not isinstance(put, dict) or not put.get("ok"):
        return Trained(failed="the grader", kind="crash", error=_why(put))
    for _ in range(epochs):
        order = rng.permutation(count)
        batches = [np.sort(order[start:start + BATCH]) for start in range(0, count, BATCH)]
        for first in range(0, len(batches), PIPELINED):
            stopped = _remote_batches(session, batches[first:first + PIPELINED], deadline)
            if stopped is not None:
                return stopped
    weights = {}
    for name in WEIGHTS:
        answer = session.request({"op": "fetch", "key": name}, timeout=CALL_TIMEOUT)
        value = answer.get("value") if isinstance(answer, dict) and answer.get("ok") else None
        if not isinstance(value, np.ndarray):
            return Trained(failed="the grader", kind="crash", error=_why(answer))
        weights[name] = value
    return Trained(weights=weights)


# One batch: (function, arguments, where its result is kept). A kept result's items are
# named (key, index); the images and labels are rows of the sandbox's own data.
_Kept = tuple[str] | tuple[str, int]  # a kept result, or one of its items
_STEPS: tuple[tuple[str, list[str | _Kept], str], ...] = (
    ("dense_forward", ["x", ("W1",), ("b1",)], "h"),
    ("relu_forward", [("h", 0)], "a"),
    ("dense_forward", [("a", 0), ("W2",), ("b2",)], "z"),
    ("softmax_cross_entropy", [("z", 0), "y"], "loss"),
    ("dense_backward", [("loss", 1), ("z", 1)], "dz"),
    ("relu_backward", [("dz", 0), ("a", 1)], "da"),
    ("dense_backward", [("da",), ("h", 1)], "dh"),
)
_UPDATES: tuple[tuple[str, _Kept], ...] = (
    ("W1", ("dh", 1)), ("b1", ("dh", 2)), ("W2", ("dz", 1)), ("b2", ("dz", 2)))


def _remote_batches(session: Any, batches: list[np.ndarray], deadline: float
                    ) -> Trained | None:
    """Some batches' calls and steps, sent together (``Session.pipeline``): a call on 64
    images takes far less than a round trip to the sandbox."""
    calls: list[dict[str, Any]] = []
    for rows in batches:
        data = {"x": {"__data__": "train_images", "rows": rows.tolist(), "dtype": "float64"},
                "y": {"__data__": "train_labels", "rows": rows.tolist(), "dtype": "int64"}}
        calls += [{"function": function, "store": keep,
                   "args": [data[a] if isinstance(a, str) else _ref(*a) for a in args]}
                  for function, args, keep in _STEPS]
        calls.append({"op": "step", "rate": LEARNING_RATE,
                      "pairs": [[name, _ref(*ref)] for name, ref in _UPDATES]})
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return Trained(failed=_STEPS[0][0], kind="timeout", error="the diagnostic's budget ran out",
                       busy=session.busy())
    done, outcome = session.pipeline(calls, timeout=remaining, each=CALL_TIMEOUT)
    if outcome.ok:
        return None
    failed = calls[done].get("function", "dense_backward")  # (a step: a gradient's shape)
    return Trained(failed=failed, kind=outcome.kind, error=outcome.error, busy=outcome.busy)


def _ref(key: str, index: int | None = None) -> dict[str, Any]:
    return {"__ref__": key, "index": index}


def _why(answer: Any) -> str:
    if isinstance(answer, str):
        return answer
    if answer is None:
        return "no answer in time"
    return str(answer.get("error") or "it failed") if isinstance(answer, dict) else "it failed"


def predict_digits(weights: Mapping[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    """The class each image gets from the network the weights make (dense, ReLU, dense,
    argmax), computed here: 1,000 images at a time, NaN counted as 0."""
    w1, b1, w2, b2 = (np.asarray(weights[n], dtype=np.float64) for n in WEIGHTS)
    found = []
    with np.errstate(all="ignore"):
        for start in range(0, len(images), 1000):
            x = np.asarray(images[start:start + 1000], dtype=np.float64)
            logits = np.maximum(x @ w1 + b1, 0) @ w2 + b2
            found.append(np.argmax(np.nan_to_num(logits), axis=1))
    return np.concatenate(found).astype(np.int64)


def train(
    functions: Mapping[str, Callable[..., Any]],
    train_x: np.ndarray,
    train_y: np.ndarray,
    *,
    epochs: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """The trained parameters (W1, b1, W2, b2): the same seed and the same functions give the
    same ones, which is what the culprit search compares."""
    dense_fwd, dense_bwd = functions["dense_forward"], functions["dense_backward"]
    relu_fwd, relu_bwd = functions["relu_forward"], functions["relu_backward"]
    loss_fn = functions["softmax_cross_entropy"]
    rng = np.random.default_rng(seed)
    params = initial(train_x.shape[1], rng)
    for _ in range(epochs):
        order = rng.permutation(len(train_x))
        for start in range(0, len(order), BATCH):
            batch = np.sort(order[start : start + BATCH])
            x = np.asarray(train_x[batch], dtype=np.float64)
            hidden, cache1 = dense_fwd(x, params["W1"], params["b1"])
            active, cache_relu = relu_fwd(hidden)
            logits, cache2 = dense_fwd(active, params["W2"], params["b2"])
            _, dlogits = loss_fn(logits, np.asarray(train_y[batch], dtype=np.int64))
            dactive, dW2, db2 = dense_bwd(dlogits, cache2)
            dhidden = relu_bwd(dactive, cache_relu)
            _, dW1, db1 = dense_bwd(dhidden, cache1)
            for name, grad in (("W1", dW1), ("b1", db1), ("W2", dW2), ("b2", db2)):
                params[name] = params[name] - LEARNING_RATE * np.asarray(grad, dtype=np.float64)
    return params
