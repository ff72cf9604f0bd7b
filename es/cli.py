"""The `es` command: run the event server, and talk to one from a shell.

Exit codes: 0 done, 1 an error (one line on stderr), 2 bad usage or configuration,
3 the server could not bind its address, 130 the server was stopped by a second interrupt.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from clients import admin
from clients.cli_options import Ident, KeyFile, KeysDir, ServerKeyFile, client_keys
from clients.errors import EsError, PayloadError
from clients.lifecycle import ExitCode, command_logging, setup_logging, terminate_like_interrupt
from es import __version__

if TYPE_CHECKING:  # the daemon's modules load only for the commands that run it
    from clients.security import Keys
    from es.config import ServerConfig

T = TypeVar("T")

app = typer.Typer(
    help="The event server (es serve) and commands to publish, subscribe and inspect.",
    no_args_is_help=True,
    add_completion=True,  # es --install-completion: bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no [brackets] eaten as markup
)

EsUri = Annotated[
    str | None,
    typer.Option(
        "--es",
        envvar="ES_URI",
        metavar="URI",
        help="The event server: tcp://HOST:PORT or PYRONAME://NAME [:Pyro.EventService, found "
        "through the name server].",
    ),
]
Timeout = Annotated[
    float, typer.Option("--timeout", metavar="SECONDS", help="Seconds to wait for the server.")
]

# Server options, shared by `serve` and `config`. None means "not given": the configuration then
# falls back to Pyro's PYRO_ES_* variables, then to its defaults.
Host = Annotated[
    str | None, typer.Option("-n", "--host", envvar="ES_HOST", help="Address to bind [127.0.0.1].")
]
Port = Annotated[
    int | None,
    typer.Option("-p", "--port", envvar="ES_PORT", help="Port to bind, 0 for any free one [7766]."),
]
NoNaming = Annotated[
    bool, typer.Option("-N", "--no-naming", help="Do not register in a name server.")
]
Liveness = Annotated[
    float | None,
    typer.Option(
        "--liveness",
        envvar="ES_LIVENESS",
        help="Seconds before a silent or unreachable subscriber is removed [10].",
    ),
]
EvictStalled = Annotated[
    float | None,
    typer.Option(
        "--evict-stalled",
        envvar="ES_EVICT_STALLED",
        help="Seconds a full subscriber is kept, 0 = forever [60].",
    ),
]
NsAddress = Annotated[
    str | None,
    typer.Option(
        "--ns",
        envvar="NS_ADDRESS",
        metavar="HOST:PORT",
        help="Name server HOST:PORT [found by URI file, then broadcast].",
    ),
]
NsLease = Annotated[
    float | None,
    typer.Option(
        "--ns-lease", envvar="ES_NS_LEASE", help="Seconds the name outlives a crash [10]."
    ),
]
QueueSize = Annotated[
    int | None,
    typer.Option(
        "--queue-size",
        envvar="ES_QUEUE_SIZE",
        help="Events queued per subscriber, 0=unbounded [1000].",
    ),
]
Policy = Annotated[
    str | None,
    typer.Option(
        "--policy", envvar="ES_POLICY", help="Full queue: 'block' publishers or 'drop' [block]."
    ),
]
MaxStall = Annotated[
    float | None,
    typer.Option(
        "--max-stall", envvar="ES_MAX_STALL", help="Seconds one event may block publishers [5]."
    ),
]
MaxQueue = Annotated[
    int | None,
    typer.Option(
        "--max-queue-size",
        envvar="ES_MAX_QUEUE_SIZE",
        help="Largest queue a subscriber may ask for, 0=no cap [100000].",
    ),
]
MaxMessage = Annotated[
    int | None,
    typer.Option(
        "--max-message-bytes", envvar="ES_MAX_MESSAGE_BYTES", help="Payload size [1 MiB]."
    ),
]
MaxSubjects = Annotated[
    int | None,
    typer.Option(
        "--max-subjects-per-event", envvar="ES_MAX_SUBJECTS", help="Subjects of one event [100]."
    ),
]
MaxSubscriptions = Annotated[
    int | None,
    typer.Option(
        "--max-subscriptions",
        envvar="ES_MAX_SUBSCRIPTIONS",
        help="Subjects plus patterns of one subscriber [10000].",
    ),
]
MaxPattern = Annotated[
    int | None,
    typer.Option(
        "--max-pattern-bytes", envvar="ES_MAX_PATTERN_BYTES", help="Pattern length [1024]."
    ),
]
MaxSubscribers = Annotated[
    int | None,
    typer.Option(
        "--max-subscribers", envvar="ES_MAX_SUBSCRIBERS", help="Subscribers of the server [10000]."
    ),
]
MaxRetained = Annotated[
    int | None,
    typer.Option(
        "--max-retained", envvar="ES_MAX_RETAINED", help="Subjects with a retained event [10000]."
    ),
]
MaxRetainedBytes = Annotated[
    int | None,
    typer.Option(
        "--max-retained-bytes",
        envvar="ES_MAX_RETAINED_BYTES",
        help="Total size of retained payloads [64 MiB].",
    ),
]
MaxRate = Annotated[
    float | None,
    typer.Option(
        "--max-request-rate",
        envvar="ES_MAX_REQUEST_RATE",
        help="Requests a second from one connection, 0 = no limit [20000].",
    ),
]
StorageSpec = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="ES_STORAGE",
        help="memory, or sqlite:PATH to keep subscribers and retained events [memory].",
    ),
]
Drain = Annotated[
    float | None,
    typer.Option(
        "--drain-timeout",
        envvar="ES_DRAIN_TIMEOUT",
        help="Seconds shutdown waits for queued events [5].",
    ),
]


def _ask(
    ident: str | None, key: str | None, server_key: str | None, call: Callable[[Keys | None], T]
) -> T:
    """One request to the event server with the keys the options name; exit 1 on its error, 2 on
    an address that is not one (`--es foo`)."""
    keys = client_keys(ident, key, server_key, "es")
    try:
        return call(keys)
    except EsError as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:  # the address given: the only thing here a user can get wrong
        raise _fail(str(exc), ExitCode.USAGE) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"es: {message}", err=True)
    return typer.Exit(code)


def _config(*, no_naming: bool, ns: str | None, **settings: Any) -> ServerConfig:
    from es.config import ConfigError, from_env

    """The server configuration from the options of `serve` and `config` (None = not given)."""
    try:
        return from_env(os.environ, use_naming=not no_naming, ns_address=ns, **settings)
    except ConfigError as exc:
        raise _fail(f"bad configuration: {exc}", ExitCode.USAGE) from None


@app.command()
def serve(
    host: Host = None,
    port: Port = None,
    no_naming: NoNaming = False,
    ns: NsAddress = None,
    ns_lease: NsLease = None,
    ident: Ident = None,
    keys_dir: KeysDir = None,
    storage: StorageSpec = None,
    queue_size: QueueSize = None,
    policy: Policy = None,
    max_stall: MaxStall = None,
    max_queue_size: MaxQueue = None,
    max_message_bytes: MaxMessage = None,
    max_subjects_per_item: MaxSubjects = None,
    max_subscriptions: MaxSubscriptions = None,
    max_pattern_bytes: MaxPattern = None,
    max_subscribers: MaxSubscribers = None,
    max_request_rate: MaxRate = None,
    max_retained: MaxRetained = None,
    max_retained_bytes: MaxRetainedBytes = None,
    drain_timeout: Drain = None,
    liveness: Liveness = None,
    evict_stalled: EvictStalled = None,
    log_level: Annotated[
        str,
        typer.Option("--log-level", envvar="ES_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR."),
    ] = "INFO",
) -> None:
    """Run the event server in the foreground. Prints one JSON ready line on stdout."""
    options = dict(locals())
    options.pop("log_level")
    config = _config(**options)
    setup_logging("es", log_level)
    from es.server import EventServer

    server = EventServer(config, on_ready=_announce)
    server.install_signal_handlers()
    code = server.serve()
    if server.forced:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(ExitCode.FORCED)  # do not wait for sockets still lingering
    raise typer.Exit(code)


def _announce(endpoint: str) -> None:
    line = {"ready": "es", "endpoint": endpoint, "pid": os.getpid(), "version": __version__}
    print(json.dumps(line), flush=True)


def _options_of_serve(func: Callable[..., None]) -> Callable[..., None]:
    """Give `func` the options of `serve` but --log-level, so the server's options are listed
    once (typer reads the signature and the annotations)."""
    signature = inspect.signature(serve, eval_str=True)
    kept = [p for p in signature.parameters.values() if p.name != "log_level"]
    setattr(func, "__signature__", signature.replace(parameters=kept))  # noqa: B010
    func.__annotations__ = {k: v for k, v in serve.__annotations__.items() if k != "log_level"}
    return func


@app.command()
@_options_of_serve
def config(**options: Any) -> None:
    """Print the configuration `es serve` would run with, as JSON."""
    cfg = _config(**options)
    typer.echo(json.dumps(cfg.as_dict(), indent=2))


@app.command()
def pub(
    subject: Annotated[str, typer.Argument(metavar="SUBJECT", help="Subject to publish on.")],
    message: Annotated[
        str | None,
        typer.Argument(
            metavar="MESSAGE",
            help="The message (a string, or JSON with --json); '-' or none: one a line from stdin.",
        ),
    ] = None,
    es: EsUri = None,
    as_json: Annotated[bool, typer.Option("--json", help="Parse each message as JSON.")] = False,
    confirm: Annotated[bool, typer.Option("--confirm", help="Wait and print receivers.")] = False,
    retain: Annotated[
        bool, typer.Option("--retain", help="Keep it as the subject's latest, for new subscribers.")
    ] = False,
    ttl: Annotated[
        float | None, typer.Option("--ttl", help="Seconds a retained message is kept [forever].")
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Forget the subject's retained message; no MESSAGE.")
    ] = False,
    count: Annotated[
        int, typer.Option("--count", "-c", min=1, help="Publish the message this many times.")
    ] = 1,
    rate: Annotated[
        float | None, typer.Option("--rate", min=0.001, help="At most this many a second.")
    ] = None,
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
        raise _fail("--clear takes no MESSAGE", ExitCode.USAGE)
    if ttl is not None and not retain:
        raise _fail("--ttl needs --retain", ExitCode.USAGE)
    if message is None and not clear and sys.stdin.isatty():
        raise _fail("give a MESSAGE, or pipe messages to stdin, one a line", ExitCode.USAGE)
    start, sent = time.monotonic(), 0
    try:
        with Publisher(es, timeout=timeout, keys=keys) as publisher:
            if clear:
                publisher.clear_retained(subject, confirm=True)
                typer.echo(f"es: cleared the retained message of {subject}", err=True)
                return
            for value in _messages(message, as_json, count):
                _pace(start, sent, rate)
                receivers = publisher.publish(
                    subject, value, confirm=confirm, retain=retain, ttl=ttl
                )
                sent += 1
                if confirm:
                    typer.echo(f"delivered to {receivers} subscriber(s)")
    except (EsError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if sent > 1:
        elapsed = time.monotonic() - start
        typer.echo(f"es: published {sent} in {elapsed:.2f} s ({sent / elapsed:,.0f}/s)", err=True)


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
            raise _fail(f"message {n} is not JSON: {exc}", ExitCode.USAGE) from None


def _pace(start: float, sent: int, rate: float | None) -> None:
    """Wait, if need be, so that no more than `rate` messages a second leave."""
    if rate is not None:
        delay = start + sent / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)


@app.command()
def sub(
    subjects: Annotated[
        list[str] | None, typer.Argument(metavar="SUBJECT", help="Subjects to subscribe to.")
    ] = None,
    match: Annotated[
        list[str] | None,
        typer.Option("--match", "-m", help="A pattern to subscribe to (repeatable)."),
    ] = None,
    es: EsUri = None,
    count: Annotated[
        int | None, typer.Option("--count", "-c", help="Exit after this many events.")
    ] = None,
    wait: Annotated[
        float | None, typer.Option("--wait", help="Exit after this many seconds.")
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help='One JSON object per event (bytes as {"$bytes": "HEX"}).'),
    ] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="Only each event's payload, as it arrived, a line each.")
    ] = False,
    policy: Annotated[str | None, typer.Option("--policy", help="block or drop.")] = None,
    queue_size: Annotated[
        int | None,
        typer.Option(
            "--queue-size", help="Events the server may hold for it, 0=unbounded [server's]."
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="A service name, announced as $es.service.*.")
    ] = None,
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
                _print_loss(lost, as_json, raw)

    keys = client_keys(ident, key, server_key, "es")
    if not subjects and not match:
        raise _fail("give at least one SUBJECT or --match PATTERN", ExitCode.USAGE)
    try:
        subscriber = Printing(
            es, policy=policy, queue_size=queue_size, name=name, timeout=timeout, keys=keys
        )
    except (EsError, ValueError) as exc:
        raise _fail(str(exc)) from None
    with subscriber:
        try:
            if subjects:
                subscriber.subscribe(subjects)
            if match:
                subscriber.subscribe_match(match)
        except (EsError, ValueError) as exc:
            raise _fail(str(exc)) from None
        names = [*(subjects or []), *(f"/{p}/" for p in match or [])]
        typer.echo(f"es: subscribed to {', '.join(names)}", err=True)
        with contextlib.suppress(KeyboardInterrupt):
            _print_events(subscriber, count, wait, "raw" if raw else "json" if as_json else "text")


def _print_loss(lost: int, as_json: bool, raw: bool = False) -> None:
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


def _print_events(subscriber: Any, count: int | None, wait: float | None, form: str) -> None:
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
                _print_loss(event.lost, False, raw=True)
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
            typer.echo(json.dumps(line))
            continue
        if event.lost:
            _print_loss(event.lost, False)
        typer.echo(f"[#{event.seq}] {event.subject}: {msg if isinstance(msg, str) else repr(msg)}")


@app.command()
def stats(
    es: EsUri = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw reply as JSON.")] = False,
    timeout: Timeout = 5.0,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Server counters and per-subscriber queue depth, drops and subscriptions."""
    body = _ask(ident, key, server_key, lambda keys: admin.stats(es, timeout, keys))
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
    _subscriber_table(body)


