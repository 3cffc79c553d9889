"""The students' exported checker (``python -m grader export-check NAME``): it carries no
reference code and nothing of the hidden tests, runs with nothing but NumPy and nbformat and
no access to the project, and says exactly what the grader's public tests say."""

from __future__ import annotations

import ast
import dataclasses
import io
import itertools
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

from grader.checks import diagnose, rubric
from grader.checks.compare import compare
from grader.core import reference
from grader.distribute import checker, replay, selfcheck
from grader.grading import grade
from grader.grading.grade import Job
from grader.render import summary
from tests.conftest import ROOT, SOLUTIONS, build_notebook
from tests.test_bug_patterns import BUGS

# Run the .pyz isolated (-I: no PYTHONPATH, no user site, not the project folder), refusing
# the packages only the grader needs and any open() of a solutions folder.
ISOLATED = """
import runpy, sys
sys.modules.update(dict.fromkeys(["jinja2", "tqdm", "dask", "distributed", "pygments",
                                  "matplotlib", "nbconvert", "pyseccomp"]))
def refuse(event, args):
    if event == "open" and "solutions" in str(args[0]):
        raise PermissionError(f"the checker opened {args[0]}")
sys.addaudithook(refuse)
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    import grader
    assert grader.__file__.startswith(sys.argv[0]), grader.__file__
"""


@pytest.fixture(scope="module")
def checkers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("checkers")
    return {name: selfcheck.export(name, folder / f"{name}-check.pyz")
            for name in ("convolution", "backprop")}


