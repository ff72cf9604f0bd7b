"""How the `es` client commands print what they get: events, losses, and the tables of
`es stats` and `es subscribers` (es.cli_client).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import typer

from clients.errors import PayloadError

__all__ = ["group_table", "print_events", "print_loss", "subscriber_table"]


def print_loss(lost: int, as_json: bool, raw: bool = False) -> None:
    """Say that events were lost: in the output's own form, or on stderr beside raw payloads."""
    typer.echo(json.dumps({"lost": lost}) if as_json else f"-- {lost} event(s) lost --", err=raw)


def _jsonable(value: Any) -> Any:
    """A message as JSON can carry it: bytes as {"$bytes": "HEX"}, anything JSON lacks as its
    text; maps, lists and plain values as they are."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def print_events(subscriber: Any, count: int | None, wait: float | None, form: str) -> None:
    """Print each event: as text, as a JSON object, or its raw payload (`form`)."""
    deadline = None if wait is None else time.monotonic() + wait
    received = 0
    while count is None or received < count:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        event = subscriber.next(remaining)
        if event is None:
            return
        received += 1
        if form == "raw":
            if event.lost:
                print_loss(event.lost, False, raw=True)
            sys.stdout.buffer.write(bytes(event.payload) + b"\n")
            sys.stdout.buffer.flush()
            continue
        try:
            msg = event.msg
        except PayloadError as exc:
            msg = f"<{exc}>"
        if form == "json":
            line = {
                "subject": event.subject,
                "msg": _jsonable(msg),
                "time": event.time,
                "seq": event.seq,
                "lost": event.lost,
            }
            if event.history is not None:
                line["history"] = event.history
                line["replayed"] = event.replayed
            if event.redelivered:
                line["redelivered"] = True
            typer.echo(json.dumps(line))
            continue
        if event.lost:
            print_loss(event.lost, False)
        text = msg if isinstance(msg, str) else repr(msg)
        typer.echo(f"[#{event.seq}] {event.subject}{_marks(event)}: {text}")


def _marks(event: Any) -> str:
    """What the text form says of an event beyond its seq: its seq in the history, and whether
    it was replayed or handed again."""
    marks = [] if event.history is None else [f"history {event.history}"]
    marks += [flag for flag in ("replayed", "redelivered") if getattr(event, flag)]
    return f" ({', '.join(marks)})" if marks else ""


def group_table(groups: list[dict[str, Any]]) -> None:
    """The queue groups: members, what waits and what members hold, what was handed out."""
    if not groups:
        return
    typer.echo(
        f"{'GROUP':<16} {'DURABLE':<7} {'MEMBERS':>7} {'WAITING':>8} {'PENDING':>8} "
        f"{'HANDED':>8} {'AGAIN':>6} {'DROPPED':>8}  SUBSCRIPTIONS"
    )
    for g in groups:
        names = ", ".join([*g["subjects"], *(f"/{p}/" for p in g["patterns"])])
        typer.echo(
            f"{g['name']:<16} {'yes' if g['durable'] else 'no':<7} {len(g['members']):>7} "
            f"{g['waiting']:>8} {g['pending']:>8} {g['handed']:>8} {g['redelivered']:>6} "
            f"{g['dropped']:>8}  {names}"
        )


def subscriber_table(body: dict[str, Any]) -> None:
    """The subscribers of a STATS or SUBSCRIBERS reply, one line each (a member: its group)."""
    if not body["subscribers"]:
        typer.echo("no subscribers", err=True)
        return
    typer.echo(
        f"{'ID':<16} {'POLICY':<6} {'QUEUE':>6} {'DEPTH':>6} {'SENT':>8} {'DROPPED':>8} "
        f"{'STALLS':>6} {'BEHIND':>7} {'STALLED':>7}  SUBSCRIPTIONS"
    )
    for s in body["subscribers"]:
        names = ", ".join([*s["subjects"], *(f"/{p}/" for p in s["patterns"])])
        if s.get("group"):
            names = f"(member of {s['group']})"
        typer.echo(
            f"{s['id']:<16} {s['policy']:<6} {s['queue']:>6} {s['depth']:>6} {s['sent']:>8} "
            f"{s['dropped']:>8} {s['stalls']:>6} {s['behind']:>6.1f}s {s['stalled_for']:>6.1f}s"
            f"  {names}"
        )
    if body.get("truncated"):
        typer.echo("(list truncated)")


def cluster_lines(view: dict[str, Any]) -> str:
    """`es stats --cluster` for people: a line for each node, the sums, and what is missing."""
    lines = []
    for name, node in view["nodes"].items():
        link = node.get("cluster", {})
        state = "connected" if link.get("connected") else "NOT connected to NATS"
        lines.append(
            f"node {name} ({node['endpoint']}), {state}: {node['subscribers']} subscribers, "
            f"{node['events_published']} published, {node['events_delivered']} delivered, "
            f"{node['events_dropped']} dropped; from other nodes {link.get('received', 0)}, "
            f"gaps {link.get('gaps', 0)}"
        )
    totals = view["totals"]
    lines.append(
        f"all {len(view['nodes'])} node(s): {totals['subscribers']} subscribers, "
        f"{totals['events_published']} published, {totals['events_delivered']} delivered, "
        f"{totals['events_dropped']} dropped"
    )
    if view["partial"]:
        absent = [*view["missing"], *view["unanswered"]]
        lines.append(f"PARTIAL: no answer from {', '.join(absent)}")
    return "\n".join(lines)
