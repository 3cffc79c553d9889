"""Rubrics: an assignment's tests as data (``solutions/<name>.toml``), parsed once into typed
values. Every mistake in a rubric is an instructor error whose message names the file and the
offending field, e.g. ``backprop.toml: tests[3].points must be a number``.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import budgets
from grader.errors import GraderError

KINDS = ("example", "output", "gradient", "mnist", "mnist_diagnostic", "rules")
VISIBILITIES = ("public", "hidden")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = PROJECT_ROOT / "solutions"


@dataclass(frozen=True)
class Case:
    """One call: positional and keyword arguments, literal values or input specs (tables such
    as ``{shape = [3, 5], dist = "normal"}`` that the grader turns into seeded arrays)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    expected: Any = None  # literal expected value (example tests); else the reference's answer
    upstream: dict[str, Any] | None = None  # spec of dout for gradient tests (default: normal)


@dataclass(frozen=True)
class TestSpec:
    __test__ = False

    name: str
    function: str
    kind: str
    points: float
    visibility: str
    description: str
    cases: tuple[Case, ...]
    forward: str | None = None  # gradient tests: the forward whose cache feeds ``function``
    outputs: tuple[str, ...] = ()  # names of the returned values that are compared
    returns: tuple[str, ...] = ()  # names of all returned values (e.g. ("out", "cache"))
    bugs: tuple[str, ...] = ()  # bug patterns to look for when a comparison fails
    shape_formula: str = ""
    timeout: budgets.Budget = 10.0  # seconds per call, or relative to the reference (budgets)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rubric:
    name: str
    title: str
    path: Path
    solution: Path
    functions: tuple[str, ...]
    tests: tuple[TestSpec, ...]
    seed: int
    sha256: str
    cell_timeout: float = 10.0
    setup_budget: float = 30.0

    @property
    def max_score(self) -> float:
        return sum(t.points for t in self.tests)

    @property
    def needs_mnist(self) -> bool:
        return any(t.kind in ("mnist", "mnist_diagnostic") for t in self.tests)


def available(solutions_dir: Path = SOLUTIONS_DIR) -> list[str]:
    return sorted(p.stem for p in solutions_dir.glob("*.toml") if p.with_suffix(".ipynb").exists())


