"""A node of a cluster: the event server's side of the backbone, between its broker and the
NATS link. What decides lives in the pure modules beside it (interest, traffic, peers, roster);
this moves their results between the broker and the link.

Invariants:
- After each turn of the server's loop (`send_out`), interest follows the subscription index
  and the publishes the broker took go onto the backbone, in the order they were taken.
- Events from other nodes reach the broker one run at a time (`runs`), so that the shell
  can stop at a stall (a block-mode subscriber's full queue): what is left waits here, in order,
  and nothing is offered to a lane that already waits. Once half the link's bound waits
  (`link.crowded`), the shell takes them during the stall too, offered without waiting: they
  reach every subscriber with room, and are dropped, counted and told, for those without.
- A publish of retained events (with the stream on) is taken only once the stream took them:
  its connection is on hold meanwhile (es.flow), and `settle` takes it, or refuses it with
  NO_QUORUM, and lets the connection go on.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Iterator
from typing import Any

from clients.errors import ErrorCode, PayloadError
from clients.payload import decode_payload
from es.actions import Action, Hold, Reply
from es.broker import Broker
from es.cluster.interest import Interest
from es.cluster.link import Link, LinkError
from es.cluster.peers import Lookout
from es.cluster.roster import WATCHED, Roster, announcer
from es.cluster.stream import RETAIN_DEADLINE
from es.cluster.traffic import Arrivals, Departures, Run
from es.config import ServerConfig
from es.flow import Flow
from es.outcomes import Outcome

__all__ = ["Node"]

log = logging.getLogger("es.cluster")

JOIN_TIMEOUT = 10.0
"""Seconds `es serve --cluster` waits for a NATS server of the backbone at start."""


class Node:
    """This server as a node of a cluster (see the module)."""

    def __init__(self, broker: Broker, servers: list[str], name: str) -> None:
        self.broker = broker
        self.name = name
        epoch = secrets.randbits(63)
        limits = broker.config.limits
        bounds = (limits.max_retained, limits.max_retained_bytes)
        self.link = Link(servers, name, epoch, retained=bounds)
        self.interest = Interest()
        self.departures = Departures(name, epoch)
        self._held: list[Reply] = []  # answers to subscriptions, until their barrier ends
        self._waiting: dict[int, list[Reply]] = {}
        self._tokens = itertools.count(1)
        self._holds: dict[int, Hold] = {}  # publishes whose retained events the stream takes
        self.roster = Roster()
        self.lookout = Lookout()
        # Taken from the link, not yet handed to the broker; None where events may be missing.
        self._runs: deque[Run | None] = deque()
        self.arrivals = Arrivals()
        broker.core.forward = []
        broker.core.cluster_stats = self.stats
        broker.core.node = name
        broker.index.journal = []

    @classmethod
    def join(
        cls, broker: Broker, config: ServerConfig, timeout: float = JOIN_TIMEOUT
    ) -> Node | None:
        """This server as a node of the cluster `config` names, connected to its backbone;
        None (after logging why) if no NATS server of it answers within `timeout` seconds."""
        node = cls(broker, config.cluster_servers, config.node)
        try:
            node.link.start(timeout)
        except LinkError as exc:
            log.error("%s", exc)
            return None
        start, _ = node.interest.apply([(False, True, subject) for subject in WATCHED])
        node.link.listen(start, [])  # the roster follows every node's subscribers
        return node

    def stop(self, timeout: float) -> None:
        """Send what is left and close the connection."""
        self.send_out()
        self.link.stop(timeout)

    def after(self, actions: list[Action], flow: Flow) -> list[Action]:
        """A request's actions, less what waits for the backbone: the answers to one that added
        interest, until the barrier the next `send_out` starts ends (other nodes must know the
        new interest first); a publish of retained events, until the stream took them (its
        connection on hold in `flow` meanwhile)."""
        journal = self.broker.index.journal
        if journal is not None and any(added for _, added, _ in journal):
            self._held += [a for a in actions if isinstance(a, Reply)]
            actions = [a for a in actions if not isinstance(a, Reply)]
        if not any(type(action) is Hold for action in actions):
            return actions  # every publish without retained events: nothing to take out
        out: list[Action] = []
        for action in actions:
            if isinstance(action, Hold):
                token = next(self._tokens)
                self._holds[token] = action
                retained = self.departures.retained(action.request.items, action.time)
                self.link.retain(token, retained)
                flow.hold(action.peer)
            else:
                out.append(action)
        return out

    def settle(self, flow: Flow, mono: float) -> list[Action | Outcome]:
        """What follows from the publishes whose retained events the stream took (they are taken
        now) or did not (refused with NO_QUORUM); their connections go on."""
        out: list[Action | Outcome] = []
        for token, failure in self.link.settled():
            hold = self._holds.pop(token)
            if failure is None:
                out += flow.route(self.broker.publish_held(hold, mono), mono)
            else:
                why = (
                    f"the cluster's stream of retained events did not take them within "
                    f"{RETAIN_DEADLINE:g} s (is this node cut off from most of its NATS cluster?): "
                    f"nothing was published ({failure})"
                )
                out.append(self.broker.error(hold.peer, hold.request.rid, ErrorCode.NO_QUORUM, why))
            flow.release(hold.peer)
        return out

    def released(self) -> list[Reply]:
        """The answers whose barriers ended."""
        out: list[Reply] = []
        for token in self.link.ended():
            out += self._waiting.pop(token, [])
        return out

    def send_out(self) -> None:
        """Listen on what the index now needs; put what clients published on the backbone."""
        journal = self.broker.index.journal
        if journal:
            start, stop = self.interest.apply(journal)
            journal.clear()
            if start or stop:
                self.link.listen(start, stop)
        if self._held:
            token = next(self._tokens)
            self._waiting[token], self._held = self._held, []
            self.link.barrier(token)
        forward = self.broker.core.forward
        if forward:
            self.link.send(self.departures.messages(forward))
            forward.clear()
        self.broker.core.hold_retained = self.link.stream.on

    @property
    def pending(self) -> bool:
        """Whether events of other nodes, ended barriers or news of peers are waiting."""
        return bool(self._runs) or self.link.pending or set(self.link.known) != self.lookout.known

    def runs(self, mono: float, most: int, now: float, wait: bool = True) -> Iterator[list[Action]]:
        """What the broker does with each run of other nodes' events, one run at a time, for
        up to `most` runs (reading up to `most` more messages whenever none is left). A run
        not asked for yet stays here: the shell stops asking at a stall, unless too many wait
        (`link.crowded`), when it takes them without `wait`ing for room. Retained events the
        stream brought are kept first (`now`: the wall clock, for their lifetimes)."""
        kept = self.link.take_retained()
        if kept:
            self.broker.keep_retained(self.arrivals.retained(kept), now, mono)
        for _ in range(most):
            if not self._runs:
                self._runs.extend(self.arrivals.runs_with_gaps(self.link.take(most)))
            if not self._runs:
                return
            run = self._runs.popleft()
            if run is None:  # events may be missing here: every subscriber's next one says so
                self.broker.resume_all()
                continue
            self._follow(run)
            yield self.broker.remote([run], mono, wait)

    def _follow(self, run: Run) -> None:
        """Keep the roster up to date with the other nodes' subscribers joining and leaving."""
        for item in run[1]:
            if item.subjects[0] in WATCHED:
                with contextlib.suppress(PayloadError):
                    self.roster.heard(item.subjects[0], decode_payload(item.payload, item.fmt))

    def losses(self, now: float) -> list[Action]:
        """Peers that went silent: forgotten, and their subscribers announced gone if this node
        is the one to announce them (es.cluster.roster)."""
        known = set(self.link.known)
        lost, back = self.lookout.look(known)
        actions: list[Action] = []
        for node in lost:
            log.warning("backbone: node %s is lost (silent for 3 heartbeats)", node)
            announce = announcer(self.name, known) == self.name
            actions += self.broker.announce(self.roster.lost(node, announce), now)
        if back:  # heard again (a partition healed, or it restarted): its events in between
            log.warning("backbone: node(s) %s heard again", ", ".join(back))
            self.broker.resume_all()  # are lost here, and every subscriber is told
        return actions

    def stats(self) -> dict[str, Any]:
        """The cluster part of STATS."""
        core, link, arrivals = self.broker.core, self.link, self.arrivals
        return {
            "node": self.name,
            "connected": link.connected,
            "peers": list(link.known),
            "listening": len(self.interest.filters),
            "sent": self.departures.seq,
            "received": core.remote_in,
            "refused": core.remote_refused,
            "duplicates": arrivals.duplicates,
            "bad": arrivals.bad,
            "overflow": link.overflow,
            "gaps": link.gaps,
            "unsent": link.unsent,
            "jetstream": link.stream.on,
            "retained_unsent": link.stream.unsent,
        }
