"""Keeping a client connected: heartbeats, noticing a dead server, reconnecting with backoff.

Invariants:
- The keeper runs in a thread of its own and touches the server only through Controls, whose
  locks make sharing them with the program's threads safe.
- Heartbeats travel on a connection of their own (`pulse`), never behind the program's traffic:
  a publisher whose sends are stuck (held back by block mode, or queued for a dead server) must
  not stop the keeper from telling a live server from a dead one.
- The program's connection is replaced only when the server moved to another address; closing
  the old one then frees any thread stuck on it at once. At the same address it is kept, so what
  it has queued is not thrown away when a server that only stalled looked dead for a while.
- After reconnecting, the session is restored only if the server says it lost it.
- The program can read `status` and is told of every change through `on_status`.
- Reconnecting re-resolves the server's address each time (through the name server when the
  address was a name), so a server that comes back on another port is found; `resolve` is told
  the address that failed, so that a name with several (the nodes of a cluster) gives another.
- Backoff is a pure policy object: it only computes delays.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import zmq

from clients.control import Control
from clients.errors import ConnectionClosed, EsError
from clients.security import Keys

__all__ = ["Backoff", "Keeper", "KeptClient", "Status"]

log = logging.getLogger("clients.keeper")

T = TypeVar("T")


class Status(StrEnum):
    """How a client's link to the event server stands (`client.status`, `on_status`)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DOWN = "down"
    CLOSED = "closed"


@dataclass
class Backoff:
    """Exponential backoff with jitter: base, base*factor, ... up to cap, each cut by up to
    `jitter` (a fraction) so that many clients do not come back in step."""

    base: float = 0.1
    cap: float = 5.0
    factor: float = 2.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next(self) -> float:
        """The next delay in seconds; each call backs off further, up to the cap."""
        delay = min(self.cap, self.base * self.factor**self.attempt)
        self.attempt += 1
        return delay * (1 - self.jitter * self.rng.random())

    def reset(self) -> None:
        """Start again from the base delay."""
        self.attempt = 0


Probe = Callable[[Control], bool]
"""Is our session intact? True yes, False the server forgot us; raise if it does not answer."""


class Keeper:
    """Owns a client's Control and replaces it when the server is gone."""

    def __init__(
        self,
        resolve: Callable[[str | None], str],
        *,
        timeout: float,
        interval: float,
        liveness: float,
        probe: Probe,
        restore: Callable[[Control], None],
        on_status: Callable[[Status], None] | None = None,
        context: zmq.Context[Any] | None = None,
        backoff: Backoff | None = None,
        name: str = "es-keeper",
        keys: Keys | None = None,
    ) -> None:
        self._resolve = resolve
        self.keys = keys
        self._context = context or zmq.Context.instance()
        self._timeout = timeout
        self.interval = interval
        self.liveness = liveness
        self._probe = probe
        self._restore = restore
        self._on_status = on_status
        self._backoff = backoff or Backoff()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by stop() and gone(): the thread looks at once
        self._told_gone = False
        self._swap = threading.Lock()
        self.status = Status.CONNECTING
        self.endpoint = resolve(None)
        self.control = Control(self._context, self.endpoint, timeout, keys=keys)
        self._pulse = Control(self._context, self.endpoint, timeout, keys=keys)
        self.recoveries = 0
        # Times the server was found gone and then found again: what was sent before may never
        # be answered (Publisher: its marks).
        self.reconnections = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the heartbeat thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat thread (waiting for it) and report CLOSED."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(self._timeout + self.interval + 1)
        self._set(Status.CLOSED)

    # --- the thread ----------------------------------------------------------------------------

    def _set(self, status: Status) -> None:
        if status is self.status:
            return
        self.status = status
        log.info("event server link %s (%s)", status, self.endpoint)
        if self._on_status is not None:
            try:
                self._on_status(status)
            except Exception:  # the program's callback must not kill the keeper
                log.exception("on_status callback failed")

    def gone(self) -> None:
        """The server said it is stopping (a BYE on the subscriber's inbox): look for a server
        now, without waiting for heartbeats to go unanswered. Safe from any thread."""
        self._told_gone = True
        self._wake.set()

    def _run(self) -> None:
        last_ok = time.monotonic()
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            if self._told_gone:
                self._told_gone = False
                log.warning("event server at %s is stopping", self.endpoint)
                self._set(Status.DOWN)
                self._reconnect()
                last_ok = time.monotonic()
                continue
            try:
                intact = self._probe(self._pulse)
            except EsError as exc:
                if time.monotonic() - last_ok >= self.liveness:
                    log.warning("event server at %s gone: %s", self.endpoint, exc)
                    self._set(Status.DOWN)
                    self._reconnect()
                    last_ok = time.monotonic()
                continue
            last_ok = time.monotonic()
            if not intact:
                self._recover(self.control)
            self._set(Status.CONNECTED)

    def _recover(self, control: Control) -> None:
        """The server forgot this client (restarted, or removed it): restore the session."""
        try:
            self._restore(control)
        except EsError as exc:
            log.warning("could not restore the session: %s", exc)
            return
        self.recoveries += 1

    def _reconnect(self) -> None:
        self._backoff.reset()
        while not self._stop.is_set():
            try:
                endpoint = self._resolve(self.endpoint)
                pulse = Control(self._context, endpoint, self._timeout, keys=self.keys)
            except (EsError, ValueError) as exc:
                log.info("reconnect: %s", exc)
                self._stop.wait(self._backoff.next())
                continue
            try:
                intact = self._probe(pulse)
            except EsError:
                pulse.close()
                self._stop.wait(self._backoff.next())
                continue
            self._switch(endpoint, pulse)
            self.reconnections += 1
            if not intact:
                self._recover(self.control)
            self._set(Status.CONNECTED)
            return

    def _switch(self, endpoint: str, pulse: Control) -> None:
        """Take the new heartbeat connection. The program's connection is replaced only when the
        server's address changed: at the same address ZeroMQ reconnects it by itself, and what is
        queued in it still reaches the server (which may never have died, only stalled)."""
        with self._swap:
            old_pulse, self._pulse = self._pulse, pulse
            old = self.control
            if endpoint != self.endpoint:
                self.control = Control(self._context, endpoint, self._timeout, keys=self.keys)
                self.endpoint = endpoint
        old_pulse.close()
        if old is not self.control:
            old.close()  # frees a thread stuck sending to the dead server: it retries on the new

    def call(self, action: Callable[[Control], T]) -> T:
        """Run `action` on the current Control; if the keeper replaced it meanwhile, once more on
        the new one (the old one raises ConnectionClosed once closed)."""
        control = self.control
        try:
            return action(control)
        except ConnectionClosed:
            if self._stop.is_set() or self.control is control:
                raise
            return action(self.control)

    def close(self) -> None:
        """Stop, then close both connections."""
        self.stop()
        with self._swap:
            self.control.close()
            self._pulse.close()


class KeptClient:
    """What Publisher and Subscriber share: a Keeper, and what it can tell the program."""

    _keeper: Keeper

    @property
    def es_uri(self) -> str:
        """The event server's endpoint now (it may change when the keeper reconnects)."""
        return self._keeper.endpoint

    @property
    def status(self) -> Status:
        """connecting, connected, down (reconnecting) or closed."""
        return self._keeper.status

    @property
    def recoveries(self) -> int:
        """How many times the session was restored after the server lost it."""
        return self._keeper.recoveries

    @property
    def _control(self) -> Control:
        return self._keeper.control
