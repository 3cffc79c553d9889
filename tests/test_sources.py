"""What the grader reads of a notebook's code outside the sandbox: each rubric function with the
notebook's own helpers it uses (functions, classes, ``name = ...``, transitively), the last
definition winning as when the notebook runs top to bottom, within the caps of
``grader.core.notebook``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import nbformat
import pytest

from grader.core import notebook

CONV1D_INLINE = '''
def conv1d(x, w):
    """Valid cross-correlation of x with w."""
    out = np.zeros(len(x) - len(w) + 1)
    for i in range(len(out)):
        out[i] = np.sum(x[i:i + len(w)] * w)
    return out
'''


def read(*cells: str, path: Path = Path("student.ipynb")) -> notebook.Notebook:
    """A notebook of ``cells`` read as the grader reads a submission."""
    document = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells])
    found = notebook.from_bytes(path, json.dumps(document).encode())
    assert isinstance(found, notebook.Notebook), found
    return found


def defined(source: str) -> list[str]:
    """The names a stored source defines at its top level, in order."""
    lines = source.splitlines()
    return [line.split()[1].split("(")[0].rstrip(":") for line in lines
            if line.startswith(("def ", "class "))] + \
        [line.split(" =")[0] for line in lines if line[:1].isalpha() and " = " in line]


def test_a_function_alone_is_kept_as_written() -> None:
    found = read("import numpy as np", CONV1D_INLINE).function_sources(["conv1d", "conv2d"])
    assert found == {"conv1d": textwrap.dedent(CONV1D_INLINE).strip()}


def test_the_helpers_a_function_calls_come_with_it_transitively() -> None:
    cells = ("import numpy as np",
             '''
             def conv1d(x, w):
                 return _f_impl(x, w)
             ''',
             '''
             def _f_impl(x, w):
                 out = _windows(x, len(w)) @ w
                 return out

             def _windows(x, k):
                 return np.stack([x[i:i + k] for i in range(len(x) - k + 1)])

             def unrelated():
                 return 42
             ''')
    source = read(*cells).function_sources(["conv1d"])["conv1d"]
    assert defined(source) == ["conv1d", "_f_impl", "_windows"]
    assert "unrelated" not in source and "import" not in source


def test_classes_aliases_and_wrapping_rebindings_are_followed() -> None:
    cells = ('''
             class Conv:
                 def __call__(self, x, w):
                     return _body(x, w)

             def _body(x, w):
                 return x * w

             conv1d = Conv()
             ''',
             '''
             def _impl(x):
                 return x + 1

             relu_forward = _impl
             ''',
             '''
             def dense_forward(x, W, b):
                 return x @ W + b

             dense_forward = timed(dense_forward)

             def timed(f):
                 return f
             ''')
    found = read(*cells).function_sources(["conv1d", "relu_forward", "dense_forward"])
    assert found["conv1d"].startswith("conv1d = Conv()")
    assert "class Conv:" in found["conv1d"] and "def _body(x, w):" in found["conv1d"]
    assert found["relu_forward"] == "relu_forward = _impl\n\n\ndef _impl(x):\n    return x + 1"
    assert found["dense_forward"].startswith("dense_forward = timed(dense_forward)")
    assert "return x @ W + b" in found["dense_forward"]
    assert "def timed(f):" in found["dense_forward"]


def test_definitions_in_top_level_blocks_count_and_the_last_one_wins() -> None:
    cells = (CONV1D_INLINE,
             '''
             if True:
                 def conv1d(x, w):
                     return np.correlate(x, w, "valid")
             ''')
    found = read(*cells).function_sources(["conv1d"])["conv1d"]
    assert found.startswith("def conv1d(x, w):") and "np.correlate" in found


def test_locals_parameters_and_rubric_functions_are_not_helpers() -> None:
    """A test cell's ``x = ...`` is not the ``x`` a function takes; another rubric function has
    code of its own (and a page of its own)."""
    cells = ('''
             def dense_forward(x, W, b):
                 out = x @ W + b
                 return relu_forward(out), SCALE
             ''',
             '''
             def relu_forward(x):
                 return np.maximum(0, x)
             ''',
             "x = rng.standard_normal((3, 4))\nout = None\nW = b = 1\nSCALE = 2.0")
    found = read(*cells).function_sources(["dense_forward", "relu_forward"])
    assert defined(found["dense_forward"]) == ["dense_forward", "SCALE"]
    assert "def relu_forward" not in found["dense_forward"]


def test_decorators_are_kept_and_followed() -> None:
    cells = ('''
             def _swap(f):
                 return _real

             def _real(x, w):
                 return x * w

             @_swap
             def conv1d(x, w):
                 pass
             ''',)
    found = read(*cells).function_sources(["conv1d"])["conv1d"]
    assert found.startswith("@_swap\ndef conv1d(x, w):")
    assert defined(found) == ["conv1d", "_swap", "_real"]


def test_columns_are_read_as_utf8_offsets() -> None:
    """``ast`` counts a line's columns in UTF-8 bytes: code after non-ASCII text on its line
    is cut where it is, not a few characters off."""
    found = read('π = "π, ü"; conv1d = lambda x, w: π\n').function_sources(["conv1d", "π"])
    assert found == {"conv1d": "conv1d = lambda x, w: π", "π": 'π = "π, ü"'}


def test_a_function_with_too_many_helpers_is_cut_with_a_note() -> None:
    helpers = "\n".join(f"def h{i}(x):\n    return h{i + 1}(x) + {'1' * 90}\n"
                        for i in range(200))  # 23,000 characters: read, but too long to keep
    found = read("def conv1d(x, w):\n    return h0(x)\n", helpers).function_sources(["conv1d"])
    source = found["conv1d"]
    assert len(source) <= notebook.MAX_SOURCE_CHARS + 300
    assert notebook.LEFT_OUT in source.splitlines()[-1]
    assert "h0" in defined(source) and "h199" not in defined(source)


def test_a_giant_function_is_cut_with_a_note() -> None:
    body = "".join(f"    x = x + {i}\n" for i in range(1_400))  # 22,000 characters
    found = read(f"def conv1d(x, w):\n{body}    return x\n").function_sources(["conv1d"])
    source = found["conv1d"]
    assert len(source) <= notebook.MAX_SOURCE_CHARS + 200
    assert notebook.CUT in source and source.startswith("def conv1d(x, w):\n    x = x + 0\n")


@pytest.mark.parametrize("line, code, removed", [
    ("x = %timeit f()", "x = None", True),
    ("  a, b = !ls -l", "  a, b = None", True),
    ("%matplotlib inline", "pass", True),
    ("    !pip install numpy", "    pass", True),
    ("y = 1 != 2", "y = 1 != 2", False),
    ("if a == b: c = !x", "if a == b: c = !x", False),
    (" " * 100_000 + "x", " " * 100_000 + "x", False),  # 25 s for 4,000 spaces, before
    (" " * 100_000 + "= %x", " " * 100_000 + "= %x", False),
])
def test_magics_are_neutralised_and_long_lines_cost_nothing(line: str, code: str,
                                                            removed: bool) -> None:
    cell = read(f"{line}\nz = 1").cells[0]
    assert cell.source == f"{code}\nz = 1"
    assert cell.magics == ((line.strip(),) if removed else ())


def test_helpers_reached_by_name_are_followed() -> None:
    """``globals()["_impl"]``, ``getattr(module, "_impl")`` and ``from __main__ import _impl``
    reach a helper without naming it in code: the string or the import counts."""
    cells = ('''
             def _impl(x, w):
                 return x * w

             def _other(x, w):
                 return x + w

             def conv1d(x, w):
                 return globals()["_impl"](x, w)

             def conv2d(x, w):
                 from __main__ import _other as f
                 return f(x, w)
             ''',)
    found = read(*cells).function_sources(["conv1d", "conv2d"])
    assert defined(found["conv1d"]) == ["conv1d", "_impl"]
    assert defined(found["conv2d"]) == ["conv2d", "_other"]


def test_a_cell_too_long_to_read_is_named_in_a_notice() -> None:
    padded = "# " + "x" * notebook.MAX_CELL_CHARS + "\n" + CONV1D_INLINE
    found = read("import numpy as np", padded)
    assert found.function_sources(["conv1d"]) == {}
    assert found.cells[1].source.endswith("return out")  # it still runs, in the sandbox
    assert [n for n in found.notices if notebook.UNREAD in n] == [
        f"cell In [2] ran as usual, but {notebook.UNREAD} outside the sandbox (it reads "
        f"{notebook.MAX_CELL_CHARS:,} characters of a cell, {notebook.MAX_READ_CHARS:,} in "
        "all): functions defined there are not shown with your results or compared with the "
        "class"]
