"""The course server's record: durable content-addressed uploads, a queue in the database
that grades each acknowledged upload exactly once, sessions that expire, password hashes, and
the course file in and out. SQLite here; tests/test_serve_postgres.py runs the same on
PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from grader.core.errors import GraderError
from grader.course.roster import Student
from grader.serve import auth
from grader.serve import course as course_state
from grader.serve.db import Database, Location
from grader.serve.store import MAX_TRIES, Store
from tests.servekit import database_url

STUDENTS = [Student("s1", "Ada Lovelace", section="A", moodle_id="501"),
            Student("s2", "Alan Turing", section="B", email="alan@example.edu")]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """SQLite by default; GRADER_TEST_DATABASE=postgresql://… runs these on PostgreSQL."""
    made = Store(Database(database_url(tmp_path)))
    made.set_roster(STUDENTS, "test")
    return made


def test_an_upload_is_stored_once_per_content_and_every_attempt_is_kept(store: Store) -> None:
    first = store.put_upload("s1", "convolution", "a.ipynb", b'{"cells": []}')
    second = store.put_upload("s1", "convolution", "a.ipynb", b'{"cells": []}')
    assert first.public_id != second.public_id
    assert first.sha256 == second.sha256 == hashlib.sha256(b'{"cells": []}').hexdigest()
    assert store.blob(first.sha256) == b'{"cells": []}'
    blobs = store.db.one("SELECT COUNT(*) AS n FROM blobs")["n"]
    assert blobs == 1
    assert [a.id for a in store.attempts("s1", "convolution")] == [second.id, first.id]


def test_an_acknowledged_upload_survives_a_new_connection(tmp_path: Path) -> None:
    if os.environ.get("GRADER_TEST_DATABASE"):
        pytest.skip("SQLite's file")
    path = tmp_path / "course.db"
    Store(Database(str(path))).put_upload("s1", "convolution", "a.ipynb", b"x")
    again = Store(Database(f"sqlite:///{path}"))
    assert [a.filename for a in again.attempts("s1")] == ["a.ipynb"]
    assert again.db.one("PRAGMA journal_mode")["journal_mode"] == "wal"


def test_the_queue_hands_each_attempt_to_one_worker_and_keeps_one_result(store: Store) -> None:
    attempt = store.put_upload("s1", "convolution", "a.ipynb", b"x")
    claimed = store.claim("w1", lease=30)
    assert claimed is not None and claimed.attempt.id == attempt.id and claimed.data == b"x"
    assert store.claim("w2", lease=30) is None  # held by w1
    assert store.finish(attempt.id, "w1", "{}", 1.0, 2.0)
    assert not store.finish(attempt.id, "w1", "{}", 1.0, 2.0)  # once
    rows = store.db.all("SELECT * FROM results WHERE submission = ?", attempt.id)
    assert len(rows) == 1
    assert store.attempt(attempt.public_id).state == "done"


def test_a_lease_that_ran_out_goes_to_the_next_worker_and_the_first_result_is_dropped(
        store: Store) -> None:
    attempt = store.put_upload("s1", "convolution", "a.ipynb", b"x")
    assert store.claim("dead", lease=30) is not None
    later = time.time() + 60
    taken = store.claim("w2", lease=30, now=later)
    assert taken is not None and taken.attempt.id == attempt.id and taken.attempt.tries == 2
    assert not store.finish(attempt.id, "dead", "{}", 0.0, 1.0)
    assert store.finish(attempt.id, "w2", "{}", 1.0, 1.0)
    assert store.db.one("SELECT COUNT(*) AS n FROM results")["n"] == 1


def test_a_notebook_the_grader_keeps_stopping_on_is_set_aside(store: Store) -> None:
    attempt = store.put_upload("s1", "convolution", "a.ipynb", b"x")
    now = time.time()
    for number in range(MAX_TRIES):
        assert store.claim(f"w{number}", lease=1, now=now + 10 * number) is not None
    assert store.claim("last", lease=1, now=now + 10 * MAX_TRIES) is None
    set_aside = store.attempt(attempt.public_id)
    assert set_aside.state == "failed" and "stopped" in set_aside.failure


def test_a_grader_failure_queues_the_attempt_again(store: Store) -> None:
    attempt = store.put_upload("s1", "convolution", "a.ipynb", b"x")
    store.claim("w1", lease=30)
    store.give_back(attempt.id, "w1", "OSError: disk", final=False)
    assert store.attempt(attempt.public_id).state == "queued"
    assert store.claim("w2", lease=30).attempt.id == attempt.id


def test_passwords_are_kept_as_scrypt_hashes() -> None:
    hashed = auth.hash_password("correct horse battery")
    assert hashed.startswith("scrypt$16384$8$1$") and "correct" not in hashed
    assert auth.check_password("correct horse battery", hashed)
    assert not auth.check_password("correct horse batterY", hashed)
    assert not auth.check_password("anything", "")
    assert not auth.check_password("anything", "plain$text")
    assert auth.hash_password("same") != auth.hash_password("same")  # salted


