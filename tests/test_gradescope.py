"""The Gradescope autograder zip: its layout, setup.sh's safe parts, and run_autograder run for
real (the project's .venv, the real sandbox) against a simulated ``/autograder`` tree."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat
import pytest

from grader.checks import rubric
from grader.core import nofollow
from grader.core.errors import GraderError
from grader.distribute import autograder, gradescope

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "submissions" / "convolution"

# Gradescope's documented results.json keys (autograder specifications, "Output format").
TOP_KEYS = {"score", "execution_time", "output", "output_format", "test_output_format",
            "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests",
            "leaderboard"}
TEST_KEYS = {"score", "max_score", "status", "name", "name_format", "number", "output",
             "output_format", "tags", "visibility", "extra_data"}
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}


def assert_gradescope_results(data: dict) -> None:
    assert set(data) <= TOP_KEYS, set(data) - TOP_KEYS
    assert isinstance(data["score"], (int, float))
    assert data.get("visibility", "visible") in VISIBILITIES
    for test in data.get("tests", []):
        assert set(test) <= TEST_KEYS, set(test) - TEST_KEYS
        assert test["status"] in ("passed", "failed")
        assert isinstance(test["score"], (int, float)) and isinstance(test["max_score"], float)
        assert test.get("visibility", "visible") in VISIBILITIES


@pytest.fixture(scope="module")
def convolution_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gradescope.build("convolution", tmp_path_factory.mktemp("zip") / "autograder.zip")


def unpack(zip_path: Path, tmp_path: Path) -> Path:
    """A fresh /autograder tree with the zip in source/, as Gradescope makes it."""
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(root / "source")
    return root


def run_autograder(root: Path, **extra_env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable,
           **extra_env}
    return subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env,
                          capture_output=True, text=True, timeout=600)


def results_of(root: Path) -> dict:
    data = json.loads((root / "results" / "results.json").read_text())
    assert_gradescope_results(data)
    return data


def test_zip_layout(convolution_zip: Path) -> None:
    with zipfile.ZipFile(convolution_zip) as archive:
        infos = {i.filename: i for i in archive.infolist()}
    for script in ("setup.sh", "run_autograder"):  # at the root, executable
        assert (infos[script].external_attr >> 16) & stat.S_IXUSR
    assert {"solutions/convolution.toml", "solutions/convolution.ipynb", "pyproject.toml",
            "grader/distribute/autograder.py", "grader/run/inside/runtime.py"} <= set(infos)
    assert not any("backprop" in name for name in infos if name.startswith("solutions/"))
    assert not any("__pycache__" in name or name.startswith("mnist/") for name in infos)


def test_zip_is_deterministic(convolution_zip: Path, tmp_path: Path) -> None:
    again = gradescope.build("convolution", tmp_path / "again.zip")
    assert again.read_bytes() == convolution_zip.read_bytes()


def test_bad_mnist_folder_and_name_are_refused(tmp_path: Path) -> None:
    (tmp_path / "mnist").mkdir()
    with pytest.raises(GraderError, match="train-images-idx3-ubyte.gz is missing"):
        gradescope.build("backprop", tmp_path / "a.zip", mnist_dir=tmp_path / "mnist")
    with pytest.raises(GraderError, match="letters, digits"):
        gradescope.build("../backprop", tmp_path / "a.zip")
    assert not (tmp_path / "a.zip").exists()


def test_mnist_goes_into_the_zip_when_given(tmp_path: Path) -> None:
    folder = Path(os.environ.get("MNIST_DIR", ""))
    if not (folder / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("MNIST_DIR with the four .gz files is needed")
    built = gradescope.build("backprop", tmp_path / "b.zip", mnist_dir=folder)
    with zipfile.ZipFile(built) as archive:
        names = set(archive.namelist())
        setup = archive.read("setup.sh").decode()
    wanted = ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    assert {f"mnist/{n}" for n in wanted} <= names
    assert "mnist.prepare" not in setup  # no download when the zip carries it


def test_setup_sh_syntax_and_dry_run(tmp_path: Path) -> None:
    """bash -n on the script, then its safe part for real: with GRADER_SETUP_DRY_RUN it only
    says what it would install and download, and it does hide the solutions."""
    root = unpack(gradescope.build("backprop", tmp_path / "b.zip"), tmp_path)
    setup = root / "source" / "setup.sh"
    assert subprocess.run(["bash", "-n", str(setup)]).returncode == 0
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "GRADER_SETUP_DRY_RUN": "1",
           "GRADER_VENV": str(tmp_path / "venv")}
    done = subprocess.run(["bash", str(setup)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"-m pip install --quiet {root / 'source'}" in done.stdout
    assert "mnist.prepare(cache_dir=" in done.stdout  # backprop needs MNIST: verified download
    assert not (tmp_path / "venv").exists()
    assert stat.S_IMODE((root / "source" / "solutions").stat().st_mode) == 0o700


FAKE_APT = """#!/bin/sh
echo "apt-get $*" >> "$STUBS/apt.log"
case "$1" in
  update) touch "$STUBS/lists";;
  install) [ -z "$APT_BROKEN" ] && [ -e "$STUBS/lists" ] && exit 0
           echo "E: Unable to locate package bubblewrap" >&2; exit 100;;
