"""The sandbox's wire format: what a line costs the grader is bounded before it is decoded.

Student code can write to the answer channel, so every line is suspect: its number is read from
its first bytes, its length is capped by the kind of request it answers, and its JSON is measured
(values, depth) before ``json.loads`` builds anything.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from grader.run.inside import runtime, wire


def test_a_line_carries_its_number_and_round_trips() -> None:
    line = wire.frame(12, {"ok": True, "value": np.arange(3.0), "errors": ['a "[[[{," b']})
    assert line.startswith(b"12 {") and line.endswith(b"\n")
    number, message = wire.unframe(line[:-1], limit=1000)
    assert number == 12
    assert message["errors"] == ['a "[[[{," b']
    np.testing.assert_array_equal(message["value"], np.arange(3.0))


@pytest.mark.parametrize("head, number", [
    (b"7 {", 7), (b"0 {", 0), (b"12345678901234567890 {", 12345678901234567890),
    (b'{"ok":true', None), (b"07 {", None), (b"-1 {", None), (b" 7 {", None),
    (b"123456789012345678901 {", None), (b"7{", None),
])
def test_the_number_is_read_from_the_first_bytes_alone(head: bytes, number: int | None) -> None:
    assert wire.number_of(head + b"[]," * 1000) == number


@pytest.mark.parametrize("body, words", [
    (b'{"v":[' + b"[]," * 3_000_000 + b"[]]}", "values"),  # 9 MB, 3 million lists
    (b"[" * 100_000 + b"]" * 100_000, "nested"),
    (b"[1," * 65 + b"1" + b"]" * 65, "nested"),
    (b'{"v":[' + b'"",' * 3_000_000 + b'""]}', "values"),
    (b'{"v":[' + b"1," * 3_000_000 + b"1]}", "values"),
])
def test_wide_or_deep_json_is_refused_before_it_is_decoded(body: bytes, words: str) -> None:
    line = b"3 " + body
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(wire.WireError, match=words):
            wire.unframe(line, limit=len(line))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2.0
    # (decoding the 9 MB of lists would take 366 MB)
    assert peak < 2 * len(line) + (4 << 20), f"peak {peak >> 20} MB for {len(line) >> 20} MB"


def test_brackets_and_quotes_inside_strings_are_text() -> None:
    text = "[" * 5000 + '"\\' + ",{" * 3000
    number, message = wire.unframe(wire.frame(1, {"errors": [text] * 3})[:-1])
    assert message["errors"] == [text] * 3


def test_a_line_of_escaped_quotes_is_measured_in_linear_time() -> None:
    lines = (b'{"a":[' + b'"\\' * 4_000_000, b"[" + b'"a' * 4_000_000, b"[" + b',"\\"' * 600_000)
    for body in lines:
        started = time.perf_counter()
        try:
            wire.check_structure(body)
        except wire.WireError:
            pass
        assert time.perf_counter() - started < 2.0


def test_a_line_longer_than_its_limit_is_refused() -> None:
    line = wire.frame(1, {"value": "x" * 5000})[:-1]
    with pytest.raises(wire.WireError, match="more than the 1000 allowed"):
        wire.unframe(line, limit=1000)


def test_answers_are_sized_by_their_request() -> None:
    assert wire.reply_limit("exec", 10 << 20) == wire.REPLY_BYTES["exec"] < 1 << 20
    assert wire.reply_limit("call", 1 << 20) == wire.REPLY_BYTES["call"] + (2 << 20)
    assert wire.reply_limit("call", 0) < 64 << 20
    assert wire.reply_limit("no such op", 0) == wire.REPLY_BYTES["exec"]
    labels = wire.frame(5, {"ok": True, "value": np.zeros((10_000, 10))})  # predict's scores
    assert len(labels) < wire.reply_limit("call", 200)


def test_the_runtime_sends_a_short_error_instead_of_an_answer_the_grader_would_refuse() -> None:
    big = runtime._encode({"ok": True, "value": np.zeros(100_000)}, 4, wire.REPLY_BYTES["exec"])
    deep: list = []
    for _ in range(200):
        deep = [deep]
    nested = runtime._encode({"ok": True, "value": deep}, 5, 1 << 20)
    for line, number in ((big, 4), (nested, 5)):
        got, message = wire.unframe(line[:-1], limit=wire.REPLY_BYTES["exec"])
        assert got == number
        assert message["kind"] == "unsendable" and not message["ok"], message
    assert "bytes long" in wire.unframe(big[:-1])[1]["error"]
