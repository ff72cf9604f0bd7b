"""Events onto the backbone and off it, as values: no sockets, no NATS. Pure.

Invariants:
- `Departures` numbers every event this node puts on the backbone, 1, 2, ... in the order its
  clients' publishes were taken, one event per subject of each item (as local delivery counts
  them), and addresses each to its subject's backbone subject.
- `Arrivals` turns message bodies, in the order they arrived, into runs for the broker
  (es.broker.Broker.remote): each event taken once (es.cluster.interest.Origins), in order;
  consecutive events of one origin time share a run, as the events of one publish share a
  server time. A body that is not an event is counted in `bad`, a second copy in `duplicates`.
"""

from __future__ import annotations

from clients.wire import PubItem
from es.cluster.frames import BadFrame, RemoteEvent, pack, unpack
from es.cluster.interest import Origins
from es.cluster.subjects import backbone, retained_subject

__all__ = ["Arrivals", "Departures", "Run"]

Run = tuple[float, tuple[PubItem, ...]]
"""Events that other nodes published at one time: what es.broker.Broker.remote takes."""

# Events in one run at most: far under any node's max_items_per_publish (SPEC 9), so a run is
# never refused for its length.
MAX_RUN = 100


class Departures:
    """This node's events, numbered and addressed for the backbone."""

    def __init__(self, node: str, epoch: int) -> None:
        self.node = node
        self.epoch = epoch
        self.seq = 0  # the last number given

    def messages(
        self, published: list[tuple[tuple[PubItem, ...], float]]
    ) -> list[tuple[str, bytes]]:
        """(NATS subject, body) for each event of these publishes (items, server time)."""
        out: list[tuple[str, bytes]] = []
        node, epoch = self.node, self.epoch
        for items, now in published:
            for item in items:
                for subject in item.subjects:
                    self.seq += 1
                    event = RemoteEvent(node, epoch, self.seq, now, subject, item.fmt, item.payload)
                    out.append((backbone(subject), pack(event)))
        return out

    def retained(
        self, items: tuple[PubItem, ...], now: float
    ) -> list[tuple[str, bytes, float | None]]:
        """(stream subject, body, seconds to live) of each retained event of a publish taken at
        `now`, for the stream (SPEC 15.6): numbered 0, since the stream keeps one per subject
        and a node takes them by time, not in a sequence."""
        out: list[tuple[str, bytes, float | None]] = []
        for item in items:
            if not item.retain:
                continue
            for subject in item.subjects:
                event = RemoteEvent(self.node, self.epoch, 0, now, subject, item.fmt, item.payload)
                out.append((retained_subject(subject), pack(event), item.ttl))
        return out


class Arrivals:
    """Events from other nodes, checked and taken once."""

    def __init__(self, origins: Origins | None = None) -> None:
        self.origins = origins if origins is not None else Origins()
        self.bad = 0
        self.duplicates = 0

    def runs_with_gaps(self, taken: list[bytes | None]) -> list[Run | None]:
        """The runs of message bodies as the link queued them, with its gaps (None) kept in
        place: where events may be missing."""
        out: list[Run | None] = []
        bodies: list[bytes] = []
        for body in taken:
            if body is not None:
                bodies.append(body)
                continue
            out += [*self.runs(bodies), None]
            bodies = []
        return out + self.runs(bodies)

    def retained(
        self, kept: list[tuple[bytes, float | None]]
    ) -> list[tuple[RemoteEvent, float | None]]:
        """The retained events the stream brought (its own and other nodes'), with their
        lifetimes; a body that is not an event is counted in `bad`."""
        out: list[tuple[RemoteEvent, float | None]] = []
        for body, ttl in kept:
            try:
                out.append((unpack(body), ttl))
            except BadFrame:
                self.bad += 1
        return out

    def runs(self, bodies: list[bytes]) -> list[Run]:
        """The new events among `bodies`, in runs."""
        runs: list[tuple[float, list[PubItem]]] = []
        fresh = self.origins.fresh
        for body in bodies:
            try:
                event = unpack(body)
            except BadFrame:
                self.bad += 1
                continue
            if not fresh(event.node, event.epoch, event.seq):
                self.duplicates += 1
                continue
            item = PubItem((event.subject,), event.fmt, event.payload)
            if runs and runs[-1][0] == event.time and len(runs[-1][1]) < MAX_RUN:
                runs[-1][1].append(item)
            else:
                runs.append((event.time, [item]))
        return [(time, tuple(items)) for time, items in runs]
