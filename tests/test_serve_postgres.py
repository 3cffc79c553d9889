"""PostgreSQL through the same code: two server processes on one database share the queue,
the sessions and the record; every upload, whichever server took it, is graded exactly once.
Runs where GRADER_TEST_DATABASE names a PostgreSQL server (``.ci/run`` starts one and runs
the server's other tests against it too); elsewhere it is skipped, in CI it fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grader.serve.db import Database
from tests.servekit import database_url, running_server, student_client, upload, wait_done

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "submissions" / "convolution").glob("*.ipynb"))


@pytest.fixture
def postgres(tmp_path: Path) -> str:
    if not os.environ.get("GRADER_TEST_DATABASE"):
        if os.environ.get("CI"):
            pytest.fail("GRADER_TEST_DATABASE is not set (.ci/run starts PostgreSQL)")
        pytest.skip("GRADER_TEST_DATABASE is not set (eval \"$(.ci/postgres start)\")")
    return database_url(tmp_path)


def test_two_servers_on_one_database_grade_every_upload_once(postgres: str,
                                                             tmp_path: Path) -> None:
    data = tmp_path / "data"  # one key: a student's link works on either server
    with running_server(data, jobs=1, database=postgres) as first, \
            running_server(data, jobs=1, database=postgres) as second:
        one = student_client(first.base, data, "s001")
        two = student_client(second.base, data, "s002")
        attempts = []
        for number, path in enumerate(EXAMPLES[:10]):
            attempts.append((one if number % 2 else two, upload(one if number % 2 else two,
                                                                "convolution", path)))
        for client, attempt in attempts:
            assert wait_done(client, attempt, timeout=120)["state"] == "done"
        # a session made by one server is good on the other: it lives in the database
        one.base_url = second.base
        assert one.get("/s/").status_code == 200
        mine = next(a for c, a in attempts if c is one)
        assert one.get(f"/s/attempts/{mine}").status_code == 200
    db = Database(postgres)
    rows = db.all("SELECT s.worker, COUNT(r.submission) AS n FROM submissions s "
                  "JOIN results r ON r.submission = s.id GROUP BY s.id, s.worker")
    db.close()
    assert len(rows) == 10 and all(int(r["n"]) == 1 for r in rows)
    assert len({r["worker"].rsplit("-", 2)[0] for r in rows}) >= 1
