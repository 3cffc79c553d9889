"""The sandbox's wire format: one JSON document per line, arrays as base64 of their raw bytes.

Both sides use this module, so it imports nothing but the standard library and NumPy. Decoding
accepts only plain numeric dtypes and builds a fresh, base-class ``ndarray``: no pickle, no object
arrays, no subclass can cross the boundary. A malformed message raises ``WireError``, which the
grader turns into a test error for that student, never into a crash of the batch.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np

ALLOWED_KINDS = frozenset("biuf")  # bool, signed, unsigned, float: nothing that can hold objects
MAX_ELEMENTS = 50_000_000


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
            "__array__": base64.b64encode(array.tobytes()).decode("ascii"),
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
    text = json.dumps(encode_value(message), separators=(",", ":"), allow_nan=False)
    return text.encode() + b"\n"


def loads(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
        if not isinstance(message, dict):
            raise WireError("a message must be a JSON object")
        return decode_value(message)
    except WireError:
        raise
    except RecursionError:
        raise WireError("a message nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"not a JSON message: {exc}") from None
