"""The README and docs/ say what the checkout holds: the two commands the README gives are the
Makefile's and CI's, every link leads to a file and a heading that exist, and every module or
file of the grader the text names is there (a path left behind by a move fails here).

The course walk-through itself runs in ``tests/test_readme.py``.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from tests import readme

ROOT = readme.ROOT
PAGES = [readme.README, *sorted((ROOT / "docs").glob("*.md"))]
# Linked before it lands: generated from the course file's schema by work not on this branch
# yet. A link to it is accepted while the file is missing; once it exists it is checked as any.
PENDING = {ROOT / "docs" / "course.md"}


def prose(page: Path) -> str:
    """The page without its fenced code blocks (a block's text is no link)."""
    return re.sub(r"^( *)```.*?^\1```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+ (.+)$", prose(page), re.M)}


def links(page: Path) -> list[tuple[str, str]]:
    """(target, anchor) of every relative link of ``page``."""
    found = re.findall(r"\]\(([^)\s]+)\)", prose(page))
    return [tuple(t.partition("#")[::2]) for t in found if not re.match(r"\w+:", t)]


def test_the_readme_gives_the_two_commands() -> None:
    """CI and instructors use them: ``make grade`` and ``make test``, first thing."""
    first = readme.blocks(readme.README.read_text(encoding="utf-8"))[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines()]
    assert commands == ["make grade", "make test"], first
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^grade:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert re.search(r"^[^#\n]*\bmake test$", (ROOT / ".ci" / "run").read_text(), re.M)


def test_the_readme_points_to_the_walk_through() -> None:
    text = readme.README.read_text(encoding="utf-8")
    assert "docs/instructors.md#a-course-from-the-lms-to-the-gradebook" in text
    assert readme.section("A course: from the LMS to the gradebook")  # where it points


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_leads_somewhere(page: Path) -> None:
    broken = []
    for target, anchor in links(page):
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            if path not in PENDING:
                broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}#{anchor}")
    assert not broken, f"{page.name}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_named_grader_file_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    # not /opt/backprop-grader/venv (the look-behind), nor a pattern such as
    # tests/test_serve_*.py (the look-ahead)
    named = r"(?<![\w/-])((?:grader|tests|benchmarks|solutions)/[\w./-]*\w)(?![\w*])"
    paths = set(re.findall(named, text))
    missing = sorted(p for p in paths if "NAME" not in p and not (ROOT / p).exists())
    assert not missing, f"{page.name} names {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_named_grader_module_exists(page: Path) -> None:
    """``grader.checks.expectations`` and ``grader.grading.grade.grade_submission`` alike."""
    missing = []
    for dotted in set(re.findall(r"`(grader(?:\.\w+)+)`", page.read_text(encoding="utf-8"))):
        try:
            importlib.import_module(dotted)
        except ModuleNotFoundError:
            parent, _, name = dotted.rpartition(".")
            try:
                if not hasattr(importlib.import_module(parent), name):
                    missing.append(dotted)
            except ModuleNotFoundError:
                missing.append(dotted)
    assert not missing, f"{page.name} names {sorted(missing)}"
