"""Nothing handed in vanishes: a folder with nothing to grade stops the run, every file of a
graded folder or archive that is not graded is listed with why (summary and overview), and a
Python file is graded as a notebook of one cell, saying so, in the sandbox like any notebook."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from grader.core import notebook, scripts
from grader.core.errors import GraderError
from grader.course import batch, classroom, handins
from tests.conftest import ROOT

EXAMPLES = ROOT / "submissions" / "convolution"
REFERENCE = EXAMPLES / "erin_reference.ipynb"


def script_of(path: Path) -> str:
    """A notebook's code cells as one Python file, as students export them."""
    cells = nbformat.read(path, as_version=4).cells
    return "\n\n".join(c.source for c in cells if c.cell_type == "code") + "\n"


def mixed_folder(folder: Path) -> Path:
    """A class folder as instructors get them: notebooks, a .py hand-in, and other files."""
    folder.mkdir()
    (folder / "erin.ipynb").write_bytes(REFERENCE.read_bytes())
    (folder / "solution.py").write_text(script_of(REFERENCE))
    (folder / "report.pdf").write_bytes(b"%PDF-1.4")
    (folder / "notes.txt").write_text("I ran out of time")
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "erin-checkpoint.ipynb").write_bytes(REFERENCE.read_bytes())
    return folder


def grade_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", "grade", "--quiet", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=dict(os.environ))


# --- nothing to grade -----------------------------------------------------------------------


