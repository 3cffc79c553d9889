"""The one foundation for the instructor's files: a table of known keys, parsed strictly.

A rubric (``grader.checks.rubric``) and the course file (``grader.course.coursefile``) are both
TOML read against a schema of ``Key`` values: every key is known, so a typo is an error with a
"did you mean", never a silently ignored key; every message names the file, the place and the
key (``backprop.toml: test 'relu: output': points must be a number ≥ 0``); and every problem
of a file is reported at once, one line each (``Problems``, raised as ``ProblemsError``). The
written reference of each format (``docs/rubric.md``, ``docs/course.md``) is generated from the
same keys (``doc_table``), so it cannot drift from what the parser accepts.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from grader.core.errors import GraderError

REQUIRED = "required"  # a key's default, in the docs and to the parser: it must be given

Parser = Callable[[Any, str], Any]


class Problems:
    """Every problem found, one line each, raised together as one GraderError."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)

    def parse(self, parser: Parser, value: Any, where: str) -> Any:
        """``parser(value, where)``, or None with the problem recorded (every problem, when a
        parser of a nested table raises ``ProblemsError``)."""
        try:
            return parser(value, where)
        except ProblemsError as exc:
            self.lines.extend(exc.lines)
            return None
        except GraderError as exc:
            self.add(str(exc))
            return None

    def raise_any(self) -> None:
        if self.lines:
            raise ProblemsError(self.lines)


class ProblemsError(GraderError):
    """Several instructor mistakes at once: one line each (``lines``), so that ``validate`` can
    gather those of many rubrics into one report."""

    def __init__(self, lines: list[str]):
        self.lines = list(lines)
        super().__init__(self.lines)

    def __str__(self) -> str:
        if len(self.lines) == 1:
            return self.lines[0]
        return f"{len(self.lines)} problems:\n  " + "\n  ".join(self.lines)


def did_you_mean(word: str, known: Iterable[str], shown: Callable[[str], str] = repr) -> str:
    """`` (did you mean 'points'?)``, or nothing when no known word is close."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {shown(close[0])}?)" if close else ""


# --- value parsers: (value, where) -> value, or GraderError naming ``where`` ------------------


def string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise GraderError(f"{where} must be a non-empty string (got {value!r})")
    return value


def text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise GraderError(f"{where} must be a string (got {value!r})")
    return value


def strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise GraderError(f"{where} must be a list of strings (got {value!r})")
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise GraderError(f"{where} names {', '.join(repeated)} more than once")
    return tuple(value)


def number(low: float | None = None, high: float | None = None, *, above: bool = False,
           integer: bool = False) -> Parser:
    """A number (an integer when ``integer``) in [low, high], or (low, high] with ``above``."""
    noun = "an integer" if integer else "a number"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if above else '≥'} {low:g}")
    if high is not None:
        bounds.append(f"≤ {high:g}")
    wanted = f"{noun} {' and '.join(bounds)}".strip()

    def parse(value: Any, where: str) -> float | int:
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        ok = ok and not isinstance(value, bool)
        if ok and low is not None:
            ok = value > low if above else value >= low
        if ok and high is not None:
            ok = value <= high
        if not ok:
            raise GraderError(f"{where} must be {wanted} (got {value!r})")
        return int(value) if integer else float(value)

    return parse


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise GraderError(f"{where} must be true or false (got {value!r})")
    return value


def one_of(choices: tuple[str, ...]) -> Parser:
    def parse(value: Any, where: str) -> str:
        if value not in choices:
            hint = did_you_mean(value, choices) if isinstance(value, str) else ""
            raise GraderError(
                f"{where} must be one of {', '.join(choices)} (got {value!r}){hint}")
        return str(value)

    return parse


def anything(value: Any, where: str) -> Any:  # noqa: ARG001 - checked where it is used
    return value


# --- tables ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One key of a table: its type and default as the docs show them, its meaning, and its
    parser."""

    name: str
    type: str
    default: Any
    meaning: str
    parse: Parser = anything


def parse_table(raw: Mapping[str, Any], keys: Iterable[Key], where: str,
                problems: Problems, *, dotted: bool = False,
                elsewhere: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every key of a table parsed (defaults filled in), unknown and missing keys reported.

    ``dotted``: a key is named by its path, as TOML writes it (``late.per_day must be…``,
    where a rubric says ``[assignment]: seed must be…``), and ``where`` is empty at the top
    level of a file. ``elsewhere``: the keys of the file's other tables, each with the table
    it belongs in, so that a key written in the wrong table says where it goes."""
    known = {k.name: k for k in keys}
    for name in raw:
        if name not in known:
            hint = did_you_mean(name, known) or misplaced(name, elsewhere or {})
            problems.add(f"{where}: unknown key {name!r}{hint}" if where or not dotted
                         else f"unknown key {name!r}{hint}")
    values = {}
    for key in known.values():
        spot = key_path(where, key.name) if dotted else f"{where}: {key.name}"
        if key.name in raw:
            values[key.name] = problems.parse(key.parse, raw[key.name], spot)
        elif key.default == REQUIRED:
            problems.add(f"{spot} is required")
        else:
            values[key.name] = key.default
    return values


def misplaced(name: str, elsewhere: Mapping[str, str]) -> str:
    """`` (it belongs in [late])`` for a key of another table, `` (did you mean 'deadline', a
    key of [assignments.NAME]?)`` for one close to it, or nothing."""
    if name in elsewhere:
        return f" (it belongs in {elsewhere[name]})"
    return did_you_mean(name, elsewhere, lambda k: f"{k!r}, a key of {elsewhere[k]}")


def key_path(where: str, name: str) -> str:
    """``late`` and ``per_day`` -> ``late.per_day``; at the top level (``where`` empty), the
    key alone."""
    return f"{where}.{name}" if where else name


# --- the written reference -------------------------------------------------------------------


def doc_table(title: str, keys: Iterable[Key], intro: str) -> list[str]:
    """A Markdown section: the title, an introduction and one row per key."""
    rows = [f"## {title}", "", intro, "", "| key | type | default | meaning |",
            "|---|---|---|---|"]
    for key in keys:
        cells = (f"`{key.name}`", key.type, doc_default(key.default), key.meaning)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return [*rows, ""]


def doc_default(value: Any) -> str:
    """A default as the docs show it: code for values, italics for *required* and *—*."""
    if isinstance(value, str) and (value.startswith(REQUIRED) or value in ("—",)):
        return f"*{value}*"
    if isinstance(value, str) and not value:
        return '`""`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (list, tuple)):
        return "`[" + ", ".join(f'"{v}"' for v in value) + "]`"
    if isinstance(value, (int, float)):
        return f"`{value:g}`"
    if isinstance(value, dict) and not value:
        return "`{}`"
    text = str(value)
    return text if " " in text or "…" in text else f"`{text}`"
