"""Tampering never pays (issue 21): ``shortcuts.unresolved`` names every line whose calls no
reading of the source can name (computed attribute names, a function's or frame's internals,
the interpreter's, descriptors and processes, the grader's own code), honest notebooks give
none, and no text at all makes ``scan`` or ``unresolved`` raise."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.checks import shortcuts
from grader.checks.shortcuts import Unresolved, scan, unresolved
from grader.core import notebook
from grader.core.notebook import CodeCell, Notebook
from tests.conftest import ROOT

MARK = "# <-"  # ends each line a case expects to be named


def read(*cells: str) -> Notebook:
    code = tuple(CodeCell(i, textwrap.dedent(c).strip("\n"), ())
                 for i, c in enumerate(cells, start=1))
    return Notebook(Path("x.ipynb"), "", code, ())


def marked(*cells: str) -> set[tuple[int, int]]:
    return {(number, line) for number, cell in enumerate(cells, start=1)
            for line, text in enumerate(textwrap.dedent(cell).strip("\n").split("\n"), start=1)
            if text.rstrip().endswith(MARK)}


# --- attack 6: the guard switched off, np.correlate by a computed name --------------------

TAMPER = """
_impl = getattr(np.convolve, "_implementation", np.convolve)
_impl.__kwdefaults__["_grader_guard"].func.__self__.depth = 10**9  # <-
"""
COMPUTED = """
def conv1d(x, w, stride=1):
    f = getattr(np, "corr" + "elate")  # <-
    full = f(np.asarray(x, dtype=float), np.asarray(w, dtype=float), "valid")
    return full[::stride]
