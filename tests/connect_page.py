"""Driving the connect page in a real browser: Debian's chromium through Playwright for Python.

The browser is the system's `/usr/bin/chromium` (the project's set-up installs it with apt-get);
Playwright's own browser download (`playwright install`) is never used. `ConnectPage` reads the
page the way its user would (the heading, the questions, the focus, the live region) and saves a
screenshot of each step to `docs/screenshots/`, where the README shows them.

Screenshots are made stable so that a run that changes nothing rewrites nothing: animations are
stopped, the caret hidden, and the page's clock is Playwright's, paused for each shot at four
minutes before the deadline, so a countdown always reads 4:00.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Route, expect

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
# Short viewports: a full-page screenshot is then as tall as the page's content.
DESKTOP = {"width": 520, "height": 360}
PHONE = {"width": 375, "height": 480}
# How long the page may take to show what the link did (a provider round trip, a poll).
STEP_MS = 30_000
# Where a countdown stands in every screenshot.
SHOWN_LEFT_MS = 4 * 60 * 1000


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)


def save_screenshot(png: bytes, name: str) -> Path:
    """Write `docs/screenshots/<name>.png`, leaving an identical file untouched."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if not path.exists() or path.read_bytes() != png:
        path.write_bytes(png)
    return path


@dataclass
class HeldStream:
    """The page's event stream, held back until released: the page then shows a waiting screen
    for as long as the test needs, however fast the provider moves on."""

    held: list[Route] = field(default_factory=list)
    released: bool = False

    def handle(self, route: Route) -> None:
        if self.released:
            route.continue_()
        else:
            self.held.append(route)

    def release(self) -> None:
        self.released = True
        while self.held:
            self.held.pop().continue_()


class ConnectPage:
    """One browser tab on `/connect`, read and driven as its user would."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requested: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", lambda request: self.requested.append(request.url))
        page.on("console", self._console)
        page.clock.install()

    def _console(self, message: ConsoleMessage) -> None:
        # A refused call shows in the console as a failed resource; the page handles those.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(message.text)

    # ------------------------------------------------------------------ reading

    @property
    def title(self) -> str:
        return self.page.inner_text("#title")

    @property
    def status(self) -> str:
        """The ARIA live region's text."""
        return self.page.inner_text("#status")

    def focused(self) -> dict[str, Any]:
        """What has the keyboard focus: its id, tag, type, accessible label and attributes."""
        result: dict[str, Any] = self.page.evaluate(
            """() => {
                const e = document.activeElement;
                const label = e.labels && e.labels.length ? e.labels[0].innerText : "";
                return {
                    id: e.id, tag: e.tagName.toLowerCase(), type: e.type || "",
                    label: label.trim(), text: (e.innerText || "").trim(),
                    autocomplete: e.getAttribute("autocomplete") || "",
                    inputmode: e.getAttribute("inputmode") || "",
                };
            }"""
        )
        return result

    def question_kinds(self) -> list[str]:
        kinds: list[str] = self.page.eval_on_selector_all(
            ".question", "elements => elements.map(element => element.dataset.kind)"
        )
        return kinds

    def wait_for_title(self, pattern: str) -> None:
        expect(self.page.locator("#title")).to_have_text(re.compile(pattern), timeout=STEP_MS)

    def wait_for_status(self, pattern: str) -> None:
        """Wait until the ARIA live region says this."""
        expect(self.page.locator("#status")).to_have_text(re.compile(pattern), timeout=STEP_MS)

    def wait_for_questions(self, kinds: list[str], previous: str | None = None) -> None:
        """Wait until the page shows a round of questions of these kinds (not `previous`)."""
        self.page.wait_for_function(
            """([kinds, previous]) => {
                const shown = [...document.querySelectorAll(".question")];
                const key = shown.map(e => e.querySelector("[data-challenge]")?.dataset.challenge
                    || e.dataset.kind).join();
                return shown.length === kinds.length
                    && shown.every((e, i) => e.dataset.kind === kinds[i])
                    && key !== previous;
            }""",
            arg=[kinds, previous],
            timeout=STEP_MS,
        )

    def round_key(self) -> str:
        key: str = self.page.evaluate(
            """() => [...document.querySelectorAll(".question")].map(e =>
                e.querySelector("[data-challenge]")?.dataset.challenge || e.dataset.kind).join()"""
        )
        return key

    # ------------------------------------------------------------------ acting

    def open(self, connect_url: str) -> None:
        self.page.goto(connect_url)

    def log_in(self, username: str, password: str = "pass_good") -> None:
        self.page.fill("#field-username", username)
        self.page.fill("#field-password", password)
        self.page.click("#login-form button[type=submit]")

    def answer_round(self, answer: str = "correct") -> None:
        """Answer every question shown: `answer` typed, or the first choice picked."""
        form = self.page.locator("#mfa-form")
        count = form.locator(".question").count()
        for index in range(count):
            question = form.locator(".question").nth(index)
            radios = question.locator("input[type=radio]")
            if radios.count():
                radios.first.check()
            else:
                question.locator("input").fill(answer)
        form.locator("button[type=submit]").click()

    @contextmanager
    def held_events(self) -> Iterator[HeldStream]:
        stream = HeldStream()
        self.page.route("**/v1/links/*/events", stream.handle)
        try:
            yield stream
        finally:
            stream.release()

    def shot(self, name: str) -> Path:
        """Save this step's screenshot, with any countdown stopped at 4:00."""
        deadline = self.page.evaluate(
            """() => {
                const time = document.querySelector("#deadline-left");
                return time ? Date.parse(time.getAttribute("datetime")) : null;
            }"""
        )
        paused = False
        if deadline is not None:
            target = int(deadline) - SHOWN_LEFT_MS
            if target - 900 > self.page.evaluate("Date.now()"):
                # Paused just under a second early, then run for a second: the countdown ticks
                # once, and reads 4:00 (Python's clock takes seconds, its run_for milliseconds).
                self.page.clock.pause_at((target - 900) / 1000)
                self.page.clock.run_for(1000)
                paused = True
        try:
            png = self.page.screenshot(full_page=True, animations="disabled", caret="hide")
        finally:
            if paused:
                # Back to the real time, so that the next shot's pause is ahead of it again.
                self.page.clock.set_system_time(time.time())
                self.page.clock.resume()
        return save_screenshot(png, name)
