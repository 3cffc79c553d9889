"""Pictures are remembered across runs (``grader.render.figures``), so a re-scored page is rewritten
without drawing again; the cache can only ever save time, never change a page."""

from __future__ import annotations

import numpy as np
import pytest

from grader.render import figures


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def drawing(uri: str = figures.PNG + "AAAA"):
    calls = []

    def draw() -> str:
        calls.append(1)
        return uri

    return draw, calls


def test_the_same_data_is_drawn_once() -> None:
    data = np.ma.masked_invalid(np.array([[1.0, np.nan], [0.5, 2.0]]))
    draw, calls = drawing()
    first = figures.remembered((data, "absolute error"), draw)
    again = figures.remembered((data.copy(), "absolute error"), draw)
    assert first == again == figures.PNG + "AAAA" and len(calls) == 1


@pytest.mark.parametrize("other", [
    (np.ma.masked_invalid(np.array([[1.0, np.nan], [0.5, 2.5]])), "absolute error"),
    (np.ma.masked_invalid(np.array([[1.0, 7.0], [0.5, 2.0]])), "absolute error"),
    (np.ma.masked_invalid(np.array([[1.0, np.nan], [0.5, 2.0]])), "absolute error (× 1e+300)"),
    (np.ma.masked_invalid(np.array([[1.0, np.nan, 0.5, 2.0]])), "absolute error"),
])
def test_any_difference_draws_again(other) -> None:
    data = np.ma.masked_invalid(np.array([[1.0, np.nan], [0.5, 2.0]]))
    draw, calls = drawing()
    figures.remembered((data, "absolute error"), draw)
    figures.remembered(other, draw)
    assert len(calls) == 2


def test_a_damaged_entry_is_drawn_again(tmp_path) -> None:
    data = np.arange(4.0).reshape(2, 2)
    draw, calls = drawing()
    figures.remembered((data,), draw)
    [entry] = (tmp_path / "cache").rglob("*.txt")
    entry.write_text("javascript:alert(1)")
    assert figures.remembered((data,), draw) == figures.PNG + "AAAA" and len(calls) == 2


def test_an_unwritable_cache_only_costs_the_drawing(tmp_path, monkeypatch) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # not a folder
    draw, calls = drawing()
    data = np.ones((2, 2))
    assert figures.remembered((data,), draw) == figures.remembered((data,), draw)
    assert len(calls) == 2
