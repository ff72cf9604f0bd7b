"""`make screenshots`: the README's pictures of the dashboard, taken in Debian's Chromium from a
private stack on loopback (free ports, its own name server), with a little traffic of its own.

    .venv/bin/python -m tests.screenshots [FOLDER]

Writes one PNG a page into FOLDER (es/dashboard/screenshots), replacing those there.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import sync_playwright

from clients import Publisher, Subscriber
from es.daemon import launch
from tests.chromium import CHROMIUM, FLAGS

PAGES = ("health", "names", "subscribers", "subjects", "counters", "tail", "publish", "activity")
FOLDER = Path(__file__).resolve().parents[1] / "es" / "dashboard" / "screenshots"


def start(stack: ExitStack, command: list[str], kind: str) -> str:
    log = stack.enter_context(tempfile.TemporaryFile("w+"))  # noqa: SIM115 - the stack closes it
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc, ready = launch.launch(command, kind, env, log)
    stack.callback(proc.wait, 30)
    stack.callback(proc.send_signal, 2)
    return str(ready["endpoint"])


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    python = [sys.executable, "-m"]
    with ExitStack() as stack:
        ns = start(stack, [*python, "naming", "serve", "-n", "127.0.0.1", "-p", "0"], "ns")
        address = urlsplit(ns).netloc
        es = start(stack, [*python, "es", "serve", "-n", "127.0.0.1", "-p", "0", "--ns", ns], "es")
        board = start(stack, [*python, "es", "dashboard", "-p", "0", "--ns", address], "dashboard")
        boiler = stack.enter_context(Subscriber(es, name="boiler"))
        boiler.subscribe(["plant.temperature", "plant.state"])
        audit = stack.enter_context(Subscriber(es, policy="drop", queue_size=50))
        audit.subscribe_match(r"^orders\.")
        pub = stack.enter_context(Publisher(es))
        pub.publish("plant.state", "running", retain=True)
        for n in range(400):
            pub.publish("plant.temperature", {"celsius": 60 + n % 7})
            pub.publish(f"orders.{('eu', 'us')[n % 2]}", {"order": n, "amount": 10 + n})
            time.sleep(0.005)
        pub.flush()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1200, "height": 720})
            for name in PAGES:
                page.goto(f"{board}/#{name}")
                if name == "tail":
                    page.fill("#tail-target", r"^(plant|orders)\.")
                    page.click("#tail-start")
                    page.wait_for_timeout(500)
                    for n in range(6):
                        pub.publish("plant.temperature", {"celsius": 70 + n})
                        pub.publish("orders.eu", {"order": 1000 + n, "amount": 42})
                    pub.flush()
                if name == "publish":
                    page.fill("#publish-form [name=subject]", "plant.state")
                    page.fill("#publish-form [name=body]", '{"state": "maintenance"}')
                    page.click("#publish-form button[type=submit]")
                page.wait_for_timeout(2500)  # a few live snapshots: rates and charts
                page.screenshot(path=str(folder / f"{name}.png"))
                print(f"{folder / name}.png")
            browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER)
