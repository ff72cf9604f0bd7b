"""CurveZMQ security with real processes: passphrases and key files on every connection (client
to es, client to ns, es to ns, es to a subscriber's inbox), refusals with AUTH_FAILED, forged
events, and what someone on the wire can read."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from clients import Publisher, Subscriber, admin
from clients.errors import AuthFailed, BadPattern, LimitExceeded, TooLarge
from clients.naming import NameServer
from clients.security import Keys, as_client
from clients.wire import (
    Err,
    Heartbeat,
    Ok,
    Options,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
    decode_reply,
    encode,
)
from clients.wire.codec import encode_delivery, pack_event
from tests.integration.conftest import Daemon, es_command, ns_command, wait_until
from tests.integration.helpers import WAIT, relay, run

Start = Callable[..., Daemon]
SECRET = "open sesame, but longer"
PASS = Keys.from_passphrase(SECRET)


def subject() -> str:
    return f"secure.{uuid.uuid4().hex[:8]}"


def round_trip(es_uri: str | None = None, **security: object) -> object:
    """One event through a subscriber and a publisher with these credentials."""
    topic = subject()
    with Subscriber(es_uri, **security) as sub, Publisher(es_uri, **security) as pub:  # type: ignore[arg-type]
        sub.subscribe(topic)
        assert pub.publish(topic, {"secret": "payload"}, confirm=True) == 1
        event = sub.next(WAIT)
        assert event is not None
        return event.msg


@pytest.fixture
def secured(start_es: Start, start_ns: Start, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    """A name server and an event server registered in it, both with the passphrase."""
    ns = start_ns("-i", SECRET)
    monkeypatch.setenv("NS_ADDRESS", ns.endpoint)
    return start_es("-i", SECRET, "--ns", ns.endpoint, naming=True)


# --- the right passphrase works everywhere -------------------------------------------------------


def test_the_passphrase_works_end_to_end_through_the_name_server(secured: Daemon) -> None:
    with NameServer(ident=SECRET) as ns:
        assert ns.lookup(":Pyro.EventService") == secured.endpoint  # es -> ns worked
    assert round_trip(ident=SECRET) == {"secret": "payload"}  # found by name, delivered
    assert "CurveZMQ" in secured.log()


def test_the_command_line_with_a_passphrase(secured: Daemon) -> None:
    topic = subject()
    sub = subprocess.Popen(
        es_command("sub", topic, "-c", "1", "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ES_IDENT": SECRET},
    )
    try:
        assert sub.stderr is not None
        line = sub.stderr.readline()  # "subscribed": its SUB went through
        assert "subscribed" in line
        published = run(es_command("pub", topic, "hi", "--confirm", "-i", SECRET))
        assert published.returncode == 0 and "delivered to 1" in published.stdout
        out, _ = sub.communicate(timeout=WAIT)
        assert '"msg": "hi"' in out
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait(WAIT)
    assert run(es_command("ping", "-i", SECRET)).returncode == 0
    looked_up = run(ns_command("lookup", ":Pyro.EventService"), ES_IDENT=SECRET)
    assert looked_up.stdout.strip() == secured.endpoint


# --- a wrong or missing passphrase is refused, and the daemons go on -----------------------------


@pytest.mark.parametrize("ident", ["the wrong one", None])
def test_a_client_without_the_passphrase_is_refused_by_the_event_server(
    start_es: Start, ident: str | None
) -> None:
    es = start_es("-i", SECRET)
    started = time.monotonic()
    with Publisher(es.endpoint, ident=ident) as pub, pytest.raises(AuthFailed) as refused:
        pub.ping(timeout=WAIT)
    assert time.monotonic() - started < WAIT  # told, not timed out
    assert refused.value.code == "AUTH_FAILED"
    assert round_trip(es.endpoint, ident=SECRET) == {"secret": "payload"}  # others are served
    wait_until(lambda: "refused" in es.log(), WAIT, "the refusal to be logged")


@pytest.mark.parametrize("ident", ["the wrong one", None])
def test_a_client_without_the_passphrase_is_refused_by_the_name_server(
    start_ns: Start, ident: str | None
) -> None:
    ns = start_ns("-i", SECRET)
    with NameServer(ns.endpoint, ident=ident) as proxy, pytest.raises(AuthFailed):
        proxy.lookup(":Pyro.NameServer")
    with NameServer(ns.endpoint, ident=SECRET) as proxy:
        assert proxy.lookup(":Pyro.NameServer") == ns.endpoint
    failed = run(ns_command("lookup", ":Pyro.NameServer", "--ns", ns.endpoint, "-i", "wrong"))
    assert failed.returncode == 1 and "AUTH_FAILED" in failed.stderr
    wait_until(lambda: "refused" in ns.log(), WAIT, "the refusal to be logged")


def test_an_event_server_without_the_passphrase_cannot_register(start_ns: Start) -> None:
    ns = start_ns("-i", SECRET)
    result = run(es_command("serve", "-p", "0", "--ns", ns.endpoint, "-i", "the wrong one"))
    assert result.returncode == 4  # the naming exit code: it does not run unregistered
    assert "AUTH_FAILED" in result.stderr


def test_an_event_server_with_another_passphrase_cannot_deliver_to_an_inbox(
    start_es: Start,
) -> None:
    """Someone runs their own event server (another passphrase) and tells it, with a SUB of its
    own, to deliver to a real subscriber's inbox: the inbox refuses it, and that server removes
    the subscription as `refused`."""
    impostor = start_es("-i", "not the passphrase")
    real = start_es("-i", SECRET)
    with Subscriber(real.endpoint, ident=SECRET) as victim:
        ctx = zmq.Context.instance()
        control = ctx.socket(zmq.DEALER)
        control.setsockopt(zmq.LINGER, 0)
        impostor_keys = Keys.from_passphrase("not the passphrase")
        control.curve_publickey, control.curve_secretkey = (
            impostor_keys.public,
            impostor_keys.secret,
        )
        control.curve_serverkey = impostor_keys.public
        control.connect(impostor.endpoint)
        try:
            sid = "impostor-" + uuid.uuid4().hex[:8]
            key = Options(key=PASS.public.decode())  # the key the real inbox proves
            control.send_multipart(encode(Subscribe(1, sid, victim.endpoint, ("x",), key)))
            assert (
                control.poll(int(WAIT * 1000)) and decode_reply(control.recv_multipart()).rid == 1
            )

            def told() -> bool:
                control.send_multipart(encode(Heartbeat(2, sid)))
                assert control.poll(int(WAIT * 1000))
                return decode_reply(control.recv_multipart()).body.get("evicted") == "refused"

            wait_until(told, WAIT, "the impostor to be refused")
        finally:
            control.close()
    assert "handshake with its inbox failed" in impostor.log()


def test_a_forged_event_sent_straight_to_an_inbox_is_never_delivered(start_es: Start) -> None:
    es = start_es("-i", SECRET)
    topic = subject()
    with Subscriber(es.endpoint, ident=SECRET) as sub, Publisher(es.endpoint, ident=SECRET) as pub:
        sub.subscribe(topic)
        assert pub.publish(topic, "warm-up", confirm=True) == 1
        first = sub.next(WAIT)
        assert first is not None
        event = pack_event(topic, time.time(), 1)
        forged = encode_delivery(sub.sid, first.stream, 0, first.seq + 1, [event], [b"\xa6forged"])
        for keys in (None, Keys.from_passphrase("a guess")):  # no security, then a wrong key
            assert forge(sub.endpoint, forged, keys) != zmq.EVENT_HANDSHAKE_SUCCEEDED
        assert pub.publish(topic, "real", confirm=True) == 1
        event = sub.next(WAIT)
        assert event is not None and event.msg == "real"
        assert sub.next(0.5) is None  # and nothing else came, forged or not
        assert sub.bad_deliveries == 0  # not even as garbage: it never got through


def forge(endpoint: str, frames: list[bytes], keys: Keys | None) -> int:
    """Connect to an inbox as a DEALER and send `frames`; the handshake's outcome."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    # A refused handshake takes the connection away: a send made after that would wait for a
    # peer forever. It gives up after 2 s (a send that can go goes at once, into the pipe
    # connect() made); what counts is the handshake's outcome, and that nothing is delivered.
    sock.setsockopt(zmq.SNDTIMEO, 2000)
    if keys is not None:
        sock.curve_publickey, sock.curve_secretkey = keys.public, keys.secret
        sock.curve_serverkey = PASS.public  # it even knows the inbox's key
    monitor = sock.get_monitor_socket(
        zmq.EVENT_HANDSHAKE_SUCCEEDED
        | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    )
    try:
        sock.connect(endpoint)
        with contextlib.suppress(zmq.Again):
            sock.send_multipart(frames)
        assert monitor.poll(int(WAIT * 1000)), "no handshake outcome"
        return int(recv_monitor_message(monitor)["event"])
    finally:
        sock.disable_monitor()
        monitor.close()
        sock.close()


