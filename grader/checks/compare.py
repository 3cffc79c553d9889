"""Numbers, not verdicts: compare a student's array with the expected one and keep the error,
the tolerance and where the worst element sits. Also central-difference gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_TOLERANCE = 1e-6  # relative error; a rubric may set its own per test (``tolerance``)
TOLERANCE = {np.dtype("float64"): DEFAULT_TOLERANCE, np.dtype("float32"): 1e-3,
             np.dtype("float16"): 1e-2}
SCALE_FLOOR = 1e-12  # the smallest scale a relative error divides by (all zeros: no error)
SMALL = 64  # arrays up to this many elements are shown whole in the feedback


@dataclass(frozen=True)
class Comparison:
    name: str
    passed: bool
    problem: (
        str  # "" when passed; else a short reason ("shape", "dtype", "values", "nonfinite", ...)
    )
    relative_error: float | None
    tolerance: float
    expected: np.ndarray
    got: np.ndarray | None
    worst_index: tuple[int, ...] | None
    note: str = ""

    def details(self) -> dict[str, Any]:
        """The JSON the feedback page renders."""
        got = self.got
        data: dict[str, Any] = {
            "name": self.name,
            "passed": self.passed,
            "problem": self.problem,
            "relative_error": _finite_or_none(self.relative_error),
            "tolerance": self.tolerance,
            "expected_shape": list(self.expected.shape),
            "got_shape": list(got.shape) if got is not None else None,
            "worst_index": list(self.worst_index) if self.worst_index is not None else None,
            "dtype": str(got.dtype) if got is not None else None,
        }
        if self.expected.size <= SMALL:
            data["expected"] = _jsonable(self.expected)
        if got is not None and got.size <= SMALL:
            data["got"] = _jsonable(got)
        if not self.passed and got is not None and got.shape == self.expected.shape:
            data["error_map"] = error_map(got, self.expected)
        return data


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """max |got − expected| / max(max |expected|, max |got|, SCALE_FLOOR): scale-free, zero only
    when the arrays agree. Infinite when either holds NaN or inf."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(expected))):
        return float("inf")
    if got.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(expected))), float(np.max(np.abs(got))), SCALE_FLOOR)
    return float(np.max(np.abs(got - expected)) / scale)


def tolerance_for(dtype: np.dtype) -> float:
    return TOLERANCE.get(np.dtype(dtype), DEFAULT_TOLERANCE)


def compare(
    name: str, got: Any, expected: np.ndarray, *, tolerance: float | None = None
) -> Comparison:
    """Compare one returned value. Integers and booleans are compared as floats; a float32
    result gets float32's tolerance and a note, never a penalty."""
    expected = np.asarray(expected, dtype=np.float64)
    if not isinstance(got, np.ndarray):
        return Comparison(name, False, "type", None, 0.0, expected, None, None)
    note = ""
    tol = tolerance if tolerance is not None else DEFAULT_TOLERANCE
    if got.dtype.kind == "f" and got.dtype.itemsize < 8:
        tol = max(tol, tolerance_for(got.dtype))
        note = f"computed in {got.dtype}: compared with {got.dtype}'s tolerance"
    if got.shape != expected.shape:
        if got.size == expected.size and got.squeeze().shape == expected.squeeze().shape:
            got_view = got.reshape(expected.shape)
            error = relative_error(got_view, expected)
            if error <= tol:
                return Comparison(name, False, "shape", error, tol, expected, got, None, note)
        return Comparison(name, False, "shape", None, tol, expected, got, None, note)
    values = got.astype(np.float64)
    if not np.all(np.isfinite(values)):
        bad = np.argwhere(~np.isfinite(values))
        worst = tuple(int(i) for i in bad[0]) if bad.size else None
        return Comparison(name, False, "nonfinite", float("inf"), tol, expected, got, worst, note)
    error = relative_error(values, expected)
    worst = (
        tuple(
            int(i) for i in np.unravel_index(np.argmax(np.abs(values - expected)), expected.shape)
        )
        if expected.size
        else None
    )
    passed = error <= tol
    return Comparison(
        name, passed, "" if passed else "values", error, tol, expected, got, worst, note
    )


