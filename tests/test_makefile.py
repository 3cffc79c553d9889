"""The Makefile's set-up, as a newcomer meets it: choosing a Python makes the environment
again, a failed set-up leaves nothing behind, an unusable Python is refused before anything is
touched. A stand-in Python (a shell script that answers for its version, ``venv`` and ``pip``)
keeps this to milliseconds; the real set-up is what every other test runs in."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

FAKE_PYTHON = """#!/bin/sh
case "$1" in
  -c) case "$2" in
        *version_info*) exit "${FAKE_OLD:-0}" ;;
        *) echo "3.12.${FAKE_ID:-0} $0"; exit 0 ;;
      esac ;;
  -m) case "$2" in
        venv) mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0 ;;
        pip) [ -z "$FAKE_FAIL_PIP" ] && exit 0; echo "pip: cannot install" >&2; exit 1 ;;
      esac ;;
esac
exit 3
"""


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    if shutil.which("make") is None:
        pytest.skip("no make")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    fake = tmp_path / "fakepy"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    return tmp_path


def setup(clone: Path, python: str = "./fakepy", **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "setup", f"PYTHON={python}"],
                          cwd=clone, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def stamps(clone: Path) -> list[str]:
    return sorted(p.name for p in (clone / ".venv").glob(".installed-*"))


def test_another_python_makes_the_environment_again(clone: Path) -> None:
    assert setup(clone).returncode == 0
    first = stamps(clone)
    assert len(first) == 1
    assert "Nothing to be done" in setup(clone).stdout
    again = setup(clone, FAKE_ID="13")
    assert again.returncode == 0 and "another Python" in again.stdout
    assert len(stamps(clone)) == 1 and stamps(clone) != first


def test_a_failed_setup_leaves_nothing_behind(clone: Path) -> None:
    failed = setup(clone, FAKE_FAIL_PIP="1")
    assert failed.returncode != 0
    assert "nothing was left behind" in failed.stderr
    assert not (clone / ".venv").exists()
    assert setup(clone).returncode == 0  # (the next make starts afresh and succeeds)


@pytest.mark.parametrize("python, env", [("./no-such-python", {}),
                                         ("./fakepy", {"FAKE_OLD": "1", "FAKE_ID": "9"})])
def test_an_unusable_python_is_refused_before_anything_is_touched(clone: Path, python: str,
                                                                  env: dict) -> None:
    assert setup(clone).returncode == 0
    before = stamps(clone)
    refused = setup(clone, python, **env)
    assert refused.returncode == 2
    assert "is not Python 3.11 or newer" in refused.stderr and "PYTHON=" in refused.stderr
    assert stamps(clone) == before
