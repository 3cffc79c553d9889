"""Cells run as in Jupyter: the first failing statement stops the cell (its definitions still
count), cells are numbered as Jupyter's ``In [n]``, and the template's MNIST download and
training cells, which fail in any grader, are not blamed on the student."""

from __future__ import annotations

from pathlib import Path

import nbformat

from grader.core.results import SubmissionResult
from tests.conftest import ROOT, UNIT_KINDS

STOPPED = '''
assert False, "x"
print("dense layer looks good")
def helper():
    return 42
alias = helper
'''


def printed(result: SubmissionResult) -> str:
    return "\n".join(n for n in result.notices if n.startswith("your notebook printed"))


def jupyter_number(path: Path, words: str) -> int:
    """The ``In [n]`` Jupyter shows for the cell holding ``words`` after a top-to-bottom run
    (empty code cells are not run, so they get no number)."""
    cells = [c for c in nbformat.read(path, as_version=4).cells
             if c.cell_type == "code" and c.source.strip()]
    return next(n for n, c in enumerate(cells, start=1) if words in c.source)


def test_a_failing_statement_stops_its_cell_but_not_its_definitions(submission,
                                                                   grade_notebook) -> None:
    path = submission("convolution", extra_cells=[
        "", STOPPED, 'print("helper says", alias())',
        'raise RuntimeError("plot broke")\n'
        'def conv1d(x, w, stride=1):\n    raise NotImplementedError("redefined after")',
    ])
    result = grade_notebook(path, "convolution", kinds=UNIT_KINDS)
    assert "dense layer looks good" not in printed(result)
    assert "helper says 42" in printed(result)
    number = jupyter_number(path, 'assert False, "x"')
    notice = next(n for n in result.notices if "AssertionError" in n)
    assert notice.startswith(f"cell In [{number}] raised an error at line 2: AssertionError: x")
    assert "rest of the cell did not run" in notice
    conv1d = [t for t in result.tests if t.function == "conv1d"]
    assert conv1d and all(t.score == 0 for t in conv1d)  # the def after the error counted
    assert any(f"cell In [{number + 2}] raised an error at line 1: RuntimeError" in n
               for n in result.notices), result.notices


def test_the_template_passes_none_of_its_check_cells(submission, grade_notebook) -> None:
    path = submission("backprop", template=True, extra_cells=["print(X_train.shape)"])
    result = grade_notebook(path, "backprop", kinds=UNIT_KINDS)
    assert "looks good" not in printed(result)
    failing = [n for n in result.notices if "raised an error" in n]
    expected = [jupyter_number(path, words) for words in (
        "dense layer looks good", "activations look good", "softmax cross-entropy looks good")]
    assert [int(n.split("[")[1].split("]")[0]) for n in failing] == expected, failing
    assert all("NotImplementedError" in n for n in failing)


def test_mnist_download_and_training_cells_are_not_blamed(submission, grade_notebook) -> None:
    path = submission("backprop", extra_cells=["print(X_train.shape)"])
    result = grade_notebook(path, "backprop", kinds=UNIT_KINDS)
    text = "\n".join(result.notices)
    assert "URLError" not in text and "NameError" not in text and "downloading" not in text
    download, training, extra = (jupyter_number(path, words) for words in (
        "= load_mnist()", "model = train_mnist(", "print(X_train.shape)"))
    [kind] = [n for n in result.notices if "MNIST" in n]
    assert f"cells In [{download}] and In [{training}] download MNIST or train" in kind
    assert f"cell In [{extra}] stopped where it uses what they would have defined" in kind
    assert result.score == result.max_score


def test_cells_are_numbered_as_jupyter_shows_them() -> None:
    from grader.core import notebook

    path = ROOT / "assignments" / "backprop.ipynb"
    read = notebook.read(path)
    raw = nbformat.read(path, as_version=4).cells
    code = [c for c in raw if c.cell_type == "code" and c.source.strip()]
    assert len(code) < len(raw)  # markdown cells in between do not count
    assert [c.index for c in read.cells] == list(range(1, len(code) + 1))
    assert [c.index for c in read.cells if c.loads_data] == [
        jupyter_number(path, "= load_mnist()"), jupyter_number(path, "model = train_mnist(")]
