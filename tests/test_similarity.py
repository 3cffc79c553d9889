"""Similarity of submissions: normalisation, winnowing, the weighting of common code, and a
generated class of 55 with known copies (tests/classgen.py)."""

from __future__ import annotations

import ast
import json
import random
import textwrap
from itertools import combinations
from pathlib import Path

import nbformat
import pytest

from grader.checks import rubric
from grader.core import notebook
from grader.render import similarity
from grader.render.classview import template_sources
from tests.classgen import FUNCTIONS, HEADERS, disguise, make_class, stub, write_function

TEXTBOOK = '''def dense_backward(dout, cache):
    """Backward pass of a dense layer."""
    x, W = cache
    dx = dout @ W.T
    dW = x.T @ dout
    db = dout.sum(axis=0)
    return dx, dW, db
'''

DENSE_FORWARD = '''def dense_forward(x, W, b):
    """Forward pass of a dense layer."""
    out = x @ W + b
    cache = (x, W)
    return out, cache
'''

DISGUISED = '''def dense_backward(dout, cache):
    """Backward pass of a dense layer."""
    # unpack what the forward pass kept
    inputs, weights = (cache)
    grad_inputs = dout @ (weights.T)      # upstream times W transposed
    grad_weights = inputs.T@dout
    grad_bias = dout.sum(axis = 0)
    return (grad_inputs, grad_weights,
            grad_bias)
'''


@pytest.fixture(scope="module")
def generated():
    return make_class()


@pytest.fixture(scope="module")
def template() -> dict[str, str]:
    return template_sources(rubric.load("backprop"))


@pytest.fixture(scope="module")
def found(generated, template) -> similarity.Similarity:
    return similarity.compare({r.student: r.sources for r in generated.results},
                              template=template)


def test_renaming_reformatting_and_comments_change_nothing() -> None:
    assert similarity.normalised(DISGUISED) == similarity.normalised(TEXTBOOK)
    assert similarity.normalised(TEXTBOOK).startswith("V0 , V1 = P1 V2 = P0 @ V1 . T")


def test_different_code_stays_different() -> None:
    other = TEXTBOOK.replace("dout.sum(axis=0)", "np.sum(dout, axis=0)")
    assert similarity.normalised(other) != similarity.normalised(TEXTBOOK)
    moved = TEXTBOOK.replace("x.T @ dout", "dout.T @ x")  # the transposed-dW bug
    assert similarity.normalised(moved) != similarity.normalised(TEXTBOOK)


def test_docstring_messages_and_globals() -> None:
    """The docstring is the template's, a message is no code; np and attributes keep names."""
    a = 'def f(x):\n    """Mine."""\n    raise ValueError("one")\n    return np.maximum(0, x)'
    b = 'def f(x):\n    """Yours."""\n    raise ValueError("two")\n    return np.maximum(0, x)'
    assert similarity.normalised(a) == similarity.normalised(b)
    assert "np . maximum" in similarity.normalised(a) and "Mine" not in similarity.normalised(a)


def test_unparsable_source_gives_no_tokens() -> None:
    assert similarity.tokens("def f(x:\n    return") == ()
    assert similarity.fingerprints("f", "not python at all (") == ()
    for depth in (900, 5000):  # parses, or not, but nests deeper than a tree walk may go
        assert similarity.tokens("def f(x):\n    return " + "x+" * depth + "x") == ()
    shallow = similarity.tokens("def f(x):\n    return " + "x+" * 200 + "x")
    assert len(shallow) == 1 + 201 + 200  # return, the x's, the +'s


def test_fingerprints_point_at_the_lines_they_come_from() -> None:
    prints = similarity.fingerprints("dense_backward", TEXTBOOK, k=5, window=2)
    assert prints, "a 5-gram winnowing of a 30-token body finds fingerprints"
    assert all(3 <= p.first <= p.last <= 7 for p in prints)  # the body: lines 3 to 7
    covered = set().union(*(range(p.first, p.last + 1) for p in prints))
    assert covered == {3, 4, 5, 6, 7}


def test_winnowing_guarantees_long_matches() -> None:
    """Every run of K + WINDOW - 1 tokens holds a fingerprint: a copied statement or two is
    always seen, wherever it sits."""
    source = write_function("softmax_cross_entropy", random.Random(3))
    tokens = similarity.tokens(source)
    prints = similarity.fingerprints("softmax_cross_entropy", source)
    starts = []
    for p in prints:
        grams = [i for i in range(len(tokens) - similarity.K + 1)
                 if similarity._kgram(tokens[i:i + similarity.K], "").hash == p.hash]
        starts += grams
    guarantee = similarity.K + similarity.WINDOW - 1
    for start in range(len(tokens) - guarantee + 1):
        assert any(start <= s <= start + guarantee - similarity.K for s in starts), start


def test_every_known_copy_is_flagged(generated, found) -> None:
    flagged = {frozenset((p.a, p.b)) for p in found.pairs}
    for copier, original in generated.copies.items():
        assert frozenset((copier, original)) in flagged, (copier, original)
    assert min(p.score for p in found.pairs) >= found.threshold