"""


def test_the_guard_tamper_and_the_hidden_correlate_are_both_named() -> None:
    found = unresolved(read("import numpy as np", TAMPER, COMPUTED))
    assert [(u.cell, u.line, u.function) for u in found] == [(2, 2, None), (3, 2, "conv1d")]
    tamper, computed = found
    assert tamper.code == ('_impl.__kwdefaults__["_grader_guard"].func.__self__.depth = 10**9  '
                           '# <-')
    assert "`__kwdefaults__`" in tamper.why and "`__self__`" in tamper.why
    assert computed.code == 'f = getattr(np, "corr" + "elate")  # <-'
    assert computed.why == "a computed attribute name"
    assert scan(read("import numpy as np", TAMPER, COMPUTED))["conv1d"] == []  # unreadable
    message = shortcuts.describe(found)
    assert "In [3], line 2, in `conv1d`: `f = getattr(np, \"corr\" + \"elate\")  # <-` (a " \
           "computed attribute name)" in message


def test_a_finding_is_plain_frozen_data() -> None:
    found = unresolved(read("import gc"))[0]
    assert found == Unresolved(1, 1, None, "import gc", "the `gc` module")
    with pytest.raises(AttributeError):
        found.why = "fine"  # type: ignore[misc]


# --- every way to reach what no name says --------------------------------------------------

CASES = {
    # attributes by computed names, and names of internals as constants
    "getattr, computed": ('f = getattr(np, "conv" + "olve")  # <-', "a computed attribute name"),
    "getattr, f-string": ('f = getattr(np, f"{a}{b}")  # <-', "a computed attribute name"),
    "getattr, unpacked": ("f = getattr(*pair)  # <-", "a computed attribute name"),
    "getattr, a dunder": ('d = getattr(np.convolve, "__kwdefaults__")  # <-',
                          "`__kwdefaults__`"),
    "getattr, concatenated": ('d = getattr(f, "__kw" "defaults__")  # <-', "`__kwdefaults__`"),
    "getattr, escaped": ('d = getattr(f, "\\x5f_kwdefaults__")  # <-', "`__kwdefaults__`"),
    "a dunder in other letters": ("d = f.__\uff4bwdefaults__  # <-", "`__kwdefaults__`"),
    "setattr": ("setattr(box, name, 1)  # <-", "a computed attribute name"),
    "delattr": ("delattr(box, name)  # <-", "a computed attribute name"),
    "hasattr": ("hasattr(box, name)  # <-", "a computed attribute name"),
    "getattr kept": ("g = getattr  # <-\nf = g(np, name)", "`getattr` passed as a value"),
    "getattr folded": ('import functools\nf = functools.reduce(getattr, ["a"], np)  # <-',
                       "`getattr` passed as a value"),
    "getattr as a default": ("h = lambda o, n, g=getattr: g(o, n)  # <-",
                             "`getattr` passed as a value"),
    "attrgetter": ("import operator\nf = operator.attrgetter(name)(np)  # <-",
                   "a computed attribute name"),
    "attrgetter renamed": ("from operator import attrgetter as ag\nf = ag(name)(np)  # <-",
                           "a computed attribute name"),
    "attrgetter, a dunder path": ('import operator\nk = operator.attrgetter("a.__globals__")(f)'
                                  "  # <-", "`__globals__`"),
    "attrgetter kept": ("import operator\nag = operator.attrgetter  # <-",
                        "`operator.attrgetter` passed as a value"),
    "attrgetter through numpy": ("f = np.ma.core.operator.attrgetter(name)(np)  # <-",
                                 "the `operator` module"),
    "a lookup by another name": ("m = np.testing._private.utils.importlib  # <-\n"
                                 "g = loader.import_module(name)  # <-", "the `importlib` module"),
    "methodcaller": ("import operator\noperator.methodcaller(name)(np)  # <-",
                     "a computed attribute name"),
    "format field": ('from string import Formatter\nv = Formatter().get_field(name, [f], {})'
                     "  # <-", "`get_field`"),
    "format string": ('text = "{0.__globals__}".format(f)  # <-', "`__globals__` in a string"),
    "match pattern": ("match f:\n    case object(__kwdefaults__=k):  # <-\n        pass",
                      "`__kwdefaults__`"),
    # a function's, a class's, an object's internals
    "__dict__": ('f = np.__dict__["corr" + "elate"]  # <-', "`__dict__`"),
    "__globals__": ("g = conv1d.__globals__  # <-", "`__globals__`"),
    "__defaults__": ("d = np.pad.__defaults__  # <-", "`__defaults__`"),
    "__code__": ("c = np.pad.__code__  # <-", "`__code__`"),
    "__closure__": ("c = np.pad.__closure__  # <-", "`__closure__`"),
    "__subclasses__": ("s = ().__class__.__base__.__subclasses__()  # <-", "`__subclasses__`"),
    "__mro__": ("m = type(x).__mro__  # <-", "`__mro__`"),
    "__bases__": ("b = type(x).__bases__  # <-", "`__bases__`"),
    "__self__": ("b = print.__self__  # <-", "`__self__`"),
    "__getattribute__": ("f = object.__getattribute__(np, name)  # <-", "`__getattribute__`"),
    "__class__ set": ("x.__class__ = Other  # <-", "`__class__`"),
    "__builtins__": ('e = __builtins__["ev" + "al"]  # <-', "`__builtins__`"),
    "__builtins__ of a module": ("b = np.__builtins__  # <-", "`__builtins__`"),
    "the guard's key": ('np.correlate(x, w, _grader_guard=lambda a, k: a)  # <-',
                        "the grader's runtime"),
    "type with three": ('T = type("T", (), {})  # <-', "`type(name, bases, dict)`"),
    # the libraries the runtime shares the process with (it sends the guard's findings with
    # json): changed, or kept where no name follows them
    "json.dumps replaced": ("import json\njson.dumps = str  # <-", "changing `json.dumps`"),
    "json.dumps removed": ("import json\ndel json.dumps  # <-", "changing `json.dumps`"),
    "setattr on a module": ('import json\nsetattr(json, "dumps", str)  # <-',
                            "changing `json.dumps`"),
    "a class through type": ("import json\ne = json.JSONEncoder()\ntype(e).encode = str  # <-",
                             "changing a class"),
    "a class kept": ("cls = type(encoder)\ncls.encode = str  # <-", "changing a class"),
    "a class through __class__": ("encoder.__class__.encode = str  # <-", "changing a class"),
    "numpy kept": ("holder = [np]  # <-", "the `numpy` module passed as a value"),
    "a module as a default": ("import json\ndef f(x, m=json):  # <-\n    return m",
                              "the `json` module passed as a value"),
    "a module returned": ("import json\ndef f():\n    return json  # <-",
                          "the `json` module passed as a value"),
    # frames and tracebacks
    "sys._getframe": ("import sys\nf = sys._getframe(1)  # <-", "`sys._getframe`"),
    "f_back": ("def f():\n    return frame.f_back  # <-", "`f_back`"),
    "f_globals": ("g = frame.f_globals  # <-", "`f_globals`"),
    "traceback": ("try:\n    1 / 0\nexcept Exception as e:\n    t = e.__traceback__  # <-\n"
                  "    f = t.tb_frame  # <-", "`__traceback__`"),
    "generator frame": ("g = (i for i in [1])\nf = g.gi_frame  # <-", "`gi_frame`"),
    "coroutine frame": ("f = coroutine.cr_frame  # <-", "`cr_frame`"),
    "inspect": ("import inspect  # <-\ns = inspect.signature(np.correlate)  # <-",
                "the `inspect` module"),
    "traceback of the stack": ('import traceback\nfor f, n in traceback.walk_stack(None):\n'
                               "    g = f.f_locals  # <-", "`f_locals`"),
    # the interpreter's internals
    "gc": ("import gc  # <-", "the `gc` module"),
    "gc renamed": ("import gc as g  # <-\nobjects = g.get_objects()  # <-", "the `gc` module"),
    "gc, one function": ("from gc import get_referrers as r  # <-", "the `gc` module"),
    "gc through numpy": ("objects = np.testing._private.utils.gc.get_objects()  # <-",
                         "the `gc` module"),
    "ctypes": ("import ctypes  # <-", "the `ctypes` module"),
    "ctypes of an array": ("p = x.ctypes.data  # <-", "the `ctypes` module"),
    "numpy's ctypeslib": ("p = np.ctypeslib.as_ctypes(x)  # <-", "the `ctypeslib` module"),
    "cffi": ("import cffi  # <-", "the `cffi` module"),
    "_ctypes": ("import _ctypes  # <-", "the `_ctypes` module"),
    "sys.modules": ('import sys\nrt = sys.modules["inside.runtime"]  # <-', "`sys.modules`"),
    "sys renamed": ("import sys as s\nm = s.modules  # <-", "`sys.modules`"),
    "modules imported": ("from sys import modules as m  # <-", "`sys.modules`"),
    "sys kept": ("import sys\nholder = [sys]  # <-", "the `sys` module passed as a value"),
    "sys by getattr": ('import sys\nm = getattr(sys, "modules")  # <-', "`sys.modules`"),
    "importlib": ("import importlib  # <-", "the `importlib` module"),
    "import_module": ("from importlib import import_module  # <-\n"
                      "m = import_module(name)  # <-", "the `importlib` module"),
    "__import__, computed": ('m = __import__("num" + "py")  # <-', "a computed module name"),
    "__import__ of gc": ('m = __import__("gc")  # <-', "the `gc` module"),
    "__import__ kept": ("i = __import__  # <-", "`__import__` passed as a value"),
    "builtins": ("import builtins  # <-", "the `builtins` module"),
    "eval": ('f = eval("np." + "correlate")  # <-', "`eval`"),
    "exec": ('exec("import gc")  # <-', "`exec`"),
    "compile": ('c = compile(text, "x", "exec")  # <-', "`compile`"),
    "globals": ('g = globals()["np"]  # <-', "`globals()`"),
    "locals": ("l = locals()  # <-", "`locals()`"),
    "vars": ('f = vars(np)["correlate"]  # <-', "`vars()`"),
    "breakpoint": ("breakpoint()  # <-", "`breakpoint()`"),
    "marshal": ("import marshal  # <-", "the `marshal` module"),
    "pickle": ("import pickle  # <-", "the `pickle` module"),
    "unpickling arrays": ("w = np.load(path, allow_pickle=True)  # <-", "`allow_pickle`"),
    "timeit of a string": ('import timeit\ntimeit.timeit("import gc")  # <-',
                           "`timeit` of code in a string"),
    "settrace": ("import sys\nsys.settrace(tracer)  # <-", "`sys.settrace`"),
    "setprofile": ("import sys\nsys.setprofile(tracer)  # <-", "`sys.setprofile`"),
    "meta_path": ("import sys\nsys.meta_path.insert(0, finder)  # <-", "`sys.meta_path`"),
    "path_hooks": ("import sys\nsys.path_hooks.append(hook)  # <-", "`sys.path_hooks`"),
    "pydoc.locate": ('import pydoc  # <-\nf = pydoc.locate("numpy.correlate")  # <-',
                     "the `pydoc` module"),
    "pkgutil": ('import pkgutil  # <-', "the `pkgutil` module"),
    "mock.patch": ("from unittest import mock  # <-", "the `unittest.mock` module"),
    "logging.config": ("import logging.config  # <-", "the `logging.config` module"),
    # descriptors (the runtime's pipes to the grader), signals, other processes
    "os.write": ('import os\nos.write(4, b"1 {}")  # <-', "`os.write`"),
    "os renamed": ('import os as o\no.write(4, b"1 {}")  # <-', "`os.write`"),
    "os aliased": ('import os\no = os\no.write(4, b"1 {}")  # <-', "`os.write`"),
    "write imported": ("from os import write  # <-", "`os.write`"),
    "os by getattr": ('import os\ngetattr(os, "write")(4, b"")  # <-', "`os.write`"),
    "os kept": ("import os\nkept = [os][0]  # <-", "the `os` module passed as a value"),
    "os through numpy": ('np.lib._datasource.os.write(4, b"")  # <-', "the `os` module"),
    "everything from os": ("from os import *  # <-", "everything from `os`"),
    "os.open": ('import os\nfd = os.open("/tmp/x", 0)  # <-', "`os.open`"),
    "os.dup2": ("import os\nos.dup2(3, 1)  # <-", "`os.dup2`"),
    "fdopen": ('import os\nf = os.fdopen(4, "wb")  # <-', "`os.fdopen`"),
    "open a number": ('f = open(4, "wb", buffering=0)  # <-', "a file descriptor"),
    "open, not closing": ('f = open(n, "wb", closefd=False)  # <-', "a file descriptor"),
    "a descriptor's number": ("n = sys.stdout.fileno()  # <-", "`fileno`"),
    "proc fd": ('f = open("/proc/self/fd/4", "wb")  # <-', "a path into `/proc`"),
    "signal": ("import signal  # <-", "the `signal` module"),
    "signal renamed": ("import signal as s  # <-\ns.setitimer(s.ITIMER_REAL, 0)  # <-",
                       "the `signal` module"),
    "setitimer imported": ("from signal import setitimer  # <-", "the `signal` module"),
    "subprocess": ("import subprocess  # <-", "the `subprocess` module"),
    "os.system": ('import os\nos.system("ls")  # <-', "`os.system`"),
    "os.fork": ("import os\npid = os.fork()  # <-", "`os.fork`"),
    "os.execv": ('import os\nos.execv("/bin/sh", ["sh"])  # <-', "`os.execv`"),
    "os.kill": ("import os\nos.kill(os.getppid(), 9)  # <-", "`os.kill`"),
    "threading": ("import threading  # <-", "the `threading` module"),
    "multiprocessing": ("import multiprocessing  # <-", "the `multiprocessing` module"),
    "socket": ("import socket  # <-", "the `socket` module"),
    "faulthandler": ("import faulthandler  # <-", "the `faulthandler` module"),
    # the grader's own code
    "import grader": ("import grader  # <-", "the grader's own code"),
    "the runtime": ("from grader.run.inside import runtime  # <-", "the grader's own code"),
    "the runtime, as the sandbox names it": ("import inside.runtime as rt  # <-",
                                             "the grader's own code"),
    "the runtime by __import__": ('rt = __import__("inside.runtime")  # <-',
                                  "the grader's own code"),
    "the runtime by name": ('name = "inside.runtime"  # <-', "the grader's runtime"),
    "relative import": ("from . import runtime  # <-", "a relative import"),
    "__main__": ("import __main__  # <-", "the `__main__` module"),
    "the guard's log": ("log = runtime.guard_log  # <-", "the grader's runtime"),
}


@pytest.mark.parametrize("name", CASES)
def test_every_way_around_the_names_is_a_line_to_look_at(name: str) -> None:
    code, why = CASES[name]
    cells = ("import numpy as np", code)
    found = unresolved(read(*cells))
    assert {(u.cell, u.line) for u in found} >= marked(*cells), [u.text() for u in found]
    lines = {(u.cell, u.line): u for u in found}
    first = min(marked(*cells))
    assert why in lines[first].why, lines[first].text()
    assert lines[first].code == textwrap.dedent(code).split("\n")[first[1] - 1].strip()


def test_inside_a_function_the_function_is_named() -> None:
    found = unresolved(read("def helper(f):\n    return f.__globals__\n",
                            "@decorate(getattr)\ndef layer(x, g=vars):\n    import gc\n"
                            "    return x\n"))
    assert [(u.cell, u.line, u.function) for u in found] == [
        (1, 2, "helper"), (2, 1, None), (2, 2, None), (2, 3, "layer")]


def test_names_follow_the_function_that_binds_them() -> None:
    """``o`` is the os module only in the function that says so."""
    found = unresolved(read("import os", "def a(o):\n    return o.write(1)\n",
                            "def b():\n    o = os\n    return o.write(1, b'')\n"))
    assert [(u.cell, u.function, u.why) for u in found] == [(3, "b", "`os.write`")]


def test_the_list_is_capped_and_ordered() -> None:
    cells = [f"import gc\nx{i} = vars()" for i in range(30)]
    found = unresolved(read(*cells))
    assert len(found) == shortcuts.MAX_UNRESOLVED
    assert [(u.cell, u.line) for u in found] == sorted((u.cell, u.line) for u in found)
    assert [u.cell for u in found[:4]] == [1, 1, 2, 2]


def test_a_line_with_several_reasons_is_listed_once_with_them() -> None:
    found = unresolved(read('import gc, ctypes, inspect, sys; m = sys.modules; v = vars()'))
    assert len(found) == 1 and found[0].why.count(", ") == 2  # three reasons at most


def test_a_long_line_is_quoted_around_what_it_does() -> None:
    line = "x = 1 + " + " + ".join(["1"] * 200) + " + len(vars())"
    found = unresolved(read(line))
    assert len(found) == 1 and "vars()" in found[0].code and len(found[0].code) <= 120
    hidden = "y = '\x1b[2K\u202e nothing here'; z = eval('1')"
    shown = unresolved(read(hidden))[0].code
    assert shown == "y = '\\x1b[2K\\u202e nothing here'; z = eval('1')"


# --- honest notebooks: nothing to look at --------------------------------------------------

HONEST = """
import gzip, os, sys, time, math, random, itertools, functools, operator, timeit, dataclasses
from operator import attrgetter
from pathlib import Path
import matplotlib.pyplot as plt
import urllib.request
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view, as_strided


