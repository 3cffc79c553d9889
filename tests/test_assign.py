"""The assign step: solution notebooks in, assignment notebooks with stubs out."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from grader.core.errors import GraderError
from grader.core.solution import DEFAULT_HINT, MARKDOWN_STUB, strip_solutions
from grader.distribute.assign import assign

REPO = Path(__file__).resolve().parents[1]

SOLVED_CELL = '''\
def relu_forward(x):
    """ReLU."""
    ### BEGIN SOLUTION
    # HINT: keep the positive part
    out = np.maximum(0, x)
    return out, x
    ### END SOLUTION


def relu_backward(dout, cache):
    ### BEGIN SOLUTION
    return dout * (cache > 0)
    ### END SOLUTION
'''


RELU_RUBRIC = """
[assignment]
functions = ["relu_forward", "relu_backward"]

[[tests]]
name = "relu_forward: output"
function = "relu_forward"
kind = "output"
returns = ["out", "cache"]
points = 1
args = [{ shape = [2, 3] }]
"""


def make_notebook(*cells) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python", "version": "3.11.7"},
        "widgets": {"state": {}},
    }
    nb.cells = list(cells)
    for number, cell in enumerate(nb.cells, start=1):
        cell.id = f"cell-{number:02d}"
    return nb


def write_notebook(path: Path, nb: nbformat.NotebookNode) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_markers_stripped_and_stubs_carry_the_hint():
    nb = make_notebook(new_markdown_cell("# Title"), new_code_cell(SOLVED_CELL))
    source = strip_solutions(nb, name="demo.ipynb").cells[1].source

    assert "SOLUTION" not in source
    assert "np.maximum" not in source and "cache > 0" not in source
    assert '    raise NotImplementedError("keep the positive part")' in source.splitlines()
    assert f'    raise NotImplementedError("{DEFAULT_HINT}")' in source.splitlines()
    # the code around the regions survives, and the stubbed cell is still valid Python
    assert source.startswith('def relu_forward(x):\n    """ReLU."""\n    raise')
    assert "def relu_backward(dout, cache):" in source
    tree = ast.parse(source)
    assert [f.name for f in tree.body] == ["relu_forward", "relu_backward"]


def test_stub_takes_the_indentation_of_the_begin_marker():
    cell = new_code_cell(
        "for i in range(3):\n"
        "        ### BEGIN SOLUTION\n"
        '        # HINT:   say "hi"  \n'
        "        print('hi')\n"
        "        ### END SOLUTION\n"
        "### BEGIN SOLUTION\n"
        "x = 1\n"
        "### END SOLUTION"
    )
    source = strip_solutions(make_notebook(cell), name="x.ipynb").cells[0].source
    assert source == (
        "for i in range(3):\n"
        '        raise NotImplementedError("say \\"hi\\"")\n'
        f'raise NotImplementedError("{DEFAULT_HINT}")'
    )
    ast.parse(source)


def test_hint_only_counts_on_the_first_line_of_a_region():
    cell = new_code_cell(
        "### BEGIN SOLUTION\nx = 1\n# HINT: too late, this is part of the solution\n"
        "### END SOLUTION"
    )
    source = strip_solutions(make_notebook(cell), name="x.ipynb").cells[0].source
    assert source == f'raise NotImplementedError("{DEFAULT_HINT}")'


def test_markdown_regions_become_your_answer_here():
    cell = new_markdown_cell(
        "Why does ReLU help?\n\n### BEGIN SOLUTION\nIt does not saturate.\n### END SOLUTION\n"
    )
    source = strip_solutions(make_notebook(cell), name="x.ipynb").cells[0].source
    assert source == f"Why does ReLU help?\n\n{MARKDOWN_STUB}\n"


def test_outputs_execution_counts_and_volatile_metadata_are_cleared():
    cell = new_code_cell(
        "print(1)",
        execution_count=7,
        outputs=[new_output("stream", name="stdout", text="1\n")],
        metadata={
            "tags": ["keep-me"],
            "execution": {"iopub.status.busy": "2024"},
            "scrolled": True,
        },
    )
    nb = make_notebook(cell)
    result = strip_solutions(nb, name="x.ipynb")

    out = result.cells[0]
    assert out.outputs == [] and out.execution_count is None
    assert out.metadata == {"tags": ["keep-me"]}
    assert set(result.metadata) == {"kernelspec", "language_info"}
    assert "version" not in result.metadata.language_info
    # the input notebook is not modified
    assert nb.cells[0].execution_count == 7 and nb.cells[0].outputs
    assert "widgets" in nb.metadata


def test_cells_without_ids_get_deterministic_ones():
    nb = make_notebook(new_code_cell("a = 1"), new_code_cell("b = 2"))
    for cell in nb.cells:
        del cell["id"]
    first = strip_solutions(nb, name="x.ipynb")
    second = strip_solutions(nb, name="x.ipynb")
    assert [c.id for c in first.cells] == [c.id for c in second.cells]
    assert len({c.id for c in first.cells}) == 2


def test_assign_is_idempotent_and_ignores_other_files(tmp_path):
    solutions, assignments = tmp_path / "solutions", tmp_path / "assignments"
    write_notebook(solutions / "relu.ipynb", make_notebook(new_code_cell(SOLVED_CELL)))
    write_notebook(solutions / "plain.ipynb", make_notebook(new_markdown_cell("no regions")))
    (solutions / "notes.txt").write_text("not a notebook\n")
    (solutions / "relu.toml").write_text(RELU_RUBRIC)  # a rubric: its functions have regions

    written = assign(solutions, assignments)
    assert written == [assignments / "plain.ipynb", assignments / "relu.ipynb"]
    assert sorted(p.name for p in assignments.iterdir()) == ["plain.ipynb", "relu.ipynb"]
    first = {p.name: p.read_bytes() for p in written}
    assert all(data.endswith(b"\n") for data in first.values())

    shutil.rmtree(assignments)
    assign(solutions, assignments)
    assert {p.name: p.read_bytes() for p in written} == first
    assign(solutions, assignments)
    assert {p.name: p.read_bytes() for p in written} == first
    assert assign(solutions, assignments, check=True) == written

    nbformat.validate(nbformat.reads(first["relu.ipynb"].decode(), as_version=4))


def test_check_detects_drift_and_writes_nothing(tmp_path):
    solutions, assignments = tmp_path / "solutions", tmp_path / "assignments"
    shutil.copytree(REPO / "solutions", solutions)
    assign(solutions, assignments)
    assign(solutions, assignments, check=True)
    before = {p: p.read_bytes() for p in assignments.iterdir()}

    nb = nbformat.read(solutions / "backprop.ipynb", as_version=4)
    nb.cells.append(new_code_cell("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION", id="new"))
    write_notebook(solutions / "backprop.ipynb", nb)

    with pytest.raises(GraderError) as info:
        assign(solutions, assignments, check=True)
    message = str(info.value)
    assert "backprop.ipynb (out of date)" in message
    assert "convolution.ipynb" not in message
    assert "make assignments" in message
    assert {p: p.read_bytes() for p in assignments.iterdir()} == before

    assign(solutions, assignments)
    assign(solutions, assignments, check=True)


def test_check_reports_missing_and_orphaned_assignments(tmp_path):
    solutions, assignments = tmp_path / "solutions", tmp_path / "assignments"
    write_notebook(solutions / "a.ipynb", make_notebook(new_code_cell("a = 1")))
    write_notebook(solutions / "b.ipynb", make_notebook(new_code_cell("b = 1")))
    assign(solutions, assignments)
    (assignments / "a.ipynb").unlink()
    write_notebook(assignments / "old.ipynb", make_notebook(new_code_cell("old = 1")))

    with pytest.raises(GraderError) as info:
        assign(solutions, assignments, check=True)
    message = str(info.value)
    assert "a.ipynb (missing)" in message
    assert "old.ipynb (no solution notebook" in message
    assert "b.ipynb" not in message
    assert "make assignments" in message
    assert not (assignments / "a.ipynb").exists()

    assign(solutions, assignments)  # what `make assignments` does: it also removes the orphan
    assert sorted(p.name for p in assignments.iterdir()) == ["a.ipynb", "b.ipynb"]
    assign(solutions, assignments, check=True)


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ("x = 1\n### BEGIN SOLUTION\ny = 2\n", "never closed"),
        ("### BEGIN SOLUTION\n    ### BEGIN SOLUTION\ny = 2\n### END SOLUTION\n", "nested"),
        ("x = 1\n### END SOLUTION\n", "without a matching"),
        ("##BEGIN SOLUTION\ny = 2\n### END SOLUTION\n", "looks like a solution marker"),
    ],
    ids=["unclosed", "nested", "end-without-begin", "misspelt"],
)
def test_malformed_markers_name_the_notebook_and_cell(tmp_path, source, complaint):
    solutions = tmp_path / "solutions"
    nb = make_notebook(new_markdown_cell("intro"), new_code_cell("ok = 1"), new_code_cell(source))
    write_notebook(solutions / "broken.ipynb", nb)

    with pytest.raises(GraderError) as info:
        assign(solutions, tmp_path / "assignments")
    message = str(info.value)
    assert "broken.ipynb" in message
    assert "cell 3" in message
    assert complaint in message
    assert not (tmp_path / "assignments" / "broken.ipynb").exists()


def test_malformed_markdown_region_is_rejected_too():
    nb = make_notebook(new_markdown_cell("### BEGIN SOLUTION\nan answer"))
    with pytest.raises(GraderError, match=r"notes\.ipynb, cell 1.*never closed"):
        strip_solutions(nb, name="notes.ipynb")


def test_unreadable_notebook_is_an_instructor_error(tmp_path):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    (solutions / "bad.ipynb").write_text("{not json")
    with pytest.raises(GraderError, match="bad.ipynb"):
        assign(solutions, tmp_path / "assignments")


def test_course_assignments_have_stubs_and_no_solutions():
    for path in sorted((REPO / "assignments").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
        assert any("raise NotImplementedError(" in source for source in code), path
        for cell in nb.cells:
            assert "SOLUTION" not in cell.source, path
            assert "# HINT:" not in cell.source, path
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path
                ast.parse(cell.source)


def test_committed_assignments_are_up_to_date_with_solutions():
    assert sorted(p.name for p in (REPO / "solutions").glob("*.ipynb"))
    assign(REPO / "solutions", REPO / "assignments", check=True)


# --- no solution survives into the template ------------------------------------------------


FORGOTTEN = """\
def relu_forward(x):
    out = np.maximum(0, x)
    return out, x
