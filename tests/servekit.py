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