esac
"""
# a python3.13 that is new enough, makes a venv of itself and installs nothing
FAKE_PYTHON = """#!/bin/sh
if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi
exit 0
"""


def run_setup_with_stubs(root: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """setup.sh for real, with apt-get and python3.13 stubbed (``$STUBS/apt.log`` says what
    apt-get was asked): an image whose package lists are empty until ``apt-get update``."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, text in (("apt-get", FAKE_APT), ("python3.13", FAKE_PYTHON)):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    return subprocess.run(["bash", str(root / "source" / "setup.sh")], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "AUTOGRADER_ROOT": str(root), "STUBS": str(stubs),
                               "PATH": f"{stubs}:{os.environ['PATH']}",
                               "GRADER_VENV": str(tmp_path / "venv"), **env})


def test_setup_sh_updates_the_package_lists_before_installing(convolution_zip: Path,
                                                              tmp_path: Path) -> None:
    root = unpack(convolution_zip, tmp_path)
    done = run_setup_with_stubs(root, tmp_path)
    assert done.returncode == 0, done.stderr
    asked = (tmp_path / "stubs" / "apt.log").read_text().splitlines()
    assert asked[0] == "apt-get update"
    assert asked[1].startswith("apt-get install -y --no-install-recommends bubblewrap")
    assert "WARNING" not in done.stderr and "Unable to locate" not in done.stderr


def test_setup_sh_says_when_bubblewrap_cannot_be_installed(convolution_zip: Path,
                                                           tmp_path: Path) -> None:
    root = unpack(convolution_zip, tmp_path)
    done = run_setup_with_stubs(root, tmp_path, APT_BROKEN="1")
    assert done.returncode == 0, done.stderr  # the bwrap from PyPI still sandboxes
    assert "setup.sh: WARNING: apt-get could not install bubblewrap" in done.stderr
    assert "no uid drop" in done.stderr


@pytest.mark.slow
def test_reference_notebook_gets_full_marks(convolution_zip: Path, tmp_path: Path) -> None:
    root = unpack(convolution_zip, tmp_path)
    shutil.copy(EXAMPLES / "erin_reference.ipynb", root / "submission" / "convolution.ipynb")
    done = run_autograder(root)
    assert done.returncode == 0, done.stdout + done.stderr
    data = results_of(root)
    maximum = rubric.load("convolution").max_score
    assert data["score"] == maximum and data["tests"]
    assert all(t["status"] == "passed" for t in data["tests"])
    # the batch's summary, without the temporary folder its feedback page went to
    assert "1 submissions in this run" in done.stdout
    assert "Feedback:" not in done.stdout and "index.html" not in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["empty", "checkpoint only"])
def test_no_notebook_says_so(convolution_zip: Path, tmp_path: Path, layout: str) -> None:
    root = unpack(convolution_zip, tmp_path)
    (root / "submission" / "notes.txt").write_text("I ran out of time")
    if layout == "checkpoint only":
        checkpoints = root / "submission" / ".ipynb_checkpoints"
        checkpoints.mkdir()
        shutil.copy(EXAMPLES / "erin_reference.ipynb", checkpoints / "convolution-checkpoint.ipynb")
    done = run_autograder(root)
    assert done.returncode == 0, done.stdout + done.stderr
    data = results_of(root)
    assert data["score"] == 0 and data["visibility"] == "visible" and data["tests"] == []
    assert data["output"].startswith("No notebook to grade") and "notes.txt" in data["output"]


