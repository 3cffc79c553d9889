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
            assert name in (".", ".wire", ".limits", ".runtime", ".fixed_net"), name
            continue
        assert top in sys.stdlib_module_names or top in INSIDE_ALLOWED, (
            f"{path.name} imports {name}"
        )


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_rendering_and_data_stay_away_from_execution(module: str) -> None:
    found = {
        n.split(".")[1]
        for n in imports_of(GRADER / f"{module}.py")
        if n.startswith("grader.") and n.count(".") >= 1
    }
    found |= {n for n in imports_of(GRADER / f"{module}.py") if n == "grader"}
    assert not found & FORBIDDEN[module], f"{module} imports {found & FORBIDDEN[module]}"


def test_reference_solutions_are_not_in_the_sandboxed_package() -> None:
    inside = GRADER / "inside"
    text = "".join(p.read_text() for p in inside.glob("*.py"))
    assert "solutions" not in text and "BEGIN SOLUTION" not in text
