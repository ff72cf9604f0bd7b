"""Pyro's countingcars example: cars drive by, and counters count them, one direction at a time.

A producer publishes each car on `CARS.HEADING.<direction>`. Each counter counts a few cars going
one way; then, from inside its event handler, it unsubscribes from that direction and subscribes
to the next. After the last direction it calls `abort()`, which ends its `listen()`.

    .venv/bin/python examples/countingcars.py                 # 2 counters, 3 cars a direction
    .venv/bin/python examples/countingcars.py --counters 4 --cars 5

Run `make run` first; ES_URI picks another event server.
"""

from __future__ import annotations

import argparse
import itertools
import random
import threading
import time

from clients import Event, Publisher, Subscriber

DIRECTIONS = ["north", "east", "south", "west"]


_printing = threading.Lock()


def say(line: str) -> None:
    """Print a whole line: threads that print at once would mix their lines up."""
    with _printing:
        print(line, flush=True)


class Counter(Subscriber):
    """Counts `per_direction` cars heading each way, one direction after the other."""

    def __init__(self, name: str, per_direction: int, first: int) -> None:
        super().__init__()
        self.name = name
        self.per_direction = per_direction
        self.order = DIRECTIONS[first:] + DIRECTIONS[:first]  # counters start in different places
        self.position = 0
        self.counted: dict[str, int] = {}
        self.subscribe(self.subject)

    @property
    def subject(self) -> str:
        return f"CARS.HEADING.{self.order[self.position].upper()}"

    def event(self, event: Event) -> None:
        if event.subject.lower() != self.subject.lower():
            return  # a car of the direction counted before, still on its way: not ours now
        direction = self.order[self.position]
        self.counted[direction] = self.counted.get(direction, 0) + 1
        if self.counted[direction] < self.per_direction:
            return
        say(f"{self.name}: {self.per_direction} cars heading {direction}")
        self.unsubscribe(self.subject)  # from inside the event handler: allowed
        self.position += 1
        if self.position < len(self.order):
            self.subscribe(self.subject)
        else:
            self.abort()  # every direction counted: listen() returns


def produce(done: threading.Event, seconds: float) -> int:
    """Cars in random directions, a few hundred a second, until every counter is done."""
    cars = 0
    deadline = time.monotonic() + seconds
    with Publisher() as road:
        for cars in itertools.count(1):
            if done.is_set() or time.monotonic() > deadline:
                break
            direction = random.choice(DIRECTIONS)
            road.publish(f"cars.heading.{direction}", {"car": cars, "heading": direction})
            time.sleep(0.002)
    return cars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counters", type=int, default=2)
    parser.add_argument("--cars", type=int, default=3, help="cars each counter counts a direction")
    args = parser.parse_args()
    counters = [Counter(f"counter {n}", args.cars, n % 4) for n in range(1, args.counters + 1)]
    threads = [threading.Thread(target=c.listen, kwargs={"timeout": 60}) for c in counters]
    for thread in threads:
        thread.start()
    done = threading.Event()
    producer = threading.Thread(target=lambda: print(f"{produce(done, 60)} cars drove by"))
    producer.start()
    for thread in threads:
        thread.join()
    done.set()
    producer.join()
    for counter in counters:
        finished = all(counter.counted.get(d) == args.cars for d in DIRECTIONS)
        print(f"{counter.name} finished: {finished}")
        counter.close()


if __name__ == "__main__":
    main()
