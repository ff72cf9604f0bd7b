"""The dashboard's HTTP side (Starlette): the pages, their JSON API and streams, /metrics,
/healthz and /readyz. What it shows comes from es.dashboard.source and es.dashboard.feeds.

Invariants:
- Every request that changes something passes es.dashboard.guard first (read-only mode, Host
  and Origin); a refused one gets 403 with the reason.
- Requests with bodies are bounded (MAX_BODY); an error of the event or name server is answered
  409 with its code and message, never a crash.
- Background work (the STATS poll, the activity subscriber) starts and stops with the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from clients.aio import AsyncPublisher, AsyncSubscriber
from clients.errors import EsError, RequestError
from clients.event import Event
from es.dashboard.feeds import MAX_TAILS, Feed, open_tail
from es.dashboard.guard import refusal
from es.dashboard.metrics import StatsCollector
from es.dashboard.rows import event_rows, gap_row
from es.dashboard.source import Protected, Source

__all__ = ["Dashboard", "make_app"]

STATIC = Path(__file__).parent / "static"
MAX_BODY = 1 << 20  # bytes of a POST body (a test event's payload included)
ACTIVITY = r"^\$es\."  # the meta-events' subjects (SPEC 7.7)
SHOWN = 1024  # payload bytes a tail row shows unless the page asks otherwise
MAX_SHOWN = 64 << 10
CHARTED = 120  # points of the counters' history each snapshot carries (two minutes at 1 s)


@dataclass
class Dashboard:
    """What the app serves from: its source, settings and shared streams."""

    source: Source
    served: str  # host:port it listens on (for the Host check)
    read_only: bool = False
    ui: bool = True
    labels: frozenset[str] = frozenset()
    activity: Feed = field(default_factory=Feed)
    live: dict[str, Any] = field(default_factory=dict)  # the latest snapshot pages get
    version: int = 0  # bumped with each new snapshot
    tails: int = 0  # open now
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _publisher: AsyncPublisher | None = None


def make_app(board: Dashboard) -> Starlette:
    """The ASGI app of `board`."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(_poll(board))]
        if board.ui:  # the activity page's meta-events: no subscriber for a pure exporter
            tasks.append(asyncio.create_task(_watch(board)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if board._publisher is not None:
                with contextlib.suppress(EsError):
                    await board._publisher.close(timeout=2.0)

    routes: list[BaseRoute] = [
        Route("/healthz", _healthz),
        Route("/readyz", _readyz),
        Route("/metrics", _metrics),
    ]
    if board.ui:
        routes += [
            Route("/", _index),
            Route("/api/config", _config),
            Route("/api/health", _health),
            Route("/api/names", _names, methods=["GET", "POST"]),
            Route("/api/subjects", _subjects),
            Route("/api/live", _live),
            Route("/api/activity", _activity),
            Route("/api/tail", _tail),
            Route("/api/publish", _publish, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.board = board
    return app


def _board(request: Request) -> Dashboard:
    board: Dashboard = request.app.state.board
    return board


# --- background ------------------------------------------------------------------------------


async def _poll(board: Dashboard) -> None:
    """STATS every interval, for every page at once, and for /metrics."""
    source = board.source
    source.want_subjects = "subject" in board.labels
    while True:
        rates = await source.poll()
        stats = source.stats
        board.live = {
            "at": time.time(),
            "up": stats is not None,
            "error": source.error,
            "server": None if stats is None else stats["server"],
            "subscribers": [] if stats is None else stats["subscribers"],
            "rates": rates,
            "history": list(source.rates.history)[-CHARTED:],
        }
        board.version += 1
        board._changed.set()
        board._changed = asyncio.Event()
        await asyncio.sleep(source.interval)


async def _watch(board: Dashboard) -> None:
    """The meta-events into the activity feed, for as long as the app runs (the subscriber
    finds the server again by itself when it comes back)."""
    source = board.source

    def told(lost: int | None, event: Event | None) -> None:
        board.activity.add([gap_row(lost, time.time())])

    while True:
        try:
            async with AsyncSubscriber(
                source.es_uri, keys=source.keys, policy="drop", on_gap=told
            ) as sub:
                await sub.subscribe_match(ACTIVITY)
                async for event in sub:
                    board.activity.add(event_rows(event, SHOWN))
        except EsError:
            await asyncio.sleep(source.interval)  # not there yet: try again


# --- health ----------------------------------------------------------------------------------


async def _healthz(request: Request) -> Response:
    """Liveness: the dashboard itself runs."""
    return JSONResponse({"ok": True})


async def _readyz(request: Request) -> Response:
    """Readiness: the event server answered the latest poll."""
    source = _board(request).source
    if source.stats is None:
        return JSONResponse({"ready": False, "error": source.error}, status_code=503)
    return JSONResponse({"ready": True})


async def _metrics(request: Request) -> Response:
    board = _board(request)
    registry = CollectorRegistry()
    registry.register(StatsCollector(board.source.latest, board.labels))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


# --- pages and their API ---------------------------------------------------------------------


async def _index(request: Request) -> Response:
    return Response((STATIC / "index.html").read_bytes(), media_type="text/html")


async def _config(request: Request) -> Response:
    board = _board(request)
    return JSONResponse({"read_only": board.read_only, "labels": sorted(board.labels)})


async def _health(request: Request) -> Response:
    return JSONResponse(await _board(request).source.health())


async def _names(request: Request) -> Response:
    board = _board(request)
    if request.method == "GET":
        return await _answer(board.source.names())
    form = await _change(request, board)
    if isinstance(form, Response):
        return form
    return await _answer(board.source.change_name(str(form.get("action", "")), form))


async def _subjects(request: Request) -> Response:
    source = _board(request).source
    pattern = request.query_params.get("pattern") or None
    return await _answer(source.subject_list(pattern))


async def _live(request: Request) -> Response:
    """The latest statistics, and each new snapshot as it comes (server-sent events)."""
    board = _board(request)

    async def snapshots() -> AsyncIterator[dict[str, Any]]:
        seen = -1
        while True:
            changed = board._changed
            if board.version != seen:
                seen = board.version
                yield {"event": "live", "data": json.dumps(board.live)}
            await changed.wait()

    return EventSourceResponse(snapshots(), ping=15)


async def _activity(request: Request) -> Response:
    board = _board(request)

    async def rows() -> AsyncIterator[dict[str, Any]]:
        async for lot in board.activity.follow():
            for row in lot:
                yield {"event": "row", "data": json.dumps(row)}

    return EventSourceResponse(rows(), ping=15)


async def _tail(request: Request) -> Response:
    """A live tail of `subject` or `pattern` for one page, in drop mode (es.dashboard.feeds)."""
    board = _board(request)
    subject = request.query_params.get("subject") or None
    pattern = request.query_params.get("pattern") or None
    if (subject is None) == (pattern is None):
        return _problem(400, "BAD_REQUEST", "give a subject or a pattern")
    try:
        shown = min(MAX_SHOWN, max(16, int(request.query_params.get("shown", SHOWN))))
    except ValueError:
        return _problem(400, "BAD_REQUEST", "shown must be a number of bytes")
    if board.tails >= MAX_TAILS:
        return _problem(429, "LIMIT_EXCEEDED", f"{MAX_TAILS} tails are open already")
    source = board.source
    board.tails += 1
    try:
        rows = await open_tail(
            source.es_uri, source.keys, subject=subject, pattern=pattern, shown=shown
        )
    except EsError as exc:
        board.tails -= 1
        return _error(exc)

    async def counted() -> AsyncIterator[dict[str, Any]]:
        try:
            async for row in rows:
                yield row
        finally:
            board.tails -= 1

    return EventSourceResponse(counted(), ping=15)


async def _publish(request: Request) -> Response:
    """A test event from the page: subject, body as JSON or text, retain, ttl, confirm."""
    board = _board(request)
    form = await _change(request, board)
    if isinstance(form, Response):
        return form
    try:
        message = _message(form)
        ttl = None if form.get("ttl") in (None, "") else float(form["ttl"])
    except ValueError as exc:
        return _problem(400, "BAD_REQUEST", str(exc))
    if board._publisher is None:
        board._publisher = AsyncPublisher(board.source.es_uri, keys=board.source.keys)
    confirm = bool(form.get("confirm"))
    try:
        receivers = await board._publisher.publish(
            str(form.get("subject", "")),
            message,
            confirm=confirm,
            retain=bool(form.get("retain")),
            ttl=ttl,
        )
        if not confirm:
            await board._publisher.flush()  # its error, if any, is this request's
    except EsError as exc:
        return _error(exc)
    return JSONResponse({"receivers": receivers})


def _message(form: dict[str, Any]) -> Any:
    body, kind = form.get("body", ""), form.get("format", "text")
    if kind == "json":
        try:
            return json.loads(str(body))
        except json.JSONDecodeError as exc:
            raise ValueError(f"the body is not JSON: {exc}") from None
    if kind != "text":
        raise ValueError("format must be json or text")
    return str(body)


# --- shared ----------------------------------------------------------------------------------


async def _change(request: Request, board: Dashboard) -> dict[str, Any] | Response:
    """A request that changes something: its JSON object, or the answer refusing it (the
    guard's 403, or a body too large or not a JSON object)."""
    why = refusal(
        request.method,
        request.headers.get("host"),
        request.headers.get("origin"),
        board.served,
        board.read_only,
    )
    if why is not None:
        return _problem(403, "FORBIDDEN", why)
    return await _form(request)


async def _form(request: Request) -> dict[str, Any] | Response:
    """A POST's JSON object, bounded in size."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return _problem(413, "TOO_LARGE", f"a request body over {MAX_BODY} bytes")
    try:
        form = json.loads(body or b"{}")
    except json.JSONDecodeError as exc:
        return _problem(400, "BAD_REQUEST", f"not JSON: {exc}")
    if not isinstance(form, dict):
        return _problem(400, "BAD_REQUEST", "a JSON object is expected")
    return form


async def _answer(work: Any) -> Response:
    try:
        return JSONResponse(await work)
    except Protected as exc:
        return _problem(403, "PROTECTED", str(exc))
    except EsError as exc:
        return _error(exc)
    except ValueError as exc:
        return _problem(400, "BAD_REQUEST", str(exc))


def _error(exc: EsError) -> Response:
    """An error of the event or name server: 409 with its code, or 502 when it did not answer."""
    if isinstance(exc, RequestError):
        return _problem(409, str(exc.code), exc.message)
    return _problem(502, "UNREACHABLE", str(exc))


def _problem(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": code, "message": message}, status_code=status)
