"""The layering rules, enforced: what runs in the sandbox imports nothing of the grader, and
rendering never reaches for the sandbox or the reference."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GRADER = Path(__file__).resolve().parent.parent / "grader"

# module -> grader modules it must never import (directly)
FORBIDDEN = {
    "report": {"sandbox", "execute", "reference", "checks", "inside"},
    "export": {"sandbox", "execute", "reference", "checks", "inside"},
    "results": {"sandbox", "execute", "reference", "checks", "report"},
    "notebook": {"sandbox", "execute", "reference", "checks", "report"},
    "classview": {"sandbox", "execute", "reference", "checks", "inside", "grade"},
    "similarity": {"sandbox", "execute", "reference", "checks", "inside", "grade", "report"},
}
INSIDE_ALLOWED = {"numpy", "pyseccomp"}


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.add("." * node.level + (node.module or ""))
            elif node.module:
                names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((GRADER / "inside").glob("*.py")), ids=lambda p: p.name)
def test_sandbox_side_imports_only_stdlib_numpy_and_itself(path: Path) -> None:
    import sys

    for name in imports_of(path):
        top = name.split(".")[0]
        if name.startswith("."):
            assert name in (".", ".wire", ".limits", ".runtime"), name
            continue
        assert top in sys.stdlib_module_names or top in INSIDE_ALLOWED, (
            f"{path.name} imports {name}"
        )


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_rendering_and_data_stay_away_from_execution(module: str) -> None:
    """Every import form counts: ``import grader.x``, ``from grader.x import y`` and ``from
    grader import x``, at the top or inside a function."""
    found = grader_imports(GRADER / f"{module}.py")
    assert not found & FORBIDDEN[module], f"{module} imports {found & FORBIDDEN[module]}"


def test_the_layering_check_sees_every_import_form(tmp_path: Path) -> None:
    """The check above can fail: each form of importing the sandbox is seen."""
    for line in ("import grader.sandbox", "from grader.sandbox import Sandbox",
                 "from grader import report, sandbox",
                 "def f():\n    from grader import sandbox\n"):
        source = tmp_path / "module.py"
        source.write_text(line + "\n")
        assert "sandbox" in grader_imports(source), line


def test_reference_solutions_are_not_in_the_sandboxed_package() -> None:
    inside = GRADER / "inside"
    text = "".join(p.read_text() for p in inside.glob("*.py"))
    assert "solutions" not in text and "BEGIN SOLUTION" not in text


def grader_imports(path: Path) -> set[str]:
    """The grader modules ``path`` imports, in any form (``from grader import x`` included)."""
    modules = {p.stem for p in GRADER.glob("*.py")} | {"inside"}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("grader.")}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module == "grader":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module.startswith("grader."):
                found.add(node.module.split(".")[1])
    return found & modules


def test_grader_modules_import_no_circle() -> None:
    graph = {p.stem: grader_imports(p) for p in GRADER.glob("*.py")}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for name in graph.get(start, set()) - seen:
            if name == target or reaches(name, target, seen | {name}):
                return True
        return False

    circles = sorted(m for m in graph if reaches(m, m, set()))
    assert not circles, f"modules in an import circle: {circles}"


def test_runners_take_shared_types_not_the_engine() -> None:
    """The runners import ``checktypes``; only ``checks`` (which registers them) imports them."""
    for runner in ("gradient_checks", "mnist_checks"):
        found = grader_imports(GRADER / f"{runner}.py")
        assert "checktypes" in found and "checks" not in found, f"{runner} imports {found}"
    assert not grader_imports(GRADER / "checktypes.py") & {
        "checks",
        "gradient_checks",
        "mnist_checks",
    }


def test_scoring_policy_stands_alone() -> None:
    """The credit policy is plain arithmetic a reader can check without the rest."""
    assert grader_imports(GRADER / "scoring.py") == set()
