"""The course server in a real browser: headless Debian Chromium driven by Playwright
(``executable_path=/usr/bin/chromium``; nothing is downloaded), against a real server process
on a loopback port that grades in the real sandbox.

The student's path: sign in by the personal link, hand in, watch the queue, read the
feedback, see the history. The instructor's: first sign-in by the one-time link, a password,
the overview, the review queue (a notebook the rules scan cannot read waits there), an
adjustment with a comment, the gradebook, release, an export. Screenshots of each main page
land in ``test-artifacts/serve-*.png``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.conftest import build_notebook
from tests.servekit import running_server, token
from tests.test_browser import ARGS, ARTIFACTS, CHROMIUM, _unavailable

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"serve-{name}.png"), full_page=False)


def test_a_student_and_an_instructor_end_to_end(chromium, tmp_path: Path) -> None:
    data = tmp_path / "data"
    flagged = build_notebook(tmp_path, "convolution", name="dave",
                             extra_cells=['import numpy as np\n'
                                          '_hidden = getattr(np, "con" + "volve")'])
    with running_server(data, jobs=1) as server:
        student_side(chromium, server.base, data)
        instructor_side(chromium, server.base, server.first_link(), data, flagged)


def student_side(chromium, base: str, data: Path) -> None:
    context = chromium.new_context(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/signin/{token(data, 's001')}")
    assert page.url == f"{base}/s/"
    assert page.locator("h1").inner_text() == "Alice Adams"
    shot(page, "student-home")
    notebook = ROOT / "submissions" / "convolution" / "frank_flipped_kernel.ipynb"
    page.locator("#convolution input[type=file]").set_input_files(str(notebook))
    page.locator("#convolution button").click()
    page.wait_for_url("**/s/attempts/**")
    shot(page, "student-waiting")
    page.wait_for_selector("text=Public tests only", timeout=120_000)  # the feedback page
    assert "conv2d: lecture example" in page.content()
    assert "random sizes" not in page.content()  # hidden tests wait for the deadline
    shot(page, "student-feedback")
    page.click("text=your attempts")
    rows = page.locator("table.attempts tr")
    assert rows.count() == 2 and "graded" in rows.nth(1).inner_text()
    shot(page, "student-history")
    assert not errors, errors
    context.close()


def instructor_side(chromium, base: str, link: str, data: Path, flagged: Path) -> None:
    # a second student's notebook that waits for review (code the rules scan cannot read)
    student = chromium.new_context()
    other = student.new_page()
    other.goto(f"{base}/signin/{token(data, 's004')}")
    other.locator("#convolution input[type=file]").set_input_files(str(flagged))
    other.locator("#convolution button").click()
    other.wait_for_selector("text=Public tests only", timeout=120_000)
    student.close()

    context = chromium.new_context(viewport={"width": 1200, "height": 900},
                                   accept_downloads=True)
    page = context.new_page()
    page.goto(base + link)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=again]", PASSWORD)
    page.click("text=Save")
    page.wait_for_url(f"{base}/i/")
    assert "needing review" in page.content()
    shot(page, "instructor-overview")
    page.click("text=Review queue")
    item = page.locator("#review-s004")
    assert "Rules" in item.inner_text()
    shot(page, "instructor-review")
    item.locator("input[name=points]").first.fill("0")
    item.locator("input[name=comment]").first.fill("getattr here is harmless: checked")
    item.locator("button").first.click()
    page.wait_for_selector("text=Nothing waits for review")
    page.goto(f"{base}/i/convolution/students/s001")
    form = page.locator("form.adjust").first
    form.locator("input[name=points]").fill("0.5")
    form.locator("input[name=comment]").fill("Nice <b>work</b> on the stride")
    form.locator("button").click()
    page.wait_for_selector("#adjustments")
    assert "Nice <b>work</b> on the stride" in page.locator("#adjustments").inner_text()
    shot(page, "instructor-student")
    page.goto(f"{base}/i/convolution/gradebook?sort=score&order=desc")
    assert page.locator("tr.student").count() == 8
    shot(page, "instructor-gradebook")
    page.goto(f"{base}/i/convolution")
    page.click("#release")
    page.wait_for_selector("text=Grades released at")
    with page.expect_download() as download:
        page.click("text=grades.csv")
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(
        Path(download.value.path()).read_text()))}
    assert rows["s001"]["adjustment"] == "0.5" and rows["s004"]["status"] == "graded"
    assert rows["s002"]["status"] == "missing"
    context.close()
    # released: the student now reads the comment on their page
    again = chromium.new_context(viewport={"width": 1100, "height": 900})
    page = again.new_page()
    page.goto(f"{base}/signin/{token(data, 's001')}")
    page.click("#convolution >> text=feedback")
    assert "Nice <b>work</b> on the stride" in page.inner_text("body")
    shot(page, "student-released")
    again.close()
