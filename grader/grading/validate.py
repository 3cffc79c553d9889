"""Validate an assignment before any student pays for a mistake in it.

A rubric can be well-formed and still wrong: a keyword the function does not take, an output
name the function does not return, a function the solution notebook never defines or defines
without solution markers. Each of these used to reach students as a lost point or an
"internal grader error" on their page. ``assignment`` finds them first, one line each:

1. the rubric against its strict schema (``grader.checks.rubric``);
2. the solution notebook: every function of ``[assignment].functions`` defined, inside
   solution markers unless ``given`` (``grader.distribute.solution.solution_leaks``);
3. every case called on the reference in this process, on the very inputs the grader will
   generate: keyword arguments against the real signature, ``returns``/``outputs`` against what
   comes back (and against the names in its ``return`` statement);
4. in the sandbox, through the students' path: the reference scores full marks (the canary,
   ``grader.grading.canary``) and the untouched template scores 0 on every graded test. Both
   verdicts are cached per grader, rubric, notebooks and sandbox, so an unchanged re-run is free.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grader import __version__
from grader.checks import kinds, rubric
from grader.checks.rubric import Rubric
from grader.core import reference, solution
from grader.core.errors import GraderError
from grader.core.files import write_atomic
from grader.core.schema import ProblemsError, did_you_mean
from grader.grading import canary

DOCS = rubric.PROJECT_ROOT / "docs" / "rubric.md"


def run(names: Iterable[str], *, solutions_dir: Path = rubric.SOLUTIONS_DIR,
        grade: bool = True) -> list[str]:
    """Validate each named assignment (none: every one in ``solutions_dir``); one line per
    valid assignment, or ``ProblemsError`` with every problem of all of them."""
    names = list(names) or rubric.available(solutions_dir)
    if not names:
        raise GraderError(f"no assignment to validate in {solutions_dir}")
    lines, problems = [], []
    for name in names:
        try:
            loaded = rubric.load(name, solutions_dir=solutions_dir)
            if grade:
                config, files = _machine(loaded)
                lines.append(assignment(loaded, config=config, mnist=files))
            else:
                _raise(static(loaded))
                lines.append(f"{name}: valid ({len(loaded.tests)} tests; not graded)")
        except ProblemsError as exc:
            problems += exc.lines
        except GraderError as exc:
            problems.append(str(exc))
    _raise(problems)
    return lines


def assignment(loaded: Rubric, *, config: Any, mnist: Any = None,
               cache_dir: Path | None = None) -> str:
    """Everything above for one loaded rubric, on the grading machine's sandbox ``config``."""
    _raise(static(loaded))
    verdict = canary.check(loaded, config=config, mnist=mnist, cache_dir=cache_dir)
    cached = template_scores_zero(loaded, config=config, mnist=mnist, cache_dir=cache_dir)
    return (f"{loaded.name}: valid ({len(loaded.tests)} tests; the reference scores full marks"
            f"{', cached' if verdict.cached else ''}; the template scores 0"
            f"{', cached' if cached else ''})")


def static(loaded: Rubric) -> list[str]:
    """The problems that need no sandbox: notebook, signatures, returned values."""
    try:
        ref = reference.load(loaded.solution)
    except GraderError as exc:
        return [str(exc)]
    problems = _defined(loaded, ref)
    notebook = _read(loaded.solution)
    graded = [f for f in loaded.functions if f not in loaded.given and f in ref.functions]
    problems += solution.solution_leaks(notebook, name=loaded.solution.name, functions=graded)
    for spec in loaded.tests:
        problems += kinds.get(spec.kind).check_reference(spec, loaded, ref)
    if not problems:  # (the template is made from a notebook that passed the checks above)
        problems += requirements(loaded, _template_text(loaded, graded))
    return problems


# --- every lost point traces to the notebook's text ------------------------------------------


def requirements(loaded: Rubric, template: str) -> list[str]:
    """Every test that can take points quotes the sentence of the handed-out notebook it
    checks, and so does every side check of a backward where a gradient test has points; each
    quote must be in the template (line breaks and runs of spaces aside)."""
    where, text, problems = loaded.path.name, _words(template), []
    for spec in loaded.tests:
        spot = f"{where}: test {spec.name!r}: requirement"
        if spec.requirement:
            problems += _missing_quote(spot, spec.requirement, text, loaded)
        elif spec.points > 0 or kinds.get(spec.kind).costs_others:
            problems.append(f"{spot} is required: quote the sentence of the handed-out notebook "
                            f"this test checks (a test that can take points must trace to what "
                            f"students were given)")
    side_checks = dict.fromkeys(name for s in loaded.tests if s.points > 0
                                for name in kinds.get(s.kind).side_checks)
    for name in side_checks:  # (a backward's, where a gradient test has points)
        spot = f"{where}: [assignment] side_checks: {name!r}"
        quote = loaded.side_checks.get(name, "")
        if not quote:
            problems.append(f"{spot} is required: a failed side check of a backward "
                            f"deducts, so quote the notebook's sentence that asks for it")
        else:
            problems += _missing_quote(spot, quote, text, loaded)
    return problems


