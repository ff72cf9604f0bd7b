"""The broker's state, in one place: subscribers, the subscription index, retained events, what
was published, the counters, and the clocks of the request being handled.

Plain data with the few operations every part of the broker shares (writing to storage, noting
a published subject). The parts that act on it (es.publishing, es.subscriptions,
es.introspection) take it as an argument; es.broker composes them.

Invariant (kept by es.subscriptions and es.broker): every subscriber in `subscribers` has at
least one subscription in `index`, and the other way round.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from clients.errors import ErrorCode
from clients.wire import Counts, PubItem
from es.actions import Open
from es.checks import refuse
from es.config import ServerConfig
from es.daemon.patterns import Pattern, fold
from es.daemon.storage import StorageError
from es.durablelog import DurableLog
from es.groups import Group
from es.history import History
from es.index import SubscriptionIndex
from es.lane import Totals
from es.ratelimit import RateLimiter
from es.records import MemoryStorage, Storage
from es.retained import RetainedStore
from es.state import SubscriberState

if TYPE_CHECKING:
    from es.actions import Action

__all__ = ["BrokerState"]

log = logging.getLogger("es.broker")

_T = TypeVar("_T")

# Published subjects remembered for SUBJECTS, the first seen forgotten first.
SUBJECTS_KEPT = 10_000


class BrokerState:
    """Everything the broker knows (see the module)."""

    def __init__(
        self,
        config: ServerConfig,
        now: float,
        new_stream: Callable[[], int],
        store: Storage | None = None,
    ) -> None:
        lim = config.limits
        self.config = config
        self.store: Storage = store if store is not None else MemoryStorage()
        self.new_stream = new_stream
        self.index = SubscriptionIndex(config.cache_size)
        self.subscribers: dict[str, SubscriberState] = {}
        self.evicted: OrderedDict[str, str] = OrderedDict()  # sid -> reason, to tell its client
        self.retained = RetainedStore(lim.max_retained, lim.max_retained_bytes)
        self.publishers: OrderedDict[bytes, None] = OrderedDict()  # for $es.publisher.seen
        self.subjects: OrderedDict[str, list[Any]] = OrderedDict()  # folded -> [as sent, n, last]
        self.rate = RateLimiter(lim.max_request_rate)
        per_item = lim.max_subjects_per_item  # arrays over these are refused unread (SPEC 9)
        self.counts = Counts(lim.max_items_per_publish, lim.max_subscriptions, per_item)
        # Subscribers allowed: max_subscribers, or fewer when the shell finds the process cannot
        # hold that many (es.capacity).
        self.room = lim.max_subscribers
        self.started = now
        # The request being handled: its clocks (wall: event times; mono: liveness), the client
        # key its connection proved, and what it cost beyond its frames (billed by es.broker).
        self.wall = now
        self.mono = now
        self.caller: str | None = None
        self.scanned = 0  # retained events matched against patterns
        self.written = 0  # subscriptions written to storage
        # Counters, for STATS.
        self.totals = Totals()  # what every subscriber's lane sent and dropped
        self.published = 0  # PUB requests taken
        self.events_in = 0  # events they carried, one per subject
        self.rate_limited = 0
        self.evictions = 0
        self.storage_errors = 0
        # Durable subscribers (es.durables): name -> the sid that holds it; the sids that do.
        self.durables: dict[str, str] = {}
        self.durable_sids: set[str] = set()
        # The group (es.durables.commit): whether the logs were written since the last commit,
        # the publishes that reached durable subscribers since then (peer, rid), whether the
        # last commit succeeded, and the answers a failed one left for the request at hand.
        self.log_dirty = False
        self.appended = False  # events among what the group wrote (they wait for the commit)
        self.uncommitted: list[tuple[bytes, int]] = []
        self.group_drops: list[tuple[str, tuple[int, int]]] = []  # durable, seqs dropped
        self.healthy = True
        self.failed: list[Action] = []
        # The history (es.replays): none until the broker loads it with the server's rules.
        self.history = History((), 0)
        self.history_scanned = 0  # events of the history a request's replay looked at
        # Queue groups (es.grouping): name -> group; their names in the index ($group:NAME).
        self.groups: dict[str, Group] = {}
        self.group_sids: set[str] = set()
        # A node of a cluster (es.cluster): the publishes its clients made, (items, time), for
        # the shell to put on the backbone; None when not in a cluster. Events that other nodes
        # published and this one took, and those it refused (over its own limits).
        self.forward: list[tuple[tuple[PubItem, ...], float]] | None = None
        self.remote_in = 0
        self.remote_refused = 0
        self.cluster_stats: Callable[[], dict[str, Any]] | None = None  # the node's, for STATS
        self.node = ""  # this node's name, in its meta-events (with `forward`)
        # Whether a publish of retained events waits for the cluster's stream (es.actions.Hold).
        self.hold_retained = False

    @property
    def log(self) -> DurableLog:
        """Durable subscribers and their events, in the storage."""
        return self.store.log

    def before_write(self) -> None:
        """Called before every write committed on its own: es.durables commits the group of the
        logs first, so that its failure is answered as the group's."""

    def write(self, write: Callable[[_T], None], arg: _T) -> None:
        """A write a request depends on: if it fails, the request fails with STORAGE_FAILED
        before anything changed in memory (callers write first)."""
        self.before_write()
        try:
            write(arg)
        except StorageError as exc:
            self.storage_errors += 1
            log.error("%s", exc)
            raise refuse(ErrorCode.STORAGE_FAILED, f"not stored: {exc}") from None

    def write_quietly(self, write: Callable[[_T], None], arg: _T) -> None:
        """A write no request waits on (a removal, an expiry): a failure is logged and counted;
        what storage keeps may then be stale, and a restart may bring back what was removed
        (it is removed again the same way)."""
        self.before_write()
        try:
            write(arg)
        except StorageError as exc:
            self.storage_errors += 1
            log.error("%s", exc)

    def restored(
        self, state: SubscriberState, subjects: Iterable[str], patterns: list[tuple[str, Pattern]]
    ) -> Open:
        """`state`, kept in storage, back among the subscribers with its subscriptions; the
        Open for its delivery socket (no request asked for it)."""
        self.subscribers[state.sid] = state
        if subjects:
            self.index.add_subjects(state.sid, list(subjects))
        if patterns:
            self.index.add_patterns(state.sid, patterns)
        size = state.queue.queue_size
        return Open(state.sid, state.endpoint, size, b"", 0, state.key, state.lane)

    def note_subject(self, subject: str, now: float, events: int = 1) -> None:
        """Remember a published subject (folded) for SUBJECTS: its event count (`events` more)
        and last time."""
        key = fold(subject)
        entry = self.subjects.get(key)
        if entry is None:  # the oldest first seen goes first: no reordering on the hot path
            self.subjects[key] = entry = [subject, 0, now]
            while len(self.subjects) > SUBJECTS_KEPT:
                self.subjects.popitem(last=False)
        entry[1] += events
        entry[2] = now

    def owned(self, sid: str) -> bool:
        """Whether the caller may act for `sid`: it is unknown, or was made without a client
        key, or by a connection with the caller's key (SPEC 7.1)."""
        state = self.subscribers.get(sid)
        return state is None or state.owner is None or state.owner == self.caller
