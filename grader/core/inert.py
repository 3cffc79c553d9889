"""Text from a submission, made inert before it reaches a terminal.

A student's exception message, file name or printed output can hold escape sequences (which
set a terminal's title, clear its screen, hide text), carriage returns and Unicode controls
that reorder a line (bidi overrides): shown raw, they could hide the grader's real lines and
print fake ones. Here every such character becomes a visible escape (``\\x1b``, ``\\u202e``),
and a newline in student text never starts a line of its own that could pass for the
grader's. Pages need none of this: their templates escape everything.

Standard library only: the students' exported checker (``grader.distribute.checker``) imports it.
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata
from typing import TextIO

# Categories a terminal may act on instead of showing: controls (C0, DEL, C1), format
# characters (bidi embeddings, overrides and isolates, zero-width joiners, tags...),
# lone surrogates (which no UTF-8 stream can even write), unassigned code points (tomorrow's
# format characters) and the line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
_SUSPECT = re.compile(r"[^\x20-\x7e]")  # only these characters are ever looked up
CONTINUATION = "| "  # starts each line a student's own newline began
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(character: str) -> str:
    if character in _NAMED:
        return _NAMED[character]
    code = ord(character)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _visible(match: re.Match[str]) -> str:
    character = match.group()
    if character == "\t":
        return " "  # (a tab's width depends on its column: one space keeps layouts exact)
    if unicodedata.category(character) in _UNSAFE_CATEGORIES:
        return _escape(character)
    return character


def line(text: str) -> str:
    """``text`` as one terminal line: every control, format or separator character (newlines
    included) shown as an escape, a tab as a space."""
    return _SUSPECT.sub(_visible, text.replace("\r\n", "\n"))


def block(text: str, indent: str) -> str:
    """``text`` as lines for a terminal: each of its lines as ``line`` makes it, those after
    the first starting with ``indent`` and ``CONTINUATION``, so that a student's newline
    never begins a line that could pass for one of the grader's."""
    lines = text.replace("\r\n", "\n").split("\n")
    return f"\n{indent}{CONTINUATION}".join(line(part) for part in lines)


def wrap(text: str, width: int | None, indent: str) -> str:
    """``text`` (from ``line`` or ``block``) broken into lines of at most ``width`` columns,
    those it adds starting with ``indent``; unchanged for ``width`` None (not a terminal).

    Without this, a terminal wraps a long line itself, and a student who pads a message to
    the width of a common terminal starts a line of their own at its left edge (where the
    grader's test lines are). Every non-ASCII character is counted as two columns, as wide
    characters are: a line may end early, never late."""
    if width is None:
        return text
    room = max(width - 1, len(indent) + 20)  # (the last column: some terminals wrap there)
    return "\n".join(_fold(part, room, indent) for part in text.split("\n"))


def _fold(text: str, room: int, indent: str) -> str:
    """One line in pieces of at most ``room`` columns, broken at a space where one is near."""
    pieces = []
    while True:
        cut = _cut(text, room)
        if cut == len(text):
            pieces.append(text)
            return "\n".join(pieces)
        start = len(text) - len(text.lstrip(" ")) + 1  # (never at the line's own indent)
        space = text.rfind(" ", start, cut + 1)
        if space >= start and space > cut - 30:
            cut = space
        pieces.append(text[:cut].rstrip(" "))
        text = indent + text[cut:].lstrip(" ")


def _cut(text: str, room: int) -> int:
    """How many characters of ``text`` fit in ``room`` columns."""
    used = 0
    for index, character in enumerate(text):
        used += 1 if character < "\x7f" else 2
        if used > room:
            return index
    return len(text)


def terminal_width(stream: TextIO | None = None) -> int | None:
    """The columns of the terminal ``stream`` (default stdout) writes to, None when it writes
    to a file or a pipe (where nothing wraps lines)."""
    stream = stream or sys.stdout
    try:
        return os.get_terminal_size(stream.fileno()).columns if stream.isatty() else None
    except (AttributeError, OSError, ValueError):
        return None


def json_text(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with what ``line`` would escape
    written as JSON escapes instead: the same document, safe on a terminal. (Outside its
    strings JSON text is ASCII and its whitespace, so every such character is inside a
    string.)"""
    return _SUSPECT.sub(_json_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    character = match.group()
    if character in "\t\n" or unicodedata.category(character) not in _UNSAFE_CATEGORIES:
        return character
    code = ord(character)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON writes characters beyond the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
