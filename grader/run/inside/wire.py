"""The sandbox's wire format: one JSON document per line, arrays as base64 of their raw bytes.

Each line starts with its request's number and a space (``12 {"ok":true,...}``), so that the
grader can refuse a line that answers another request (or none: bytes student code wrote to the
channel) from its first bytes, before it reads or decodes the rest. An answer may weigh no more
than its kind of request can legitimately need (``reply_limit``), and its JSON is measured
(values, depth) before ``json.loads`` builds anything: a line of 33 million empty lists costs
100 MB to write and gigabytes to decode.

Both sides use this module, so it imports nothing but the standard library and NumPy. Decoding
accepts only plain numeric dtypes and builds a fresh, base-class ``ndarray``: no pickle, no object
arrays, no subclass can cross the boundary. A malformed message raises ``WireError``, which the
grader turns into a test error for that student, never into a crash of the batch.
"""

from __future__ import annotations

import base64
import binascii
import json
import json.encoder
import math
import re
from typing import Any

import numpy as np


def _refuse(value: Any) -> Any:
    raise WireError(f"values of type {type(value).__name__} cannot be sent")


# The encoders are taken once, when this module loads (before any student code runs), and from
# C: an answer is written in the student's process, where ``json.JSONEncoder.encode`` or
# ``base64.b64encode`` can be replaced by anyone; the objects held here cannot be changed.
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_ENCODE = (_C_ENCODER(None, _refuse, json.encoder.encode_basestring_ascii, None, ":", ",",
                      False, False, False) if _C_ENCODER is not None else None)
_B64 = binascii.b2a_base64

ALLOWED_KINDS = frozenset("biuf")  # bool, signed, unsigned, float: nothing that can hold objects
MAX_ELEMENTS = 50_000_000
HEADER_BYTES = 21  # "<number> ": up to 20 digits and a space
MAX_VALUES = 250_000  # JSON values in one message (arrays are one string each, whatever their size)
MAX_DEPTH = 64  # nesting of JSON arrays and objects (a call's answer needs about 8)
# What an answer may weigh, by the kind of request it answers. An exec answer is a few lines of
# errors; a call or fetch answer holds at most what it was sent plus results of a similar size
# (10,000 MNIST predictions as class scores are 1 MB), hence the request's own size on top.
REPLY_BYTES = {"hello": 64 << 10, "exec": 256 << 10, "guards": 256 << 10, "put": 64 << 10,
               "step": 64 << 10, "calls": 256 << 10, "call": 16 << 20, "fetch": 16 << 20}
_NUMBER = re.compile(rb"(0|[1-9][0-9]{0,19}) ")
# A JSON string, escapes included, or an unterminated one up to the end: every quote it starts
# from matches, so no quote is scanned twice (a line of ``"\"\"\"...`` stays linear).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)


class WireError(ValueError):
    """A message that does not follow the wire format."""


def encode_value(value: Any) -> Any:
    """Turn a Python/NumPy value into plain JSON values (arrays become tagged objects)."""
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        array = np.asarray(value)
        if array.dtype.kind not in ALLOWED_KINDS:
            raise WireError(f"arrays of dtype {array.dtype} cannot be sent")
        array = array.copy(order="C")  # (ascontiguousarray would turn 0-d into 1-d)
        return {
            "__array__": _B64(array.tobytes(), newline=False).decode("ascii"),
            "dtype": array.dtype.str,
            "shape": list(array.shape),
        }
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    raise WireError(f"values of type {type(value).__name__} cannot be sent")


