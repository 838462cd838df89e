"""The connect page in a real browser, through the real stack.

Debian's chromium, driven by Playwright for Python, opens the `connect_url` that the API hands
the app's backend, on a dev stack of separate processes (Temporal's dev server, the provider
sandbox, a worker and the API, on free ports). Every challenge kind that a provider's test users
meet is shown and answered as a person would; wrong answers, expired and foreign tokens, a reload
and a worker restart in the middle of MFA, and the later-life updates are each walked through.
Each step's screenshot goes to docs/screenshots/ for the README, and each step asserts what the
user would see and hear: the heading, the question, where the focus is, the live region.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from api.link_tokens import LinkTokens, SessionMode
from linkflow.devstack import PROJECT_ROOT, DevStack, StackPorts, port_is_open
from linkflow.models import LinkOptions, Provider
from tests.connect_page import CHROMIUM, DESKTOP, PHONE, ConnectPage, launch

pytestmark = pytest.mark.e2e

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"CI must run the browser tests: {CHROMIUM} is missing.")
    pytest.skip(
        f"Debian's chromium is not at {CHROMIUM} (`python3 dev.py test` installs it as root).",
        allow_module_level=True,
    )

sync_api = pytest.importorskip("playwright.sync_api")

STEP = timedelta(seconds=30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    ports = StackPorts.free()
    stack = DevStack(ports=ports, state_dir=tmp_path_factory.mktemp("browser-stack"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def backend(stack: DevStack) -> Iterator[httpx.Client]:
    """The app's backend: its API key, over HTTP."""
    with httpx.Client(
        base_url=stack.ports.api_url,
        headers={"Authorization": f"Bearer {stack.api_key()}"},
        timeout=60,
    ) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


def new_tab(browser: Any, viewport: dict[str, int] = DESKTOP) -> ConnectPage:
    context = browser.new_context(viewport=viewport, device_scale_factor=1, locale="en-US")
    return ConnectPage(context.new_page())


@pytest.fixture
def tab(browser: Any) -> Iterator[ConnectPage]:
    tab = new_tab(browser)
    yield tab
    tab.page.context.close()
    assert tab.errors == [], "the page reported script errors"
    origins = {urlsplit(url)[:2] for url in tab.requested}
    assert len(origins) <= 1, f"the page loaded something from elsewhere: {origins}"


def link_session(backend: httpx.Client, **body: Any) -> dict[str, Any]:
    response = backend.post("/v1/link-sessions", json={"user_ref": "browser-user"} | body)
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    return session


def unique(username: str, tag: str) -> str:
    """A login of this test's own in this module's sandbox (which ignores a plus-tag); fixed, so
    that a screenshot showing it is the same on every run."""
    return f"{username}+{tag}"


@dataclass(frozen=True)
class Journey:
    provider: Provider
    username: str
    rounds: tuple[tuple[str, ...], ...]

    @property
    def name(self) -> str:
        return f"{self.provider.value}-{self.username}"

    @property
    def login(self) -> str:
        # Unbill's documented test usernames take no plus-tag; the shared test users do.
        return (
            self.username
            if self.username.startswith("mfa-required")
            else unique(self.username, "journey")
        )


# Every challenge kind each provider's test users meet, round by round (README: test users).
JOURNEYS = (
    Journey(Provider.MX, "user_mfa", (("text",),)),
    Journey(Provider.MX, "user_otp", (("options",), ("code",))),
    Journey(Provider.MX, "user_image", (("image_options",),)),
    Journey(Provider.MX, "user_image_data", (("text",),)),
    Journey(Provider.SYNAPSE, "user_mfa", (("text",), ("text",), ("text",))),
    Journey(Provider.SYNAPSE, "user_otp", (("text",), ("text",))),
    Journey(Provider.ARCADIA, "user_mfa", (("code",),)),
    Journey(Provider.ARCADIA, "user_otp", (("device_choice",), ("code",))),
    Journey(Provider.TEAL, "user_mfa", (("secret",),)),
    Journey(Provider.TEAL, "user_otp", (("text",), ("code",))),
    Journey(Provider.TEAL, "user_redirect", (("redirect",),)),
    Journey(Provider.UNBILL, "user_mfa", (("text", "text"),)),
    Journey(Provider.UNBILL, "user_otp", (("code",),)),
    Journey(Provider.UNBILL, "mfa-required-prompt", (("push_approval",),)),
)


