"""Recorded reference answers for the students' exported checker (``grader.distribute.checker``).

The grader calls the reference in its own process (expected outputs, expected gradients, numerical
gradients of the reference forward, the bug patterns' reruns). ``grader.distribute.selfcheck``
records every such call the public tests can make, keyed by a hash of the function and its exact
arguments; ``Replay`` answers the same calls from that recording and refuses any other, so the
checker ships answers but no reference code. Everything is plain data: JSON, and arrays in an
``.npz`` read without pickle.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


class NotRecorded(BaseException):  # noqa: N818 - a refusal, not an error of the notebook
    """A reference call the recording does not hold. A BaseException on purpose: the bug
    patterns treat an ``Exception`` from a rerun as "this variant does not apply", and an
    unrecorded call must never silently change a diagnosis."""


class Unrecordable(ValueError):
    """A value the recording cannot hold as plain data (only arrays, numbers, strings, None,
    tuples, lists and dicts of them)."""


# --- call keys and plain-data encoding -------------------------------------------------------


def call_key(function: str, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> str:
    """One hash for a call: the same function on bit-identical arguments, the same key."""
    digest = hashlib.sha256(function.encode())
    _feed(digest, list(args))
    _feed(digest, dict(kwargs))
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise Unrecordable("an array of Python objects")
        digest.update(f"A{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, np.generic):
        digest.update(f"S{value.dtype.str}".encode() + value.tobytes())
    elif value is None or isinstance(value, (bool, int, float, str)):
        digest.update(f"P{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__}{len(value)}[".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}{{".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    else:
        raise Unrecordable(f"a {type(value).__name__}")


def encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON-able data; arrays go into ``arrays`` (stored once per content)."""
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise Unrecordable("an array of Python objects")
        name = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode()
                              + np.ascontiguousarray(array).tobytes()).hexdigest()[:20]
        arrays[name] = array
        return {"scalar" if isinstance(value, np.generic) else "array": name}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [encode(v, arrays) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[encode(k, arrays), encode(v, arrays)] for k, v in value.items()]}
    raise Unrecordable(f"a {type(value).__name__}")


def decode(data: Any, arrays: Any) -> Any:
    """The value ``encode`` stored, as fresh objects (callers may change what they get)."""
    (kind, content), = data.items()
    if kind == "array":
        return np.array(arrays[content])
    if kind == "scalar":
        return np.asarray(arrays[content])[()]
    if kind == "value":
        return content
    if kind in ("list", "tuple"):
        items = [decode(v, arrays) for v in content]
        return items if kind == "list" else tuple(items)
    return {decode(k, arrays): decode(v, arrays) for k, v in content}


# --- the stand-in reference --------------------------------------------------------------------


@dataclass(frozen=True)
class Replay:
    """A reference function answered from the recording, with the real one's signature (the
    feedback names inputs by their parameter names)."""

    name: str
    parameters: tuple[str, ...]
    answers: dict[str, Any]
    arrays: Any

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        answer = self.answers.get(call_key(self.name, args, kwargs))
        if answer is None:
            raise NotRecorded(f"no recorded answer for this call of `{self.name}`")
        if "raises" in answer:
            raise RecordedError(answer["raises"])
        return decode(answer["returns"], self.arrays)

    @property
    def __signature__(self) -> inspect.Signature:
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        return inspect.Signature([inspect.Parameter(p, kind) for p in self.parameters])


class RecordedError(Exception):
    """The reference raised for these arguments when it was recorded (a bug pattern's variant
    that does not apply), so the replay raises too."""


def stand_in(bundle: dict[str, Any], arrays: Any) -> Any:
    """A ``grader.core.reference.Reference`` whose functions replay the recording (no sources)."""
    from grader.core.reference import Reference

    functions: dict[str, Callable[..., Any]] = {
        name: Replay(name, tuple(entry["parameters"]), entry["answers"], arrays)
        for name, entry in bundle["functions"].items()
    }
    return Reference(functions, {})
