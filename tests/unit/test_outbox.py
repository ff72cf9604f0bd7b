"""The publisher's outbox with a recording send function: alone when idle, gathered under load."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from clients.errors import RequestTimeout
from clients.outbox import MAX_BYTES, MAX_ITEMS, Outbox
from clients.wire import PubItem

WAIT = 30.0


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[list[bytes], str]] = []  # payloads, sending thread's name
        self.fail: Exception | None = None
        self.attempts = 0
        self.lock = threading.Lock()

    def __call__(self, items: tuple[PubItem, ...], size: int) -> None:
        assert size == sum(len(i.payload) for i in items)
        self.attempts += 1
        if self.fail is not None:
            raise self.fail
        with self.lock:
            self.sent.append(([i.payload for i in items], threading.current_thread().name))

    def payloads(self) -> list[bytes]:
        with self.lock:
            return [p for batch, _ in self.sent for p in batch]

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + WAIT
        while len(self.payloads()) < count:
            assert time.monotonic() < deadline, f"only {len(self.payloads())} of {count} sent"
            time.sleep(0.001)


def item(payload: bytes) -> tuple[tuple[PubItem, ...], int]:
    """What Outbox.put takes for one event: the items and their payload bytes."""
    return (PubItem(("s",), 0, payload),), len(payload)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def gathering(recorder: Recorder) -> Iterator[Outbox]:
    outbox = Outbox(recorder, linger=WAIT)  # everything after the first send is "under load"
    yield outbox
    outbox.close()


def test_an_idle_publisher_sends_at_once_in_its_own_thread(recorder: Recorder) -> None:
    outbox = Outbox(recorder, linger=0.0)
    try:
        for i in range(3):
            outbox.put(*item(b"%d" % i))
        assert recorder.sent == [([b"%d" % i], threading.current_thread().name) for i in range(3)]
    finally:
        outbox.close()


def test_publishes_close_together_are_gathered_and_flushed_without_being_asked(
    recorder: Recorder, gathering: Outbox
) -> None:
    payloads = [b"%d" % i for i in range(50)]
    for p in payloads:
        gathering.put(*item(p))
    recorder.wait_for(50)  # the flusher thread sent the rest: nothing waits for a flush
    assert recorder.payloads() == payloads
    assert recorder.sent[0] == ([b"0"], threading.current_thread().name)  # the first, alone
    assert len(recorder.sent) < 50 and gathering.batches >= 1


def test_a_full_batch_is_sent_by_the_publishing_thread(recorder: Recorder) -> None:
    outbox = Outbox(recorder, linger=WAIT)
    outbox.close()  # no flusher thread: only the publishing thread sends
    outbox.put(*item(b"first"))
    for _ in range(MAX_ITEMS - 1):
        outbox.put(*item(b"x"))
    assert len(recorder.sent) == 1
    outbox.put(*item(b"last"))  # the MAX_ITEMS-th waiting: the batch is full and goes at once
    assert [len(batch) for batch, _ in recorder.sent] == [1, MAX_ITEMS]
    assert recorder.payloads()[-1] == b"last"


def test_a_batch_never_grows_past_its_byte_limit(recorder: Recorder, gathering: Outbox) -> None:
    gathering.put(*item(b"first"))
    big = b"x" * (MAX_BYTES // 2 + 1)
    for _ in range(4):
        gathering.put(*item(big))
    gathering.drain()
    assert recorder.payloads()[1:] == [big] * 4
    assert all(sum(map(len, batch)) <= MAX_BYTES for batch, _ in recorder.sent)


def test_drain_sends_what_waits_before_returning(recorder: Recorder) -> None:
    outbox = Outbox(recorder, linger=WAIT)
    outbox.close()  # no flusher: only drain() can send what waits
    outbox.put(*item(b"a"))
    outbox.put(*item(b"b"))
    outbox.put(*item(b"c"))
    assert recorder.payloads() == [b"a"]
    outbox.drain()
    assert recorder.payloads() == [b"a", b"b", b"c"]


def test_an_error_in_the_flusher_thread_reaches_the_program_once(
    recorder: Recorder, gathering: Outbox
) -> None:
    gathering.put(*item(b"first"))  # sent at once; what follows is gathered for the flusher
    recorder.fail = RequestTimeout("the server accepts nothing")
    gathering.put(*item(b"lost"))
    deadline = time.monotonic() + WAIT
    while recorder.attempts < 2:  # the first send, this thread's; then the flusher's, failing
        assert time.monotonic() < deadline, "the flusher never tried"
        time.sleep(0.001)
    recorder.fail = None
    with pytest.raises(RequestTimeout):
        gathering.put(*item(b"next"))
    gathering.put(*item(b"next"))  # told once: the outbox works again
    gathering.drain()
    assert recorder.payloads() == [b"first", b"next"]