@pytest.mark.slow
def test_two_notebooks_grades_the_assignments_one_and_says_so(convolution_zip: Path,
                                                              tmp_path: Path) -> None:
    root = unpack(convolution_zip, tmp_path)
    folder = root / "submission" / "work"
    folder.mkdir()
    shutil.copy(EXAMPLES / "erin_reference.ipynb", root / "submission" / "scratch.ipynb")
    shutil.copy(EXAMPLES / "frank_flipped_kernel.ipynb", folder / "Convolution.ipynb")
    done = run_autograder(root)
    assert done.returncode == 0, done.stdout + done.stderr
    data = results_of(root)
    assert data["output"].startswith("Your submission holds several notebooks; this grade is "
                                     "for work/Convolution.ipynb (not scratch.ipynb)")
    assert 0 < data["score"] < rubric.load("convolution").max_score  # frank's, not the reference
    assert any("flipped" in t["output"] for t in data["tests"])


def test_choose_notebook_finds_an_upper_case_extension(tmp_path: Path) -> None:
    """``Backprop.IPYNB`` (as Windows and some zip tools write it) is the assignment's
    notebook, not a file to pass over for another one."""
    (tmp_path / "sub").mkdir()
    for name in ("sub/Backprop.IPYNB", "scratch.ipynb", "notes.txt", "sub/.hidden.IPYNB"):
        (tmp_path / name).write_text("{}")
    choice = autograder.choose_notebook(tmp_path, "backprop")
    assert choice.notebook == tmp_path / "sub" / "Backprop.IPYNB"
    assert choice.others == (tmp_path / "scratch.ipynb",)
    (tmp_path / "scratch.ipynb").unlink()
    only = autograder.choose_notebook(tmp_path, "other")
    assert only.notebook == tmp_path / "sub" / "Backprop.IPYNB"


@pytest.mark.slow
def test_a_python_file_is_graded_when_there_is_no_notebook(convolution_zip: Path,
                                                           tmp_path: Path) -> None:
    from tests.test_handins import script_of

    root = unpack(convolution_zip, tmp_path)
    (root / "submission" / "convolution.py").write_text(script_of(EXAMPLES /
                                                                  "erin_reference.ipynb"))
    (root / "submission" / "notes.txt").write_text("see the .py")
    done = run_autograder(root)
    assert done.returncode == 0, done.stdout + done.stderr
    data = results_of(root)
    assert data["score"] == rubric.load("convolution").max_score
    assert "you handed in a Python file, not a notebook" in json.dumps(data)
    (root / "submission" / "scratch.ipynb").write_text("{}")  # a notebook comes first
    assert autograder.choose_notebook(root / "submission", "convolution").notebook.name == \
        "scratch.ipynb"


