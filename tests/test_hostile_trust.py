"""The hostile corpus of the trust boundary: each attack of the security review (issue 21),
rebuilt from its description, with the outcome it must have now.

Each notebook is what a determined student could write with only the handed-out notebook, the
self-check ``.pyz``, the README and docs/. None of them may earn what the same notebook without
the trick earns, or stop a batch.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.checks import rubric
from grader.course.batch import grade_all
from grader.distribute import selfcheck
from tests.conftest import ROOT, build_notebook

# --- 1. the self-check holds the grading answers -------------------------------------------

LOOKUP = '''
import base64, hashlib, io, json, zipfile
import numpy as np

_PYZ = zipfile.ZipFile(io.BytesIO(base64.b64decode("{pyz}")))
_BUNDLE = json.loads(_PYZ.read("checker_data/answers.json"))
_ARRAYS = dict(np.load(io.BytesIO(_PYZ.read("checker_data/arrays.npz")), allow_pickle=False))
_REPLAY = {{}}
exec(compile(_PYZ.read("grader/distribute/replay.py").decode(), "replay", "exec"), _REPLAY)


def _lookup(name, *args, **kwargs):
    """The reference's recorded answer to exactly this call, as the checker replays it."""
    key = _REPLAY["call_key"](name, args, kwargs)
    entry = _BUNDLE["functions"].get(name, {{}}).get("answers", {{}}).get(key)
    if entry is None or "returns" not in entry:
        raise NotImplementedError("no recorded answer")
    return _REPLAY["decode"](entry["returns"], _ARRAYS)
'''


def lookup_notebook(folder: Path, assignment: str, pyz: Path) -> tuple[Path, list[str]]:
    """The untouched template plus one cell that answers every recorded call: each function
    the checker has answers for returns them, and raises NotImplementedError otherwise."""
    bundle = json.loads(zipfile.ZipFile(pyz).read("checker_data/answers.json"))
    names = sorted(n for n, f in bundle["functions"].items() if f["answers"])
    cell = LOOKUP.format(pyz=base64.b64encode(pyz.read_bytes()).decode())
    cell += "".join(f"\n\ndef {n}(*args, **kwargs):\n    return _lookup({n!r}, *args, **kwargs)\n"
                    for n in names)
    path = build_notebook(folder, assignment, name=f"lookup-{assignment}", template=True,
                          extra_cells=[cell])
    return path, names


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ["convolution", "backprop"])
def test_answers_recorded_in_the_self_check_earn_nothing(assignment: str, tmp_path: Path,
                                                         grade_notebook) -> None:
    """A notebook that returns the self-check's recorded answers passes the self-check's own
    tests (the lookup works), and earns nothing on a grading input: every output and gradient
    test scores 0. Only the lecture's worked examples (fixed inputs, printed in the notebook
    anyway) may pass."""
    pyz = selfcheck.export(assignment, tmp_path / f"{assignment}-check.pyz")
    path, names = lookup_notebook(tmp_path, assignment, pyz)
    assert names
    checked = subprocess.run([sys.executable, str(pyz), str(path), "--json"],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    in_checker = {t["name"]: t for t in json.loads(checked.stdout)["tests"]}
    seeded = [t for t in rubric.load(assignment).tests if t.kind in ("output", "gradient")]
    public = [t.name for t in seeded if t.visibility == "public"]
    assert public and all(in_checker[n]["score"] > 0 for n in public), in_checker

    result = grade_notebook(path, assignment, kinds=("example", "output", "gradient", "rules"))
    graded = {t.name: t for t in result.tests}
    assert all(graded[t.name].score == 0 for t in seeded), {
        t.name: graded[t.name].message for t in seeded if graded[t.name].score}


# --- 2. MNIST credit for weights trained elsewhere --------------------------------------------

PASTED = '''
import base64, io, time
_W = np.load(io.BytesIO(base64.b64decode("{weights}")), allow_pickle=False)
_MODEL = {{name: _W[name].astype(np.float32) for name in ("W1", "b1", "W2", "b2")}}


def train_mnist(X, y, seed=0, **kwargs):
    time.sleep(1)  # "training"
    return dict(_MODEL)


