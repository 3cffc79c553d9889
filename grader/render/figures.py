"""Pictures of the feedback pages, remembered across runs.

Drawing a heatmap with matplotlib takes about a tenth of a second, most of what rewriting a
page costs; a page re-scored under a changed rubric (``grader.grading.rescore``) shows the very same
pictures, so they are kept in the user's cache folder, keyed by everything they are drawn from:
the data, the labels, the drawing code (the source of ``grader/render/report.py``) and matplotlib's
version. An entry that cannot be read or written only costs the drawing.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from grader.core import paths
from grader.core.files import write_atomic

FOLDER = "figures"
PNG = "data:image/png;base64,"  # all a page embeds; anything else in the folder is not ours


def remembered(parts: tuple[Any, ...], draw: Callable[[], str | None]) -> str | None:
    """The picture drawn from ``parts`` (arrays, masked arrays, strings, numbers): from the
    cache when it was drawn before, else ``draw()``, kept for next time."""
    path = paths.cache_dir(FOLDER) / f"{_key(parts)}.txt"
    try:
        uri = path.read_text(encoding="ascii")
        if uri.startswith(PNG):
            return uri
    except (OSError, ValueError):
        pass
    drawn = draw()
    if drawn is not None:
        try:
            write_atomic(path, drawn)
        except OSError:
            pass  # a cache that cannot be written only costs time
    return drawn


def _key(parts: tuple[Any, ...]) -> str:
    digest = hashlib.sha256(_drawing_code().encode())
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(f"{part.dtype.str}{part.shape}".encode())
            digest.update(np.ascontiguousarray(np.ma.getdata(part)).tobytes())
            digest.update(np.ascontiguousarray(np.ma.getmaskarray(part)).tobytes())
        else:
            digest.update(repr(part).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:40]


def warm_up() -> None:
    """Work out the cache key's fixed part now (matplotlib's version is read from its
    installed metadata: 12 ms), in a batch's process before its workers fork."""
    _drawing_code()
    codecs.lookup("ascii")  # what a kept picture is read as


@functools.cache
def _drawing_code() -> str:
    from importlib.metadata import version

    report = Path(__file__).with_name("report.py").read_bytes()
    return hashlib.sha256(report).hexdigest() + version("matplotlib")
