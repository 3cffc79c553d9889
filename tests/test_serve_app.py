"""The course server's two paths through its pages, in process (Starlette's test client):
a student signs in, hands in, waits and reads feedback with its history, within the
assignment's limits; an instructor signs in, reviews, adjusts with a comment, sets the
rules, releases and exports, and every change is kept with its author and time."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest

from grader.serve import course as course_state
from tests.servekit import HIDDEN_TEST, PUBLIC_TEST, Course, csrf_of, fake_result

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "submissions" / "convolution" / "erin_reference.ipynb"


@pytest.fixture
def course(tmp_path: Path) -> Course:
    return Course(tmp_path / "data", assignments=("convolution",))


def hand_in(client, data: bytes, name: str = "mine.ipynb", assignment: str = "convolution"):
    page = client.get("/s/")
    return client.post(f"/s/{assignment}/upload", data={"csrf": csrf_of(page.text)},
                       files={"notebook": (name, data)})


def test_a_student_hands_in_sees_the_queue_then_feedback_and_history(course: Course) -> None:
    student = course.student("s001")
    answer = hand_in(student, NOTEBOOK.read_bytes())
    assert answer.status_code == 303
    attempt = answer.headers["location"].rsplit("/", 1)[1]
    waiting = student.get(f"/s/attempts/{attempt}")
    assert "Queued" in waiting.text and 'http-equiv="refresh"' in waiting.text
    assert student.get(f"/s/attempts/{attempt}/status").json()["state"] == "queued"
    store = course.server.store
    claimed = store.claim("w", lease=60)
    assert "Running" in student.get(f"/s/attempts/{attempt}").text
    from grader.core.results import encode

    store.finish(claimed.attempt.id, "w", encode(fake_result()), 1.0, 5.0)
    page = student.get(f"/s/attempts/{attempt}")
    assert page.status_code == 200 and PUBLIC_TEST in page.text
    assert HIDDEN_TEST not in page.text and "hidden inputs" not in page.text
    status = student.get(f"/s/attempts/{attempt}/status").json()
    assert status["state"] == "done" and [t["name"] for t in status["tests"]] == [PUBLIC_TEST]
    history = student.get("/s/").text
    assert "mine.ipynb" in history and f"/s/attempts/{attempt}" in history


def test_hidden_tests_show_after_the_deadline_and_the_final_grade_at_release(
        course: Course) -> None:
    attempt = course.graded("s001", "convolution", fake_result(review=True))
    student = course.student("s001")
    assert HIDDEN_TEST not in student.get(f"/s/attempts/{attempt}").text
    store = course.server.store
    store.set_assignment_settings("convolution", {"deadline": "2020-01-01T00:00:00+00:00"}, "t")
    assert "hidden inputs" in student.get(f"/s/attempts/{attempt}").text
    store.add_adjustment("convolution", "s001", HIDDEN_TEST, 2.5, "right idea, one slip",
                         "instructor")
    assert "right idea" not in student.get(f"/s/attempts/{attempt}").text  # not released
    settings = course_state.settings(store, "convolution")
    store.set_assignment_settings("convolution", {**settings, "released": "2020-02-01"}, "t")
    released = student.get(f"/s/attempts/{attempt}").text
    assert "right idea, one slip" in released and "Alice Adams" in released


def test_feedback_none_shows_only_that_it_was_received(course: Course) -> None:
    course.server.store.set_assignment_settings("convolution", {"feedback": "none"}, "t")
    attempt = course.graded("s001", "convolution", fake_result())
    page = course.student("s001").get(f"/s/attempts/{attempt}").text
    assert "Received" in page and PUBLIC_TEST not in page


def test_attempts_per_day_and_cooldown_refuse_with_a_reason(course: Course) -> None:
    store = course.server.store
    store.set_assignment_settings("convolution", {"attempts_per_day": 2}, "t")
    student = course.student("s002")
    assert hand_in(student, NOTEBOOK.read_bytes()).status_code == 303
    assert hand_in(student, NOTEBOOK.read_bytes()).status_code == 303
    third = hand_in(student, NOTEBOOK.read_bytes())
    assert third.status_code == 429 and "2 attempts in the last 24 hours" in third.text
    store.set_assignment_settings("convolution", {"cooldown_minutes": 10}, "t")
    cooled = hand_in(course.student("s003"), NOTEBOOK.read_bytes())
    assert cooled.status_code == 303
    again = hand_in(course.student("s003"), NOTEBOOK.read_bytes())
    assert again.status_code == 429 and "one attempt every 10 minutes" in again.text
    assert len(store.attempts("s002")) == 2 and len(store.attempts("s003")) == 1


def test_the_self_check_api_submits_with_a_bearer_token(course: Course) -> None:
    from tests.servekit import token

    client = course.client()
    answer = client.post("/api/submit", headers={"Authorization":
                                                 f"Bearer {token(course.data, 's004')}"},
                         data={"assignment": "convolution"},
                         files={"notebook": ("n.ipynb", NOTEBOOK.read_bytes())})
    assert answer.status_code == 202, answer.text
    attempt = answer.json()["attempt"]
    assert course.server.store.attempt(attempt).student == "s004"
    status = client.get(f"/api/attempts/{attempt}",
                        headers={"Authorization": f"Bearer {token(course.data, 's004')}"})
    assert status.json()["state"] == "queued"
    wrong = client.get(f"/api/attempts/{attempt}",
                       headers={"Authorization": f"Bearer {token(course.data, 's005')}"})
    assert wrong.status_code == 404
    assert client.post("/api/submit", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_the_instructor_reviews_adjusts_releases_and_exports(course: Course) -> None:
    course.graded("s001", "convolution", fake_result(review=True, public_score=2.0))
    course.graded("s002", "convolution", fake_result("s002", public_score=1.0))
    teacher = course.instructor()
    overview = teacher.get("/i/").text
    assert "convolution" in overview and "needing review" in overview
    review = teacher.get("/i/convolution/review")
    assert HIDDEN_TEST in review.text and "Alice Adams" in review.text
    answer = teacher.post("/i/convolution/students/s001/adjust",
                          data={"csrf": csrf_of(review.text), "test": HIDDEN_TEST,
                                "points": "2", "comment": "looked at it: fine",
                                "next": "/i/convolution/review"})
    assert answer.status_code == 303
    assert "Nothing waits for review" in teacher.get("/i/convolution/review").text
    detail = teacher.get("/i/convolution/students/s001").text
    assert "looked at it: fine" in detail and ">4<" in detail.replace(" ", "")
    page = teacher.get("/i/convolution")
    assert teacher.post("/i/convolution/release", data={"csrf": csrf_of(page.text),
                                                        "release": "yes"}).status_code == 303
    assert course_state.settings(course.server.store, "convolution")["released"]
    grades = teacher.get("/i/convolution/export/grades.csv")
    assert grades.headers["content-disposition"].startswith("attachment")
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(grades.text))}
    assert rows["s001"]["score"] == "4" and rows["s001"]["adjustment"] == "2"
    assert rows["s002"]["score"] == "1" and rows["s003"]["status"] == "missing"
    moodle = teacher.get("/i/convolution/export/moodle.csv").text
    assert "Participant 7001" in moodle
    canvas = teacher.get("/i/convolution/export/canvas.csv").text
    assert canvas.splitlines()[0].endswith("convolution")
    audit = course.server.store.audit_log()
    adjusted = next(e for e in audit if e["action"] == "adjustment")
    assert adjusted["author"] == "instructor" and adjusted["at"] <= time.time()
    assert adjusted["detail"]["comment"] == "looked at it: fine"
    assert any(e["action"] == "released" for e in audit)


def test_the_gradebook_sorts_and_filters(course: Course) -> None:
    course.graded("s001", "convolution", fake_result(public_score=2.0))
    course.graded("s004", "convolution", fake_result("s004", public_score=0.5))
    course.graded("s005", "convolution", fake_result("s005", review=True))
    teacher = course.instructor()
    ids = _ids(teacher.get("/i/convolution/gradebook?sort=score&order=desc").text)
    assert ids[:3] == ["s001", "s005", "s004"] and len(ids) == 8
    assert _ids(teacher.get("/i/convolution/gradebook?section=B").text) == \
        ["s004", "s005", "s006", "s008"]
    assert _ids(teacher.get("/i/convolution/gradebook?review=yes").text) == ["s005"]
    assert _ids(teacher.get("/i/convolution/gradebook?status=missing").text) == \
        ["s002", "s003", "s006", "s007", "s008"]
    assert _ids(teacher.get("/i/convolution/gradebook?min=1.5").text) == ["s001"]
    stats = teacher.get("/i/convolution/gradebook").text
    assert "Pass rate" in stats and "1 / 3" in stats


def _ids(page: str) -> list[str]:
    import re

    return re.findall(r'<tr class="student" data-id="([^"]+)"', page)


def test_settings_extensions_and_submission_times_come_through_forms(course: Course) -> None:
    course.graded("s001", "convolution", fake_result(public_score=2.0),
                  received=time.mktime((2026, 11, 22, 12, 0, 0, 0, 0, 0)))
    teacher = course.instructor()
    page = teacher.get("/i/convolution")
    answer = teacher.post("/i/convolution/settings", data={
        "csrf": csrf_of(page.text), "deadline": "2026-11-20T23:59", "per_day": "0.25",
        "grace_minutes": "0", "feedback": "public", "canvas_column": "Conv (7)"})
    assert answer.status_code == 303
    rows = {r.student.id: r for r in course.server.rows("convolution")}
    assert rows["s001"].final.late_days == 2 and rows["s001"].final.score == 1.0
    detail = teacher.get("/i/convolution/students/s001")
    teacher.post("/i/convolution/students/s001/extension",
                 data={"csrf": csrf_of(detail.text), "at": "2026-11-23T00:00"})
    assert {r.student.id: r for r in course.server.rows("convolution")}["s001"] \
        .final.late_days == 0
    bad = teacher.post("/i/convolution/students/s001/submitted",
                       data={"csrf": csrf_of(detail.text), "at": "yesterday"})
    assert bad.status_code == 400 and "not a date" in bad.text
    actions = [e["action"] for e in course.server.store.audit_log()]
    assert "extension" in actions and "assignment settings" in actions


def test_the_course_file_round_trips_through_the_pages(course: Course) -> None:
    teacher = course.instructor()
    page = teacher.get("/i/course")
    course_file = ('[assignments.convolution]\ndeadline = 2026-11-20T23:59:00\n'
                   '[[adjustments]]\nstudent = "alice@example.edu"\nassignment = "convolution"\n'
                   'points = 1\ncomment = "bonus"\nby = "Dr. Lee"\n')
    answer = teacher.post("/i/course/import", data={"csrf": csrf_of(page.text)},
                          files={"course": ("course.toml", course_file.encode())})
    assert answer.status_code == 303, answer.text
    exported = teacher.get("/i/course.toml").text
    assert 'student = "s001"' in exported and "deadline = 2026-11-20T23:59:00" in exported
    bad = teacher.post("/i/course/import", data={"csrf": csrf_of(page.text)},
                       files={"course": ("c.toml", b"[assignments.convolutoin]\n")})
    assert bad.status_code == 400 and "did you mean" in bad.text
    assert teacher.get("/i/course.toml").text.split("\n", 1)[1] == exported.split("\n", 1)[1]


def test_tokens_download_as_links_to_mail(course: Course) -> None:
    teacher = course.instructor()
    rows = list(csv.DictReader(io.StringIO(teacher.get("/i/tokens.csv").text)))
    assert len(rows) == 8 and rows[0]["link"].endswith("/signin/" + rows[0]["token"])
    signed = course.client().get(rows[0]["link"].replace("http://testserver", ""))
    assert signed.status_code == 303 and signed.headers["location"] == "/s/"
