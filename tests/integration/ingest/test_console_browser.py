"""The console in a real browser: Debian's chromium, driven by selenium through its
chromedriver, against a real ingest, a real worker process and the sandbox.

An operator logs in, sees the backlog this test made, pauses and resumes a template (nothing
is sent while it is paused, everything after), cancels what waits and replays one dead letter
(the sandbox receives it), releases a hold (the sandbox receives it), and finds a sent
contact's call outcome by its id. A screenshot of each
page is saved under artifacts/console/ (CI keeps that folder). Requests without the session's
CSRF token, or without a session, are refused.

chromium and chromedriver must be installed (`.ci/run` installs Debian's `chromium` and
`chromium-driver`); without them this test fails, it does not skip.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from producers.api import Producer
from tests.console import PASSWORD, TEMPLATE, console_env
from tests.integration.conftest import State
from tests.integration.ingest.conftest import WEBHOOK_SECRET, IngestServer
from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.audit import Audit
from worker.deadletters import DeadLetters
from worker.holds import Holds
from worker.outcomes import OutcomeStore
from worker.sandbox import Sandbox

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts" / "console"
CHROMIUM = ("chromium", "chromium-browser")
CHROMEDRIVER = "chromedriver"


def _binary(names: tuple[str, ...]) -> str:
    for name in names:
        found = shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
        )
        if found:
            return found
    raise AssertionError(
        f"{' or '.join(names)} is not installed: apt-get install chromium chromium-driver"
    )


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = _binary(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(_binary((CHROMEDRIVER,))))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


class Operator:
    """What a person does in the browser: open a page, fill a form, press its button."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def text(self) -> str:
        """The page's visible text; "" while a form's answer is replacing the page (its old
        body is then stale), so a wait polls again instead of failing."""
        try:
            return str(self.driver.find_element(By.TAG_NAME, "body").text)
        except (StaleElementReferenceException, NoSuchElementException):
            return ""

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))

    def submit(self, form_css: str, button_text: str, **fields: str) -> None:
        form = self.driver.find_element(By.CSS_SELECTOR, form_css)
        for name, value in fields.items():
            field = form.find_element(By.NAME, name)
            field.clear()
            field.send_keys(value)
        form.find_element(By.XPATH, f".//button[normalize-space()='{button_text}']").click()

    def wait_text(self, text: str, timeout: float = 15) -> None:
        wait_for(lambda: text in self.text(), timeout, what=f"{text!r} in the page")


