"""A partition of a three-server NATS cluster, made by TCP proxies of the test's own: the one
server cut off from the other two is the minority side.

- There a publish of retained events fails with NO_QUORUM (NoQuorum) within the client's default
  timeout, and nothing of it is delivered, not even on its own node; the connection goes on.
- On the majority side retained publishes go on (once the stream has a leader there).
- Healed, the minority side's retained publishes are taken again, and every node holds the
  latest retained event.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from clients import Publisher, Subscriber
from clients.errors import NoQuorum
from es.cluster.natsd import (
    NatsServer,
    binary,
    seed_settings,
    start_server,
    wait_for_jetstream,
    wait_for_routes,
)
from tests.integration.conftest import Daemon, spawn_es, wait_until
from tests.integration.helpers import Cuttable, retain_through_elections, take

pytestmark = pytest.mark.skipif(binary() is None, reason="nats-server is not in this venv")

DEADLINE = 90.0  # for what the NATS cluster itself does: routes, elections


def _cluster(node: Daemon) -> dict[str, object]:
    cluster = node.stats()["server"]["cluster"]
    assert isinstance(cluster, dict)
    return cluster


def _retained(node: Daemon, subject: str) -> object:
    """The retained event of `subject` on `node` now (None: none yet)."""
    with Subscriber(node.endpoint) as sub:
        sub.subscribe(subject)
        event = sub.next(timeout=2.0)
    return event.msg if event is not None and event.retained else None


# Where every server tells the others to route to it: nothing listens there, so the servers
# keep to the routes each was given, and n3's all pass through the proxies.
NOWHERE = "127.0.0.1:1"


@contextmanager
def _three_with_one_cuttable() -> Iterator[tuple[list[NatsServer], list[Cuttable]]]:
    """n1 and n2 routed directly; n3 reaches each only through a proxy of its own."""
    with ExitStack() as stack:
        settings = {"advertise": False, "route_address": NOWHERE}
        first = start_server("n1", cluster=True, **settings, **seed_settings())
        stack.callback(first.stop)
        second = start_server("n2", [first.route], True, jetstream=True, **settings)
        stack.callback(second.stop)
        proxies = []
        for server in (first, second):
            host, port = server.route.removeprefix("nats://").rsplit(":", 1)
            proxy = Cuttable((host, int(port)))
            stack.callback(proxy.close)
            proxies.append(proxy)
        routes = [f"nats://127.0.0.1:{p.port}" for p in proxies]
        third = start_server("n3", routes, True, jetstream=True, **settings)
        stack.callback(third.stop)
        servers = [first, second, third]
        wait_for_routes(servers, deadline=DEADLINE)
        wait_for_jetstream(servers, deadline=DEADLINE)
        yield servers, proxies


def test_a_retained_publish_on_the_minority_side_fails_clearly_and_heals() -> None:
    with _three_with_one_cuttable() as (servers, proxies), ExitStack() as stack:
        nodes: list[Daemon] = []
        for name, server in zip("xyz", servers, strict=True):
            node = spawn_es("--cluster", server.url, "--node-name", name)
            stack.callback(node.log_path.unlink, missing_ok=True)
            stack.callback(node.stop)
            nodes.append(node)
        x, _, z = nodes
        for node in nodes:
            wait_until(lambda n=node: len(_cluster(n)["peers"]) == 2, what="peers")  # type: ignore[arg-type]
            wait_until(lambda n=node: _cluster(n)["jetstream"] is True, what="the stream")
        with Publisher(z.endpoint) as from_z, Publisher(x.endpoint) as from_x:
            retain_through_elections(from_z, "valve", "open")
            wait_until(lambda: all(_retained(n, "valve") == "open" for n in nodes), what="kept")
            for proxy in proxies:
                proxy.cut()
            wait_until(lambda: not _cluster(z)["peers"], what="node z to be cut off")
            with Subscriber(z.endpoint) as on_z:
                on_z.subscribe("valve")
                assert [e.msg for e in take(on_z, 1)] == ["open"]  # retained, from before
                began = time.monotonic()
                with pytest.raises(NoQuorum, match="nothing was published"):
                    from_z.publish("valve", "shut", retain=True, confirm=True)  # default timeout
                failed_after = time.monotonic() - began
                from_z.publish("valve", "plain", confirm=True)  # the connection goes on
                assert [e.msg for e in take(on_z, 1)] == ["plain"]  # and "shut" never came
            retain_through_elections(from_x, "valve", "half")  # the majority side takes them
            assert _cluster(z)["retained_unsent"] == 1
            for proxy in proxies:
                proxy.heal()
            wait_for_routes(servers, deadline=DEADLINE)
            wait_until(lambda: len(_cluster(z)["peers"]) == 2, what="node z to hear the others")  # type: ignore[arg-type]
            retain_through_elections(from_z, "valve", "closed")
            wait_until(lambda: all(_retained(n, "valve") == "closed" for n in nodes), what="healed")
    print(f"a retained publish on the minority side failed after {failed_after:.1f} s")