class Layer:
    count = 0

    def __init__(self, n):
        super().__init__()
        self.n = n
        self.count += 1
        Layer.count = type(self).count + 1

    def __call__(self, x):
        return x

    def __repr__(self):
        return f"{type(self).__name__}({self.n}) {self.__class__.__name__} {self.__doc__}"


def load(path):
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        urllib.request.urlretrieve("https://example.org/x.gz", path)
    with gzip.open(path, "rb") as handle, open(os.path.join("a", "b"), "rb") as other:
        return np.frombuffer(handle.read(), np.uint8, offset=16), other.read()


def train(x, steps=3, log=print):
    start = time.perf_counter()
    weights = {"W1": np.zeros((3, 3))}
    best = max([Layer(1), Layer(2)], key=operator.attrgetter("n"))
    first = sorted([Layer(3)], key=attrgetter("n"))[0]
    windows = sliding_window_view(x, 3)
    if hasattr(x, "shape") and getattr(best, "n", 0):
        log(f"{np.__version__} {sys.version} {math.pi:.2f} {Path('.').name} {best!r}")
    print("-" * 40, "______", "__init__", file=sys.stderr)
    sys.stdout.flush()
    timeit.timeit(lambda: train, number=1)
    np.load("w.npy", allow_pickle=False)
    functools.partial(train, steps=1)
    plt.rcParams["figure.figsize"] = (8, 4)
    np.random.seed(0)
    os.environ["X"] = "1"
    return windows, weights, first, time.perf_counter() - start, os.environ.get("MNIST_DIR")


