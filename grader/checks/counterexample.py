"""The smallest input that shows the bug: for a failing output or gradient test, a handful of
small inputs, tried from the smallest up, on which the student's function and the reference
disagree; the first one found is shown as inputs, expected and yours, small enough to check by
hand.

Why a fixed list rather than shrinking as property-based testing does: the students' self-check has
no reference code, only the reference's recorded answers (``grader.distribute.selfcheck``), so every
input the search can try must be known when the checker is exported. The list is the same for every
student: shapes shrunk from the failing case's (each size that occurs in it becomes 1, then 2, then
3; sizes that were equal stay equal, so shapes stay compatible), with small integers for values
(respecting what the test's inputs keep: labels below their class count, values away from zero,
distinct values), then the same shapes with values as large as the test's (a bug that shows only at
large logits). Every call goes through the session, as every other call, and the inputs are fresh:
drawn from their own seed, never a test's own.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from grader.checks import expectations, inputs
from grader.checks.compare import compare
from grader.checks.spec import Case, Rubric, TestSpec

MAX_SMALL, MAX_LARGE = 10, 4  # candidates of small values, and as large as the test's
MAX_TRIES = MAX_SMALL + MAX_LARGE  # student calls (pairs, for a gradient test) per test
MAX_SIZE = 5  # the largest size a shrunk dimension takes
DRAWS = 3  # value draws per choice of sizes
MAX_NUMBERS = 16  # inputs with more numbers than this are not tried
SHOWN = 12  # what "small enough to check by hand" means, in numbers per array


@dataclass(frozen=True)
class Candidate:
    """One small input (a gradient test's: the forward's arguments and a ``dout``), with the
    reference's answer to it."""

    args: list[Any]
    kwargs: dict[str, Any]
    expected: list[np.ndarray]
    dout: np.ndarray | None = None
    large: bool = False  # values as large as the test's (no small-integer input failed)

    def same_input(self, other: Candidate) -> bool:
        return _key(self) == _key(other)


@dataclass(frozen=True)
class Found:
    """A counterexample, as the page and the self-check show it."""

    inputs: str
    output: str
    expected: Any
    got: Any
    large: bool

    def text(self) -> str:
        which = ("Smallest failing input found (no small integers show it; values as large as "
                 "the test's do)" if self.large else "Smallest failing input")
        return (f"{which}: {self.inputs}. Expected {self.output} = {_short(self.expected)}, "
                f"yours {_short(self.got)}.")

    def details(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "output": self.output, "expected": self.expected,
                "got": self.got, "large": self.large}


def candidates(spec: TestSpec, rubric: Rubric, reference: Any, number: int) -> list[Candidate]:
    """The inputs the search tries for case ``number`` of ``spec``, smallest first, each with
    the reference's answer (the same for every student; for the exported self-check, whose
    rubric has no secret, those answers are recorded). Made once and kept with the reference
    (``Reference.memo``: a stand-in that records or replays its calls has its own)."""
    if (not spec.options.shrinks or getattr(spec.options, "kink", None)
            or getattr(spec.options, "then", None)):
        return []
    key = ("counterexample", rubric.seed, rubric.secret, spec.name, number,
           expectations._shape_of(spec))
    if key not in reference.memo:
        reference.memo[key] = _made(spec, rubric, reference, number)
    found: list[Candidate] = reference.memo[key]
    return found


def _made(spec: TestSpec, rubric: Rubric, reference: Any, number: int) -> list[Candidate]:
    args, kwargs = expectations.case_inputs(spec, rubric, number)
    dims = _dimensions(args)
    lows = _class_axes(spec.cases[number], args, dims)
    scaled = any(inputs.is_spec(a) and (a.get("scale", 1) != 1 or a.get("offset", 0))
                 for a in spec.cases[number].args)
    found: list[Candidate] = []
    for large, most in ((False, MAX_SMALL), (True, MAX_LARGE if scaled else 0)):
        # one generator per pass, drawn from in a fixed order: the same candidates every time
        rng = inputs.rng_for(rubric.seed, rubric.secret, spec.name, number, "small", large)
        made_here = 0
        for choice, draw in itertools.product(_size_choices(dims, lows), range(DRAWS)):
            if made_here >= most:
                break
            if _numbers(args, choice) > MAX_NUMBERS:
                continue
            made = _candidate(spec, reference, spec.cases[number], args, kwargs, choice, rng,
                              large, draw)
            if made is not None and not any(made.same_input(f) for f in found):
                found.append(made)
                made_here += 1
    return found


def _numbers(args: list[Any], choice: dict[Any, int]) -> int:
    """How many numbers the input for ``choice`` would have (before any is drawn)."""
    total, index = 0, 0
    for value in args:
        if isinstance(value, np.ndarray):
            total += math.prod(_key_of(index, axis, n, choice)
                               for axis, n in enumerate(value.shape))
            index += 1
    return total


