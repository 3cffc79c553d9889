"""The students' self-check, as exported by ``python -m grader export-check NAME``: the
grader's own check engine on the public tests, with the reference replaced by its recorded
answers.

The grader calls the reference in its own process (expected outputs, expected gradients,
numerical gradients of the reference forward, the bug patterns' reruns). ``grader.selfcheck``
records every such call the public tests can make, keyed by a hash of the function and its
exact arguments; ``Replay`` answers the same calls from that recording and refuses any other,
so the checker ships answers but no reference code and nothing of the hidden tests. The
student's notebook runs in a plain subprocess (``GRADER_SANDBOX=off``): it is their own code.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import inspect
import io
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BUNDLE_PACKAGE = "checker_data"  # the recorded answers' folder at the root of the .pyz
EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_BROKEN = 0, 1, 2, 3


class NotRecorded(BaseException):  # noqa: N818 - a refusal, not an error of the notebook
    """A reference call the recording does not hold. A BaseException on purpose: the bug
    patterns treat an ``Exception`` from a rerun as "this variant does not apply", and an
    unrecorded call must never silently change a diagnosis."""


class Unrecordable(ValueError):
    """A value the recording cannot hold as plain data (only arrays, numbers, strings, None,
    tuples, lists and dicts of them)."""


# --- call keys and plain-data encoding -------------------------------------------------------


def call_key(function: str, args: tuple | list, kwargs: dict[str, Any]) -> str:
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
    """A ``grader.reference.Reference`` whose functions replay the recording (no sources)."""
    from grader.reference import Reference

    functions: dict[str, Callable[..., Any]] = {
        name: Replay(name, tuple(entry["parameters"]), entry["answers"], arrays)
        for name, entry in bundle["functions"].items()
    }
    return Reference(functions, {})


# --- running the check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """What the exported checker carries: the public rubric and the recorded answers."""

    rubric: Any  # grader.rubric.Rubric, public tests only
    reference: Any  # grader.reference.Reference of Replay functions
    skipped: tuple[str, ...]  # public tests the checker cannot run (MNIST), for the summary


def load_bundle() -> Bundle:
    """The bundle inside the .pyz this module was loaded from."""
    folder = importlib.resources.files(BUNDLE_PACKAGE)
    data = json.loads(folder.joinpath("answers.json").read_text(encoding="utf-8"))
    raw_arrays = folder.joinpath("arrays.npz").read_bytes()
    arrays = dict(np.load(io.BytesIO(raw_arrays), allow_pickle=False))
    return Bundle(_rubric(data), stand_in(data, arrays), tuple(data["skipped"]))


def _rubric(data: dict[str, Any]) -> Any:
    from grader import rubric

    here = Path(__file__).resolve().parent.parent / BUNDLE_PACKAGE
    return rubric._parse(data["rubric"], path=here / f"{data['assignment']}.toml",
                         solution=here / "no-reference.ipynb", digest=data["rubric_sha256"])


def check(notebook_path: str | Path, *, bundle: Bundle | None = None,
          quiet: bool = False) -> Any:
    """Run the public tests on a notebook; print the same report as ``python -m grader
    check`` and return the ``SubmissionResult``. From a notebook cell (save it first):
    ``import sys; sys.path.insert(0, "backprop-check.pyz"); import grader.checker as c;
    c.check("my_backprop.ipynb")``."""
    from grader import grade, notebook
    from grader.grade import Job
    from grader.sandbox import SandboxConfig

    bundle = bundle or load_bundle()
    path = Path(notebook_path)
    config = SandboxConfig(mode="off", allow_unisolated=True)  # the student's own code
    job = Job(path, bundle.rubric, config, None, public_only=True)
    started, read = time.perf_counter(), notebook.read(path)
    base = dict(student=grade.student_name(path), assignment=bundle.rubric.name,
                submission=notebook.display_name(path), sha256=read.sha256,
                grader_version=_version(), cache_key="")
    if isinstance(read, notebook.UnreadableNotebook):
        from grader.results import SubmissionResult

        tests = grade._ungraded(job, read.error)
        result = SubmissionResult(error=read.error, notices=(), tests=tests, duration_s=0.0,
                                  timings={}, **base)
    else:
        from grader import budgets

        rubric = budgets.resolve(bundle.rubric, None)
        result = grade._grade_read(job, read, rubric, bundle.reference, config, None, base,
                                   started, {})
    if not quiet:
        print(report(result, bundle))
    return result


def report(result: Any, bundle: Bundle) -> str:
    """The grader's self-check summary, plus the public tests this checker leaves out."""
    from grader import cli

    lines = [cli._summary(result)]
    for name in bundle.skipped:
        lines.append(f"  (not run here: {name}. It needs MNIST and the full training; it runs "
                     f"when your notebook is graded.)")
    return "\n".join(lines)


def passed(result: Any) -> bool:
    return not result.error and all(t.status == "passed" for t in result.tests)


def _version() -> str:
    from grader import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=Path(sys.argv[0]).name,
        description="Check your notebook with the public tests, as the grader runs them.",
    )
    parser.add_argument("notebook", type=Path, help="your .ipynb file (save it first)")
    parser.add_argument("--json", action="store_true",
                        help="print the result as the grader's JSON instead of the summary")
    args = parser.parse_args(argv)  # a usage error exits 2
    if not args.notebook.is_file():
        print(f"{parser.prog}: error: no such notebook: {args.notebook}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = check(args.notebook, quiet=args.json)
        if args.json:
            print(json.dumps(result.to_json(), indent=1, ensure_ascii=False))
    except NotRecorded as exc:
        print(f"{parser.prog}: this checker is incomplete ({exc}). This is not about your "
              f"notebook: tell your instructor.", file=sys.stderr)
        return EXIT_BROKEN
    return EXIT_PASSED if passed(result) else EXIT_FAILED
