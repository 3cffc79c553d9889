"""The grading engine as the server uses it: the batch tool's functions, not a copy of them.

``prepare`` does what ``grader grade`` does before any student: load the rubric, plan the
sandbox (refusing one that cannot isolate), prepare MNIST, validate the rubric and run the
reference canary (cached on disk, as the batch caches it). ``grade`` then builds the same
``grade.Job`` the batch builds (rubric, sandbox, MNIST, the canary's reference times) and
calls ``grade.grade_submission``: the same notebook gets the same scores from both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.checks import rubric as rubric_module
from grader.checks.rubric import Rubric
from grader.core.results import SubmissionResult
from grader.grading.grade import Job, grade_submission
from grader.run.layers import SandboxConfig, plan_layers


@dataclass(frozen=True)
class Prepared:
    """One assignment, ready to grade on this machine."""

    rubric: Rubric
    sandbox: SandboxConfig
    mnist: Any = None
    reference_seconds: dict[str, float] | None = None


def prepare(name: str, *, validate: bool = True, trusted: bool = False) -> Prepared:
    """As ``grader grade`` prepares before its first student (``cli._setup``, validate and
    the canary); ``GraderError``/``InfrastructureError`` for what the instructor must fix."""
    from grader.grading import canary
    from grader.grading import validate as validation

    loaded = rubric_module.load(name)
    config = SandboxConfig.from_env(allow_unisolated=trusted)
    plan_layers(config.mode, allow_unisolated=trusted)  # refuses here, before any grading
    files = None
    if loaded.needs_mnist:
        from grader.run import mnist

        files = mnist.prepare()
        config = dataclasses.replace(config, data_dir=files.sandbox_dir)
    if validate:
        validation.assignment(loaded, config=config, mnist=files)
    verdict = canary.check(loaded, config=config, mnist=files)
    return Prepared(loaded, config, files, verdict.reference_seconds)


def warm(prepared: list[Prepared]) -> None:
    """What a batch computes once before its workers fork: the reference's answers, the page
    templates and a warm zygote, so that a worker's first student costs what the others do."""
    from grader.checks import expectations
    from grader.core import reference
    from grader.render import report
    from grader.run import zygote

    if prepared:
        zygote.process_pool().warm(prepared[0].sandbox, 1)
    for one in prepared:
        expectations.prepare(one.rubric, reference.load(one.rubric.solution))
    report.warm_up()


def job(prepared: Prepared, path: Path, student: str) -> Job:
    """The batch's job for this file (``batch._grade_all`` builds it the same way)."""
    return Job(path=path.resolve(), rubric=prepared.rubric, sandbox=prepared.sandbox,
               mnist=prepared.mnist, reference_seconds=prepared.reference_seconds,
               student=student)


def grade(prepared: Prepared, path: Path, student: str) -> SubmissionResult:
    return grade_submission(job(prepared, path, student))