def test_only_copies_are_flagged(generated, found) -> None:
    """No pair of students who wrote their code themselves, however alike their styles."""
    copied = {frozenset(pair) for c in generated.clusters for pair in combinations(c, 2)}
    wrongly = [(p.a, p.b, p.score) for p in found.pairs if frozenset((p.a, p.b)) not in copied]
    assert wrongly == []
    assert found.best_unflagged < found.threshold


def test_twenty_independent_correct_solutions_are_not_flagged(generated, found) -> None:
    independent = set(generated.independent_correct)
    assert len(independent) >= 20
    in_pairs = {s for p in found.pairs for s in (p.a, p.b)}
    assert not independent & in_pairs
    styles = {similarity.normalised(r.sources["dense_backward"]) for r in generated.results
              if r.student in independent}
    assert len(styles) >= 15, "the generator must write them in different styles"


def test_clusters_are_the_known_groups_of_copies(generated, found) -> None:
    assert sorted(map(set, found.clusters), key=sorted) == sorted(generated.clusters, key=sorted)
    assert len(found.clusters[0]) == 3  # the chain: a student, a copy, a copy of the copy


def test_untouched_templates_are_nobodys_code(generated, found) -> None:
    """Two untouched notebooks are identical, and share nothing of their own."""
    assert not set(generated.untouched) & set(found.students)


def test_code_the_whole_class_writes_the_same_way_flags_nobody(template) -> None:
    """20 students with the textbook dense layer (``x @ W + b``, ``dout @ W.T``...) word for
    word, and every other function of their own: no pair. Three who share all their own code
    too are flagged, at full score: the common code neither flags nor dilutes."""
    rng = random.Random(7)
    others = [f for f in FUNCTIONS if not f.startswith("dense")]
    own = {f"s{i:02d}": {f: write_function(f, rng) for f in others} for i in range(20)}
    textbook = {"dense_forward": DENSE_FORWARD, "dense_backward": TEXTBOOK}
    everyone = {s: {**funcs, **textbook} for s, funcs in own.items()}
    assert similarity.compare(everyone, template=template).pairs == ()
    trio = ("s01", "s02", "s03")
    few = {s: {**(own["s01"] if s in trio else funcs), **textbook} for s, funcs in own.items()}
    pairs = similarity.compare(few, template=template).pairs
    assert {frozenset((p.a, p.b)) for p in pairs} == {frozenset(p) for p in combinations(trio, 2)}
    assert all(p.score == 1.0 for p in pairs)


def test_a_copy_with_renamed_variables_is_flagged_among_independent_students(template) -> None:
    rng = random.Random(11)
    students = {f"s{i:02d}": {f: write_function(f, rng) for f in FUNCTIONS} for i in range(20)}
    students["copy"] = {f: disguise(code, rng) for f, code in students["s05"].items()}
    found = similarity.compare(students, template=template)
    assert [(p.a, p.b) for p in found.pairs] == [("copy", "s05")]
    assert found.clusters == (("copy", "s05"),)


GIVEN = """def train(X, y, epochs=10):
    \"\"\"Train the network.\"\"\"
    rng = np.random.default_rng(0)
    W1 = rng.standard_normal((784, 128)) * np.sqrt(2 / 784)
    W2 = rng.standard_normal((128, 10)) * np.sqrt(2 / 128)
    b1, b2 = np.zeros(128), np.zeros(10)
"""


def test_template_code_is_excluded(template) -> None:
    """Lines the template gives around the solution are nobody's own; untouched stubs neither."""
    stubs = {f: stub(f) for f in ("dense_forward", "dense_backward")}
    found = similarity.compare({"a": stubs, "b": dict(stubs)}, template=template)
    assert found.students == () and found.pairs == ()
    rng = random.Random(5)
    header = len(HEADERS["softmax_cross_entropy"])
    given = {"train": GIVEN + "    raise NotImplementedError('train it')"}
    left = {name: dict(given) for name in ("a", "b")}  # untouched, given lines and all
    assert similarity.compare(left, template=given).students == ()
    assert [(p.a, p.b) for p in similarity.compare(left, template={}).pairs] == [("a", "b")]
    mine = {name: {"train": GIVEN + write_function("softmax_cross_entropy", rng)[header:]}
            for name in ("a", "b")}
    assert similarity.compare(mine, template=given).students == ("a", "b")


def test_regions_map_matches_to_source_lines(generated, found) -> None:
    pair = next(p for p in found.pairs if {p.a, p.b} == {"copier_a", "correct_00"})
    sources = {r.student: r.sources for r in generated.results}
    functions = {r.function_a for r in pair.regions}
    assert "dense_backward" in functions or len(functions) >= 3
    for region in pair.regions:
        assert region.function_a == region.function_b  # a copy keeps functions in place
        for student, lines in ((pair.a, region.lines_a), (pair.b, region.lines_b)):
            count = len(sources[student][region.function_a].splitlines())
            assert lines and all(2 <= n <= count for n in lines), (student, lines)


