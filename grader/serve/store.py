"""The course's state in the database: uploads, the grading queue, results, the course's rules.

Everything the server knows lives here, so a restart (or a second server on the same
database) picks up where the first stopped:

- **Uploads** are content-addressed blobs (SHA-256), written with their attempt in one
  transaction; the student's upload is acknowledged only once that transaction committed.
  Every attempt is kept.
- **The queue** is the ``submissions`` table: ``queued`` → ``running`` (a worker holds a lease
  it renews while it grades) → ``done`` (with exactly one row in ``results``) or ``failed``
  (the grader stopped on it ``MAX_TRIES`` times). A worker that dies lets its lease run out
  and the attempt is taken again; a result is stored only by the worker that still holds the
  lease, in the same transaction that marks the attempt done, so none is graded twice into
  the record.
- **The course** (deadlines, late rule, extensions, submission times, adjustments) is rows,
  each change written to ``audit`` with its author and time (``grader.serve.course`` turns it
  into the course file's ``Course``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from grader.course.roster import Student
from grader.serve.db import Database, Transaction

MAX_TRIES = 5  # a notebook the grader stopped on this often is set aside for the instructor
STUDENT_FIELDS = ("id", "name", "email", "section", "sis_id", "login", "canvas_id", "moodle_id")


@dataclass(frozen=True)
class Attempt:
    """One upload of one student for one assignment, and where its grading is."""

    id: int
    public_id: str
    student: str
    assignment: str
    sha256: str
    filename: str
    received: float
    state: str  # queued, running, done, failed
    tries: int = 0
    finished: float | None = None
    failure: str | None = None
    score: float | None = None
    max_score: float | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Attempt:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__ if k in row})


@dataclass(frozen=True)
class Claimed:
    """An attempt a worker took from the queue, with the bytes to grade."""

    attempt: Attempt
    data: bytes


class Store:
    def __init__(self, database: Database):
        self.db = database

    # ----------------------------------------------------------------------- uploads
    def put_upload(self, student: str, assignment: str, filename: str, data: bytes,
                   *, now: float | None = None) -> Attempt:
        """Store the bytes (once per content) and a new queued attempt; committed on return."""
        digest = hashlib.sha256(data).hexdigest()
        public_id = secrets.token_urlsafe(12)
        received = time.time() if now is None else now
        with self.db.tx() as tx:
            tx.run("INSERT INTO blobs (sha256, size, data) VALUES (?, ?, ?) "
                   "ON CONFLICT (sha256) DO NOTHING", digest, len(data), data)
            tx.run("INSERT INTO submissions (public_id, student, assignment, sha256, filename, "
                   "received) VALUES (?, ?, ?, ?, ?, ?)", public_id, student, assignment,
                   digest, filename, received)
            row = tx.one("SELECT * FROM submissions WHERE public_id = ?", public_id)
        assert row is not None  # (inserted just above, in the same transaction)
        return Attempt.of(row)

    def blob(self, sha256: str) -> bytes | None:
        row = self.db.one("SELECT data FROM blobs WHERE sha256 = ?", sha256)
        return bytes(row["data"]) if row else None

    # ----------------------------------------------------------------------- the queue
    def claim(self, worker: str, lease: float, *, now: float | None = None) -> Claimed | None:
        """The oldest attempt waiting (or whose worker's lease ran out), now this worker's."""
        now = time.time() if now is None else now
        lock = " FOR UPDATE SKIP LOCKED" if self.db.dialect == "postgres" else ""
        while True:
            with self.db.tx() as tx:
                # (a queued attempt's lease, when set, is the time before which it waits)
                row = tx.one("SELECT id, tries FROM submissions WHERE (state = 'queued' AND "
                             "(lease IS NULL OR lease < ?)) OR (state = 'running' AND "
                             "lease < ?) ORDER BY id LIMIT 1" + lock, now, now)
                if row is None:
                    return None
                if row["tries"] >= MAX_TRIES:
                    tx.run("UPDATE submissions SET state = 'failed', worker = NULL, "
                           "lease = NULL, finished = ?, failure = ? WHERE id = ?", now,
                           f"the grader stopped {row['tries']} times while grading this "
                           f"notebook", row["id"])
                    continue
                tx.run("UPDATE submissions SET state = 'running', worker = ?, lease = ?, "
                       "tries = tries + 1, started = ? WHERE id = ?", worker, now + lease, now,
                       row["id"])
                found = tx.one("SELECT s.*, b.data FROM submissions s JOIN blobs b "
                               "ON b.sha256 = s.sha256 WHERE s.id = ?", row["id"])
            assert found is not None  # (claimed just above, in the same transaction)
            return Claimed(Attempt.of(found), bytes(found["data"]))

    def renew(self, attempt_id: int, worker: str, lease: float) -> bool:
        """Keep holding an attempt while grading it; False: the lease was lost."""
        with self.db.tx() as tx:
            return tx.run("UPDATE submissions SET lease = ? WHERE id = ? AND worker = ? AND "
                          "state = 'running'", time.time() + lease, attempt_id, worker) == 1

    def finish(self, attempt_id: int, worker: str, body: str, score: float,
               max_score: float) -> bool:
        """Store the result, once: only while this worker holds the attempt. False: another
        worker took it (this one's lease had run out) and this result is dropped."""
        now = time.time()
        with self.db.tx() as tx:
            held = tx.run("UPDATE submissions SET state = 'done', finished = ?, lease = NULL "
                          "WHERE id = ? AND worker = ? AND state = 'running'", now, attempt_id,
                          worker)
            if held != 1:
                return False
            tx.run("INSERT INTO results (submission, body, score, max_score, graded, worker) "
                   "VALUES (?, ?, ?, ?, ?, ?)", attempt_id, body, score, max_score, now, worker)
        return True

    def give_back(self, attempt_id: int, worker: str, failure: str, *, final: bool) -> None:
        """The grader (not the student) failed: queue it again, or set it aside."""
        state = "failed" if final else "queued"
        with self.db.tx() as tx:
            tx.run("UPDATE submissions SET state = ?, worker = NULL, lease = NULL, "
                   "failure = ?, finished = ? WHERE id = ? AND worker = ?", state, failure,
                   time.time() if final else None, attempt_id, worker)

    def retry_later(self, attempt_id: int, worker: str, why: str, *, after: float) -> None:
        """Queue it again, for no worker to take before ``after`` seconds have passed (a
        timeout the busy machine may have caused: graded again once the load may be gone)."""
        with self.db.tx() as tx:
            tx.run("UPDATE submissions SET state = 'queued', worker = NULL, lease = ?, "
                   "failure = ? WHERE id = ? AND worker = ?", time.time() + after, why,
                   attempt_id, worker)

    def queue_counts(self) -> dict[str, int]:
        rows = self.db.all("SELECT state, COUNT(*) AS n FROM submissions GROUP BY state")
        return {r["state"]: int(r["n"]) for r in rows}

    # ----------------------------------------------------------------------- attempts
    ATTEMPT = ("SELECT s.id, s.public_id, s.student, s.assignment, s.sha256, s.filename, "
               "s.received, s.state, s.tries, s.finished, s.failure, r.score, r.max_score "
               "FROM submissions s LEFT JOIN results r ON r.submission = s.id ")

    def attempts(self, student: str, assignment: str | None = None) -> list[Attempt]:
        if assignment is None:
            rows = self.db.all(self.ATTEMPT + "WHERE s.student = ? ORDER BY s.id DESC", student)
        else:
            rows = self.db.all(self.ATTEMPT + "WHERE s.student = ? AND s.assignment = ? "
                               "ORDER BY s.id DESC", student, assignment)
        return [Attempt.of(r) for r in rows]

    def attempt(self, public_id: str) -> Attempt | None:
        row = self.db.one(self.ATTEMPT + "WHERE s.public_id = ?", public_id)
        return Attempt.of(row) if row else None

    def all_attempts(self, assignment: str | None = None) -> list[Attempt]:
        if assignment is None:
            return [Attempt.of(r) for r in self.db.all(self.ATTEMPT + "ORDER BY s.id")]
        return [Attempt.of(r) for r in self.db.all(self.ATTEMPT + "WHERE s.assignment = ? "
                                                   "ORDER BY s.id", assignment)]

    def result_body(self, attempt_id: int) -> str | None:
        row = self.db.one("SELECT body FROM results WHERE submission = ?", attempt_id)
        return row["body"] if row else None

    def latest(self, assignment: str) -> dict[str, Attempt]:
        """Each student's latest attempt at ``assignment`` (the one that counts)."""
        found: dict[str, Attempt] = {}
        for attempt in self.all_attempts(assignment):
            found[attempt.student] = attempt  # (ordered by id: the last wins)
        return found

    def results_of(self, assignment: str) -> list[tuple[Attempt, str]]:
        rows = self.db.all(self.ATTEMPT.replace("r.max_score ", "r.max_score, r.body ")
                           + "WHERE s.assignment = ? AND r.body IS NOT NULL ORDER BY s.id",
                           assignment)
        return [(Attempt.of(r), r["body"]) for r in rows]

    def replace_result(self, attempt_id: int, body: str, score: float, max_score: float,
                       author: str) -> None:
        """A re-scored result (rubric changed; nothing ran) in place of the stored one."""
        with self.db.tx() as tx:
            tx.run("UPDATE results SET body = ?, score = ?, max_score = ?, graded = ? "
                   "WHERE submission = ?", body, score, max_score, time.time(), attempt_id)

    def count_since(self, student: str, assignment: str, since: float) -> int:
        row = self.db.one("SELECT COUNT(*) AS n FROM submissions WHERE student = ? AND "
                          "assignment = ? AND received >= ?", student, assignment, since)
        return int(row["n"]) if row else 0

    def last_received(self, student: str, assignment: str) -> float | None:
        row = self.db.one("SELECT MAX(received) AS t FROM submissions WHERE student = ? AND "
                          "assignment = ?", student, assignment)
        return None if row is None or row["t"] is None else float(row["t"])

    # ----------------------------------------------------------------------- people
    def set_roster(self, students: Iterable[Student], author: str) -> int:
        """Add or update the roster's students (tokens kept); none is removed."""
        rows = [[getattr(s, f) for f in STUDENT_FIELDS] for s in students]
        updates = ", ".join(f"{f} = excluded.{f}" for f in STUDENT_FIELDS[1:])
        with self.db.tx() as tx:
            tx.many(f"INSERT INTO students ({', '.join(STUDENT_FIELDS)}) VALUES "
                    f"({', '.join('?' * len(STUDENT_FIELDS))}) ON CONFLICT (id) DO UPDATE SET "
                    f"{updates}", rows)
            _audit(tx, author, "roster", {"students": len(rows)})
        return len(rows)

    def students(self) -> list[Student]:
        rows = self.db.all(f"SELECT {', '.join(STUDENT_FIELDS)} FROM students ORDER BY id")
        return [Student(**r) for r in rows]

    def student(self, student_id: str) -> Student | None:
        row = self.db.one(f"SELECT {', '.join(STUDENT_FIELDS)} FROM students WHERE id = ?",
                          student_id)
        return Student(**row) if row else None

    def token_generations(self) -> dict[str, int]:
        rows = self.db.all("SELECT id, token_generation FROM students")
        return {r["id"]: int(r["token_generation"]) for r in rows}

    def set_token_digests(self, digests: dict[str, str]) -> None:
        with self.db.tx() as tx:
            tx.many("UPDATE students SET token_digest = ? WHERE id = ?",
                    [(d, s) for s, d in digests.items()])

    def new_token_generation(self, student: str, author: str) -> int:
        with self.db.tx() as tx:
            tx.run("UPDATE students SET token_generation = token_generation + 1 WHERE id = ?",
                   student)
            _audit(tx, author, "new token", {"student": student})
            row = tx.one("SELECT token_generation FROM students WHERE id = ?", student)
        return int(row["token_generation"]) if row else 0

    def student_by_token(self, digest: str) -> str | None:
        row = self.db.one("SELECT id FROM students WHERE token_digest = ?", digest)
        return row["id"] if row else None

    def instructor_password(self, name: str) -> str | None:
        row = self.db.one("SELECT password FROM instructors WHERE name = ?", name)
        return row["password"] if row else None

    def instructors(self) -> list[str]:
        return [r["name"] for r in self.db.all("SELECT name FROM instructors ORDER BY name")]

    def set_instructor(self, name: str, password_hash: str, author: str) -> None:
        with self.db.tx() as tx:
            tx.run("INSERT INTO instructors (name, password, created) VALUES (?, ?, ?) "
                   "ON CONFLICT (name) DO UPDATE SET password = excluded.password", name,
                   password_hash, time.time())
            _audit(tx, author, "instructor password", {"instructor": name})

    def add_signin_link(self, digest: str, instructor: str, expires: float) -> None:
        with self.db.tx() as tx:
            tx.run("INSERT INTO signin_links (digest, instructor, expires) VALUES (?, ?, ?)",
                   digest, instructor, expires)

    def use_signin_link(self, digest: str) -> str | None:
        """The instructor a one-time link signs in, once: the link is gone afterwards."""
        with self.db.tx() as tx:
            row = tx.one("SELECT instructor, expires FROM signin_links WHERE digest = ?", digest)
            tx.run("DELETE FROM signin_links WHERE digest = ?", digest)
        if row is None or row["expires"] < time.time():
            return None
        instructor: str = row["instructor"]
        return instructor

    # ----------------------------------------------------------------------- sessions
    def add_session(self, digest: str, role: str, who: str, csrf: str, expires: float) -> None:
        now = time.time()
        with self.db.tx() as tx:
            tx.run("DELETE FROM sessions WHERE expires < ?", now)
            tx.run("INSERT INTO sessions (digest, role, who, csrf, created, seen, expires) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", digest, role, who, csrf, now, now, expires)

    def session(self, digest: str) -> dict[str, Any] | None:
        return self.db.one("SELECT * FROM sessions WHERE digest = ?", digest)

    def touch_session(self, digest: str, expires: float) -> None:
        with self.db.tx() as tx:
            tx.run("UPDATE sessions SET seen = ?, expires = ? WHERE digest = ?", time.time(),
                   expires, digest)

    def drop_session(self, digest: str) -> None:
        with self.db.tx() as tx:
            tx.run("DELETE FROM sessions WHERE digest = ?", digest)

    # ----------------------------------------------------------------------- course state
    def setting(self, key: str) -> Any:
        row = self.db.one("SELECT value FROM settings WHERE key = ?", key)
        return json.loads(row["value"]) if row else None

    def set_setting(self, key: str, value: Any, author: str) -> None:
        with self.db.tx() as tx:
            _upsert(tx, "settings", "key", key, json.dumps(value))
            _audit(tx, author, "setting", {"key": key, "value": value})

    def assignment_settings(self, name: str) -> dict[str, Any] | None:
        row = self.db.one("SELECT settings FROM assignments WHERE name = ?", name)
        return json.loads(row["settings"]) if row else None

    def set_assignment_settings(self, name: str, settings: dict[str, Any], author: str,
                                action: str = "assignment settings") -> None:
        with self.db.tx() as tx:
            _upsert(tx, "assignments", "name", name, json.dumps(settings, sort_keys=True),
                    column="settings")
            _audit(tx, author, action, {"assignment": name, **settings})

    def extensions(self, assignment: str) -> dict[str, str]:
        rows = self.db.all("SELECT student, deadline FROM extensions WHERE assignment = ?",
                           assignment)
        return {r["student"]: r["deadline"] for r in rows}

    def set_extension(self, assignment: str, student: str, deadline: str | None,
                      author: str) -> None:
        self._per_student("extensions", "deadline", assignment, student, deadline, author)

    def submitted_times(self, assignment: str) -> dict[str, str]:
        rows = self.db.all("SELECT student, at FROM submitted_times WHERE assignment = ?",
                           assignment)
        return {r["student"]: r["at"] for r in rows}

    def set_submitted_time(self, assignment: str, student: str, at: str | None,
                           author: str) -> None:
        self._per_student("submitted_times", "at", assignment, student, at, author)

    def _per_student(self, table: str, column: str, assignment: str, student: str,
                     value: str | None, author: str) -> None:
        with self.db.tx() as tx:
            tx.run(f"DELETE FROM {table} WHERE assignment = ? AND student = ?", assignment,
                   student)
            if value is not None:
                tx.run(f"INSERT INTO {table} (assignment, student, {column}) VALUES (?, ?, ?)",
                       assignment, student, value)
            _audit(tx, author, table.rstrip("s").replace("_", " "),
                   {"assignment": assignment, "student": student, column: value})

    def adjustments(self, assignment: str | None = None) -> list[dict[str, Any]]:
        if assignment is None:
            return self.db.all("SELECT * FROM adjustments ORDER BY id")
        return self.db.all("SELECT * FROM adjustments WHERE assignment = ? ORDER BY id",
                           assignment)

    def add_adjustment(self, assignment: str, student: str, test: str | None, points: float,
                       comment: str, author: str, *, at: float | None = None) -> None:
        with self.db.tx() as tx:
            tx.run("INSERT INTO adjustments (assignment, student, test, points, comment, "
                   "author, at) VALUES (?, ?, ?, ?, ?, ?, ?)", assignment, student, test,
                   points, comment, author, time.time() if at is None else at)
            _audit(tx, author, "adjustment", {"assignment": assignment, "student": student,
                                              "test": test, "points": points,
                                              "comment": comment})

    def delete_adjustment(self, adjustment_id: int, author: str) -> None:
        with self.db.tx() as tx:
            row = tx.one("SELECT * FROM adjustments WHERE id = ?", adjustment_id)
            tx.run("DELETE FROM adjustments WHERE id = ?", adjustment_id)
            _audit(tx, author, "adjustment removed", row or {"id": adjustment_id})

    def replace_course(self, state: CourseRows, author: str) -> None:
        """An imported course file in place of the server's course state, in one transaction
        (so the server never holds half of one), each part written to the audit log."""
        with self.db.tx() as tx:
            for key, value in state.settings.items():
                _upsert(tx, "settings", "key", key, json.dumps(value))
            for name, settings in state.assignments.items():
                _upsert(tx, "assignments", "name", name, json.dumps(settings, sort_keys=True),
                        column="settings")
            for table in ("extensions", "submitted_times", "adjustments"):
                tx.run(f"DELETE FROM {table}")
            tx.many("INSERT INTO extensions (assignment, student, deadline) VALUES (?, ?, ?)",
                    state.extensions)
            tx.many("INSERT INTO submitted_times (assignment, student, at) VALUES (?, ?, ?)",
                    state.submitted)
            tx.many("INSERT INTO adjustments (assignment, student, test, points, comment, "
                    "author, at) VALUES (?, ?, ?, ?, ?, ?, ?)", state.adjustments)
            _audit(tx, author, "course file imported", state.summary())

    def audit_log(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.db.all("SELECT * FROM audit ORDER BY id DESC LIMIT ?", limit)
        return [{**r, "detail": json.loads(r["detail"])} for r in rows]

    def audit(self, author: str, action: str, detail: dict[str, Any]) -> None:
        with self.db.tx() as tx:
            _audit(tx, author, action, detail)


@dataclass(frozen=True)
class CourseRows:
    """A course file as the server's rows (``grader.serve.course.rows``)."""

    settings: dict[str, Any]
    assignments: dict[str, dict[str, Any]]
    extensions: Sequence[tuple[str, str, str]]
    submitted: Sequence[tuple[str, str, str]]
    adjustments: Sequence[tuple[Any, ...]]

    def summary(self) -> dict[str, Any]:
        return {"assignments": sorted(self.assignments), "extensions": len(self.extensions),
                "submitted": len(self.submitted), "adjustments": len(self.adjustments)}


def _upsert(tx: Transaction, table: str, key: str, name: str, value: str,
            column: str = "value") -> None:
    tx.run(f"INSERT INTO {table} ({key}, {column}) VALUES (?, ?) ON CONFLICT ({key}) "
           f"DO UPDATE SET {column} = excluded.{column}", name, value)


def _audit(tx: Transaction, author: str, action: str, detail: dict[str, Any]) -> None:
    tx.run("INSERT INTO audit (at, author, action, detail) VALUES (?, ?, ?, ?)", time.time(),
           author, action, json.dumps(detail, sort_keys=True, default=str))
