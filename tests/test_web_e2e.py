"""The web page at `/`, driven end to end in headless Chromium over real HTTP on a loopback port.

Chromium and chromedriver are Debian's `chromium` and `chromium-driver` packages; `make test`
installs them. A missing browser fails these tests (it never skips them silently).
"""
from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import live
import pytest
from fakes import HashEmbedder

from docqa.config import Settings
from docqa.providers.extractive import ExtractiveAnswerer
from docqa.providers.moderation import LocalModerator
from docqa.server import create_app

STATIC = Path(__file__).resolve().parents[1] / "docqa" / "static"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WAIT = 30  # seconds: generous for 2 shared cores; every wait polls and returns as soon as it holds

MANUAL = """# Widget manual

The frobnicator flag enables turbo mode on the widget.

Backups are restored from tape every night by the operator on duty.
"""


# ---- the page's files, without a browser -------------------------------------------------------

def test_page_and_assets_are_self_contained_with_a_strict_csp(tmp_path):
    app = create_app(Settings(index_dir=str(tmp_path / "idx")), embedder=HashEmbedder(),
                     moderator=LocalModerator(), chat=ExtractiveAnswerer())
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    html = page.get_data(as_text=True)
    assert "<script>" not in html and " style=" not in html  # the CSP would block inline code and styles
    # Everything the page loads (its links and the modules' imports) is one of docqa's static files.
    loaded = set(re.findall(r'(?:src|href)="([^"#]+)"', html))
    for script in STATIC.glob("*.js"):
        loaded |= {"static/" + name for name in
                   re.findall(r'^import .* from "\./([\w.-]+)";$', script.read_text(encoding="utf-8"), re.M)}
    assert loaded == {"static/" + p.name for p in STATIC.iterdir() if p.name != "index.html"}
    for name in sorted(loaded):
        asset = client.get("/" + name)
        assert asset.status_code == 200 and asset.headers["X-Content-Type-Options"] == "nosniff", name
        if name.endswith(".js"):
            assert asset.mimetype in ("text/javascript", "application/javascript"), name  # modules need it
        body = asset.get_data(as_text=True).replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"https?://|//[a-z0-9-]+\.[a-z]", body, re.I), f"{name} refers to another origin"
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in body, f"{name} uses {sink}: server text must only go into text nodes"


# ---- the browser -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium for the module; each test gets its own server (so its own origin)."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.fail("The web page's end-to-end tests need Chromium and chromedriver (Debian packages "
                    "`chromium` and `chromium-driver`): run `make test`, which installs them.")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--lang=en-US"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit chromedriver path: Selenium Manager never tries to download one.
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


class SeeingModerator(LocalModerator):
    """The local moderator, keeping every text it was asked about (questions and history turns)."""

    seen: list[str] = []

    def moderate(self, texts):
        SeeingModerator.seen.extend(texts)
        return super().moderate(texts)


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The real app with a fast fake embedder on a free loopback port; yields its base URL."""
    SeeingModerator.seen = []
    app = create_app(settings, embedder=HashEmbedder(), moderator=SeeingModerator(), chat=ExtractiveAnswerer())
    with live.serving(app) as url:
        yield url + "/"


def wait(driver, condition, message: str, timeout: float = WAIT):
    """Polls `condition(driver)` until it is truthy; fails with `message` and the page's errors."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)
    except TimeoutException:
        errors = [e.text for e in driver.find_elements("css selector", ".error") if e.is_displayed()]
        raise AssertionError(f"{message} (within {timeout} s); errors shown on the page: {errors}") from None


def by_id(driver, element_id: str):
    return driver.find_element("id", element_id)


def visible_text(driver, element_id: str) -> str:
    element = by_id(driver, element_id)
    return element.text if element.is_displayed() else ""


def page_problems(driver) -> list[str]:
    """Script errors and Content-Security-Policy violations the browser logged (failed requests are not)."""
    return [e["message"] for e in driver.get_log("browser")
            if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
            or "Uncaught" in e["message"]]


