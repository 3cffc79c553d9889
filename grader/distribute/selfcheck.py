"""Export a self-check students can have: ``python -m grader export-check NAME`` writes
``NAME-check.pyz``, a single-file zipapp (``python NAME-check.pyz my.ipynb``).

It holds the grader's check engine (``grader/``, without templates), the public tests of the rubric
(hidden tests are left out entirely: names, inputs, points) and the reference's answers to every
call those tests can make, recorded here and replayed by ``grader.distribute.checker``. It holds no
reference code: the recording is plain data (JSON and an ``.npz`` read without pickle).

Which calls can a public test make? The smallest-counterexample search's candidates
(``grader.checks.counterexample``: a fixed list, the same for every notebook); the expected outputs
and gradients on the test's seeded inputs; the central differences of the reference forward (whose
random coordinates depend on which gradients have the right shape, so every such combination is
recorded); and the bug patterns' reruns of the reference on changed inputs, recorded by diagnosing
made-up wrong answers, for which every pattern runs. The MNIST tests are not exported: they need the
dataset and minutes of training, and they run when the notebook is graded.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from grader.checks import kinds, rubric
from grader.checks.context import Context
from grader.checks.rubric import Rubric
from grader.core import reference
from grader.core.errors import GraderError
from grader.core.files import replacing
from grader.distribute import replay

# as grader.distribute.checker reads it (not imported: it imports the command line)
BUNDLE_PACKAGE = "checker_data"
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # same input, same file
MAIN = "import sys\nfrom grader.distribute.checker import main\nsys.exit(main())\n"
# The MNIST diagnostic's training loop and culprit search: the checker never runs them (no
# MNIST tests), and the loop is most of what ``train_mnist`` asks students to write.
NOT_BUNDLED = ("fixed_net.py", "culprit.py")


def export(name: str, out: Path, *, solutions_dir: Path = rubric.SOLUTIONS_DIR) -> Path:
    """Write the checker of assignment ``name`` to ``out`` and return its path."""
    full = rubric.load(name, solutions_dir=solutions_dir)
    raw = tomllib.loads(full.path.read_text(encoding="utf-8"))
    public = _public_rubric(raw, full)
    text = json.dumps(public)  # key order kept: it is the order kwargs are described in
    exported = rubric._parse(json.loads(text), path=full.path, solution=full.solution,
                             digest=hashlib.sha256(text.encode()).hexdigest())
    _only_public(exported, full)
    ref = reference.load(full.solution)
    functions, arrays = record(exported, ref)
    bundle = {
        "assignment": name,
        "rubric": public,
        "rubric_sha256": exported.sha256,
        "functions": functions,
        # (the checker says these need MNIST; a public test of another kind it cannot run,
        # ``Kind.exported``, is left out of it)
        "skipped": [t.name for t in full.tests if t.visibility == "public"
                    and not kinds.get(t.kind).exported and t.options.needs_mnist],
    }
    _write_pyz(out, bundle, arrays)
    return out


def _exportable(full: Rubric) -> list[str]:
    """The names of the tests a student may see and the checker can run, as the grader parsed
    them: visibility can come from ``[defaults]``, so a raw test's own keys do not tell."""
    return [t.name for t in full.tests if t.visibility == "public"
            and kinds.get(t.kind).exported]


def _public_rubric(raw: dict[str, Any], full: Rubric) -> dict[str, Any]:
    """The rubric as data, with only the public tests the checker can run, each marked public
    itself (so no ``[defaults]`` can hide or reveal it differently in the checker)."""
    names = set(_exportable(full))
    if not names:
        raise GraderError("this rubric has no public tests to export (only hidden or MNIST)")
    tests = [{**t, "visibility": "public"} for t in raw.get("tests", []) if t.get("name") in names]
    return {**raw, "tests": tests}


