"""The course server's web application: Starlette, served by uvicorn.

Why Starlette: the pages are HTML drawn by the grader's own Jinja templates (the feedback page
is ``report.render_student``, unchanged), forms are a handful of fields, and the few JSON
answers are plain dicts. FastAPI would add pydantic models and an OpenAPI schema nobody here
reads; Litestar a larger framework with its own templating and DI. Starlette is the ASGI
toolkit both are built on: routing, requests, responses, lifespan, a test client, and
nothing to configure.

Every handler's database work runs in the thread pool (the event loop never waits on a
disk); grading runs in worker processes (``grader.serve.worker``) that only the database
connects to this one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from grader.checks import rubric as rubric_module
from grader.core import results
from grader.core.errors import GraderError
from grader.core.results import SubmissionResult, encode
from grader.course import gradebook
from grader.grading import rescore
from grader.grading.grade import cache_key
from grader.render import report, similarity
from grader.serve import auth, engine
from grader.serve import course as course_state
from grader.serve.db import Database
from grader.serve.limits import RateLimiter, UploadLimits, check_upload
from grader.serve.store import Attempt, Store

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
                    "Cache-Control": "no-store", "Cross-Origin-Opener-Policy": "same-origin"}
EXAMPLE_ROSTER = Path(__file__).with_name("example_roster.csv")
WAIT_REFRESH_SECONDS = 1


@dataclass(frozen=True)
class Config:
    data: Path
    database: str | None = None  # default: SQLite in data/course.db
    assignments: tuple[str, ...] = ("backprop", "convolution")
    jobs: int = max(1, os.cpu_count() or 1)
    lease: float = 30.0
    dask: str | None = None
    https: bool = False  # cookies Secure (also whenever a request arrives over https)
    limits: UploadLimits = field(default_factory=UploadLimits)
    requests_per_minute: int = 300
    uploads_per_minute: int = 12
    signins_per_minute: int = 20
    session_idle: float = 2 * 3600
    session_max: float = 12 * 3600
    roster: Path | None = EXAMPLE_ROSTER  # loaded when the server has no students yet
    validate: bool = True  # validate the rubrics and run the canary before serving
    trusted: bool = False

    @property
    def database_url(self) -> str:
        return self.database or str(self.data / "course.db")


class Server:
    """Everything one server process holds: the store, its key, the rubrics, its workers."""

    def __init__(self, config: Config):
        self.config = config
        _own_folder(config.data)
        self.store = Store(Database(config.database_url))
        self.secret = auth.load_secret(config.data / "secret.key")
        self.sessions = auth.Sessions(self.store, config.session_idle, config.session_max)
        self.rubrics = {name: rubric_module.load(name) for name in config.assignments}
        self.requests = RateLimiter(config.requests_per_minute)
        self.uploads = RateLimiter(config.uploads_per_minute)
        self.signins = RateLimiter(config.signins_per_minute)
        self.workers: list[subprocess.Popen[bytes]] = []
        # (attempt id, the result's hash) -> the parsed result
        self._results: OrderedDict[tuple[int, str], SubmissionResult] = OrderedDict()
        self._pages: OrderedDict[tuple[object, ...], str] = OrderedDict()
        # assignment -> (the counted attempts, by student, it was computed for; the pairs)
        self._similar: dict[str, tuple[tuple[tuple[str, int], ...], similarity.Similarity]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.templates = Environment(loader=PackageLoader("grader", "templates/serve"),
                                     autoescape=True, undefined=StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True)
        self.templates.filters["points"] = results.number
        self.templates.filters["when"] = _when
        self.templates.filters["dict_without"] = lambda query, *keys: urlencode(
            {k: v for k, v in query.items() if k not in keys})

    # ----------------------------------------------------------------------- start-up
    def prepare(self) -> list[str]:
        """Validate each rubric and run the reference canary here, before any student (as
        ``grader grade`` does): the workers then find the canary cached."""
        lines = []
        for name in self.config.assignments:
            prepared = engine.prepare(name, validate=self.config.validate,
                                      trusted=self.config.trusted)
            lines.append(f"{name}: ready ({len(prepared.rubric.tests)} tests, reference canary "
                         f"full marks)")
        return lines

    def bootstrap(self) -> str | None:
        """A first instructor with a one-time sign-in link, and the example roster, on an
        empty database. Returns the link's path, or None where an instructor exists."""
        if self.config.roster is not None and not self.store.students():
            from grader.course import roster

            self.store.set_roster(roster.load(self.config.roster).students, "server")
        auth.refresh_tokens(self.store, self.secret)
        if self.store.instructors():
            return None
        self.store.set_instructor("instructor", "", "server")
        return self.one_time_link("instructor")

    def one_time_link(self, instructor: str) -> str:
        token = secrets.token_urlsafe(32)
        self.store.add_signin_link(auth.digest(token), instructor,
                                   time.time() + auth.ONE_TIME_LINK_SECONDS)
        return f"/i/first/{token}"

    def start_workers(self) -> None:
        """``jobs`` worker processes (none with jobs = 0: a test grades by hand)."""
        for number in range(self.config.jobs):
            self.workers.append(self._spawn(number))
        if self.workers:
            threading.Thread(target=self._supervise, daemon=True).start()

    def _spawn(self, number: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "grader.serve.worker", "--database",
                   self.config.database_url, "--assignments", ",".join(self.config.assignments),
                   "--name", f"{os.uname().nodename}-{os.getpid()}-{number}-{time.time():.0f}",
                   "--lease", str(self.config.lease), "--parent", str(os.getpid())]
        if self.config.dask:
            command += ["--dask", self.config.dask]
        if self.config.trusted:
            command.append("--trusted")
        return subprocess.Popen(command, stdin=subprocess.DEVNULL)

    def _supervise(self) -> None:
        """A worker that died (out of memory, a grader bug) is started again."""
        while not self._stopping.wait(2.0):
            for number, process in enumerate(self.workers):
                if process.poll() is not None and not self._stopping.is_set():
                    print(f"grader serve: worker {number} ended ({process.returncode}); "
                          f"starting another", file=sys.stderr, flush=True)
                    self.workers[number] = self._spawn(number)

    def stop_workers(self) -> None:
        self._stopping.set()
        for process in self.workers:
            process.terminate()
        for process in self.workers:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.workers = []

    # ----------------------------------------------------------------------- results
    def result(self, attempt: Attempt) -> SubmissionResult | None:
        """The stored result of a graded attempt, parsed once (re-scoring replaces it)."""
        body = self.store.result_body(attempt.id)
        if body is None:
            return None
        key = (attempt.id, hashlib.sha256(body.encode()).hexdigest())
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
        parsed = SubmissionResult.from_json(json.loads(body))
        with self._lock:
            self._results[key] = parsed
            while len(self._results) > 2000:
                self._results.popitem(last=False)
        return parsed

    def rows(self, assignment: str) -> list[course_state.Row]:
        """Every student of the roster with the attempt that counts and the final grade."""
        loaded = self.rubrics[assignment]
        course = course_state.load(self.store, self.config.assignments)
        by_student: dict[str, list[Attempt]] = {}
        for each in reversed(self.store.all_attempts(assignment)):
            by_student.setdefault(each.student, []).append(each)
        rows = []
        for student in self.store.students():
            attempts = by_student.get(student.id, [])
            attempt, pending = course_state.counted(attempts)
            result = self.result(attempt) if attempt is not None and attempt.state == "done" \
                else None
            grade = course_state.final_grade(student, attempt, result, course,
                                             assignment=assignment, max_score=loaded.max_score)
            rows.append(course_state.Row(student, grade, attempt, result, len(attempts),
                                         pending))
        return rows

    def similar(self, assignment: str, rows: list[course_state.Row]) -> similarity.Similarity:
        """Similar pairs among the counted attempts (``grader.render.similarity``, as the class
        pages compute it), recomputed only when an attempt that counts changed."""
        from grader.render import classview

        loaded = self.rubrics[assignment]
        given = set(loaded.given)
        graded = [(r, r.result) for r in rows if r.result is not None and r.result.error is None]
        key = tuple((r.student.id, r.attempt.id) for r, _ in graded if r.attempt)
        cached = self._similar.get(assignment)
        if cached is not None and cached[0] == key:
            return cached[1]
        sources = {r.student.id: {f: s for f, s in result.sources.items()
                                  if f not in given and isinstance(s, str)}
                   for r, result in graded}
        found = similarity.compare(sources, template=classview.template_sources(loaded))
        self._similar[assignment] = (key, found)
        return found

    def page(self, key: tuple[object, ...], make: Callable[[], str]) -> str:
        with self._lock:
            if key in self._pages:
                self._pages.move_to_end(key)
                return self._pages[key]
        html = make()
        with self._lock:
            self._pages[key] = html
            while len(self._pages) > 500:
                self._pages.popitem(last=False)
        return html

    def rescore_all(self, assignment: str, author: str) -> tuple[int, int, int]:
        """After a rubric change: every stored result of ``assignment`` scored again from
        what was observed (``grader.grading.rescore``), no notebook run. (re-scored, unchanged,
        needing a run: their observations changed)."""
        loaded = rubric_module.load(assignment)
        self.rubrics[assignment] = loaded
        changed = same = needs_run = 0
        for attempt, body in self.store.results_of(assignment):
            previous = SubmissionResult.from_json(json.loads(body))
            key = cache_key(previous.sha256, loaded)
            if previous.cache_key == key:
                same += 1
                continue
            again = rescore.rescore(previous, loaded, cache_key=key)
            if again is None:
                needs_run += 1
                continue
            self.store.replace_result(attempt.id, encode(again), again.score, again.max_score,
                                      author)
            changed += 1
        self.store.audit(author, "re-scored", {"assignment": assignment, "re-scored": changed,
                                               "unchanged": same, "need a run": needs_run})
        return changed, same, needs_run

    # ----------------------------------------------------------------------- pages
    def render(self, template: str, **context: Any) -> str:
        return self.templates.get_template(template).render(**context)


