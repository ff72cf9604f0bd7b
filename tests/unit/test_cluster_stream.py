"""The retained events' stream (es.cluster.stream), with a stand-in for JetStream's publish and
a clock of the test's own: each publish is settled once, in order; every retained event the
stream did not take is counted in `unsent`, exactly (the count STATS shows as
`cluster.retained_unsent`); a publish whose time ran out while others before it were tried is
refused without being tried (its client hears why within its own timeout)."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from nats.errors import Error as NatsError

from es.cluster import stream as stream_module
from es.cluster.stream import RetainedStream


class Stream:
    """JetStream's publish, taking or refusing each retained event as the test says; a refusal
    takes longer than a publish's whole deadline (a timeout, on the test's clock)."""

    def __init__(self, takes: dict[str, bool]) -> None:
        self.takes = takes
        self.kept: list[str] = []
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def publish(self, subject: str, body: bytes, **options: Any) -> None:
        if not self.takes[subject]:
            self.now += 10.0
            raise NatsError("no quorum")
        self.kept.append(subject)


def run(publishes: list[list[bool]]) -> tuple[RetainedStream, Stream]:
    takes = {f"rt.{p}.{e}": ok for p, events in enumerate(publishes) for e, ok in enumerate(events)}
    js = Stream(takes)
    retained = RetainedStream((100, 1 << 20), wake=lambda: None)

    async def main() -> None:
        for p, events in enumerate(publishes):
            retained.put(p, [(f"rt.{p}.{e}", b"", None) for e in range(len(events))])
        keeping = asyncio.create_task(retained.keep(js))  # type: ignore[arg-type]
        while len(retained.settled) < len(publishes):
            await asyncio.sleep(0.001)
        keeping.cancel()
        await asyncio.gather(keeping, return_exceptions=True)

    with mock.patch.object(stream_module, "time", js):  # the test's clock
        asyncio.run(main())
    return retained, js


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=1, max_size=4), max_size=6))
def test_each_publish_settled_once_and_every_event_not_taken_counted(
    publishes: list[list[bool]],
) -> None:
    retained, js = run(publishes)
    settled = list(retained.settled)
    assert [token for token, _ in settled] == list(range(len(publishes)))  # once, in order
    unsent, late = 0, False  # late: a refusal took the time of every publish queued with it
    kept: list[str] = []
    for p, events in enumerate(publishes):
        first_refused = 0 if late else events.index(False) if False in events else len(events)
        kept += [f"rt.{p}.{e}" for e in range(first_refused)]  # the rest are not tried
        unsent += len(events) - first_refused
        assert (settled[p][1] is None) == (first_refused == len(events))
        late = late or first_refused < len(events)
    assert js.kept == kept and retained.unsent == unsent
