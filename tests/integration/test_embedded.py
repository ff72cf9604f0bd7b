"""The event server embedded in a program: started in a thread, waited for, stopped."""

from __future__ import annotations

import threading

from clients import Publisher, Subscriber
from es import EventServer, ServerConfig


def test_start_in_a_thread_wait_until_started_and_stop() -> None:
    server = EventServer(ServerConfig(port=0, use_naming=False))
    thread = server.start()
    assert server.wait_until_started(30.0)
    assert server.endpoint is not None and server.endpoint.startswith("tcp://127.0.0.1:")
    with Subscriber(server.endpoint) as sub, Publisher(server.endpoint) as pub:
        sub.subscribe("embedded")
        pub.publish("embedded", "hi")
        event = sub.next(30.0)
        assert event is not None and event.msg == "hi"
    server.stop()
    thread.join(30.0)
    assert not thread.is_alive() and server.exit_code == 0


def test_pyro_spelling_of_wait_until_started() -> None:
    server = EventServer(ServerConfig(port=0, use_naming=False))
    thread = server.start()
    assert server.waitUntilStarted(30.0)
    server.stop()
    thread.join(30.0)


def test_a_server_that_cannot_bind_reports_false_and_exit_code_3() -> None:
    first = EventServer(ServerConfig(port=0, use_naming=False))
    first_thread = first.start()
    assert first.wait_until_started(30.0) and first.endpoint is not None
    port = int(first.endpoint.rsplit(":", 1)[1])
    second = EventServer(ServerConfig(port=port, use_naming=False))
    second_thread = second.start()
    assert second.wait_until_started(30.0) is False
    second_thread.join(30.0)
    assert second.exit_code == 3
    first.stop()
    first_thread.join(30.0)


def test_stop_from_another_thread_before_any_traffic() -> None:
    server = EventServer(ServerConfig(port=0, use_naming=False))
    thread = server.start()
    assert server.wait_until_started(30.0)
    threading.Thread(target=server.stop).start()
    thread.join(30.0)
    assert not thread.is_alive()
