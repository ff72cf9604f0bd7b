"""The `es` commands a client runs: publish, subscribe, and look at a running event server.

They add themselves to the `es` app (es.cli_app) when es.cli imports this module.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clients import admin
from clients.clusterview import cluster_stats
from clients.errors import EsError
from es.cli_app import EsUri, Timeout, app, ask, fail
from es.cli_print import (
    cluster_lines,
    group_table,
    print_events,
    print_loss,
    subscriber_table,
)
from es.daemon.lifecycle import ExitCode
from es.daemon.options import Ident, KeyFile, ServerKeyFile, client_keys

if TYPE_CHECKING:
    from clients.security import Keys

RawJson = Annotated[bool, typer.Option("--json", help="Print the raw reply as JSON.")]


Message = Annotated[
    str | None,
    typer.Argument(
        metavar="MESSAGE",
        help="The message (a string, or JSON with --json); '-' or none: one a line from stdin.",
    ),
]
ParseJson = Annotated[bool, typer.Option("--json", help="Parse each message as JSON.")]
Confirm = Annotated[bool, typer.Option("--confirm", help="Wait and print receivers.")]
Retain = Annotated[
    bool, typer.Option("--retain", help="Keep it as the subject's latest, for new subscribers.")
]
Ttl = Annotated[
    float | None, typer.Option("--ttl", help="Seconds a retained message is kept [forever].")
]
Clear = Annotated[
    bool, typer.Option("--clear", help="Forget the subject's retained message; no MESSAGE.")
]
Count = Annotated[
    int, typer.Option("--count", "-c", min=1, help="Publish the message this many times.")
]
Rate = Annotated[
    float | None, typer.Option("--rate", min=0.001, help="At most this many a second.")
]


@app.command()
def pub(
    subject: Annotated[str, typer.Argument(metavar="SUBJECT", help="Subject to publish on.")],
    message: Message = None,
    es: EsUri = None,
    as_json: ParseJson = False,
    confirm: Confirm = False,
    retain: Retain = False,
    ttl: Ttl = None,
    clear: Clear = False,
    count: Count = 1,
    rate: Rate = None,
    timeout: Timeout = 10.0,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Publish a message on a subject: once, --count times (at --rate), or one a line from
    stdin; keep it for new subscribers with --retain, or forget the kept one with --clear."""
    from clients import Publisher

    keys = client_keys(ident, key, server_key, "es")
    if clear and message is not None:
        raise fail("--clear takes no MESSAGE", ExitCode.USAGE)
    if ttl is not None and not retain:
        raise fail("--ttl needs --retain", ExitCode.USAGE)
    if message is None and not clear and sys.stdin.isatty():
        raise fail("give a MESSAGE, or pipe messages to stdin, one a line", ExitCode.USAGE)
    start = time.monotonic()
    try:
        with Publisher(es, timeout=timeout, keys=keys) as publisher:
            if clear:
                publisher.clear_retained(subject, confirm=True)
                typer.echo(f"es: cleared the retained message of {subject}", err=True)
                return
            values = _messages(message, as_json, count)
            sent = _publish_all(publisher, subject, values, rate, confirm, retain, ttl)
    except (EsError, ValueError) as exc:
        raise fail(str(exc)) from None
    if sent > 1:
        elapsed = time.monotonic() - start
        typer.echo(f"es: published {sent} in {elapsed:.2f} s ({sent / elapsed:,.0f}/s)", err=True)


def _publish_all(
    publisher: Any,
    subject: str,
    values: Iterable[Any],
    rate: float | None,
    confirm: bool,
    retain: bool,
    ttl: float | None,
) -> int:
    """Publish each value (at most `rate` a second); print the receivers if confirmed."""
    start, sent = time.monotonic(), 0
    for value in values:
        _pace(start, sent, rate)
        receivers = publisher.publish(subject, value, confirm=confirm, retain=retain, ttl=ttl)
        sent += 1
        if confirm:
            typer.echo(f"delivered to {receivers} subscriber(s)")
    return sent


def _messages(message: str | None, as_json: bool, count: int) -> Iterator[Any]:
    """The messages to publish: MESSAGE `count` times, or each line of stdin."""
    lines: Iterable[str]
    if message is None or message == "-":
        lines = (line.rstrip("\n") for line in sys.stdin)
    else:
        lines = itertools.repeat(message, count)
    for n, line in enumerate(lines, start=1):
        try:
            yield json.loads(line) if as_json else line
        except json.JSONDecodeError as exc:
            raise fail(f"message {n} is not JSON: {exc}", ExitCode.USAGE) from None


def _pace(start: float, sent: int, rate: float | None) -> None:
    """Wait, if need be, so that no more than `rate` messages a second leave."""
    if rate is not None:
        delay = start + sent / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)


