"""The documentation's walk-throughs as data, so that tests run what the text says.

The course walk-through (from the LMS's download to the upload) and its course file live in
``docs/instructors.md`` (``GUIDE``); the README keeps the two commands and points there.
``python -m tests.readme "A course"`` prints the shell blocks of the guide's section whose
heading starts with that title, in order, as ``tests/test_readme.py`` runs them.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "instructors.md"


def section(title: str, path: Path = GUIDE) -> str:
    """The ``## `` section of ``path`` whose heading starts with ``title``, up to the next one."""
    text = path.read_text(encoding="utf-8")
    found = re.search(rf"^## {re.escape(title)}.*?(?=^## |\Z)", text, re.M | re.S)
    if found is None:
        raise LookupError(f"{path.relative_to(ROOT)} has no section '## {title}...'")
    return found[0]


def blocks(text: str, language: str = "sh") -> list[str]:
    """The fenced ``language`` blocks of ``text`` in order, each dedented (a block inside a
    list item is indented with it)."""
    fences = re.finditer(rf"^( *)```{re.escape(language)}\n(.*?)^\1```", text, re.M | re.S)
    return [textwrap.dedent(found[2]) for found in fences]


def after(marker: str, text: str) -> str:
    """``text`` from ``marker`` on (a paragraph or a step, e.g. ``**Upload.**``)."""
    if marker not in text:
        raise LookupError(f"no {marker!r} here")
    return text[text.index(marker):]


def main(argv: list[str]) -> int:
    for block in blocks(section(argv[0] if argv else "A course")):
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
