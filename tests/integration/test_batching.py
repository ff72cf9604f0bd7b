"""Batching with real daemons: many events to one message in each direction, none lost, none late.

The server gathers what it reads in one turn into one message per subscriber; a publisher gathers
publishes that come close together. Neither may reorder, lose or hold back an event.
"""

from __future__ import annotations

from collections.abc import Callable

from clients import Publisher, Subscriber
from tests.integration.conftest import Daemon, wait_until
from tests.integration.helpers import WAIT, paused, reading, warm_up

Start = Callable[..., Daemon]


def test_what_the_server_reads_in_one_turn_goes_out_as_one_message_per_subscriber(
    start_es: Start,
) -> None:
    """While the server is paused, 300 publishes (each alone in its message) queue for it; it
    reads them in one turn and sends each subscriber a few messages, every event in order."""
    es = start_es()
    with (
        Subscriber(es.endpoint) as one,
        Subscriber(es.endpoint) as two,
        Publisher(es.endpoint, linger=0) as pub,
    ):
        one.subscribe("gathered")
        two.subscribe(["gathered", "other"])
        warm_up(pub, "gathered", one, two)
        before = es.stats()["server"]
        with paused(es):
            for i in range(300):
                pub.publish("gathered" if i % 3 else "other", i)
        pub.flush(WAIT)
        after = es.stats()["server"]
        got = {
            sub.sid: [sub.next(WAIT) for _ in range(count)]
            for sub, count in ((one, 200), (two, 300))
        }
    # each publish its own request
    assert after["publish_requests"] - before["publish_requests"] == 300
    assert after["events_delivered"] - before["events_delivered"] == 500
    # gathered: far fewer than 500 messages
    assert after["delivery_messages"] - before["delivery_messages"] <= 10
    one_events, two_events = got[one.sid], got[two.sid]
    assert [e.msg for e in one_events if e] == [i for i in range(300) if i % 3]
    assert [e.msg for e in two_events if e] == list(range(300))
    for events in (one_events, two_events):
        seqs = [e.seq for e in events if e]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and not any(
            e and e.lost for e in events
        )


def test_a_burst_of_publishes_arrives_without_a_flush(start_es: Start) -> None:
    """Gathered publishes go out from the publisher's flusher thread: the program never has to
    flush for them to leave."""
    es = start_es()
    with Subscriber(es.endpoint) as sub, Publisher(es.endpoint, linger=WAIT) as pub:
        sub.subscribe("burst")
        with reading(sub) as events:
            for i in range(100):  # all but the first within `linger` of a send: gathered
                pub.publish("burst", i)
            wait_until(lambda: len(events) == 100, WAIT, "the burst, unflushed")
            published = es.stats()["server"]["publish_requests"]
        assert [e.msg for e in events] == list(range(100))
        assert published < 100  # fewer requests than events


def test_confirmed_publishes_and_flush_keep_their_place_among_gathered_ones(
    start_es: Start,
) -> None:
    es = start_es()
    with Subscriber(es.endpoint) as sub, Publisher(es.endpoint, linger=WAIT) as pub:
        sub.subscribe("order")
        for i in range(10):
            pub.publish("order", i)
        assert pub.publish("order", "confirmed", confirm=True) == 1
        for i in range(10, 20):
            pub.publish("order", i)
        pub.flush(WAIT)
        assert es.stats()["server"]["events_delivered"] == 21  # flush returned after all went out
        received = [sub.next(WAIT) for _ in range(21)]
    assert [e.msg for e in received if e] == [*range(10), "confirmed", *range(10, 20)]