def numerical_gradient(
    loss: Callable[[], float],
    array: np.ndarray,
    *,
    step: float = 1e-5,
    max_coordinates: int = 600,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of ``loss()`` with respect to ``array`` (perturbed in place and
    restored). Large arrays get a random sample of coordinates: returns (gradient, mask of the
    coordinates that were measured)."""
    gradient = np.zeros_like(array, dtype=np.float64)
    measured = np.zeros(array.shape, dtype=bool)
    flat_indices = np.arange(array.size)
    if array.size > max_coordinates:
        rng = rng or np.random.default_rng(0)
        flat_indices = rng.choice(array.size, max_coordinates, replace=False)
    for flat in flat_indices:
        index = np.unravel_index(flat, array.shape)
        original = array[index]
        array[index] = original + step
        plus = loss()
        array[index] = original - step
        minus = loss()
        array[index] = original
        gradient[index] = (plus - minus) / (2 * step)
        measured[index] = True
    return gradient, measured


def directional_error(
    loss: Callable[[], float],
    array: np.ndarray,
    gradient: np.ndarray,
    *,
    rng: np.random.Generator,
    directions: int = 3,
    step: float = 1e-5,
) -> float:
    """Compare ⟨gradient, v⟩ with the central difference of ``loss`` along random directions v:
    a whole-tensor check that costs two evaluations per direction, whatever the size."""
    vectors, slopes = directional_slopes(loss, array, rng=rng, directions=directions, step=step)
    return slope_error(gradient, vectors, slopes)


def directional_slopes(
    loss: Callable[[], float],
    array: np.ndarray,
    *,
    rng: np.random.Generator,
    directions: int = 3,
    step: float = 1e-5,
) -> tuple[tuple[np.ndarray, ...], tuple[float, ...]]:
    """Random directions v and the central differences of ``loss`` along each (``array`` is
    perturbed in place and restored). They depend on the loss alone, not on any gradient, so
    they can be measured once and held against many gradients (``slope_error``)."""
    vectors, slopes = [], []
    original = array.copy()
    for _ in range(directions):
        direction = rng.standard_normal(array.shape)
        array[...] = original + step * direction
        plus = loss()
        array[...] = original - step * direction
        minus = loss()
        array[...] = original
        vectors.append(direction)
        slopes.append((plus - minus) / (2 * step))
    return tuple(vectors), tuple(slopes)


def slope_error(gradient: np.ndarray, directions: Sequence[np.ndarray],
                slopes: Sequence[float]) -> float:
    """The worst relative disagreement of ⟨gradient, v⟩ with the measured slope along v."""
    worst = 0.0
    for direction, numeric in zip(directions, slopes):
        analytic = float(np.sum(gradient.astype(np.float64) * direction))
        scale = max(abs(numeric), abs(analytic), SCALE_FLOOR)
        worst = max(worst, abs(numeric - analytic) / scale)
    return worst


def error_map(got: np.ndarray, expected: np.ndarray, *, limit: int = 32) -> list[list[float]]:
    """|got − expected| reduced to at most ``limit`` × ``limit`` (max over the other axes), for
    the feedback's heatmap of where a gradient is wrong."""
    diff = np.abs(got.astype(np.float64) - expected)
    if diff.ndim == 0:
        diff = diff.reshape(1, 1)
    elif diff.ndim == 1:
        diff = diff.reshape(1, -1)
    elif diff.ndim > 2:
        diff = (
            diff.reshape(-1, diff.shape[-1])
            if diff.shape[-1] > 1
            else diff.reshape(diff.shape[0], -1)
        )
    rows = np.array_split(np.arange(diff.shape[0]), min(limit, diff.shape[0]))
    cols = np.array_split(np.arange(diff.shape[1]), min(limit, diff.shape[1]))
    reduced = [[float(np.nan_to_num(diff[np.ix_(r, c)]).max()) for c in cols] for r in rows]
    return reduced


def _jsonable(array: np.ndarray) -> Any:
    """Nested lists of floats; NaN and inf become the strings "nan", "inf", "-inf"."""
    values = np.asarray(array, dtype=np.float64)
    if np.all(np.isfinite(values)):
        return values.round(10).tolist()
    as_text = np.vectorize(
        lambda v: round(float(v), 10) if np.isfinite(v) else str(v), otypes=[object]
    )
    return as_text(values).tolist()


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return float(value)
