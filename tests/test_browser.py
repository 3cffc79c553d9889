"""The feedback pages in a real browser: headless Debian Chromium driven by Playwright.

Nothing is downloaded: Playwright uses /usr/bin/chromium (never ``playwright install``). Without
it these tests are skipped, unless the CI environment variable is set, where they fail.
Pages come from two sources: hand-written result fixtures (every feature of the page, and a
hostile one) and a real batch grading of the example submissions in ``submissions/convolution``.
Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.core.results import load
from grader.render.report import render_index, render_student

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "results"
ARTIFACTS = ROOT / "test-artifacts"
README_SHOT = ARTIFACTS / "feedback-screenshot.png"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = ["failures", "full_marks", "index", "hostile", "real_failures", "real_full_marks",
         "real_index", "real_function", "real_similarity", "course_index", "course_adjusted",
         "course_late", "class_index"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1000, "height": 900}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is an error rather than a skip)")
    pytest.skip(reason)


REAL = {"real_failures": "frank_flipped_kernel", "real_full_marks": "erin_reference",
        "real_index": "index", "real_function": "class/function-conv2d_forward",
        "real_similarity": "class/similarity"}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, Path]:
    """All pages written to a temporary folder, with safe file names the index links to."""
    paths = _fixture_pages(tmp_path_factory.mktemp("site"))
    out = tmp_path_factory.mktemp("graded")
    _grade_examples(out)
    paths.update({name: out / f"{stem}.html" for name, stem in REAL.items()})
    course = tmp_path_factory.mktemp("course")
    _grade_a_course(course)
    paths.update({"course_index": course / "out" / "index.html",
                  "course_adjusted": course / "out" / "s1.html",
                  "course_late": course / "out" / "s2.html"})
    paths["class_index"] = _a_class(tmp_path_factory.mktemp("class")) / "index.html"
    return paths


CLASS_ROSTER = ("id,name,section,moodle id\n"
                "s1,Ada Lovelace,A,501\ns2,Alan Turing,B,502\ns3,Grace Hopper,A,503\n"
                "s4,Kurt Gödel,B,504\ns5,Emmy Noether,A,505\ns6,Barbara Liskov,B,506\n")
CLASS_COURSE = """
[late]
per_day = 0.2
[assignments.backprop]
deadline = 2026-11-20T23:59:00
submitted = { s1 = 2026-11-21T08:00:00 }
[[adjustments]]
student = "s1"
points = 6.04
comment = "Checked by hand"
by = "Dr. Lee"
"""


def _a_class(folder: Path) -> Path:
    """An overview rebuilt from stored results, one student of each kind: late with an
    adjustment (s1, 8.83), full marks (s2), missing (s3), ungradable (s4), waiting for review
    (s5, 4), plain (s6, 5); sections A and B."""
    import dataclasses

    from grader.core.results import save
    from grader.course import classroom

    (folder / "roster.csv").write_text(CLASS_ROSTER)
    (folder / "course.toml").write_text(CLASS_COURSE)
    out = folder / "out"
    out.mkdir()
    failures = load(FIXTURES / "failures.json")
    held = dataclasses.replace(failures.tests[0], status="review", score=0.0)
    kinds = {"s1": failures, "s2": load(FIXTURES / "full_marks.json"),
             "s4": load(FIXTURES / "ungradable.json"),
             "s5": dataclasses.replace(failures, tests=(held, *failures.tests[1:])),
             "s6": failures}
    for student, result in kinds.items():
        save(dataclasses.replace(result, student=student, assignment="backprop"),
             out / f"{student}.json")
    with classroom.intake([], out_dir=out, roster_path=folder / "roster.csv",
                          course_path=folder / "course.toml") as intake:
        classroom.rebuild(out, assignment="backprop", max_score=15, intake=intake)
    return out


# Alan's bug in the course: the kernel flipped (convolution, not the lecture's correlation)
FLIPPED_CONV1D = """
def conv1d(x, w, stride=1):
    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float)[::-1]
    n = (len(x) - len(w)) // stride + 1
    return np.array([np.dot(x[i * stride:i * stride + len(w)], w) for i in range(n)])