if __name__ == "__main__":
    train(np.arange(5.0))
"""


def repository_notebooks() -> list[Notebook]:
    """Every notebook in the project that can be read (one is a script, on purpose)."""
    folders = ("solutions", "assignments", "submissions", "tests")
    found = [notebook.read(p) for f in folders for p in sorted((ROOT / f).rglob("*.ipynb"))]
    return [n for n in found if isinstance(n, Notebook)]


@pytest.mark.parametrize("read_", repository_notebooks(), ids=lambda n: n.path.name)
def test_the_repositorys_notebooks_have_nothing_to_look_at(read_: Notebook) -> None:
    assert unresolved(read_) == ()


def test_honest_numpy_code_has_nothing_to_look_at() -> None:
    assert unresolved(read(HONEST)) == ()


def test_the_generated_class_has_nothing_to_look_at() -> None:
    from tests import classgen
    from tests.test_bug_patterns import BUGS

    sources = [s for r in classgen.make_class().results for s in r.sources.values()]
    sources += [b.code for b in BUGS]
    flagged = [s for s in sources if unresolved(read("import numpy as np", s))]
    assert len(sources) > 100 and flagged == []


# --- text that must never stop the grader --------------------------------------------------


def cells_of(source: str) -> Notebook:
    return Notebook(Path("x.ipynb"), "", (CodeCell(1, source, ()),), ())


def test_attack_4_ten_thousand_minus_signs() -> None:
    """`z = ------…1` made the parser raise MemoryError, which stopped the batch."""
    hostile = read("import numpy as np", "z = " + "-" * 10_000 + "1", COMPUTED)
    assert scan(hostile)["<notebook>"] == []
    found = unresolved(hostile)
    assert [(u.cell, u.line, u.why) for u in found] == [
        (2, 1, "a cell nested too deeply for the grader to read"),
        (3, 2, "a computed attribute name")]
    assert found[0].code.startswith("z = ---") and len(found[0].code) <= 120


DEEP = {
    "unary": "z = " + "-" * 50_000 + "1",
    "not": "z = " + "not " * 20_000 + "1",
    "lambdas": "z = " + "lambda: " * 20_000 + "1",
    "attribute chain": "z = np" + ".a" * 200_000,
    "calls": "z = f" + "()" * 200_000,
    "subscripts": "z = f" + "[0]" * 200_000,
    "additions": "z = 1" + "+1" * 200_000,
    "parentheses": "z = " + "(" * 5_000 + ")" * 5_000,
    "getattr nesting": "z = " + "getattr(" * 150 + "np" + ", 'a')" * 150,
    "a long chain the parser takes": "z = np" + ".a" * 900 + ".correlate",
    "if-else chain": "z = 1" + " if 1 else 1" * 30_000,
    "null byte": "z = 1\x00",
    "lone surrogate": "z = '\udc80'",
    "unterminated": 'z = """' + "a" * 1000,
    "f-string fields": "z = f'" + "{a}" * 30_000 + "'",
}


