"""The course notebooks, executed for real by a Jupyter kernel (nbclient + ipykernel).

* every solution notebook runs top to bottom without an error, and the MNIST one reports a
  test accuracy of at least 0.95;
* every assignment notebook runs top to bottom with only ``NotImplementedError``s from its
  stubs: no ``NameError`` or ``TypeError`` from a cell that used a stub's missing result.

Notebooks that load MNIST need ``MNIST_DIR`` (a folder with the four gzip IDX files); without
it they are skipped rather than left to download.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest

from grader import ONE_BLAS_THREAD

nbclient = pytest.importorskip("nbclient", reason="nbclient is a dev dependency")

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((REPO / "solutions").glob("*.ipynb"))
ASSIGNMENTS = sorted((REPO / "assignments").glob("*.ipynb"))
ACCURACY = re.compile(r"test accuracy:\s*([0-9]*\.?[0-9]+)")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def needs_mnist(nb: nbformat.NotebookNode) -> bool:
    return any("load_mnist(" in cell.source for cell in nb.cells if cell.cell_type == "code")



def execute(path: Path, *, allow_errors: bool) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    if needs_mnist(nb) and not os.environ.get("MNIST_DIR"):
        pytest.skip(
            f"{path.name} loads MNIST: set MNIST_DIR to a folder with the four gzip IDX files "
            "(e.g. MNIST_DIR=../shared/data/mnist) to run it"
        )
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(path.parent)}},
    )
    # One BLAS thread in the kernel, as the grader's workers have: with OpenBLAS's thread per
    # core, a kernel beside other busy processes spins against them (the backprop notebook's
    # training took 147 s instead of about 10 on a loaded 2-core machine).
    with pytest.MonkeyPatch.context() as patch:
        for key, value in ONE_BLAS_THREAD.items():
            patch.setenv(key, value)  # the kernel inherits the environment it starts in
        client.execute()
    return nb


def stream_text(nb: nbformat.NotebookNode) -> str:
    return "".join(
        output.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )


def errors(nb: nbformat.NotebookNode) -> list[tuple[int, str, str]]:
    return [
        (number, output.ename, output.evalue)
        for number, cell in enumerate(nb.cells, start=1)
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]


def test_there_are_course_notebooks():
    assert [p.name for p in SOLUTIONS] == [p.name for p in ASSIGNMENTS]
    assert {"backprop.ipynb", "convolution.ipynb"} <= {p.name for p in SOLUTIONS}


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_notebook_runs_cleanly(path):
    nb = execute(path, allow_errors=False)  # any error raises CellExecutionError
    assert errors(nb) == []
    if needs_mnist(nb):
        found = ACCURACY.findall(stream_text(nb))
        assert found, f"{path.name} printed no 'test accuracy: ...' line"
        assert float(found[-1]) >= 0.95, f"{path.name}: test accuracy {found[-1]} < 0.95"


@pytest.mark.parametrize("path", ASSIGNMENTS, ids=[p.stem for p in ASSIGNMENTS])
def test_assignment_notebook_fails_only_with_not_implemented(path):
    nb = execute(path, allow_errors=True)
    found = errors(nb)
    assert found, f"{path.name} ran without hitting a single stub"
    wrong = [error for error in found if error[1] != "NotImplementedError"]
    assert not wrong, (
        f"{path.name}: errors other than NotImplementedError (cell, name, message): {wrong}"
    )
