"""Forbidden library calls are caught whatever path reaches them (issue 11 item 3): the static
scan follows every import form, and the sandbox's guard matches the function objects."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grader.checks.shortcuts import scan
from grader.core.notebook import CodeCell, Notebook
from tests.conftest import UNIT_KINDS, assert_only_function_loses

ROOT = Path(__file__).resolve().parent.parent


def scanned(*cells: str) -> dict[str, list[str]]:
    code = tuple(CodeCell(i, textwrap.dedent(c), ()) for i, c in enumerate(cells, start=1))
    return scan(Notebook(Path("x.ipynb"), "", code, ()))


# (imports in one cell, the call in a function of another) -> what the function uses
EVASIONS = {
    "private numpy module": ("from numpy._core.numeric import correlate", "correlate(x, w)",
                             "numpy.correlate"),
    "numpy.core alias": ("import numpy.core.numeric as m", "m.convolve(x, w)", "numpy.convolve"),
    "renamed import": ("from numpy import correlate as c", "c(x, w)", "numpy.correlate"),
    "submodule import": ("import numpy._core.numeric", "numpy._core.numeric.correlate(x, w)",
                         "numpy.correlate"),
    "from a package": ("from numpy._core import numeric", "numeric.convolve(x, w)",
                       "numpy.convolve"),
    "C kernel": ("import numpy._core.multiarray as ma", "ma.correlate2(x, w, 0)",
                 "numpy.correlate"),
    "import_module": ("import importlib",
                      'getattr(importlib.import_module("numpy._core.numeric"), "correlate")(x, w)',
                      "numpy.correlate"),
    "assigned module": ('import importlib\nm = importlib.import_module("numpy._core.numeric")',
                        "m.correlate(x, w)", "numpy.correlate"),
    "__import__": ('core = __import__("numpy")._core', "core.numeric.convolve(x, w)",
                   "numpy.convolve"),
    "star import": ("from numpy._core.numeric import *", "convolve(x, w)", "numpy.convolve"),
    "getattr on np": ("", 'getattr(np, "correlate")(x, w)', "numpy.correlate"),
    "numpy.ma": ("", "np.ma.convolve(x, w)", "numpy.convolve"),
    "scipy private module": ("from scipy.signal._signaltools import convolve as conv",
                             "conv(x, w)", "scipy.signal"),
    "scipy attribute chain": ("import scipy", "scipy.signal.convolve(x, w)", "scipy.signal"),
    "scipy renamed module": ("import scipy.ndimage as nd", "nd.correlate(x, w)",
                             "scipy.ndimage"),
    "scipy from package": ("from scipy import signal as s", "s.correlate2d(x, w)",
                           "scipy.signal"),
}


@pytest.mark.parametrize("name", EVASIONS)
def test_static_scan_follows_every_import_form(name):
    imports, call, use = EVASIONS[name]
    found = scanned(
        "import numpy as np\n" + imports,
        f"def conv1d(x, w):\n    return {call}\n",
        "def helper(x):\n    return x\n",
        "def layer(x, w):\n    return conv1d(x, w)\n",
    )
    assert found["conv1d"] == [use]
    assert found["layer"] == [use]  # through the helper it calls
    assert found["helper"] == []
    assert use in found["<notebook>"]


def test_static_scan_leaves_own_functions_and_other_names_alone():
    found = scanned(
        "import numpy as np\nimport scipy.special as sp\nm = np.random",
        "def correlate(x, w):\n    return sum(a * b for a, b in zip(x, w))\n",
        "def conv1d(x, w):\n    y = np.zeros(3)\n    return correlate(x, w) + y + m.rand(1)"
        " + sp.expit(x) + np.sum(x)\n",
    )
    assert found == {"correlate": [], "conv1d": [], "<notebook>": []}


def test_a_local_name_hides_the_notebooks_alias():
    found = scanned(
        "from numpy import correlate as c",
        "def conv2d(x):\n    n, c, h, w = x.shape\n    return c * h\n",
        "def conv1d(x, w):\n    return c(x, w)\n",
    )
    assert found["conv2d"] == [] and found["conv1d"] == ["numpy.correlate"]


GUARD_SCRIPT = """
import importlib, sys
import numpy as np
from grader.run.inside import runtime as rt