# --- what the wire shows -------------------------------------------------------------------------


@pytest.fixture
def port() -> Iterator[int]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.2", 0))
        yield probe.getsockname()[1]


@pytest.mark.parametrize("ident", [SECRET, None])
def test_with_a_passphrase_the_wire_shows_neither_subjects_nor_payloads(
    start_es: Start, port: int, ident: str | None
) -> None:
    """Everything between the clients and the server, and between the server and the inbox,
    passes through loopback relays that keep every byte. Without security (the control run)
    the subject and the payload are there in clear."""
    es = start_es(*(("-i", ident) if ident else ()))
    topic = f"PLAINTEXT.SUBJECT.{uuid.uuid4().hex[:6]}"
    payload = "PLAINTEXT-PAYLOAD-" + uuid.uuid4().hex[:6]
    seen = bytearray()
    es_port = es.port
    with (
        relay(("127.0.0.3", es_port), ("127.0.0.1", es_port), seen),
        Subscriber(
            f"tcp://127.0.0.3:{es_port}", ident=ident, host="127.0.0.2", publish_host="127.0.0.4"
        ) as sub,
    ):
        inbox_port = int(sub.endpoint.rsplit(":", 1)[1])
        with (
            relay(("127.0.0.4", inbox_port), ("127.0.0.2", inbox_port), seen),
            Publisher(f"tcp://127.0.0.3:{es_port}", ident=ident) as pub,
        ):
            sub.subscribe(topic)
            assert pub.publish(topic, payload, confirm=True) == 1
            event = sub.next(WAIT)
            assert event is not None and event.msg == payload
    assert len(seen) > 0
    clear = topic.encode() in seen or payload.encode() in seen
    assert clear is (ident is None)


