"""Hostile *text*: what a notebook's code does to the grader's own process before and after the
sandbox runs it (reading it, extracting sources, similarity, the class view's pages).

Each attack of issue 21 is rebuilt from its description: ten thousand unary minus signs that made
``ast.parse`` raise ``MemoryError`` (the batch stopped, exit 2), 4,000 redefinitions in one cell
that took 61 s to extract (the cost grew with the cell's size squared), a copy whose functions
moved into helpers behind one-line wrappers (in no pair). What the grader spends is measured as
work, not time: the characters it hands to Python's parser, the memory it takes. Hypothesis then
throws arbitrary and adversarial text at every step, which must never raise.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import html
import json
import os
import random
import re
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from grader.checks import rubric
from grader.core import notebook
from grader.core.results import SubmissionResult, TestResult
from grader.render import classview, similarity
from tests.classgen import FUNCTIONS, write_function
from tests.conftest import ROOT, build_notebook

HONEST = "def relu_forward(x):\n    return np.maximum(0, x)"
N = 10_000
ADVERSARIAL = {
    "unary minus": "z = " + "-" * N + "1",  # MemoryError in the parser: the attack
    "unary not": "z = " + "not " * N + "1",
    "unary invert": "z = " + "~" * N + "1",
    "brackets": "z = " + "[" * N + "]" * N,
    "parentheses": "z = " + "(" * N + ")" * N,
    "dict nesting": "z = " + "{1: " * 2_000 + "1" + "}" * 2_000,
    "lambdas": "z = " + "lambda: " * 2_000 + "1",
    "conditionals": "z = " + "a if b else " * 1_500 + "c",
    "operator chain": "z = " + "a + " * 5_000 + "a",  # parses; deeper than a tree walk goes
    "attribute chain": "z = a" + ".b" * N,
    "subscript chain": "z = a" + "[0]" * 5_000,
    "star chain": "z = " + "*" * N + "a",
    "await chain": "z = " + "await " * 3_000 + "1",
    "decorators": "@d\n" * 2_000 + "def f(x):\n    pass",
    "nested blocks": "".join(" " * i + "if x:\n" for i in range(99)) + " " * 99 + "pass",
    "f-string fields": 'f"' + "{x}" * 8_000 + '"',  # quadratic to parse in Python 3.11
    "huge integer": "z = " + "9" * 20_000,
    "huge float": "z = 1e" + "9" * 5_000,
    "many statements": "a = 1\n" * 4_000,
    "one-line statements": "a=1;" * 6_000,
    "null byte": "def f(x):\n    return x\x00",
    "lone surrogates": 'z = "\ud800"  # \udfff',
    "odd unicode": "z = '\u202e\u2028\ufeff\u200d'  # \u0085 \x0c\nπ = 1",
    "odd line breaks": "def f(x):\r    return x\r\n\x0b\x1c\x85\u2028",
    "tabs and spaces": "if x:\n\tif y:\n        pass",
    "spaces before a magic": " " * 50_000 + "x = %timeit 1",  # cubic in a regex, before
    "many redefinitions": "def f(x):\n    return x\n" * 1_000,
    "global and nonlocal": "def f():\n    global f\n    f = 1\n    def g():\n        nonlocal f",
    "not python": "<html>" + "\\" * 3_000 + "'''" * 100,
}


@contextlib.contextmanager
def parsed() -> Iterator[list[int]]:
    """The size of every text handed to Python's parser meanwhile: the grader's own work."""
    sizes, real = [], ast.parse

    def counting(source, *args, **kwargs):
        sizes.append(len(source))
        return real(source, *args, **kwargs)

    ast.parse = counting
    try:
        yield sizes
    finally:
        ast.parse = real


def document(*cells: str) -> bytes:
    """A notebook's bytes, as a student's editor could save them (JSON escapes surrogates)."""
    made = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    return json.dumps(made).encode()


def read(*cells: str) -> notebook.Notebook | notebook.UnreadableNotebook:
    return notebook.from_bytes(Path("hostile.ipynb"), document(*cells))


def assert_text_steps_hold(source: str) -> None:
    """Every step the grader runs on a stored source: nothing raises, nothing is parsed beyond
    similarity's cap."""
    with parsed() as sizes:
        for text in (source, "def f(x):\n    " + source):
            assert isinstance(similarity.tokens(text), tuple)
            assert isinstance(similarity.normalised(text), str)
            assert isinstance(similarity.fingerprints("f", text), tuple)
            assert isinstance(similarity.all_hashes(text), frozenset)
            shown = classview._code(text, (1, 2))
            assert shown is None or isinstance(shown, Markup)
    assert all(size <= similarity.MAX_CHARS for size in sizes), max(sizes)