def _subscriber_table(body: dict[str, Any]) -> None:
    if not body["subscribers"]:
        typer.echo("no subscribers", err=True)
        return
    typer.echo(
        f"{'ID':<16} {'POLICY':<6} {'QUEUE':>6} {'DEPTH':>6} {'SENT':>8} {'DROPPED':>8} "
        f"{'STALLS':>6} {'BEHIND':>7} {'STALLED':>7}  SUBSCRIPTIONS"
    )
    for s in body["subscribers"]:
        names = ", ".join([*s["subjects"], *(f"/{p}/" for p in s["patterns"])])
        typer.echo(
            f"{s['id']:<16} {s['policy']:<6} {s['queue']:>6} {s['depth']:>6} {s['sent']:>8} "
            f"{s['dropped']:>8} {s['stalls']:>6} {s['behind']:>6.1f}s {s['stalled_for']:>6.1f}s"
            f"  {names}"
        )
    if body.get("truncated"):
        typer.echo("(list truncated)")


@app.command()
def subjects(
    es: EsUri = None,
    match: Annotated[
        str | None, typer.Option("--match", "-m", help="Only subjects matching this pattern.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw reply as JSON.")] = False,
    timeout: Timeout = 5.0,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Subjects published on, most recent first, with their event counts."""
    body = _ask(ident, key, server_key, lambda keys: admin.subjects(es, match, timeout, keys))
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
    counts = _ask(ident, key, server_key, lambda keys: admin.numsub(names, es, timeout, keys))
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
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw reply as JSON.")] = False,
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
    body = _ask(ident, key, server_key, lambda keys: admin.subscribers(es, prefix, timeout, keys))
    if as_json:
        typer.echo(json.dumps(body, indent=2))
    else:
        _subscriber_table(body)
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

    body, elapsed = _ask(ident, key, server_key, timed)
    server = body.get("server")
    if server != "es":  # something answered PING, but not an event server (a name server?)
        what = "a name server" if server == "ns" else f"a server that calls itself {server!r}"
        raise _fail(f"{what} answered, not an event server")
    if as_json:
        typer.echo(json.dumps({**body, "round_trip_ms": round(elapsed, 3)}, indent=2))
        return
    typer.echo(f"es {body.get('version')} answered in {elapsed:.1f} ms")


@app.command()
def keygen(
    directory: Annotated[
        str, typer.Argument(metavar="DIRECTORY", help="Directory for the key files (created).")
    ],
    clients: Annotated[
        list[str] | None,
        typer.Argument(metavar="CLIENT", help="Names of clients to make key pairs for."),
    ] = None,
) -> None:
    """Make CurveZMQ key files: the daemons' pair and one pair per client (see SPEC.md, 14.2).

    Run the daemons with --keys DIRECTORY; give each client its clients/NAME.key_secret and
    server.key (--key, --server-key). Add a client later with `es keygen DIRECTORY NAME` (or
    by copying its .key file into DIRECTORY/clients/), then restart the daemons.
    """
    from clients.security import generate

    try:
        written = generate(directory, clients or [])
    except (OSError, ValueError) as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    for path in written:
        typer.echo(str(path))


@app.command()
def up(
    port: Annotated[int, typer.Option("-p", "--port", help="Event server port.")] = 7766,
    ns_port: Annotated[int, typer.Option("--ns-port", help="Name server port.")] = 9090,
    host: Annotated[str, typer.Option("-n", "--host", help="Address both bind.")] = "127.0.0.1",
    ident: Ident = None,
    keys_dir: KeysDir = None,
) -> None:
    """Run a name server and an event server together in the foreground (Ctrl-C stops both)."""
    from es.stack import run_stack

    # Both daemons read them from the environment, where `ps` does not show them.
    if ident:
        os.environ["ES_IDENT"] = ident
    if keys_dir:
        os.environ["ES_KEYS"] = keys_dir
    ns_args = ["-n", host, "-p", str(ns_port)]
    raise typer.Exit(run_stack(ns_args, ["-n", host, "-p", str(port)]))


@app.command()
def bench(
    es: Annotated[
        str | None,
        typer.Option("--es", help="Measure this event server [default: start a private one]."),
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(
            help="Workloads, comma-separated: throughput, latency, matching, many, slow, "
            "hostile [default: all; hostile only when named if --es is given]."
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option(help="Tiny workloads: a smoke test, not a measure.")
    ] = False,
    results: Annotated[
        Path | None, typer.Option(help="Append the results here, one JSON line per row.")
    ] = None,
    summary: Annotated[
        Path | None, typer.Option(help="Append a markdown summary of the run here.")
    ] = None,
    ident: Ident = None,
) -> None:
    """Measure throughput, latency, matching, many subscribers, a slow consumer, and ordinary
    clients' latency beside a hostile one.

    Plain pyzmq PUB/SUB on the same machine is measured beside it. Publishers and subscribers
    run on this machine; without --es, so do a private name server and event server."""
    from es.bench import WORKLOADS, BenchError, Settings, run_bench

    if ident:
        os.environ["ES_IDENT"] = ident  # the role processes read it, and `ps` does not show it
    if es is not None:  # found once, here: a bad address is a usage error, not a role's traceback
        from clients.naming import resolve_es_uri

        es = _ask(ident, None, None, lambda keys: resolve_es_uri(es, keys=keys))
    settings = Settings.quick() if quick else Settings()
    if only is None:  # a hostile client is sent to someone else's server only when asked for
        names = [n for n in WORKLOADS if es is None or n != "hostile"]
    else:
        names = [n.strip() for n in only.split(",") if n.strip()]
    try:
        run_bench(names, settings, es, results, summary)
    except ValueError as exc:
        raise _fail(str(exc), ExitCode.USAGE) from None
    except BenchError as exc:
        raise _fail(str(exc)) from None


def main() -> None:
    """The `es` command."""
    terminate_like_interrupt()
    command_logging("es")
    app()