# --- key files -----------------------------------------------------------------------------------


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    made = run(es_command("keygen", str(tmp_path / "keys"), "alice", "bob", "mallory"))
    assert made.returncode == 0, made.stderr
    root = tmp_path / "keys"
    (root / "clients" / "mallory.key").unlink()  # revoked: no longer on the allow-list
    return root


def client(root: Path, name: str) -> Keys:
    return Keys.for_client(root / "clients" / f"{name}.key_secret", root / "server.key")


def test_key_files_and_the_allow_list(start_es: Start, start_ns: Start, key_dir: Path) -> None:
    ns = start_ns("--keys", str(key_dir))
    es = start_es("--keys", str(key_dir), "--ns", ns.endpoint, naming=True)
    alice, bob = client(key_dir, "alice"), client(key_dir, "bob")
    assert alice.public != bob.public  # one identity each
    topic = subject()
    with Subscriber(es.endpoint, keys=alice) as sub, Publisher(es.endpoint, keys=bob) as pub:
        sub.subscribe(topic)  # its inbox has alice's key; the server learns it from the SUB
        assert pub.publish(topic, "from bob to alice", confirm=True) == 1
        event = sub.next(WAIT)
        assert event is not None and event.msg == "from bob to alice"
    with NameServer(ns.endpoint, keys=alice) as proxy:
        assert proxy.lookup(":Pyro.EventService") == es.endpoint
    for refused in (client(key_dir, "mallory"), PASS, None):
        with Publisher(es.endpoint, keys=refused) as pub, pytest.raises(AuthFailed):
            pub.ping(timeout=WAIT)
    wait_until(lambda: "not allowed" in es.log(), WAIT, "the refused key to be logged")
    assert admin.ping(es.endpoint, keys=alice)["server"] == "es"
    by_cli = run(
        es_command(
            "ping",
            "--es",
            es.endpoint,
            "--key",
            str(key_dir / "clients" / "alice.key_secret"),
            "--server-key",
            str(key_dir / "server.key"),
        )
    )
    assert by_cli.returncode == 0, by_cli.stderr