# --------------------------------------------------------------------------- the attacks


@pytest.mark.parametrize("case", ADVERSARIAL, ids=list(ADVERSARIAL))
def test_no_text_stops_the_reader_or_any_step_after_it(case: str) -> None:
    """Each cell is read or left unread, never an exception; the honest cell beside it is
    read as if the hostile one were not there."""
    with parsed() as sizes:
        found = read("import numpy as np", HONEST, ADVERSARIAL[case])
    assert isinstance(found, notebook.Notebook)
    assert sum(sizes) <= notebook.MAX_READ_CHARS
    sources = found.function_sources(["relu_forward", "f", "z", "a", "π"])
    assert sources["relu_forward"] == HONEST
    assert all(isinstance(s, str) and len(s) <= notebook.MAX_SOURCE_CHARS + 300
               for s in sources.values())
    assert_text_steps_hold(ADVERSARIAL[case])


def test_ten_thousand_minus_signs_are_an_unreadable_cell_not_a_crash() -> None:
    found = read(HONEST, ADVERSARIAL["unary minus"])
    assert isinstance(found, notebook.Notebook)
    hostile = found.cells[1]
    assert hostile.source == ADVERSARIAL["unary minus"]  # it still runs, in the sandbox
    assert hostile.definitions == () and not hostile.loads_data