def test_an_operator_works_the_console_in_a_browser(
    browser: webdriver.Chrome,
    serve: Callable[[dict[str, str]], IngestServer],
    ingest_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
    producer: Producer,
    sandbox: Sandbox,
    state: State,
) -> None:
    server = serve(console_env(ingest_env))
    # The sandbox reports each call's end to this ingest, so a contact's page has an outcome.
    sandbox.webhooks.configure(url=server.url + "/v1/webhooks/levers", secret=WEBHOOK_SECRET)
    worker = start_worker(1, 4)
    worker.wait_ready()
    me = Operator(browser, server.url)

    # Not logged in: the console shows its login page, and logs in.
    me.open("/console")
    assert "/console/login" in browser.current_url
    me.shot("login")
    me.submit("form[action='/console/login']", "Log in", user="alice", password=PASSWORD)
    me.wait_text("Overview")

    # Pause the template, then give it a backlog: nothing of it leaves while it is paused.
    template_page = f"/console/templates/{TEMPLATE}"
    me.open(template_page)
    me.submit(f"form[action='{template_page}/pause']", "Pause", note="carrier incident")
    me.wait_text(f"paused {TEMPLATE}")
    assert "Paused since" in me.text()
    numbers = [f"+96655{i:07d}" for i in range(10)]
    rows = [{"number": n, "template_id": TEMPLATE} for n in numbers]
    assert len(producer.enqueue_contacts(rows).accepted) == 10
    wait_for(lambda: state.in_flight(), 15, what="a batch cut for the paused template")
    me.open("/console")
    assert me.driver.find_element(By.ID, "paused-count").text == "1"
    assert me.driver.find_element(By.ID, "backlog-total").text == "10"
    assert "carrier incident" in me.text()
    me.shot("overview")
    assert sandbox.accepted() == []

    # Resume: the ten are sent.
    me.open(template_page)
    me.shot("template")
    me.submit(f"form[action='{template_page}/resume']", "Resume", note="incident over")
    me.wait_text(f"resumed {TEMPLATE}")
    wait_for(lambda: _sent(sandbox) >= set(numbers), 30, what="the ten sent after the resume")

    # Cancel what waits (two more, paused again), then replay one dead letter.
    me.submit(f"form[action='{template_page}/pause']", "Pause", note="wrong list")
    me.wait_text(f"paused {TEMPLATE}")
    late = ["+966551111111", "+966552222222"]
    producer.enqueue_contacts([{"number": n, "template_id": TEMPLATE} for n in late])
    wait_for(lambda: state.in_flight(), 15, what="the two cut and waiting")
    me.submit(f"form[action='{template_page}/cancel']", "Cancel what waits", note="wrong list")
    me.wait_text("contacts dead-lettered")
    me.submit(f"form[action='{template_page}/resume']", "Resume", note="back to normal")
    me.wait_text(f"resumed {TEMPLATE}")
    dead = DeadLetters(state.client, state.keys)
    wait_for(lambda: dead.count() == 2, 15, what="two dead letters")
    me.open("/console/dead-letters?reason=cancelled")
    me.shot("dead-letters")
    first = dead.ids()[0]
    record = dead.get([first])[0]
    me.driver.find_element(By.LINK_TEXT, first).click()
    me.wait_text(f"Dead letter {first}")
    assert record["contact"]["numberToCall"] not in me.text()  # masked
    me.shot("dead-letter")
    me.submit("form[action^='/console/dead-letters/replay']", "Replay", note="it was right")
    me.wait_text("replayed 1 dead letters")
    wanted = record["contact"]["numberToCall"]
    wait_for(lambda: wanted in _sent(sandbox), 30, what="the replayed contact sent")
    assert dead.count() == 1

    # A hold for tomorrow, released now from the holds page: the sandbox receives it.
    held_number = "+966553333333"
    producer.enqueue_contacts(
        [{"number": held_number, "template_id": TEMPLATE, "not_before": time.time() + 86400}]
    )
    holds = Holds(state.client, state.keys, state.buffers.config)
    wait_for(lambda: holds.counts()["not_before"] == 1, 15, what="the contact held")
    me.open("/console/holds")
    assert "+96655*****33" in me.text() and held_number not in me.text()
    me.shot("holds")
    me.driver.find_element(By.CSS_SELECTOR, "input[type=checkbox][name=id]").click()
    me.submit("form[action^='/console/holds/release']", "Release chosen", note="asked to call")
    me.wait_text("released 1 held contacts")
    wait_for(lambda: held_number in _sent(sandbox), 30, what="the released contact sent")

    # The do-not-call list, and a batch with its contacts.
    me.open("/console/suppression")
    me.submit(
        "form[action='/console/suppression/add']",
        "Suppress",
        number="+966554444444",
        note="asked not to be called",
    )
    me.wait_text("is on the do-not-call list")
    me.shot("suppression")
    batch_id = sandbox.accepted()[0].body["contacts"][0]["metadata"]["levers_batcher"]["batch_id"]
    outcomes = OutcomeStore(state.client, state.keys, 3600)
    wait_for(lambda: outcomes.batch(batch_id)["outcomes"], 30, what="an outcome of the batch")
    me.open(f"/console/batches/{batch_id}")
    me.wait_text(f"Batch {batch_id}")
    me.shot("batch")
    contact_id = outcomes.batch(batch_id)["outcomes"][0]["contactId"]
    me.driver.find_element(By.ID, "find-id").send_keys(contact_id)
    me.driver.find_element(By.XPATH, "//button[normalize-space()='Find']").click()
    me.wait_text(f"Contact {contact_id}")
    assert "deliveryStatus" in me.text()
    called = outcomes.contact(contact_id)["numberTo"]
    assert called not in me.text()  # masked; alice may ask to see it, and that is recorded
    me.shot("contact")
    me.driver.find_element(By.PARTIAL_LINK_TEXT, "show whole number").click()
    me.wait_text(called)
    assert Audit(state.client, state.keys).recent(1)[0]["action"] == "reveal number"
    me.driver.set_window_size(390, 844)  # a phone
    me.open("/console")
    me.shot("overview-phone")
    me.driver.set_window_size(1280, 1000)

    # The browser's own session cannot act without the page's CSRF token, nor anyone without
    # a session; neither changes anything.
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    with httpx.Client(base_url=server.url, cookies=cookies) as http:
        forged = http.post(f"{template_page}/pause", data={"note": "forged"})
        assert forged.status_code == 403
    with httpx.Client(base_url=server.url) as stranger:
        assert stranger.post(f"{template_page}/pause", data={"note": "x"}).status_code == 401
    me.open(template_page)
    assert "Paused since" not in me.text()
    assert len(list(ARTIFACTS.glob("*.png"))) >= 10


def _sent(sandbox: Sandbox) -> set[str]:
    return {c["numberToCall"] for r in sandbox.accepted() for c in r.body["contacts"]}