def test_bad_security_options_are_usage_errors(key_dir: Path) -> None:
    both = run(es_command("serve", "-p", "0", "-N", "-i", "x", "--keys", str(key_dir)))
    assert both.returncode == 2 and "not both" in both.stderr
    missing = run(es_command("serve", "-p", "0", "-N", "--keys", str(key_dir / "nowhere")))
    assert missing.returncode == 2 and "key file" in missing.stderr
    half = run(es_command("ping", "--key", str(key_dir / "clients" / "alice.key_secret")))
    assert half.returncode == 2 and "server's key" in half.stderr
    again = run(es_command("keygen", str(key_dir)))
    assert again.returncode == 2 and "exists" in again.stderr


# --- limits an attacker could otherwise abuse -----------------------------------------------------


def test_limits_set_on_the_command_line_are_enforced_with_coded_errors(start_es: Start) -> None:
    es = start_es(
        "--max-message-bytes=2000000",
        "--max-subjects-per-event=2",
        "--max-subscriptions=2",
        "--max-pattern-bytes=8",
        "--max-subscribers=1",
        "--max-request-rate=50",
    )
    # linger=0: one request per publish (gathered, 500 publishes would be a few requests)
    with Subscriber(es.endpoint) as sub, Publisher(es.endpoint, linger=0) as pub:
        sub.subscribe(["a", "b"])
        with pytest.raises(LimitExceeded):
            sub.subscribe("c")  # a third subscription
        with pytest.raises(BadPattern):
            sub.subscribe_match("^abcdefghij")  # longer than 8 bytes
        with pytest.raises(LimitExceeded):
            pub.publish(["a", "b", "c"], "three subjects", confirm=True)
        with pytest.raises(TooLarge):
            pub.publish("a", b"x" * 2_000_001, confirm=True)
        with Subscriber(es.endpoint) as second, pytest.raises(LimitExceeded):
            second.subscribe("a")  # a second subscriber
        for _ in range(500):  # the server reads these in well under the 9 s they would need
            pub.publish("a", "fast")
        with pytest.raises(LimitExceeded, match="requests a second"):
            pub.flush(WAIT)
        assert es.stats()["server"]["requests_over_budget"] > 0
        wait_until(lambda: flushed(pub), WAIT, "the connection's rate to recover")


def flushed(pub: Publisher) -> bool:
    try:
        pub.flush(WAIT)
    except LimitExceeded:
        return False
    return True


