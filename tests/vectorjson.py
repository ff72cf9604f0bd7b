"""The vectors' JSON form of a message, both ways: frames are language-neutral hex, messages are
maps of their fields (clients/wire/vectors.json; SPEC.md says how to read them).

Part of tests/vectorgen.py, which writes the vectors with it; the unit tests read them back.
"""

from __future__ import annotations

from typing import Any

from clients.wire import (
    Ack,
    Bye,
    Delivery,
    Err,
    EventItem,
    Heartbeat,
    ListSubjects,
    ListSubscribers,
    Loss,
    NumSub,
    Ok,
    Options,
    Ping,
    PubItem,
    Publish,
    Replay,
    Stats,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
)
from clients.wire.messages import Reply, Request

Message = Request | Reply | Delivery | Loss | Bye


def to_json(message: Message) -> dict[str, Any]:
    """The language-neutral form of a message: wire field names, payloads as hex."""
    match message:
        case Subscribe() | SubscribeMatch():
            names = "subjects" if isinstance(message, Subscribe) else "patterns"
            opts = message.options
            options = {
                "policy": opts.policy,
                "queue": opts.queue_size,
                "max_stall": opts.max_stall,
                "key": opts.key,
                "name": opts.name,
                "durable": opts.durable,
                "group": opts.group,
                "history": None if opts.history is None else _replay_json(opts.history),
            }
            return {
                "type": "SUB" if isinstance(message, Subscribe) else "SUBMATCH",
                "rid": message.rid,
                "sid": message.sid,
                "endpoint": message.endpoint,
                names: list(getattr(message, names)),
                "options": {k: v for k, v in options.items() if v is not None},
            }
        case Unsubscribe(rid, sid, subjects):
            return {"type": "UNSUB", "rid": rid, "sid": sid, "subjects": list(subjects)}
        case Publish(rid, confirm, items, inline):
            return {
                "type": "PUB",
                "rid": rid,
                "confirm": confirm,
                "items": [_item_json(i) for i in items],
                **({"inline": True} if inline else {}),
            }
        case Ping(rid):
            return {"type": "PING", "rid": rid}
        case Stats(rid):
            return {"type": "STATS", "rid": rid}
        case Ack(rid, sid, seq):
            return {"type": "ACK", "rid": rid, "sid": sid, "seq": seq}
        case Heartbeat(rid, sid):
            return {"type": "HEARTBEAT", "rid": rid, "sid": sid}
        case ListSubjects(rid, pattern):
            return {"type": "SUBJECTS", "rid": rid, **({"pattern": pattern} if pattern else {})}
        case NumSub(rid, subjects):
            return {"type": "NUMSUB", "rid": rid, "subjects": list(subjects)}
        case ListSubscribers(rid, prefix):
            return {"type": "SUBSCRIBERS", "rid": rid, **({"id": prefix} if prefix else {})}
        case Ok(rid, body):
            return {"type": "OK", "rid": rid, "body": body}
        case Err(rid, code, text):
            return {"type": "ERR", "rid": rid, "code": code, "message": text}
        case Delivery(sid, stream, lost, events, inline):
            return {
                "type": "EV",
                "sid": sid,
                "stream": stream,
                "lost": lost,
                "events": [
                    {
                        "seq": e.seq,
                        "subject": e.subject,
                        "time": e.time,
                        "format": e.fmt,
                        "payload": e.payload.hex(),
                        **({"retained": True} if e.retained else {}),
                        **({"resumed": True} if e.resumed else {}),
                        **({"history": e.history} if e.history is not None else {}),
                        **({"replayed": True} if e.replayed else {}),
                        **({"redelivered": True} if e.redelivered else {}),
                    }
                    for e in events
                ],
                **({"inline": True} if inline else {}),
            }
        case Loss(sid, stream, lost, seq):
            return {"type": "LOST", "sid": sid, "stream": stream, "lost": lost, "seq": seq}
        case Bye(sid, stream):
            return {"type": "BYE", "sid": sid, "stream": stream}
    raise TypeError(type(message).__name__)


def _item_json(item: PubItem) -> dict[str, Any]:
    data: dict[str, Any] = {
        "subjects": list(item.subjects),
        "format": item.fmt,
        "payload": item.payload.hex(),
    }
    if item.retain:
        data["retain"] = True
    if item.ttl is not None:
        data["ttl"] = item.ttl
    return data


def _replay_json(replay: Replay) -> dict[str, Any]:
    asked = {"last": replay.last, "since": replay.since, "from": replay.start}
    asked["stream"] = replay.stream
    return {k: v for k, v in asked.items() if v is not None}


def from_json(data: dict[str, Any]) -> Message:
    """The inverse of to_json."""
    kind = data["type"]
    if kind in ("SUB", "SUBMATCH"):
        fields = dict(data["options"])  # the wire's names: the queue size is "queue"
        if "queue" in fields:
            fields["queue_size"] = fields.pop("queue")
        if "history" in fields:
            asked = dict(fields["history"])
            asked["start"] = asked.pop("from", None)
            fields["history"] = Replay(**asked)
        options = Options(**fields)
        if kind == "SUB":
            return Subscribe(
                data["rid"], data["sid"], data["endpoint"], tuple(data["subjects"]), options
            )
        return SubscribeMatch(
            data["rid"], data["sid"], data["endpoint"], tuple(data["patterns"]), options
        )
    if kind == "UNSUB":
        return Unsubscribe(data["rid"], data["sid"], tuple(data["subjects"]))
    if kind == "PUB":
        items = tuple(
            PubItem(
                tuple(i["subjects"]),
                i["format"],
                bytes.fromhex(i["payload"]),
                i.get("retain", False),
                i.get("ttl"),
            )
            for i in data["items"]
        )
        return Publish(data["rid"], data["confirm"], items, data.get("inline", False))
    if kind == "PING":
        return Ping(data["rid"])
    if kind == "STATS":
        return Stats(data["rid"])
    if kind == "ACK":
        return Ack(data["rid"], data["sid"], data["seq"])
    if kind == "HEARTBEAT":
        return Heartbeat(data["rid"], data["sid"])
    if kind == "SUBJECTS":
        return ListSubjects(data["rid"], data.get("pattern"))
    if kind == "NUMSUB":
        return NumSub(data["rid"], tuple(data["subjects"]))
    if kind == "SUBSCRIBERS":
        return ListSubscribers(data["rid"], data.get("id"))
    if kind == "OK":
        return Ok(data["rid"], data["body"])
    if kind == "ERR":
        return Err(data["rid"], data["code"], data["message"])
    if kind == "LOST":
        return Loss(data["sid"], data["stream"], data["lost"], data["seq"])
    if kind == "BYE":
        return Bye(data["sid"], data["stream"])
    events = tuple(
        EventItem(
            e["seq"],
            e["subject"],
            e["time"],
            e["format"],
            bytes.fromhex(e["payload"]),
            e.get("retained", False),
            e.get("resumed", False),
            e.get("history"),
            e.get("replayed", False),
            e.get("redelivered", False),
        )
        for e in data["events"]
    )
    return Delivery(data["sid"], data["stream"], data["lost"], events, data.get("inline", False))
