"""What the grader takes from a sandbox's answer, checked before any of it is used.

The sandbox's runtime is the grader's code, but it runs in the student's process: a notebook
can replace its request handler, its guard or any value it is about to send. So an answer is
only ever a claim. ``grader.run.sandbox`` already refuses a line that breaks the framing (another
request's number, too long, too deep); this module checks the *contents* of a well-framed
answer against the shape the real runtime gives that kind of request: which keys, of which
types, which words, how long, how deep. Anything else means the notebook interfered with the
grader, which is that submission's result (``Interference``), never an exception that stops a
batch.

What crosses, and how far it is believed (``docs/architecture.md`` has the whole boundary):

- values that student functions returned on inputs the grader chose: plain arrays of numeric
  dtypes, and the runtime's tags for tuples and for what it could not send. They are compared
  in the grader's process, which is where every point comes from;
- error texts and the kinds of failure (``missing``, ``exception``...): they choose a message,
  and every one of them scores 0;
- the runtime guard's report of forbidden library calls: believed only against the student
  (it can take points away, never give them);
- the count of stray processes and the cells' errors: notices only.

Times are never taken from an answer: ``grader.run.session`` measures every call from outside.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_DEPTH = 32  # a tuple of tuples of ... (a forward's cache is two or three levels deep)
MAX_TEXT = 4000  # an error's text; a traceback's six lines of student code
MAX_ITEMS = 64  # cell errors
MAX_GUARDS = 1000  # guard reports (each import of a forbidden package's submodules is one)
FAILURES = frozenset({"missing", "not_implemented", "exception", "exit", "timeout",
                      "unsendable", "too_large"})
# Every label the runtime's guard reports (grader.run.inside.runtime's GUARDED_FUNCTIONS and
# FORBIDDEN_MODULES, and their submodules): a guard answer naming anything else was forged.
GUARD_PREFIXES = ("numpy.convolve", "numpy.correlate", "scipy.", "torch", "jax", "jaxlib",
                  "autograd", "tensorflow", "keras", "sklearn", "cv2", "skimage")


class Interference(Exception):
    """An answer that the real runtime never gives: the notebook interfered with the grader."""


def checked(op: str, answer: Any) -> dict[str, Any]:
    """``answer`` to a request of kind ``op``, rebuilt from its checked parts only (unknown
    keys dropped, texts capped, values validated); ``Interference`` for anything else."""
    if not isinstance(answer, dict):
        raise Interference("an answer that is not a JSON object")
    ok = _flag(answer, "ok")
    base = {"ok": ok, "strays": _count(answer.get("strays", 0), "strays")}
    if op == "calls":
        base["at"] = _count(answer.get("at", 0), "at")
    if not ok and op != "exec":
        return {**base, **_failure(answer)}
    if op == "calls":
        return {**base, "guards": _guards(answer.get("guards", []))}
    if op == "exec":
        return {**base, **_exec(answer)}
    if op == "call":
        inputs = answer.get("inputs")
        return {**base, "value": value(answer.get("value")),
                "inputs": None if inputs is None else _list(inputs, "inputs", value),
                "guards": _guards(answer.get("guards", []))}
    if op in ("put", "step"):
        return base
    if op == "fetch":
        return {**base, "value": value(answer.get("value"))}
    if op == "guards":
        return {**base, "used": _guards(answer.get("used", []))}
    raise Interference(f"an answer to an unknown request {op!r}")  # (a grader bug, really)


def value(item: Any, depth: int = 0) -> Any:
    """A value as the runtime sends it back (``runtime._plain``): an array, None, a list for
    chosen positions of a tuple, or one of its tags. Bare numbers and strings never come from
    the real runtime (it sends scalars as 0-d arrays)."""
    if depth > MAX_DEPTH:
        raise Interference(f"a value nested more than {MAX_DEPTH} levels deep")
    if item is None:
        return None
    if isinstance(item, np.ndarray):
        return item  # (grader.run.inside.wire built it: a fresh base array of a numeric dtype)
    if isinstance(item, list):
        return [value(v, depth + 1) for v in item]
    if isinstance(item, dict):
        keys = set(item)
        if keys == {"__sequence__", "type"} and isinstance(item["__sequence__"], list):
            return {"__sequence__": [value(v, depth + 1) for v in item["__sequence__"]],
                    "type": text(item["type"], 100)}
        if keys == {"__not_tuple__"}:
            return {"__not_tuple__": text(item["__not_tuple__"], 100)}
        if keys == {"__unsendable__"}:
            return {"__unsendable__": text(item["__unsendable__"], 200)}
    raise Interference(f"a value of a form the grader never sends back ({_kind(item)})")


def text(item: Any, limit: int = MAX_TEXT) -> str:
    """A text of the answer, at most ``limit`` characters."""
    if not isinstance(item, str):
        raise Interference(f"{_kind(item)} where a text belongs")
    return item if len(item) <= limit else item[: limit - 1] + "…"


def _failure(answer: dict[str, Any]) -> dict[str, Any]:
    kind = answer.get("kind")
    if kind not in FAILURES:
        raise Interference(f"a failure of an unknown kind ({_kind(kind)})")
    found = {"kind": kind, "error": text(answer.get("error", ""))}
    if "traceback" in answer:
        found["traceback"] = text(answer["traceback"])
    return found


def _exec(answer: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {"errors": _list(answer.get("errors", []), "errors",
                                             lambda e: text(e, 1000)),
                             "timed_out": _flag(answer, "timed_out", False),
                             "out_of_memory": _flag(answer, "out_of_memory", False)}
    if "error" in answer:
        found["error"] = text(answer["error"], 1000)
    return found


def _guards(items: Any) -> list[str]:
    labels = _list(items, "guard reports", lambda g: text(g, 100))
    for label in labels:
        if not label.startswith(GUARD_PREFIXES):
            raise Interference(f"a guard report naming {label[:40]!r}, which no guard reports")
    return sorted(set(labels))


def _list(items: Any, what: str, each: Any) -> list[Any]:
    if not isinstance(items, list):
        raise Interference(f"{_kind(items)} where a list of {what} belongs")
    most = {"inputs": None, "guard reports": MAX_GUARDS}.get(what, MAX_ITEMS)
    if most is not None and len(items) > most:
        raise Interference(f"{len(items)} {what}, more than the runtime ever sends")
    return [each(item) for item in items]


def _flag(answer: dict[str, Any], key: str, default: bool | None = None) -> bool:
    found = answer.get(key, default)
    if not isinstance(found, bool):
        raise Interference(f"`{key}` is {_kind(found)}, not true or false")
    return found


def _count(item: Any, what: str) -> int:
    if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 1 << 20:
        raise Interference(f"`{what}` is {_kind(item)}, not a small count")
    return item


def _kind(item: Any) -> str:
    """What a value is, in a few words that quote nothing of it."""
    if item is None:
        return "nothing"
    if isinstance(item, dict):
        return f"an object with keys {sorted(map(str, item))[:4]}"[:80]
    return f"a {type(item).__name__}"