def search(spec: TestSpec, context: Any, number: int,
           got_of: Callable[[Candidate], list[Any] | None]) -> Found | None:
    """The first candidate on which what the student's function gives (``got_of``: None when
    the call gave nothing to compare) differs from the reference's, within ``MAX_TRIES``
    calls; None when there is none (or no time left)."""
    tolerance = getattr(spec.options, "tolerance", None)
    for candidate in candidates(spec, context.rubric, context.reference, number):
        if context.session.out_of_time:
            return None
        got = got_of(candidate)
        if got is None:
            continue
        for name, value, want in zip(spec.outputs, got, candidate.expected):
            if not compare(name, value, want, tolerance=tolerance).passed:
                return Found(_described(context, spec, candidate), name, _plain(want),
                             _plain(value), candidate.large)
    return None


# --- making the candidates --------------------------------------------------------------------


def _dimensions(args: list[Any]) -> dict[Any, int]:
    """The case's dimensions that shrink, each with its size: a size two arrays share (a dense
    layer's D in x and W) is one dimension, so their shapes stay compatible; a dimension of one
    array alone (a pooled image's height and width) shrinks on its own."""
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    shared = {n for i, a in enumerate(arrays) for n in a.shape
              if any(n in b.shape for j, b in enumerate(arrays) if j != i)}
    dims: dict[Any, int] = {}
    for i, a in enumerate(arrays):
        for axis, n in enumerate(a.shape):
            dims[("size", n) if n in shared else (i, axis)] = n
    return dims


def _key_of(array_index: int, axis: int, size: int, choice: dict[Any, int]) -> int:
    return choice.get(("size", size), choice.get((array_index, axis), size))


def _class_axes(case: Case, args: list[Any], dims: dict[Any, int]) -> dict[Any, int]:
    """The smallest size of each dimension that is a labels input's class count: 2, since with
    one class every probability is 1 and every loss and gradient 0, which shows no bug."""
    lows: dict[Any, int] = {}
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    for raw, value in zip(case.args, args):
        if not (inputs.is_spec(raw) and raw.get("dist") == "labels"
                and isinstance(value, np.ndarray)):
            continue
        classes = int(raw.get("classes", int(value.max()) + 1 if value.size else 2))
        for key, size in dims.items():
            index, axis = _axis_of(key, arrays)
            if size == classes and size >= 2 and arrays[index] is not value:
                lows[key] = 2
                break
    return lows


def _axis_of(key: Any, arrays: list[np.ndarray]) -> tuple[int, int]:
    """The first (array, axis) a dimension's key stands for."""
    if key[0] != "size":
        return key[0], key[1]
    return next((i, axis) for i, a in enumerate(arrays) for axis, n in enumerate(a.shape)
                if n == key[1])


def _size_choices(dims: dict[Any, int], lows: dict[Any, int]) -> Iterator[dict[Any, int]]:
    """Each dimension mapped to a small size, smallest inputs first (by the sizes' sum), made
    as they are needed: the search stops long before the many large ones. A dimension starts
    at its low (``_class_axes``), else at 1."""
    keys = list(dims)
    limits = [min(dims[k], MAX_SIZE) for k in keys]
    starts = [min(lows.get(k, 1), limit) for k, limit in zip(keys, limits)]
    for total in range(sum(starts), sum(limits) + 1):
        for values in _summing(starts, limits, total):
            yield dict(zip(keys, values))


def _summing(starts: list[int], limits: list[int], total: int) -> Iterator[tuple[int, ...]]:
    """Every tuple of values in start..limit (one per pair) that adds up to ``total``."""
    if not limits:
        if total == 0:
            yield ()
        return
    rest = sum(starts[1:])
    for first in range(starts[0], min(limits[0], total - rest) + 1):
        for tail in _summing(starts[1:], limits[1:], total - first):
            yield (first, *tail)


def _candidate(spec: TestSpec, reference: Any, case: Case, args: list[Any],
               kwargs: dict[str, Any], choice: dict[Any, int], rng: np.random.Generator,
               large: bool,
               draw: int = 0) -> Candidate | None:
    """The input for one choice of sizes, with the reference's answer; None where it has too
    many numbers, the reference cannot take it, or its answer is empty or not finite."""
    made, index = [], 0
    for raw, value in zip(case.args, args):
        if not isinstance(value, np.ndarray):
            made.append(value)
            continue
        shape = tuple(_key_of(index, axis, n, choice) for axis, n in enumerate(value.shape))
        index += 1
        made.append(_values(raw if inputs.is_spec(raw) else {}, shape, value,
                            _shrunk(args, choice), rng, large, draw))
    if sum(a.size for a in made if isinstance(a, np.ndarray)) > MAX_NUMBERS:
        return None
    try:
        with np.errstate(all="ignore"):
            if spec.forward is None:  # (an output test; else a gradient test's forward)
                expected = expectations.expected_outputs(spec, case, reference[spec.function],
                                                         made, kwargs)
                return _checked(Candidate(made, dict(kwargs), expected, None, large))
            out, cache = reference[spec.forward or ""](*_copies(made), **kwargs)
            if np.size(out) == 0:
                return None
            # (never 0: a zero upstream gradient hides whatever a backward does with it)
            dout = rng.choice([-2.0, -1.0, 1.0, 2.0], size=np.shape(out))
            expected = expectations.as_list(reference[spec.function](dout.copy(), cache),
                                            len(spec.outputs))
            return _checked(Candidate(made, dict(kwargs), expected, dout, large))
    except Exception:  # noqa: BLE001 - sizes the reference cannot take (a kernel too large)
        return None


