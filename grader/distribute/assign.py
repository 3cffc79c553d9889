"""The assign step: every ``solutions/NAME.ipynb`` becomes ``assignments/NAME.ipynb``, the
template students get (made by ``grader.core.solution``: solution regions replaced by stubs).

A function the rubric grades (``[assignment].functions`` of ``solutions/<name>.toml``, less
those listed as ``given``) must hold a solution region: one whose markers were forgotten would
reach the template with its whole solution, so ``assign`` refuses it, naming the notebook, the
cell and the function.
"""

from __future__ import annotations

from pathlib import Path

from grader.checks import rubric
from grader.core.errors import GraderError
from grader.core.solution import render_assignment


def graded_functions(solution: Path) -> tuple[str, ...]:
    """The functions students write, from the rubric beside ``solution`` (none without one)."""
    if not solution.with_suffix(".toml").exists():
        return ()
    loaded = rubric.load(solution.stem, solutions_dir=solution.parent)
    return tuple(f for f in loaded.functions if f not in loaded.given)


def _notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.ipynb") if p.is_file() and not p.name.startswith("."))


def assign(solutions_dir: Path, assignments_dir: Path, *, check: bool = False) -> list[Path]:
    """Write ``assignments_dir/<name>.ipynb`` for every ``solutions_dir/*.ipynb``.

    Files that are not notebooks are ignored, but for the rubric beside a notebook, which
    names the functions that must hold solution regions (``graded_functions``). Assignment
    notebooks with no solution notebook are removed. A file is only rewritten when its bytes
    change. Returns the assignment paths, sorted.

    With ``check=True`` nothing is written: a :class:`GraderError` lists every assignment that
    is missing, out of date or without a solution, and the call returns the paths otherwise.
    """
    solutions_dir, assignments_dir = Path(solutions_dir), Path(assignments_dir)
    if not solutions_dir.is_dir():
        raise GraderError(f"solutions folder {solutions_dir} does not exist")
    expected = {
        assignments_dir / solution.name: render_assignment(
            solution, functions=graded_functions(solution)
        )
        for solution in _notebooks(solutions_dir)
    }
    orphans = (
        [p for p in _notebooks(assignments_dir) if p not in expected]
        if assignments_dir.is_dir()
        else []
    )
    if check:
        problems = [f"{p} (missing)" for p in expected if not p.is_file()]
        problems += [
            f"{p} (out of date)"
            for p, data in expected.items()
            if p.is_file() and p.read_bytes() != data
        ]
        problems += [f"{p} (no solution notebook in {solutions_dir})" for p in orphans]
        if problems:
            raise GraderError(
                "assignment notebooks do not match the solutions: "
                + ", ".join(sorted(problems))
                + "; run `make assignments` to regenerate them"
            )
        return sorted(expected)
    assignments_dir.mkdir(parents=True, exist_ok=True)
    for path, data in expected.items():
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
    for path in orphans:
        path.unlink()
    return sorted(expected)