def _own_folder(data: Path) -> None:
    """The data folder holds students' work and the server's key: made private, and
    ignored by git where it is made inside a checkout (as ``feedback/`` is)."""
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    ignore = data / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


# --------------------------------------------------------------------------- plumbing


def html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def server_of(request: Request) -> Server:
    server: Server = request.app.state.server  # (set by ``app``)
    return server


def message(request: Request, title: str, text: str, status: int = 200,
            session: auth.Session | None = None) -> HTMLResponse:
    return html(server_of(request).render("message.html.j2", title=title, text=text,
                                          session=session), status)


def not_found(request: Request, session: auth.Session | None = None) -> HTMLResponse:
    """The same answer for what does not exist and for what is someone else's."""
    return message(request, "Not found", "There is nothing here.", 404, session)


def _secure(request: Request) -> bool:
    return server_of(request).config.https or request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(auth.SESSION_COOKIE, value, httponly=True, samesite="lax",
                        secure=_secure(request), path="/",
                        max_age=int(server_of(request).config.session_max))


async def current_session(request: Request) -> auth.Session | None:
    server = server_of(request)
    return await run_in_threadpool(server.sessions.find,
                                   request.cookies.get(auth.SESSION_COOKIE))


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


# a page's handler: the request, its session, and its form (a POST's fields, else None)
Handler = Callable[[Request, auth.Session, Any], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def guarded(role: str) -> Callable[[Handler], Endpoint]:
    """A page for signed-in ``role`` only: no session → the sign-in page; the other role →
    403; too many requests → 429. POSTs must carry the session's CSRF token."""

    def wrap(handler: Handler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            server = server_of(request)
            session = await current_session(request)
            if session is None:
                return redirect("/i/login" if role == "instructor" else "/")
            if session.role != role:
                return message(request, "Not allowed", "This page is not for your account.",
                               403, session)
            if not server.requests.allow(f"{session.role}:{session.who}"):
                return message(request, "Too many requests", "Please wait a minute.", 429,
                               session)
            form = None
            if request.method == "POST":
                form = await _form(request)
                if form is None:
                    return message(request, "Too large", "The upload is too large.", 413,
                                   session)
                if not auth.same(form.get("csrf"), session.csrf):
                    return message(request, "Expired form", "This form has expired; go back, "
                                   "reload the page and try again.", 403, session)
            return await handler(request, session, form)

        return endpoint

    return wrap


async def _form(request: Request) -> dict[str, Any] | None:
    """The form's fields (an upload as ``(filename, bytes)``); None when the body is larger
    than an upload may be (its declared length is checked before anything is read)."""
    limit = server_of(request).config.limits.max_bytes + 64 * 1024
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > limit:
        return None
    parsed = await request.form(max_files=1, max_fields=30, max_part_size=64 * 1024)
    fields: dict[str, Any] = {}
    for key, value in parsed.multi_items():
        if isinstance(value, UploadFile):
            fields[key] = (value.filename or "", await value.read())
            await value.close()
        else:
            fields[key] = value
    return fields


def _text(form: dict[str, Any], key: str, limit: int = 2000) -> str:
    value = form.get(key, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


# --------------------------------------------------------------------------- students


async def home(request: Request) -> Response:
    session = await current_session(request)
    if session is not None:
        return redirect("/s/" if session.role == "student" else "/i/")
    return _signin_page(request)


def _signin_page(request: Request, problem: str = "", status: int = 200) -> Response:
    server = server_of(request)
    pre = request.cookies.get(auth.PRESESSION_COOKIE) or secrets.token_urlsafe(24)
    response = html(server.render("signin.html.j2", session=None, problem=problem,
                                  csrf=auth.form_token(server.secret, pre)), status)
    response.set_cookie(auth.PRESESSION_COOKIE, pre, httponly=True, samesite="lax",
                        secure=_secure(request), path="/")
    return response


async def signin_link(request: Request) -> Response:
    """A student's personal link: a session, then their page (the token leaves the URL)."""
    return await _student_signin(request, request.path_params["token"])


async def signin_form(request: Request) -> Response:
    form = await _form(request)
    server = server_of(request)
    pre = request.cookies.get(auth.PRESESSION_COOKIE, "")
    if form is None or not auth.same(form.get("csrf"), auth.form_token(server.secret, pre)):
        return _signin_page(request, "The form expired; please try again.", 403)
    return await _student_signin(request, _text(form, "token", 200))


async def _student_signin(request: Request, token: str) -> Response:
    server = server_of(request)
    if server.signins.blocked(f"ip:{_client(request)}"):
        return message(request, "Too many attempts", "Please wait a minute.", 429)
    student = await run_in_threadpool(server.store.student_by_token, auth.digest(token))
    if student is None:
        server.signins.allow(f"ip:{_client(request)}")  # only failures count
        return _signin_page(request, "That sign-in link or token is not valid (ask your "
                            "instructor for a new one).", 403)
    value, _ = await run_in_threadpool(server.sessions.start, "student", student)
    response = redirect("/s/")
    set_session_cookie(response, request, value)
    return response


async def signout(request: Request) -> Response:
    session = await current_session(request)
    if session is not None:
        form = await _form(request)
        if form is None or not auth.same(form.get("csrf"), session.csrf):
            return message(request, "Expired form", "Reload the page and try again.", 403)
        await run_in_threadpool(server_of(request).sessions.end, session)
    response = redirect("/")
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


@guarded("student")
async def student_home(request: Request, session: auth.Session, form: Any) -> Response:
    server = server_of(request)

    def build() -> str:
        student = server.store.student(session.who)
        course = course_state.load(server.store, server.config.assignments)
        assignments = []
        for name in server.config.assignments:
            settings = course_state.settings(server.store, name)
            deadline = course.rules(name).deadline_for(session.who)
            assignments.append({
                "name": name, "deadline": deadline.isoformat(" ") if deadline else None,
                "shown": course_state.shown(settings, deadline).why,
                "limits": _limits_text(settings),
                "attempts": server.store.attempts(session.who, name)})
        return server.render("student_home.html.j2", session=session, student=student,
                             assignments=assignments, max_mb=server.config.limits.max_bytes / 1e6)

    return html(await run_in_threadpool(build))


def _limits_text(settings: dict[str, Any]) -> str:
    parts = []
    if settings.get("attempts_per_day"):
        parts.append(f"{settings['attempts_per_day']} attempts a day")
    if settings.get("cooldown_minutes"):
        parts.append(f"one attempt every {results.number(settings['cooldown_minutes'])} "
                     f"minutes")
    return ", ".join(parts) or "no limit on attempts"


@guarded("student")
async def upload(request: Request, session: auth.Session, form: dict[str, Any]) -> Response:
    server = server_of(request)
    assignment = request.path_params["assignment"]
    if assignment not in server.config.assignments:
        return not_found(request, session)
    handed = form.get("notebook")
    if not isinstance(handed, tuple):
        return message(request, "No file", "Choose your notebook, then hand it in.", 400,
                       session)
    attempt, problem = await run_in_threadpool(_accept, server, session.who, assignment,
                                               handed[0], handed[1])
    if attempt is None:
        return message(request, "Not handed in", problem, 400 if "limit" not in problem
                       else 429, session)
    return redirect(f"/s/attempts/{attempt.public_id}")


def _accept(server: Server, student: str, assignment: str, filename: str,
            data: bytes) -> tuple[Attempt | None, str]:
    """Store an upload (committed before this returns), or why not: the file's limits, the
    rate limit, the assignment's attempts per day and cooldown."""
    problem = check_upload(filename, data, server.config.limits)
    if problem:
        return None, f"Your file was not handed in: {problem}."
    if not server.uploads.allow(f"upload:{student}"):
        return None, "Too many uploads in a minute (a rate limit); wait a minute."
    settings = course_state.settings(server.store, assignment)
    now = time.time()
    per_day = settings.get("attempts_per_day")
    if per_day and server.store.count_since(student, assignment, now - 86400) >= per_day:
        return None, (f"You have handed in {per_day} attempts in the last 24 hours, the "
                      f"limit for {assignment}; try again later.")
    cooldown = float(settings.get("cooldown_minutes") or 0) * 60
    last = server.store.last_received(student, assignment)
    if cooldown and last is not None and now - last < cooldown:
        wait = int(cooldown - (now - last)) + 1
        return None, f"The limit is one attempt every {cooldown / 60:g} minutes; wait {wait} s."
    name = Path(filename.replace("\\", "/")).name[:200] or "notebook.ipynb"
    return server.store.put_upload(student, assignment, name, data, now=now), ""


@guarded("student")
async def student_attempt(request: Request, session: auth.Session, form: Any) -> Response:
    server = server_of(request)
    attempt = await run_in_threadpool(server.store.attempt, request.path_params["attempt"])
    if attempt is None or attempt.student != session.who:
        return not_found(request, session)
    return html(await run_in_threadpool(_student_attempt_page, server, attempt, session))


def _student_attempt_page(server: Server, attempt: Attempt, session: auth.Session) -> str:
    if attempt.state in ("queued", "running", "failed"):
        return _waiting(server, attempt, session, back="/s/")
    settings = course_state.settings(server.store, attempt.assignment)
    course = course_state.load(server.store, server.config.assignments)
    deadline = course.rules(attempt.assignment).deadline_for(attempt.student)
    shown = course_state.shown(settings, deadline)
    result = server.result(attempt)
    if result is None or not shown.anything:
        return server.render("received.html.j2", session=session, attempt=attempt,
                             why=shown.why)
    view = None
    if shown.final:
        rows = {r.student.id: r for r in server.rows(attempt.assignment)}
        row = rows.get(attempt.student)
        if row is not None and row.attempt is not None and row.attempt.id == attempt.id:
            view = course_state.page_view(row.final)
    shown_result = result if shown.hidden else course_state.public_part(result)
    key = ("student", attempt.id, result.cache_key, result.score, shown.hidden,
           json.dumps(view, sort_keys=True, default=str))
    page = server.page(key, lambda: report.render_student(shown_result, final=view))
    return _with_nav(page, shown.why, back="/s/", label="your attempts")


def _waiting(server: Server, attempt: Attempt, session: auth.Session, *, back: str) -> str:
    ahead = 0
    if attempt.state == "queued":
        counts = server.store.queue_counts()
        ahead = counts.get("queued", 0) + counts.get("running", 0)
    return server.render("waiting.html.j2", session=session, attempt=attempt, ahead=ahead,
                         refresh=WAIT_REFRESH_SECONDS if attempt.state != "failed" else None,
                         back=back)


def _with_nav(page: str, note: str, *, back: str, label: str) -> str:
    """The feedback page as the batch draws it, with a line on top: where to go back to and
    what this view shows (no form: the page's own policy allows none)."""
    bar = Markup(f'<nav style="font:14px system-ui,sans-serif;padding:.5rem 1rem;'
                 f'background:#eef2f7;border-bottom:1px solid #ccd">'
                 f'<a href="{escape(back)}">← {escape(label)}</a> · {escape(note)}</nav>')
    return page.replace("<body>\n", f"<body>\n{bar}\n", 1)


@guarded("student")
async def student_attempt_status(request: Request, session: auth.Session, form: Any
                                 ) -> Response:
    server = server_of(request)
    attempt = await run_in_threadpool(server.store.attempt, request.path_params["attempt"])
    if attempt is None or attempt.student != session.who:
        return JSONResponse({"error": "not found"}, 404, headers=SECURITY_HEADERS)
    return JSONResponse(await run_in_threadpool(_status, server, attempt),
                        headers=SECURITY_HEADERS)


def _status(server: Server, attempt: Attempt) -> dict[str, Any]:
    """An attempt's state for a script (the self-check, the bench): the score as the
    student may see it now."""
    answer: dict[str, Any] = {"attempt": attempt.public_id, "assignment": attempt.assignment,
                              "state": attempt.state, "page": f"/s/attempts/{attempt.public_id}"}
    if attempt.state != "done":
        if attempt.state == "failed":
            answer["why"] = "the grader could not grade this notebook; your instructor sees it"
        return answer
    settings = course_state.settings(server.store, attempt.assignment)
    course = course_state.load(server.store, server.config.assignments)
    shown = course_state.shown(settings, course.rules(attempt.assignment)
                               .deadline_for(attempt.student))
    result = server.result(attempt)
    if result is None or not shown.anything:
        return {**answer, "shown": shown.why}
    if not shown.hidden:
        result = course_state.public_part(result)
    answer.update(shown=shown.why, score=results.number(result.score),
                  max_score=results.number(result.max_score), error=result.error,
                  tests=[{"name": t.name, "status": t.status, "score": results.number(t.score),
                          "max_score": results.number(t.max_score), "message": t.message}
                         for t in result.tests])
    return answer


async def api_submit(request: Request) -> Response:
    """``POST /api/submit`` with ``Authorization: Bearer TOKEN`` (the student's token) and
    a multipart ``notebook`` and ``assignment``: what the self-check's ``--submit`` sends.
    A bearer token is no ambient credential, so no CSRF token is needed."""
    server = server_of(request)
    student = await _bearer(request)
    if student is None:
        return JSONResponse({"error": "not a valid token"}, 401, headers=SECURITY_HEADERS)
    if not server.requests.allow(f"student:{student}"):
        return JSONResponse({"error": "too many requests"}, 429, headers=SECURITY_HEADERS)
    form = await _form(request)
    if form is None:
        return JSONResponse({"error": "the upload is too large"}, 413, headers=SECURITY_HEADERS)
    assignment, handed = form.get("assignment"), form.get("notebook")
    if assignment not in server.config.assignments or not isinstance(handed, tuple):
        return JSONResponse({"error": f"give assignment (one of "
                                      f"{', '.join(server.config.assignments)}) and notebook"},
                            400, headers=SECURITY_HEADERS)
    attempt, problem = await run_in_threadpool(_accept, server, student, assignment, *handed)
    if attempt is None:
        return JSONResponse({"error": problem}, 400, headers=SECURITY_HEADERS)
    return JSONResponse({"attempt": attempt.public_id, "state": attempt.state,
                         "status": f"/api/attempts/{attempt.public_id}",
                         "page": f"/s/attempts/{attempt.public_id}"}, 202,
                        headers=SECURITY_HEADERS)


async def api_attempt(request: Request) -> Response:
    server = server_of(request)
    student = await _bearer(request)
    if student is None:
        return JSONResponse({"error": "not a valid token"}, 401, headers=SECURITY_HEADERS)
    if not server.requests.allow(f"student:{student}"):
        return JSONResponse({"error": "too many requests"}, 429, headers=SECURITY_HEADERS)
    attempt = await run_in_threadpool(server.store.attempt, request.path_params["attempt"])
    if attempt is None or attempt.student != student:
        return JSONResponse({"error": "not found"}, 404, headers=SECURITY_HEADERS)
    return JSONResponse(await run_in_threadpool(_status, server, attempt),
                        headers=SECURITY_HEADERS)


async def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    server = server_of(request)
    return await run_in_threadpool(server.store.student_by_token,
                                   auth.digest(header[7:].strip()[:200]))


# --------------------------------------------------------------------------- instructors


async def instructor_login(request: Request) -> Response:
    server = server_of(request)
    problem, status = "", 200
    if request.method == "POST":
        form = await _form(request)
        pre = request.cookies.get(auth.PRESESSION_COOKIE, "")
        if form is None or not auth.same(form.get("csrf"), auth.form_token(server.secret, pre)):
            problem, status = "The form expired; please try again.", 403
        elif server.signins.blocked(f"ip:{_client(request)}"):
            return message(request, "Too many attempts", "Please wait a minute.", 429)
        else:
            name = _text(form, "name", 100)
            stored = await run_in_threadpool(server.store.instructor_password, name)
            ok = await run_in_threadpool(auth.check_password, _text(form, "password", 500),
                                         stored)
            if ok:
                value, _ = await run_in_threadpool(server.sessions.start, "instructor", name)
                response: Response = redirect("/i/")
                set_session_cookie(response, request, value)
                return response
            server.signins.allow(f"ip:{_client(request)}")  # only failures count
            problem, status = "Wrong name or password.", 403
    pre = request.cookies.get(auth.PRESESSION_COOKIE) or secrets.token_urlsafe(24)
    response = html(server.render("instructor_login.html.j2", session=None, problem=problem,
                                  csrf=auth.form_token(server.secret, pre)), status)
    response.set_cookie(auth.PRESESSION_COOKIE, pre, httponly=True, samesite="lax",
                        secure=_secure(request), path="/")
    return response


async def instructor_first(request: Request) -> Response:
    """The one-time link printed at start-up: a session, then the form to set a password."""
    server = server_of(request)
    if server.signins.blocked(f"ip:{_client(request)}"):
        return message(request, "Too many attempts", "Please wait a minute.", 429)
    name = await run_in_threadpool(server.store.use_signin_link,
                                   auth.digest(request.path_params["token"]))
    if name is None:
        server.signins.allow(f"ip:{_client(request)}")
        return message(request, "Link used", "This sign-in link was used or has expired; "
                       "sign in with your password.", 403)
    value, _ = await run_in_threadpool(server.sessions.start, "instructor", name)
    response = redirect("/i/password")
    set_session_cookie(response, request, value)
    return response


@guarded("instructor")
async def instructor_password(request: Request, session: auth.Session, form: Any) -> Response:
    server = server_of(request)
    problem = ""
    if form is not None:
        password = _text(form, "password", 500)
        if len(password) < 10:
            problem = "A password needs at least 10 characters."
        elif password != _text(form, "again", 500):
            problem = "The two passwords differ."
        else:
            hashed = await run_in_threadpool(auth.hash_password, password)
            await run_in_threadpool(server.store.set_instructor, session.who, hashed,
                                    session.who)
            return redirect("/i/")
    return html(server.render("password.html.j2", session=session, problem=problem))


@guarded("instructor")
async def overview(request: Request, session: auth.Session, form: Any) -> Response:
    server = server_of(request)

    def build() -> str:
        assignments = []
        for name in server.config.assignments:
            rows = server.rows(name)
            counts = gradebook.Counts.of([r.final for r in rows])
            settings = course_state.settings(server.store, name)
            assignments.append({"name": name, "line": counts.line(), "counts": counts,
                                "released": settings.get("released"),
                                "review": sum(1 for r in rows if r.status in
                                              ("needs review", "ungradable")),
                                "grading": sum(1 for r in rows if r.pending)})
        return server.render("overview.html.j2", session=session, assignments=assignments,
                             queue=server.store.queue_counts(),
                             workers=len(server.workers))

    return html(await run_in_threadpool(build))


def _assignment(request: Request, server: Server) -> str | None:
    name = request.path_params["assignment"]
    return name if name in server.config.assignments else None


SORTS = {"name": lambda r: (r.student.name or r.student.id).casefold(),
         "id": lambda r: r.student.id, "section": lambda r: r.student.section,
         "status": lambda r: r.status,
         "score": lambda r: -1 if r.final.score is None else r.final.score,
         "late": lambda r: r.final.late_days, "attempts": lambda r: r.attempts}


@guarded("instructor")
async def gradebook_page(request: Request, session: auth.Session, form: Any) -> Response:
    server = server_of(request)
    assignment = _assignment(request, server)
    if assignment is None:
        return not_found(request, session)
    query = request.query_params

    def build() -> str:
        rows = server.rows(assignment)
        found = server.similar(assignment, rows)
        similar = {s for p in found.pairs for s in (p.a, p.b)}
        shown = [r for r in rows if _matches(r, query, similar)]
        key = query.get("sort", "name")
        shown.sort(key=SORTS.get(key, SORTS["name"]), reverse=query.get("order") == "desc")
        return server.render(
            "gradebook.html.j2", session=session, assignment=assignment, rows=shown,
            total=len(rows), similar=similar, query=dict(query), sort=key,
            order=query.get("order", "asc"),
            sections=sorted({r.student.section for r in rows if r.student.section}),
            statuses=["graded", "late", "needs review", "ungradable", "missing", "grading"],
            stats=_test_stats(rows), counts=gradebook.Counts.of([r.final for r in rows]))

    return html(await run_in_threadpool(build))


def _matches(row: course_state.Row, query: Any, similar: set[str]) -> bool:
    """The gradebook's filters: status, section, late, needs review, similar, score range."""
    if query.get("status") and row.status != query["status"]:
        return False
    if query.get("section") and row.student.section != query["section"]:
        return False
    if query.get("late") == "yes" and not (row.final.late_days or row.status == "late"):
        return False
    if query.get("review") == "yes" and row.status not in ("needs review", "ungradable"):
        return False
    if query.get("similar") == "yes" and row.student.id not in similar:
        return False
    bounds: tuple[tuple[str, Callable[[float, float], bool]], ...] = (
        ("min", lambda s, b: s >= b), ("max", lambda s, b: s <= b))
    for bound, keep in bounds:
        text = query.get(bound, "")
        if text:
            try:
                value = float(text)
            except ValueError:
                continue
            if row.final.score is None or not keep(row.final.score, value):
                return False
    return True


def _test_stats(rows: list[course_state.Row]) -> list[dict[str, Any]]:
    """Per test: how many passed, the mean score and how many wait for review."""
    graded = [r.result for r in rows if r.result is not None and r.result.error is None]
    stats: dict[str, dict[str, Any]] = {}
    for result in graded:
        for test in result.tests:
            entry = stats.setdefault(test.name, {"name": test.name, "max": test.max_score,
                                                 "visibility": test.visibility, "n": 0,
                                                 "passed": 0, "sum": 0.0, "review": 0})
            entry["n"] += 1
            entry["passed"] += test.status == "passed"
            entry["sum"] += test.score
            entry["review"] += test.status == "review"
    for entry in stats.values():
        entry["rate"] = f"{100 * entry['passed'] / entry['n']:.0f} %"
        entry["mean"] = results.number(entry["sum"] / entry["n"])
    return list(stats.values())


@guarded("instructor")
async def review_page(request: Request, session: auth.Session, form: Any) -> Response:
    server = server_of(request)
    assignment = _assignment(request, server)
    if assignment is None:
        return not_found(request, session)

    def build() -> str:
        rows = server.rows(assignment)
        found = server.similar(assignment, rows)
        names = {r.student.id: r.student.name or r.student.id for r in rows}
        return server.render(
            "review.html.j2", session=session, assignment=assignment,
            review=[r for r in rows if r.status == "needs review"],
            ungradable=[r for r in rows if r.status == "ungradable"],
            pairs=found.pairs[:50], names=names)

    return html(await run_in_threadpool(build))


@guarded("instructor")
async def student_detail(request: Request, session: auth.Session, form: Any) -> Response:
    server = server_of(request)
    assignment = _assignment(request, server)
    if assignment is None:
        return not_found(request, session)
    student_id = request.path_params["student"]

    def build() -> str | None:
        row = next((r for r in server.rows(assignment) if r.student.id == student_id), None)
        if row is None:
            return None
        return server.render(
            "student_detail.html.j2", session=session, assignment=assignment, row=row,
            attempts=server.store.attempts(student_id, assignment),
            adjustments=[a for a in server.store.adjustments(assignment)
                         if a["student"] == student_id],
            extension=server.store.extensions(assignment).get(student_id, ""),
            submitted=server.store.submitted_times(assignment).get(student_id, ""),
            timezone=course_state.timezone(server.store))

    page = await run_in_threadpool(build)
    return not_found(request, session) if page is None else html(page)


@guarded("instructor")
async def instructor_attempt(request: Request, session: auth.Session, form: Any) -> Response:
    """An attempt as the instructor sees it: every test, and the final grade where it is
    the attempt that counts."""
    server = server_of(request)
    attempt = await run_in_threadpool(server.store.attempt, request.path_params["attempt"])
    if attempt is None:
        return not_found(request, session)

    def build() -> str:
        back = f"/i/{attempt.assignment}/students/{attempt.student}"
        result = server.result(attempt) if attempt.state == "done" else None
        if result is None:  # (a done attempt's result is stored with its state)
            return _waiting(server, attempt, session, back=back)
        row = next((r for r in server.rows(attempt.assignment)
                    if r.student.id == attempt.student), None)
        view = (course_state.page_view(row.final) if row is not None and row.attempt
                is not None and row.attempt.id == attempt.id else None)
        page = report.render_student(result, final=view)
        return _with_nav(page, "the instructor's view: every test", back=back,
                         label=attempt.student)

    return html(await run_in_threadpool(build))


@guarded("instructor")
async def adjust(request: Request, session: auth.Session, form: dict[str, Any]) -> Response:
    """A review's points and comment for one test (or the total), stored with its author."""
    server = server_of(request)
    assignment = _assignment(request, server)
    student = request.path_params["student"]
    if assignment is None or server.store.student(student) is None:
        return not_found(request, session)
    test = _text(form, "test", 300) or None
    tests = {t.name for t in server.rubrics[assignment].tests}
    if test is not None and test not in tests:
        return message(request, "Unknown test", f"{assignment} has no test {test!r}.", 400,
                       session)
    try:
        points = float(_text(form, "points", 40))
        if points != points or abs(points) > 1e6:
            raise ValueError
    except ValueError:
        return message(request, "Points", "Points must be a number (negative takes away).",
                       400, session)
    comment = _text(form, "comment", 2000)
    if not comment:
        return message(request, "Comment", "Every adjustment says why: write a comment.", 400,
                       session)
    await run_in_threadpool(server.store.add_adjustment, assignment, student, test, points,
                            comment, session.who)
    return redirect(_text(form, "next", 300) if _text(form, "next", 300).startswith("/i/")
                    else f"/i/{assignment}/students/{student}")


@guarded("instructor")
async def remove_adjustment(request: Request, session: auth.Session, form: Any) -> Response:
    server = server_of(request)
    assignment = _assignment(request, server)
    if assignment is None:
        return not_found(request, session)
    await run_in_threadpool(server.store.delete_adjustment,
                            int(request.path_params["adjustment"]), session.who)
    return redirect(f"/i/{assignment}/students/{request.path_params['student']}")


@guarded("instructor")
async def per_student_time(request: Request, session: auth.Session, form: dict[str, Any]
                           ) -> Response:
    """An extension (a new deadline) or a submission time for one student; empty removes."""
    server = server_of(request)
    assignment = _assignment(request, server)
    student = request.path_params["student"]
    kind = request.path_params["kind"]
    if assignment is None or kind not in ("extension", "submitted") or \
            server.store.student(student) is None:
        return not_found(request, session)
    text = _text(form, "at", 60)
    try:
        value = course_state.parse_time(text, course_state.timezone(server.store)) \
            if text else None
    except GraderError as exc:
        return message(request, "Time", str(exc), 400, session)
    setter = server.store.set_extension if kind == "extension" else \
        server.store.set_submitted_time
    await run_in_threadpool(setter, assignment, student, value, session.who)
    return redirect(f"/i/{assignment}/students/{student}")


@guarded("instructor")
async def assignment_page(request: Request, session: auth.Session, form: Any) -> Response:
    server = server_of(request)
    assignment = _assignment(request, server)
    if assignment is None:
        return not_found(request, session)

    def build() -> str:
        settings = course_state.settings(server.store, assignment)
        late = settings["late"] or dataclasses.asdict(course_state.default_late(server.store))
        return server.render("assignment.html.j2", session=session, assignment=assignment,
                             settings=settings, late=late, feedback=course_state.FEEDBACK,
                             timezone=course_state.timezone(server.store),
                             note=request.query_params.get("note", ""))

    return html(await run_in_threadpool(build))


@guarded("instructor")
async def assignment_settings(request: Request, session: auth.Session, form: dict[str, Any]
                              ) -> Response:
    server = server_of(request)
    assignment = _assignment(request, server)
    if assignment is None:
        return not_found(request, session)
    try:
        settings = _settings_from(form, course_state.settings(server.store, assignment),
                                  course_state.timezone(server.store))
    except (GraderError, ValueError) as exc:
        return message(request, "Settings", f"Not saved: {exc}", 400, session)
    await run_in_threadpool(server.store.set_assignment_settings, assignment, settings,
                            session.who)
    return redirect(f"/i/{assignment}?note=saved")


def _settings_from(form: dict[str, Any], current: dict[str, Any], zone: str) -> dict[str, Any]:
    def number(key: str, default: float | None) -> float | None:
        text = _text(form, key, 40)
        if not text:
            return default
        value = float(text)
        if value != value or value < 0:
            raise ValueError(f"{key} must be a number of at least 0")
        return value

    feedback = _text(form, "feedback", 20) or "public"
    if feedback not in course_state.FEEDBACK:
        raise ValueError(f"feedback must be one of {', '.join(course_state.FEEDBACK)}")
    per_day = number("per_day", 0.0) or 0.0
    if per_day > 1:
        raise ValueError("per_day is a fraction of the score between 0 and 1 (0.1 is 10%)")
    zero = number("zero_after_days", None)
    attempts = number("attempts_per_day", None)
    deadline = _text(form, "deadline", 60)
    return {**current, "deadline": course_state.parse_time(deadline, zone) if deadline else None,
            "late": {"per_day": per_day, "grace_minutes": number("grace_minutes", 0.0) or 0.0,
                     "zero_after_days": int(zero) if zero is not None else None},
            "canvas_column": _text(form, "canvas_column", 200),
            "attempts_per_day": int(attempts) if attempts else None,
            "cooldown_minutes": number("cooldown_minutes", 0.0) or 0.0, "feedback": feedback}


@guarded("instructor")
async def release(request: Request, session: auth.Session, form: dict[str, Any]) -> Response:
    server = server_of(request)
    assignment = _assignment(request, server)
    if assignment is None:
        return not_found(request, session)
    settings = course_state.settings(server.store, assignment)
    on = _text(form, "release", 10) != "no"
    settings["released"] = course_state.iso(time.time()) if on else None
    await run_in_threadpool(server.store.set_assignment_settings, assignment, settings,
                            session.who, "released" if on else "release withdrawn")
    return redirect(f"/i/{assignment}?note={'released' if on else 'withdrawn'}")


@guarded("instructor")
async def rescore_page(request: Request, session: auth.Session, form: dict[str, Any]
                       ) -> Response:
    server = server_of(request)
    assignment = _assignment(request, server)
    if assignment is None:
        return not_found(request, session)
    try:
        changed, same, run = await run_in_threadpool(server.rescore_all, assignment,
                                                     session.who)
    except GraderError as exc:
        return message(request, "Re-score", f"The rubric cannot be loaded: {exc}", 400,
                       session)
    note = f"{changed} re-scored without running, {same} unchanged, {run} would need a run"
    return redirect(f"/i/{assignment}?note={note}")


@guarded("instructor")
async def export_gradebook(request: Request, session: auth.Session, form: Any) -> Response:
    server = server_of(request)
    assignment = _assignment(request, server)
    kind = request.path_params["file"]
    if assignment is None or kind not in ("grades.csv", "canvas.csv", "moodle.csv"):
        return not_found(request, session)

    def build() -> str:
        rows = server.rows(assignment)
        finals = [r.final for r in rows]
        if kind == "grades.csv":
            return gradebook.grades_csv(finals, [t.name for t in server.rubrics[assignment]
                                                 .tests])
        if kind == "canvas.csv":
            column = course_state.settings(server.store, assignment)["canvas_column"]
            return gradebook.canvas_csv(finals, column or assignment)
        return gradebook.moodle_csv(finals)

    text = await run_in_threadpool(build)
    return _download(text, f"{assignment}-{kind}", "text/csv")


def _download(text: str, filename: str, kind: str) -> Response:
    return Response(text, media_type=f"{kind}; charset=utf-8", headers={
        **SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'})


@guarded("instructor")
async def course_page(request: Request, session: auth.Session, form: Any) -> Response:
    server = server_of(request)

    def build() -> str:
        return server.render("course.html.j2", session=session,
                             students=server.store.students(),
                             audit=server.store.audit_log(100),
                             note=request.query_params.get("note", ""))

    return html(await run_in_threadpool(build))


@guarded("instructor")
async def course_export(request: Request, session: auth.Session, form: Any) -> Response:
    server = server_of(request)
    text = await run_in_threadpool(course_state.export_file, server.store,
                                   server.config.assignments)
    return _download(text, "course.toml", "application/toml")


@guarded("instructor")
async def course_import(request: Request, session: auth.Session, form: dict[str, Any]
                        ) -> Response:
    server = server_of(request)
    handed = form.get("course")
    if not isinstance(handed, tuple):
        return message(request, "No file", "Choose a course file (TOML).", 400, session)
    try:
        text = handed[1].decode("utf-8")
        tests = {name: {t.name for t in r.tests} for name, r in server.rubrics.items()}
        rows = await run_in_threadpool(
            lambda: course_state.import_file(server.store, text,
                                             assignments=server.config.assignments,
                                             tests=tests, author=session.who))
    except (GraderError, UnicodeDecodeError) as exc:
        return message(request, "Not imported", f"Nothing changed: {exc}", 400, session)
    summary = rows.summary()
    return redirect(f"/i/course?note=imported: {summary['extensions']} extensions, "
                    f"{summary['submitted']} submission times, {summary['adjustments']} "
                    f"adjustments")


@guarded("instructor")
async def roster_import(request: Request, session: auth.Session, form: dict[str, Any]
                        ) -> Response:
    from grader.course import roster

    server = server_of(request)
    handed = form.get("roster")
    if not isinstance(handed, tuple):
        return message(request, "No file", "Choose a roster (CSV).", 400, session)

    def load() -> int:
        with contextlib.ExitStack() as stack:
            import tempfile

            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            (folder / "roster.csv").write_bytes(handed[1])
            loaded = roster.load(folder / "roster.csv")
        count = server.store.set_roster(loaded.students, session.who)
        auth.refresh_tokens(server.store, server.secret)
        return count

    try:
        count = await run_in_threadpool(load)
    except GraderError as exc:
        return message(request, "Not imported", f"Nothing changed: {exc}", 400, session)
    return redirect(f"/i/course?note={count} students on the roster")


@guarded("instructor")
async def tokens_csv(request: Request, session: auth.Session, form: Any) -> Response:
    """Each student's personal sign-in link and token, to mail out."""
    server = server_of(request)
    base = str(request.base_url).rstrip("/")

    def build() -> str:
        tokens = auth.refresh_tokens(server.store, server.secret)
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["id", "name", "email", "link", "token"])
        for student in server.store.students():
            token = tokens[student.id]
            writer.writerow([gradebook._defused(v) for v in
                             (student.id, student.name, student.email,
                              f"{base}/signin/{token}", token)])
        server.store.audit(session.who, "tokens downloaded", {})
        return buffer.getvalue()

    return _download(await run_in_threadpool(build), "sign-in-links.csv", "text/csv")


@guarded("instructor")
async def new_token(request: Request, session: auth.Session, form: Any) -> Response:
    server = server_of(request)
    student = request.path_params["student"]
    if server.store.student(student) is None:
        return not_found(request, session)
    await run_in_threadpool(server.store.new_token_generation, student, session.who)
    await run_in_threadpool(auth.refresh_tokens, server.store, server.secret)
    return redirect(f"/i/course?note=a new token for {student}; the old one no longer works")


async def health(request: Request) -> Response:
    server = server_of(request)
    counts = await run_in_threadpool(server.store.queue_counts)
    return JSONResponse({"ok": True, "queue": counts, "workers": len(server.workers)},
                        headers=SECURITY_HEADERS)


async def fallback(request: Request) -> Response:
    return not_found(request, await current_session(request))


def routes() -> list[Route]:
    return [
        Route("/", home),
        Route("/health", health),
        Route("/signin/{token}", signin_link),
        Route("/signin", signin_form, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/s/", student_home),
        Route("/s/{assignment}/upload", upload, methods=["POST"]),
        Route("/s/attempts/{attempt}", student_attempt),
        Route("/s/attempts/{attempt}/status", student_attempt_status),
        Route("/api/submit", api_submit, methods=["POST"]),
        Route("/api/attempts/{attempt}", api_attempt),
        Route("/i/login", instructor_login, methods=["GET", "POST"]),
        Route("/i/first/{token}", instructor_first),
        Route("/i/password", instructor_password, methods=["GET", "POST"]),
        Route("/i/", overview),
        Route("/i/course", course_page),
        Route("/i/course.toml", course_export),
        Route("/i/course/import", course_import, methods=["POST"]),
        Route("/i/roster", roster_import, methods=["POST"]),
        Route("/i/tokens.csv", tokens_csv),
        Route("/i/tokens/{student}", new_token, methods=["POST"]),
        Route("/i/attempts/{attempt}", instructor_attempt),
        Route("/i/{assignment}", assignment_page),
        Route("/i/{assignment}/settings", assignment_settings, methods=["POST"]),
        Route("/i/{assignment}/release", release, methods=["POST"]),
        Route("/i/{assignment}/rescore", rescore_page, methods=["POST"]),
        Route("/i/{assignment}/gradebook", gradebook_page),
        Route("/i/{assignment}/review", review_page),
        Route("/i/{assignment}/export/{file}", export_gradebook),
        Route("/i/{assignment}/students/{student}", student_detail),
        Route("/i/{assignment}/students/{student}/adjust", adjust, methods=["POST"]),
        Route("/i/{assignment}/students/{student}/adjustments/{adjustment:int}/delete",
              remove_adjustment, methods=["POST"]),
        Route("/i/{assignment}/students/{student}/{kind}", per_student_time, methods=["POST"]),
        Route("/{path:path}", fallback, methods=["GET", "POST"]),
    ]


def create_app(server: Server, *, workers: bool = True) -> Starlette:
    """The ASGI application of ``server``; ``workers``: start its grading processes with
    the application (and stop them with it)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if workers:
            server.start_workers()
        try:
            yield
        finally:
            if workers:
                server.stop_workers()

    app = Starlette(routes=routes(), lifespan=lifespan)
    app.state.server = server
    return app