def predict(model, X):
    hidden = np.maximum(np.asarray(X, np.float32) @ model["W1"] + model["b1"], 0)
    return (hidden @ model["W2"] + model["b2"]).argmax(axis=1)
'''
# The runtime's request handler replaced: every request the diagnostic makes is answered "done",
# and the weights it reads back are the pasted ones, whatever its layer functions (all stubs).
FORGED_DIAGNOSTIC = '''
import sys
_runtime = next(m for m in list(sys.modules.values())
                if hasattr(m, "_serve") and hasattr(m, "_handle"))
_real = _runtime._handle


def _forged(handlers, request):
    if request.get("op") in ("calls", "put", "step"):
        return {"ok": True, "guards": []}
    if request.get("op") == "fetch" and request.get("key") in _MODEL:
        return {"ok": True, "value": np.asarray(_MODEL[request["key"]], np.float64)}
    return _real(handlers, request)


_runtime._handle = _forged
'''


@pytest.fixture(scope="module")
def pasted_weights(mnist_files) -> str:
    """A 784-32-10 network trained outside the notebook (four epochs of the reference's own
    loop, 96% on the public test set), as the base64 of an .npz of float16 arrays."""
    import io

    import numpy as np

    from grader.core import reference

    ref = reference.load(ROOT / "solutions" / "backprop.ipynb")
    images = np.load(mnist_files.train_images)
    labels = np.load(mnist_files.train_labels).astype(np.int64)
    model = ref["train_mnist"](images, labels, seed=1, epochs=4, hidden=32)
    test = np.load(mnist_files.test_images)
    accuracy = np.mean(ref["predict"](model, test) == np.load(mnist_files.test_labels))
    assert accuracy > 0.95, accuracy  # (a network that would pass, undisguised)
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v.astype(np.float16) for k, v in model.items()})
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.slow
def test_pasted_weights_earn_nothing(pasted_weights: str, tmp_path: Path,
                                     grade_notebook) -> None:
    """The pasted network meets pixels in an order it never saw and digits under other names:
    it scores like guessing (0 points, and the page says why), and the forged diagnostic's
    network, measured by the grader on the same disguised images, earns nothing either."""
    cell = PASTED.format(weights=pasted_weights)
    path = build_notebook(tmp_path, "backprop", name="pasted", template=True,
                          extra_cells=[cell, FORGED_DIAGNOSTIC])
    result = grade_notebook(path, "backprop", kinds=("mnist", "mnist_diagnostic"))
    accuracy, diagnostic = result.tests
    assert accuracy.details["accuracy"] < 0.2 and accuracy.score == 0, accuracy.message
    assert "secret order" in accuracy.message
    assert accuracy.details["pasted_data"] > 20_000
    assert diagnostic.score == 0, diagnostic.message
    assert (diagnostic.details.get("accuracy") or 0) < 0.2, diagnostic.details


def test_a_notebook_carrying_a_network_waits_for_review() -> None:
    """Should a pasted network get past the disguise (a student who recovers the pixel order),
    it still needs its weights in the notebook: tens of kB of literal data, which sends an
    accuracy above the floor to review instead of to the gradebook."""
    from grader.checks.kinds import mnist as mnist_checks
    from grader.checks.rubric import load
    from grader.core import notebook

    spec = next(t for t in load("backprop").tests if t.kind == "mnist")
    text = json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                                  "execution_count": None,
                                  "source": f'W = "{"A" * 60_000}"\n'}],
                       "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    read = notebook.from_bytes(Path("pasted.ipynb"), text.encode())
    size = mnist_checks.pasted_data(read)
    details = {"accuracy": 0.97, "train_seconds": 5.0, "budget_seconds": 60.0,
               "pasted_data": size}
    judged = mnist_checks.judge(spec, details)
    assert judged.status == "review" and judged.score == 0
    assert "60,000 characters of literal data" in judged.diagnosis
    honest = notebook.read(ROOT / "solutions" / "backprop.ipynb")
    assert mnist_checks.pasted_data(honest) < mnist_checks.PASTED_DATA / 4


# --- 3. a forged reply stops the batch; 4. the notebook's text alone; 5. a wrong answer -----

def forged_handler(answer: str, op: str = "call") -> str:
    return f'''
import sys
_runtime = next(m for m in list(sys.modules.values())
                if hasattr(m, "_serve") and hasattr(m, "_handle"))