@pytest.mark.parametrize("name", DEEP)
def test_hostile_text_never_raises(name: str) -> None:
    hostile = read("import numpy as np", DEEP[name], COMPUTED)
    scan(hostile)
    found = unresolved(hostile)
    assert (3, 2) in {(u.cell, u.line) for u in found}  # the cells after it are still read


def test_code_past_the_budget_is_a_line_to_look_at() -> None:
    big = "x = 1\n" * (shortcuts.MAX_CODE // 6 + 1)
    found = unresolved(read("import numpy as np", big, COMPUTED))
    assert [(u.cell, u.why) for u in found] == [(2, "more code than the grader reads"),
                                                (3, "a computed attribute name")]
    braces = "d = {" + ", ".join(f"{i}: {{}}" for i in range(shortcuts.MAX_BRACES)) + "}"
    assert unresolved(read(braces))[0].why == "more code than the grader reads"


def test_a_syntax_error_is_not_a_line_to_look_at() -> None:
    """The runtime cannot run it either (and says so in the cell's notice)."""
    assert unresolved(read("def f(:\n    return getattr(np, name)")) == ()


def test_many_functions_calling_each_other() -> None:
    """Reach is computed per kind of use, not per function: a chain of 3,000 functions."""
    chain = "\n".join(f"def f{i}(x):\n    return f{i - 1}(x)" for i in range(1, 3000))
    found = scan(read("import numpy as np", "def f0(x):\n    return np.convolve(x, x)", chain))
    assert found["f2999"] == ["numpy.convolve"] and found["f0"] == ["numpy.convolve"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_reach_is_what_calls_reach(data) -> None:
    """The linear reach agrees with following every call from every function."""
    count = data.draw(st.integers(1, 8))
    calls = {i: data.draw(st.sets(st.integers(0, count - 1))) for i in range(count)}
    forbidden = data.draw(st.sets(st.integers(0, count - 1)))
    cells = [f"def f{i}(x):\n    " + "".join(f"f{c}(x); " for c in sorted(calls[i]))
             + ("np.convolve(x, x)" if i in forbidden else "x") for i in range(count)]
    found = scan(read("import numpy as np", *cells))

    def reaches(start: int) -> bool:
        seen, queue = set(), [start]
        while queue:
            current = queue.pop()
            if current not in seen:
                seen.add(current)
                queue += calls[current]
        return bool(seen & forbidden)

    assert all((found[f"f{i}"] == ["numpy.convolve"]) == reaches(i) for i in range(count))


PIECES = ["np", "getattr", "(", ")", ".", "__kwdefaults__", "'a'", '"', "[", "]", "{", "}",
          "f'{", "def f(x):\n    ", "\n", "    ", "import gc", "from . import x", "lambda", ":",
          ",", "=", "-", "*", "**", "not ", "match x:\n    case ", "object(", "os", "sys",
          ".modules", "__import__", "await ", "yield ", "\\", "#", "\x00", "\r", "\u202e", "1"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=60) | st.lists(st.sampled_from(PIECES), max_size=60).map(
    "".join), min_size=1, max_size=4))
