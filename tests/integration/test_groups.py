"""Queue groups (SPEC 7.12) with real processes: three members share 30,000 events, one of them
killed with -9 mid-stream, and every event is handled, what the killed one held by the others,
flagged redelivered; a durable group keeps its events while no member is present, across
kill -9 of the server with sqlite; a group that is not durable ends with its last member."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from clients import Publisher, Subscriber, admin
from tests.integration.conftest import Daemon, wait_until
from tests.integration.helpers import WAIT, subscriber_process, take

TOTAL = 30_000


def _lines(path: Path) -> list[dict[str, Any]]:
    """The events an `es sub --json` printed to `path` so far (a last line cut short is not)."""
    text = path.read_text()
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def _group(es: Daemon, name: str) -> dict[str, Any] | None:
    return next((g for g in es.stats()["server"]["groups"] if g["name"] == name), None)


def test_three_members_share_the_work_and_a_killed_ones_events_go_to_the_others(
    start_es: Any, tmp_path: Path
) -> None:
    es = start_es()
    topic = f"jobs.{uuid.uuid4().hex[:8]}"
    group = f"workers-{uuid.uuid4().hex[:6]}"
    outputs = [tmp_path / f"member{i}.jsonl" for i in range(3)]
    args = (topic, "--es", es.endpoint, "--group", group, "--json", "--queue-size", "200")
    with ExitStack() as stack:
        files = [stack.enter_context(path.open("w")) for path in outputs]
        members = [stack.enter_context(subscriber_process(*args, stdout=f)) for f in files]
        with Publisher(es.endpoint) as pub:
            for i in range(TOTAL // 3):
                pub.publish(topic, i)
            pub.flush()
            wait_until(lambda: len(_lines(outputs[0])) >= 100, WAIT, "the first member at work")
            members[0].kill()  # mid-stream, holding events it has not acknowledged
            members[0].wait(WAIT)
            for i in range(TOTAL // 3, TOTAL):
                pub.publish(topic, i, confirm=i % 1000 == 999)
            pub.flush()

        def handled() -> set[int]:
            return {e["msg"] for path in outputs for e in _lines(path)}

        wait_until(lambda: len(handled()) == TOTAL, 2 * WAIT, "every event handled")
        wait_until(lambda: (_group(es, group) or {}).get("stored") == 0, WAIT, "all acknowledged")
    killed = _lines(outputs[0])
    survivors = [e for path in outputs[1:] for e in _lines(path)]
    counts = Counter(e["msg"] for e in survivors)
    assert all(n == 1 for n in counts.values())  # the survivors handled each event once
    assert set(counts) | {e["msg"] for e in killed} == set(range(TOTAL))
    again = {e["msg"] for e in survivors if e.get("redelivered")}
    twice = {e["msg"] for e in killed} & set(counts)
    assert twice <= again  # an event handled twice came again, flagged, after its member died
    assert again and len(again) <= 200  # at most what the killed one held: its queue
    assert all(e["lost"] == 0 for e in killed + survivors)
    stats = _group(es, group)
    assert stats is not None and stats["redelivered"] == len(again)
    assert stats["handed"] == TOTAL + len(again) and stats["dropped"] == 0


def test_a_durable_group_keeps_its_events_while_no_member_is_present_across_kill_9(
    start_es: Any, tmp_path: Path
) -> None:
    spec = f"sqlite:{tmp_path / 'es.db'}"
    first = start_es("--storage", spec)
    topic = f"bills.{uuid.uuid4().hex[:8]}"
    with Subscriber(first.endpoint, group="billers", durable=True) as member:
        member.subscribe(topic)
    # no member now: the group keeps what comes
    with Publisher(first.endpoint) as pub:
        for i in range(500):
            pub.publish(topic, i, confirm=i % 100 == 99)
    assert (_group(first, "billers") or {}).get("waiting") == 500
    first.kill()
    again = start_es("--storage", spec)
    assert (_group(again, "billers") or {}).get("stored") == 500
    with Subscriber(again.endpoint, group="billers", durable=True) as member:
        member.subscribe(topic)
        got = [event.msg for event in take(member, 500)]
    assert got == list(range(500))
    wait_until(lambda: (_group(again, "billers") or {}).get("stored") == 0, WAIT, "acknowledged")


def test_a_group_that_is_not_durable_ends_with_its_last_member(start_es: Any) -> None:
    es = start_es()
    topic = f"tasks.{uuid.uuid4().hex[:8]}"
    with Subscriber(es.endpoint, group="passing") as member:
        member.subscribe(topic)
        assert _group(es, "passing") is not None
    assert _group(es, "passing") is None
    with Publisher(es.endpoint) as pub:
        assert pub.publish(topic, "nobody", confirm=True) == 0
    stats = admin.stats(es.endpoint)
    assert stats["server"]["groups"] == []


def test_an_event_a_member_was_still_handling_when_it_died_goes_to_another(
    start_es: Any,
) -> None:
    """An event counts as handled when the program asks for the next one (or closes), not when
    it is handed out: a member that dies in its handler has not acknowledged it."""
    es = start_es()
    topic = f"tasks.{uuid.uuid4().hex[:8]}"
    survivor = Subscriber(es.endpoint, group="careful", queue_size=5)
    try:
        survivor.subscribe(topic)
        dying = Subscriber(es.endpoint, group="careful", queue_size=5)
        dying.subscribe(topic)
        with Publisher(es.endpoint) as pub:
            pub.publish(topic, "first", confirm=True)  # the first member in turn: survivor
            pub.publish(topic, "second", confirm=True)  # then the dying one
        event = dying.next(timeout=WAIT)
        assert event is not None and event.msg == "second"
        dying._ack()  # whatever it would send now: nothing, the event is not done
        dying._keeper.close()  # then it dies in its handler: no word to the server
        dying._inbox.close(linger=0)
        got = take(survivor, 2)
        assert [(e.msg, e.redelivered) for e in got] == [("first", False), ("second", True)]
        dying.close()  # what is left of it (the server forgot it)
    finally:
        survivor.close()