def test_an_empty_folder_stops_the_run(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    done = grade_cli("--assignment", "convolution", "--out", str(out), str(tmp_path / "empty"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("grader: error: nothing to grade in ")
    assert done.stderr.count("\n") == 1 and not out.exists()


def test_a_folder_of_other_files_says_what_it_holds(tmp_path: Path) -> None:
    (tmp_path / "pdfs").mkdir()
    (tmp_path / "pdfs" / "report.pdf").write_bytes(b"%PDF")
    with pytest.raises(GraderError, match=r"no notebook \(\.ipynb\) and no Python file "
                                          r"\(\.py\); it holds 1 other file\(s\): "
                                          r"pdfs/report\.pdf"):
        with classroom.intake([tmp_path / "pdfs"]):
            pass


# --- every file accounted for ----------------------------------------------------------------


def test_every_file_of_a_mixed_folder_is_graded_or_listed_with_why(tmp_path: Path) -> None:
    folder = mixed_folder(tmp_path / "class")
    with classroom.intake([folder]) as intake:
        graded = sorted(p.name for p in intake.paths)
        listed = {r.original: r.why for r in intake.matched.refused}
        lines = batch.not_graded(intake)
    assert graded == ["erin.ipynb", "solution.py"]
    assert listed == {
        "class/report.pdf": "not a notebook or a Python file (a .pdf file); not graded",
        "class/notes.txt": "not a notebook or a Python file (a .txt file); not graded",
        "class/.ipynb_checkpoints/erin-checkpoint.ipynb": handins.DEBRIS}
    assert "class/report.pdf: not a notebook or a Python file (a .pdf file); not graded" in lines
    summary = batch.BatchSummary([], 0, 0, 0.0, not_graded=lines).line(tmp_path / "out")
    assert "Not graded: 3 file(s) (the overview lists them too):" in summary
    assert "  class/notes.txt: not a notebook or a Python file (a .txt file); not graded" \
        in summary.splitlines()


def test_an_archive_is_accounted_for_like_a_folder(tmp_path: Path) -> None:
    download = tmp_path / "download.zip"
    with zipfile.ZipFile(download, "w") as archive:
        archive.writestr("erin.ipynb", REFERENCE.read_bytes())
        archive.writestr("work/solution.py", script_of(REFERENCE))
        archive.writestr("report.pdf", b"%PDF")
        archive.writestr("__MACOSX/._solution.py", b"\0")
    with classroom.intake([download]) as intake:
        scripts = [p for p in intake.paths if p.suffix == ".py"]
        assert len(scripts) == 1 and scripts[0].read_text() == script_of(REFERENCE)
        listed = {r.original: r.why for r in intake.matched.refused}
    assert sorted(listed) == ["download.zip/__MACOSX/._solution.py", "download.zip/report.pdf"]


def test_a_python_file_beside_the_students_notebook_is_listed_not_graded(
        tmp_path: Path) -> None:
    """Canvas names both files of one submission alike: the notebook is the hand-in."""
    folder = tmp_path / "canvas"
    folder.mkdir()
    (folder / "doejane_1001_77_backprop.ipynb").write_bytes(REFERENCE.read_bytes())
    (folder / "doejane_1001_77_backprop.py").write_text(script_of(REFERENCE))
    (folder / "roejim_1002_78_backprop.py").write_text(script_of(REFERENCE))
    rows = tmp_path / "roster.csv"
    rows.write_text("id,name,Canvas ID\ns1,Jane Doe,1001\ns2,Jim Roe,1002\n")
    with classroom.intake([folder], roster_path=rows) as intake:
        latest = {s: sub.original for s, sub in intake.matched.latest.items()}
        listed = {r.original: r.why for r in intake.matched.refused}
    assert latest == {"s1": "canvas/doejane_1001_77_backprop.ipynb",
                      "s2": "canvas/roejim_1002_78_backprop.py"}
    assert listed == {"canvas/doejane_1001_77_backprop.py": handins.BESIDE_A_NOTEBOOK.format(
        notebook="canvas/doejane_1001_77_backprop.ipynb")}


def test_a_python_file_of_a_notebooks_name_is_listed_not_graded(tmp_path: Path) -> None:
    """Without a roster too: ``alice.ipynb`` and ``alice.py`` are one student's files."""
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "alice.ipynb").write_bytes(REFERENCE.read_bytes())
    for name in ("alice.py", "bob.py"):
        (folder / name).write_text(script_of(REFERENCE))
    with classroom.intake([folder]) as intake:
        graded = sorted(intake.names.values())
        listed = {r.original: r.why for r in intake.matched.refused}
    assert graded == ["alice", "bob"]
    assert listed == {"plain/alice.py": handins.BESIDE_A_NOTEBOOK.format(
        notebook="plain/alice.ipynb")}


def test_an_archive_with_a_python_file_twice_keeps_the_first(tmp_path: Path) -> None:
    download = tmp_path / "twice.zip"
    with zipfile.ZipFile(download, "w") as archive:
        archive.writestr("a.py", "def f():\n    return 1\n")
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("a.py", "def f():\n    return 2\n")
    with classroom.intake([download]) as intake:
        (path,) = intake.paths
        assert "return 1" in path.read_text()
        assert {r.original: r.why for r in intake.matched.refused} == {
            "twice.zip/a.py": "in the archive twice; the first is kept"}


# --- a Python file, read as a notebook ----------------------------------------------------------


def test_a_python_file_reads_as_one_cell_with_a_notice(tmp_path: Path) -> None:
    path = tmp_path / "mine.PY"
    path.write_text("%matplotlib inline\nimport numpy as np\n\ndef f(x):\n    return x\n")
    read = scripts.read(path)
    assert isinstance(read, notebook.Notebook) and len(read.cells) == 1
    assert "def f(x):" in read.cells[0].source and read.cells[0].magics == ("%matplotlib inline",)
    assert read.notices[0] == scripts.SCRIPT_NOTICE
    assert read.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()  # (reused if unchanged)
    assert scripts.read(path) == read


@pytest.mark.parametrize("raw, why", [(b"  \n", "the Python file is empty"),
                                      (b"def f():\n    return '\xff'\n", "not UTF-8 text")])
def test_an_unreadable_python_file_says_why(tmp_path: Path, raw: bytes, why: str) -> None:
    path = tmp_path / "mine.py"
    path.write_bytes(raw)
    read = scripts.read(path)
    assert isinstance(read, notebook.UnreadableNotebook) and why in read.error


@pytest.mark.slow
def test_a_python_hand_in_is_graded_in_the_sandbox_and_listed(tmp_path: Path) -> None:
    """End to end: the reference as a .py gets full marks and the notice; it runs in the
    sandbox like any notebook (the solutions it tries to read are not there); the summary
    and the overview list the files not graded."""
    folder = mixed_folder(tmp_path / "class")
    secret = ROOT / "solutions" / "convolution.toml"
    (folder / "solution.py").write_text(
        script_of(REFERENCE) + f"\ntry:\n    print('LEAK', open({str(secret)!r}).read())\n"
        f"except OSError as exc:\n    print('refused', type(exc).__name__)\n")
    out = tmp_path / "out"
    done = grade_cli("--assignment", "convolution", "--out", str(out), str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((out / "solution.json").read_text())
    assert result["score"] == result["max_score"] and result["notices"][0] == scripts.SCRIPT_NOTICE
    assert "refused" in " ".join(result["notices"]) and "[[tests]]" not in json.dumps(result)
    assert "Not graded: 3 file(s)" in done.stdout and "class/report.pdf: not a notebook" \
        in done.stdout
    state = json.loads((out / classroom.STATE).read_text())
    assert "class/notes.txt: not a notebook or a Python file (a .txt file); not graded" \
        in state["refused"]
    assert "class/report.pdf" in (out / "index.html").read_text()
    assert scripts.SCRIPT_NOTICE.split(":")[0] in (out / "solution.html").read_text()
