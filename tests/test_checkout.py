"""What an instructor's commands leave in the checkout: nothing git would commit. The zip and
the checker that ``gradescope`` and ``export-check`` write into the current folder are
ignored, and so is an ``OUT=`` folder that ``make grade`` makes inside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

GIT = shutil.which("git")
# (.ci/run's ordinary user grades a copy of the files, not a git checkout)
needs_git = pytest.mark.skipif(GIT is None or not (ROOT / ".git").exists(),
                               reason="needs git and a git checkout")


def ignored(*paths: str) -> list[str]:
    """Which of ``paths`` (relative to the checkout) git ignores."""
    done = subprocess.run([GIT, "check-ignore", "--no-index", *paths], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 1), done.stderr
    return done.stdout.split()


@needs_git
def test_what_gradescope_and_export_check_write_by_default_is_ignored() -> None:
    written = ["backprop-autograder.zip", ".convolution-autograder.zip.x1y2z3_a.part",
               "backprop-check.pyz", ".convolution-check.pyz.x1y2z3_a.part"]
    assert ignored(*written) == written
    assert ignored("solutions/backprop.toml", "grader/cli.py") == []  # (not everything)


def test_make_grade_out_folder_inside_the_checkout_ignores_itself() -> None:
    folder = f"out-test-{os.getpid()}"
    try:
        # (-o setup: the environment is the tests' own; no assignment: nothing to grade)
        done = subprocess.run(["make", "-s", "-o", "setup", "grade", f"OUT={folder}/2026",
                               "ASSIGNMENTS="], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (ROOT / folder / "2026" / ".gitignore").read_text() == "*\n"
        if GIT is not None and (ROOT / ".git").exists():
            (ROOT / folder / "2026" / "backprop").mkdir()
            assert ignored(f"{folder}/2026/backprop/index.html") != []
    finally:
        shutil.rmtree(ROOT / folder, ignore_errors=True)


def test_make_grade_leaves_folders_outside_the_checkout_alone(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = subprocess.run(["make", "-s", "-o", "setup", "grade", f"OUT={out}", "ASSIGNMENTS="],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (out / ".gitignore").exists()