r = rt.Runtime({})
rt._install_guards(r)
x, w = np.arange(6.0), np.array([1.0, 2.0, -1.0])
calls = {
    "np.convolve": lambda: np.convolve(x, w),
    "private module": lambda: importlib.import_module("numpy._core.numeric").correlate(x, w),
    "numpy.core": lambda: __import__("numpy.core.numeric", fromlist=["x"]).convolve(x, w),
    "kept reference": (lambda f=np.correlate: lambda: f(x, w, "valid"))(),
    "C kernel": lambda: importlib.import_module("numpy._core.multiarray").correlate2(x, w, 0),
    "numpy.ma": lambda: np.ma.convolve(x, w),
}
for name, call in calls.items():
    before = len(r.guard_log)
    value = call()
    print(name, "|", ",".join(sorted(set(r.guard_log[before:]))), "|", list(np.asarray(value)))
before = len(r.guard_log)
np.sum(x); np.dot(x, x); np.pad(x, 1); np.lib.stride_tricks.sliding_window_view(x, 3)
print("unrelated |", ",".join(r.guard_log[before:]), "|")
"""


def test_runtime_guard_matches_functions_by_identity():
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", GUARD_SCRIPT], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    rows = dict(line.split(" | ", 1) for line in done.stdout.splitlines())
    assert rows["unrelated"] == " |"
    import numpy as np

    x, w = np.arange(6.0), np.array([1.0, 2.0, -1.0])
    right = {
        "np.convolve": ("numpy.convolve", np.convolve(x, w)),
        "private module": ("numpy.correlate", np.correlate(x, w)),
        "numpy.core": ("numpy.convolve", np.convolve(x, w)),
        "kept reference": ("numpy.correlate", np.correlate(x, w, "valid")),
        "C kernel": ("numpy.correlate", np.correlate(x, w)),
        "numpy.ma": ("numpy.convolve", np.convolve(x, w)),
    }
    for name, (use, value) in right.items():
        logged, got = rows[name].split(" | ")
        assert logged == use, (name, rows[name])
        assert got == str(list(value)), (name, got)  # and the function still works


MODULE_SCRIPT = """
import sys
from grader.run.inside import runtime as rt

sys.path.insert(0, sys.argv[1])
rt.GUARDED_FUNCTIONS["fakesig"] = (("convolve", "fakesig.convolve"),)
r = rt.Runtime({})
rt._install_guards(r)
from fakesig._private import convolve as c  # imported after the guard, by a private path
print(",".join(r.guard_log) or "-", c(2, 3), ",".join(r.guard_log))
"""


def test_runtime_guard_covers_modules_imported_later(tmp_path):
    """How scipy.signal is guarded where it is installed: its functions are rewritten as it is
    imported, so a private path to them reaches the same, guarded, objects."""
    package = tmp_path / "fakesig"
    package.mkdir()
    (package / "_private.py").write_text("def convolve(a, b):\n    return a * b\n")
    (package / "__init__.py").write_text("from ._private import convolve\n")
    done = subprocess.run([sys.executable, "-c", MODULE_SCRIPT, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["-", "6", "fakesig.convolve"]


# --------------------------------------------------------------------------- graded end to end

GRADED = {
    "private numpy module": """
        def conv1d(x, w, stride=1):
            from numpy._core.numeric import correlate
            return correlate(np.asarray(x, float), np.asarray(w, float), "valid")[::stride]
        """,
    "renamed import": """
        def conv1d(x, w, stride=1):
            from numpy import correlate as c
            return c(np.asarray(x, float), np.asarray(w, float), "valid")[::stride]
        """,
    "aliased private module": """
        def conv1d(x, w, stride=1):
            import numpy._core.numeric as m
            return m.correlate(np.asarray(x, float), np.asarray(w, float), "valid")[::stride]
        """,
    "computed names": """
        def conv1d(x, w, stride=1):
            import importlib
            m = importlib.import_module("numpy._core." + "numeric")
            f = getattr(m, "corr" + "elate")
            return f(np.asarray(x, float), np.asarray(w, float), "valid")[::stride]
        """,
    "C kernel, computed": """
        def conv1d(x, w, stride=1):
            import importlib
            k = getattr(importlib.import_module("numpy._core.multi" + "array"), "correlate" + "2")
            return k(np.asarray(x, float), np.asarray(w, float), 0)[::stride]
        """,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", GRADED)
def test_evasion_scores_zero_as_a_forbidden_shortcut(name, submission, grade_notebook):
    path = submission("convolution", replace={"conv1d": GRADED[name]})
    result = grade_notebook(path, "convolution", kinds=UNIT_KINDS)
    assert_only_function_loses(result, {"conv1d"})
    for test in result.tests:
        if test.function == "conv1d" and test.max_score:
            assert test.score == 0, (test.name, test.message)
            assert test.diagnosis == "forbidden shortcut", (test.name, test.message)
            assert "numpy.correlate" in test.message