def _missing_quote(spot: str, quote: str, text: str, loaded: Rubric) -> list[str]:
    if _words(quote) in text:
        return []
    shown = " ".join(quote.split())
    shown = shown if len(shown) <= 70 else shown[:69] + "…"
    return [f"{spot} {shown!r} is not in the template made from {loaded.solution.name}: quote "
            f"its text exactly (only line breaks and runs of spaces may differ)"]


def _words(text: str) -> str:
    return " ".join(text.split())


def _template_text(loaded: Rubric, graded: list[str]) -> str:
    """Everything students read in the handed-out notebook: every cell's text."""
    import nbformat

    made = solution.render_assignment(loaded.solution, functions=graded)
    return "\n".join(cell.source for cell in nbformat.reads(made.decode(), as_version=4).cells)


def write_docs(path: Path = DOCS) -> Path:
    """docs/rubric.md from the schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, rubric.reference_markdown())
    return path


# --- the solution notebook -------------------------------------------------------------------


def _read(solution: Path) -> Any:
    import nbformat

    return nbformat.read(solution, as_version=4)


def _defined(loaded: Rubric, ref: reference.Reference) -> list[str]:
    return [
        f"{loaded.solution.name}: `{name}` is in {loaded.path.name} [assignment].functions but "
        f"the notebook does not define it{did_you_mean(name, ref.functions)}"
        for name in loaded.functions
        if name not in ref.functions
    ]


# --- calling the reference -------------------------------------------------------------------


# --- the template, graded --------------------------------------------------------------------


def template_scores_zero(loaded: Rubric, *, config: Any, mnist: Any = None,
                         cache_dir: Path | None = None) -> bool:
    """The template made from the solution, graded like a submission, scores 0 on every test of
    a function students write (``rules`` tests reward what is absent, so they are exempt).
    Returns whether the verdict was cached; raises ``ProblemsError`` naming each test."""
    from grader.grading.grade import Job, grade_submission
    from grader.run import zygote
    from grader.run.layers import plan_layers

    text = solution.render_assignment(loaded.solution)
    layers, missing = plan_layers(config.mode, allow_unisolated=config.allow_unisolated)
    parts = [__version__, loaded.sha256, repr(loaded), hashlib.sha256(text).hexdigest(),
             zygote.describe(layers, missing), config.mode, repr(config.limits),
             platform.node(), sys.executable]
    key = hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
    path = (cache_dir or canary.default_cache_dir()).parent / "template" / f"{key}.json"
    if path.exists():
        return True
    with tempfile.TemporaryDirectory() as folder:
        template = Path(folder) / f"{loaded.name}.ipynb"
        template.write_bytes(text)
        result = grade_submission(Job(path=template, rubric=loaded, sandbox=config, mnist=mnist))
    where = f"{loaded.path.name}: the untouched template of {loaded.solution.name}"
    if result.error:
        raise GraderError(f"{where} cannot be graded: {result.error}")
    problems = [
        f"{where} scores {t.score:g}/{t.max_score:g} on test {t.name!r} ({t.message[:160]}): a "
        f"solution survives in `{t.function}` outside its solution markers, or list it in "
        f"[assignment].given"
        for t, spec in zip(result.tests, loaded.tests)
        if t.score > 0 and not kinds.get(spec.kind).template_may_score
        and spec.function not in loaded.given
    ]
    _raise(problems)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"template": "scores 0", "rubric": loaded.name}))
    return False


def _machine(loaded: Rubric) -> tuple[Any, Any]:
    """The sandbox (and MNIST) validation grades with: the instructor's own notebooks need no
    isolation from the solutions (as for a student's self-check)."""
    from grader.run.layers import SandboxConfig, plan_layers

    config = SandboxConfig.from_env(allow_unisolated=True)
    plan_layers(config.mode, allow_unisolated=True)
    files = None
    if loaded.needs_mnist:
        from grader.run import mnist

        files = mnist.prepare()
        config = dataclasses.replace(config, data_dir=files.sandbox_dir)
    return config, files


def _raise(problems: list[str]) -> None:
    if problems:
        raise ProblemsError(problems)