def check_question(tab: ConnectPage, kind: str, index: int) -> None:
    """What each kind must look like to its user."""
    question = tab.page.locator(".question").nth(index)
    if kind in ("text", "secret", "code"):
        field = question.locator("input")
        assert field.get_attribute("type") == ("password" if kind == "secret" else "text")
        assert question.locator("label").inner_text().strip(), "a question has its prompt as label"
        if kind == "code":
            assert field.get_attribute("autocomplete") == "one-time-code"
            assert field.get_attribute("inputmode") == "numeric"
    elif kind in ("options", "device_choice", "image_options"):
        assert question.evaluate("element => element.tagName") == "FIELDSET"
        assert question.locator("legend").inner_text().strip()
        radios = question.locator("input[type=radio]")
        assert radios.count() >= 2
        for position in range(radios.count()):
            assert radios.nth(position).evaluate("radio => radio.labels.length") == 1
        if kind == "image_options":
            pictures = question.locator(".choice img")
            assert pictures.count() == radios.count()
            assert all(
                (pictures.nth(i).get_attribute("src") or "").startswith("data:image/")
                for i in range(pictures.count())
            )
            assert pictures.first.evaluate("image => image.naturalWidth") > 0
    elif kind == "push_approval":
        assert "approve" in question.inner_text().lower()
        assert tab.title == "Approve on your device"
    elif kind == "redirect":
        link = question.locator("a.button")
        assert link.get_attribute("target") == "_blank"
        assert link.get_attribute("rel") == "noopener noreferrer"
        assert (link.get_attribute("href") or "").startswith("http")


@pytest.mark.parametrize("journey", JOURNEYS, ids=lambda journey: journey.name)
def test_every_challenge_kind_is_shown_and_answered_until_connected(
    backend: httpx.Client, tab: ConnectPage, journey: Journey
) -> None:
    provider_name = {"mx": "MX"}.get(journey.provider.value, journey.provider.value.title())
    session = link_session(backend, provider=journey.provider.value)
    assert session["connect_url"].endswith(f"/connect#token={session['link_token']}")
    tab.open(session["connect_url"])
    tab.wait_for_title(f"^Log in to {provider_name}$")
    assert tab.focused()["id"] == "field-username", "focus starts on the first field"
    tab.shot(f"{journey.provider.value}-login")

    previous = None
    waits = journey.rounds[-1][0] in ("push_approval", "redirect")
    with tab.held_events() as stream:
        tab.log_in(journey.login)
        for number, kinds in enumerate(journey.rounds, start=1):
            tab.wait_for_questions(list(kinds), previous)
            for index, kind in enumerate(kinds):
                check_question(tab, kind, index)
            focused = tab.focused()
            first = kinds[0]
            if first in ("push_approval",):
                assert focused["id"] == "title"
            elif first == "redirect":
                assert focused["tag"] == "a", "focus moves to the link to follow"
            else:
                assert focused["tag"] == "input", "focus moves to the new question"
                if first == "code":
                    assert focused["autocomplete"] == "one-time-code"
            assert tab.page.locator("#deadline-left").inner_text().count(":") == 1
            if first == "push_approval":
                tab.wait_for_status("^Approve on your device\\.$")
            elif first == "redirect":
                tab.wait_for_status(f"^Continue at {provider_name}\\.$")
            else:
                count = "a question" if len(kinds) == 1 else f"{len(kinds)} questions"
                tab.wait_for_status(f"^{provider_name} asks {count}\\.$")
            tab.shot(f"{journey.name}-{number}-{'-'.join(dict.fromkeys(kinds))}")
            previous = tab.round_key()
            if first == "redirect":
                with tab.page.expect_popup() as popup:
                    tab.page.locator(".question a.button").click()
                popup.value.wait_for_load_state()
                popup.value.close()
                assert "Waiting for you to finish" in tab.page.inner_text(".question")
            elif first != "push_approval":
                if stream.held:
                    stream.release()
                tab.answer_round()
        if waits:
            stream.release()

    tab.wait_for_title(f"^{provider_name} is connected$")
    assert tab.focused()["id"] == "title"
    tab.wait_for_status(f"^Connected\\. Your {provider_name} account is linked\\.$")
    assert tab.page.locator(".accounts li").count() >= 1
    tab.shot(f"{journey.provider.value}-connected")


