"""The hostile corpus of the trust boundary: each attack of the security review (issue 21),
rebuilt from its description, with the outcome it must have now.

Each notebook is what a determined student could write with only the handed-out notebook, the
self-check ``.pyz`` and the README. None of them may earn what the same notebook without the
trick earns, or stop a batch.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader import rubric, selfcheck
from tests.conftest import build_notebook

# --- 1. the self-check holds the grading answers -------------------------------------------

LOOKUP = '''
import base64, hashlib, io, json, zipfile
import numpy as np

_PYZ = zipfile.ZipFile(io.BytesIO(base64.b64decode("{pyz}")))
_BUNDLE = json.loads(_PYZ.read("checker_data/answers.json"))
_ARRAYS = dict(np.load(io.BytesIO(_PYZ.read("checker_data/arrays.npz")), allow_pickle=False))
_REPLAY = {{}}
exec(compile(_PYZ.read("grader/replay.py").decode(), "replay", "exec"), _REPLAY)


def _lookup(name, *args, **kwargs):
    """The reference's recorded answer to exactly this call, as the checker replays it."""
    key = _REPLAY["call_key"](name, args, kwargs)
    entry = _BUNDLE["functions"].get(name, {{}}).get("answers", {{}}).get(key)
    if entry is None or "returns" not in entry:
        raise NotImplementedError("no recorded answer")
    return _REPLAY["decode"](entry["returns"], _ARRAYS)
'''


def lookup_notebook(folder: Path, assignment: str, pyz: Path) -> tuple[Path, list[str]]:
    """The untouched template plus one cell that answers every recorded call: each function
    the checker has answers for returns them, and raises NotImplementedError otherwise."""
    bundle = json.loads(zipfile.ZipFile(pyz).read("checker_data/answers.json"))
    names = sorted(n for n, f in bundle["functions"].items() if f["answers"])
    cell = LOOKUP.format(pyz=base64.b64encode(pyz.read_bytes()).decode())
    cell += "".join(f"\n\ndef {n}(*args, **kwargs):\n    return _lookup({n!r}, *args, **kwargs)\n"
                    for n in names)
    path = build_notebook(folder, assignment, name=f"lookup-{assignment}", template=True,
                          extra_cells=[cell])
    return path, names


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ["convolution", "backprop"])
def test_answers_recorded_in_the_self_check_earn_nothing(assignment: str, tmp_path: Path,
                                                         grade_notebook) -> None:
    """A notebook that returns the self-check's recorded answers passes the self-check's own
    tests (the lookup works), and earns nothing on a grading input: every output and gradient
    test scores 0. Only the lecture's worked examples (fixed inputs, printed in the notebook
    anyway) may pass."""
    pyz = selfcheck.export(assignment, tmp_path / f"{assignment}-check.pyz")
    path, names = lookup_notebook(tmp_path, assignment, pyz)
    assert names
    checked = subprocess.run([sys.executable, str(pyz), str(path), "--json"],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    in_checker = {t["name"]: t for t in json.loads(checked.stdout)["tests"]}
    seeded = [t for t in rubric.load(assignment).tests if t.kind in ("output", "gradient")]
    public = [t.name for t in seeded if t.visibility == "public"]
    assert public and all(in_checker[n]["score"] > 0 for n in public), in_checker

    result = grade_notebook(path, assignment, kinds=("example", "output", "gradient", "rules"))
    graded = {t.name: t for t in result.tests}
    assert all(graded[t.name].score == 0 for t in seeded), {
        t.name: graded[t.name].message for t in seeded if graded[t.name].score}
