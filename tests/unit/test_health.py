"""Liveness verdicts from times alone."""

from __future__ import annotations

from es.health import Health, verdict


def test_a_healthy_subscriber_stays() -> None:
    health = Health(last_heard=0.0)
    health.link(True, 0.5)
    assert verdict(health, 9.0, liveness=10.0, evict_stalled=60.0) is None


def test_reasons() -> None:
    silent = Health(last_heard=0.0)
    silent.link(True, 0.0)
    assert verdict(silent, 10.5, 10.0, 0.0) == "silent"
    never = Health(last_heard=100.0, link_since=0.0)
    assert verdict(never, 100.0, 10.0, 0.0) == "unreachable"
    lost = Health(last_heard=100.0)
    lost.link(True, 0.0)
    lost.link(False, 80.0)
    assert verdict(lost, 89.0, 10.0, 0.0) is None
    assert verdict(lost, 100.0, 10.0, 0.0) == "disconnected"
    full = Health(last_heard=100.0)
    full.link(True, 0.0)
    full.full(40.0)
    full.full(70.0)  # the first moment counts
    assert verdict(full, 100.5, 10.0, 60.0) == "stalled"


def test_heard_never_goes_back_in_time() -> None:
    health = Health(last_heard=50.0)
    health.heard(40.0)
    assert health.last_heard == 50.0


def test_only_consumption_resets_the_stall_clock() -> None:
    health = Health(last_heard=0.0)
    health.link(True, 0.0)
    health.consumed(1.0)
    health.full(10.0)
    health.heard(20.0)  # a heartbeat: alive, but nothing was consumed
    assert verdict(health, 40.5, 1000.0, 30.0) == "stalled"
    health.consumed(40.6)
    assert verdict(health, 41.0, 1000.0, 30.0) is None


def test_a_refused_handshake_removes_at_once_one_without_a_reason_only_when_it_repeats() -> None:
    refused = Health(last_heard=0.0, linked=True)
    refused.handshake(False)  # the inbox's ZAP said no, or security on one side only
    assert verdict(refused, 1.0, liveness=10, evict_stalled=60) == "refused"
    dying = Health(last_heard=0.0, linked=True)
    dying.handshake(None)  # a peer dying mid-handshake looks like this once
    dying.handshake(None)
    assert verdict(dying, 1.0, liveness=10, evict_stalled=60) is None
    dying.handshake(True)  # a good one starts the count again
    dying.handshake(None)
    dying.handshake(None)
    assert verdict(dying, 1.0, liveness=10, evict_stalled=60) is None
    dying.handshake(None)  # the third in a row: this inbox does not have the key it was given
    assert verdict(dying, 1.0, liveness=10, evict_stalled=60) == "refused"