def test_a_wrong_answer_is_shown_as_rejected_and_the_right_one_connects(
    backend: httpx.Client, tab: ConnectPage
) -> None:
    tab.open(link_session(backend, provider="mx")["connect_url"])
    tab.wait_for_title("^Log in to MX$")
    tab.log_in(unique("user_mfa", "wrong-answer"))
    tab.wait_for_questions(["text"])
    first = tab.round_key()
    tab.answer_round("Atlantis")

    tab.wait_for_title("^That answer was not accepted$")
    assert tab.round_key() != first, "the provider asked again"
    notice = tab.page.locator(".notice.rejected")
    assert "MX did not accept your last answer" in notice.inner_text()
    field = tab.page.locator(".question input")
    described_by = (field.get_attribute("aria-describedby") or "").split()
    assert notice.get_attribute("id") in described_by, "the field is described by the notice"
    assert tab.focused()["tag"] == "input"
    tab.wait_for_status("^MX did not accept your answer. Try again.$")
    tab.shot("mx-wrong-answer")

    tab.answer_round("correct")
    tab.wait_for_title("^MX is connected$")


def test_an_answer_the_api_refuses_is_shown_in_place_of_its_question(
    backend: httpx.Client, tab: ConnectPage
) -> None:
    tab.open(link_session(backend, provider="unbill")["connect_url"])
    tab.wait_for_title("^Log in to Unbill$")
    tab.log_in(unique("user_mfa", "too-long"))
    tab.wait_for_questions(["text", "text"])
    tab.page.fill("#answer-0", "correct")
    tab.page.fill("#answer-1", "x" * 600)
    tab.page.click("#mfa-form button[type=submit]")

    error = tab.page.locator("#answer-1-error")
    error.wait_for(state="visible", timeout=30_000)
    assert error.inner_text() == "That is too long: use at most 512 characters."
    assert tab.page.get_attribute("#answer-1", "aria-invalid") == "true"
    assert tab.page.locator("#answer-0-error").is_hidden(), "the other answer was fine"
    assert tab.focused()["id"] == "answer-1"
    tab.shot("unbill-answer-refused-in-place")

    tab.page.fill("#answer-1", "correct")
    tab.page.click("#mfa-form button[type=submit]")
    tab.wait_for_title("^Unbill is connected$")


def test_too_many_attempts_say_how_long_to_wait(
    stack: DevStack, backend: httpx.Client, tab: ConnectPage
) -> None:
    session = link_session(backend, provider="mx")
    tab.open(session["connect_url"])
    tab.wait_for_title("^Log in to MX$")
    tab.log_in(unique("user_mfa", "rate-limit"))
    tab.wait_for_questions(["text"])
    # Someone else with this page's token spends its attempts.
    with httpx.Client(
        base_url=stack.ports.api_url,
        headers={"Authorization": f"Bearer {session['link_token']}"},
        timeout=30,
    ) as thief:
        statuses = {
            thief.post(
                f"/v1/links/{session['link_id']}/mfa",
                json={"answers": [{"challenge_id": "not-pending", "value": "guess"}]},
            ).status_code
            for _ in range(12)
        }
    assert 429 in statuses

    tab.answer_round()
    error = tab.page.locator("#mfa-error")
    error.wait_for(state="visible", timeout=30_000)
    assert re.fullmatch(r"Too many tries\. Wait \d+ seconds?, then try again\.", error.inner_text())
    assert tab.page.get_attribute("#mfa-error", "role") == "alert"
    assert tab.title == "MX has a question", "nothing else changed"


