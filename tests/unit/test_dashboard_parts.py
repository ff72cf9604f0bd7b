"""The dashboard's pure parts (es.dashboard): rates, the guard on changes, tail rows, metrics."""

from __future__ import annotations

import datetime

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from clients.event import Event
from clients.payload import encode_payload
from clients.wire import Format
from es.dashboard.guard import refusal
from es.dashboard.metrics import StatsCollector, families
from es.dashboard.rates import COUNTERS, Rates
from es.dashboard.rows import MAX_DECODED, Tail, event_rows, gap_row

SERVED = "127.0.0.1:7770"


def test_rates_are_changes_over_time_and_a_restart_is_no_negative_rate() -> None:
    rates = Rates(keep=2)
    assert rates.add({"events_published": 10}, 100.0) == dict.fromkeys(COUNTERS, 0.0)
    assert rates.add({"events_published": 30}, 102.0)["events_published"] == 10.0
    assert rates.add({"events_published": 5}, 103.0)["events_published"] == 0.0  # restarted
    assert rates.add({"events_published": 5}, 103.0)["events_published"] == 0.0  # no time
    assert [p["at"] for p in rates.history] == [103.0, 103.0]  # the last `keep` only


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=30))
def test_rates_are_never_negative(counts: list[int]) -> None:
    rates = Rates()
    for n, count in enumerate(counts):
        assert all(r >= 0 for r in rates.add({"events_dropped": count}, float(n)).values())


def test_reads_pass_and_changes_need_this_host_and_no_foreign_origin() -> None:
    assert refusal("GET", None, "http://evil.example", SERVED, read_only=True) is None
    assert "read-only" in str(refusal("POST", SERVED, None, SERVED, read_only=True))
    assert refusal("POST", SERVED, None, SERVED, read_only=False) is None
    assert refusal("POST", "localhost:7770", "http://localhost:7770", SERVED, False) is None
    assert "Host" in str(refusal("POST", "evil.example:7770", None, SERVED, False))
    assert "Host" in str(refusal("POST", None, None, SERVED, False))
    assert "another site" in str(refusal("POST", SERVED, "http://evil.example", SERVED, False))
    elsewhere = "dashboard.example:7770"  # served under another name: localhost is not it
    assert "Host" in str(refusal("DELETE", "localhost:7770", None, elsewhere, False))
    assert refusal("PUT", elsewhere, f"http://{elsewhere}", elsewhere, False) is None


def _event(message: object, fmt: Format = Format.MSGPACK, **flags: object) -> Event:
    event = Event("plant.temp", 5.0, 7, encode_payload(message, fmt), fmt)
    for name, value in flags.items():
        setattr(event, name, value)
    return event


def test_a_row_shows_json_text_and_hex_within_its_cap() -> None:
    at = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)  # a msgpack timestamp
    (row,) = event_rows(_event({"t": 61, "at": at}), 64)
    assert row["json"] == {"t": 61, "at": "2026-01-02T00:00:00+00:00"}
    assert row["hex"].split()[0] == "82" and not row["cut"]
    (big,) = event_rows(_event("x" * 100), 16)
    assert big["cut"] and len(big["text"]) == 16 and len(big["hex"].split()) == 16
    assert big["json"] is None  # not whole within the cap
    (raw,) = event_rows(_event(b"\xff\xfe", Format.RAW), 64)
    assert raw["json"] == {"base64": "//4="} and "not UTF-8" in raw["text"]
    (text,) = event_rows(_event(b"hello", Format.RAW), 64)
    assert text["text"] == "hello" and text["format"] == "raw"
    pickled = Event("p", 1.0, 1, b"\x80\x04K\x01.", Format.PICKLE)
    (never,) = event_rows(pickled, 64)
    assert never["json"] is None and never["hex"] and "not shown" in never["text"]
    (other,) = event_rows(Event("o", 1.0, 1, b"\x01\x02", 9), 64)
    assert other["format"] == "format 9"  # a format this version does not know: hex only
    (listed,) = event_rows(_event([1.5, float("nan"), (2, 3)]), 64)
    assert listed["json"] == [1.5, None, [2, 3]]
    huge = Event("h", 1.0, 1, b"\x00" * (MAX_DECODED + 1), Format.RAW)
    assert "not decoded" in event_rows(huge, 8)[0]["text"]


def test_every_loss_is_a_row_before_its_event() -> None:
    rows = event_rows(_event(1, lost=3, resumed=True), 64)
    assert [r["kind"] for r in rows] == ["gap", "gap", "event"]
    assert [r["lost"] for r in rows[:2]] == [None, 3]
    assert gap_row(2, 9.0) == {"kind": "gap", "lost": 2, "time": 9.0}


@given(st.lists(st.integers(1, 5), max_size=40), st.integers(1, 10))
def test_the_tail_keeps_the_newest_rows_numbered_once(lots: list[int], size: int) -> None:
    tail = Tail(size)
    for count in lots:
        tail.add([gap_row(1, 0.0)] * count)
    numbers = [row["n"] for row in tail.rows]
    assert numbers == list(range(sum(lots) - len(numbers) + 1, sum(lots) + 1))
    assert len(numbers) == min(size, sum(lots)) and tail.count == sum(lots)
    assert tail.since(tail.count) == [] and tail.since(0) == list(tail.rows)


STATS = {
    "server": {"events_published": 12, "uptime": 3.5, "retained_bytes": 40},
    "subscribers": [
        {"id": "ab12", "name": "boiler", "policy": "block", "depth": 2, "queue": 10, "sent": 9},
        {"id": "cd34", "name": None, "policy": "drop", "dropped": 4},
    ],
}


def _text(stats: object, subjects: object = None, labels: frozenset[str] = frozenset()) -> str:
    registry = CollectorRegistry()
    registry.register(StatsCollector(lambda: (stats, subjects), labels))
    return generate_latest(registry).decode()


def test_metrics_in_base_units_with_labels_only_when_asked() -> None:
    text = _text(STATS)
    assert "es_up 1.0" in text and "es_events_published_total 12.0" in text
    assert "es_uptime_seconds 3.5" in text and "es_retained_bytes 40.0" in text
    assert 'es_subscribers{policy="block"} 1.0' in text
    assert "es_subscriber_" not in text and "es_subject_" not in text
    subjects = {"subjects": [{"subject": "plant.temp", "events": 12}]}
    labelled = _text(STATS, subjects, frozenset({"subscriber", "subject"}))
    assert 'es_subscriber_queue_depth{name="boiler",subscriber="ab12"} 2.0' in labelled
    assert 'es_subscriber_dropped_total{name="",subscriber="cd34"} 4.0' in labelled
    assert 'es_subject_events_total{subject="plant.temp"} 12.0' in labelled
    assert [f.name for f in families(None)] == ["es_up"]
    assert "es_up 0.0" in _text(None)
