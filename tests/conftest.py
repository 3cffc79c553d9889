"""Shared fixtures: real rubrics, real reference notebooks, real sandbox, real MNIST.

Submissions are built from the reference notebooks with one function swapped for a buggy
version (``submission(...)``), so each test carries exactly the bug it is about.
"""

from __future__ import annotations

import os

from grader import ONE_BLAS_THREAD

# One BLAS thread, set before NumPy loads, as the grader's CLI and workers have: beside other
# busy processes OpenBLAS's thread per core spins against them (2-10x slower tests under load).
for _key, _value in ONE_BLAS_THREAD.items():
    os.environ.setdefault(_key, _value)

import ast
import dataclasses
import textwrap
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from grader.checks import rubric
from grader.core.results import SubmissionResult
from grader.grading import grade
from grader.run import mnist
from grader.run.layers import Limits, SandboxConfig

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("GRADER_SANDBOX", "auto")


@pytest.fixture(scope="session")
def mnist_files() -> mnist.MnistFiles:
    """The real MNIST data, prepared once (from $MNIST_DIR in CI and on the course machines)."""
    if not os.environ.get("MNIST_DIR") and not os.environ.get("CI"):
        pytest.skip("MNIST_DIR is not set (CI sets it to ../shared/data/mnist)")
    return mnist.prepare(download=False)


@pytest.fixture(scope="session")
def sandbox_config() -> SandboxConfig:
    return SandboxConfig.from_env()


def replace_function(source: str, name: str, new: str) -> tuple[str, bool]:
    """``source`` with the top-level ``def name`` replaced by ``new`` (a whole def)."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            lines = source.splitlines()
            start = node.lineno - 1 - len(node.decorator_list)
            lines[start : node.end_lineno] = textwrap.dedent(new).strip().splitlines()
            return "\n".join(lines), True
    return source, False


def build_notebook(
    folder: Path,
    assignment: str,
    *,
    name: str = "student",
    replace: dict[str, str] | None = None,
    extra_cells: list[str] = (),
    template: bool = False,
) -> Path:
    """A submission: the reference (or the template) with functions replaced and cells added."""
    source = ROOT / ("assignments" if template else "solutions") / f"{assignment}.ipynb"
    notebook = nbformat.read(source, as_version=4)
    pending = dict(replace or {})
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for function in list(pending):
            cell.source, done = replace_function(cell.source, function, pending[function])
            if done:
                del pending[function]
    assert not pending, f"functions not found in {source.name}: {sorted(pending)}"
    for cell in notebook.cells:  # a student's notebook carries no solution markers
        lines = cell.source.splitlines()
        cell.source = "\n".join(line for line in lines if not _is_marker(line))
    for text in extra_cells:
        notebook.cells.append(nbformat.v4.new_code_cell(textwrap.dedent(text)))
    path = folder / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return path


def _is_marker(line: str) -> bool:
    text = line.strip()
    return text in ("### BEGIN SOLUTION", "### END SOLUTION") or text.startswith("# HINT:")


@pytest.fixture
def submission(tmp_path: Path) -> Callable[..., Path]:
    def make(assignment: str, **kwargs) -> Path:
        return build_notebook(tmp_path, assignment, **kwargs)

    return make


@pytest.fixture
def grade_notebook(sandbox_config: SandboxConfig, request: pytest.FixtureRequest):
    """Grade a notebook with the real rubric; ``kinds`` limits the rubric to some test kinds
    (the unit-level bug corpus skips the MNIST training, which has tests of its own);
    ``cell_timeout`` and ``setup_budget`` override the rubric's limits for notebook cells,
    ``limits`` the sandbox's (memory, processes...)."""

    def run(
        path: Path,
        assignment: str,
        *,
        kinds: tuple[str, ...] | None = None,
        options: dict | None = None,
        public_only: bool = False,
        cell_timeout: float | None = None,
        setup_budget: float | None = None,
        limits: Limits | None = None,
    ) -> SubmissionResult:
        loaded = rubric.load(assignment)
        tests = [t for t in loaded.tests if kinds is None or t.kind in kinds]
        if options:
            tests = [t.with_options(**options.get(t.kind, {})) for t in tests]
        loaded = dataclasses.replace(loaded, tests=tuple(tests))
        if cell_timeout is not None:  # hostile notebooks: short limits keep the suite fast
            loaded = dataclasses.replace(loaded, cell_timeout=cell_timeout)
        if setup_budget is not None:
            loaded = dataclasses.replace(loaded, setup_budget=setup_budget)
        files = None
        config = sandbox_config if limits is None else dataclasses.replace(sandbox_config,
                                                                           limits=limits)
        if loaded.needs_mnist:
            files = request.getfixturevalue("mnist_files")
            config = dataclasses.replace(config, data_dir=files.sandbox_dir)
        return grade.grade_submission(grade.Job(path, loaded, config, files, public_only))

    return run


UNIT_KINDS = ("example", "output", "gradient", "rules")


def grade_here(path: Path, assignment: str, *, kinds: tuple[str, ...] = UNIT_KINDS,
               loaded: rubric.Rubric | None = None) -> SubmissionResult:
    """Grade a notebook with the real rubric (its ``kinds``) in this process, through the check
    engine's seam (``grader.run.inprocess``): trusted notebooks only, no sandbox, milliseconds.
    The sandboxed path (``grade_notebook``) keeps the end-to-end tests."""
    from grader.checks import engine, shortcuts
    from grader.checks.context import Context
    from grader.core import notebook, reference
    from grader.run import inprocess

    loaded = loaded or rubric.load(assignment)
    loaded = dataclasses.replace(loaded, tests=tuple(t for t in loaded.tests if t.kind in kinds))
    read = notebook.read(path)
    assert not isinstance(read, notebook.UnreadableNotebook), read.error
    with inprocess.session(read, cell_timeout=loaded.cell_timeout,
                           setup_budget=loaded.setup_budget) as session:
        context = Context(session=session, rubric=loaded,
                          reference=reference.load(loaded.solution),
                          forbidden=shortcuts.scan(read), unresolved=shortcuts.unresolved(read),
                          held=shortcuts.unresolved_reach(read))
        tests = tuple(engine.run(context))
    return SubmissionResult(student=path.stem, assignment=loaded.name, submission=path.name,
                            sha256=read.sha256, error=None, notices=tuple(session.notices),
                            tests=tests, grader_version="", duration_s=0.0)


def by_function(result: SubmissionResult) -> dict[str, list]:
    found: dict[str, list] = {}
    for test in result.tests:
        found.setdefault(test.function, []).append(test)
    return found


def assert_only_function_loses(result: SubmissionResult, functions: set[str]) -> None:
    """Every test of another function keeps full marks; the named ones lose points."""
    assert result.error is None, result.error
    for test in result.tests:
        if test.function in functions:
            continue
        assert test.score == test.max_score, (
            f"{test.name} lost points: {test.message} {test.diagnosis}"
        )
    lost = {t.function for t in result.tests if t.score < t.max_score}
    assert lost == functions, f"expected {functions} to lose points, lost: {lost}"
