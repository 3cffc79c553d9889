"""The layering rules, enforced: each stage of the pipeline imports only the stages below it,
what runs in the sandbox imports nothing of the grader, and rendering never reaches for the
sandbox or the reference."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

GRADER = Path(__file__).resolve().parent.parent / "grader"

# stage -> the stages its modules may import (besides their own). ``ls grader/`` reads as the
# pipeline: read (core) -> run -> check -> grade -> render, then the class and its handouts.
STAGES: dict[str, set[str]] = {
    "core": set(),  # values every stage shares: rubric-free, sandbox-free
    "run": {"core"},  # student code in another process
    "checks": {"core"},  # the rubric and the engine: calls go through ``core.calls.Session``
    "grading": {"core", "run", "checks"},  # one submission, the canary, re-scoring, validation
    "render": {"core", "checks"},  # pages from stored results: never the sandbox or grading
    "course": {"core", "run", "checks", "grading", "render"},  # the class and its gradebooks
    "distribute": {"core", "run", "checks", "grading", "render", "course"},  # handouts
    "serve": {"core", "run", "checks", "grading", "render", "course"},  # the course server
}
# Command lines: they drive the stages and nothing imports them (but each other).
ADAPTERS = {"cli", "__main__", "distribute.autograder"}
INSIDE_ALLOWED = {"numpy", "pyseccomp"}


def module_name(path: Path) -> str:
    """``grader/checks/kinds/gradient.py`` -> ``checks.kinds.gradient``."""
    parts = path.relative_to(GRADER).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage_of(module: str) -> str:
    return module.split(".")[0]


def grader_imports(path: Path) -> set[str]:
    """The grader modules ``path`` imports, in any form (``import grader.x``, ``from grader.x
    import y``, ``from grader import x``, relative imports), at the top or inside a function;
    names like ``__version__`` count as the package itself (``""``)."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name[len("grader."):] for a in node.names if a.name.startswith("grader.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module == "grader" or (node.module or "").startswith("grader."):
                module = node.module[len("grader."):] if node.module != "grader" else ""
            else:
                continue
            for alias in node.names:
                child = f"{module}.{alias.name}" if module else alias.name
                found.add(child if _is_module(child) else module)
    return found


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (imports for annotations alone, which
    run nothing: a zygote is a sandbox, and a sandbox names its zygote's type)."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
            continue
        todo += list(ast.iter_child_nodes(node))
    return found


def _is_module(name: str) -> bool:
    path = GRADER.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def modules() -> list[Path]:
    return sorted(p for p in GRADER.rglob("*.py") if "inside" not in p.parts)


def violations(path: Path) -> list[str]:
    """The imports of ``path`` that break the stage rules."""
    name = module_name(path)
    if name in ADAPTERS or name == "":
        return []
    stage = stage_of(name)
    allowed = STAGES[stage] | {stage}
    wrong = []
    for imported in grader_imports(path):
        if imported and imported in ADAPTERS:
            wrong.append(f"{name} imports the command line {imported}")
        elif imported and stage_of(imported) not in allowed:
            wrong.append(f"{name} ({stage}) imports {imported} ({stage_of(imported)})")
    return wrong


def test_grader_is_its_stages() -> None:
    """``ls grader/`` draws the map: every module lives in a stage's package."""
    loose = [module_name(p) for p in modules()
             if module_name(p) and module_name(p) not in ADAPTERS
             and stage_of(module_name(p)) not in STAGES]
    assert not loose, f"modules outside the stages: {loose}"
    folders = {p.name for p in GRADER.iterdir() if (p / "__init__.py").is_file()}
    assert folders == set(STAGES), folders


@pytest.mark.parametrize("path", modules(), ids=module_name)
def test_each_stage_imports_only_the_stages_below_it(path: Path) -> None:
    assert not violations(path)


def test_the_layering_check_sees_every_import_form(tmp_path: Path, monkeypatch) -> None:
    """The check above can fail: each form of importing the sandbox from a page is seen, and
    so is a lower stage reaching a higher one."""
    render = tmp_path / "grader" / "render"
    render.mkdir(parents=True)
    for stage in STAGES:
        (tmp_path / "grader" / stage).mkdir(exist_ok=True)
        (tmp_path / "grader" / stage / "__init__.py").write_text("")
    (tmp_path / "grader" / "run" / "sandbox.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "GRADER", tmp_path / "grader")
    for line in ("import grader.run.sandbox", "from grader.run.sandbox import Sandbox",
                 "from grader.run import sandbox", "from grader import run",
                 "from ..run import sandbox",
                 "def f():\n    from grader.run import sandbox\n"):
        source = render / "page.py"
        source.write_text(line + "\n")
        assert violations(source), line
    core = tmp_path / "grader" / "core" / "values.py"
    core.write_text("from grader.render import page\n")
    assert violations(core)


@pytest.mark.parametrize("path", sorted((GRADER / "run" / "inside").glob("*.py")),
                         ids=lambda p: p.name)
def test_sandbox_side_imports_only_stdlib_numpy_and_itself(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            assert node.level == 1 and node.module in (None, "wire", "limits", "runtime"), (
                f"{path.name} imports .{node.module}")
            continue
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        for name in names:
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top in INSIDE_ALLOWED, (
                f"{path.name} imports {name}")


def test_reference_solutions_are_not_in_the_sandboxed_package() -> None:
    inside = GRADER / "run" / "inside"
    text = "".join(p.read_text() for p in inside.glob("*.py"))
    assert "solutions" not in text and "BEGIN SOLUTION" not in text


def reaches(start: str, target_stage: str) -> list[str]:
    """A chain of imports from module ``start`` to a module of ``target_stage``, or []."""
    graph = {module_name(p): grader_imports(p) for p in modules()}
    seen, frontier = {start}, [[start]]
    while frontier:
        chain = frontier.pop()
        for name in sorted(graph.get(chain[-1], set()) - seen):
            if name and stage_of(name) == target_stage:
                return [*chain, name]
            seen.add(name)
            frontier.append([*chain, name])
    return []


@pytest.mark.parametrize("module", ["render.report", "render.classview", "render.similarity",
                                    "render.export", "render.summary"])
def test_pages_never_reach_the_sandbox(module: str) -> None:
    """Not even through another module: a page is drawn from stored results alone."""
    for stage in ("run", "grading"):
        assert not reaches(module, stage), " -> ".join(reaches(module, stage))


@pytest.mark.parametrize("module", ["course.coursefile", "course.final", "course.gradebook",
                                    "course.roster", "course.ingest", "course.classroom"])
def test_class_records_never_run_code(module: str) -> None:
    """Final grades and gradebooks are computed from stored results, never by running code."""
    for forbidden in ("run.sandbox", "run.session", "core.reference", "checks.engine"):
        graph = grader_imports(GRADER.joinpath(*module.split(".")).with_suffix(".py"))
        assert forbidden not in graph, f"{module} imports {forbidden}"


def test_grader_modules_import_no_circle() -> None:
    graph = {module_name(p): grader_imports(p) - {""} for p in modules()}

    def circles_through(start: str, name: str, seen: set[str]) -> bool:
        for child in graph.get(name, set()) - seen:
            if child == start or circles_through(start, child, seen | {child}):
                return True
        return False

    circles = sorted(m for m in graph if circles_through(m, m, set()))
    assert not circles, f"modules in an import circle: {circles}"


def test_scoring_policy_stands_alone() -> None:
    """The credit policy is plain arithmetic a reader can check without the rest."""
    assert grader_imports(GRADER / "checks" / "scoring.py") == set()
