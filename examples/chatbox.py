"""A chat box: people publish and subscribe on a channel's subject, and nothing else is needed.

A channel is announced once, as a retained event on `chat.channels.<channel>`: whoever comes
later still finds it, although the program that announced it has long stopped. The lines people
type go to `chat.<channel>`; only the event server carries them.

    .venv/bin/python examples/chatbox.py                      # announce "lobby", then let
                                                              # alice and bob chat in it
    .venv/bin/python examples/chatbox.py announce garden      # announce a channel, and leave
    .venv/bin/python examples/chatbox.py chat carol garden    # join channel garden as carol
                                                              # (the first one announced if
                                                              # none is named), type lines,
                                                              # Ctrl-D to leave

Run `make run` first; ES_URI picks another event server.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from clients import Event, Publisher, Subscriber

CHANNELS = r"^chat\.channels\."


def announce(channel: str) -> None:
    with Publisher() as pub:
        pub.publish(f"chat.channels.{channel}", {"channel": channel}, retain=True, confirm=True)
    print(f"announced {channel}")


def channels(timeout: float = 5.0) -> list[str]:
    """The channels announced so far (their retained events come first to a new subscription)."""
    with Subscriber() as sub:
        sub.subscribe_match(CHANNELS)
        found = []
        while (event := sub.next(timeout if not found else 0.2)) is not None:
            found.append(event.msg["channel"])
    return found


class Inbox(Subscriber):
    """A subscriber that hands each event to a function."""

    def __init__(self, handle: Callable[[Event], None]) -> None:
        super().__init__()
        self.handle = handle

    def event(self, event: Event) -> None:
        self.handle(event)


class Chatter:
    """One person in one channel: says lines, and prints the others'."""

    def __init__(self, name: str, channel: str) -> None:
        self.name, self.channel = name, channel
        self.heard: list[str] = []
        self.inbox = Inbox(self.hear)
        self.inbox.subscribe(f"chat.{channel}")
        self.out = Publisher()

    def hear(self, event: Event) -> None:
        line = event.msg
        if line["from"] != self.name:
            self.heard.append(line["text"])
            print(f"[{self.channel}] {self.name} hears {line['from']}: {line['text']}")

    def say(self, text: str) -> None:
        self.out.publish(f"chat.{self.channel}", {"from": self.name, "text": text})

    def listen_until(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.heard) < count and time.monotonic() < deadline:
            self.inbox.process_pending()
            self.inbox.socket.poll(100)

    def close(self) -> None:
        self.out.close()
        self.inbox.close()


def demo() -> None:
    announcer = subprocess.run([sys.executable, __file__, "announce", "lobby"], timeout=60)
    if announcer.returncode != 0:
        raise SystemExit("the announcer failed")
    found = channels()
    print(f"the announcer has stopped; channels found: {', '.join(found)}")
    alice, bob = Chatter("alice", found[0]), Chatter("bob", found[0])
    try:
        alice.say("hi bob")
        bob.say("hi alice")
        alice.say("the announcer is gone, and we still talk")
        bob.say("the event server carries it all")
        alice.listen_until(2)
        bob.listen_until(2)
    finally:
        alice.close()
        bob.close()
    print(f"{len(alice.heard) + len(bob.heard)} lines heard")


def chat(name: str, channel: str | None) -> None:
    found = channels()
    if not found:
        raise SystemExit("no channel announced yet: chatbox.py announce NAME")
    if channel is not None and channel not in found:
        raise SystemExit(f"no channel {channel!r} announced; there are: {', '.join(found)}")
    joined = channel or found[0]
    me = Chatter(name, joined)
    threading.Thread(target=me.inbox.listen, daemon=True).start()
    print(f"in {joined} as {name}; type lines, Ctrl-D to leave")
    try:
        for line in sys.stdin:
            me.say(line.rstrip("\n"))
    finally:
        me.inbox.abort()
        me.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", nargs="?", choices=["announce", "chat"])
    parser.add_argument("name", nargs="?", help="the channel to announce, or your name")
    parser.add_argument("channel", nargs="?", help="with chat: the channel to join")
    args = parser.parse_args()
    if args.part == "announce":
        announce(args.name or "lobby")
    elif args.part == "chat":
        chat(args.name or "guest", args.channel)
    else:
        demo()


if __name__ == "__main__":
    main()