_real = _runtime._handle


def _forged(handlers, request):
    if request.get("op") == {op!r}:
        return {answer}
    return _real(handlers, request)


_runtime._handle = _forged
'''


FORGED = {
    "seconds": '{"ok": True, "seconds": "not a number", "value": None, "guards": []}',
    "sequence": '{"ok": True, "value": {"__sequence__": 3, "type": "tuple"}, "guards": []}',
    "guards": '{"ok": True, "value": None, "guards": {"numpy.convolve": 1}}',
    "errors": '{"ok": False, "kind": "exception", "error": 7}',
}
UNARY = "z = " + "-" * 10_000 + "1\n"


@pytest.mark.slow
def test_hostile_notebooks_never_stop_a_batch(tmp_path: Path) -> None:
    """Forged replies, a cell that makes ``ast.parse`` run out of memory: the batch exits 0,
    every student has a result, the reference among them keeps full marks, the overview is
    written, and the forged notebooks earn nothing from their forgeries."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name, answer in FORGED.items():
        build_notebook(folder, "convolution", name=f"forged-{name}",
                       extra_cells=[forged_handler(answer)])
    build_notebook(folder, "convolution", name="forged-exec",
                   extra_cells=[forged_handler('{"ok": False, "errors": 5}', "exec"), "x = 1"])
    build_notebook(folder, "convolution", name="unary", extra_cells=[UNARY])
    build_notebook(folder, "convolution", name="reference")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "grader", "grade", "--assignment",
                           "convolution", "--out", str(out), str(folder)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(results) >= {f"forged-{n}" for n in [*FORGED, "exec"]} | {"unary", "reference"}
    assert results["reference"]["score"] == results["reference"]["max_score"]
    for name in FORGED:
        graded = results[f"forged-{name}"]
        calls = [t for t in graded["tests"] if t["function"] != "(whole notebook)"]
        assert all(t["score"] == 0 for t in calls), [t["message"] for t in calls]
        # (a "seconds" of any kind is never read: that answer is only a None returned)
        forged_form = name != "seconds"
        assert forged_form == any("interfered with the grader" in n for n in graded["notices"])
    assert (out / "index.html").exists()
    assert not (out / "grader-faults.txt").exists(), (out / "grader-faults.txt").read_text()


WRONG_ANSWER = '''
def dense_backward(dout, cache):
    return 0
'''


@pytest.mark.slow
def test_a_backward_returning_a_scalar_is_the_students_mistake(tmp_path: Path,
                                                               grade_notebook) -> None:
    """The culprit search gives the reference's layers what the student's returned: a scalar
    0 for three gradients is a swap that failed, not a grader fault (on main it stopped the
    batch as a grader bug)."""
    path = build_notebook(tmp_path, "backprop", name="scalar",
                          replace={"dense_backward": WRONG_ANSWER})
    result = grade_notebook(path, "backprop", kinds=("mnist_diagnostic",))
    (diagnostic,) = result.tests
    assert "grader_fault" not in diagnostic.details, diagnostic.details.get("grader_fault")
    assert diagnostic.status != "review" and diagnostic.score == 0, diagnostic.message


# --- 6. the library-convolution guard switched off from student code ---------------------------

SILENCE_GUARD = '''
_f = getattr(np, "".join(reversed("evlovnoc")))  # (np.convolve: the guard is one object)
_f = getattr(_f, "_implementation", _f)
_f.__kwdefaults__["_grader_guard"].func.__self__.depth = 10**9
'''
HIDDEN_CORRELATE = '''
def conv1d(x, w, stride=1):
    corr = getattr(np, "".join(reversed("etalerroc")))
    return corr(np.asarray(x, float), np.asarray(w, float), mode="valid")[::stride]
