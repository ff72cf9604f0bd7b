"""What every daemon here shares: readiness, stop requests, Ctrl-C handling, logging, exit codes.

Invariants:
- `stop()` and `interrupt()` are safe from any thread and from signal handlers: they set flags
  and wake the serving thread through a Waker; they never touch the daemon's sockets.
- With `install_signal_handlers()`, the first SIGINT/SIGTERM asks for a graceful stop and the
  second for an immediate one. The Waker is also Python's wakeup fd, so a signal that arrives just
  before the loop enters poll() still wakes it (Python's C handler writes the byte itself).
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
from collections.abc import Callable

from clients.waker import Waker

__all__ = [
    "Daemon",
    "ExitCode",
    "command_logging",
    "setup_logging",
    "terminate_like_interrupt",
    "tune_collector",
]

COLLECTOR_THRESHOLDS = (50_000, 20, 10)
"""Python's cycle collector for a daemon process: a young collection every 50,000 allocations
instead of 700, a full one after 200 of them. A server allocates a few objects per event and
keeps almost none, so the young collections only walked what was alive at that instant, 70
times as often: 15-25% of the event server's CPU per event at one subscriber, measured in three
alternating pairs of runs. Only cyclic garbage waits for the collector (reference counting frees
the rest at once), and at most 50,000 objects of it."""


def setup_logging(name: str, level: str) -> None:
    """A daemon's log: stderr, one line a record, the daemon's name on each (replacing what
    `command_logging` set up for the command that started it)."""
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s {name} %(levelname)s %(message)s",
        force=True,
    )


def tune_collector() -> None:
    """Set the daemon process's cycle collector (COLLECTOR_THRESHOLDS), and leave what start-up
    built out of its full collections (gc.freeze). For a process that is only the daemon: an
    embedded server leaves the program's collector as the program set it."""
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def command_logging(program: str) -> None:
    """A client command's log: what the client library warns about, on stderr, prefixed with the
    program's name like the command's own messages ("es: ..."), never bare."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format=f"{program}: %(message)s")


class ExitCode:
    """Process exit codes of `es serve` and `ns serve` (documented in the README)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    BIND = 3
    NAMING = 4
    CLUSTER = 5  # es serve --cluster: no NATS server of the backbone could be reached at start
    FORCED = 130


class Daemon:
    """Base of the event server and the name server. Subclasses implement `serve()`."""

    thread_name = "daemon"

    def __init__(self, on_ready: Callable[[str], None] | None = None) -> None:
        self.endpoint: str | None = None
        self.exit_code: int | None = None
        self._on_ready = on_ready
        self._ready = threading.Event()
        self._stop_requested = False
        self._force = False
        self._waker = Waker()
        self._wakeup_fd_installed = False

    def serve(self) -> int:
        """Run the server in this thread until stopped; return the process exit code."""
        raise NotImplementedError

    def start(self) -> threading.Thread:
        """Run `serve()` in a daemon thread; pair with `wait_until_started`."""
        thread = threading.Thread(target=self.serve, name=self.thread_name, daemon=True)
        thread.start()
        return thread

    def wait_until_started(self, timeout: float | None = None) -> bool:
        """True once serving; False if `timeout` passed or it could not start."""
        self._ready.wait(timeout)
        return self._ready.is_set() and self.endpoint is not None

    waitUntilStarted = wait_until_started  # noqa: N815 - Pyro's EventServiceStarter spelling

    def stop(self, force: bool = False) -> None:
        """Ask the loop to drain and stop (with force: stop at once). Safe from any thread."""
        if force:
            self._force = True
        self._stop_requested = True
        self._waker.wake()

    def interrupt(self) -> None:
        """What Ctrl-C does: the first drains and stops, the second stops at once."""
        self.stop(force=self._stop_requested)

    @property
    def forced(self) -> bool:
        """Whether the last stop was forced (a second interrupt): queued work was abandoned."""
        return self._force

    def install_signal_handlers(self) -> None:
        """Make SIGINT and SIGTERM call interrupt(). Main thread only."""
        signal.set_wakeup_fd(self._waker.write_fileno(), warn_on_full_buffer=False)
        self._wakeup_fd_installed = True
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.interrupt())

    def _announce(self, endpoint: str) -> None:
        """Serving from now on: record the endpoint, release waiters, call on_ready."""
        self.endpoint = endpoint
        self._ready.set()
        if self._on_ready is not None:
            self._on_ready(endpoint)

    def _failed_to_start(self, exit_code: int) -> int:
        self.exit_code = exit_code
        self._release()
        self._ready.set()
        return exit_code

    def _release(self) -> None:
        """Give back the waker (and the wakeup fd: never leave Python writing to a closed fd)."""
        if self._wakeup_fd_installed:
            signal.set_wakeup_fd(-1)
            self._wakeup_fd_installed = False
        self._waker.close()


def terminate_like_interrupt() -> None:
    """SIGTERM (what `timeout`, systemd and container runtimes send) ends a command as Ctrl-C
    does: a KeyboardInterrupt in the main thread, so `es sub` unsubscribes on its way out.
    Daemons install their own handlers over this one (Daemon.install_signal_handlers)."""

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupted)
