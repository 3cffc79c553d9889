"""Build a Gradescope autograder zip for one assignment, in Gradescope's documented layout
(https://gradescope-autograders.readthedocs.io/en/latest/specs/): ``setup.sh`` and
``run_autograder`` at the root of the zip, which Gradescope unpacks into
``/autograder/source``, next to the project itself (pyproject.toml, ``grader/``), this
assignment's rubric and reference notebook, and MNIST when the instructor provides it.

``setup.sh`` installs the grader once per image and hides the solutions from student code;
``run_autograder`` hands each submission to ``grader.distribute.autograder``.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import zipfile
from pathlib import Path

import jinja2

from grader.checks import rubric
from grader.core.errors import GraderError
from grader.core.files import replacing
from grader.run import mnist

PROJECT_FILES = ("pyproject.toml", "README.md")
EXECUTABLE = 0o100755 << 16  # a regular file, rwxr-xr-x, as zip external attributes
REGULAR = 0o100644 << 16
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # same input, same zip


def build(name: str, out: Path, *, mnist_dir: Path | None = None,
          uid_isolation: bool = False, solutions_dir: Path = rubric.SOLUTIONS_DIR) -> Path:
    """Write the autograder zip for assignment ``name`` to ``out`` and return its path.

    ``mnist_dir``: a folder holding MNIST's four ``.gz`` files, checked against the grader's
    checksums and put in the zip; without it ``setup.sh`` downloads and verifies them.
    ``uid_isolation``: where Gradescope's container has no user namespaces, grade under the
    sandbox's uid drop instead of refusing (see ``setup.sh``)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):  # it goes into a shell script
        raise GraderError(f"assignment names are letters, digits, _ and -, not {name!r}")
    loaded = rubric.load(name, solutions_dir=solutions_dir)  # refuses a bad rubric here
    members = _project_members(loaded)
    if loaded.needs_mnist and mnist_dir is not None:
        members += _mnist_members(mnist_dir)
    scripts = _scripts(name, mnist_included=loaded.needs_mnist and mnist_dir is not None,
                       uid_isolation=uid_isolation, needs_mnist=loaded.needs_mnist)
    with replacing(out, suffix=".part") as temporary, \
            zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for arcname, text in scripts.items():
            _add(archive, arcname, text.encode(), EXECUTABLE)
        for arcname, path in sorted(members):
            _add(archive, arcname, path.read_bytes(), REGULAR)
    return out


def _project_members(loaded: rubric.Rubric) -> list[tuple[str, Path]]:
    """The grader's source and this one assignment's rubric and reference: nothing of the
    other assignments, no caches."""
    root = rubric.PROJECT_ROOT
    package = root / "grader"
    members = [(str(p.relative_to(root)), p) for p in sorted(package.rglob("*"))
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    members += [(f, root / f) for f in PROJECT_FILES if (root / f).is_file()]
    members += [(f"solutions/{loaded.name}.toml", loaded.path),
                (f"solutions/{loaded.name}.ipynb", loaded.solution)]
    return members


def _mnist_members(folder: Path) -> list[tuple[str, Path]]:
    """MNIST's four files, each verified before it goes into the zip."""
    members = []
    for file_name in mnist.FILE_NAMES:
        path = folder / file_name
        if not path.is_file():
            raise GraderError(f"--mnist {folder}: {file_name} is missing (MNIST's four .gz "
                              f"files are needed: {', '.join(mnist.FILE_NAMES)})")
        raw = path.read_bytes()
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        digest = hashlib.sha256(data).hexdigest()
        if digest != mnist.CHECKSUMS[file_name]:
            raise GraderError(f"--mnist {folder}: {file_name} is not MNIST (SHA-256 of its "
                              f"decompressed bytes is {digest}, expected "
                              f"{mnist.CHECKSUMS[file_name]})")
        members.append((f"mnist/{file_name}", path))
    return members


def _scripts(name: str, *, mnist_included: bool, uid_isolation: bool,
             needs_mnist: bool) -> dict[str, str]:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("grader", "templates"),
        autoescape=False,  # shell scripts; the only value put in is a validated rubric name
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    values = dict(assignment=name, mnist_included=mnist_included, needs_mnist=needs_mnist,
                  uid_isolation=uid_isolation)
    return {
        "setup.sh": environment.get_template("gradescope_setup.sh.j2").render(**values),
        "run_autograder": environment.get_template("gradescope_run_autograder.j2").render(
            **values),
    }


def _add(archive: zipfile.ZipFile, arcname: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(arcname, date_time=FIXED_TIME)
    info.external_attr = mode
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)
