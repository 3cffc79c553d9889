"""What made batches faster changes nothing they write: result and Gradescope files encoded in
the workers are the files ``save`` and ``write_gradescope`` write, the class view's memory of
tokens, fingerprints and highlighted code follows each source's text, and the head start a
batch gives the class view, and the results it hands ``rebuild``, leave every page as it was."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from grader.checks import rubric
from grader.core import results
from grader.course import batch, classroom
from grader.render import classview, export, similarity
from tests.classgen import make_class
from tests.conftest import UNIT_KINDS, build_notebook

GENERATED = "2026-12-01"
SOURCE = '''def dense_backward(dout, cache):
    x, W = cache
    dx = dout @ W.T
    dW = x.T @ dout
    db = dout.sum(axis=0)
    return dx, dW, db
'''


@pytest.fixture(scope="module")
def generated():
    return make_class(correct=10, divide_again=5, transposed=4, unshifted=3)


@pytest.fixture(scope="module")
def backprop() -> rubric.Rubric:
    return rubric.load("backprop")


def _forget() -> None:
    classview.forget()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and "intake" not in p.parts}


# --------------------------------------------------------------------------- encoding


def test_encoded_texts_are_the_files_save_and_write_gradescope_write(generated,
                                                                     tmp_path) -> None:
    for result in generated.results[:5]:
        results.save(result, tmp_path / "r.json")
        export.write_gradescope(result, tmp_path / "g.json")
        encoded = batch.Encoded(results.encode(result), export.gradescope_text(result), "<p>")
        assert encoded.result_json == (tmp_path / "r.json").read_text(encoding="utf-8")
        assert encoded.gradescope_json == (tmp_path / "g.json").read_text(encoding="utf-8")
        assert encoded.result() == result
        assert encoded.result_json.startswith('{\n  "schema": 1,')  # indent=2, as before


@pytest.mark.slow
def test_a_two_worker_batch_writes_the_same_files_as_save(tmp_path, sandbox_config) -> None:
    """Real notebooks through a real pool: each file is the text the parent would have made."""
    folder = tmp_path / "in"
    folder.mkdir()
    build_notebook(folder, "backprop", name="reference")
    build_notebook(folder, "backprop", name="untouched", template=True)
    (folder / "broken.ipynb").write_text("{ not a notebook")
    loaded = rubric.load("backprop")
    loaded = dataclasses.replace(loaded, tests=tuple(t for t in loaded.tests
                                                     if t.kind in UNIT_KINDS))
    out = tmp_path / "out"
    summary = batch.grade_all([folder], loaded, out, sandbox=sandbox_config, jobs=2,
                              progress=False, check_reference=False)
    assert summary.graded == 3
    scores = {r.student: r.score for r in summary.results}
    assert scores["reference"] == loaded.max_score and scores["untouched"] == 0
    for result in summary.results:
        stored = out / f"{result.student}.json"
        assert stored.read_text(encoding="utf-8") == results.encode(result)
        assert results.load(stored) == result
        gradescope = out / "gradescope" / f"{result.student}.json"
        assert gradescope.read_text(encoding="utf-8") == export.gradescope_text(result)
        assert json.loads(gradescope.read_text())["score"] == result.score
    assert "broken" in (out / "index.html").read_text()


# --------------------------------------------------------------------------- memory


def test_fingerprints_follow_the_source_text() -> None:
    _forget()
    first = similarity.fingerprints("dense_backward", SOURCE)
    changed = SOURCE.replace("dout @ W.T", "dout @ W.T / x.shape[0]")
    second = similarity.fingerprints("dense_backward", changed)
    assert first != second
    assert second == similarity._fingerprints.__wrapped__("dense_backward", changed, similarity.K,
                                                          similarity.WINDOW)
    assert similarity.fingerprints("dense_backward", SOURCE) == first
    assert similarity.normalised(changed) != similarity.normalised(SOURCE)
    assert similarity.fingerprints("other", SOURCE)[0].function == "other"  # keyed by name too


def test_highlighting_follows_the_source_and_its_marked_lines() -> None:
    _forget()
    plain = classview._code(SOURCE)
    assert "dout" in plain and classview._code(SOURCE.replace("dout", "grad")) != plain
    assert "grad" in classview._code(SOURCE.replace("dout", "grad"))
    marked = classview._code(SOURCE, (3,))
    assert marked != plain and 'class="hll"' in marked
    assert classview._code(SOURCE, [3]) == marked  # a list of lines is the same request
    # lexed once, shown twice: the same markup as Pygments' own highlight
    assert classview._tokens.cache_info().currsize == 2
    assert plain == highlight(SOURCE, PythonLexer(), HtmlFormatter(cssclass="code",
                                                                    wrapcode=True))
    assert marked == highlight(SOURCE, PythonLexer(), HtmlFormatter(
        cssclass="code", wrapcode=True, hl_lines=[3], linenos="inline"))
    assert classview._code(SOURCE, (2,)) != marked  # each copy marks its own lines


def test_a_giant_source_is_worked_out_but_not_kept() -> None:
    _forget()
    giant = "def f(x):\n" + "    y = x + 1\n" * 500
    assert len(giant) > similarity.MEMORY_CHARS
    assert similarity.tokens(giant) and similarity.fingerprints("f", giant)
    assert classview._code(giant) is not None
    assert similarity.normalised(giant)
    assert similarity._normalised.cache_info().currsize == 0
    assert similarity._fingerprints.cache_info().currsize == 0
    assert classview._highlighted.cache_info().currsize == 0
    assert classview._tokens.cache_info().currsize == 0


def test_prepare_changes_no_page_and_never_raises(generated, backprop, tmp_path) -> None:
    _forget()
    classview.write(generated.results, tmp_path / "cold", backprop, generated=GENERATED)
    _forget()
    hostile = dataclasses.replace(generated.results[0], student="hostile", sources={
        "dense_backward": "def dense_backward(:\n", "relu_forward": "(" * 10_000,
        "softmax_cross_entropy": 3})
    classview.warm_up(backprop)
    for result in [*generated.results, hostile]:
        classview.prepare(result, backprop)
    memories = (classview._tokens, classview._template_functions, similarity._all_hashes)
    before = [memory.cache_info() for memory in memories]
    classview.write(generated.results, tmp_path / "warm", backprop, generated=GENERATED)
    # the pages lexed and read nothing the head start had not (the serial end's share)
    assert all(info.currsize for info in before)
    assert [memory.cache_info().misses for memory in memories] == [i.misses for i in before]
    cold, warm = _files(tmp_path / "cold"), _files(tmp_path / "warm")
    assert cold and cold == warm


# --------------------------------------------------------------------------- rebuild


def test_rebuild_with_known_results_writes_what_reading_them_writes(generated, backprop,
                                                                     tmp_path) -> None:
    folder = tmp_path / "a"
    for result in generated.results:
        results.save(result, folder / f"{result.student}.json")
        (folder / f"{result.student}.html").write_text("<p>page</p>")
    shutil.copytree(folder, tmp_path / "b")
    (folder / "notes.json").write_text("[1, 2]")  # the instructor's: no result, skipped
    (tmp_path / "b" / "notes.json").write_text("[1, 2]")
    common = dict(assignment="backprop", max_score=backprop.max_score, rubric=backprop,
                  fresh=[r.student for r in generated.results])
    one = classroom.rebuild(folder, **common)
    two = classroom.rebuild(tmp_path / "b", known=generated.results, **common)
    assert one == two
    assert _files(folder) == _files(tmp_path / "b")
    assert str(len(generated.results)) in one.counts.line()


def test_rebuild_reads_results_it_was_not_given(generated, backprop, tmp_path) -> None:
    """A folder's earlier results count though this run holds only its own."""
    for result in generated.results:
        results.save(result, tmp_path / f"{result.student}.json")
    view = classroom.rebuild(tmp_path, assignment="backprop", max_score=backprop.max_score,
                             known=generated.results[:2])
    assert len(view.finals) == len(generated.results)


