"""The course server under a burst: time to feedback on an idle server and while a class
hands in at once, the pages' response times meanwhile, and the memory of the server and its
workers. Loopback only; every loop is bounded. ``make bench`` runs it after the grading
tables; ``python -m benchmarks.serve --students 300 --window 300`` is the issue's burst (300
students within 5 minutes), the default a harder one (300 within 60 s).

Time to feedback is measured in the server's own record, from the moment an upload was stored
(and acknowledged) to the moment its result was stored: what a student waits, less the
refresh of their page (one second at most). The pages are probed from another client
throughout: a student's home page and the instructor's gradebook of the whole class.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from grader.course.roster import Student
from grader.serve import auth
from grader.serve.db import Database
from grader.serve.store import Store

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "submissions" / "convolution").glob("*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--window", type=float, default=60.0,
                        help="seconds over which the burst's uploads are spread")
    parser.add_argument("--idle", type=int, default=20, help="uploads one at a time first")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="grader-serve-bench-") as folder:
        print(run(Path(folder), students=args.students, window=args.window,
                  idle=args.idle, jobs=args.jobs))
    return 0


def run(folder: Path, *, students: int, window: float, idle: int, jobs: int) -> str:
    data = folder / "data"
    ids = [f"b{n:03d}" for n in range(students)]
    secret = auth.load_secret(data / "secret.key")
    store = Store(Database(str(data / "course.db")))
    store.set_roster([Student(i, f"Student {i}", section="AB"[n % 2])
                      for n, i in enumerate(ids)], "bench")
    tokens = auth.refresh_tokens(store, secret)
    with _server(data, jobs) as base:
        idle_store = Store(Database(str(data / "course.db")))
        idle_times = _idle(base, [tokens[i] for i in ids], idle, idle_store)
        probe = _Probe(base, tokens[ids[1]], data)
        probe.start()
        began = time.time()
        _burst(base, [tokens[i] for i in ids], window)
        _drain(idle_store, began, students, timeout=window + 600)
        probe.stop()
        burst = _feedback_times(idle_store, since=began)
    return _table(idle_times, burst, probe, students, window, jobs)


class _server:
    def __init__(self, data: Path, jobs: int):
        self.data, self.jobs = data, jobs

    def __enter__(self) -> str:
        with socket_port() as port:
            self.port = port
        self.log = open(self.data / "server.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "grader", "serve", "--data", str(self.data), "--port",
             str(self.port), "--jobs", str(self.jobs), "--assignments", "convolution"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            text = (self.data / "server.log").read_text()
            if text.count("ready") >= 1 + self.jobs:
                return base
            if self.process.poll() is not None:
                raise SystemExit(f"the server stopped:\n{text[-2000:]}")
            time.sleep(0.2)
        raise SystemExit("the server did not start in 300 s")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


class socket_port:
    def __enter__(self) -> int:
        import socket

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        return self.socket.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.socket.close()


def _signed_in(base: str, token: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, timeout=120)
    page = client.get(f"/signin/{token}", follow_redirects=True)
    return client, re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def _hand_in(client: httpx.Client, csrf: str, path: Path) -> str:
    answer = client.post("/s/convolution/upload", data={"csrf": csrf},
                         files={"notebook": (path.name, path.read_bytes())})
    if answer.status_code != 303:
        raise SystemExit(f"upload refused: {answer.status_code} {answer.text[:300]}")
    return answer.headers["location"].rsplit("/", 1)[1]


def _idle(base: str, tokens: list[str], count: int, store: Store) -> list[float]:
    """One upload at a time on a quiet server, each by another student (one student's
    uploads are rate-limited): stored → result stored, in seconds."""
    times = []
    for number in range(count):
        client, csrf = _signed_in(base, tokens[number % len(tokens)])
        attempt = _hand_in(client, csrf, EXAMPLES[number % len(EXAMPLES)])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if client.get(f"/s/attempts/{attempt}/status").json()["state"] in ("done",
                                                                                 "failed"):
                break
            time.sleep(0.02)
        times.append(_one(store, attempt))
        client.close()
    return times


def _one(store: Store, public_id: str) -> float:
    row = store.db.one("SELECT s.received, r.graded FROM submissions s JOIN results r ON "
                       "r.submission = s.id WHERE s.public_id = ?", public_id)
    return row["graded"] - row["received"]


def _burst(base: str, tokens: list[str], window: float) -> None:
    """Every student hands in once, at evenly spread moments over ``window`` seconds."""
    start = time.monotonic()
    step = window / max(1, len(tokens))

    def student(number: int) -> None:
        client, csrf = _signed_in(base, tokens[number])
        wait = start + number * step - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        _hand_in(client, csrf, EXAMPLES[number % len(EXAMPLES)])
        client.close()

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(student, range(len(tokens))))


def _drain(store: Store, since: float, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = store.db.one("SELECT COUNT(*) AS n FROM submissions WHERE received >= ? AND "
                           "state IN ('done', 'failed')", since)
        if row["n"] >= count:
            return
        time.sleep(0.5)
    raise SystemExit(f"the burst was not graded within {timeout:.0f} s")


def _feedback_times(store: Store, since: float) -> dict[str, float]:
    rows = store.db.all("SELECT s.received, r.graded, s.state FROM submissions s LEFT JOIN "
                        "results r ON r.submission = s.id WHERE s.received >= ?", since)
    times = [r["graded"] - r["received"] for r in rows if r["graded"] is not None]
    first = min(r["received"] for r in rows)
    last = max(r["graded"] for r in rows if r["graded"] is not None)
    return {"graded": len(times), "failed": sum(r["state"] == "failed" for r in rows),
            "p50": _pct(times, 50), "p95": _pct(times, 95), "max": max(times),
            "span": last - first, "rate": len(times) / (last - first)}


class _Probe(threading.Thread):
    """A student's page and the instructor's whole-class gradebook, timed twice a second,
    and the memory of the server with its workers and sandboxes."""

    def __init__(self, base: str, token: str, data: Path):
        super().__init__(daemon=True)
        self.base, self.token, self.data = base, token, data
        self.pages: dict[str, list[float]] = {"/s/": [], "/i/convolution/gradebook": []}
        self.memory: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        student, _ = _signed_in(self.base, self.token)
        teacher = httpx.Client(base_url=self.base, timeout=120)
        teacher.cookies.set(auth.SESSION_COOKIE, _instructor_session(self.data))
        server = next(p for p in psutil.process_iter(["cmdline"])
                      if str(self.data) in " ".join(p.info["cmdline"] or [])
                      and "serve" in (p.info["cmdline"] or []))
        while not self.halt.wait(0.5):
            for path, client in (("/s/", student), ("/i/convolution/gradebook", teacher)):
                began = time.perf_counter()
                answer = client.get(path)
                if answer.status_code == 200:
                    self.pages[path].append(time.perf_counter() - began)
            self.memory.append(_rss([server, *server.children(recursive=True)]))

    def stop(self) -> None:
        self.halt.set()
        self.join(30)


def _instructor_session(data: Path) -> str:
    sessions = auth.Sessions(Store(Database(str(data / "course.db"))))
    value, _ = sessions.start("instructor", "bench")
    return value


def _rss(processes: list[psutil.Process]) -> float:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total / 1e6


def _pct(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(percent / 100 * (len(ordered) - 1))))
    return ordered[index]


def _table(idle: list[float], burst: dict[str, float], probe: _Probe, students: int,
           window: float, jobs: int) -> str:
    pages = {p: v for p, v in probe.pages.items() if v}
    lines = [f"Course server, convolution, {jobs} worker(s), {os.cpu_count()} cores "
             f"(time to feedback: upload stored → result stored)",
             "| measure | p50 | p95 | max |", "|---|---|---|---|",
             f"| idle server, {len(idle)} uploads one at a time | {_pct(idle, 50):.2f} s | "
             f"{_pct(idle, 95):.2f} s | {max(idle):.2f} s |",
             f"| burst: {students} students within {window:.0f} s "
             f"({burst['graded']} graded, {burst['failed']} failed) | {burst['p50']:.2f} s | "
             f"{burst['p95']:.2f} s | {burst['max']:.2f} s |"]
    for path, values in pages.items():
        lines.append(f"| page {path} during the burst ({len(values)} requests) | "
                     f"{statistics.median(values) * 1000:.0f} ms | "
                     f"{_pct(values, 95) * 1000:.0f} ms | {max(values) * 1000:.0f} ms |")
    lines.append(f"Burst cleared at {burst['rate']:.1f} submissions/s "
                 f"({burst['span']:.0f} s from the first upload to the last result); memory "
                 f"of the server, its workers and sandboxes: at most "
                 f"{max(probe.memory, default=0):.0f} MB "
                 f"(first {probe.memory[0] if probe.memory else 0:.0f} MB, last "
                 f"{probe.memory[-1] if probe.memory else 0:.0f} MB)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