def test_four_thousand_redefinitions_cost_one_split_of_their_cell(monkeypatch) -> None:
    """The extraction split the whole cell once per ``def`` (ast.get_source_segment): 61 s
    for 4,000 redefinitions. Now a cell is split once, whatever it defines; one over the cap
    is not read at all, and the student is told."""
    def segment(*args, **kwargs):
        raise AssertionError("ast.get_source_segment splits the whole cell on every call")

    monkeypatch.setattr(ast, "get_source_segment", segment)
    splits = []
    real = notebook._Lines.__init__

    def counting(self, source: str) -> None:
        splits.append(len(source))
        real(self, source)

    monkeypatch.setattr(notebook._Lines, "__init__", counting)
    redefinition = "def dense_forward(x, W, b):\n    return x @ W + b\n"
    fitting = redefinition * (notebook.MAX_CELL_CHARS // len(redefinition) - 2)
    last = "def dense_forward(x, W, b):\n    return 'the last one'"
    found = read(fitting + last)
    assert splits == [len(fitting + last)]
    assert found.function_sources(["dense_forward"]) == {"dense_forward": last}

    with parsed() as sizes:
        attack = read(HONEST, redefinition * 4_000)  # the 200 KB notebook
    assert sizes == [len(HONEST)]
    assert attack.function_sources(["dense_forward", "relu_forward"]) == {"relu_forward": HONEST}
    assert any("cell In [2] ran as usual, but the grader did not read" in n
               for n in attack.notices), attack.notices


def test_a_two_megabyte_notebook_is_read_within_its_budget() -> None:
    """2 MB of code (40,000 redefinitions), in one cell or in cells just under the cap: the
    grader parses at most MAX_READ_CHARS of it and holds little memory doing so (parsing all of
    it took 400 MB)."""
    redefinition = "def dense_forward(x, W, b):\n    return x @ W + b\n"
    per_cell = notebook.MAX_CELL_CHARS // len(redefinition)
    for cells in ([redefinition * 40_000], [redefinition * per_cell] * (40_000 // per_cell)):
        raw = document(HONEST, *cells)
        tracemalloc.start()
        try:
            with parsed() as sizes:
                found = notebook.from_bytes(Path("big.ipynb"), raw)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert isinstance(found, notebook.Notebook)
        assert sum(sizes) <= notebook.MAX_READ_CHARS
        assert peak < 25 * len(raw), f"{peak >> 20} MB to read {len(raw) >> 20} MB"
        assert any("did not read" in n for n in found.notices)


def test_what_json_can_hold_is_never_an_exception() -> None:
    """A 5,000-digit number (Python refuses to convert it: ValueError, which stopped the
    batch), surrogates, nesting, and cells of every wrong type."""
    for raw in ['{"nbformat": 1' + "0" * 5_000 + ', "cells": []}',
                '{"cells": [{"cell_type": "code", "source": "' + "9" * 5_000 + '"}]}',
                '{"cells": [{"cell_type": "code", "source": "\\ud800x = 1"}]}',
                '{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}",
                '{"cells": [{"cell_type": ["code"], "source": 1}]}',
                '{"cells": [{"cell_type": "code", "source": [1, 2]}]}',
                '{"nbformat": 3, "worksheets": [{"cells": [{"cell_type": "code", "input": 1}]}]}',
                '{"nbformat": 99999999999999999999, "cells": []}']:
        found = notebook.from_bytes(Path("odd.ipynb"), raw.encode())
        assert isinstance(found, notebook.Notebook | notebook.UnreadableNotebook), raw[:40]


def test_surrogates_become_replacement_characters_that_any_page_can_hold() -> None:
    found = read('s = "\ud800"  # \udfff\ndef f(x):\n    return "\udbff"')
    assert isinstance(found, notebook.Notebook)
    assert found.cells[0].source == 's = "\ufffd"  # \ufffd\ndef f(x):\n    return "\ufffd"'
    found.function_sources(["f"])["f"].encode("utf-8")  # (raised before)


# --------------------------------------------------------------------------- one student's text


def _result(student: str, sources: dict[str, str]) -> SubmissionResult:
    test = TestResult("dense_backward: gradient check", "dense_backward", 3, 3, "passed", "ok")
    return SubmissionResult(student, "backprop", f"{student}.ipynb", "", None, (), (test,), "v",
                            0.0, sources=sources)


def test_hostile_sources_leave_the_class_view_whole(tmp_path: Path) -> None:
    """Every adversarial text as a stored source, two giants cut as results keep them: the
    pages are written, the code shown or said to be unshowable, and the similarity page names
    what was compared in part or not at all."""
    rng = random.Random(3)
    results = [_result(f"s{i}", {f: write_function(f, rng) for f in FUNCTIONS}) for i in range(6)]
    for number, text in enumerate(ADVERSARIAL.values()):
        results.append(_result(f"hostile{number}", {"dense_backward": text}))
    giant = "def dense_backward(dout, cache):\n" + "    x = x + 1\n" * 3_000
    cut = notebook._Unit(giant).text()
    results.append(_result("giant", {"dense_backward": cut}))
    results.append(_result("huge", {"dense_backward": giant * 3}))  # (a result kept by hand)
    view = classview.write(results, tmp_path, rubric.load("backprop"), generated="2026-12-01")
    assert view["problem"] is None
    page = (tmp_path / "class" / "similarity.html").read_text()
    assert "Compared in part or not at all" in page
    said = 'huge</a>: <span class="mono">dense_backward</span>, not compared: '
    assert f"{said}{len(giant * 3):,} characters, more than the" in page
    said = said.replace("huge", "giant").replace("not compared", "compared in part")
    assert f"{said}the grader kept only the start" in page
    function = (tmp_path / "class" / "function-dense_backward.html").read_text()
    assert "cut by the grader" in function


def test_an_error_on_one_students_code_is_that_students_note(monkeypatch, tmp_path) -> None:
    """Whatever fails on one student's code (here: fingerprinting and highlighting raise for
    it) is a note on the pages; the rest of the class is compared and shown as before."""
    rng = random.Random(11)
    students = {f"s{i:02d}": {f: write_function(f, rng) for f in FUNCTIONS} for i in range(8)}
    students["copy"] = dict(students["s03"])
    students["bad"] = {"dense_forward": "def dense_forward(x, W, b):\n    return 'poison'"}
    real = similarity._winnowed

    def winnowed(function, source, *args):
        if "poison" in source:
            raise RuntimeError("boom")
        return real(function, source, *args)

    monkeypatch.setattr(similarity, "_winnowed", winnowed)
    found = similarity.compare(students)
    assert [(p.a, p.b) for p in found.pairs] == [("copy", "s03")]
    assert found.notes == (similarity.Note("bad", "dense_forward",
                                           "could not be compared (RuntimeError)"),)

    classview.forget()
    lexer = classview.PythonLexer.get_tokens

    def tokens(self, text, *args):
        if "poison" in text:
            raise ValueError("no")
        return lexer(self, text, *args)

    monkeypatch.setattr(classview.PythonLexer, "get_tokens", tokens)
    results = [_result(s, funcs) for s, funcs in students.items()]
    view = classview.write(results, tmp_path, rubric.load("backprop"), generated="2026-12-01")
    assert view["problem"] is None
    page = (tmp_path / "class" / "function-dense_forward.html").read_text()
    assert "This code could not be shown (ValueError)." in page
    shown = {similarity.normalised(f["dense_forward"]) for s, f in students.items() if s != "bad"}
    assert page.count('<div class="code">') == len(shown)  # every other implementation
    classview.forget()


# --------------------------------------------------------------------------- properties


def _repeated() -> st.SearchStrategy[str]:
    """Long runs of what makes parsers and regular expressions work hard."""
    return st.builds(
        lambda head, piece, count, tail: head + piece * count + tail,
        st.sampled_from(["", "z = ", "def f(x):\n    return ", "f'", 'f"{', "x = %", "  a = !"]),
        st.sampled_from(["-", "not ", "(", "[", "{", "lambda: ", "a if b else ", ".b", "[0]",
                         "{x}", "\\", "'", '"""', "\n", " ", "\t", "@d\n", "await ", "*", "~",
                         "1_", "\x00", "\ud800", "\u2028", "def f(x):\n    return x\n", "a=1;",
                         "if x:\n ", "# ", "%", "!", "π", "\r"]),
        st.integers(0, 12_000),
        st.sampled_from(["", "1", ")", "]", "}", "'", "\n", ":", "\n    pass"]))


_PIECES = ["def ", "f", "(", "x", ")", ":", "\n", "    ", "return ", "class ", "C", "=", " ",
           "lambda", "_impl", "conv1d", "@", "if ", "else", "try:", "except", "'", '"', "#",
           "f'{", "}", "np.", "[", "]", ",", "global ", "yield", "%", "!", "\t", "\\"]
SOURCES = st.one_of(
    st.text(st.characters(codec=None), max_size=300),
    st.text(st.characters(categories=["Cs", "Zl", "Zp", "Cc", "Cf"]), max_size=50),
    st.lists(st.sampled_from(_PIECES), max_size=200).map("".join),
    _repeated(),
)
PROPERTIES = settings(max_examples=150, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTIES
@given(st.lists(SOURCES, min_size=1, max_size=4))
def test_any_cells_read_within_the_budget(cells: list[str]) -> None:
    with parsed() as sizes:
        found = read(*cells)
    assert sum(sizes) <= notebook.MAX_READ_CHARS
    if isinstance(found, notebook.Notebook):
        names = [d.name for c in found.cells for d in c.definitions] + ["conv1d", "f"]
        sources = found.function_sources(names)
        assert all(isinstance(s, str) and len(s) <= notebook.MAX_SOURCE_CHARS + 300
                   for s in sources.values())
        for source in sources.values():
            source.encode("utf-8")  # every page and file can hold it


@PROPERTIES
@given(st.binary(max_size=2_000))
def test_any_bytes_are_a_notebook_or_a_reason(raw: bytes) -> None:
    found = notebook.from_bytes(Path("x.ipynb"), raw)
    assert isinstance(found, notebook.Notebook | notebook.UnreadableNotebook)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["cells", "cell_type", "source", "nbformat", "metadata", "code",
                         "worksheets", "outputs", "input"]) | st.text(max_size=5),
        inner, max_size=4),
    max_leaves=30)


@PROPERTIES
@given(JSON)
def test_any_json_is_a_notebook_or_a_reason(value: object) -> None:
    raw = json.dumps(value).encode()
    found = notebook.from_bytes(Path("x.ipynb"), raw)
    assert isinstance(found, notebook.Notebook | notebook.UnreadableNotebook)


@PROPERTIES
@given(SOURCES)
def test_any_stored_source_passes_every_text_step(source: str) -> None:
    assert_text_steps_hold(source)


@PROPERTIES
@given(st.dictionaries(st.sampled_from(["a", "b", "c"]),
                       st.dictionaries(st.sampled_from(["conv1d", "conv2d"]), SOURCES,
                                       max_size=2), max_size=3))
def test_any_class_is_compared(sources: dict[str, dict[str, str]]) -> None:
    found = similarity.compare(sources, template={"conv1d": "def conv1d(x, w):\n    pass"})
    assert set(found.students) <= set(sources)
    assert all(n.function in sources[n.student] for n in found.notes)


# --------------------------------------------------------------------------- a real batch


@pytest.mark.slow
def test_hostile_text_never_stops_a_real_batch(tmp_path: Path) -> None:
    """``python -m grader grade`` on two honest notebooks and every attack on the grader's own
    reading: exit 0, each one graded or named unreadable, the honest ones as always, the
    overview and the class pages written."""
    folder = tmp_path / "in"
    folder.mkdir()
    build_notebook(folder, "convolution", name="honest")
    build_notebook(folder, "convolution", name="untouched", template=True)
    redefinition = "def conv1d(x, w, stride=1):\n    return x\n"
    attacks = {"minus": ADVERSARIAL["unary minus"], "redefined": redefinition * 4_000,
               "redefined_2mb": redefinition * 40_000, "spaces": " " * 6_000 + "x\ny = 1 != 2",
               "fstring": ADVERSARIAL["f-string fields"], "surrogate": 's = "SURROGATE"'}
    for name, cell in attacks.items():
        path = build_notebook(folder, "convolution", name=name, extra_cells=[cell])
        path.write_text(path.read_text().replace("SURROGATE", "\\ud800"))
    (folder / "bignumber.ipynb").write_text('{"nbformat": 1' + "0" * 5_000 + ', "cells": []}')
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "grader", "grade", "--assignment",
                           "convolution", "--out", str(out), str(folder)],
                          capture_output=True, text=True, cwd=ROOT, env=os.environ, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(results) >= {"honest", "untouched", "bignumber", *attacks}
    score = {name: sum(t["score"] for t in r["tests"]) for name, r in results.items()}
    full = sum(t["max_score"] for t in results["honest"]["tests"])
    assert score["honest"] == full and score["untouched"] == 0
    assert all(score[name] == full for name in ("minus", "spaces", "fstring", "surrogate"))
    assert score["redefined"] < full and score["redefined_2mb"] < full
    assert results["bignumber"]["error"].startswith("not a notebook")
    index = (out / "index.html").read_text()
    assert all(f"{name}.html" in index for name in results if name != "similarity")
    assert (out / "class" / "similarity.html").is_file()
    assert textwrap.dedent(results["honest"]["sources"]["conv1d"]).startswith("def conv1d(")


