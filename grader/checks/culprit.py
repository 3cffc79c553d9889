"""Which of the student's layer functions keeps the fixed network from learning.

The search retrains a short run of the MNIST diagnostic's fixed network (``STEPS`` batches,
the same batches and initial weights every time) with one function at a time replaced by the
reference. With the seed fixed, correct layers train to the same weights as the reference's
own run, up to rounding; the first replacement whose run ends within ``TOLERANCE`` of those
weights removed the only bug, and that function is named. (Accuracy after a short run cannot
tell a subtle bug, a ReLU backward without its mask, from correct layers; the weights can.)

The reference never enters a process that runs student code: the loop runs here, in the
grader's process, calling the reference directly and the student's other functions in a
sandbox of their own (no data mounted, output thrown away), with arrays crossing the channel.
A student's forward keeps its cache in the sandbox, so only what a layer needs crosses.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from grader.checks import fixed_net
from grader.core.calls import Session

STEPS = 50  # batches of 64: 3,200 training images (kinds.mnist_diagnostic.CULPRIT_STEPS too)
TOLERANCE = 1e-3  # relative difference of the weights: float32 layers pass, any bug does not
CALL_TIMEOUT = 10.0


class SwapFailed(Exception):
    """A student function failed inside the short run; that replacement does not fix it."""


class _Kept:
    """A value the student's code returned that stays in the sandbox (a forward's cache)."""

    def __init__(self, key: str, index: int):
        self.key, self.index = key, index

    def ref(self) -> dict[str, Any]:
        return {"__ref__": self.key, "index": self.index}


def find(
    session: Session,
    reference: Any,
    functions: Sequence[str],
    data: tuple[np.ndarray, np.ndarray],
    *,
    seed: int,
    budget: float,
) -> tuple[str | None, list[dict[str, Any]]]:
    """The first function (in ``functions``' order) whose replacement makes the short run train
    as the reference does, and every swap tried with its weights' relative difference (None
    where the student's code failed)."""
    subset = _subset(*data, seed)
    target = _reference_weights(reference, functions, subset, seed)
    deadline = time.monotonic() + budget
    swaps = []
    for replaced in functions:
        layers = {n: reference[n] if n == replaced else _Remote(session, n, deadline)
                  for n in functions}
        try:
            weights = fixed_net.train(_bridge(session, layers), *subset, epochs=1, seed=seed)
            difference: float | None = _difference(weights, target)
        except SwapFailed:
            difference = None
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, ArithmeticError):
            # the reference's layers, or the loop's update, given what the student's functions
            # returned (a scalar for a gradient, a cache of the wrong form): that replacement
            # does not fix it, as for any failure of the student's code
            difference = None
        fixes = difference is not None and difference <= TOLERANCE
        swaps.append({"replaced": replaced, "difference": difference, "fixes": fixes})
        if fixes:
            return replaced, swaps
    return None, swaps


def _subset(train_x: np.ndarray, train_y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.sort(np.random.default_rng(seed).permutation(len(train_x))[: STEPS * fixed_net.BATCH])
    return np.asarray(train_x[rows], dtype=np.float64), np.asarray(train_y[rows])


def _difference(weights: dict[str, Any], target: dict[str, np.ndarray]) -> float:
    """The largest relative difference over the four weight arrays (inf for NaN or shapes)."""
    worst = 0.0
    for name, expected in target.items():
        got = np.asarray(weights[name], dtype=np.float64)
        if got.shape != expected.shape or not np.all(np.isfinite(got)):
            return float("inf")
        scale = max(float(np.linalg.norm(expected)), 1e-12)
        worst = max(worst, float(np.linalg.norm(got - expected)) / scale)
    return worst


def _reference_weights(reference: Any, functions: Sequence[str],
                       subset: tuple[np.ndarray, np.ndarray],
                       seed: int) -> dict[str, np.ndarray]:
    """The short run with every function the reference's: it depends on nothing the student
    wrote, so it is kept with the reference (``Reference.memo``), once per process."""
    key = ("culprit", tuple(functions), seed, len(subset[0]))
    if key not in reference.memo:
        layers = {n: reference[n] for n in functions}
        reference.memo[key] = fixed_net.train(layers, *subset, epochs=1, seed=seed)
    result: dict[str, np.ndarray] = reference.memo[key]
    return result


class _Remote:
    """A student's function, called in the sandbox from the loop here."""

    def __init__(self, session: Session, name: str, deadline: float):
        self.session, self.name, self.deadline = session, name, deadline
        self.forward = name.endswith("_forward")
        self._slots = itertools.cycle(range(4))  # a forward's caches live until its backward

    def __call__(self, *args: Any) -> Any:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise SwapFailed("the diagnostic's budget ran out")
        key = f"culprit-{self.name}-{next(self._slots)}" if self.forward else None
        outcome = self.session.call(
            self.name, [a.ref() if isinstance(a, _Kept) else a for a in args],
            timeout=min(CALL_TIMEOUT, remaining), store=key, reply=[0] if self.forward else "value",
        )
        if not outcome.ok:
            raise SwapFailed(outcome.error or outcome.kind)
        value = _python(outcome.value)
        if key is not None:  # (a forward's)
            if not isinstance(value, tuple) or len(value) != 1:
                raise SwapFailed(f"{self.name} returned no (out, cache) tuple")
            return value[0], _Kept(key, 1)
        return value


def _bridge(session: Session,
            layers: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The reference's backward given a cache the student's forward kept in the sandbox gets
    that cache fetched as plain arrays first."""

    def materialised(function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            return function(*[_fetch(session, a) if isinstance(a, _Kept) else a for a in args])

        return call

    return {n: f if isinstance(f, _Remote) else materialised(f) for n, f in layers.items()}


def _fetch(session: Session, kept: _Kept) -> Any:
    answer = session.request({"op": "fetch", "key": kept.key}, timeout=CALL_TIMEOUT)
    if not isinstance(answer, dict) or not answer.get("ok"):
        raise SwapFailed("the student's cache could not be read back")
    value = _python(answer.get("value"))
    if not isinstance(value, tuple) or len(value) <= kept.index:
        raise SwapFailed("the student's cache could not be read back")
    return value[kept.index]


def _python(value: Any) -> Any:
    """A value from the wire as the Python values a layer function expects (tuples, arrays)."""
    if isinstance(value, dict) and "__sequence__" in value:
        return tuple(_python(v) for v in value["__sequence__"])
    if isinstance(value, dict) and ("__unsendable__" in value or "__not_tuple__" in value):
        raise SwapFailed("a value the grader cannot use")
    if isinstance(value, list):
        return tuple(_python(v) for v in value)
    return value