def load_page(driver, url: str) -> None:
    driver.get(url)
    wait(driver, lambda d: visible_text(d, "collection-info") not in ("", "Loading collections…")
         or by_id(d, "key-dialog").is_displayed(), "the page never finished loading the collections")


def upload(driver, path: Path) -> None:
    by_id(driver, "files").send_keys(str(path))
    by_id(driver, "upload-button").click()


# ---- the tests ---------------------------------------------------------------------------------

def test_upload_ask_and_open_the_cited_page(browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    driver = browser
    manual = tmp_path / "widget-manual.md"
    manual.write_text(MANUAL, encoding="utf-8")
    with serving(Settings(index_dir=str(tmp_path / "idx"))) as url:
        load_page(driver, url)

        # A new collection, chosen in the picker.
        by_id(driver, "new-collection-name").send_keys("manuals")
        driver.find_element("css selector", "#new-collection button[type=submit]").click()
        wait(driver, lambda d: by_id(d, "collection").get_attribute("value") == "manuals"
             and "0 documents" in visible_text(d, "collection-info"), "the new collection was not selected")

        # Upload through the file input and watch the job until the UI says it is done.
        upload(driver, manual)
        job = wait(driver, lambda d: next(iter(d.find_elements("css selector", "#jobs .job[data-status=done]")), None),
                   "the upload's job never showed as done")
        assert "widget-manual.md" in job.text and "1 added" in job.text, job.text
        assert job.find_element("css selector", ".file[data-status=added]").text.startswith("widget-manual.md")
        wait(driver, lambda d: "widget-manual.md" in visible_text(d, "documents")
             and "1 document" in visible_text(d, "collection-info"), "the document list never showed the upload")

        # Ask; the streamed answer ends with its citations.
        by_id(driver, "question").send_keys("What does the frobnicator flag enable?")
        by_id(driver, "ask-button").click()
        citation = wait(driver, lambda d: next(iter(d.find_elements("css selector", "#citations li")), None),
                        "the answer never showed a citation")
        answer = visible_text(driver, "answer")
        assert "turbo mode" in answer and "[1]" in answer, answer
        assert not by_id(driver, "not-answered").is_displayed()
        opener = citation.find_element("css selector", "button.open-page")
        assert opener.text == "widget-manual.md, p. 1"
        quote = citation.find_element("css selector", "blockquote").text
        assert "frobnicator flag enables turbo mode" in quote
        marker = driver.find_element("css selector", "#answer a.cite-ref")
        assert marker.text == "[1]" and marker.get_attribute("href").endswith("#cite-1")

        # Open the cited page from the keyboard: document, page number, the quote highlighted in the page.
        opener.send_keys(Keys.ENTER)
        wait(driver, lambda d: d.find_elements("css selector", "#page-text mark"), "the cited page never opened")
        assert by_id(driver, "page-panel").is_displayed()
        assert visible_text(driver, "page-title") == "widget-manual.md, page 1"
        assert not by_id(driver, "page-nav").is_displayed()  # a one-page document has no other page
        page_text = visible_text(driver, "page-text")
        assert "Backups are restored from tape" in page_text
        assert driver.find_element("css selector", "#page-text mark").text == quote
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "web-e2e.png"))

        # Escape closes the panel and gives focus back to the citation that opened it.
        driver.switch_to.active_element.send_keys(Keys.ESCAPE)
        wait(driver, lambda d: not by_id(d, "page-panel").is_displayed(), "Escape did not close the page panel")
        assert driver.switch_to.active_element == opener

        # The next question goes with the conversation so far, until a new conversation starts.
        assert visible_text(driver, "turns") == "1 earlier question"
        by_id(driver, "question").clear()
        by_id(driver, "question").send_keys("And what is restored every night?")
        by_id(driver, "ask-button").click()
        wait(driver, lambda d: visible_text(d, "turns") == "2 earlier questions", "the follow-up was not counted")
        assert SeeingModerator.seen[-2:] == ["And what is restored every night?",
                                             "What does the frobnicator flag enable?"]  # sent as history
        by_id(driver, "new-conversation").click()
        assert not by_id(driver, "conversation").is_displayed()

        # A question the documents do not answer is shown as such.
        by_id(driver, "question").clear()
        by_id(driver, "question").send_keys("Which volcano erupted in Iceland in 2010?")
        by_id(driver, "ask-button").click()
        wait(driver, lambda d: d.find_element("id", "not-answered").is_displayed(),
             "an unanswerable question was not shown as unanswered")
        assert SeeingModerator.seen[-2:] == ["What does the frobnicator flag enable?",
                                             "Which volcano erupted in Iceland in 2010?"]  # no history after "New"

        # A file docqa cannot read: the server's reason is shown to the user.
        blob = tmp_path / "photo.png"
        blob.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
        upload(driver, blob)
        wait(driver, lambda d: "photo.png" in visible_text(d, "upload-error"),
             "an unreadable upload was not refused with the server's reason")

        # Delete the document (confirming the browser's prompt): the list empties.
        driver.find_element("css selector", "#documents button.danger").click()
        wait(driver, lambda d: _alert(d), "deleting asked for no confirmation").accept()
        wait(driver, lambda d: not visible_text(d, "documents") and by_id(d, "documents-empty").is_displayed(),
             "the deleted document stayed in the list")

        # A phone-sized window: one column, nothing wider than the screen.
        driver.set_window_size(390, 844)
        try:
            wait(driver, lambda d: d.execute_script(
                "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"),
                "the page scrolls sideways on a narrow screen")
            driver.save_screenshot(str(ARTIFACTS / "web-e2e-narrow.png"))
        finally:
            driver.set_window_size(1280, 1000)
        assert page_problems(driver) == []