def test_same_input_same_output(generated, template, found) -> None:
    shuffled = list(generated.results)
    random.Random(1).shuffle(shuffled)
    again = similarity.compare({r.student: r.sources for r in shuffled}, template=template)
    assert again == found


# --------------------------------------------------------------------------- helpers


def moved(functions: dict[str, str], how: str) -> list[str]:
    """Cells that define ``functions`` (name -> source) with their bodies elsewhere: in
    helpers behind one-line wrappers, in helpers the names are bound to, in static methods of
    one class, or inside a top-level ``if``; "inline" keeps them as they are."""
    cells, methods = [], []
    for function, source in functions.items():
        impl = f"_{function}_impl"
        params = ", ".join(a.arg for a in ast.parse(source).body[0].args.args)
        helper = source.replace(f"def {function}(", f"def {impl}(", 1)
        if how == "wrapper":
            cells.append(f"{helper}\n\n\ndef {function}({params}):\n    return {impl}({params})")
        elif how == "alias":
            cells.append(f"{helper}\n\n{function} = {impl}")
        elif how == "method":
            methods.append(f"    @staticmethod\n{textwrap.indent(helper, '    ')}")
            cells.append(f"{function} = Layers.{impl}")
        elif how == "guarded":
            cells.append(f"if True:\n{textwrap.indent(source, '    ')}")
        else:
            cells.append(source)
    return ["class Layers:\n" + "\n\n".join(methods)] * bool(methods) + cells


def read_sources(cells: list[str]) -> dict[str, str]:
    """What a result keeps of a notebook of ``cells`` (grader.grading.grade stores exactly this)."""
    made = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    read = notebook.from_bytes(Path("s.ipynb"), json.dumps(made).encode())
    return read.function_sources(list(FUNCTIONS))


@pytest.mark.parametrize("how", ["wrapper", "alias", "method", "guarded"])
def test_a_copy_moved_into_helpers_is_flagged(template, how: str) -> None:
    """Issue 21's copy: the functions renamed ``_f_impl`` behind one-line wrappers (and the
    same move by other means) pairs with the original that keeps the bodies inline."""
    rng = random.Random(11)
    students = {f"s{i:02d}": {f: write_function(f, rng) for f in FUNCTIONS} for i in range(20)}
    copied = {f: disguise(code, rng) for f, code in students["s05"].items()}
    students["copy"] = read_sources(["import numpy as np", *moved(copied, how)])
    assert set(students["copy"]) == set(FUNCTIONS)
    found = similarity.compare(students, template=template)
    assert [(p.a, p.b) for p in found.pairs] == [("copy", "s05")]
    assert found.pairs[0].score >= 0.9
    assert found.best_unflagged < found.threshold


def test_honest_helpers_do_not_make_independent_students_pair(template) -> None:
    """Twenty students who write their code themselves, half of them moving some of it into
    helpers of their own (and calling a helper the template hands out): no pair, and none as
    close to the threshold as a copy."""
    rng = random.Random(5)
    students = {}
    given = "def numerical_gradient(f, x, h=1e-5):\n    return (f(x + h) - f(x - h)) / (2 * h)\n"
    for i in range(20):
        written = {f: write_function(f, rng) for f in FUNCTIONS}
        cells = ["import numpy as np", given]
        for f, code in written.items():
            how = rng.choice(["wrapper", "alias", "guarded"]) if i % 2 else "inline"
            cells += moved({f: code}, how)
        cells.append("def dense_forward(x, W, b):\n    return _affine(x, W) + b\n\n"
                     "def _affine(x, W):\n    check = numerical_gradient(np.sum, x)\n"
                     "    return x @ W\n" if i % 4 == 1 else "pass")
        students[f"s{i:02d}"] = read_sources(cells)
    found = similarity.compare(students, template={**template, "numerical_gradient": given})
    assert found.pairs == ()
    assert found.best_unflagged < found.threshold - 0.1
    with_helpers = [s for s, f in students.items() if "_impl" in f["relu_forward"]]
    assert len(with_helpers) >= 5  # the helpers were there to be compared


def test_a_helper_shared_by_two_functions_counts_once(template) -> None:
    """Two functions calling one helper store it twice; its code weighs once in the score."""
    rng = random.Random(2)
    helper = write_function("relu_forward", rng).replace("def relu_forward(", "def _relu(", 1)
    students = {f"s{i}": {f: write_function(f, rng) for f in FUNCTIONS} for i in range(6)}
    a = {**students["s0"], "relu_forward": "def relu_forward(x):\n    return _relu(x)\n\n\n" +
         helper, "sigmoid_forward": "def sigmoid_forward(x):\n    return _relu(x)\n\n\n" + helper}
    b = {**students["s0"], "relu_forward": "def relu_forward(x):\n    return _relu(x)\n\n\n" +
         helper}
    found = similarity.compare({**students, "a": a, "b": b}, template=template)
    pair = next(p for p in found.pairs if {p.a, p.b} == {"a", "b"})
    assert pair.score > 0.9