def test_sessions_expire_when_idle_and_at_their_age_limit(store: Store) -> None:
    idle = auth.Sessions(store, idle_seconds=0.2, max_seconds=60)
    cookie, _ = idle.start("student", "s1")
    assert idle.find(cookie).who == "s1"
    time.sleep(0.3)
    assert idle.find(cookie) is None
    assert store.session(auth.digest(cookie)) is None  # deleted, not only refused
    aged = auth.Sessions(store, idle_seconds=60, max_seconds=0.2)
    cookie, _ = aged.start("student", "s1")
    time.sleep(0.3)
    assert aged.find(cookie) is None
    assert idle.find("not a session") is None


def test_student_tokens_come_from_the_key_and_a_new_one_replaces_the_old(store: Store,
                                                                         tmp_path: Path) -> None:
    key = auth.load_secret(tmp_path / "secret.key")
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    tokens = auth.refresh_tokens(store, key)
    assert store.student_by_token(auth.digest(tokens["s1"])) == "s1"
    assert auth.refresh_tokens(store, key) == tokens  # the same when downloaded again
    store.new_token_generation("s1", "test")
    fresh = auth.refresh_tokens(store, key)
    assert fresh["s1"] != tokens["s1"] and fresh["s2"] == tokens["s2"]
    assert store.student_by_token(auth.digest(tokens["s1"])) is None


COURSE = """
timezone = "Europe/Berlin"
[late]
per_day = 0.1
zero_after_days = 5
grace_minutes = 10
[assignments.convolution]
deadline = 2026-11-20T23:59:00
canvas_column = "Conv (1)"
extensions = { s1 = 2 }
submitted = { "alan@example.edu" = 2026-11-21T09:30:00 }
[[adjustments]]
student = "s1"
assignment = "convolution"
test = "conv2d_forward: lecture example"
points = 1.5
comment = "Your \\"dW\\" is right"
by = "Dr. Lee"
"""


def test_a_course_file_imports_and_exports_back_without_a_difference(store: Store) -> None:
    tests = {"convolution": {"conv2d_forward: lecture example"}}
    store.set_assignment_settings("convolution", {"attempts_per_day": 3}, "test")
    course_state.import_file(store, COURSE, assignments=("convolution",), tests=tests,
                             author="Dr. Lee")
    loaded = course_state.load(store, ("convolution",))
    rules = loaded.rules("convolution")
    assert rules.deadline.isoformat() == "2026-11-20T23:59:00+01:00"
    assert rules.extensions["s1"].isoformat() == "2026-11-22T23:59:00+01:00"
    assert rules.submitted == {"s2": rules.submitted["s2"]}  # the email resolved to the id
    assert rules.late.per_day == 0.1 and rules.late.zero_after_days == 5
    assert loaded.adjustments[0].comment == 'Your "dW" is right'
    assert course_state.settings(store, "convolution")["attempts_per_day"] == 3  # kept
    exported = course_state.export_file(store, ("convolution",))
    course_state.import_file(store, exported, assignments=("convolution",), tests=tests,
                             author="again")
    assert course_state.load(store, ("convolution",)).rules("convolution") == rules
    assert course_state.export_file(store, ("convolution",)).split("\n", 1)[1] == \
        exported.split("\n", 1)[1]
    actions = [e["action"] for e in store.audit_log()]
    assert actions.count("course file imported") == 2


def test_a_bad_course_file_changes_nothing(store: Store) -> None:
    store.add_adjustment("convolution", "s1", None, 1.0, "kept", "Dr. Lee")
    with pytest.raises(GraderError, match="nobody"):
        course_state.import_file(store, COURSE.replace('student = "s1"', 'student = "s9"'),
                                 assignments=("convolution",), tests={}, author="x")
    with pytest.raises(GraderError, match="has no test"):
        course_state.import_file(store, COURSE, assignments=("convolution",),
                                 tests={"convolution": {"other"}}, author="x")
    assert [a["comment"] for a in store.adjustments()] == ["kept"]


def test_what_a_student_sees_before_the_deadline_and_at_release() -> None:
    from datetime import UTC, datetime

    deadline = datetime(2030, 1, 1, tzinfo=UTC)
    before = course_state.shown({"feedback": "public"}, deadline, now=deadline.timestamp() - 1)
    after = course_state.shown({"feedback": "public"}, deadline, now=deadline.timestamp() + 1)
    assert (before.hidden, after.hidden, after.final) == (False, True, False)
    assert not course_state.shown({"feedback": "release"}, deadline,
                                  now=deadline.timestamp() + 1).hidden
    assert not course_state.shown({"feedback": "none"}, None).anything
    released = course_state.shown({"feedback": "none", "released": "x"}, None)
    assert released.hidden and released.final


def test_a_database_location_never_prints_its_password() -> None:
    where = Location.parse("postgresql://grader:s3cret@db.example:5432/course")
    assert where.dialect == "postgres" and "s3cret" not in where.shown()
    assert Location.parse("sqlite:////tmp/x.db").target == "/tmp/x.db"
    with pytest.raises(GraderError):
        Location.parse("mysql://x")
