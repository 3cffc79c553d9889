"""The server grades as the batch tool grades, in the real sandbox, and loses nothing when it
is killed: every acknowledged upload is graded exactly once after a ``kill -9`` and a
restart. Loopback only; every wait is bounded."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import psutil
import pytest

from grader.checks import rubric
from grader.core.results import SubmissionResult
from grader.course.batch import grade_all
from grader.run.layers import SandboxConfig
from grader.serve import engine
from grader.serve.db import Database
from grader.serve.store import Store
from grader.serve.worker import Worker
from tests.conftest import build_notebook
from tests.servekit import database_url, running_server, student_client, upload, wait_done

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "submissions" / "convolution").glob("*.ipynb"))


def test_the_server_and_the_batch_give_identical_scores(tmp_path: Path) -> None:
    """Every example convolution notebook, graded by ``grader grade``'s batch and by a
    server worker: the same score on every test, the same status and message."""
    loaded = rubric.load("convolution")
    batch = grade_all(EXAMPLES, loaded, tmp_path / "out", sandbox=SandboxConfig.from_env(),
                      jobs=1, progress=False)
    by_file = {r.submission: r for r in batch.results}
    store = Store(Database(database_url(tmp_path)))
    attempts = {store.put_upload(f"s{n}", "convolution", path.name, path.read_bytes()).id:
                path.name for n, path in enumerate(EXAMPLES)}
    worker = Worker(store, {"convolution": engine.prepare("convolution", validate=False)},
                    name="test", lease=60)
    assert worker.run(until_empty=True) == len(EXAMPLES)
    compared = 0
    for attempt, body in store.results_of("convolution"):
        served = SubmissionResult.from_json(json.loads(body))
        expected = by_file[attempts[attempt.id]]
        assert served.sha256 == expected.sha256
        assert served.error == expected.error
        assert [(t.name, t.score, t.status, t.message) for t in served.tests] == \
            [(t.name, t.score, t.status, t.message) for t in expected.tests], attempts[attempt.id]
        compared += 1
    assert compared == len(EXAMPLES)


def _slow_notebook(folder: Path) -> Path:
    """The reference with a cell that sleeps: grading it takes seconds, time to kill."""
    return build_notebook(folder, "convolution", name="slow",
                          extra_cells=["import time\ntime.sleep(4)"])


def test_kill_9_mid_grading_then_a_restart_grades_every_upload_exactly_once(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    slow = _slow_notebook(tmp_path)
    files = [slow, *EXAMPLES[:6]]
    acknowledged: list[str] = []
    database = database_url(tmp_path)
    with running_server(data, jobs=1, lease=3, database=database) as server:
        client = student_client(server.base, data, "s001")
        for path in files:
            acknowledged.append(upload(client, "convolution", path))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the slow one is in the sandbox now
            if client.get(f"/s/attempts/{acknowledged[0]}/status").json()["state"] == "running":
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the first upload never started grading")
        time.sleep(0.5)
        family = psutil.Process(server.process.pid).children(recursive=True)
        assert family, "the server runs its workers as processes"
        server.kill()
    gone, alive = psutil.wait_procs(family, timeout=15)
    assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], \
        "a worker outlived its server"
    states = _states(database)
    assert len(states) == len(files) and states[acknowledged[0]][0] == "running"
    with running_server(data, jobs=1, lease=3, database=database) as server:
        client = student_client(server.base, data, "s001")
        for attempt in acknowledged:
            assert wait_done(client, attempt, timeout=120)["state"] == "done"
    states = _states(database)
    assert sorted(states) == sorted(acknowledged)  # nothing lost, nothing added
    assert all(state == "done" and results == 1 for state, results, _ in states.values())
    assert states[acknowledged[0]][2] >= 2  # taken again after the kill
    _, max_score, _, score = _scores(database)[acknowledged[0]]
    assert score == max_score  # the reference, graded in full after all


def _states(database: str) -> dict[str, tuple[str, int, int]]:
    db = Database(database)
    rows = db.all("SELECT s.public_id, s.state, COUNT(r.submission) AS n, s.tries FROM "
                  "submissions s LEFT JOIN results r ON r.submission = s.id "
                  "GROUP BY s.id, s.public_id, s.state, s.tries")
    db.close()
    return {r["public_id"]: (r["state"], int(r["n"]), int(r["tries"])) for r in rows}


def _scores(database: str) -> dict[str, tuple]:
    db = Database(database)
    rows = db.all("SELECT s.public_id, s.state, r.max_score, s.tries, r.score FROM "
                  "submissions s JOIN results r ON r.submission = s.id")
    db.close()
    return {r["public_id"]: (r["state"], r["max_score"], r["tries"], r["score"]) for r in rows}


def test_a_server_starts_on_a_fresh_data_folder_with_a_one_time_link(tmp_path: Path) -> None:
    import httpx

    data = tmp_path / "fresh"
    with running_server(data, jobs=0) as server:
        link = server.first_link()
        assert link is not None
        answer = httpx.get(server.base + link, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/i/password"
        again = httpx.get(server.base + link, follow_redirects=False)
        assert again.status_code == 403  # once
    shutil.rmtree(data)


def test_a_rubric_change_rescores_every_stored_result_without_running(tmp_path: Path,
                                                                     monkeypatch) -> None:
    """Points changed in the rubric: the stored result is scored again from what was
    observed (``grader.grading.rescore``), no notebook runs, and the page shows the new points."""
    import dataclasses

    from grader.serve import app as app_module
    from tests.servekit import Course, csrf_of

    course = Course(tmp_path / "data", assignments=("convolution",))
    store = course.server.store
    store.put_upload("s001", "convolution", "erin.ipynb", EXAMPLES[0].read_bytes())
    Worker(store, {"convolution": engine.prepare("convolution", validate=False)},
           name="w", lease=60).run(until_empty=True)
    before = store.results_of("convolution")[0][0]
    loaded = rubric.load("convolution")
    changed = dataclasses.replace(loaded, sha256=loaded.sha256[::-1], tests=tuple(
        dataclasses.replace(t, points=t.points * 2) for t in loaded.tests))
    monkeypatch.setattr(app_module.rubric_module, "load", lambda name: changed)
    monkeypatch.setattr(Worker, "grade", lambda *a: pytest.fail("nothing may run"))
    teacher = course.instructor()
    page = teacher.get("/i/convolution")
    answer = teacher.post("/i/convolution/rescore", data={"csrf": csrf_of(page.text)})
    assert "1%20re-scored%20without%20running" in answer.headers["location"]
    after = store.results_of("convolution")[0][0]
    assert after.max_score == 2 * before.max_score and after.score == 2 * before.score
    assert store.queue_counts() == {"done": 1}


def test_the_self_check_submits_to_the_server_and_waits_for_feedback(tmp_path: Path) -> None:
    import subprocess
    import sys

    from grader.distribute import selfcheck
    from tests.servekit import token

    checker = selfcheck.export("convolution", tmp_path / "convolution-check.pyz")
    data = tmp_path / "data"
    with running_server(data, jobs=1) as server:
        done = subprocess.run(
            [sys.executable, str(checker), str(EXAMPLES[0]), "--submit", server.base,
             "--token", token(data, "s003")], capture_output=True, text=True, timeout=300)
        assert "handed in and graded" in done.stdout, done.stdout + done.stderr
        assert "/s/attempts/" in done.stdout
        refused = subprocess.run(
            [sys.executable, str(checker), str(EXAMPLES[0]), "--submit", server.base,
             "--token", "wrong"], capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2 and "not a valid token" in refused.stderr
    assert [a["student"] for a in _attempts(data)] == ["s003"]


def _attempts(data: Path) -> list[dict]:
    db = Database(str(data / "course.db"))
    rows = db.all("SELECT student FROM submissions")
    db.close()
    return rows


def test_a_busy_machines_timeout_is_graded_again_and_the_last_try_kept(
        tmp_path: Path, monkeypatch) -> None:
    """A result whose time ran out while the machine was busy (``grader.core.pace``) is not
    stored: the attempt goes back into the queue, up to the last try, whose result is kept
    for the instructor's review instead of failing the attempt."""
    from grader.serve import worker as worker_module

    store = Store(Database(database_url(tmp_path)))
    attempt = store.put_upload("s1", "convolution", EXAMPLES[0].name, EXAMPLES[0].read_bytes())
    prepared = {"convolution": engine.prepare("convolution", validate=False)}
    real = engine.grade(prepared["convolution"], EXAMPLES[0], "s1")
    busy = real.__class__(**{**real.__dict__, "tests": tuple(
        t.__class__(**{**t.__dict__, "details": {**t.details, "machine_busy": 3.0}})
        if number == 0 else t for number, t in enumerate(real.tests))})
    monkeypatch.setattr(worker_module.engine, "grade", lambda *a: busy)
    worker = Worker(store, prepared, name="test", lease=60)
    tries, later = [], time.time()
    while (claimed := store.claim("test", 60, now=later)) is not None:
        tries.append(worker.grade(claimed))
        # no worker may take it again before the pause has passed
        assert tries[-1] or store.claim("other", 60, now=time.time()) is None
        later = time.time() + worker_module.BUSY_PAUSE_SECONDS + 1
    assert tries == [False, False, False, True]  # given back three times, the fourth kept
    (stored,) = store.results_of("convolution")
    assert stored[0].id == attempt.id
    assert json.loads(stored[1])["tests"][0]["details"]["machine_busy"] == 3.0
