"""Service availability, after OSE's netsvc: a service announces itself and reports now and then;
a monitor says when it becomes available and when it goes away.

The service is a subscriber with a name (`Subscriber(name="boiler")`, listening for its commands)
that publishes a report every few seconds. The event server announces named services on
`$es.service.available` and `$es.service.gone` (with the reason: it unsubscribed, or it went
silent or unreachable when its process died), so the monitor needs nothing from the service.

    .venv/bin/python examples/service_availability.py          # a monitor, and a service that
                                                               # reports 3 times and leaves
    .venv/bin/python examples/service_availability.py monitor  # only the monitor, until Ctrl-C
    .venv/bin/python examples/service_availability.py service  # only the service, until Ctrl-C

Run `make run` first; ES_URI picks another event server. Kill a running service (kill -9) and
the monitor reports it gone once the server's liveness time (`es serve --liveness`) has passed.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time

from clients import Event, Publisher, Subscriber

NAME = "boiler"
AVAILABLE, GONE = "$es.service.available", "$es.service.gone"


def service(reports: int | None, interval: float, say: bool = True) -> None:
    """Announce the service, report every `interval` seconds (`reports` times, or until
    Ctrl-C), then leave; with `say`, print what it does."""
    show = print if say else (lambda *args, **kwargs: None)
    with Subscriber(name=NAME) as commands, Publisher() as reporter:
        commands.subscribe(f"{NAME}.commands")  # the subscription is what announces it
        show(
            f"service {NAME!r} available (its subscription announced it); reporting on "
            f"{NAME}.report every {interval:g} s",
            flush=True,
        )
        sent = 0
        while reports is None or sent < reports:
            sent += 1
            reporter.publish(f"{NAME}.report", {"report": sent, "temperature": 60 + sent})
            show(f"report {sent} sent", flush=True)
            time.sleep(interval)
        show(f"service {NAME!r} leaving", flush=True)


def watch(monitor: Subscriber, until_gone: bool, timeout: float) -> int:
    """Print what the monitor hears; return how many reports. With `until_gone`, stop when the
    service has gone."""
    reports = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = monitor.next(timeout=1.0)
        if event is None:
            continue
        reports += say(event)
        if until_gone and event.subject == GONE:
            break
    return reports


def say(event: Event) -> int:
    body = event.msg
    if event.subject == AVAILABLE:
        print(f"available: {body['name']}")
    elif event.subject == GONE:
        print(f"gone: {body['name']} ({body['reason']})")
    else:
        print(f"report from {NAME}: {body}")
        return 1
    return 0


def monitor() -> Subscriber:
    sub = Subscriber()
    sub.subscribe([AVAILABLE, GONE, f"{NAME}.report"])
    return sub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", nargs="?", choices=["monitor", "service"])
    parser.add_argument("--reports", type=int, help="reports before the service leaves [demo: 3]")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--quiet", action="store_true", help="service: print nothing")
    args = parser.parse_args()
    if args.part == "service":
        service(args.reports, args.interval, say=not args.quiet)
        return
    with monitor() as sub:
        if args.part == "monitor":
            watch(sub, until_gone=False, timeout=float("inf"))
            return
        reports = str(args.reports or 3)
        child = [sys.executable, __file__, "service", "--quiet", "--reports", reports]
        proc = subprocess.Popen([*child, "--interval", str(args.interval)])
        reports = watch(sub, until_gone=True, timeout=60)
        proc.wait(60)
    print(f"{reports} reports while it was available")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a part that runs until stopped
        main()