def test_a_change_reaches_every_open_page_through_the_event_stream(
    backend: httpx.Client, browser: Any
) -> None:
    session = link_session(backend, provider="mx")
    first, second = new_tab(browser), new_tab(browser)
    try:
        first.open(session["connect_url"])
        first.wait_for_title("^Log in to MX$")
        first.log_in(unique("user_otp", "two-tabs"))
        first.wait_for_questions(["options"])
        with second.held_events() as stream:
            second.open(session["connect_url"])
            second.wait_for_questions(["options"])
            first.answer_round()  # the first phone
            first.wait_for_questions(["code"])
            # The second page has not heard yet, and answers the old question differently.
            second.page.locator(".question input[type=radio]").nth(1).check()
            second.page.click("#mfa-form button[type=submit]")
            second.wait_for_questions(["code"])
            assert "could not be taken" in second.page.inner_text("#screen .notice.problem")
            stream.release()

        # From now on the second page hears each change by itself, with nothing to click.
        first.answer_round()
        second.wait_for_title("^MX is connected$")
        assert second.focused()["id"] == "title"
        assert first.errors == second.errors == []
    finally:
        first.page.context.close()
        second.page.context.close()


def test_the_deadline_counts_down_and_says_when_time_is_short(
    backend: httpx.Client, tab: ConnectPage
) -> None:
    tab.open(link_session(backend, provider="mx")["connect_url"])
    tab.wait_for_title("^Log in to MX$")
    tab.log_in(unique("user_mfa", "deadline"))
    tab.wait_for_questions(["text"])
    deadline = tab.page.locator("#deadline")
    left = tab.page.locator("#deadline-left")
    assert left.inner_text() in ("5:00", "4:59", "4:58")

    tab.page.clock.fast_forward("04:10")
    sync_api.expect(left).to_have_text(re.compile("^0:(4|5)[0-9]$"))
    assert "soon" in (deadline.get_attribute("class") or "")
    tab.wait_for_status("^Less than a minute left to answer.$")

    tab.page.clock.fast_forward("01:00")
    sync_api.expect(deadline).to_contain_text("Time is up")
    assert "over" in (deadline.get_attribute("class") or "")
    tab.wait_for_status("^Time is up. Waiting for MX to respond.$")


def test_an_empty_answer_is_refused_in_place_before_anything_is_sent(
    backend: httpx.Client, tab: ConnectPage
) -> None:
    tab.open(link_session(backend, provider="mx")["connect_url"])
    tab.wait_for_title("^Log in to MX$")
    tab.page.click("#login-form button[type=submit]")
    username = tab.page.locator("#field-username")
    assert username.get_attribute("aria-invalid") == "true"
    assert tab.page.inner_text("#field-username-error") == "Enter your username."
    assert tab.focused()["id"] == "field-username"

    tab.log_in(unique("user_otp", "empty-answer"))
    tab.wait_for_questions(["options"])
    tab.page.click("#mfa-form button[type=submit]")
    assert tab.page.inner_text("#answer-0-error") == "Choose one."
    assert tab.focused()["type"] == "radio"
    tab.shot("mx-user_otp-choose-one")


def test_the_whole_link_by_keyboard_alone(backend: httpx.Client, tab: ConnectPage) -> None:
    keyboard = tab.page.keyboard
    tab.open(link_session(backend, provider="mx")["connect_url"])
    tab.wait_for_title("^Log in to MX$")
    keyboard.type(unique("user_otp", "keyboard"))
    keyboard.press("Tab")
    assert tab.focused()["id"] == "field-password"
    keyboard.type("pass_good")
    keyboard.press("Enter")

    tab.wait_for_questions(["options"])
    assert tab.focused()["type"] == "radio"
    keyboard.press("ArrowDown")  # moves to and picks the second phone
    chosen = tab.page.locator(".question input:checked")
    assert chosen.get_attribute("id") == "answer-0-option-1"
    keyboard.press("Enter")

    tab.wait_for_questions(["code"])
    assert tab.focused()["autocomplete"] == "one-time-code"
    assert "8765" in tab.page.locator(".question label").inner_text(), "the chosen phone"
    keyboard.type("correct")
    keyboard.press("Enter")
    tab.wait_for_title("^MX is connected$")


def test_a_reload_in_the_middle_of_mfa_comes_back_to_the_same_question(
    backend: httpx.Client, tab: ConnectPage
) -> None:
    session = link_session(backend, provider="arcadia")
    tab.open(session["connect_url"])
    tab.wait_for_title("^Log in to Arcadia$")
    tab.log_in(unique("user_otp", "reload"))
    tab.wait_for_questions(["device_choice"])
    tab.answer_round()
    tab.wait_for_questions(["code"])
    asked = tab.round_key()
    deadline = tab.page.get_attribute("#deadline-left", "datetime")

    tab.page.reload()
    tab.wait_for_questions(["code"])
    assert tab.page.url == session["connect_url"], "the token stays in the fragment"
    assert tab.round_key() == asked, "the same challenge, not a new login"
    assert tab.page.get_attribute("#deadline-left", "datetime") == deadline
    assert tab.focused()["autocomplete"] == "one-time-code"
    assert tab.title == "Arcadia has a question"
    tab.shot("arcadia-reloaded-mid-mfa")
    tab.answer_round()
    tab.wait_for_title("^Arcadia is connected$")