def load(name: str, *, solutions_dir: Path = SOLUTIONS_DIR) -> Rubric:
    """Load and validate the rubric of assignment ``name``."""
    path = solutions_dir / f"{name}.toml"
    if not path.exists():
        known = ", ".join(available(solutions_dir)) or "none"
        raise GraderError(
            f"unknown assignment {name!r} (known: {known}); expected a rubric at {path}"
        )
    solution = path.with_suffix(".ipynb")
    if not solution.exists():
        raise GraderError(f"{path.name}: the reference notebook {solution} is missing")
    try:
        raw = path.read_bytes()
    except OSError as exc:  # a folder of that name, no permission...
        raise GraderError(f"{path.name}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GraderError(f"{path.name}: not valid TOML ({exc})") from None
    return _parse(data, path=path, solution=solution, digest=hashlib.sha256(raw).hexdigest())


def _parse(data: dict[str, Any], *, path: Path, solution: Path, digest: str) -> Rubric:
    where = path.name
    head = _table(data, "assignment", where)
    functions = tuple(_list_of_str(head, "functions", f"{where}: assignment"))
    tests_raw = data.get("tests")
    if not isinstance(tests_raw, list) or not tests_raw:
        raise GraderError(f"{where}: needs at least one [[tests]] table")
    defaults = data.get("defaults", {})
    tests = tuple(
        _parse_test(t, defaults, f"{where}: tests[{i}]", functions) for i, t in enumerate(tests_raw)
    )
    names = [t.name for t in tests]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise GraderError(f"{where}: test names must be unique; repeated: {', '.join(duplicates)}")
    return Rubric(
        name=path.stem,
        title=str(head.get("title", path.stem)),
        path=path,
        solution=solution,
        functions=functions,
        tests=tests,
        seed=_number(head, "seed", f"{where}: assignment", default=0, kind=int),
        sha256=digest,
        cell_timeout=_number(head, "cell_timeout", f"{where}: assignment", default=10.0),
        setup_budget=_number(head, "setup_budget", f"{where}: assignment", default=30.0),
    )


def _parse_test(raw: Any, defaults: dict, where: str, functions: tuple[str, ...]) -> TestSpec:
    if not isinstance(raw, dict):
        raise GraderError(f"{where} must be a table")
    merged = {**defaults, **raw}
    kind = _choice(merged, "kind", KINDS, where)
    function = _str(merged, "function", where)
    if function not in functions and kind != "rules":
        raise GraderError(f"{where}.function {function!r} is not in assignment.functions")
    forward = merged.get("forward")
    if kind == "gradient" and forward not in functions:
        raise GraderError(f"{where}.forward must name the forward function of a gradient test")
    known = {
        "name",
        "function",
        "kind",
        "points",
        "visibility",
        "description",
        "cases",
        "forward",
        "outputs",
        "returns",
        "bugs",
        "shape_formula",
        "timeout",
        "args",
        "kwargs",
        "expected",
    }
    return TestSpec(
        name=_str(merged, "name", where),
        function=function,
        kind=kind,
        points=_number(merged, "points", where),
        visibility=_choice(merged, "visibility", VISIBILITIES, where, default="public"),
        description=str(merged.get("description", "")),
        cases=_cases(merged, where, kind),
        forward=forward,
        outputs=tuple(_list_of_str(merged, "outputs", where, default=["out"])),
        returns=tuple(_list_of_str(merged, "returns", where, default=[])),
        bugs=tuple(_list_of_str(merged, "bugs", where, default=[])),
        shape_formula=str(merged.get("shape_formula", "")),
        timeout=budgets.parse(merged.get("timeout", 10.0), f"{where}.timeout"),
        options=_options(merged, known, where),
    )


def _options(merged: dict, known: set[str], where: str) -> dict[str, Any]:
    """The kind-specific keys (threshold, budget...), budgets parsed."""
    options = {k: v for k, v in merged.items() if k not in known}
    for key in ("budget", "predict_budget"):
        if key in options:
            options[key] = budgets.parse(options[key], f"{where}.{key}")
    return options


def _cases(merged: dict, where: str, kind: str) -> tuple[Case, ...]:
    if kind in ("mnist", "mnist_diagnostic", "rules"):
        return ()
    raw_cases = merged.get("cases")
    if raw_cases is None:
        raw_cases = [{k: merged[k] for k in ("args", "kwargs", "expected") if k in merged}]
    if not isinstance(raw_cases, list) or not raw_cases:
        raise GraderError(f"{where}.cases must be a non-empty list of tables")
    cases = []
    for i, case in enumerate(raw_cases):
        spot = f"{where}.cases[{i}]"
        if not isinstance(case, dict) or not isinstance(case.get("args"), list):
            raise GraderError(f"{spot}.args must be a list of arguments")
        if not isinstance(case.get("kwargs", {}), dict):
            raise GraderError(f"{spot}.kwargs must be a table")
        if kind == "example" and "expected" not in case:
            raise GraderError(f"{spot}.expected is required for an example test")
        cases.append(
            Case(
                args=tuple(case["args"]),
                kwargs=dict(case.get("kwargs", {})),
                expected=case.get("expected"),
                upstream=case.get("upstream"),
            )
        )
    return tuple(cases)


def _table(data: dict, key: str, where: str) -> dict:
    value = data.get(key)
    if not isinstance(value, dict):
        raise GraderError(f"{where}: needs an [{key}] table")
    return value


def _str(data: dict, key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise GraderError(f"{where}.{key} must be a non-empty string")
    return value


def _number(data: dict, key: str, where: str, *, default: Any = None, kind: type = float) -> Any:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise GraderError(f"{where}.{key} must be a number ≥ 0")
    return kind(value)


def _choice(
    data: dict, key: str, choices: tuple[str, ...], where: str, default: str | None = None
) -> str:
    value = data.get(key, default)
    if value not in choices:
        raise GraderError(f"{where}.{key} must be one of {', '.join(choices)} (got {value!r})")
    return value


def _list_of_str(data: dict, key: str, where: str, default: list[str] | None = None) -> list[str]:
    value = data.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GraderError(f"{where}.{key} must be a list of strings")
    return value
