"""Helpers for the course server's tests: a real server process on a free loopback port,
signed-in clients, uploads and waiting for feedback, all with bounded loops."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from grader.serve import auth

ROOT = Path(__file__).resolve().parent.parent


def database_url(folder: Path) -> str:
    """Where a test's server keeps its state: SQLite in ``folder``, or, where
    ``GRADER_TEST_DATABASE`` names a PostgreSQL server (``.ci/run`` starts one), a fresh
    database of its own on that server, so that tests running at once never meet."""
    base = os.environ.get("GRADER_TEST_DATABASE")
    if not base:
        return str(folder / "course.db")
    import secrets

    import psycopg

    name = f"grader_test_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + "/" + name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    base: str
    process: subprocess.Popen
    data: Path
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def first_link(self) -> str | None:
        found = re.search(r"(/i/first/\S+)", self.text())
        return found.group(1) if found else None

    def kill(self) -> None:
        """``kill -9`` of the server process alone (its workers die with it)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)


@contextlib.contextmanager
def running_server(data: Path, *, jobs: int = 1, assignments: str = "convolution",
                   database: str | None = None, lease: float = 30.0,
                   extra: list[str] = (), timeout: float = 180) -> Iterator[Running]:
    port = free_port()
    data.mkdir(parents=True, exist_ok=True)
    log = data / f"server-{port}.log"
    command = [sys.executable, "-m", "grader", "serve", "--data", str(data), "--port", str(port),
               "--jobs", str(jobs), "--assignments", assignments, "--lease", str(lease), *extra]
    if database:
        command += ["--database", database]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=ROOT, env=os.environ.copy())
    running = Running(f"http://127.0.0.1:{port}", process, data, log)
    try:
        _wait_up(running, timeout)
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _wait_up(running: Running, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise AssertionError(f"the server stopped:\n{running.text()[-3000:]}")
        try:
            if httpx.get(running.base + "/health", timeout=2).status_code == 200 and \
                    "ready" in running.text():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server did not start in {timeout} s:\n{running.text()[-3000:]}")


def token(data: Path, student: str, generation: int = 0) -> str:
    return auth.student_token((data / "secret.key").read_bytes(), student, generation)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page[:2000]
    return found.group(1)


def student_client(base: str, data: Path, student: str) -> httpx.Client:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    answer = client.get(f"/signin/{token(data, student)}")
    assert answer.status_code == 303, answer.text[:500]
    return client


def upload(client: httpx.Client, assignment: str, path: Path, *,
           name: str | None = None) -> str:
    """Hand in ``path``; the attempt's public id once the server acknowledged it."""
    page = client.get("/s/")
    answer = client.post(f"/s/{assignment}/upload", data={"csrf": csrf_of(page.text)},
                         files={"notebook": (name or path.name, path.read_bytes())})
    assert answer.status_code == 303, answer.text[:1000]
    return answer.headers["location"].rsplit("/", 1)[1]


def wait_done(client: httpx.Client, attempt: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/s/attempts/{attempt}/status").json()
        if status["state"] in ("done", "failed"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"attempt {attempt} not graded in {timeout} s")


# --------------------------------------------------------------------------- in-process


class Course:
    """A server in this process (no workers: ``graded`` stores a result as a worker would),
    with clients signed in as students or as the instructor."""

    PASSWORD = "a long enough password"

    def __init__(self, data: Path, **config):
        from starlette.testclient import TestClient

        from grader.serve import Config, Server, create_app

        self.data = data
        config.setdefault("database", database_url(data.parent) if os.environ.get(
            "GRADER_TEST_DATABASE") else None)
        self.server = Server(Config(data=data, jobs=0, validate=False, **config))
        self.server.bootstrap()
        self.server.store.set_instructor("instructor", auth.hash_password(self.PASSWORD),
                                         "test")
        self.app = create_app(self.server, workers=False)
        self._client = TestClient

    def client(self, **kwargs):
        return self._client(self.app, follow_redirects=False, **kwargs)

    def student(self, student: str = "s001", **kwargs):
        client = self.client(**kwargs)
        answer = client.get(f"/signin/{token(self.data, student)}")
        assert answer.status_code == 303, answer.text[:300]
        return client

    def instructor(self, **kwargs):
        client = self.client(**kwargs)
        page = client.get("/i/login")
        answer = client.post("/i/login", data={"csrf": csrf_of(page.text),
                                               "name": "instructor",
                                               "password": self.PASSWORD})
        assert answer.status_code == 303, answer.text[:300]
        return client

    def graded(self, student: str, assignment: str, result, *, data: bytes = b"{}",
               filename: str = "nb.ipynb", received: float | None = None) -> str:
        """An attempt stored and graded with ``result`` (a ``SubmissionResult``)."""
        from grader.core.results import encode

        store = self.server.store
        attempt = store.put_upload(student, assignment, filename, data, now=received)
        claimed = store.claim("test-worker", lease=60)
        assert claimed is not None and claimed.attempt.id == attempt.id
        assert store.finish(attempt.id, "test-worker", encode(result), result.score,
                            result.max_score)
        return attempt.public_id


def fake_result(student: str = "s001", assignment: str = "convolution", *,
                hidden_message: str = "hidden inputs 1 2 3", public_score: float = 1.0,
                review: bool = False, notices: tuple[str, ...] = (), name: str = "nb.ipynb"):
    """A result as a worker stores it: one public test, one hidden (optionally waiting for
    review), and whatever ``notices``."""
    from grader.core.results import SubmissionResult, TestResult

    tests = (
        TestResult(PUBLIC_TEST, "conv2d", public_score, 2.0,
                   "passed" if public_score == 2.0 else "failed", "public message",
                   visibility="public"),
        TestResult(HIDDEN_TEST, "conv2d", 0.0, 3.0,
                   "review" if review else "failed", hidden_message, visibility="hidden"),
    )
    return SubmissionResult(student=student, assignment=assignment, submission=name,
                            sha256="0" * 64, error=None, notices=notices, tests=tests,
                            grader_version="test", duration_s=0.1, cache_key="k")


PUBLIC_TEST = "conv2d: lecture example"
HIDDEN_TEST = "conv2d: random sizes, strides and kernels"
