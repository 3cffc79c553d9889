"""What the checks need of the reference that no student changes, computed once and shared:
each case's inputs, the reference's outputs and gradients, and central differences of the
reference forward (the costliest part of a gradient test: hundreds of forward calls per case).

They are remembered with the reference they come from (``Reference.memo``: a stand-in that
records or replays its calls has its own), keyed by the rubric's seed and secret and everything
of the test that shapes them. A batch fills the memory in its own process before its workers
fork (``prepare``), so every worker starts with them; where nothing was
prepared (a fork server, a Dask worker, one grading) the first submission computes them and the
next ones reuse them.
Per submission there remain only the student's calls and the comparisons.

The central differences are also kept on disk, in this user's grader cache (never where a
sandbox can see): keyed by the solution notebook's bytes, the exact inputs, the random state
they start from and the grader's code that measures them, so that the next batch reads them
in milliseconds (the convolution forward's take 50 ms, on the serial start of every batch).

Every array here is read-only: a check that wrote into one would corrupt the grading of every
later submission, so NumPy refuses the write instead (a grader bug, loudly).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np

from grader import __version__
from grader.checks import compare, inputs
from grader.checks.compare import (
    directional_slopes,
    numerical_gradient,
    relative_error,
    slope_error,
)
from grader.checks.spec import Case, Rubric, TestSpec
from grader.core import paths
from grader.core.errors import GraderError
from grader.core.reference import Reference
from grader.core.results import write_atomic

T = TypeVar("T")


@dataclass(frozen=True)
class Numeric:
    """Central differences of sum(forward · dout) with respect to one input: at sampled
    coordinates (``measured``) and along random directions of the whole tensor."""

    gradient: np.ndarray
    measured: np.ndarray
    directions: tuple[np.ndarray, ...]
    slopes: tuple[float, ...]

    def error(self, value: np.ndarray) -> float:
        """The relative error of a gradient against these differences, the worse of the two."""
        sampled = relative_error(value[self.measured], self.gradient[self.measured])
        return max(sampled, slope_error(value, self.directions, self.slopes))


@dataclass(frozen=True)
class OutputCase:
    args: list[Any]
    kwargs: dict[str, Any]
    expected: list[np.ndarray]


@dataclass(frozen=True)
class GradientCase:
    args: list[Any]
    kwargs: dict[str, Any]
    dout: np.ndarray
    expected: list[np.ndarray]
    numeric: list[Numeric | None]  # per compared gradient; None where not measured


def output_case(spec: TestSpec, rubric: Rubric, reference: Reference, number: int) -> OutputCase:
    return _remembered(spec, rubric, reference, number,
                       lambda: _output_case(spec, rubric, reference, number))


def gradient_case(spec: TestSpec, rubric: Rubric, reference: Reference,
                  number: int) -> GradientCase:
    return _remembered(spec, rubric, reference, number,
                       lambda: _gradient_case(spec, rubric, reference, number))


def prepare(rubric: Rubric, reference: Reference) -> None:
    """Compute now, once per batch and before its workers fork, what every test's kind needs
    of the reference (``Kind.prepare``: each case's inputs and answers...), so that every
    worker starts with it."""
    for spec in rubric.tests:
        spec.hooks.prepare(spec, rubric, reference)


def _remembered(spec: TestSpec, rubric: Rubric, reference: Reference, number: int,
                compute: Callable[[], T]) -> T:
    """In the reference's own memo: a recording or replaying stand-in for the reference
    (``grader.distribute.selfcheck``, ``grader.distribute.checker``) must see, or answer, every
    call itself."""
    key = ("expectations", str(rubric.seed), rubric.secret, spec.name, str(number),
           _shape_of(spec))
    if key not in reference.memo:
        reference.memo[key] = compute()
    found: T = reference.memo[key]  # (what ``compute`` made: the key names its test and case)
    return found


def _shape_of(spec: TestSpec) -> str:
    """Everything of a test that the expected values depend on (not its budgets or points)."""
    parts = [spec.kind, spec.function, spec.forward, spec.returns, spec.outputs,
             repr(spec.cases),
             {k: getattr(spec.options, k, None) for k in ("then", "wrt", "numeric")}]
    text = json.dumps(parts, default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# --- computing them --------------------------------------------------------------------------


def case_inputs(spec: TestSpec, rubric: Rubric,
                number: int) -> tuple[list[Any], dict[str, Any]]:
    """The seeded inputs of a case: the same for every student, independent of test order,
    and drawn with the rubric's secret (``Rubric.secret``): the self-check's are others."""
    case = spec.cases[number]
    rng = inputs.rng_for(rubric.seed, rubric.secret, spec.name, number)
    args = [inputs.make(a, rng) for a in case.args]
    kwargs = {k: inputs.make(v, rng) for k, v in case.kwargs.items()}
    return args, kwargs


def positions(spec: TestSpec) -> list[int]:
    """Where each compared output sits in the returned tuple."""
    returns = list(spec.returns) or list(spec.outputs)
    return [returns.index(name) for name in spec.outputs]


def expected_outputs(spec: TestSpec, case: Case, function: Callable[..., Any],
                     args: list[Any], kwargs: dict[str, Any]) -> list[np.ndarray]:
    """The values a case's compared outputs must have: the rubric's, or the reference's."""
    if case.expected is not None:  # (an example test: the rubric's literal answer)
        return [np.asarray(case.expected, dtype=np.float64)]
    value = function(*_copies(args), **kwargs)
    if spec.returns:
        return [np.asarray(value[p], dtype=np.float64) for p in positions(spec)]
    return [np.asarray(value, dtype=np.float64)]


def _output_case(spec: TestSpec, rubric: Rubric, reference: Reference, number: int) -> OutputCase:
    args, kwargs = case_inputs(spec, rubric, number)
    expected = expected_outputs(spec, spec.cases[number], reference[spec.function], args, kwargs)
    return OutputCase(_frozen(args), _frozen(kwargs), _frozen(expected))


def _gradient_case(spec: TestSpec, rubric: Rubric, reference: Reference,
                   number: int) -> GradientCase:
    args, kwargs = case_inputs(spec, rubric, number)
    forward, backward = reference[spec.forward or ""], reference[spec.function]
    out, cache = forward(*_copies(args), **kwargs)
    rng = inputs.rng_for(rubric.seed, rubric.secret, spec.name, number, "upstream")
    dout = inputs.make(spec.cases[number].upstream or {"shape": list(np.shape(out))}, rng)
    expected = as_list(backward(dout.copy(), cache), len(spec.outputs))
    # the last use of ``rng``: a measurement read back from disk draws nothing from it
    numeric = _numeric_kept(spec, reference, forward, args, kwargs, dout, rng)
    return GradientCase(_frozen(args), _frozen(kwargs), _frozen(dout), _frozen(expected),
                        numeric)


def _numeric(spec: TestSpec, forward: Callable[..., Any], args: list[Any],
             kwargs: dict[str, Any], dout: np.ndarray,
             rng: np.random.Generator) -> list[Numeric | None]:
    """Central differences (float64, step 1e-5) of the reference forward for each gradient."""
    wrt = _positions(spec)
    if getattr(spec.options, "numeric", True) is False:  # kinks probed on purpose: none there
        return [None] * len(wrt)
    work = [a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in args]

    def loss() -> float:
        return float(np.sum(np.asarray(forward(*work, **kwargs)[0]) * dout))

    found: list[Numeric | None] = []
    for position in wrt:
        target = work[position]
        if not isinstance(target, np.ndarray):
            found.append(None)
            continue
        gradient, measured = numerical_gradient(loss, target, rng=rng)
        directions, slopes = directional_slopes(loss, target, rng=rng)
        found.append(Numeric(_frozen(gradient), _frozen(measured), _frozen(directions), slopes))
    return found


# --- central differences kept on disk ---------------------------------------------------


def _numeric_kept(spec: TestSpec, reference: Reference, forward: Callable[..., Any],
                  args: list[Any], kwargs: dict[str, Any], dout: np.ndarray,
                  rng: np.random.Generator) -> list[Numeric | None]:
    """``_numeric``, read back where the same measurement was kept, else measured and kept.
    Only for a reference read from its notebook: a stand-in must see, or answer, every call."""
    path = _kept_path(spec, reference, args, kwargs, dout, rng)
    found = _read_kept(path, spec, args) if path is not None else None
    if found is not None:
        return found
    numeric = _numeric(spec, forward, args, kwargs, dout, rng)
    if path is not None:
        _keep(path, numeric)
    return numeric


def _kept_path(spec: TestSpec, reference: Reference, args: list[Any], kwargs: dict[str, Any],
               dout: np.ndarray, rng: np.random.Generator) -> Path | None:
    """Where this measurement is kept: named by everything it depends on. None: nowhere (a
    stand-in, a test without numerical gradients, or no cache folder of this user's)."""
    if reference.digest is None or getattr(spec.options, "numeric", True) is False:
        return None
    key = hashlib.sha256()
    # (a gradient test always names its forward; each value's bytes go in as they are, and a
    # keyword's as their repr, b'…', which is what the key has always been made of)
    parts: tuple[str | bytes, ...] = (
        __version__, np.__version__, _method(), reference.digest, spec.forward or "",
        json.dumps(getattr(spec.options, "wrt", None), default=str),
        json.dumps(rng.bit_generator.state, sort_keys=True, default=str),
        *(_value_text(v) for v in [*args, dout]),
        *(f"{k}={_value_text(v)!r}" for k, v in sorted(kwargs.items())))
    for part in parts:
        key.update(part.encode() if isinstance(part, str) else part)
        key.update(b"\0")
    try:
        folder = paths.private_dir(paths.cache_dir("expectations"))
    except GraderError:
        return None
    return folder / f"{key.hexdigest()[:40]}.npz"


@functools.cache
def _method() -> str:
    """The code that measures: a change to it measures again (``__version__`` may lag)."""
    code = b"".join(Path(module.__file__).read_bytes() for module in (compare, inputs)
                    if module.__file__) + Path(__file__).read_bytes()
    return hashlib.sha256(code).hexdigest()


def _value_text(value: Any) -> bytes:
    if isinstance(value, np.ndarray):
        return f"{value.dtype.str}{value.shape}".encode() + np.ascontiguousarray(value).tobytes()
    return f"{type(value).__name__}:{value!r}".encode()


def _read_kept(path: Path, spec: TestSpec, args: list[Any]) -> list[Numeric | None] | None:
    """The kept measurement, or None where there is none or it does not fit these inputs
    (then it is measured again and replaced)."""
    try:
        with np.load(path, allow_pickle=False) as kept:
            layout = kept["layout"]
            found: list[Numeric | None] = []
            for number, position in enumerate(_positions(spec)):
                count = int(layout[number])
                if count < 0:
                    found.append(None)
                    continue
                shape = np.shape(args[position])
                gradient, measured = kept[f"gradient{number}"], kept[f"measured{number}"]
                directions = tuple(kept[f"direction{number}_{d}"] for d in range(count))
                slopes = tuple(float(v) for v in kept[f"slopes{number}"])
                if (gradient.dtype != np.float64 or measured.dtype != np.bool_
                        or gradient.shape != shape or measured.shape != shape
                        or len(slopes) != count
                        or any(d.shape != shape or d.dtype != np.float64 for d in directions)):
                    return None
                found.append(Numeric(_frozen(gradient), _frozen(measured), _frozen(directions),
                                     slopes))
            return found if len(layout) == len(found) else None
    except (OSError, ValueError, KeyError, IndexError, EOFError, zipfile.BadZipFile):
        return None


def _keep(path: Path, numeric: list[Numeric | None]) -> None:
    """Written whole (``write_atomic``): a reader sees all of it or none. A cache that cannot
    be written only costs the next batch the measurement."""
    arrays: dict[str, np.ndarray] = {"layout": np.array(
        [-1 if n is None else len(n.directions) for n in numeric], dtype=np.int64)}
    for number, found in enumerate(numeric):
        if found is None:
            continue
        arrays[f"gradient{number}"], arrays[f"measured{number}"] = found.gradient, found.measured
        arrays[f"slopes{number}"] = np.array(found.slopes, dtype=np.float64)
        for d, direction in enumerate(found.directions):
            arrays[f"direction{number}_{d}"] = direction
    kept = io.BytesIO()
    # (numpy's stub fears an unpacked dict holds ``allow_pickle``: these keys are array names)
    np.savez(kept, **arrays)  # type: ignore[arg-type]
    try:
        write_atomic(path, kept.getvalue())
    except OSError:
        pass


def _positions(spec: TestSpec) -> list[int]:
    """The arguments whose gradients are measured (``wrt``)."""
    wrt = getattr(spec.options, "wrt", None)
    return list(wrt) if wrt is not None else list(range(len(spec.outputs)))


def as_list(value: Any, count: int) -> list[np.ndarray]:
    if count == 1:
        return [np.asarray(value, dtype=np.float64)]
    return [np.asarray(v, dtype=np.float64) for v in value]


def _copies(args: list[Any]) -> list[Any]:
    """Fresh copies of array arguments: the reference must not see, or cause, in-place edits."""
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def _frozen(value: T) -> T:
    """``value`` with every array in it read-only (lists and tuples keep their type)."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
        return value
    # (a container of the same type, its items of the same types: only their flags change)
    if isinstance(value, dict):
        return cast(T, {k: _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return cast(T, type(value)(_frozen(v) for v in value))
    return value