def test_a_worker_restart_in_the_middle_of_mfa_is_ridden_out(
    stack: DevStack, backend: httpx.Client, tab: ConnectPage
) -> None:
    tab.open(link_session(backend, provider="mx")["connect_url"])
    tab.wait_for_title("^Log in to MX$")
    tab.log_in(unique("user_mfa", "worker-restart"))
    tab.wait_for_questions(["text"])
    stack.stop_process("worker")
    try:
        tab.answer_round()
        button = tab.page.locator("#mfa-form button[type=submit]")
        assert button.is_disabled()
        assert button.inner_text() == "Checking your answer with MX…"
        assert tab.page.locator("#mfa-form").get_attribute("aria-busy") == "true"
        tab.shot("mx-worker-restart-waiting")
    finally:
        stack.start_worker()
    tab.wait_for_title("^MX is connected$")


def test_an_expired_token_says_so_and_offers_nothing_to_type(
    stack: DevStack, tab: ConnectPage
) -> None:
    secrets = stack.link_token_secrets_file.read_text().split()
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    tokens = LinkTokens(secrets, clock=lambda: long_ago)
    token, _ = tokens.issue(
        link_id=f"link-{uuid.uuid4()}",
        provider=Provider.MX,
        mode=SessionMode.CREATE,
        user_ref="browser-user",
        options=LinkOptions(),
    )
    tab.open(f"{stack.ports.api_url}/connect#token={token}")
    tab.wait_for_title("^This page has expired$")
    assert "Go back to the app" in tab.page.inner_text("#screen")
    assert tab.page.locator("input").count() == 0
    assert tab.focused()["id"] == "title"
    tab.wait_for_status("^This page has expired$")
    tab.shot("expired-token")


def test_an_altered_token_is_not_valid(backend: httpx.Client, tab: ConnectPage) -> None:
    url = link_session(backend, provider="mx")["connect_url"]
    altered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    tab.open(altered)
    tab.wait_for_title("^This link is not valid$")
    assert tab.page.locator("input").count() == 0


def test_a_fragment_that_is_no_token_at_all_is_not_valid_either(
    stack: DevStack, tab: ConnectPage
) -> None:
    tab.open(f"{stack.ports.api_url}/connect#token=garbage")
    tab.wait_for_title("^This link is not valid$")
    text = tab.page.inner_text("#screen")
    assert "damaged" in text
    assert "Go back to the app" in text
    assert "signed in" not in text, "the API's sentence for a wrong API key is not the user's"
    assert tab.page.locator("input").count() == 0


def test_a_link_token_is_refused_for_another_link(backend: httpx.Client, tab: ConnectPage) -> None:
    """The page asks about another link with its token (its session answer rewritten on the way):
    the API refuses it, and the page says so instead of showing anything of that link."""
    mine = link_session(backend, provider="mx")
    other = backend.post(
        "/v1/links",
        json={
            "provider": "mx",
            "user_ref": "someone-else",
            "credentials": {"username": unique("user_good", "other-link"), "password": "pass_good"},
        },
    )
    assert other.status_code == 201, other.text
    other_id = other.json()["link_id"]

    def claim_the_other_link(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, json=response.json() | {"link_id": other_id})

    tab.page.route("**/connect/session", claim_the_other_link)
    tab.open(mine["connect_url"])
    tab.wait_for_title("^This link is for another account$")
    assert "This page cannot act on that link." in tab.page.inner_text("#screen")
    assert "connected" not in tab.page.inner_text("#screen").lower()
    tab.shot("another-links-token")