def run_checker(pyz: Path, *args: str, cwd: Path,
                without: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """The .pyz run isolated; ``without``: packages this Python behaves as if it lacked."""
    refuse = f"import sys; sys.modules.update(dict.fromkeys({list(without)!r}))\n"
    return subprocess.run([sys.executable, "-I", "-c", refuse + ISOLATED, str(pyz), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def artefact_text(pyz: Path) -> str:
    """Every member of the .pyz, and every array file inside its .npz, as text."""
    parts = []
    with zipfile.ZipFile(pyz) as archive:
        for name in archive.namelist():
            data = archive.read(name)
            parts.append(data.decode("utf-8", "replace"))
            if name.endswith(".npz"):
                with zipfile.ZipFile(io.BytesIO(data)) as inner:
                    parts += [inner.read(n).decode("latin-1") for n in inner.namelist()]
    return "\n".join(parts)


def reference_bodies(assignment: str) -> list[str]:
    """Each reference function's body, as written in the notebook and as the grader
    unparses it (``Reference.sources``)."""
    solution = SOLUTIONS / f"{assignment}.ipynb"
    bodies = []
    for source in reference.load(solution).sources.values():
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef):
                bodies.append("\n".join(ast.unparse(s) for s in node.body))
    for cell in nbformat.read(solution, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.FunctionDef):
                lines = cell.source.splitlines()[node.body[0].lineno - 1: node.end_lineno]
                bodies.append("\n".join(line for line in lines if "### " not in line))
    return bodies


@pytest.mark.parametrize("assignment", ["convolution", "backprop"])
def test_no_reference_source_and_no_hidden_test(checkers: dict, assignment: str) -> None:
    text = artefact_text(checkers[assignment])
    bodies = reference_bodies(assignment)
    assert len(bodies) >= 2 * len(rubric.load(assignment).functions)
    for body in bodies:  # as written, and as a JSON string would hold it
        assert body.strip() and body.strip() not in text
        assert json.dumps(body.strip())[1:-1] not in text
    # line by line too: only lines students already have may coincide: the handed-out
    # notebook's (docstrings, which requirements quote) and the code every sandbox shows
    # (grader/run/inside); the diagnostic's training loop is not carried at all
    assert not any(name.endswith(selfcheck.NOT_BUNDLED)
                   for name in zipfile.ZipFile(checkers[assignment]).namelist())
    inside = "\n".join(p.read_text() for p in (ROOT / "grader" / "run" / "inside").glob("*.py"))
    template = nbformat.read(ROOT / "assignments" / f"{assignment}.ipynb", as_version=4)
    inside += "\n".join(cell.source for cell in template.cells)
    lines = {line.strip() for body in bodies for line in body.splitlines()
             if len(line.strip()) >= 30}
    assert lines and all(line not in text or line in inside for line in lines)
    hidden = [t.name for t in rubric.load(assignment).tests if t.visibility == "hidden"]
    assert hidden and all(name not in text for name in hidden)
    public = [t.name for t in rubric.load(assignment).tests if t.visibility == "public"]
    assert all(name in text for name in public)  # (the search itself can find things)


def grader_public_results(path: Path, assignment: str, sandbox_config) -> list[dict]:
    """The grader's public-only grading, less the MNIST tests (which the checker leaves out)."""
    loaded = rubric.load(assignment)
    loaded = dataclasses.replace(
        loaded, tests=tuple(t for t in loaded.tests if not t.options.needs_mnist))
    result = grade.grade_submission(Job(path, loaded, sandbox_config, None, public_only=True))
    tests = json.loads(json.dumps(result.to_json()))["tests"]  # as the checker's JSON has them
    return [_comparable(t) for t in tests]


def checker_results(pyz: Path, path: Path, tmp_path: Path) -> tuple[int, list[dict]]:
    done = run_checker(pyz, str(path), "--json", cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, [_comparable(t) for t in json.loads(done.stdout)["tests"]]


def _comparable(test: dict) -> dict:
    """What the checker and the grader agree on. The checker draws its own inputs (nothing it
    carries answers a grading input), so the numbers in messages and details differ; the
    verdicts, points and diagnoses do not."""
    keys = ("name", "status", "score", "max_score")
    numbers = re.compile(r"-?\d+(\.\d+)?(e[-+]?\d+)?")  # (where, how large: the inputs')
    diagnosis, _, counterexample = (test["diagnosis"] or "").partition("Smallest failing input")
    return {**{k: test[k] for k in keys},
            "diagnosis": numbers.sub("#", diagnosis) if test["diagnosis"] else None,
            "counterexample": bool(counterexample)}


EXAMPLES = sorted((ROOT / "submissions" / "convolution").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_agrees_with_the_grader_on_the_examples(checkers: dict, path: Path, tmp_path: Path,
                                                sandbox_config) -> None:
    code, exported = checker_results(checkers["convolution"], path, tmp_path)
    expected = grader_public_results(path, "convolution", sandbox_config)
    assert exported == expected
    assert code == (0 if all(t["status"] == "passed" for t in expected) else 1)


@pytest.mark.slow
@pytest.mark.parametrize("bug", BUGS, ids=[b.name for b in BUGS])
def test_agrees_with_the_grader_on_every_diagnosed_bug(checkers: dict, bug, tmp_path: Path,
                                                       sandbox_config) -> None:
    path = build_notebook(tmp_path, bug.assignment, replace={bug.function: bug.code})
    code, exported = checker_results(checkers[bug.assignment], path, tmp_path)
    expected = grader_public_results(path, bug.assignment, sandbox_config)
    assert exported == expected
    assert code == 1 or all(t["status"] == "passed" for t in expected)


@pytest.mark.slow
def test_exit_codes_and_summary(checkers: dict, tmp_path: Path) -> None:
    pyz = checkers["convolution"]
    reference_nb = ROOT / "submissions" / "convolution" / "erin_reference.ipynb"
    done = run_checker(pyz, str(reference_nb), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "15.00 / 15 on the public tests" in done.stdout
    flipped = ROOT / "submissions" / "convolution" / "frank_flipped_kernel.ipynb"
    done = run_checker(pyz, str(flipped), cwd=tmp_path)
    assert done.returncode == 1 and "kernel flipped" in done.stdout
    assert run_checker(pyz, cwd=tmp_path).returncode == 2
    assert run_checker(pyz, str(tmp_path / "missing.ipynb"), cwd=tmp_path).returncode == 2


def test_backprop_checker_names_the_mnist_tests_it_leaves_out(checkers: dict,
                                                               tmp_path: Path) -> None:
    reference_nb = ROOT / "submissions" / "backprop" / "alice_reference.ipynb"
    done = run_checker(checkers["backprop"], str(reference_nb), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "not run here: MNIST: test accuracy of your network" in done.stdout


def test_checker_reads_the_bundle_the_export_writes() -> None:
    assert checker.BUNDLE_PACKAGE == selfcheck.BUNDLE_PACKAGE


def test_replay_refuses_a_call_it_has_no_recording_for() -> None:
    """Even where a bug pattern swallows exceptions (a variant that does not apply), an
    unrecorded call stops the checker instead of changing the diagnosis."""
    known = np.arange(4.0)
    answers = {replay.call_key("f", [known], {}): {"returns": {"value": 1.0}}}
    function = replay.Replay("f", ("x",), answers, {})
    assert function(np.arange(4.0)) == 1.0
    with pytest.raises(replay.NotRecorded, match="no recorded answer for this call of `f`"):
        function(np.arange(5.0))
    context = diagnose.Context(function="f", output="out", args=[known + 1], kwargs={},
                               comparison=compare("out", np.zeros(3), np.ones(3)),
                               reference=function)
    with pytest.raises(replay.NotRecorded):
        context.rerun(context.args, {})


def test_encoding_round_trips_what_a_reference_returns() -> None:
    arrays: dict = {}
    value = (np.ones((2, 3), np.float32), {"stride": 2, "x": np.float64(1.5)}, [None, "a", True])
    back = replay.decode(json.loads(json.dumps(replay.encode(value, arrays))), arrays)
    assert isinstance(back, tuple) and back[0].dtype == np.float32
    assert np.array_equal(back[0], value[0]) and back[1] == value[1] and back[2] == value[2]
    assert type(back[1]["x"]) is np.float64
    with pytest.raises(replay.Unrecordable):
        replay.encode(object(), arrays)


def test_export_is_deterministic(checkers: dict, tmp_path: Path) -> None:
    again = selfcheck.export("convolution", tmp_path / "again.pyz")
    assert again.read_bytes() == checkers["convolution"].read_bytes()


def hidden_by_default(text: str) -> str:
    """The rubric with its tests' own visibility removed and ``[defaults]`` hiding them all."""
    text = text.replace('visibility = "hidden"\n', "")
    return text.replace("\n[[tests]]", '\n[defaults]\nvisibility = "hidden"\n\n[[tests]]', 1)


def test_hidden_by_default_stays_out_of_the_export(tmp_path: Path) -> None:
    """``[defaults] visibility = "hidden"`` (as docs/rubric.md shows it) hides every test that
    does not say otherwise: the export holds the one test marked public, nothing else."""
    text = hidden_by_default((SOLUTIONS / "convolution.toml").read_text(encoding="utf-8"))
    public_name = "conv2d: lecture example"
    text = text.replace(f'name = "{public_name}"\n',
                        f'name = "{public_name}"\nvisibility = "public"\n')
    (tmp_path / "convolution.toml").write_text(text, encoding="utf-8")
    (tmp_path / "convolution.ipynb").write_bytes((SOLUTIONS / "convolution.ipynb").read_bytes())
    parsed = rubric.load("convolution", solutions_dir=tmp_path)
    assert [t.name for t in parsed.tests if t.visibility == "public"] == [public_name]
    pyz = selfcheck.export("convolution", tmp_path / "check.pyz", solutions_dir=tmp_path)
    with zipfile.ZipFile(pyz) as archive:
        bundle = json.loads(archive.read(f"{selfcheck.BUNDLE_PACKAGE}/answers.json"))
    assert [t["name"] for t in bundle["rubric"]["tests"]] == [public_name]
    assert set(bundle["functions"]) <= {"conv2d"}
    text = artefact_text(pyz)
    hidden = [t.name for t in parsed.tests if t.visibility == "hidden"]
    assert len(hidden) == len(parsed.tests) - 1 and all(name not in text for name in hidden)


def test_export_refuses_a_rubric_with_nothing_public(tmp_path: Path) -> None:
    text = hidden_by_default((SOLUTIONS / "convolution.toml").read_text(encoding="utf-8"))
    (tmp_path / "convolution.toml").write_text(text, encoding="utf-8")
    (tmp_path / "convolution.ipynb").write_bytes((SOLUTIONS / "convolution.ipynb").read_bytes())
    with pytest.raises(selfcheck.GraderError, match="no public tests"):
        selfcheck.export("convolution", tmp_path / "check.pyz", solutions_dir=tmp_path)
    assert not (tmp_path / "check.pyz").exists()


# a function whose exception sets the terminal's title, clears it, prints a fake line of
# results over the real ones (a carriage return, then a newline), reverses a line with a bidi
# override and conceals what follows; its printed output and file name try the same
HOSTILE_CONV1D = r'''
def conv1d(x, w, stride=1):
    print("\x1b[2J\x1b[Hall ok\u202e")
    raise ValueError("\x1b]0;pwned\x07\x1b[2J\x1b[H\r\n  ok    1.00/1    conv1d: "
                     "lecture example, kernel [2]\n\u202eKO\u202c 15.00 / 15 on the public "
                     "tests\u2066\x9b2J\x1b[8m")
'''


def assert_inert(stdout: str) -> None:
    from tests.test_inert import unsafe_characters

    assert unsafe_characters(stdout) == [], stdout
    rows = stdout.split("\n")
    assert "  ERR   0.00/1    conv1d: lecture example, kernel [2]" in rows  # the real line
    assert not any(r.startswith("  ok") and "conv1d" in r for r in rows)  # and no fake one
    assert not any(r.startswith("15.00 / 15") or "KO" in r and not r.startswith(" " * 9)
                   for r in rows)


@pytest.mark.slow
def test_student_text_reaches_the_terminal_inert(checkers: dict, tmp_path: Path) -> None:
    path = build_notebook(tmp_path, "convolution", name="evil\x1b[2J\u202e",
                          replace={"conv1d": HOSTILE_CONV1D})
    done = run_checker(checkers["convolution"], str(path), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert_inert(done.stdout)
    assert done.stdout.startswith("evil\\x1b[2J\\u202e.ipynb: ")
    as_json = run_checker(checkers["convolution"], str(path), "--json", cwd=tmp_path)
    from tests.test_inert import unsafe_characters

    assert unsafe_characters(as_json.stdout) == []
    tests = json.loads(as_json.stdout)["tests"]  # the same document, escaped
    assert "\x1b]0;pwned" in tests[0]["message"] and "\u202eKO" in tests[0]["message"]
    graded = subprocess.run([sys.executable, "-m", "grader", "check", str(path),
                             "--assignment", "convolution"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert graded.returncode == 1, graded.stderr
    assert_inert(graded.stdout)


@pytest.mark.parametrize("without", [("numpy",), ("nbformat",), ("numpy", "nbformat")])
def test_a_python_without_numpy_is_told_what_to_install(checkers: dict, tmp_path: Path,
                                                         without: tuple[str, ...]) -> None:
    """Not a traceback and exit 1 (which says "your tests do not pass yet"): one line naming
    what to install, and an exit status of its own."""
    reference_nb = ROOT / "submissions" / "convolution" / "erin_reference.ipynb"
    done = run_checker(checkers["convolution"], str(reference_nb), cwd=tmp_path,
                       without=without)
    assert done.returncode == checker.EXIT_NEEDS == 4, done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"pip install {' '.join(without)}`" in done.stderr
    assert done.stderr.startswith("convolution-check.pyz: this Python (")


def test_an_old_python_is_told_which_it_needs() -> None:
    said = checker.unmet_needs((3, 9, 2))
    assert said is not None and "Python 3.11 or newer" in said and "3.9.2" in said
    assert checker.unmet_needs(tuple(sys.version_info)) is None


def test_the_checker_imports_only_the_standard_library_at_its_top() -> None:
    """What its ``main`` needs before it can say that NumPy or nbformat is missing."""
    tree = ast.parse(Path(checker.__file__).read_text(encoding="utf-8"))
    names = {a.name for node in tree.body if isinstance(node, ast.Import) for a in node.names}
    names |= {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert "numpy" not in names and "grader.distribute.replay" not in names
    # (``grader.core``: for ``inert``, standard library only itself, as its package is)
    assert all(n.split(".")[0] in sys.stdlib_module_names
               or n in ("__future__", "grader", "grader.core") for n in names), names


LONG_NOTICE = ("cells In [3], In [5] and In [9] download MNIST or train at the top level: the "
               "grader skipped those statements (it has no network, and it trains and tests "
               "your functions itself), so they do not count for or against you; the end")


@pytest.mark.parametrize("width", [None, 80])
def test_notes_are_wrapped_not_cut(width: int | None) -> None:
    from grader.core.results import SubmissionResult, TestResult

    tests = (TestResult("conv1d: lecture example", "conv1d", 1.0, 1.0, "passed", "fine"),)
    result = SubmissionResult("s", "convolution", "s.ipynb", "0" * 64, None,
                              (LONG_NOTICE, "your notebook printed:\nhello"), tests, "t", 0.0)
    bundle = checker.Bundle(rubric=None, reference=None, skipped=())
    shown = checker.report(result, bundle, width=width)
    rows = shown.split("\n")
    start = next(i for i, r in enumerate(rows) if r.startswith("  note: cells In [3]"))
    note = [rows[start]] + list(itertools.takewhile(
        lambda r: r.startswith(summary.MESSAGE_INDENT), rows[start + 1:]))
    assert len(note) > 1 and " ".join(r.strip() for r in note) == "note: " + LONG_NOTICE
    assert all(len(r) < (width or checker.NOTE_WIDTH) for r in note), note
    assert "  note: your notebook printed output; the feedback page shows it" in rows


def test_a_python_file_is_checked_as_a_notebook_of_one_cell(checkers: dict,
                                                            tmp_path: Path) -> None:
    from tests.test_handins import script_of

    script = tmp_path / "mine.py"
    script.write_text(script_of(ROOT / "submissions" / "convolution" / "erin_reference.ipynb"))
    done = run_checker(checkers["convolution"], str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("mine.py: 15.00 / 15 on the public tests")
    assert "  note: you handed in a Python file, not a notebook" in done.stdout
