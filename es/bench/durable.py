"""The durable workload of the benchmark: what keeping events for a subscriber costs.

Each configuration runs on a private name and event server of its own (es.bench.procs.Stack),
so that storage settings differ; the reference is an ordinary subscriber on memory storage, in
the same run. Figures: the delivered rate of a durable subscriber with memory storage and with
sqlite at each fsync setting, the rate at which one that was away gets what it missed (replay),
the rate at which a new subscriber gets what a history rule kept (history-replay, SPEC 7.11),
and how long a server killed with -9 holding many stored events takes to be ready again.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from es.bench.procs import Stack
from es.bench.runs import Row, Target, measure, rate, roles

if TYPE_CHECKING:
    from es.bench.workloads import Settings

__all__ = ["durable"]

# Seconds a fill of the log (for replay and recovery) may take at most.
_FILL_SECONDS = 600.0
_NAME = "bench-durable"


def durable(target: Target, settings: Settings, progress: Callable[[str], None]) -> list[Row]:
    """One publisher in a tight loop and one subscriber in block mode: an ordinary one on memory
    storage (the reference), a durable one on memory storage, and on sqlite with each fsync
    setting (`ratio`: to the reference). Then replay and recovery (see the module). `target` is
    not used: each configuration needs a server of its own."""
    rows: list[Row] = []
    pub_args = {"count": settings.durable_events, "seconds": settings.seconds}
    pub_args["size"] = settings.size
    with tempfile.TemporaryDirectory(prefix="es-bench-durable-") as tmp:
        room = _room(settings.durable_events, settings.size)
        configs: list[tuple[str, tuple[str, ...], str | None]] = [
            ("memory", (), None),
            ("memory-durable", room, _NAME),
        ]
        for fsync in ("group", "every", "os"):
            storage = f"sqlite:{Path(tmp) / f'{fsync}.db'}"
            args = ("--storage", storage, "--fsync", fsync, *room)
            configs.append((f"sqlite-{fsync}", args, _NAME))
        reference = None
        for impl, es_args, name in configs:
            progress(f"durable: {impl}")
            with Stack(*es_args) as stack, _served(stack) as served:
                sub = _sub(served, name)
                with roles(sub) as subs, roles(_pub(served, pub_args)) as (pub,):
                    row = measure(served, pub, subs, settings.seconds)
            reference = reference or row
            row["ratio"] = _ratio(row, reference)
            rows.append({"workload": "durable", "impl": impl, **row})
        progress("durable: replay")
        rows.append(_replay(Path(tmp) / "replay.db", settings))
        progress("durable: history replay")
        rows.append(_history_replay(settings))
        progress("durable: recovery after kill -9")
        rows.append(_recovery(Path(tmp) / "recovery.db", settings))
    return rows


def _room(events: int, size: int) -> tuple[str, ...]:
    """Options for a log that holds `events` events of `size` bytes (the defaults hold 100,000):
    the runs measure speed, not the bounds."""
    most = 2 * events + 1000
    return ("--max-durable-events", str(most), "--max-durable-bytes", str(most * (size + 200)))


@contextlib.contextmanager
def _served(stack: Stack) -> Iterator[Target]:
    yield Target(stack.endpoint, stack.pid, stack.ns_endpoint)


def _sub(target: Target, name: str | None, **args: Any) -> tuple[str, dict[str, Any]]:
    spec: dict[str, Any] = {"es": target.endpoint, "policy": "block", "subjects": ["bench.data"]}
    if name is not None:
        spec["durable"] = name
    return "sub", {**spec, **args}


def _pub(target: Target, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "pub", {"es": target.endpoint, **args}


def _ratio(row: Row, reference: Row) -> float:
    base = reference["delivered_rate"]
    return round(row["delivered_rate"] / base, 3) if base else 0.0


def _fill(target: Target, count: int, size: int) -> float:
    """A durable subscriber subscribes and goes (its events stay); then `count` events are
    published for it. Returns the seconds publishing took, to the last one on disk."""
    with roles(_sub(target, _NAME, stall=True)):
        pass  # it subscribed, and goes without unsubscribing: the server keeps its events
    args = {"count": count, "seconds": _FILL_SECONDS, "size": size}
    with roles(_pub(target, args)) as (pub,):
        pub.say("go")
        return float(pub.line(_FILL_SECONDS + 120)["flushed_seconds"])


def _replay(path: Path, settings: Settings) -> Row:
    """A durable subscriber away while `durable_events` were published, then back: the rate it
    gets them at (sqlite, fsync group)."""
    count = settings.durable_events
    room = _room(count, settings.size)
    with Stack("--storage", f"sqlite:{path}", *room) as stack, _served(stack) as served:
        fill = _fill(served, count, settings.size)
        with roles(_sub(served, _NAME)) as (sub,):
            seen = sub.line(_FILL_SECONDS)["subs"][0]
    span = seen["last"] - seen["first"]
    return {
        "workload": "durable",
        "impl": "replay",
        "sent": count,
        "stored_rate": rate(count, fill),
        "delivered": seen["received"],
        "delivered_rate": rate(seen["received"], span),
        "lost_reported": seen["lost"],
    }


def _history_replay(settings: Settings) -> Row:
    """`durable_events` kept by a history rule (memory storage), then a new subscriber asking
    for all of them (SPEC 7.11): the rate it gets them at."""
    count = settings.durable_events
    most = count + 1000
    rule = rf"bench\..*={most},{most * (settings.size + 200)}B"
    with Stack("--history", rule) as stack, _served(stack) as served:
        args = {"count": count, "seconds": _FILL_SECONDS, "size": settings.size}
        with roles(_pub(served, args)) as (pub,):
            pub.say("go")
            fill = float(pub.line(_FILL_SECONDS + 120)["flushed_seconds"])
        with roles(_sub(served, None, history={"from": 1})) as (sub,):
            seen = sub.line(_FILL_SECONDS)["subs"][0]
    span = seen["last"] - seen["first"]
    return {
        "workload": "durable",
        "impl": "history-replay",
        "sent": count,
        "stored_rate": rate(count, fill),
        "delivered": seen["received"],
        "delivered_rate": rate(seen["received"], span),
        "lost_reported": seen["lost"],
    }


def _recovery(path: Path, settings: Settings) -> Row:
    """A server holding `recovery_events` stored events killed with -9, then started on the same
    file: seconds to its ready line; beside it, the same for an empty file (the reference)."""
    count = settings.recovery_events
    room = _room(count, settings.size)
    with Stack("--storage", f"sqlite:{path}", *room) as stack, _served(stack) as served:
        fill = _fill(served, count, settings.size)
        stack.kill_es()
    empty = path.with_name("empty.db")
    return {
        "workload": "durable",
        "impl": "recovery",
        "stored": count,
        "stored_rate": rate(count, fill),
        "file_bytes": path.stat().st_size,
        "ready_seconds": round(_time_to_ready(path), 3),
        "ready_seconds_empty": round(_time_to_ready(empty), 3),
    }


def _time_to_ready(path: Path) -> float:
    """Seconds from starting `es serve` on the sqlite file `path` (no name server) to its ready
    line; the server is stopped after."""
    from es.stack import start_daemon, stop_daemon

    command = [sys.executable, "-m", "es", "serve", "-N", "-n", "127.0.0.1", "-p", "0"]
    command += ["--storage", f"sqlite:{path}"]
    start = time.monotonic()
    with tempfile.TemporaryFile("w+") as log:
        proc, _ = start_daemon(command, "es", dict(os.environ), log)
        ready = time.monotonic() - start
        stop_daemon(proc)
    return ready