Subjects = Annotated[
    list[str] | None, typer.Argument(metavar="SUBJECT", help="Subjects to subscribe to.")
]
Match = Annotated[
    list[str] | None,
    typer.Option("--match", "-m", help="A pattern to subscribe to (repeatable)."),
]
Events = Annotated[int | None, typer.Option("--count", "-c", help="Exit after this many events.")]
Wait = Annotated[float | None, typer.Option("--wait", help="Exit after this many seconds.")]
PrintJson = Annotated[
    bool, typer.Option("--json", help='One JSON object per event (bytes as {"$bytes": "HEX"}).')
]
Raw = Annotated[
    bool, typer.Option("--raw", help="Only each event's payload, as it arrived, a line each.")
]
QueuePolicy = Annotated[
    str | None, typer.Option("--policy", metavar="[block|drop]", help="Full queue: block or drop.")
]
QueueSize = Annotated[
    int | None,
    typer.Option("--queue-size", help="Events the server may hold for it, 0=unbounded [server's]."),
]
Name = Annotated[
    str | None, typer.Option("--name", help="A service name, announced as $es.service.*.")
]
Durable = Annotated[
    str | None,
    typer.Option(
        "--durable",
        help="A durable name: the server keeps this subscriber's events while it is away and "
        "gives them to the next `es sub --durable NAME`.",
    ),
]

Group = Annotated[
    str | None,
    typer.Option(
        "--group",
        help="Join a queue group: each of its events goes to one member. With --durable GROUP "
        "(the same name) the group keeps its events while no member is present.",
    ),
]
HistoryAsked = Annotated[
    str | None,
    typer.Option(
        "--history",
        help="First the events the server's history holds: last=N, since=10m (or a Unix time), "
        "or from=SEQ[,stream=ID].",
    ),
]