def test_choose_notebook_ignores_debris(tmp_path: Path) -> None:
    for name in ("__MACOSX/backprop.ipynb", "._backprop.ipynb", ".ipynb_checkpoints/b.ipynb",
                 "b/answer.ipynb", "a.ipynb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    choice = autograder.choose_notebook(tmp_path, "backprop")
    assert choice.notebook == tmp_path / "a.ipynb"  # shallowest, then by path
    assert choice.others == (tmp_path / "b" / "answer.ipynb",)
    assert autograder.choose_notebook(tmp_path / "b", "answer").notebook is not None


@pytest.mark.slow
def test_a_linked_notebook_is_refused_not_graded(convolution_zip: Path, tmp_path: Path) -> None:
    """A submission holding ``convolution.ipynb -> /autograder/source/solutions/...`` (the
    grader can read the solutions) scores nothing and says why: a link is not the student's
    work. Linked folders and links to files elsewhere in the submission are refused too."""
    root = unpack(convolution_zip, tmp_path)
    submission = root / "submission"
    solution = root / "source" / "solutions" / "convolution.ipynb"
    (submission / "convolution.ipynb").symlink_to(solution)
    (submission / "work").symlink_to(solution.parent, target_is_directory=True)
    done = run_autograder(root)
    assert done.returncode == 0, done.stdout + done.stderr
    data = results_of(root)
    assert data["score"] == 0 and data["tests"] == []
    assert data["output"].startswith("Not graded: convolution.ipynb is a symbolic link")
    assert "No notebook to grade" in data["output"]


@pytest.mark.slow
def test_beside_a_linked_notebook_the_real_one_is_graded(convolution_zip: Path,
                                                         tmp_path: Path) -> None:
    root = unpack(convolution_zip, tmp_path)
    submission = root / "submission"
    shutil.copy(EXAMPLES / "frank_flipped_kernel.ipynb", submission / "mine.ipynb")
    (submission / "convolution.ipynb").symlink_to(root / "source" / "solutions" /
                                                  "convolution.ipynb")
    done = run_autograder(root)
    assert done.returncode == 0, done.stdout + done.stderr
    data = results_of(root)
    assert data["output"].startswith("Not graded: convolution.ipynb is a symbolic link")
    assert 0 < data["score"] < rubric.load("convolution").max_score  # frank's, not the solution
    assert any("flipped" in t["output"] for t in data["tests"])


def test_choose_notebook_refuses_links_and_linked_folders(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "backprop.ipynb").write_text("{}")
    submission = tmp_path / "submission"
    (submission / "real").mkdir(parents=True)
    (submission / "real" / "answer.ipynb").write_text("{}")
    (submission / "backprop.ipynb").symlink_to(outside / "backprop.ipynb")
    (submission / "inside.ipynb").symlink_to(submission / "real" / "answer.ipynb")
    (submission / "folder.ipynb").symlink_to(outside, target_is_directory=True)
    (submission / "linked").symlink_to(outside, target_is_directory=True)
    choice = autograder.choose_notebook(submission, "backprop")
    assert choice.notebook == submission / "real" / "answer.ipynb" and choice.others == ()
    assert {p.name: why for p, why in choice.refused} == {
        "backprop.ipynb": nofollow.LINK, "inside.ipynb": nofollow.LINK,
        "folder.ipynb": nofollow.LINK}
    # a notebook reached through a linked folder is never chosen, however it was found
    assert nofollow.link_below(submission / "linked" / "backprop.ipynb", submission)
    assert not nofollow.link_below(submission / "real" / "answer.ipynb", submission)


def test_private_copy_follows_no_link(tmp_path: Path) -> None:
    submission = tmp_path / "submission"
    (submission / "real").mkdir(parents=True)
    (submission / "real" / "a.ipynb").write_text('{"mine": 1}')
    secret = tmp_path / "secret.ipynb"
    secret.write_text('{"solution": 1}')
    (submission / "link.ipynb").symlink_to(secret)
    (submission / "via").symlink_to(submission / "real", target_is_directory=True)
    (submission / "hard.ipynb").hardlink_to(secret)
    os.mkfifo(submission / "pipe.ipynb")
    into = tmp_path / "private"
    into.mkdir()
    copy = nofollow.private_copy(submission / "real" / "a.ipynb", submission, into)
    assert copy == into / "a.ipynb" and copy.read_text() == '{"mine": 1}'
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600 and not copy.is_symlink()
    for name, why in (("link.ipynb", nofollow.LINK), ("via/a.ipynb", nofollow.LINK),
                      ("hard.ipynb", nofollow.HARD_LINK), ("pipe.ipynb", nofollow.NOT_A_FILE)):
        with pytest.raises(nofollow.Refused) as refused:
            nofollow.private_copy(submission / name, submission, into)
        assert str(refused.value) == why, name
    assert sorted(p.name for p in into.iterdir()) == ["a.ipynb"]


def test_a_grader_failure_writes_no_grade(convolution_zip: Path, tmp_path: Path) -> None:
    """When the grader cannot grade (here a broken rubric), there is no results.json: Gradescope
    then shows a failed autograder, not a score that would read as the student's."""
    root = unpack(convolution_zip, tmp_path)
    (root / "source" / "solutions" / "convolution.toml").write_text("[assignment\n")
    shutil.copy(EXAMPLES / "erin_reference.ipynb", root / "submission" / "convolution.ipynb")
    done = run_autograder(root)
    assert done.returncode == 2
    assert "grader: error: convolution.toml: not valid TOML" in done.stderr
    assert not (root / "results" / "results.json").exists()


@pytest.mark.slow
def test_a_machine_fault_shows_its_log_in_the_output(convolution_zip: Path,
                                                     tmp_path: Path) -> None:
    """A bwrap gone between two submissions: the grader-error.txt of the stopped batch lives
    in the autograder's temporary folder, so its text goes to the output, which stays."""
    from grader.run import bubblewrap

    real = bubblewrap.find()
    assert real is not None
    root = unpack(convolution_zip, tmp_path)
    shutil.copy(EXAMPLES / "erin_reference.ipynb", root / "submission" / "convolution.ipynb")
    wrapper = tmp_path / "bwrap"
    probes = f"case \"$*\" in --version|*' -- true') exec {real.path} \"$@\";; esac\n"
    env = {"GRADER_BWRAP": str(wrapper), "GRADER_ZYGOTE": "off",
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    wrapper.write_text(f"#!/bin/sh\nexec {real.path} \"$@\"\n")
    wrapper.chmod(0o755)
    assert run_autograder(root, **env).returncode == 0  # (the canary, cached for this bwrap)
    (root / "results" / "results.json").unlink()
    wrapper.write_text(f"#!/bin/sh\n{probes}rm -f \"$0\"\necho 'bwrap: removed' >&2\nexit 127\n")
    done = run_autograder(root, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"({wrapper}), which is gone" in done.stderr and "GRADER_BWRAP=bundled" in done.stderr
    assert "grader-error.txt:\nthe sandbox could not start" in done.stdout
    assert "try 3:" in done.stdout and "bwrap: removed" in done.stdout
    assert not (root / "results" / "results.json").exists()


def test_uid_isolation_is_an_explicit_choice(tmp_path: Path) -> None:
    plain = gradescope.build("convolution", tmp_path / "plain.zip")
    chosen = gradescope.build("convolution", tmp_path / "uid.zip", uid_isolation=True)
    with zipfile.ZipFile(plain) as a, zipfile.ZipFile(chosen) as b:
        assert "--uid-isolation" not in a.read("run_autograder").decode()
        assert "--assignment convolution --uid-isolation" in b.read("run_autograder").decode()


@pytest.fixture
def open_tmp() -> Path:
    """A folder other uids can traverse (pytest's own is root's alone), as /autograder is."""
    folder = Path(tempfile.mkdtemp(prefix="gradescope-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="the uid drop needs root and setpriv")
def test_without_namespaces_only_uid_isolation_grades_and_hides_the_solutions(
        open_tmp: Path) -> None:
    """Gradescope's container may lack user namespaces (here: no working bwrap). Then the
    default refuses (exit 2, no results.json); --uid-isolation grades under the sandbox's
    unprivileged uid, and setup.sh's modes keep the rubric from student code."""
    built = gradescope.build("convolution", open_tmp / "uid.zip", uid_isolation=True)
    root = unpack(built, open_tmp)
    setup = subprocess.run(["bash", str(root / "source" / "setup.sh")], capture_output=True,
                           text=True, timeout=120,
                           env={**os.environ, "AUTOGRADER_ROOT": str(root),
                                "GRADER_SETUP_DRY_RUN": "1", "GRADER_VENV": "/nonexistent"})
    assert setup.returncode == 0, setup.stderr
    secret = root / "source" / "solutions" / "convolution.toml"
    notebook = nbformat.read(EXAMPLES / "erin_reference.ipynb", as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(f"print('LEAK', open({str(secret)!r}).read())"))
    nbformat.write(notebook, root / "submission" / "convolution.ipynb")

    # Gradescope's container, as the zip meets it: no working bwrap, GRADER_SANDBOX unset (auto;
    # CI's GRADER_SANDBOX=strict would refuse before the uid drop is tried)
    no_namespaces = {"GRADER_BWRAP": "/bin/false", "GRADER_SANDBOX": "auto"}
    done = run_autograder(root, **no_namespaces)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (root / "results" / "results.json").read_text()
    assert "Permission denied" in text and "LEAK" not in text.replace("print('LEAK'", "")
    assert results_of(root)["score"] == rubric.load("convolution").max_score

    (root / "results" / "results.json").unlink()
    script = root / "source" / "run_autograder"
    script.write_text(script.read_text().replace(" --uid-isolation", ""))
    refused = run_autograder(root, **no_namespaces)
    assert refused.returncode == 2 and "grader: error:" in refused.stderr
    assert not (root / "results" / "results.json").exists()


def test_every_python_snippet_of_setup_sh_imports_what_it_names(tmp_path: Path) -> None:
    """The dry run only prints the snippets: import what each one imports, here, so a module
    that moved (``grader.run.mnist``) fails this test and not the image's build."""
    import ast
    import re

    root = unpack(gradescope.build("backprop", tmp_path / "b.zip"), tmp_path)
    text = (root / "source" / "setup.sh").read_text()
    snippets = re.findall(r'-c \\\n\s*"([^"]+)"', text)
    assert any("mnist.prepare" in snippet for snippet in snippets)
    for snippet in snippets:
        imports = [node for node in ast.parse(snippet).body
                   if isinstance(node, ast.Import | ast.ImportFrom)]
        assert imports, snippet
        exec(compile(ast.Module(body=imports, type_ignores=[]), "setup.sh", "exec"), {})