'''


@pytest.mark.slow
def test_a_silenced_guard_and_a_hidden_correlate_earn_nothing(tmp_path: Path,
                                                              grade_notebook) -> None:
    """The guard lives in the student's process, so its silence proves nothing: the line that
    silences it and the computed name that hides np.correlate are quoted, the rules test waits
    for review, and conv1d's tests earn nothing until an instructor has looked (on main: 23.5
    of 23.5). Without the silencing line the guard itself takes conv1d's points."""
    kinds = ("example", "output", "gradient", "rules")
    tampered = build_notebook(tmp_path, "convolution", name="tampered",  # (before any call)
                              replace={"conv1d": SILENCE_GUARD + HIDDEN_CORRELATE})
    plain = build_notebook(tmp_path, "convolution", name="plain",
                           replace={"conv1d": HIDDEN_CORRELATE})
    result = grade_notebook(tampered, "convolution", kinds=kinds)
    without = grade_notebook(plain, "convolution", kinds=kinds)
    assert result.score <= without.score < result.max_score
    rules = next(t for t in result.tests if t.name.startswith("Rules"))
    assert rules.status == "review", rules.message
    assert "__kwdefaults__" in rules.message and "getattr(np" in rules.message
    conv1d = [t for t in result.tests if t.function == "conv1d"]
    assert conv1d and all(t.score == 0 for t in conv1d)
    assert any(t.status == "review" and t.details.get("would_earn") for t in conv1d)


QUIET_ENCODER = '''
import base64, json
for _c in [json.JSONEncoder]:
    _c.encode = lambda self, o: '{"ok": true, "used": []}'
    _c.iterencode = lambda self, o, _one_shot=False: iter(['{"ok": true, "used": []}'])
for _m in [json, base64]:
    _m.dumps = lambda *a, **k: '{"ok": true, "used": []}'
    _m.b64encode = lambda data, *a: b""
'''
POLYMUL = '''
def conv1d(x, w, stride=1):
    full = np.polymul(np.asarray(x, float)[::-1], np.asarray(w, float))[::-1]  # np.convolve
    return full[len(w) - 1:len(x)][::stride]
'''


@pytest.mark.slow
def test_the_runtime_answers_with_encoders_the_notebook_cannot_replace(
        tmp_path: Path, grade_notebook) -> None:
    """The guard's report travels in an answer the runtime writes in the student's process:
    replacing json's encoder, json.dumps or base64.b64encode there (in a loop the static scan
    does not follow) changes nothing of it, so np.polymul's np.convolve is still reported."""
    path = build_notebook(tmp_path, "convolution", name="quiet",
                          replace={"conv1d": QUIET_ENCODER + POLYMUL})
    result = grade_notebook(path, "convolution", kinds=("example", "rules"))
    rules = next(t for t in result.tests if t.name.startswith("Rules"))
    assert "numpy.convolve" in rules.details.get("uses", []), rules.message
    assert all(t.score == 0 for t in result.tests if t.function == "conv1d")


# --- any text at all: every submission gets a result, the batch exits 0 ------------------------

HOSTILE_TEXT = st.one_of(
    st.text(max_size=300),
    st.builds(lambda n, c: c * n, st.integers(1, 20_000), st.sampled_from(["-", "(", "[", "not ",
                                                                           "~", "lambda: "])),
    st.builds(lambda body: f"def conv1d(x, w, stride=1):\n    {body}\n", st.text(max_size=200)),
    st.sampled_from(["\udcff", "\x00", "\u2028def conv1d(x, w):\n    return x",
                     "f'" + "{x}" * 5000 + "'", "x = " + "1" * 5000]),
)


@pytest.mark.slow
@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cells=st.lists(HOSTILE_TEXT, min_size=1, max_size=3))
def test_any_text_gets_a_result_and_the_batch_goes_on(cells: list[str], tmp_path: Path) -> None:
    """Arbitrary and adversarial cell text, in a real batch beside the reference: exit 0 (no
    exception), a result for every notebook, the reference's full marks, no grader fault."""
    from grader.run.layers import SandboxConfig

    folder = tmp_path / f"in-{abs(hash(tuple(cells)))}"
    folder.mkdir()
    build_notebook(folder, "convolution", name="hostile", extra_cells=cells)
    build_notebook(folder, "convolution", name="reference")
    out = folder.parent / f"out-{folder.name}"
    summary = grade_all([folder], rubric.load("convolution"), out,
                        sandbox=SandboxConfig.from_env(), progress=False, check_reference=False)
    scores = {r.student: r for r in summary.results}
    assert set(scores) == {"hostile", "reference"}
    assert scores["reference"].score == scores["reference"].max_score
    assert not summary.faults, (out / "grader-faults.txt").read_text()