def _checked(candidate: Candidate) -> Candidate | None:
    if any(e.size == 0 or not np.all(np.isfinite(e)) for e in candidate.expected):
        return None
    return candidate


def _copies(args: list[Any]) -> list[Any]:
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def _key(candidate: Candidate) -> tuple[Any, ...]:
    arrays = [*candidate.args, candidate.dout]
    return tuple((a.shape, a.tobytes()) if isinstance(a, np.ndarray) else repr(a)
                 for a in arrays)


def _shrunk(args: list[Any], choice: dict[Any, int]) -> Callable[[int], int]:
    """What each size of the case's arrays becomes in ``choice``: that of the first axis of
    that size. A labels input's class count is its scores' class axis, a dimension of theirs
    alone (keyed by array and axis, not by size), so it is looked up by axis; a size no array
    has stays as it is."""
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    axes: dict[int, tuple[int, int]] = {}
    for index, array in enumerate(arrays):
        for axis, n in enumerate(array.shape):
            axes.setdefault(n, (index, axis))
    return lambda size: (_key_of(axes[size][0], axes[size][1], size, choice) if size in axes
                         else size)


def _values(raw: dict[str, Any], shape: tuple[int, ...], original: np.ndarray,
            shrunk: Callable[[int], int], rng: np.random.Generator, large: bool,
            draw: int = 0) -> np.ndarray:
    """Small integers of the input's kind: labels below their (shrunk) class count, distinct
    values where the test has them (the first draw with its largest values in the middle,
    where overlapping windows share pixels), none at zero where the test keeps away from
    it."""
    dist = raw.get("dist", "normal")
    if dist == "labels" or original.dtype.kind in "iu":
        classes = int(raw.get("classes", int(original.max()) + 1 if original.size else 2))
        return rng.integers(0, max(shrunk(classes), 1), shape).astype(original.dtype)
    count = int(np.prod(shape))
    if dist == "distinct" and draw == 0:
        return _peak(shape, rng).astype(original.dtype)
    if dist == "distinct":
        values = rng.permutation(np.arange(1, count + 1) * (1 - 2 * (np.arange(count) % 2)))
    elif raw.get("away_from_zero"):
        values = rng.choice([-2.0, -1.0, 1.0, 2.0], size=count)
    else:
        values = rng.integers(-2, 3, size=count).astype(np.float64)
    values = np.asarray(values, dtype=np.float64).reshape(shape)
    if large:
        values = values * float(raw.get("scale", 1.0)) + float(raw.get("offset", 0.0))
    return values.astype(original.dtype)


def _peak(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Distinct integers that grow towards the middle of the last two axes."""
    grid = np.indices(shape[-2:]) if len(shape) >= 2 else np.indices(shape)
    centre = [(n - 1) / 2 for n in shape[-2:]] if len(shape) >= 2 else [(shape[0] - 1) / 2]
    distance = sum(np.abs(g - c) for g, c in zip(grid, centre))
    tie_break = rng.random(distance.shape) * 0.5
    order = np.argsort(np.argsort(-(distance + tie_break), axis=None))  # far: small
    plane = (order + 1).reshape(distance.shape).astype(np.float64)
    return np.broadcast_to(plane, shape) * np.ones(shape)


# --- showing it -----------------------------------------------------------------------------


def _described(context: Any, spec: TestSpec, candidate: Candidate) -> str:
    """``x = [[1, -2]], W = [[0], [1]], stride = 2``, named as in the reference's signature."""
    function = spec.forward or spec.function
    try:
        names = list(inspect.signature(context.reference[function]).parameters)
    except (KeyError, TypeError, ValueError):
        names = []
    parts = [f"{names[i] if i < len(names) else f'arg{i + 1}'} = {_short(_plain(value))}"
             for i, value in enumerate(candidate.args)]
    parts += [f"{key} = {_short(_plain(value))}" for key, value in candidate.kwargs.items()]
    if candidate.dout is not None:
        parts.append(f"dout = {_short(_plain(candidate.dout))}")
    return ", ".join(parts)


def _plain(value: Any) -> Any:
    """An array as nested lists, whole numbers without their ``.0`` (what one checks by hand)."""
    if not isinstance(value, np.ndarray):
        return value if isinstance(value, int | float | str) else str(value)
    if value.size > SHOWN * 4:
        return f"an array of shape {value.shape}"
    values = value.astype(np.float64)
    if (np.all(np.isfinite(values)) and np.all(np.abs(values) < 2**53)
            and np.all(values == np.round(values))):
        return values.astype(np.int64).tolist()
    return np.round(values, 4).tolist()


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "…"