def test_a_refused_login_is_typed_again_on_the_same_page(
    backend: httpx.Client, tab: ConnectPage
) -> None:
    session = link_session(backend, provider="mx")
    tab.open(session["connect_url"])
    tab.wait_for_title("^Log in to MX$")
    username = unique("user_mfa", "typo")
    tab.log_in(username, "pass_goood")
    refused = tab.page.locator("#field-password-error")
    refused.wait_for(state="visible", timeout=30_000)
    assert refused.inner_text() == (
        "Your bank did not accept that username and password. Check them and try again."
    )
    assert tab.page.title().startswith("Log in to MX")
    assert tab.page.get_attribute("#field-password", "aria-invalid") == "true"
    assert tab.page.input_value("#field-username") == username
    tab.shot("mx-login-refused")

    tab.page.fill("#field-password", "pass_good")
    tab.page.click("#login-form button[type=submit]")
    tab.wait_for_questions(["text"])
    tab.answer_round()
    tab.wait_for_title("^MX is connected$")
    linked = backend.get(f"/v1/links/{session['link_id']}").json()
    assert linked["status"] == "CONNECTED"


def test_a_failed_link_ends_on_a_clear_failure_screen(
    backend: httpx.Client, tab: ConnectPage
) -> None:
    tab.open(link_session(backend, provider="synapse")["connect_url"])
    tab.wait_for_title("^Log in to Synapse$")
    tab.log_in(unique("user_unsupported", "failed"))
    tab.wait_for_title("^We could not connect Synapse$")
    assert tab.page.locator("input").count() == 0
    assert tab.focused()["id"] == "title"
    tab.wait_for_status("^Failed. We could not connect Synapse.$")
    tab.shot("synapse-user_unsupported-failed")


def started_link(backend: httpx.Client, username: str, **options: Any) -> str:
    response = backend.post(
        "/v1/links",
        json={
            "provider": "mx",
            "user_ref": "browser-user",
            "credentials": {"username": username, "password": "pass_good"},
            "options": options,
        },
    )
    assert response.status_code == 201, response.text
    link_id: str = response.json()["link_id"]
    return link_id


def wait_for_reason(backend: httpx.Client, link_id: str, reason: str) -> None:
    deadline = datetime.now(UTC) + STEP
    while datetime.now(UTC) < deadline:
        snapshot = backend.get(f"/v1/links/{link_id}").json()
        if snapshot.get("reason") == reason:
            return
        time.sleep(0.2)
    raise AssertionError(f"the link never became {reason}")


def bank_event(stack: DevStack, username: str, event: str, **extra: str) -> None:
    response = httpx.post(
        f"{stack.ports.sandbox_url}/mx/_sandbox/bank-events",
        json={"username": username, "event": event, **extra},
    )
    response.raise_for_status()


def test_update_mode_reauthenticates_a_link_whose_mfa_expired(
    stack: DevStack, backend: httpx.Client, tab: ConnectPage
) -> None:
    username = unique("user_good", "reauthenticate")
    link_id = started_link(backend, username, refresh_interval_seconds=1)
    bank_event(stack, username, "mfa_expired")
    wait_for_reason(backend, link_id, "MFA_REFRESH_REQUIRED")

    session = link_session(backend, link_id=link_id)
    assert session["mode"] == "update"
    tab.open(session["connect_url"])
    tab.wait_for_title("^MX needs to check it's you$")
    assert tab.focused()["text"] == "Verify it's me"
    tab.shot("update-1-reauthenticate")
    tab.page.keyboard.press("Enter")

    tab.wait_for_questions(["text"])
    assert tab.focused()["tag"] == "input"
    tab.shot("update-2-question")
    tab.answer_round()
    tab.wait_for_title("^MX is connected$")
    tab.shot("update-3-connected")


def test_update_mode_takes_new_credentials_after_a_password_change(
    stack: DevStack, backend: httpx.Client, tab: ConnectPage
) -> None:
    username = unique("user_good", "new-password")
    link_id = started_link(backend, username, refresh_interval_seconds=1)
    bank_event(stack, username, "password_changed", new_password="pass_new")
    wait_for_reason(backend, link_id, "REAUTH_REQUIRED")

    tab.open(link_session(backend, link_id=link_id)["connect_url"])
    tab.wait_for_title("^Update your MX login$")
    assert tab.focused()["id"] == "field-username"
    assert tab.page.locator("#field-password").get_attribute("autocomplete") == "new-password"
    tab.log_in(username, "still-wrong")
    expect_error = tab.page.locator("#field-password-error")
    expect_error.wait_for(state="visible", timeout=30_000)
    assert expect_error.inner_text() == "MX did not accept that login. Check it and try again."
    assert tab.page.get_attribute("#field-password", "aria-invalid") == "true"
    assert tab.focused()["id"] == "field-password"
    tab.shot("update-credentials-refused")

    tab.page.fill("#field-password", "pass_new")
    tab.page.click("#login-form button[type=submit]")
    tab.wait_for_title("^MX is connected$")


