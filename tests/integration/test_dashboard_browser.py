"""The dashboard in a real headless Chromium (Debian's, driven by Playwright, which downloads no
browser of its own), against real `ns`, `es` and `es dashboard` processes on loopback:

- the health page shows both servers; a new subscriber appears on the subscribers page;
- a test event published from the page shows in the live tail, with how many it reached;
- a name registered and removed from the page; the reserved ones offer no action;
- a drop-mode overflow of the tail shows as a gap row;
- in --read-only mode no action is offered;
- when the dashboard goes away the page says so, and comes back by itself when it returns.

Without Chromium these skip, saying why, unless ES_BROWSER_TESTS=required (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from clients import Publisher, Subscriber
from tests.chromium import CHROMIUM, FLAGS
from tests.integration.conftest import Daemon, es_command, spawn, spawn_es, spawn_ns

WAIT_MS = 60_000

if not os.path.exists(CHROMIUM):
    if os.environ.get("ES_BROWSER_TESTS") == "required":
        raise RuntimeError(f"the browser tests must run here, and there is no {CHROMIUM}")
    pytest.skip(
        f"no Chromium at {CHROMIUM}: `make test` installs Debian's where it runs as root",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


def spawn_dashboard(*args: str) -> Daemon:
    return spawn(es_command("dashboard", *args), "dashboard")


class Stack:
    def __init__(self, ns: Daemon, es: Daemon, board: Daemon) -> None:
        self.ns, self.es, self.board = ns, es, board

    @property
    def ns_address(self) -> str:
        return urlsplit(self.ns.endpoint).netloc


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    ns = spawn_ns()
    es = spawn_es("--ns", ns.endpoint, naming=True)
    board = spawn_dashboard("-p", "0", "--ns", urlsplit(ns.endpoint).netloc)
    try:
        yield Stack(ns, es, board)
    finally:
        for daemon in (board, es, ns):
            if daemon.proc.poll() is None:
                daemon.stop()
            daemon.log_path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = browser.new_page()
    opened.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    opened.close()
    assert errors == [], errors


def subject() -> str:
    return f"web.{uuid.uuid4().hex[:8]}"


def test_the_health_page_and_a_subscriber_appearing(stack: Stack, page: Page) -> None:
    page.goto(f"{stack.board.endpoint}/#health")
    expect(page.locator("#health-es dl")).to_contain_text("reachable")
    expect(page.locator("#health-es dl")).to_contain_text(stack.es.endpoint)
    expect(page.locator("#health-ns dl")).to_contain_text("reachable")
    expect(page.locator("#health-name dl")).to_contain_text("yes")
    page.click("nav a[href='#subscribers']")
    with Subscriber(stack.es.endpoint, name=f"boiler-{uuid.uuid4().hex[:4]}") as sub:
        sub.subscribe(subject())
        row = page.locator(f"#subscribers tr[data-id='{sub.id}']")
        expect(row).to_contain_text("block")
        expect(row).to_contain_text(sub.id)


def test_an_event_published_from_the_page_shows_in_the_live_tail(stack: Stack, page: Page) -> None:
    topic = subject()
    page.goto(f"{stack.board.endpoint}/#tail")
    page.select_option("#tail-mode", "subject")
    page.fill("#tail-target", topic)
    page.click("#tail-start")
    expect(page.locator("#tail-status")).to_contain_text(f"tailing subject {topic}")
    page.click("nav a[href='#publish']")
    page.fill("#publish-form [name=subject]", topic)
    page.fill("#publish-form [name=body]", '{"valve": "open"}')
    page.click("#publish-form button[type=submit]")
    expect(page.locator("#publish-result")).to_have_text("reached 1 subscriber(s)")  # the tail
    page.click("nav a[href='#tail']")
    row = page.locator("#tail-rows li.event").first
    expect(row).to_contain_text(topic)
    expect(row).to_contain_text('"valve": "open"')
    with page.expect_download() as exported:  # the tail as JSON lines
        page.click("#tail-export")
    (line,) = Path(exported.value.path()).read_text().splitlines()
    assert json.loads(line)["json"] == {"valve": "open"}


def test_a_name_registered_and_removed_from_the_page(stack: Stack, page: Page) -> None:
    name = f":Default.web{uuid.uuid4().hex[:6]}"
    page.goto(f"{stack.board.endpoint}/#names")
    expect(page.locator("#names-tree")).to_contain_text(":Pyro.EventService")
    reserved = page.locator("tr[data-name=':Pyro.EventService']")
    expect(reserved).to_contain_text("protected")
    expect(reserved.locator("button")).to_have_count(0)
    page.fill("#name-form [name=name]", name)
    page.fill("#name-form [name=uri]", "tcp://127.0.0.1:5555")
    page.fill("#name-form [name=meta]", "a test name")
    page.click("#name-form button[data-action=register]")
    row = page.locator(f"tr[data-name='{name}']")
    expect(row).to_contain_text("tcp://127.0.0.1:5555")
    expect(row).to_contain_text("a test name")
    row.locator("button").click()
    expect(row).to_have_count(0)
    expect(page.locator("#names-result")).to_have_text("remove: done")
    with page.expect_download() as exported:  # the names as JSON
        page.click("#names-export")
    listed = json.loads(Path(exported.value.path()).read_text())
    assert ":Pyro.EventService" in {n["name"] for n in listed["names"]}


def test_an_overflow_of_the_tail_shows_a_gap_row(stack: Stack, page: Page) -> None:
    topic = subject()
    page.goto(f"{stack.board.endpoint}/#tail")
    page.select_option("#tail-mode", "subject")
    page.fill("#tail-target", topic)
    page.fill("#tail-shown", "4096")
    page.click("#tail-start")
    expect(page.locator("#tail-status")).to_contain_text("tailing")
    with Publisher(stack.es.endpoint) as pub:  # faster than the dashboard can show them
        for n in range(5000):
            pub.publish(topic, {"n": n, "pad": "x" * 4000})
        pub.flush()
    expect(page.locator("#tail-rows li.gap").first).to_contain_text("lost")


def test_read_only_mode_offers_no_action(stack: Stack, page: Page) -> None:
    quiet = spawn_dashboard("-p", "0", "--ns", stack.ns_address, "--read-only")
    try:
        page.goto(f"{quiet.endpoint}/#names")
        expect(page.locator("#mode")).to_have_text("read-only")
        expect(page.locator("#names-tree")).to_contain_text(":Pyro.EventService")
        expect(page.locator("nav a[href='#publish']")).to_be_hidden()
        expect(page.locator("#name-form")).to_be_hidden()
    finally:
        quiet.stop()
        quiet.log_path.unlink(missing_ok=True)


def test_the_page_says_when_the_dashboard_is_gone_and_comes_back(stack: Stack, page: Page) -> None:
    first = spawn_dashboard("-p", "0", "--ns", stack.ns_address)
    again = None
    try:
        page.goto(f"{first.endpoint}/#counters")
        expect(page.locator("#counters [data-counter=events_published]")).to_be_visible()
        expect(page.locator("#banner")).to_be_hidden()
        first.stop()
        expect(page.locator("#banner")).to_be_visible()
        again = spawn_dashboard("-p", str(urlsplit(first.endpoint).port), "--ns", stack.ns_address)
        expect(page.locator("#banner")).to_be_hidden()  # EventSource came back by itself
    finally:
        for daemon in (first, again):
            if daemon is not None:
                if daemon.proc.poll() is None:
                    daemon.stop()
                daemon.log_path.unlink(missing_ok=True)
