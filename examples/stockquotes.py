"""Pyro's stockquotes example: a quote feed, and two subscribers that listen to parts of it.

The feed publishes a price for each symbol on `STOCKQUOTE.<SYMBOL>` (a random walk). One
subscriber takes the exact subject `stockquote.sun`, spelled in lower case: subjects ignore case.
The other takes the pattern `^STOCKQUOTE\\.S.*$`: SUN and SAP, not IBM or MSFT.

    .venv/bin/python examples/stockquotes.py             # all three together, then a summary
    .venv/bin/python examples/stockquotes.py feed        # only the feed, until Ctrl-C
    .venv/bin/python examples/stockquotes.py exact       # only the exact subscriber
    .venv/bin/python examples/stockquotes.py pattern     # only the pattern subscriber

Run `make run` first; ES_URI picks another event server.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import threading
import time

from clients import Event, Publisher, Subscriber

SYMBOLS = {"SUN": 22.44, "SAP": 104.10, "IBM": 120.50, "MSFT": 310.25}
EXACT = "stockquote.sun"
PATTERN = r"^STOCKQUOTE\.S.*$"


def feed(rounds: int | None, interval: float, say: bool = False) -> int:
    """Publish one quote per symbol per round (forever when `rounds` is None); return how many.
    With `say`, print what it does: a line at the start, and each round's prices."""
    prices = dict(SYMBOLS)
    published = 0
    with Publisher() as publisher:
        if say:
            where = f"STOCKQUOTE.<SYMBOL> at {publisher.es_uri}"
            print(f"feeding {len(prices)} symbols on {where} every {interval:g} s", flush=True)
        while rounds is None or published < rounds * len(prices):
            for symbol in prices:
                prices[symbol] = round(max(0.01, prices[symbol] * random.gauss(1.0, 0.01)), 2)
                publisher.publish(f"STOCKQUOTE.{symbol}", (symbol, prices[symbol]))
                published += 1
            if say:
                quotes = ", ".join(f"{symbol} {price}" for symbol, price in prices.items())
                print(f"published {published}: {quotes}", flush=True)
            time.sleep(interval)
    return published


_printing = threading.Lock()


def say(line: str) -> None:
    """Print a whole line: threads that print at once would mix their lines up."""
    with _printing:
        print(line, flush=True)


class Ticker(Subscriber):
    """Prints each quote it gets, and counts them per symbol."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self.counts: dict[str, int] = {}

    def event(self, event: Event) -> None:
        symbol, price = event.msg
        self.counts[symbol] = self.counts.get(symbol, 0) + 1
        say(f"{self.label:<8} {event.subject:<18} {symbol:<5} {price:9.2f}")


def ticker(label: str, subscribe: str) -> Ticker:
    sub = Ticker(label)
    if label == "pattern":
        sub.subscribe_match(subscribe)
    else:
        sub.subscribe(subscribe)
    return sub


def take(sub: Ticker, count: int) -> None:
    """Handle events until `count` arrived (or 30 s passed): listen() with an end."""
    deadline = time.monotonic() + 30
    while sum(sub.counts.values()) < count and time.monotonic() < deadline:
        event = sub.next(timeout=1.0)
        if event is not None:
            sub.event(event)


def together(rounds: int) -> None:
    """Subscribe both, run the feed for `rounds`, and say what each subscriber received."""
    subs = [ticker("exact", EXACT), ticker("pattern", PATTERN)]
    wanted = {"exact": rounds, "pattern": 2 * rounds}  # SUN; SUN and SAP
    threads = [threading.Thread(target=take, args=(sub, wanted[sub.label])) for sub in subs]
    for thread in threads:
        thread.start()
    published = feed(rounds, interval=0.05)
    for thread in threads:
        thread.join()
    print(f"published {published} quotes")
    for sub in subs:
        counts = ", ".join(f"{s} {n}" for s, n in sorted(sub.counts.items()))
        print(f"{sub.label} subscriber received {sum(sub.counts.values())}: {counts}")
        sub.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", nargs="?", choices=["feed", "exact", "pattern"])
    parser.add_argument("--rounds", type=int, default=5, help="quotes per symbol (together)")
    args = parser.parse_args()
    if args.part is None:
        together(args.rounds)
    elif args.part == "feed":
        feed(None, interval=1.0, say=True)
    else:
        with ticker(args.part, EXACT if args.part == "exact" else PATTERN) as sub:
            sub.listen()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a part that runs until stopped
        main()
