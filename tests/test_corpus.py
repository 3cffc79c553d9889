"""Real implementations, graded: the grader's verdict and diagnosis against our own checker's.

``tests/corpus`` holds layers written by students, textbook authors and course staff, ported
into the course's signatures (each file names its source). For every function of every port,
our checker (``tests/corpus/checker.py``, none of the grader's code) decides whether it is
correct; the grader must give it full marks exactly then, and where it is wrong its feedback
must name the bug as the port records it. The agreement this measures is quoted in
``docs/checks.md``: ``test_agreement_is_what_the_docs_quote`` keeps the two in step.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from tests import corpus
from tests.conftest import grade_here
from tests.corpus import checker

PORTS = corpus.ports()
ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "checks.md"  # where the agreement is quoted


def namespace(port: corpus.Port) -> dict:
    return {f: getattr(port.module, f) for f in port.functions}


@pytest.mark.parametrize("port", PORTS, ids=[p.name for p in PORTS])
def test_checker_finds_each_recorded_bug_and_nothing_else(port: corpus.Port) -> None:
    found = {f: checker.failures(f, namespace(port)) for f in port.functions}
    wrong = {f for f, failed in found.items() if failed}
    assert wrong == set(port.expected), found
    missed = {f: bug.probe for f, bug in port.expected.items()
              if not checker.finds(found[f], bug.probe)}
    assert not missed, f"the checker's failures {found} lack the recorded probes {missed}"


def test_checker_accepts_the_reference_solutions() -> None:
    """The checker itself, against the notebooks' reference code: no probe fails."""
    for assignment, functions in corpus.FUNCTIONS.items():
        ns = _reference_namespace(assignment)
        failing = {f: checker.failures(f, ns) for f in functions if f in checker.PROBES}
        assert not any(failing.values()), failing


def _reference_namespace(assignment: str) -> dict:
    """The reference notebook's imports and definitions, without its check cells."""
    notebook = nbformat.read(ROOT / "solutions" / f"{assignment}.ipynb", as_version=4)
    ns: dict = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        tree.body = [n for n in tree.body
                     if isinstance(n, ast.Import | ast.ImportFrom | ast.FunctionDef)]
        exec(compile(tree, assignment, "exec"), ns)
    return ns


def _notebook(port: corpus.Port, submission) -> Path:
    """The reference notebook with the port's code in place of the functions it defines: the
    reference's definitions go first, then the whole port takes the first one's place (the
    other way round, a cell holding two of them would lose the port's second one)."""
    first, *rest = port.functions
    replace = {**{f: "" for f in rest}, first: port.code}
    return submission(port.assignment, replace=replace, name=port.name)


@pytest.mark.parametrize("port", PORTS, ids=[p.name for p in PORTS])
def test_grader_agrees_with_the_checker(port: corpus.Port, submission) -> None:
    """(In this process, through the engine's seam: trusted code, the check logic's test.)"""
    result = grade_here(_notebook(port, submission), port.assignment)
    assert result.error is None, result.error
    for test in result.tests:
        if test.function not in port.functions and test.max_score:
            assert test.score == test.max_score, f"{test.name}: {test.message}"
    for function in port.functions:
        tests = [t for t in result.tests if t.function == function and t.max_score]
        failing = [t for t in tests if t.score < t.max_score]
        if function not in port.expected:
            assert not failing, [(t.name, t.message, t.diagnosis) for t in failing]
            assert all(t.diagnosis is None for t in tests), [t.diagnosis for t in tests]
            continue
        bug = port.expected[function]
        assert failing, f"{function} is wrong ({bug.what}) but kept full marks"
        text = " ".join(f"{t.message} {t.diagnosis or ''}" for t in failing).lower()
        missing = [w for w in bug.words if w.lower() not in text]
        assert not missing, f"{function}: the feedback lacks {missing}: {text}"


def agreement() -> tuple[int, int, int, int]:
    """(functions, functions with the checker's verdict, bugs, bugs whose feedback names them):
    what ``test_grader_agrees_with_the_checker`` holds for every port."""
    functions = sum(len(p.functions) for p in PORTS)
    bugs = [b for p in PORTS for b in p.expected.values()]
    return functions, functions, len(bugs), sum(1 for b in bugs if b.words)


def test_agreement_is_what_the_docs_quote() -> None:
    functions, right, bugs, named = agreement()
    authors = {p.author for p in PORTS}
    quoted = (f"{len(PORTS)} implementations by {len(authors)} authors, {functions} functions: "
              f"the grader's verdict agrees with our checker's on {right} of {functions}, and "
              f"its feedback names the bug for {named} of the {bugs} wrong ones")
    text = re.sub(r"\s+", " ", DOCS.read_text())
    assert quoted in text, f"docs/checks.md should say: {quoted}"