@app.command()
def sub(
    subjects: Subjects = None,
    match: Match = None,
    es: EsUri = None,
    count: Events = None,
    wait: Wait = None,
    as_json: PrintJson = False,
    raw: Raw = False,
    policy: QueuePolicy = None,
    queue_size: QueueSize = None,
    name: Name = None,
    durable: Durable = None,
    group: Group = None,
    history: HistoryAsked = None,
    timeout: Timeout = 10.0,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Print events as they arrive, one line each, until Ctrl-C (or --count / --wait).
    Losses are printed where they happened: before the next event, or when the server tells of
    them with no event after."""
    from clients import Event, Subscriber

    class Printing(Subscriber):
        def gap(self, lost: int | None, event: Event | None) -> None:
            if event is None and lost:  # a LOST notice: no event follows to carry it
                print_loss(lost, as_json, raw)

    keys = client_keys(ident, key, server_key, "es")
    if not subjects and not match:
        raise fail("give at least one SUBJECT or --match PATTERN", ExitCode.USAGE)
    asked = None if history is None else _history(history, time.time())
    try:
        subscriber = Printing(
            es,
            policy=policy,
            queue_size=queue_size,
            name=name,
            durable=durable,
            group=group,
            timeout=timeout,
            keys=keys,
        )
    except (EsError, ValueError) as exc:
        raise fail(str(exc)) from None
    with subscriber:
        try:
            if subjects:
                subscriber.subscribe(subjects, history=asked)
            if match:
                subscriber.subscribe_match(match, history=asked)
        except (EsError, ValueError) as exc:
            raise fail(str(exc)) from None
        names = [*(subjects or []), *(f"/{p}/" for p in match or [])]
        # From the moment it says it has subscribed, an interrupt (or SIGTERM) is the way out.
        with contextlib.suppress(KeyboardInterrupt):
            typer.echo(f"es: subscribed to {', '.join(names)}", err=True)
            print_events(subscriber, count, wait, "raw" if raw else "json" if as_json else "text")


def _history(text: str, now: float) -> dict[str, Any]:
    """`--history`: last=N, since=AGE (10s, 5m, 2h, 1d: before `now`) or since=UNIX_TIME,
    from=SEQ with ,stream=ID."""
    asked: dict[str, Any] = {}
    for part in text.split(","):
        key, _, value = part.strip().partition("=")
        try:
            if key == "since" and value[-1:] in _AGO:
                asked[key] = now - float(value[:-1]) * _AGO[value[-1]]
            elif key == "since":
                asked[key] = float(value)
            elif key in ("last", "from", "stream"):
                asked[key] = int(value)
            else:
                raise ValueError
        except ValueError:
            wanted = "give last=N, since=10m or from=SEQ"
            raise fail(f"--history {text!r}: {wanted}", ExitCode.USAGE) from None
    return asked


_AGO = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


@app.command()
def stats(
    es: EsUri = None,
    as_json: RawJson = False,
    timeout: Timeout = 5.0,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster",
            help="Every node of the cluster the name lists: each one's counters, and their sums; "
            "says PARTIAL when a node does not answer.",
        ),
    ] = False,
) -> None:
    """Server counters and per-subscriber queue depth, drops and subscriptions."""
    if cluster:
        view = ask(ident, key, server_key, lambda keys: cluster_stats(es, timeout, keys))
        typer.echo(json.dumps(view, indent=2) if as_json else cluster_lines(view))
        return
    body = ask(ident, key, server_key, lambda keys: admin.stats(es, timeout, keys))
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    srv = body["server"]
    typer.echo(
        f"es {srv['version']}, up {srv['uptime']:.1f} s: {srv['subscribers']} subscribers, "
        f"{srv['subjects']} subjects, {srv['patterns']} patterns; "
        f"{srv['events_published']} events published in {srv['publish_requests']} requests, "
        f"{srv['events_delivered']} delivered in {srv['delivery_messages']} messages, "
        f"{srv['events_dropped']} dropped"
    )
    if srv.get("history_rules"):
        typer.echo(
            f"history {srv['history_stream']}: {srv['history_events']} events, "
            f"{srv['history_bytes']} bytes, {len(srv['history_rules'])} rule(s)"
        )
    group_table(srv.get("groups", []))
    subscriber_table(body)


@app.command()
def subjects(
    es: EsUri = None,
    match: Annotated[
        str | None, typer.Option("--match", "-m", help="Only subjects matching this pattern.")
    ] = None,
    as_json: RawJson = False,
    timeout: Timeout = 5.0,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Subjects published on, most recent first, with their event counts."""
    body = ask(ident, key, server_key, lambda keys: admin.subjects(es, match, timeout, keys))
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    if not body["subjects"]:
        typer.echo("no subject published on yet" + (" matches" if match else ""), err=True)
    for entry in body["subjects"]:
        when = time.strftime("%H:%M:%S", time.localtime(entry["last"]))
        typer.echo(f"{entry['events']:>10}  {when}  {entry['subject']}")
    if body.get("truncated"):
        typer.echo("(list truncated)")


@app.command()
def numsub(
    names: Annotated[
        list[str], typer.Argument(metavar="SUBJECT", help="Subjects to count subscribers of.")
    ],
    es: EsUri = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {subject: count} as JSON.")
    ] = False,
    timeout: Timeout = 5.0,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """How many subscribers an event on each subject would reach now."""
    counts = ask(ident, key, server_key, lambda keys: admin.numsub(names, es, timeout, keys))
    if as_json:
        typer.echo(json.dumps(dict(zip(names, counts, strict=True)), indent=2))
        return
    for name, count in zip(names, counts, strict=True):
        typer.echo(f"{count:>6}  {name}")


@app.command()
def subscribers(
    es: EsUri = None,
    prefix: Annotated[
        str | None,
        typer.Option("--id", help="Only the subscriber whose id (as listed) starts with this."),
    ] = None,
    as_json: RawJson = False,
    timeout: Timeout = 5.0,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Subscribers with their subscriptions, queue depth, drops, time stalled and lag."""
    if prefix is not None:
        prefix = prefix.lower()
        if not 0 < len(prefix) <= 16 or prefix.strip("0123456789abcdef"):
            raise typer.BadParameter("an id is 1 to 16 hex digits", param_hint="--id")
    body = ask(ident, key, server_key, lambda keys: admin.subscribers(es, prefix, timeout, keys))
    if as_json:
        typer.echo(json.dumps(body, indent=2))
    else:
        subscriber_table(body)
    found = len(body["subscribers"])
    if prefix is not None and found != 1:  # like git: a prefix must name one
        what = "no subscriber has" if found == 0 else f"{found} subscribers have"
        typer.echo(f"es subscribers: {what} an id starting {prefix!r}", err=True)
        raise typer.Exit(1)


@app.command()
def ping(
    es: EsUri = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the reply, with the round trip, as JSON.")
    ] = False,
    timeout: Timeout = 5.0,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Check that the event server answers."""

    def timed(keys: Keys | None) -> tuple[dict[str, Any], float]:
        start = time.perf_counter()  # after the keys are made: a passphrase costs ~70 ms
        answer = admin.ping(es, timeout, keys)
        return answer, (time.perf_counter() - start) * 1000

    body, elapsed = ask(ident, key, server_key, timed)
    server = body.get("server")
    if server != "es":  # something answered PING, but not an event server (a name server?)
        what = "a name server" if server == "ns" else f"a server that calls itself {server!r}"
        raise fail(f"{what} answered, not an event server")
    if as_json:
        typer.echo(json.dumps({**body, "round_trip_ms": round(elapsed, 3)}, indent=2))
        return
    typer.echo(f"es {body.get('version')} answered in {elapsed:.1f} ms")