"""


def _grade_a_course(folder: Path) -> None:
    """A Moodle download graded with a roster and a course file: an adjustment with a comment
    (s1), a late submission (s2), a student with no submission (s3)."""
    from grader.run.layers import SandboxConfig
    from tests.conftest import build_notebook
    from tests.test_gradebook import COURSE, ROSTER, grade, moodle_zip

    (folder / "roster.csv").write_text(ROSTER)
    (folder / "course.toml").write_text(COURSE)
    ada = build_notebook(folder, "convolution", name="ada")
    alan = build_notebook(folder, "convolution", name="alan", replace={"conv1d": FLIPPED_CONV1D})
    archive = moodle_zip(folder / "moodle.zip", {"Ada Lovelace_501": ada,
                                                 "Alan Turing_502": alan})
    grade([archive], folder / "out", SandboxConfig.from_env(),
          roster_path=folder / "roster.csv", course_path=folder / "course.toml")


def _grade_examples(out: Path) -> None:
    """The real pipeline on the example submissions: sandbox, checks, rendering."""
    from grader.checks import rubric
    from grader.course.batch import grade_all
    from grader.run.layers import SandboxConfig

    grade_all([ROOT / "submissions" / "convolution"], rubric.load("convolution"), out,
              sandbox=SandboxConfig.from_env(), progress=False)


def _fixture_pages(folder: Path) -> dict[str, Path]:
    results = {p.stem: load(p) for p in sorted(FIXTURES.glob("*.json"))}
    links = {r.student: f"{name}.html" for name, r in results.items()}
    paths = {}
    for name, result in results.items():
        paths[name] = folder / f"{name}.html"
        paths[name].write_text(render_student(result, generated="2025-06-01"), encoding="utf-8")
    paths["index"] = folder / "index.html"
    index = render_index(list(results.values()), generated="2025-06-01", links=links)
    paths["index"].write_text(index, encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


class Visit:
    """A page opened from its file:// URL, recording everything that should never happen."""

    def __init__(self, browser, path: Path, viewport: dict[str, int]) -> None:
        self.url = path.as_uri()
        self.context = browser.new_context(viewport=viewport, java_script_enabled=True)
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.console: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.goto(self.url, wait_until="load")

    def _route(self, route) -> None:
        if route.request.url == self.url:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def _console(self, message) -> None:
        if message.type == "error":
            self.console.append(message.text)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def assert_quiet(self) -> None:
        assert self.console == [], self.console
        assert self.errors == [], self.errors
        assert self.dialogs == [], self.dialogs
        assert self.blocked == [], self.blocked
        assert [u for u in self.requests if not u.startswith("data:")] == [self.url]

    def overflow(self) -> int:
        return self.page.evaluate(
            "document.body.scrollWidth - document.documentElement.clientWidth"
        )

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, site):
    opened: list[Visit] = []

    def open_page(name: str, viewport: dict[str, int] = DESKTOP) -> Visit:
        opened.append(Visit(browser, site[name], viewport))
        return opened[-1]

    yield open_page
    for v in opened:
        v.close()


def _screenshot(v: Visit, name: str) -> None:
    """A picture for people to look at, not a check. Headless Chromium now and then fails to
    capture a tall page whole ("Unable to capture screenshot", seen once in CI on a 1000 ×
    8700 page): one more try, then the visible part rather than a failed test."""
    from playwright.sync_api import Error

    ARTIFACTS.mkdir(exist_ok=True)
    path = str(ARTIFACTS / f"{name}.png")
    for whole in (True, True, False):
        try:
            v.page.screenshot(path=path, full_page=whole)
            return
        except Error:
            if not whole:
                raise


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_quietly_and_fits_a_phone(visit, name):
    desktop = visit(name)
    desktop.assert_quiet()
    _screenshot(desktop, name)
    phone = visit(name, PHONE)
    phone.assert_quiet()
    assert phone.overflow() <= 0, f"{name}: body is wider than a 390 px phone screen"
    _screenshot(phone, f"{name}-phone")


def test_failures_page_shows_score_sections_and_mnist(visit):
    v = visit("failures")
    page = v.page
    assert page.get_by_test_id("score").is_visible()
    assert "5 / 15 points" in page.get_by_test_id("score").inner_text()
    sections = page.get_by_test_id("function")
    assert sections.count() == 8
    for i in range(sections.count()):
        assert sections.nth(i).is_visible()
    assert page.locator("#fix-first").is_visible()
    confusion = page.get_by_test_id("confusion")
    assert confusion.is_visible() and confusion.locator("tbody tr").count() == 10
    digits = page.locator("ul.digits img")
    assert digits.count() == 20 and digits.first.is_visible()
    assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert page.get_by_text("hidden test", exact=True).first.is_visible()


