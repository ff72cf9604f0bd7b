"""Pyro's stresstest: many publisher and subscriber threads in a few processes, for a while.

Each process runs publisher threads, each publishing numbered events on a subject of its own
(`stress.<process>.<thread>`) as fast as it can for the given time, then an end event with its
count; and subscriber threads on the pattern `^stress\\.`, which check that from every publisher
they received every number, once, in order. Block mode (the default) loses nothing, however
slow a subscriber is: the slowest sets the pace. It exits with status 1 unless every subscriber
got every event.

    .venv/bin/python examples/stresstest.py
    .venv/bin/python examples/stresstest.py --processes 3 --publishers 4 --subscribers 4 \
        --seconds 10

Run `make run` first; ES_URI picks another event server.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from typing import Any

from clients import Publisher, Subscriber
from clients.errors import EsError

PATTERN = r"^stress\."
MAX_EVENTS = 1_000_000  # per publisher thread: the time limit normally comes first
WAIT = 60.0  # longest a subscriber waits for the next event


def publisher(subject: str, seconds: float, counts: dict[str, int], errors: list[str]) -> None:
    try:
        with Publisher() as pub:
            deadline = time.monotonic() + seconds
            sent = 0
            while sent < MAX_EVENTS and time.monotonic() < deadline:
                pub.publish(subject, sent)
                sent += 1
            pub.publish(subject, {"end": sent})
    except EsError as exc:  # reported, and the run fails
        errors.append(f"publisher {subject}: {exc}")
        return
    counts[subject] = sent


def subscriber(sub: Subscriber, publishers: int, results: list[dict[str, Any]]) -> None:
    """Receive until every publisher's end event; check each one's numbers."""
    expected: dict[str, int] = {}  # subject -> next number
    ended: dict[str, int] = {}
    errors = 0
    while len(ended) < publishers and (event := sub.next(WAIT)) is not None:
        if isinstance(event.msg, dict):
            ended[event.subject] = event.msg["end"]
            continue
        if event.msg != expected.get(event.subject, 0) or event.lost:
            errors += 1
        expected[event.subject] = event.msg + 1
    complete = len(ended) == publishers and all(expected.get(s, 0) == n for s, n in ended.items())
    received = sum(expected.get(s, 0) for s in ended)
    results.append({"received": received, "ok": complete and errors == 0})


def worker(index: int, publishers: int, subscribers: int, everyone: int, seconds: float) -> None:
    """One process: subscribe, say ready, wait for go, publish; report as a JSON line."""
    subs = [Subscriber() for _ in range(subscribers)]
    for sub in subs:
        sub.subscribe_match(PATTERN)
    print(json.dumps({"ready": index}), flush=True)
    sys.stdin.readline()  # go
    results: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    errors: list[str] = []
    threads = [threading.Thread(target=subscriber, args=(s, everyone, results)) for s in subs]
    threads += [
        threading.Thread(target=publisher, args=(f"stress.{index}.{t}", seconds, counts, errors))
        for t in range(publishers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for sub in subs:
        sub.close()
    report = {"published": sum(counts.values()), "subscribers": results, "errors": errors}
    print(json.dumps(report), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--publishers", type=int, default=2, help="threads per process")
    parser.add_argument("--subscribers", type=int, default=2, help="threads per process")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    everyone = args.processes * args.publishers
    if args.worker is not None:
        worker(args.worker, args.publishers, args.subscribers, everyone, args.seconds)
        return
    command = [sys.executable, __file__, *sys.argv[1:]]
    procs = [
        subprocess.Popen(
            [*command, "--worker", str(k)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for k in range(args.processes)
    ]
    for proc in procs:  # every subscriber is in place before anyone publishes
        assert proc.stdout is not None
        assert "ready" in proc.stdout.readline()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = [json.loads(proc.communicate(timeout=args.seconds + 2 * WAIT)[0]) for proc in procs]
    published = sum(r["published"] for r in reports)
    subs = [s for r in reports for s in r["subscribers"]]
    received = sum(s["received"] for s in subs)
    print(f"{everyone} publishers published {published} events in {args.seconds:g} s")
    print(f"{len(subs)} subscribers received {received} events ({len(subs)} x {published})")
    for error in (e for r in reports for e in r["errors"]):
        print(error)
    failed = any(r["errors"] for r in reports) or any(proc.returncode for proc in procs)
    every = all(s["ok"] for s in subs) and received == len(subs) * published and not failed
    print(f"every subscriber received every event, in order: {every}")
    if not every:
        sys.exit(1)


if __name__ == "__main__":
    main()
