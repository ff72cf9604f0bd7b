"""The cluster workload of `es bench`: three nodes over three local nats-servers in a NATS
cluster (es.cluster.natsd), all private, on loopback, on ports of their own.

Rows: one subscriber on the publisher's node (`same-node`) and on another (`cross-node`); a
fixed number of subscribers spread over 1, 2 and 3 nodes (`spread`), the publisher on the first;
NATS core alone with the same process layouts (`nats`), as the reference of the run; and the
latency of one subscriber on the same and on another node at the bench's first rate, beside
NATS core's.
`us_server` is the CPU of the publisher's node per event sent; every subscriber is in block mode.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from es.bench.natspeer import nats_server
from es.bench.runs import Row, Target, measure, paced, roles
from es.cluster.natsd import start_cluster

if TYPE_CHECKING:
    from es.bench.workloads import Settings

__all__ = ["NODES", "cluster", "nodes"]

NODES = 3
"""Nodes in the bench's cluster: what `es up --nodes 3` runs."""


@contextlib.contextmanager
def nodes(count: int = NODES) -> Iterator[list[Target]]:
    """`count` event servers as the nodes of a cluster over as many local nats-servers; no name
    server (-N) and no user file or default port is touched."""
    from es.stack import start_daemon, stop_daemon

    env = {**os.environ, "NS_URI_FILE": ""}
    servers = start_cluster(count)
    started = []
    with tempfile.NamedTemporaryFile("w+", prefix="es-bench-cluster-", suffix=".log") as log:
        try:
            for n, server in enumerate(servers):
                command = [sys.executable, "-m", "es", "serve", "-n", "127.0.0.1", "-p", "0", "-N"]
                command += ["--cluster", server.url, "--node-name", f"n{n + 1}"]
                started.append(start_daemon(command, "es", env, log))
            yield [Target(str(ready["endpoint"]), proc.pid) for proc, ready in started]
        finally:
            for proc, _ in started:
                stop_daemon(proc)
            for server in servers:
                server.stop()


def _sub(target: Target, **args: Any) -> tuple[str, dict[str, Any]]:
    return "sub", {"es": target.endpoint, "policy": "block", "subjects": ["bench.data"], **args}


def _run(publisher: Target, subscribers: list[Target], pub_args: dict[str, Any]) -> Row:
    """One publisher on `publisher`, a subscriber on each of `subscribers`, measured."""
    with (
        roles(*[_sub(t, latency=bool(pub_args.get("latency"))) for t in subscribers]) as subs,
        roles(("pub", {"es": publisher.endpoint, **pub_args})) as (pub,),
    ):
        return measure(publisher, pub, subs, float(pub_args["seconds"]))


def _nats(url: str, pid: int, n: int, pub_args: dict[str, Any]) -> Row:
    args = {**pub_args, "url": url}
    with roles(*[("natssub", args)] * n) as subs, roles(("natspub", args)) as (pub,):
        return measure(Target(url, pid), pub, subs, float(pub_args["seconds"]))


def cluster(target: Target, settings: Settings, progress: Callable[[str], None]) -> list[Row]:
    """See the module. `target` is not used: the cluster is the workload's own."""
    rows: list[Row] = []
    pub_args = {"count": settings.events, "seconds": settings.seconds, "size": settings.size}
    spread = settings.cluster_spread
    with nodes() as ts, nats_server() as nats:
        first = ts[0]
        nats_rows: dict[int, Row] = {}  # the reference of each layout: NATS core alone

        def row(impl: str, on: int, n: int, measured: Row) -> None:
            if nats_rows.get(n):
                measured["nats_ratio"] = round(
                    measured["delivered_rate"] / nats_rows[n]["delivered_rate"], 3
                )
            rows.append({"workload": "cluster", "impl": impl, "nodes": on, "n": n, **measured})

        if nats is not None:
            for n in sorted({1, spread}):
                progress(f"cluster: NATS core alone, {n} subscriber(s)")
                nats_rows[n] = _nats(nats[0], nats[1], n, pub_args)
                rows.append(
                    {"workload": "cluster", "impl": "nats", "nodes": 1, "n": n, **nats_rows[n]}
                )
        for impl, where in (("same-node", first), ("cross-node", ts[1])):
            progress(f"cluster: one subscriber, {impl}")
            row(impl, 1 if where is first else 2, 1, _run(first, [where], pub_args))
        for k in range(1, len(ts) + 1):
            progress(f"cluster: {spread} subscribers over {k} node(s)")
            row("spread", k, spread, _run(first, [ts[i % k] for i in range(spread)], pub_args))
        rate = settings.rates[0]
        stamped = paced(rate, settings.latency_seconds, settings.size)
        if nats is not None:
            progress(f"cluster: latency at {rate}/s, NATS core alone")
            measured = _nats(nats[0], nats[1], 1, stamped)
            rows.append(
                {
                    "workload": "cluster",
                    "impl": "latency-nats",
                    "nodes": 1,
                    "n": 1,
                    "rate": rate,
                    **measured,
                }
            )
        for impl, where in (("latency-same", first), ("latency-cross", ts[1])):
            progress(f"cluster: latency at {rate}/s, {impl.removeprefix('latency-')} node")
            measured = _run(first, [where], stamped)
            rows.append(
                {
                    "workload": "cluster",
                    "impl": impl,
                    "nodes": 1 + (where is not first),
                    "n": 1,
                    "rate": rate,
                    **measured,
                }
            )
    return rows