def test_full_marks_page(visit):
    page = visit("full_marks").page
    assert "15 / 15 points" in page.get_by_test_id("score").inner_text()
    assert page.get_by_text("Every test passes. Well done!").is_visible()
    assert page.get_by_test_id("confusion").is_visible()


def test_index_links_every_student(visit, site):
    page = visit("index").page
    links = page.locator("a.student-link")
    students = [load(p).student for p in sorted(FIXTURES.glob("*.json"))]
    assert links.count() == len(students)
    assert sorted(links.all_inner_texts()) == sorted(students)
    for i in range(links.count()):
        assert links.nth(i).is_visible()
        href = links.nth(i).get_attribute("href")
        assert (site["index"].parent / href).resolve().exists(), href
    assert page.locator("svg.plot").is_visible()  # the histogram


def test_hostile_page_shows_injected_markup_as_text(visit):
    v = visit("hostile")
    v.assert_quiet()
    page = v.page
    assert page.locator("script").count() == 0
    assert page.locator("svg, iframe, img:not([src^='data:image/png;base64,'])").count() == 0
    student = page.get_by_test_id("student")
    assert student.is_visible() and student.inner_text() == "<script>alert(1)</script>"
    body = page.inner_text("body")
    for text in (
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "{{ 7*7 }}",
        '<a href="javascript:alert(1)">click me</a>',
    ):
        assert text in body
    assert page.get_by_text("<img src=x onerror=alert(1)>", exact=True).first.is_visible()
    assert page.evaluate("getComputedStyle(document.body).display") != "none"


def test_readme_screenshot(visit):
    """A small screenshot of a really graded page: a late student of a class graded with a
    roster and a course file (``docs/`` keeps a copy for the README)."""
    v = visit("course_late", {"width": 1000, "height": 1800})
    png = v.page.screenshot(full_page=False)
    README_SHOT.parent.mkdir(exist_ok=True, parents=True)
    README_SHOT.write_bytes(_small_png(png))
    assert 0 < README_SHOT.stat().st_size < 400_000


def _small_png(png: bytes) -> bytes:
    """Quantise to a 128-colour palette: the text stays crisp, the file shrinks several fold."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    small = image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def test_really_graded_pages(visit):
    """Pages the real pipeline wrote: the diagnosis, the student's code and every link work."""
    failures = visit("real_failures").page
    assert failures.get_by_test_id("score").is_visible()
    assert failures.get_by_text("cross-correlation").first.is_visible()
    assert failures.get_by_text("def conv1d").first.is_visible()
    full = visit("real_full_marks").page
    assert full.get_by_text("Every test passes. Well done!").is_visible()
    index = visit("real_index")
    links = index.page.locator("a.student-link")
    assert links.count() == len(list((ROOT / "submissions" / "convolution").glob("*.ipynb")))
    for i in range(links.count()):
        href = links.nth(i).get_attribute("href")
        assert (index.url and href and href.endswith(".html"))


def test_class_view_pages_are_linked_from_the_real_overview(visit, site):
    """The overview links a page per function and the similarity page; every link resolves."""
    index = visit("real_index").page
    links = index.locator("a.function-link")
    assert links.count() >= 8  # every function of the convolution practical
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    hrefs.append(index.locator("a.similarity-link").get_attribute("href"))
    for href in hrefs:
        assert (site["real_index"].parent / href).resolve().is_file(), href
    function = visit("real_function").page
    assert function.get_by_test_id("group").count() >= 2  # the graded class differs in conv2d
    students = function.locator("a.student-link")
    for i in range(students.count()):
        href = students.nth(i).get_attribute("href")
        assert (site["real_function"].parent / href).resolve().is_file(), href