WORKER_FIRST_PAGE = r"""
import sys
from pathlib import Path
from grader.core import results
from grader.render import figures, report
report.warm_up()
before = set(sys.modules)
page = report.render_student(results.load(Path(sys.argv[1])))
assert "data:image/png;base64," in page  # an error map was drawn (or read back)
print(sorted(set(sys.modules) - before), figures._drawing_code.cache_info().misses)
"""


def test_a_workers_first_page_loads_nothing_the_warm_up_did_not(tmp_path) -> None:
    """``report.warm_up`` runs before a pool forks: what a student page with an error map
    needs (NumPy's masked arrays, the pictures' cache key) is then loaded once per batch,
    not once in every worker. (The first run draws the pictures, with matplotlib; the
    second finds them drawn, as a batch's workers mostly do.)"""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    page = root / "tests" / "fixtures" / "results" / "failures.json"
    seen = [subprocess.run([sys.executable, "-c", WORKER_FIRST_PAGE, str(page)],
                           capture_output=True, text=True, timeout=120, cwd=root,
                           env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
            for _ in range(2)]
    assert all(done.returncode == 0 for done in seen), seen[-1].stderr[-2000:]
    assert "matplotlib" in seen[0].stdout
    assert seen[1].stdout.split() == ["[]", "1"], seen[1].stdout

