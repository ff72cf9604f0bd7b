"""Pyro's AllInOne example: name server, event server, publisher and subscriber in one program.

Both servers run in threads of this program, on free loopback ports; the program waits for each
to be ready (with a timeout), finds the event server by name like any client, and publishes and
subscribes with the asyncio classes (AsyncPublisher, AsyncSubscriber) on its own event loop.

    .venv/bin/python examples/allinone.py

Nothing else needs to run: this starts its own servers (and stops them at the end).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from clients import AsyncPublisher, AsyncSubscriber
from es import EventServer, ServerConfig
from naming.config import NsConfig
from naming.server import NameServerDaemon

READY_TIMEOUT = 10.0


async def consume(sub: AsyncSubscriber, count: int) -> list[str]:
    """The program's own loop: other tasks run beside this one."""
    seen = []
    async for event in sub:
        print(f"received {event.subject}: {event.msg}")
        seen.append(event.msg)
        if len(seen) == count:
            break
    return seen


async def produce(pub: AsyncPublisher, count: int) -> None:
    for n in range(count):
        await pub.publish("allinone.news", f"news item {n}")
        await asyncio.sleep(0.01)  # the loop runs the consumer meanwhile


async def talk(es_uri: str, count: int) -> list[str]:
    async with AsyncSubscriber(es_uri) as sub, AsyncPublisher(es_uri) as pub:
        await sub.subscribe("AllInOne.News")
        seen, _ = await asyncio.wait_for(
            asyncio.gather(consume(sub, count), produce(pub, count)), timeout=30
        )
    return seen


def main() -> None:
    ns = NameServerDaemon(NsConfig(port=0, uri_file="", discovery=False))
    ns_thread = ns.start()
    if not ns.wait_until_started(READY_TIMEOUT) or ns.endpoint is None:
        raise SystemExit("the name server did not start")
    es = EventServer(ServerConfig(port=0, ns_address=ns.endpoint))
    es_thread = es.start()
    try:
        if not es.wait_until_started(READY_TIMEOUT):
            raise SystemExit("the event server did not start")
        address = urlsplit(ns.endpoint).netloc
        print(f"name server at {ns.endpoint}, event server at {es.endpoint}")
        # found by name, through this program's own name server
        seen = asyncio.run(talk(f"PYRONAME://{address}/:Pyro.EventService", 5))
        print(f"{len(seen)} events through servers running in this program")
    finally:
        es.stop()
        es_thread.join(30)
        ns.stop()
        ns_thread.join(30)


if __name__ == "__main__":
    main()
