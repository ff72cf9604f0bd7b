"""The two subscriber styles of Pyro 4's messagebus example, on one topic.

- The automatic one consumes each message as soon as it arrives: `listen()` calls its `event()`
  in a thread of its own.
- The manual one has its own processing loop: messages wait in its queue (the server's, then its
  inbox) until the loop takes the next one with `next()`, at its own pace.

    .venv/bin/python examples/messagebus.py                  # 10 messages from "lab"
    .venv/bin/python examples/messagebus.py --messages 20 --location garden

Run `make run` first; ES_URI picks another event server.
"""

from __future__ import annotations

import argparse
import threading
import time

from clients import Event, Publisher, Subscriber

TOPIC = "weather.{location}"


_printing = threading.Lock()


def say(line: str) -> None:
    """Print a whole line: threads that print at once would mix their lines up."""
    with _printing:
        print(line, flush=True)


class Automatic(Subscriber):
    """Consumes each message as it arrives."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.received: list[int] = []

    def event(self, event: Event) -> None:
        self.received.append(event.msg["n"])
        say(f"automatic: {event.subject} {event.msg}")
        if len(self.received) == self.expected:
            self.abort()


def manual_loop(sub: Subscriber, expected: int) -> list[int]:
    """The program's own loop: take the next message when ready for it, process it slowly."""
    received: list[int] = []
    deadline = time.monotonic() + 30
    while len(received) < expected and time.monotonic() < deadline:
        event = sub.next(timeout=1.0)
        if event is None:
            continue
        received.append(event.msg["n"])
        say(f"manual:    {event.subject} {event.msg}")
        time.sleep(0.01)  # slower than the publisher: messages wait in the queue meanwhile
    return received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--location", default="lab")
    args = parser.parse_args()
    topic = TOPIC.format(location=args.location)
    with Automatic(args.messages) as automatic, Subscriber() as manual, Publisher() as bus:
        automatic.subscribe(topic)
        manual.subscribe(topic)
        listening = threading.Thread(target=automatic.listen, kwargs={"timeout": 30})
        listening.start()
        for n in range(args.messages):
            bus.publish(topic, {"n": n, "temperature": round(18 + n * 0.1, 1)})
        taken = manual_loop(manual, args.messages)
        listening.join()
    print(
        f"automatic subscriber received {len(automatic.received)} in order: "
        f"{automatic.received == list(range(args.messages))}"
    )
    print(
        f"manual subscriber received {len(taken)} in order: {taken == list(range(args.messages))}"
    )


if __name__ == "__main__":
    main()
