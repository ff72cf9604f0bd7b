"""Queue groups' members among the subscriptions (SPEC 7.12): a member's SUB, SUBMATCH and UNSUB.

Acts on the broker's state (es.brokerstate) beside es.subscriptions, whose checks and states a
member shares; what a group decides is es.grouping's and es.groups'. A member holds no
subscription of its own (its group does), is not written to storage (it subscribes again after a
restart), and leaves its group with an UNSUB of no names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clients.errors import ErrorCode
from clients.wire import Ok, encode
from es import meta
from es.actions import Action, Close, Open, Reply
from es.checks import refuse
from es.config import QueuePolicy
from es.delivery import meta_event
from es.grouping import Groups, index_name
from es.state import SubscriberState

if TYPE_CHECKING:
    from es.subscriptions import Asked, Subscriptions

__all__ = ["Members"]


class Members:
    """Subscriptions of queue groups' members (see the module)."""

    def __init__(self, subs: Subscriptions, groups: Groups) -> None:
        self.subs = subs
        self.core = subs.core
        self.groups = groups

    def subscribe(
        self, asked: Asked, current: SubscriberState | None, policy: QueuePolicy
    ) -> list[Action]:
        """A SUB or SUBMATCH of a queue group's member (es.grouping): the group's subscriptions
        added (the group made if new), the member made or updated, the reply (the group's
        count), what waits for it, and meta-events."""
        core, options, subs = self.core, asked.options, self.subs
        name = options.group if options.group is not None else getattr(current, "group", None)
        assert name is not None
        if options.name is not None or options.history is not None:
            raise refuse(
                ErrorCode.BAD_REQUEST, "a group member cannot be a service or ask for history"
            )
        if current is not None and current.durable is not None:
            raise refuse(ErrorCode.BAD_REQUEST, "a durable subscriber cannot join a group")
        if current is None and len(core.subscribers) >= core.room:
            raise refuse(ErrorCode.LIMIT_EXCEEDED, f"server has {core.room} subscribers")
        group = self.groups.check(name, options.durable, current)
        subs.check_count(index_name(name), asked)
        group = self.groups.subscribe(
            group, name, options.durable is not None, policy, asked.subjects, asked.patterns
        )
        state, actions, opened = self._state(asked, current, policy)
        body = {
            "count": core.index.count(index_name(name)),
            "stream": state.stream,
            "heartbeat": subs.heartbeat_interval,
            "queue": state.queue.queue_size,
        }
        actions.append(Reply(asked.peer, encode(Ok(asked.rid, body))))
        actions += self.groups.join(group, state)
        if opened:
            queue = state.queue
            news = meta.joined(state.id, asked.endpoint, queue.policy, queue.queue_size, None)
            actions += meta_event(core, meta.SUBSCRIBER_JOINED, news)
        names = "subjects" if asked.subjects else "patterns"
        added = {"id": state.id, names: asked.names, "group": name}
        return actions + meta_event(core, meta.SUBSCRIPTION_ADDED, added)

    def _state(
        self, asked: Asked, current: SubscriberState | None, policy: QueuePolicy
    ) -> tuple[SubscriberState, list[Action], bool]:
        """A member's state: a new one (and socket) when it is new or its endpoint or key
        changed (what the old one held goes back to its group), else the same one. Members are
        not written to storage: they subscribe again after a restart."""
        core, sid, subs = self.core, asked.sid, self.subs
        key = asked.options.key
        key = key if key is not None else (current.key if current else None)
        actions: list[Action] = []
        state = current
        if state is None or state.endpoint != asked.endpoint or state.key != key:
            if state is not None:
                actions.append(Close(sid))
                self.groups.replaced(state)
            owner = current.owner if current else core.caller
            state = subs.new_state(sid, asked.endpoint, policy)
            state.key, state.owner = key, owner
            core.subscribers[sid] = state
            size = policy.queue_size
            actions.append(Open(sid, asked.endpoint, size, asked.peer, asked.rid, key, state.lane))
        state.queue = policy
        state.health.heard(core.mono)
        core.evicted.pop(sid, None)
        return state, actions, bool(actions)

    def unsubscribe(
        self, peer: bytes, rid: int, state: SubscriberState, names: list[str]
    ) -> list[Action]:
        """A member's UNSUB: the names leave its group; with none named, or none left, the
        member leaves (what it held goes to the others)."""
        core = self.core
        count = self.groups.unsubscribe(state, names)  # written first
        actions: list[Action] = []
        if count == 0:
            core.subscribers.pop(state.sid, None)
            actions += [Close(state.sid), *self.groups.leave(state)]
        actions.append(Reply(peer, encode(Ok(rid, {"count": count}))))
        if names:
            removed = {"id": state.id, "names": names, "count": count}
            actions += meta_event(core, meta.SUBSCRIPTION_REMOVED, removed)
        if count == 0:
            actions += self.subs.departed(state.sid, None, "unsubscribed")
        return actions