"""


def test_a_function_without_markers_is_refused_naming_notebook_cell_and_function(tmp_path):
    solutions = tmp_path / "solutions"
    relu_backward = SOLVED_CELL[SOLVED_CELL.index("def relu_backward"):]
    nb = make_notebook(new_code_cell("import numpy as np"), new_code_cell(FORGOTTEN),
                       new_code_cell(relu_backward))
    write_notebook(solutions / "relu.ipynb", nb)
    (solutions / "relu.toml").write_text(RELU_RUBRIC)

    with pytest.raises(GraderError) as info:
        assign(solutions, tmp_path / "assignments")
    assert str(info.value).startswith(
        f"{solutions / 'relu.ipynb'}, cell 2: `relu_forward` has no ### BEGIN SOLUTION / "
        f"### END SOLUTION region, so the template would hand out its solution")
    assert not (tmp_path / "assignments" / "relu.ipynb").exists()

    done = subprocess.run(
        [sys.executable, "-m", "grader", "assign", "--solutions", str(solutions),
         "--assignments", str(tmp_path / "assignments")],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1
    assert "relu.ipynb, cell 2: `relu_forward` has no ### BEGIN SOLUTION" in done.stderr
    assert not (tmp_path / "assignments").exists()

    # handed out complete on purpose: listed as given, it is copied as it is
    (solutions / "relu.toml").write_text(RELU_RUBRIC.replace(
        "[assignment]", '[assignment]\ngiven = ["relu_forward"]'))
    assign(solutions, tmp_path / "assignments")
    assert "np.maximum(0, x)" in (tmp_path / "assignments" / "relu.ipynb").read_text()


def test_assign_refuses_a_bad_rubric_before_writing(tmp_path):
    solutions = tmp_path / "solutions"
    nb = make_notebook(new_code_cell("import numpy as np"), new_code_cell(SOLVED_CELL))
    write_notebook(solutions / "relu.ipynb", nb)
    (solutions / "relu.toml").write_text(RELU_RUBRIC.replace("points", "pionts"))
    done = subprocess.run(
        [sys.executable, "-m", "grader", "assign", "--solutions", str(solutions),
         "--assignments", str(tmp_path / "assignments")],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert ("relu.toml: test 'relu_forward: output': unknown key 'pionts' (did you mean "
            "'points'?)") in done.stderr
    assert not (tmp_path / "assignments").exists()