def test_update_mode_resolves_a_hold(backend: httpx.Client, tab: ConnectPage) -> None:
    link_id = started_link(backend, unique("user_hold", "hold"))
    wait_for_reason(backend, link_id, "PROVIDER_HOLD")
    tab.open(link_session(backend, link_id=link_id)["connect_url"])
    tab.wait_for_title("^MX needs something from you$")
    assert "Your bank needs your attention" in tab.page.inner_text("#screen")
    tab.shot("update-hold")
    tab.page.get_by_role("button", name="I've done it, check again").click()
    tab.wait_for_title("^MX is connected$")


def test_the_api_docs_render_from_the_api_alone(stack: DevStack, browser: Any) -> None:
    """Swagger UI at /docs loads its script and styles from the API itself, not a CDN (this machine
    has no internet): every operation of the OpenAPI document shows, nothing is asked elsewhere."""
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    requested: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(f"{stack.ports.api_url}/docs")
        paths = page.locator(".opblock-summary-path")
        paths.first.wait_for(state="visible", timeout=30_000)
        shown = {path.get_attribute("data-path") for path in paths.all()}
        documented = set(httpx.get(f"{stack.ports.api_url}/openapi.json").json()["paths"])
        assert shown == documented
        assert page.locator(".swagger-ui .info .title").inner_text().startswith("linkflow")
    finally:
        context.close()
    assert errors == []
    assert {urlsplit(url)[:2] for url in requested} == {urlsplit(stack.ports.api_url)[:2]}


def test_the_page_fits_a_phone(backend: httpx.Client, browser: Any) -> None:
    tab = new_tab(browser, PHONE)
    try:
        tab.open(link_session(backend, provider="mx")["connect_url"])
        tab.wait_for_title("^Log in to MX$")
        tab.shot("phone-1-login")
        tab.log_in(unique("user_image", "phone"))
        tab.wait_for_questions(["image_options"])
        overflow = tab.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow == 0, "nothing is wider than the phone"
        box = tab.page.locator(".choice").first.bounding_box()
        assert box is not None
        assert box["height"] >= 44, "a choice is a finger's size"
        tab.shot("phone-2-pictures")
        tab.answer_round()
        tab.wait_for_title("^MX is connected$")
        tab.shot("phone-3-connected")
        assert tab.errors == []
    finally:
        tab.page.context.close()


def test_the_demo_prints_a_connect_url_that_links_in_the_browser(
    browser: Any, tmp_path: Path
) -> None:
    ports = StackPorts.free()
    demo = subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_ROOT / "starter.py"),
            "demo",
            *("--temporal-port", str(ports.temporal), "--ui-port", str(ports.ui)),
            *("--sandbox-port", str(ports.sandbox), "--api-port", str(ports.api)),
            *("--state-dir", str(tmp_path)),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    tab = new_tab(browser)
    try:
        assert demo.stdout is not None
        printed = ""
        while (line := demo.stdout.readline()) and not line.startswith("connect_url: "):
            printed += line
        assert line.startswith("connect_url: "), f"no connect_url: {printed}"
        connect_url = line.removeprefix("connect_url: ").strip()
        assert connect_url.startswith(f"{ports.api_url}/connect#token=lt1.")

        tab.open(connect_url)
        tab.wait_for_title("^Log in to MX$")
        tab.log_in("user_mfa")
        tab.wait_for_questions(["text"])
        tab.answer_round()
        tab.wait_for_title("^MX is connected$")
        assert tab.errors == []
    finally:
        tab.page.context.close()
        demo.send_signal(signal.SIGINT)
        demo.communicate(timeout=60)
    assert demo.returncode == 130
    assert not any(port_is_open(port) for port in ports.all())
