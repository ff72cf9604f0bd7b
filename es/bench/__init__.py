"""`es bench`: measure an event server against plain pyzmq, the limit of our own stack.

Every publisher and subscriber is an OS process of its own on this machine (es.bench.roles);
the workloads (es.bench.workloads) say what runs; the report (es.bench.report) prints tables and
appends the results to files, so that runs over time can be compared.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from es.bench.natspeer import nats_available
from es.bench.procs import BenchError, Stack
from es.bench.report import append_jsonl, append_markdown, machine, run_id, table
from es.bench.workloads import WORKLOADS, Settings, Target

__all__ = ["WORKLOADS", "BenchError", "Settings", "run_bench"]


def _progress(total: int) -> Callable[[str], None]:
    step = 0

    def say(what: str) -> None:
        nonlocal step
        step += 1
        print(f"[{step}/{total}] {what}", file=sys.stderr, flush=True)

    return say


def _steps(names: Sequence[str], settings: Settings) -> int:
    per = {
        "throughput": (4 if nats_available() else 3) * len(settings.subscribers),
        "latency": (4 if nats_available() else 3) * len(settings.rates),
        "matching": len(settings.patterns),
        "many": 1,
        "slow": 2,
        "hostile": 7,
        "cli": 1,
        "durable": 7,
        "cluster": 7 + (len({1, settings.cluster_spread}) + 1 if nats_available() else 0),
    }
    return sum(per[name] for name in names)


def run_bench(
    names: Sequence[str],
    settings: Settings,
    es_uri: str | None = None,
    results: Path | None = None,
    summary: Path | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Run the named workloads against `es_uri`, or against a private name and event server on
    loopback when it is None; print a table per workload and append to the results files."""
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workload {unknown[0]!r}; known: {', '.join(WORKLOADS)}")
    host, run = machine(), run_id()
    say = _progress(_steps(names, settings))
    found: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        if es_uri is None:  # a new server each time: one workload's memory is not the next's
            with Stack() as stack:
                target = Target(stack.endpoint, stack.pid, stack.ns_endpoint)
                found[name] = WORKLOADS[name](target, settings, say)
        else:
            found[name] = WORKLOADS[name](Target(es_uri), settings, say)
        print(f"\n{name}\n{table(name, found[name])}\n", flush=True)
    where = "a private server on loopback" if es_uri is None else f"the server at {es_uri}"
    if results is not None:
        append_jsonl(results, run, host, [r for rows in found.values() for r in rows])
    if summary is not None:
        append_markdown(summary, run, host, where, found)
    return found
