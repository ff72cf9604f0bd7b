"""The codec: round trips, limits, and that it imports without zmq."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading

import msgpack
import pytest

from clients.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from clients.wire import (
    MAX_FRAMES,
    MAX_HEADER_BYTES,
    Delivery,
    EventItem,
    Ok,
    Options,
    PubItem,
    Publish,
    Subscribe,
    decode_delivery,
    decode_reply,
    decode_request,
    encode,
    peek_command,
)
from clients.wire.encoding import pack_header


def test_codec_imports_without_zmq() -> None:
    code = (
        "import sys; sys.modules['zmq'] = None\n"  # any `import zmq` now fails
        "import clients.wire, clients.errors, clients.wire.codec\n"
        "assert 'zmq' not in sys.modules or sys.modules['zmq'] is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_publish_round_trip_keeps_payload_bytes_untouched() -> None:
    payload = bytes(range(256))
    message = Publish(9, True, (PubItem(("a", "B"), 1, payload), PubItem(("c",), 0, b"")))
    assert decode_request(encode(message)) == message


def test_subscribe_omits_unset_options() -> None:
    frames = encode(Subscribe(1, "s", "tcp://127.0.0.1:1", ("x",), Options(queue_size=5)))
    assert msgpack.unpackb(frames[0])[-1] == {"queue": 5}


def test_integer_options_are_accepted_for_seconds() -> None:
    header = msgpack.packb([1, "SUB", 1, "s", "tcp://127.0.0.1:1", ["x"], {"max_stall": 3}])
    request = decode_request([header])
    assert isinstance(request, Subscribe)
    assert request.options.max_stall == 3.0


def test_delivery_round_trip() -> None:
    message = Delivery("s", 5, 2, (EventItem(3, "Sub", 1.5, 1, b"\x01"),))
    assert decode_delivery(encode(message)) == message


def test_integer_time_is_accepted_in_events() -> None:
    header = msgpack.packb([1, "EV", "s", 1, 0, 1, [["a", 1767225600, 1]]])
    assert decode_delivery([header, b""]).events[0].time == 1767225600.0


def test_too_many_frames_is_too_large() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        decode_request([b"\x90"] * (MAX_FRAMES + 1))
    assert caught.value.code == ErrorCode.TOO_LARGE


def test_oversized_header_is_too_large() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        decode_request([b"\x00" * (MAX_HEADER_BYTES + 1)])
    assert caught.value.code == ErrorCode.TOO_LARGE


def test_deeply_nested_reply_body_is_refused_not_a_recursion_error() -> None:
    nested: object = 1
    for _ in range(500):
        nested = [nested]
    header = msgpack.packb([1, "OK", 1, {"x": nested}])
    with pytest.raises(RemoteProtocolError):
        decode_reply([header])


def test_ok_body_keeps_plain_values() -> None:
    body = {"a": [1, 2.5, None, True, "x", {"b": []}]}
    assert decode_reply(encode(Ok(3, body))) == Ok(3, body)


def test_encoding_an_oversized_header_is_a_local_error() -> None:
    huge = Subscribe(1, "s", "tcp://127.0.0.1:1", ("x" * 1000,) * 2000)
    with pytest.raises(LocalProtocolError):
        encode(huge)


def test_error_code_of_unknown_command_echoes_rid() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        decode_request([msgpack.packb([1, "NOPE", 77])])
    assert (caught.value.code, caught.value.rid) == (ErrorCode.UNKNOWN_COMMAND, 77)


def test_peek_command_reads_only_the_start_and_never_raises() -> None:
    assert peek_command(encode(Subscribe(1, "s", "tcp://127.0.0.1:1", ("x",)))) == "SUB"
    publish = Publish(1, False, (PubItem(("a",), 0, b"x"),))
    assert peek_command(encode(publish)) == "PUB"  # the byte-compare fast path
    assert peek_command([msgpack.packb([1, "PUB", 1, False, [[["a"], 0]]])]) == "PUB"
    assert peek_command([msgpack.packb([2, "PUB", 1])]) is None  # another version: not ours
    assert peek_command([msgpack.packb([1, "STATS"])[:-1]]) is None  # cut short
    for bad in ([], [b""], [b"\xc1"], [msgpack.packb({"a": 1})], [msgpack.packb([2, "PING", 1])]):
        assert peek_command(bad) is None


def test_headers_packed_by_many_threads_at_once_are_each_their_own() -> None:
    """pack_header shares one Packer between threads (each pack runs whole in C, under the
    GIL): what each thread gets is exactly its own header, also after another's failed."""
    mine = {n: [1, "PUB", n, False, [[[f"s{n}" * n], 1]], [b"p" * n]] for n in range(8)}
    wrong: list[int] = []

    def pack(n: int) -> None:
        want = msgpack.packb(mine[n], use_bin_type=True)
        for _ in range(3000):
            if pack_header(mine[n]) != want:
                wrong.append(n)
            with contextlib.suppress(TypeError):
                pack_header([1, "X", object()])  # a failed pack leaves nothing behind

    threads = [threading.Thread(target=pack, args=(n,)) for n in mine]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert wrong == []