def _alert(driver):
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return driver.switch_to.alert
    except NoAlertPresentException:
        return None


def test_page_asks_for_the_api_key_when_the_server_needs_one(browser, tmp_path):
    driver = browser
    manual = tmp_path / "widget-manual.md"
    manual.write_text(MANUAL, encoding="utf-8")
    keys = "k1:read+write,reader:read"
    with serving(Settings(index_dir=str(tmp_path / "idx"), api_keys=keys)) as url:
        driver.get(url)  # `/` and its assets need no key; the first API call gets 401
        wait(driver, lambda d: by_id(d, "key-dialog").is_displayed(), "the page never asked for an API key")
        assert "requires an API key" in visible_text(driver, "key-reason")

        by_id(driver, "api-key").send_keys("wrong-key")
        by_id(driver, "key-submit").click()
        wait(driver, lambda d: "not valid" in visible_text(d, "key-reason"), "a wrong key was not refused")

        by_id(driver, "api-key").send_keys("k1")
        by_id(driver, "key-submit").click()
        wait(driver, lambda d: not by_id(d, "key-dialog").is_displayed()
             and "does not exist yet" in visible_text(d, "collection-info"), "the right key was not used")
        assert driver.execute_script("return sessionStorage.getItem('docqa.apiKey')") == "k1"

        # The upload (a write), the job polling and the streamed answer carry the key too.
        upload(driver, manual)
        wait(driver, lambda d: "widget-manual.md" in visible_text(d, "documents"),
             "the upload with the key never reached the document list")
        by_id(driver, "question").send_keys("What does the frobnicator flag enable?")
        by_id(driver, "ask-button").click()
        wait(driver, lambda d: "widget-manual.md, p. 1" in visible_text(d, "citations"),
             "the question asked with the key got no cited answer")

        # A read-only key: forget the first, give the other; a write is refused with the server's reason.
        by_id(driver, "forget-key").click()
        assert driver.execute_script("return sessionStorage.getItem('docqa.apiKey')") is None
        by_id(driver, "refresh").click()
        wait(driver, lambda d: by_id(d, "key-dialog").is_displayed(), "a forgotten key was still used")
        by_id(driver, "api-key").send_keys("reader")
        by_id(driver, "key-submit").click()
        upload(driver, manual)
        wait(driver, lambda d: "write scope" in visible_text(d, "upload-error"),
             "a read-only key's upload did not show the 403 reason")
        assert not by_id(driver, "key-dialog").is_displayed()
        assert page_problems(driver) == []