def test_a_subscriber_id_belongs_to_the_client_key_that_made_it(
    start_es: Start, key_dir: Path
) -> None:
    # Before, bob could SUB with alice's sid (read from SUBSCRIBERS) and an inbox of his own,
    # and get the events meant for her while her heartbeat still said known: true.
    es = start_es("--keys", str(key_dir))
    alice, bob = client(key_dir, "alice"), client(key_dir, "bob")
    topic = subject()
    inbox = zmq.Context.instance().socket(zmq.ROUTER)
    thief = zmq.Context.instance().socket(zmq.DEALER)
    try:
        inbox.bind("tcp://127.0.0.1:*")
        theirs = inbox.getsockopt_string(zmq.LAST_ENDPOINT)
        as_client(thief, bob)
        thief.setsockopt(zmq.RCVTIMEO, int(WAIT * 1000))
        thief.setsockopt(zmq.LINGER, 0)
        thief.connect(es.endpoint)
        with Subscriber(es.endpoint, keys=alice) as sub, Publisher(es.endpoint, keys=bob) as pub:
            sub.subscribe(topic)
            key = Options(key=bob.public.decode())
            for request in (
                Subscribe(1, sub.sid, theirs, (topic,), key),
                SubscribeMatch(2, sub.sid, theirs, (".*",), key),
                Unsubscribe(3, sub.sid, (topic,)),
            ):
                thief.send_multipart(encode(request))
                refused = decode_reply(thief.recv_multipart())
                assert isinstance(refused, Err) and refused.code == "NOT_OWNER", refused
            thief.send_multipart(encode(Heartbeat(4, sub.sid)))
            assert decode_reply(thief.recv_multipart()) == Ok(4, {"known": False})
            for n in range(20):
                pub.publish(topic, n)
            pub.flush(WAIT)
            got = [sub.next(WAIT) for _ in range(20)]
            assert [e.msg for e in got if e is not None] == list(range(20))
            assert sub.recoveries == 0  # it never lost its registration
    finally:
        thief.close(linger=0)
        inbox.close(linger=0)


def test_a_subscriber_takes_back_a_registration_someone_replaced(es_default: Daemon) -> None:
    # Without keys the sid is the only credential: one who learns it (by watching the network)
    # can point the subscription elsewhere. The owner sees another inbox in its next heartbeat
    # reply (at the default heartbeat) and subscribes again to its own.
    topic = subject()
    thief = zmq.Context.instance().socket(zmq.DEALER)
    thief.setsockopt(zmq.RCVTIMEO, int(WAIT * 1000))
    thief.setsockopt(zmq.LINGER, 0)
    try:
        thief.connect(es_default.endpoint)
        with Subscriber(es_default.endpoint) as sub, Publisher(es_default.endpoint) as pub:
            sub.subscribe(topic)
            thief.send_multipart(encode(Subscribe(1, sub.sid, "tcp://127.0.0.1:9", (topic,))))
            assert isinstance(decode_reply(thief.recv_multipart()), Ok)
            wait_until(lambda: sub.recoveries == 1, WAIT, "the subscriber to take it back")
            (entry,) = admin.subscribers(es_default.endpoint, sub.id, timeout=WAIT)["subscribers"]
            assert entry["endpoint"] == sub.endpoint
            assert pub.publish(topic, "mine again", confirm=True) == 1
            event = sub.next(WAIT)
            assert event is not None and event.msg == "mine again"
    finally:
        thief.close(linger=0)


@pytest.fixture
def es_default(start_es: Start) -> Daemon:
    return start_es()


def test_the_server_log_names_a_wrong_passphrase_as_a_wrong_key(start_es: Start) -> None:
    # Before, a wrong passphrase was logged as "security on one side only".
    es = start_es("-i", SECRET)
    with Publisher(es.endpoint, ident="not the passphrase") as pub, pytest.raises(AuthFailed):
        pub.ping(timeout=WAIT)
    wait_until(lambda: "wrong key (another passphrase" in es.log(), WAIT, "the refusal logged")
    assert "security on one side only" not in es.log()


def test_close_does_not_raise_again_the_auth_failure_a_publish_raised(
    start_es: Start, key_dir: Path
) -> None:
    """The server comes back without this client's key on its allow-list: the publish after
    that raises AuthFailed, and close() (with an earlier publish not flushed) does not raise it
    again. A publish that went out after the refusal is news close() must tell: see the JS
    client's unit tests for that case. Before, close() raised the same AuthFailed twice."""
    first = start_es("--keys", str(key_dir))
    pub = Publisher(first.endpoint, keys=client(key_dir, "alice"))
    try:
        assert pub.publish("Sec.unflushed", "before") is None
        assert pub.ping(WAIT)["server"] == "es"  # answered in order: that publish went out
        first.kill()
        (key_dir / "clients" / "alice.key").unlink()  # revoked
        start_es("--keys", str(key_dir), "-p", str(first.port))
        with pytest.raises(AuthFailed):
            pub.publish("Sec.refused", "after", confirm=True, timeout=WAIT)
    finally:
        pub.close(WAIT)