def _only_public(exported: Rubric, full: Rubric) -> None:
    """Fail closed: the exported rubric, as the checker will parse it, holds exactly the public
    tests of the grader's own rubric, or nothing is written."""
    names = [t.name for t in exported.tests]
    if any(t.visibility != "public" for t in exported.tests) or names != _exportable(full):
        raise GraderError(f"export-check: the exported rubric would hold {names}, not exactly "
                          f"the public tests {_exportable(full)}; nothing was written (a grader "
                          f"bug, please report it)")


# --- recording ---------------------------------------------------------------------------


class Recorder:
    """The reference, with every call's answer kept by ``replay.call_key``."""

    def __init__(self, ref: reference.Reference) -> None:
        self.ref = ref
        self.answers: dict[str, dict[str, dict[str, Any]]] = {}  # function -> key -> answer
        self.arrays: dict[str, np.ndarray] = {}

    def function(self, name: str) -> Callable[..., Any]:
        real = self.ref[name]

        def recorded(*args: Any, **kwargs: Any) -> Any:
            key = replay.call_key(name, args, kwargs)  # before the call could change them
            answers = self.answers.setdefault(name, {})
            try:
                value = real(*args, **kwargs)
            except Exception as exc:
                answers[key] = {"raises": f"{type(exc).__name__}: {exc}"}
                raise
            answers[key] = {"returns": replay.encode(value, self.arrays)}
            return value

        # (a function object takes any attribute; what inspect.signature reads back)
        recorded.__signature__ = inspect.signature(real)  # type: ignore[attr-defined]
        return recorded

    def reference(self) -> reference.Reference:
        return reference.Reference({n: self.function(n) for n in self.ref.functions}, {})


def record(exported: Rubric,
           ref: reference.Reference) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every reference call the public tests can make, by function: its parameter names and
    answers (plain data), and the arrays those answers refer to."""
    recorder = Recorder(ref)
    # (no session: recording calls the reference alone, never a student's function)
    context = Context(session=None, rubric=exported, reference=recorder.reference(),  # type: ignore[arg-type]
                      forbidden={})
    try:
        for spec in exported.tests:
            kinds.get(spec.kind).record(spec, context)
    except replay.Unrecordable as exc:
        raise GraderError(f"export-check: the reference returned {exc}, which the exported "
                          f"checker cannot hold as plain data") from None
    functions = {
        name: {"parameters": list(inspect.signature(ref[name]).parameters), "answers": answers}
        for name, answers in sorted(recorder.answers.items())
    }
    for spec in exported.tests:  # the feedback names inputs by the reference's parameters
        for name in (spec.function, spec.forward):
            if name in ref.functions and name not in functions:
                functions[name] = {"parameters": list(inspect.signature(ref[name]).parameters),
                                   "answers": {}}
    return functions, recorder.arrays


# --- the zipapp ----------------------------------------------------------------------------


def _write_pyz(out: Path, bundle: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    package = rubric.PROJECT_ROOT / "grader"
    members = sorted(p for p in package.rglob("*.py")
                     if "__pycache__" not in p.parts and p.name not in NOT_BUNDLED)
    npz = io.BytesIO()
    # (numpy's stub fears an unpacked dict holds ``allow_pickle``: these keys are array names)
    np.savez_compressed(npz, **{k: arrays[k] for k in sorted(arrays)})  # type: ignore[arg-type]
    with replacing(out, mode=0o755, suffix=".part") as temporary, open(temporary, "wb") as handle:
        handle.write(b"#!/usr/bin/env python3\n")  # a zipapp, as python -m zipapp makes it
        with zipfile.ZipFile(handle, "w") as archive:
            _add(archive, "__main__.py", MAIN.encode())
            for path in members:
                _add(archive, str(path.relative_to(package.parent)), path.read_bytes())
            _add(archive, f"{BUNDLE_PACKAGE}/__init__.py", b"")
            _add(archive, f"{BUNDLE_PACKAGE}/answers.json",
                 json.dumps(bundle).encode())
            _add(archive, f"{BUNDLE_PACKAGE}/arrays.npz", npz.getvalue())


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o100644 << 16
    archive.writestr(info, data)
