"""Queue groups (SPEC 7.12): which member of a group each of its events goes to, and what comes
back when a member goes.

Pure: no sockets, no storage, no clock. A group's events wait in a log (es.durablelog), each
under its seq in the group's stream; here is only what decides: the members and their room,
which events wait to be handed out (those handed to a member that went come first, then the
ones never handed out, in order), which member takes which, and what a member's ACK settles.

Invariants (tests/unit/test_group_properties.py):
- Every event of the group is, at any time, in exactly one place: waiting (`again`, or at or
  after `cursor` in the log), handed to exactly one member and not acknowledged (`assigned`),
  or settled (acknowledged, and gone from the log).
- A member never holds more unacknowledged events than its room (its queue size), so its queue
  on the server never drops or waits.
- Events are handed out oldest first: those taken back from a member that went, then the others
  in the order they were published.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from es.config import QueuePolicy

__all__ = ["UNBOUNDED_ROOM", "Group", "Member"]

UNBOUNDED_ROOM = 1000
"""Events a member with an unbounded queue holds at most: the rest wait for another member."""


@dataclass
class Member:
    """One subscriber of a group: its room, and what it holds (its seq, the group's seq)."""

    sid: str
    room: int
    assigned: deque[tuple[int, int]] = field(default_factory=deque)

    @property
    def free(self) -> int:
        """Events it may take now."""
        return max(0, self.room - len(self.assigned))


class Group:
    """One queue group: its members, and its events that wait or are held (see the module)."""

    def __init__(
        self, name: str, durable: bool, policy: QueuePolicy, owner: str | None, stream: int
    ) -> None:
        self.name = name
        self.durable = durable
        self.policy = policy  # its first member's: what its bounds do (block or drop)
        self.owner = owner  # the client key that made it, with key files
        self.stream = stream  # its events' stream (their seqs in its log)
        self.members: dict[str, Member] = {}
        self._turn: deque[str] = deque()  # members in the order they take turns
        self.again: list[int] = []  # seqs taken back from members that went, in order
        self.cursor = 1  # the first seq never handed out
        self.handed = 0  # events handed to members, in all
        self.redelivered = 0  # of which handed again after their member went
        self.dropped = 0  # events dropped by its bounds, never handed out

    # --- members -------------------------------------------------------------------------------

    def join(self, sid: str, queue_size: int) -> None:
        """`sid` is a member, with room for `queue_size` events (0: unbounded)."""
        room = queue_size or UNBOUNDED_ROOM
        member = self.members.get(sid)
        if member is None:
            self.members[sid] = Member(sid, room)
            self._turn.append(sid)
        else:
            member.room = room

    def leave(self, sid: str) -> list[int]:
        """`sid` is no longer a member: what it held waits again, first. Returns those seqs."""
        member = self.members.pop(sid, None)
        if member is None:
            return []
        self._turn.remove(sid)
        back = [seq for _, seq in member.assigned]
        self.again = sorted(self.again + back)
        return back

    # --- handing out ---------------------------------------------------------------------------

    def takers(self) -> list[Member]:
        """The members with room, in turn, starting with the one whose turn it is."""
        return [self.members[sid] for sid in self._turn if self.members[sid].free]

    def take_again(self, most: int) -> list[int]:
        """Up to `most` of the events to hand again, oldest first, no longer waiting."""
        taken = self.again[:most]
        del self.again[:most]
        return taken

    def hand(self, member: Member, first: int, seqs: list[int], again: int) -> None:
        """`member` took the events `seqs` (the first `again` of them handed again, the rest
        from the cursor on), numbered from `first` in its stream; its turn passes to the next."""
        member.assigned.extend(zip(range(first, first + len(seqs)), seqs, strict=True))
        if len(seqs) > again:
            self.cursor = seqs[-1] + 1
        self.handed += len(seqs)
        self.redelivered += again
        self._turn.remove(member.sid)
        self._turn.append(member.sid)

    def passed(self, through: int) -> None:
        """The log has no event from the cursor up to `through` (dropped): the cursor moves on."""
        self.cursor = max(self.cursor, through + 1)

    def acked(self, sid: str, seq: int) -> list[int]:
        """Member `sid` consumed everything up to its `seq`: the group's seqs that settles."""
        member = self.members.get(sid)
        if member is None:
            return []
        done: list[int] = []
        assigned = member.assigned
        while assigned and assigned[0][0] <= seq:
            done.append(assigned.popleft()[1])
        return done

    @property
    def held(self) -> int:
        """Events handed to members and not acknowledged yet."""
        return sum(len(member.assigned) for member in self.members.values())
