"""Who is on the other nodes, as their meta-events tell it; and who announces a node that is lost.
Pure: meta-event bodies in, meta-events to publish out.

Invariants:
- The roster follows `$es.subscriber.joined` and `$es.subscriber.left` of every other node: it
  holds each live subscriber of a node by its public id, with its service name if it gave one.
- When a node is lost, exactly one survivor announces its subscribers as gone: the node whose
  name is the least among itself and the peers it still hears. Every survivor forgets the lost
  node's subscribers, announcing or not, so a node is announced at most once by each view of it.
"""

from __future__ import annotations

from typing import Any

from es import meta

__all__ = ["LOST", "WATCHED", "Roster", "announcer"]

LOST = "node lost"
"""The reason in `$es.subscriber.left` and `$es.service.gone` for the subscribers of a lost node."""

WATCHED = (meta.SUBSCRIBER_JOINED, meta.SUBSCRIBER_LEFT)
"""The meta-events every node listens for on the backbone, whatever its subscribers want."""


def announcer(me: str, live: set[str]) -> str:
    """The node that announces a lost node: the least name among this node and its live peers."""
    return min(live | {me})


class Roster:
    """The subscribers of the other nodes: node -> public id -> service name (or None)."""

    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, str | None]] = {}

    def heard(self, subject: str, body: Any) -> None:
        """Take one meta-event of another node (anything malformed is ignored)."""
        if not isinstance(body, dict):
            return
        node, sid = body.get("node"), body.get("id")
        if not (isinstance(node, str) and isinstance(sid, str)):
            return
        if subject == meta.SUBSCRIBER_JOINED:
            name = body.get("name")
            self._nodes.setdefault(node, {})[sid] = name if isinstance(name, str) else None
        elif subject == meta.SUBSCRIBER_LEFT:
            members = self._nodes.get(node, {})
            members.pop(sid, None)
            if not members:
                self._nodes.pop(node, None)

    def members(self, node: str) -> dict[str, str | None]:
        """The subscribers known on `node`: public id -> service name (or None)."""
        return dict(self._nodes.get(node, {}))

    def lost(self, node: str, announce: bool) -> list[tuple[str, dict[str, Any]]]:
        """Forget `node`; the meta-events that say its subscribers are gone (if `announce`)."""
        members = self._nodes.pop(node, {})
        if not announce:
            return []
        news: list[tuple[str, dict[str, Any]]] = []
        for sid, name in sorted(members.items()):
            news.append((meta.SUBSCRIBER_LEFT, {"id": sid, "reason": LOST, "node": node}))
            if name is not None:
                gone = {"name": name, "id": sid, "reason": LOST, "node": node}
                news.append((meta.SERVICE_GONE, gone))
        return news
