"""The course server's security, each promise tested: CSRF tokens on every form, session
cookies HttpOnly and SameSite (Secure over https), the strict Content-Security-Policy, upload
limits, per-student rate limits, sessions that expire, no student reading another's page,
result, history or upload (ids guessed, paths tricked), instructor pages closed to students,
and every piece of student-derived text escaped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.routing import Route

from grader.course.roster import Student
from grader.serve import app as app_module
from grader.serve.limits import UploadLimits
from tests.servekit import Course, csrf_of, fake_result

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = (ROOT / "submissions" / "convolution" / "erin_reference.ipynb").read_bytes()
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def course(tmp_path: Path) -> Course:
    return Course(tmp_path / "data", assignments=("convolution",))


def hand_in(client, data: bytes, name: str = "mine.ipynb"):
    page = client.get("/s/")
    return client.post("/s/convolution/upload", data={"csrf": csrf_of(page.text)},
                       files={"notebook": (name, data)})


def _pages(course: Course) -> dict[str, tuple]:
    attempt = course.graded("s001", "convolution", fake_result(review=True))
    return {"student": (course.student("s001"), ["/s/", f"/s/attempts/{attempt}"]),
            "instructor": (course.instructor(), [
                "/i/", "/i/course", "/i/convolution", "/i/convolution/gradebook",
                "/i/convolution/review", "/i/convolution/students/s001",
                f"/i/attempts/{attempt}", "/i/password"]),
            "nobody": (course.client(), ["/", "/i/login"])}


def test_every_form_posts_a_csrf_token(course: Course) -> None:
    forms = 0
    for client, paths in _pages(course).values():
        for path in paths:
            page = client.get(path).text
            for form in re.findall(r"<form\b[^>]*>.*?</form>", page, re.S):
                if 'method="post"' not in form:
                    continue
                forms += 1
                assert re.search(r'<input type="hidden" name="csrf" value="[^"]{20,}"', form), \
                    (path, form[:300])
    assert forms >= 15


POSTS = [r.path for r in app_module.routes() if isinstance(r, Route) and "POST" in r.methods
         and r.path not in ("/api/submit", "/{path:path}")]


@pytest.mark.parametrize("path", POSTS)
def test_a_post_without_the_right_csrf_token_is_refused(course: Course, path: str) -> None:
    concrete = (path.replace("{assignment}", "convolution").replace("{student}", "s001")
                .replace("{adjustment:int}", "1").replace("{kind}", "extension"))
    for client in (course.instructor(), course.student("s001")):
        for data in ({}, {"csrf": "forged-token-of-the-right-length-xxxxxxx"}):
            answer = client.post(concrete, data={**data, "points": "5", "comment": "x",
                                                 "test": "", "password": "x" * 12,
                                                 "again": "x" * 12, "release": "yes"})
            assert answer.status_code in (403, 404), (concrete, answer.status_code)
    assert course.server.store.adjustments() == []
    assert "released" not in json.dumps(course.server.store.assignment_settings(
        "convolution") or {})


def test_session_cookies_are_httponly_samesite_and_secure_over_https(course: Course) -> None:
    from tests.servekit import token

    plain = course.client().get(f"/signin/{token(course.data, 's001')}")
    cookie = plain.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    secure = course.client(base_url="https://testserver").get(
        f"/signin/{token(course.data, 's001')}")
    assert "Secure" in secure.headers["set-cookie"]
    https_course = Course(course.data.parent / "https", assignments=("convolution",),
                          https=True)
    assert "Secure" in https_course.client().get(
        f"/signin/{token(https_course.data, 's001')}").headers["set-cookie"]


def test_every_page_keeps_the_strict_content_security_policy(course: Course) -> None:
    for client, paths in _pages(course).values():
        for path in paths:
            answer = client.get(path)
            policy = answer.headers["content-security-policy"]
            assert "default-src 'none'" in policy and "script-src" not in policy, path
            assert "frame-ancestors 'none'" in policy and answer.headers[
                "x-content-type-options"] == "nosniff"
            assert "<script" not in answer.text, path  # no script at all on these pages


def test_uploads_are_limited_in_bytes_cells_and_outputs(tmp_path: Path) -> None:
    course = Course(tmp_path / "d", assignments=("convolution",),
                    limits=UploadLimits(max_bytes=200_000, max_cells=50,
                                        max_output_bytes=10_000))
    student = course.student("s001")
    big = hand_in(student, b"{" + b" " * 400_000 + b"}")
    assert big.status_code == 413
    cells = {"cells": [{"cell_type": "code", "source": "", "outputs": []}] * 51}
    assert "51 cells" in hand_in(student, json.dumps(cells).encode()).text
    outputs = {"cells": [{"cell_type": "code", "source": "",
                          "outputs": [{"text": "x" * 20_000}]}]}
    assert "outputs take" in hand_in(student, json.dumps(outputs).encode()).text
    assert "only a notebook" in hand_in(student, b"MZ...", "virus.exe").text
    assert "not a notebook" in hand_in(student, b"not json").text
    assert course.server.store.attempts("s001") == []


def test_a_student_is_rate_limited(tmp_path: Path) -> None:
    course = Course(tmp_path / "d", assignments=("convolution",), uploads_per_minute=2,
                    requests_per_minute=30)
    student = course.student("s001")
    assert [hand_in(student, NOTEBOOK).status_code for _ in range(3)] == [303, 303, 429]
    answers = [student.get("/s/").status_code for _ in range(30)]
    assert answers[-1] == 429 and 200 in answers
    assert course.student("s002").get("/s/").status_code == 200  # others unaffected


def test_sessions_expire(tmp_path: Path) -> None:
    import time

    course = Course(tmp_path / "d", assignments=("convolution",), session_idle=0.3)
    student = course.student("s001")
    assert student.get("/s/").status_code == 200
    time.sleep(0.5)
    answer = student.get("/s/")
    assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_no_student_reads_another_students_page_result_history_or_upload(
        course: Course) -> None:
    mine = course.graded("s001", "convolution", fake_result(), data=b'{"secret": "s001"}')
    other = course.student("s002")
    for path in (f"/s/attempts/{mine}", f"/s/attempts/{mine}/status",
                 "/s/attempts/1", "/s/attempts/1/status", f"/s/attempts/{mine[:-1]}x",
                 f"/s/attempts/{mine}/../{mine}", "/s/attempts/%2e%2e%2fi%2f",
                 f"/s/attempts/..%2f{mine}", "/s/../i/", f"/api/attempts/{mine}"):
        answer = other.get(path)
        assert answer.status_code in (303, 401, 403, 404), (path, answer.status_code)
        assert "public message" not in answer.text and "s001" not in answer.text, path
    assert "mine.ipynb" not in other.get("/s/").text and "nb.ipynb" not in other.get("/s/").text
    for number in range(1, 5):  # the database's own numbers lead nowhere
        assert other.get(f"/s/attempts/{number}").status_code == 404
    assert not any("blob" in r.path or "download" in r.path for r in app_module.routes()
                   if isinstance(r, Route))  # an upload is never served back
    assert course.student("s001").get(f"/s/attempts/{mine}").status_code == 200


def test_instructor_pages_are_closed_to_students(course: Course) -> None:
    attempt = course.graded("s001", "convolution", fake_result())
    student = course.student("s001")
    gets = [r.path for r in app_module.routes() if isinstance(r, Route)
            and r.path.startswith("/i/") and "GET" in r.methods
            and r.path not in ("/i/login", "/i/first/{token}")]
    assert len(gets) >= 10
    for path in gets:
        concrete = (path.replace("{assignment}", "convolution").replace("{student}", "s001")
                    .replace("{attempt}", attempt).replace("{file}", "grades.csv"))
        answer = student.get(concrete)
        assert answer.status_code == 403, (concrete, answer.status_code)
        assert "s002" not in answer.text
    nobody = course.client()
    assert nobody.get("/i/convolution/export/grades.csv").headers["location"] == "/i/login"


def test_a_wrong_password_and_a_guessed_token_get_nothing(course: Course) -> None:
    client = course.client()
    page = client.get("/i/login")
    answer = client.post("/i/login", data={"csrf": csrf_of(page.text), "name": "instructor",
                                           "password": "guess"})
    assert answer.status_code == 403 and "set-cookie" not in {
        k.lower() for k in answer.headers if "grader_session" in answer.headers.get(k, "")}
    assert client.get("/i/").status_code == 303
    assert course.client().get("/signin/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").status_code == 403


def test_sign_in_attempts_are_rate_limited(tmp_path: Path) -> None:
    course = Course(tmp_path / "d", assignments=("convolution",), signins_per_minute=5)
    client = course.client()
    codes = [client.get(f"/signin/guess{n}").status_code for n in range(7)]
    assert codes[:5] == [403] * 5 and codes[-1] == 429
    page = client.get("/i/login")
    assert client.post("/i/login", data={"csrf": csrf_of(page.text), "name": "instructor",
                                         "password": Course.PASSWORD}).status_code == 429
    fresh = Course(tmp_path / "e", assignments=("convolution",), signins_per_minute=5)
    for student in ("s001", "s002", "s003", "s004", "s005", "s006", "s007"):
        fresh.student(student)  # a class behind one address: successes never count


def test_all_student_derived_text_is_escaped(course: Course) -> None:
    store = course.server.store
    store.set_roster([Student("evil", HOSTILE, section=HOSTILE, email="e@x")], "test")
    from grader.serve import auth

    auth.refresh_tokens(store, course.server.secret)
    result = fake_result("evil", review=True, hidden_message=HOSTILE, name=HOSTILE,
                         notices=("your notebook printed:\n" + HOSTILE,))
    attempt = course.graded("evil", "convolution", result, filename=HOSTILE + ".ipynb")
    store.set_assignment_settings("convolution", {"released": "2020-01-01"}, "t")
    pages = [course.student("evil").get(p).text for p in ("/s/", f"/s/attempts/{attempt}")]
    teacher = course.instructor()
    pages += [teacher.get(p).text for p in (
        "/i/convolution/gradebook", "/i/convolution/review", "/i/convolution/students/evil",
        f"/i/attempts/{attempt}", "/i/course")]
    for page in pages:
        assert HOSTILE not in page and "<script>alert" not in page
        assert "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;" in pages[2]
