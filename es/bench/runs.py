"""Running a benchmark's role processes once and adding up what they measured.

A run says go to the publisher, waits (with deadlines) for every role's result line, and makes one
row: rates in events a second, CPU in seconds and in microseconds per event for each role,
latencies in microseconds. With a profile, py-spy samples the processes meanwhile.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from es.bench.procs import Role, cpu_of, rss_of
from es.bench.profile import Profiler

__all__ = ["Profile", "Row", "Target", "measure", "paced", "rate", "roles"]

Row = dict[str, Any]
# What to sample with py-spy during a run: the profiler, the run's label, and whether the server
# is ours (Python, so sampled) rather than nats-server.
Profile = tuple[Profiler, str, bool]
# Longest a role may take to get ready (many subscribers take a while to subscribe).
_READY = 120.0


@dataclass
class Target:
    """The event server under test: its address, and its PID when it runs on this machine."""

    endpoint: str
    pid: int | None = None
    ns: str | None = None  # its name server, when the bench started one

    def cpu(self) -> float | None:
        """The server's CPU seconds so far, when it runs here."""
        return None if self.pid is None else cpu_of(self.pid)

    def rss(self) -> int | None:
        """The server's resident memory in bytes, when it runs here."""
        return None if self.pid is None else rss_of(self.pid)


@contextlib.contextmanager
def roles(*specs: tuple[str, dict[str, Any]]) -> Iterator[list[Role]]:
    """Start role processes together and wait until each is ready; stop them all at the end."""
    started: list[Role] = []
    try:
        for name, args in specs:
            started.append(Role(name, args))
        for role in started:
            role.ready = role.line(_READY)
        yield started
    finally:
        for role in started:  # closing stdin also ends a subscriber that never reads
            role.close()


def measure(
    target: Target | None,
    pub: Role,
    subs: list[Role],
    seconds: float,
    profile: Profile | None = None,
) -> Row:
    """Say go to the publisher, wait for everyone's results, and add them up; with `profile`,
    sample the processes meanwhile (es.bench.profile)."""
    cpu0 = target.cpu() if target else None
    with _profiled(profile, target, pub, subs):
        pub.say("go")
        published = pub.line(seconds + 120)
        results = [s.line(seconds + 120) for s in subs]
    cpu1 = target.cpu() if target else None
    seen = [entry for result in results for entry in result["subs"]]
    received = sum(e["received"] for e in seen)
    firsts = [e["first"] for e in seen if e["received"]]
    lasts = [e["last"] for e in seen if e["received"]]
    span = max(lasts) - min(firsts) if firsts else 0.0
    sent = published["sent"]
    row: Row = {
        "sent": sent,
        "publish_rate": rate(sent, published["publish_seconds"]),
        "flushed_rate": rate(sent, published["flushed_seconds"]),
        "delivered": received,
        "delivered_rate": rate(received, span),
        "delivered_fraction": received / (sent * len(seen)) if sent and seen else 0.0,
        "lost_reported": sum(e["lost"] for e in seen),
        "cpu_publisher": round(published["cpu"], 3),
        "cpu_subscribers": round(sum(r["cpu"] for r in results), 3),
        "cpu_server": None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 3),
    }
    row.update(_per_event(row))
    latencies = [x for e in seen for x in e.get("latencies_ns", [])]
    if latencies:
        row.update(_percentiles(latencies))
    return row


def _profiled(
    profile: Profile | None, target: Target | None, pub: Role, subs: list[Role]
) -> contextlib.AbstractContextManager[None]:
    """py-spy on the publisher, the first subscriber and our server, when profiling."""
    if profile is None:
        return contextlib.nullcontext()
    profiler, label, ours = profile
    pids = {"publisher": pub.proc.pid, "subscriber": subs[0].proc.pid}
    if ours and target is not None and target.pid is not None:
        pids["server"] = target.pid
    return profiler.recording(label, pids)


def _per_event(row: Row) -> Row:
    """CPU microseconds per event: the publisher's and the server's per event sent, the
    subscribers' per event delivered (so a fan-out of N costs the server N deliveries)."""

    def micros(cpu: float | None, count: int) -> float | None:
        return None if cpu is None or not count else round(cpu / count * 1e6, 2)

    return {
        "us_publisher": micros(row["cpu_publisher"], row["sent"]),
        "us_server": micros(row["cpu_server"], row["sent"]),
        "us_subscriber": micros(row["cpu_subscribers"], row["delivered"]),
    }


def paced(rate: int, seconds: float, size: int) -> dict[str, Any]:
    """A latency run's publisher: `rate` events a second for `seconds`, each stamped with its
    send time (with 5 s more for the run to end)."""
    return {
        "count": int(rate * seconds),
        "rate": rate,
        "seconds": seconds + 5,
        "size": size,
        "latency": True,
    }


def rate(count: int, seconds: float) -> float:
    """Events a second, to a tenth (0 for no time at all)."""
    return round(count / seconds, 1) if seconds > 0 else 0.0


def _percentiles(latencies_ns: list[int]) -> Row:
    ordered = sorted(latencies_ns)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] / 1000, 1)

    return {"p50_us": at(0.5), "p90_us": at(0.9), "p99_us": at(0.99), "max_us": at(1.0)}