def test_no_source_makes_the_scan_raise(sources: list[str]) -> None:
    hostile = Notebook(Path("x.ipynb"), "", tuple(CodeCell(i, s, ()) for i, s in
                                                  enumerate(sources, start=1)), ())
    assert "<notebook>" in scan(hostile)
    for found in unresolved(hostile):
        assert 1 <= found.cell <= len(sources) and found.line >= 1
        assert len(found.code) <= 120 and found.why
        assert found.code.isprintable()


def test_a_large_hostile_notebook_is_read_whole() -> None:
    """Two megabytes of the constructs above: read within the budget, the findings come back
    capped, nothing raises (how long it takes is measured by hand, never asserted)."""
    rng = random.Random(21)
    parts = [CASES[name][0].replace(MARK, "") for name in sorted(CASES)]
    cells, size = [], 0
    while size < 2_000_000:
        body = "\n".join(rng.choice(parts) for _ in range(200))
        cells.append(f"def f{len(cells)}(x):\n" + textwrap.indent(body, "    "))
        size += len(cells[-1])
    hostile = read(*cells)
    assert len(unresolved(hostile)) == shortcuts.MAX_UNRESOLVED
    assert len(scan(hostile)) > 1


def test_a_warning_is_no_syntax_error_here() -> None:
    """Where warnings are errors (``-W error``), ``"\\d"`` makes ``ast.parse`` raise; the
    sandbox's Python (``-I``) runs the cell all the same, so the scan must read it."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = unresolved(read('pattern = "\\d"\nf = getattr(np, "corr" + "elate")'))
    assert [(u.line, u.why) for u in found] == [(2, "a computed attribute name")]