def decode_value(value: Any) -> Any:
    """Inverse of ``encode_value``; arrays come back as fresh, writable base ndarrays."""
    if isinstance(value, dict):
        if "__array__" in value:
            return _decode_array(value)
        if "__float__" in value:
            text = value["__float__"]
            if text not in ("nan", "inf", "-inf"):
                raise WireError(f"bad float {text!r}")
            return float(text)
        return {k: decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise WireError(f"unexpected JSON value of type {type(value).__name__}")


def _text(value: str) -> str:
    """JSON may carry lone surrogates (``"\\udcff"``) that no UTF-8 file can hold later."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value


def _decode_array(value: dict[str, Any]) -> np.ndarray:
    try:
        dtype = np.dtype(str(value["dtype"]))
        shape = tuple(int(n) for n in value["shape"])
        raw = base64.b64decode(value["__array__"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"malformed array: {exc}") from None
    if dtype.kind not in ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"arrays of dtype {dtype} are not accepted")
    if any(n < 0 for n in shape) or math.prod(shape) > MAX_ELEMENTS:
        raise WireError(f"array shape {shape} is not accepted")
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise WireError(f"array data has {len(raw)} bytes, shape {shape} needs more or fewer")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def dumps(message: dict[str, Any]) -> bytes:
    """One JSON document and its newline (without the number: see ``frame``)."""
    plain = encode_value(message)
    if _ENCODE is None:  # (a Python without json's C accelerator)
        text = json.dumps(plain, separators=(",", ":"), allow_nan=False)
    else:
        try:
            text = "".join(_ENCODE(plain, 0))
        except ValueError as exc:  # (what json.dumps raises for NaN with allow_nan=False)
            raise WireError(str(exc)) from None
    return text.encode() + b"\n"


def frame(number: int, message: dict[str, Any]) -> bytes:
    """The line that carries ``message`` as request (or answer to request) ``number``."""
    return b"%d " % number + dumps(message)


def reply_limit(op: Any, request_bytes: int) -> int:
    """The most bytes an answer to this request may have. Both sides compute it: the runtime
    sends a short error instead of a larger answer, the grader stops reading past it."""
    limit = REPLY_BYTES.get(op, REPLY_BYTES["exec"]) if isinstance(op, str) else 0
    return limit + 2 * request_bytes if op in ("call", "fetch") else limit


def number_of(head: bytes | bytearray) -> int | None:
    """The request number a line starts with, read from its first ``HEADER_BYTES`` bytes alone;
    None when it starts with anything else."""
    match = _NUMBER.match(bytes(head[:HEADER_BYTES]))
    return int(match.group(1)) if match else None


def unframe(line: bytes, *, limit: int | None = None) -> tuple[int, dict[str, Any]]:
    """The number and the message of one line (without its newline); WireError for a line
    without a number, longer than ``limit``, nested too deeply or with too many values."""
    number = number_of(line)
    if number is None:
        raise WireError("a line without its request's number")
    if limit is not None and len(line) > limit + HEADER_BYTES:
        raise WireError(f"a message of {len(line)} bytes, more than the {limit} allowed")
    check_structure(line)  # (the number has no brackets, commas or quotes to count)
    return number, loads(line[len(b"%d " % number):])


def check_structure(body: bytes) -> None:
    """Refuse too many values or too deep a nesting, at the cost of a scan of the bytes, before
    ``json.loads`` builds anything. Counting brackets and commas over-counts those inside
    strings (never inside arrays: base64 has none), so only a message that seems too large is
    measured again without its strings."""
    if _values(body) <= MAX_VALUES and body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return
    if body.count(b'"') > 4 * MAX_VALUES:  # (each string has two: there are too many values)
        raise WireError(f"a message of more than {MAX_VALUES} values")
    skeleton = _STRING.sub(b'""', body)
    values = _values(skeleton)
    if values > MAX_VALUES:
        raise WireError(f"a message of about {values} values, more than the {MAX_VALUES} allowed")
    opened = skeleton.count(b"[") + skeleton.count(b"{")
    if opened > MAX_DEPTH and _depth(skeleton) > MAX_DEPTH:
        raise WireError(f"a message nested more than {MAX_DEPTH} levels deep")


def _values(text: bytes) -> int:
    """An upper bound on the JSON values in ``text``: each one after the first follows a comma
    or opens a container."""
    return text.count(b",") + text.count(b"[") + text.count(b"{") + 1


def _depth(skeleton: bytes) -> int:
    """The deepest nesting of brackets and braces, 256 kB at a time (bounded memory)."""
    steps = np.zeros(256, np.int8)
    steps[list(b"[{")], steps[list(b"]}")] = 1, -1
    deepest = level = 0
    for start in range(0, len(skeleton), 1 << 18):
        part = np.frombuffer(skeleton, np.uint8, count=min(1 << 18, len(skeleton) - start),
                             offset=start)
        levels = level + np.cumsum(steps[part], dtype=np.int32)
        deepest, level = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def loads(line: bytes) -> dict[str, Any]:
    """The message in one JSON document (``unframe`` checks its size and shape first)."""
    try:
        message = json.loads(line)
        if not isinstance(message, dict):
            raise WireError("a message must be a JSON object")
        return decode_value(message)  # type: ignore[no-any-return]  # (an object decodes to one)
    except WireError:
        raise
    except RecursionError:
        raise WireError("a message nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"not a JSON message: {exc}") from None
