"""Turn a rubric's input specs into seeded arrays.

A spec is a TOML table: ``{shape = [3, 5]}`` draws standard normal floats; options:
``dist = "normal" | "uniform" | "labels" | "distinct" | "ties" | "zeros"``, ``scale``, ``offset``,
``away_from_zero`` (a margin that keeps ReLU inputs off its kink), ``classes`` (labels),
``zero_fraction`` (puts exact zeros in, to probe a kink on purpose), ``dtype``.
Anything that is not such a table is a literal and passes through (lists become float arrays).
The same rubric seed and test name give the same inputs on every machine, for every student.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from grader.core.errors import GraderError


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A generator keyed by the rubric seed and the test/case, independent of test order."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def is_spec(value: Any) -> bool:
    return isinstance(value, dict) and "shape" in value


def make(value: Any, rng: np.random.Generator) -> Any:
    """A concrete argument from a spec or a literal."""
    if is_spec(value):
        return _draw(value, rng)
    if isinstance(value, list):
        return np.asarray(value, dtype=np.float64)
    return value


def _draw(spec: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    shape = tuple(int(n) for n in spec["shape"])
    dist = spec.get("dist", "normal")
    if dist == "normal":
        array = rng.standard_normal(shape)
    elif dist == "uniform":
        array = rng.uniform(-1.0, 1.0, shape)
    elif dist == "labels":
        return rng.integers(0, int(spec["classes"]), shape).astype(np.int64)
    elif dist == "distinct":  # no ties anywhere: max-pool's gradient is unique
        count = int(np.prod(shape))
        array = rng.permutation(np.linspace(-1.0, 1.0, count)).reshape(shape)
    elif dist == "ties":  # few distinct values: max-pool windows with several maxima
        array = rng.integers(0, 3, shape).astype(np.float64)
    elif dist == "zeros":
        array = np.zeros(shape)
    else:
        raise GraderError(f"unknown input distribution {dist!r}")
    margin = float(spec.get("away_from_zero", 0.0))
    if margin:
        array = np.sign(array) * (margin + np.abs(array))
        array[array == 0] = margin
    if spec.get("zero_fraction"):
        array[rng.random(shape) < float(spec["zero_fraction"])] = 0.0
    array = array * float(spec.get("scale", 1.0)) + float(spec.get("offset", 0.0))
    return array.astype(spec.get("dtype", "float64"))


def describe(args: list[Any], kwargs: dict[str, Any], names: list[str] | None = None) -> str:
    """A short text of the inputs for the feedback, e.g. ``x (3, 5), W (5, 4), stride=2``."""
    parts = []
    for i, value in enumerate(args):
        label = names[i] if names and i < len(names) else f"arg{i + 1}"
        if isinstance(value, np.ndarray):
            shown = f"{value.tolist()}" if value.size <= 12 else f"shape {value.shape}"
            parts.append(f"{label} {shown}")
        else:
            parts.append(f"{label}={value!r}")
    parts += [f"{k}={v!r}" for k, v in kwargs.items()]
    return ", ".join(parts)
