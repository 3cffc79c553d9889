"""Grade one submission end to end: read → run in sandbox → check → score, as plain data.

``grade_submission`` never raises for anything a student did; every fault ends up inside the
returned ``SubmissionResult``. It raises only for grader bugs and instructor mistakes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import time
import traceback
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from grader import __version__
from grader.checks import engine as checks
from grader.checks import shortcuts
from grader.checks.context import GRADER_FAULT
from grader.checks.rubric import Rubric
from grader.core import budgets, notebook, pace, paths, reference, scripts
from grader.core.errors import GraderError
from grader.core.results import SubmissionResult, TestResult
from grader.grading import rescore
from grader.run.layers import SandboxConfig
from grader.run.session import Session

MAX_OUTPUT_NOTICE = 4000


@dataclass(frozen=True)
class Job:
    """Everything needed to grade one file, picklable for worker processes and Dask."""

    path: Path
    rubric: Rubric
    sandbox: SandboxConfig
    mnist: object = None  # grader.run.mnist.MnistFiles
    public_only: bool = False
    # what the reference's calls took on this machine (the canary's measure), which relative
    # budgets follow; None: every relative budget at its cap
    reference_seconds: dict[str, float] | None = None
    # the result's name where the class's intake chose it (a roster id, an LMS user); None:
    # from the file name
    student: str | None = None


def student_name(path: Path) -> str:
    """A file-system-safe name from the file name; a short hash keeps two different names that
    clean to the same text apart (``a b.ipynb`` and ``a_b.ipynb``), and a name the grader
    writes itself (``index.ipynb`` would overwrite the overview) from its file."""
    suffix = next((s for s in (".ipynb", ".py") if path.name.lower().endswith(s)), "")
    stem = path.name[: len(path.name) - len(suffix)] or path.name
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_stem).strip("._-")[:80] or "submission"
    if safe != stem or paths.reserved(safe):
        safe += "-" + hashlib.sha256(stem.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return safe


def cache_key(sha256: str, rubric: Rubric, *, public_only: bool = False) -> str:
    """Same submission, same rubric, same grader (and reference): same result."""
    solution = hashlib.sha256(rubric.solution.read_bytes()).hexdigest()
    parts = f"{sha256}|{rubric.sha256}|{solution}|{__version__}|{public_only}"
    return hashlib.sha256(parts.encode()).hexdigest()[:32]


def grade_submission(job: Job) -> SubmissionResult:
    """The submission's result. Whatever the grader's own code raises while it handles this
    submission's data (reading its text, decoding its answers, running the reference on what
    it returned, scoring) is this submission's result, waiting for review: one notebook never
    stops a class. Only the instructor's mistakes and the machine's faults raise
    (``GraderError``, ``OSError``); the reference canary proves the path first."""
    started = time.perf_counter()
    try:
        return _grade(job, started)
    except (GraderError, OSError):
        raise
    except Exception as exc:  # noqa: BLE001 - attributed to this submission, kept for review
        return _grader_fault(job, exc, started)


def _grader_fault(job: Job, exc: Exception, started: float) -> SubmissionResult:
    """Every test waiting for review, with the traceback kept for the instructor."""
    try:
        digest = hashlib.sha256(job.path.read_bytes()).hexdigest()
    except OSError:
        digest = ""
    what = f"{type(exc).__name__}: {exc}"
    why = (f"the grader failed on this notebook ({what[:200]}). "
           f"{GRADER_FAULT}")
    return SubmissionResult(
        student=job.student or student_name(job.path), assignment=job.rubric.name,
        submission=notebook.display_name(job.path), sha256=digest, error=None, notices=(),
        tests=rescore.ungraded(job.rubric, why, public_only=job.public_only, status="review"),
        grader_version=__version__, duration_s=_since(started),
        cache_key=cache_key(digest, job.rubric, public_only=job.public_only),
        grader_fault="".join(traceback.format_exception(exc))[-8000:])


class _Common(TypedDict):
    """What every result of one notebook says, graded or not."""

    student: str
    assignment: str
    submission: str
    sha256: str
    grader_version: str
    cache_key: str
    observations: NotRequired[tuple[str, ...]]


def _grade(job: Job, started: float) -> SubmissionResult:
    timings: dict[str, float] = {}
    read = scripts.read(job.path)  # (a .py hand-in: as a notebook of one cell)
    timings["read_notebook"] = time.perf_counter() - started
    base = _Common(
        student=job.student or student_name(job.path),
        assignment=job.rubric.name,
        submission=notebook.display_name(job.path),
        sha256=read.sha256,
        grader_version=__version__,
        cache_key=cache_key(read.sha256, job.rubric, public_only=job.public_only),
    )
    if isinstance(read, notebook.UnreadableNotebook):
        tests = _ungraded(job, read.error)
        return SubmissionResult(
            error=read.error,
            notices=(),
            tests=tests,
            duration_s=_since(started),
            timings=timings,
            **base,
        )
    # what it observes, keyed by the rubric as written (not as budgets.resolve sets it here)
    base["observations"] = rescore.observation_keys(read.sha256, job.rubric,
                                                    public_only=job.public_only)
    ref = reference.load(job.rubric.solution)
    rubric = budgets.resolve(job.rubric, job.reference_seconds)
    began = time.perf_counter()
    with _disguised(job.mnist, job.rubric.secret, read.sha256) as files:
        if files is not None:
            timings["disguise_mnist"] = time.perf_counter() - began
        config = (dataclasses.replace(job.sandbox, data_dir=files.arrays) if files
                  else job.sandbox)
        return _grade_read(job, read, rubric, ref, config, files, base, started, timings)


@contextlib.contextmanager
def _disguised(files: Any, secret: str, submission: str) -> Iterator[Any]:
    """MNIST as this submission alone sees it (``grader.run.mnist.Disguise``), or None."""
    if files is None:
        yield None
        return
    from grader.run import mnist

    with mnist.disguised(files, mnist.disguise_seed(secret, submission)) as mine:
        yield mine


def _grade_read(job: Job, read: notebook.Notebook, rubric: Rubric, ref: reference.Reference,
                config: SandboxConfig, files: Any, base: _Common, started: float,
                timings: dict[str, float]) -> SubmissionResult:
    total, how = budgets.total_seconds(job.reference_seconds)
    session = Session(
        read,
        config,
        cell_timeout=rubric.cell_timeout,
        setup_budget=rubric.setup_budget,
        deadline=time.monotonic() + total - (time.perf_counter() - started),
        machine_pace=(job.reference_seconds or {}).get(pace.KEY),
    )
    with session:
        began = time.perf_counter()
        context = checks.Context(
            total_budget=f"{total:g} s ({how})",
            session=session,
            rubric=rubric,
            reference=ref,
            forbidden=shortcuts.scan(read),
            unresolved=shortcuts.unresolved(read),
            held=shortcuts.unresolved_reach(read),
            mnist=files,
        )
        tests = tuple(checks.run(context, public_only=job.public_only))
        timings["checks"] = time.perf_counter() - began
        timings.update(session.timings)
        layers = session.layers
    # (missing sandbox layers are the instructor's business: the batch summary and the class
    # overview say so, not every student's page)
    notices = [*read.notices, *session.notices]
    output = session.output()
    if output.strip():
        notices.append("your notebook printed:\n" + _truncate(output))
    return SubmissionResult(
        error=None,
        notices=tuple(notices),
        tests=tests,
        duration_s=_since(started),
        sandbox=layers,
        timings={k: round(v, 4) for k, v in timings.items()},
        sources=read.function_sources(list(job.rubric.functions)),
        **base,
    )


def _ungraded(job: Job, why: str) -> tuple[TestResult, ...]:
    """Zero on every test, so a gradebook still gets one column per test."""
    return rescore.ungraded(job.rubric, why, public_only=job.public_only)


def _truncate(text: str) -> str:
    if len(text) <= MAX_OUTPUT_NOTICE:
        return text
    return text[:MAX_OUTPUT_NOTICE] + f"\n[… {len(text) - MAX_OUTPUT_NOTICE} more characters]"


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