def test_a_copy_padded_past_the_readers_cap_is_named_not_hidden(tmp_path: Path) -> None:
    """A copier who pads the copied cell with a comment longer than the reader reads would
    leave nothing to compare: the similarity page names the student, and the function that
    earned points with no code to show."""
    rng = random.Random(4)
    honest = {f: write_function(f, rng) for f in FUNCTIONS}
    padded = "# " + "padding " * (notebook.MAX_CELL_CHARS // 8) + "\n" + "\n\n".join(
        honest.values())
    read_back = read("import numpy as np", padded)
    assert read_back.function_sources(list(FUNCTIONS)) == {}
    results = [_result(f"s{i}", {f: write_function(f, rng) for f in FUNCTIONS}) for i in range(4)]
    results.append(_result("original", honest))
    results.append(dataclasses.replace(_result("padded", {}), notices=read_back.notices))
    view = classview.write(results, tmp_path, rubric.load("backprop"), generated="2026-12-01")
    assert view["problem"] is None
    page = html.unescape(re.sub(r"<[^>]+>", "", (tmp_path / "class" / "similarity.html")
                                .read_text()))
    assert "padded: some of its cells were too long for the grader to read" in page
    assert ("padded: dense_backward, not compared: it earned points, but the grader found no "
            "code of it that it could read") in page
