"""The wire protocol of the event service: messages, codec and limits (see SPEC.md here).

Pure: importing this package never imports zmq.
"""

from clients.wire.codec import (
    MAX_FRAMES,
    MAX_HEADER_BYTES,
    POLICIES,
    decode_delivery,
    decode_reply,
    decode_request,
    encode,
    encode_delivery,
)
from clients.wire.messages import (
    MAX_INT,
    VERSION,
    Ack,
    Delivery,
    Err,
    EventItem,
    Format,
    Ok,
    Options,
    Ping,
    PubItem,
    Publish,
    Reply,
    Request,
    Stats,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
)

__all__ = [
    "MAX_FRAMES",
    "MAX_HEADER_BYTES",
    "MAX_INT",
    "POLICIES",
    "VERSION",
    "Ack",
    "Delivery",
    "Err",
    "EventItem",
    "Format",
    "Ok",
    "Options",
    "Ping",
    "PubItem",
    "Publish",
    "Reply",
    "Request",
    "Stats",
    "Subscribe",
    "SubscribeMatch",
    "Unsubscribe",
    "decode_delivery",
    "decode_reply",
    "decode_request",
    "encode",
    "encode_delivery",
]
