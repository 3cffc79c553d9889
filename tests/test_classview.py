"""The class view: one page per function grouping the class by behaviour and by identical code,
the similarity page, their links from the overview, escaping, and a real batch that writes them."""

from __future__ import annotations

import dataclasses
import html
import json
import random
import re
from pathlib import Path

import pytest

from grader.checks import rubric
from grader.core.results import SubmissionResult, TestResult
from grader.render import classview, report
from tests.classgen import make_class, write_function
from tests.conftest import UNIT_KINDS, build_notebook

GENERATED = "2026-12-01"


@pytest.fixture(scope="module")
def generated():
    return make_class()


@pytest.fixture(scope="module")
def backprop() -> rubric.Rubric:
    return rubric.load("backprop")


@pytest.fixture(scope="module")
def site(generated, backprop, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("class")
    view = classview.write(generated.results, out, backprop, generated=GENERATED)
    return out, view


def _by_students(view: classview.FunctionView) -> dict[frozenset, classview.Group]:
    return {frozenset(g.students): g for g in view.groups}


def _expected_groups(generated, function: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for student, label in generated.behaviour[function].items():
        found.setdefault(label, set()).add(student)
    return found


def test_generated_class_is_large_enough(generated) -> None:
    assert len(generated.results) >= 50
    assert len(generated.independent_correct) >= 20


@pytest.mark.parametrize("function", ["dense_backward", "softmax_cross_entropy", "relu_forward"])
def test_groups_are_the_known_behaviours(generated, function: str) -> None:
    """Every known behaviour is exactly one group, with its count: the 13 who divide by N
    again (12 and a copy), the 7 with dW transposed, the untouched..."""
    view = classview.group_function(generated.results, function)
    groups = _by_students(view)
    expected = _expected_groups(generated, function)
    assert set(groups) == {frozenset(s) for s in expected.values()}
    for label, students in expected.items():
        group = groups[frozenset(students)]
        assert group.correct == (label == "correct"), label
    assert sum(len(g.students) for g in view.groups) == len(generated.results)


def test_divide_by_n_twice_in_one_look(generated) -> None:
    view = classview.group_function(generated.results, "dense_backward")
    divided = next(g for g in view.groups if any("do not divide by N" in d for d in g.diagnoses))
    assert len(divided.students) == 13 and "copier_c" in divided.students
    assert divided.verdict == "fails 1 of 1 test"
    assert any("wrong dW (relative error 6.0e-01)" in f for f in divided.findings)
    transposed = next(g for g in view.groups if any("transposed" in d for d in g.diagnoses))
    assert len(transposed.students) == 7
    assert any("shape [3, 5]" in f for f in transposed.findings)
    assert view.groups[0].correct and len(view.groups[0].students) == 33  # largest first


def test_identical_code_is_one_variant_within_a_group(generated) -> None:
    """A copy, however disguised, is the same implementation; independent writers mostly not."""
    view = classview.group_function(generated.results, "dense_backward")
    correct = next(g for g in view.groups if g.correct)
    variant_of = {s: v for v in correct.variants for s in v.students}
    assert set(variant_of["copier_d"].students) == {"copier_d", "copier_e", "correct_02"}
    assert variant_of["copier_a"] is variant_of["correct_00"]
    assert len(correct.variants) >= 20
    assert [len(v.students) for v in correct.variants] == sorted(
        (len(v.students) for v in correct.variants), reverse=True)


def test_behaviour_ignores_floating_point_noise_but_not_different_numbers() -> None:
    def result(error: float) -> SubmissionResult:
        outputs = [{"name": "dW", "passed": False, "relative_error": error}]
        test = TestResult("t", "f", 0.0, 1.0, "failed", "m", details={"outputs": outputs})
        return SubmissionResult("s", "a", "s.ipynb", "", None, (), (test,), "v", 0.0)

    assert classview.behaviour(result(0.6666666666666667), "f") == classview.behaviour(
        result(0.6666666666666666), "f")
    assert classview.behaviour(result(0.667), "f") != classview.behaviour(result(0.5), "f")


def test_pages_are_written_and_linked_from_the_overview(generated, backprop, site) -> None:
    out, view = site
    assert view["problem"] is None
    functions = [f for f in backprop.functions if f not in backprop.given]
    assert [f["name"] for f in view["functions"]] == functions
    for entry in view["functions"]:
        assert (out / entry["href"]).is_file(), entry["href"]
    assert (out / view["similarity"]["href"]).is_file()
    assert view["similarity"]["pairs"] == 6 and view["similarity"]["clusters"] == 4
    document = json.loads((out / "class" / "similarity.json").read_text())
    assert document["schema"] == 1 and len(document["pairs"]) == 6
    assert {frozenset((p["a"], p["b"])) for p in document["pairs"]} >= {
        frozenset(pair) for pair in generated.copies.items()}
    index = report.render_index(generated.results, generated=GENERATED, class_view=view)
    hrefs = set(re.findall(r'href="([^"]+)"', index))
    assert {f["href"] for f in view["functions"]} <= hrefs
    assert view["similarity"]["href"] in hrefs
    clusters = re.findall(r'<li>(<a class="cluster-link".*?)</li>', index)
    assert len(clusters) == 4 and 'href="./copier_d.html"' in clusters[0]  # largest first
    assert index.count('class="student-link"') == len(generated.results)


def test_function_page_shows_groups_counts_code_and_student_links(site, generated) -> None:
    out, _ = site
    page = (out / "class" / "function-dense_backward.html").read_text()
    counts = [int(n) for n in re.findall(r'data-testid="group-count">(\d+)<', page)]
    assert counts == [33, 13, 7, 2]
    assert page.count('<div class="code">') >= 4  # a highlighted representative per group
    links = set(re.findall(r'class="student-link" href="([^"]+)"', page))
    assert links == {f"../{r.student}.html" for r in generated.results}
    assert "do not divide by N inside dense_backward" in page
    assert 'href="../index.html"' in page


def test_similarity_page_lists_pairs_clusters_and_matching_lines(site, generated) -> None:
    out, _ = site
    page = (out / "class" / "similarity.html").read_text()
    assert page.count('data-testid="pair"') == 6
    assert page.count('data-testid="cluster"') == 4
    assert page.count('data-testid="side-by-side"') == 6
    assert 'class="hll"' in page  # matching lines are highlighted
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    for copier, original in generated.copies.items():
        assert f"{min(copier, original)} and {max(copier, original)}" in text
    for student in generated.independent_correct:
        assert f'href="../{student}.html"' not in page


def test_everything_from_student_code_is_escaped(backprop, tmp_path) -> None:
    hostile = write_function("dense_backward", random.Random(1)).replace(
        "    x", '    # </pre><script>alert(1)</script>\n    x', 1)
    hostile += '\n    print("<img src=x onerror=alert(1)>")'
    diagnosis = "<b>not bold</b>"
    results = []
    for name in ("evil_a", "evil_b"):
        test = TestResult("dense_backward: gradient check", "dense_backward", 0, 3, "failed",
                          "m", diagnosis=diagnosis)
        results.append(SubmissionResult(name, "backprop", f"{name}.ipynb", "", None, (),
                                        (test,), "v", 0.0,
                                        sources={"dense_backward": hostile}))
    view = classview.write(results, tmp_path, backprop, generated=GENERATED)
    assert view["problem"] is None
    for page in ("function-dense_backward.html", "similarity.html"):
        text = (tmp_path / "class" / page).read_text()
        assert "<script>" not in text and "<img" not in text and "<b>" not in text
        assert "&lt;script&gt;" in text
    assert "&lt;b&gt;not bold&lt;/b&gt;" in (tmp_path / "class" / "function-dense_backward.html"
                                              ).read_text()


def test_broken_sources_and_details_do_not_stop_the_view(backprop, tmp_path) -> None:
    odd = TestResult("dense_backward: gradient check", "dense_backward", 0, 3, "error",
                     "`dense_backward` raised ZeroDivisionError: x",
                     details={"outputs": "not a list", "checks": [1, {"name": 2}]})
    results = [
        SubmissionResult("a", "backprop", "a.ipynb", "", None, (), (odd,), "v", 0.0,
                         sources={"dense_backward": "def dense_backward(:\n  oops"}),
        SubmissionResult("b", "backprop", "b.ipynb", "", None, (), (odd,), "v", 0.0,
                         sources={"dense_backward": None}),  # type: ignore[dict-item]
        SubmissionResult("c", "backprop", "c.ipynb", "", "not a notebook", (), (), "v", 0.0),
        SubmissionResult("d", "backprop", "d.ipynb", "", None, (), (odd,), "v", 0.0,
                         sources="not a dict"),  # type: ignore[arg-type]
    ]
    view = classview.write(results, tmp_path, backprop, generated=GENERATED)
    assert view["problem"] is None
    page = (tmp_path / "class" / "function-dense_backward.html").read_text()
    assert "oops" in page and "raised ZeroDivisionError" in page
    assert '../c.html' not in page  # ungradable notebooks are in the overview, not here
    assert "../d.html" in page


def test_nothing_graded_gives_no_class_view(backprop, tmp_path) -> None:
    ungradable = SubmissionResult("c", "backprop", "c.ipynb", "", "not a notebook", (), (), "v",
                                  0.0)
    assert classview.write([ungradable], tmp_path, backprop) is None
    assert not (tmp_path / "class").exists()
    assert "class-view" not in report.render_index([ungradable], class_view=None)


def test_a_failure_is_reported_not_raised(generated, backprop, tmp_path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(classview.similarity, "compare", broken)
    view = classview.write(generated.results[:5], tmp_path, backprop)
    assert "RuntimeError: boom" in view["problem"]
    index = report.render_index([], class_view=view)
    assert "The class view could not be built" in index


def test_same_input_same_pages(generated, backprop, site, tmp_path) -> None:
    out, _ = site
    classview.write(list(reversed(generated.results)), tmp_path, backprop, generated=GENERATED)
    for page in sorted((out / "class").iterdir()):
        assert (tmp_path / "class" / page.name).read_bytes() == page.read_bytes(), page.name


@pytest.mark.slow
def test_a_real_batch_writes_the_class_view(tmp_path: Path, sandbox_config) -> None:
    """Four real notebooks through the real pipeline: the reference, two who divide by N again
    (one a renamed copy of the other) and one who copied nothing."""
    from grader.course.batch import grade_all

    divided = """
    def dense_backward(dout, cache):
        x, W = cache
        n = x.shape[0]
        dx = dout @ W.T
        dW = x.T @ dout / n
        db = dout.sum(axis=0) / n
        return dx, dW, db
    """
    renamed = (divided.replace("x, W", "inp, weights").replace("x.", "inp.")
               .replace("W.T", "weights.T").replace(" n", " count").replace("n =", "count ="))
    folder = tmp_path / "in"
    folder.mkdir()
    build_notebook(folder, "backprop", name="reference")
    build_notebook(folder, "backprop", name="divides", replace={"dense_backward": divided})
    build_notebook(folder, "backprop", name="copies", replace={"dense_backward": renamed})
    build_notebook(folder, "backprop", name="untouched", template=True)
    loaded = rubric.load("backprop")
    loaded = dataclasses.replace(loaded, tests=tuple(t for t in loaded.tests
                                                     if t.kind in UNIT_KINDS))
    out = tmp_path / "out"
    grade_all([folder], loaded, out, sandbox=sandbox_config, progress=False,
              check_reference=False)

    index = (out / "index.html").read_text()
    assert 'href="class/function-dense_backward.html"' in index
    assert 'href="class/similarity.html"' in index
    page = (out / "class" / "function-dense_backward.html").read_text()
    counts = [int(n) for n in re.findall(r'data-testid="group-count">(\d+)<', page)]
    assert sorted(counts) == [1, 1, 2]
    groups = page.split('data-testid="group"')[1:]
    divided_group = next(g for g in groups if "../divides.html" in g)
    assert "../copies.html" in divided_group and "../reference.html" not in divided_group
    assert "dW" in divided_group  # what went wrong, from the stored results
    assert (out / "class" / "similarity.html").is_file()
    for student in ("reference", "divides", "copies", "untouched"):
        assert (out / f"{student}.html").is_file()


# --- what tops the similarity list: real shared code, never a library one-liner ---------------

LIBRARY_CONV = '''def conv1d(x, w, stride=1):
    """Valid 1-D cross-correlation of the signal x with the kernel w (no flipping)."""
    return np.convolve(np.asarray(x, float), np.asarray(w, float)[::-1], mode="valid")[::stride]
'''
COPIED_CONV = '''def conv1d(x, w, stride=1):
    """Valid 1-D cross-correlation of the signal x with the kernel w (no flipping)."""
    signal = np.asarray(x, dtype=float)
    kernel = np.asarray(w, dtype=float)
    length = (len(signal) - len(kernel)) // stride + 1
    result = np.zeros(length)
    for position in range(length):
        begin = position * stride
        window = signal[begin:begin + len(kernel)]
        total = 0.0
        for offset in range(len(kernel)):
            total = total + window[offset] * kernel[offset]
        result[position] = total
    return result
'''
SHORT_SHARED = '''def conv1d(x, w, stride=1):
    """Valid 1-D cross-correlation of the signal x with the kernel w (no flipping)."""
    return np.asarray(x, dtype=float)[:len(x) - len(w) + 1:stride] * np.sum(w) + 0.5
'''


def _student(name: str, source: str, *, forbidden: bool = False) -> SubmissionResult:
    test = TestResult("conv1d: random sizes and strides", "conv1d", 0.0 if forbidden else 1.0,
                      2.0, "failed", "x", diagnosis="forbidden shortcut" if forbidden else None)
    return SubmissionResult(name, "convolution", f"{name}.ipynb", "", None, (), (test,), "v",
                            0.0, sources={"conv1d": source})


def test_a_shared_library_one_liner_is_not_compared_and_little_code_comes_last(
        tmp_path: Path) -> None:
    """Issue 22: the top pair was two students whose only code is the same forbidden
    np.convolve line (already worth nothing). Now such functions are not compared (and the
    page says so), and a pair sharing a one-line comprehension is listed after a pair
    sharing a whole copied implementation."""
    loaded = rubric.load("convolution")
    results = [_student("lib1", LIBRARY_CONV, forbidden=True),
               _student("lib2", LIBRARY_CONV, forbidden=True),
               _student("copy1", COPIED_CONV), _student("copy2", COPIED_CONV.replace(
                   "total = 0.0", "total = 0.0  # sum")),
               _student("short1", SHORT_SHARED), _student("short2", SHORT_SHARED)]
    classview.write(results, tmp_path, loaded, generated=GENERATED)
    found = json.loads((tmp_path / "class" / "similarity.json").read_text())
    pairs = [(p["a"], p["b"], p["little"]) for p in found["pairs"]]
    assert pairs[0] == ("copy1", "copy2", False), pairs
    assert all(set(p[:2]) != {"lib1", "lib2"} for p in pairs)
    assert ("short1", "short2", True) in pairs and pairs[-1] == ("short1", "short2", True)
    notes = {(n["student"], n["function"]) for n in found["notes"]}
    assert {("lib1", "conv1d"), ("lib2", "conv1d")} <= notes
    page = (tmp_path / "class" / "similarity.html").read_text()
    assert "little code" in page
    assert ".side-by-side .code pre { white-space: pre-wrap" in page  # long lines wrap