def test_course_pages_show_late_work_adjustments_and_the_missing(visit):
    """The overview and the students' pages of a class graded with a roster and a course file:
    the adjustment's comment and author, the late penalty, the missing student, one count."""
    adjusted = visit("course_adjusted").page
    assert adjusted.get_by_text("Dr. Lee").first.is_visible()
    assert adjusted.get_by_text("Bonus for the <b>tidy</b> notebook").first.is_visible()
    late_page = visit("course_late").page
    late = late_page.get_by_test_id("final-grade")
    assert late.is_visible()
    assert late.get_by_text("1 day: 25% of the score taken").is_visible()
    assert late.get_by_text("Tests", exact=True).is_visible()
    # the header: the grade that counts first, in large type, what made it beside it
    assert late_page.get_by_test_id("student").inner_text() == "Alan Turing"
    grade = late_page.get_by_test_id("grade")
    steps = late_page.get_by_test_id("steps")
    assert grade.is_visible() and steps.is_visible()
    assert "1 day late −25%" in steps.inner_text()
    size = "el => parseFloat(getComputedStyle(el).fontSize)"
    assert grade.evaluate(size) > 1.5 * steps.evaluate(size)
    assert grade.inner_text() == late.get_by_test_id("final-score").inner_text().split(" /")[0]
    index = visit("course_index").page
    assert index.get_by_test_id("missing").is_visible()
    assert index.get_by_text("Grace Hopper").first.is_visible()


def _shown(page) -> list[str]:
    """The students the overview's list shows, top to bottom."""
    return page.locator("#student-table tbody tr:visible").evaluate_all(
        "rows => rows.map(r => r.dataset.id)")


def test_the_overview_lists_students_first_sorted_and_filtered(visit):
    """The list of students comes before the class's statistics; its script (allowed by the
    page's Content-Security-Policy through its hash alone) sorts and filters it."""
    v = visit("class_index")
    page = v.page
    v.assert_quiet()  # a script the policy refused would be a console error
    order = page.evaluate("[...document.querySelectorAll('main > section')].map(s => s.id)")
    assert order.index("students") < order.index("scores") < order.index("pass-rates")
    assert page.locator("#student-filters").is_visible()
    assert _shown(page) == ["s1", "s2", "s3", "s4", "s5", "s6"]  # the roster's order

    final = page.locator("#student-table th button", has_text="Final")
    final.click()
    assert _shown(page) == ["s5", "s6", "s1", "s2", "s3", "s4"]  # no grade: last
    assert page.locator("#student-table th[aria-sort=ascending]").inner_text().startswith("Final")
    final.click()
    assert _shown(page) == ["s2", "s1", "s6", "s5", "s3", "s4"]
    page.locator("#student-table th button", has_text="Student").click()
    assert _shown(page) == ["s1", "s2", "s6", "s5", "s3", "s4"]  # Ada, Alan, Barbara, Emmy...

    page.select_option("#filter-status", "late")
    assert _shown(page) == ["s1"]
    assert page.locator("#filter-count").inner_text() == "1 of 6 shown"
    page.select_option("#filter-status", "")
    page.select_option("#filter-section", "A")
    assert sorted(_shown(page)) == ["s1", "s3", "s5"]
    page.select_option("#filter-section", "")
    page.check("#filter-review")
    assert _shown(page) == ["s5"]
    page.uncheck("#filter-review")
    page.check("#filter-late")
    assert _shown(page) == ["s1"]
    page.uncheck("#filter-late")
    page.fill("#filter-low", "50")
    assert sorted(_shown(page)) == ["s1", "s2"]  # 58.9 % and 100 %
    page.fill("#filter-low", "")
    page.fill("#filter-high", "40")
    assert sorted(_shown(page)) == ["s5", "s6"]  # 26.7 % and 33.3 %
    v.assert_quiet()


def test_the_overview_without_scripts_shows_every_student(browser, site):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(site["class_index"].as_uri())
        assert _shown(page) == ["s1", "s2", "s3", "s4", "s5", "s6"]
        assert not page.locator("#student-filters").is_visible()
    finally:
        context.close()


def test_the_overview_refuses_any_other_script(browser, site, tmp_path):
    """The policy allows the overview's script by its hash: the same page with one more
    character in its script runs nothing."""
    html = site["class_index"].read_text(encoding="utf-8")
    changed = tmp_path / "index.html"
    changed.write_text(html.replace('"use strict";', '"use strict"; ', 1), encoding="utf-8")
    context = browser.new_context()
    try:
        page = context.new_page()
        refused = []
        page.on("console", lambda m: refused.append(m.text) if m.type == "error" else None)
        page.goto(changed.as_uri())
        assert not page.locator("#student-filters").is_visible()
        assert any("Content Security Policy" in text for text in refused), refused
    finally:
        context.close()
