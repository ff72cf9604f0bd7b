"""Publish and subscribe in one small program: the README's first example.

Run an event server first (`make run`), then: `.venv/bin/python examples/quickstart.py`.
Set ES_URI to use another server.
"""

from __future__ import annotations

from clients import Event, Publisher, Subscriber


class Quotes(Subscriber):
    """Prints every quote; stops after the third."""

    received = 0

    def event(self, event: Event) -> None:
        symbol, price = event.msg
        print(f"{event.subject:<16} {symbol:<4} {price:8.2f}  (seq {event.seq})")
        self.received += 1
        if self.received == 3:
            self.abort()


def main() -> None:
    with Quotes() as quotes, Publisher() as publisher:
        quotes.subscribe("StockQuotes")  # subjects are case-insensitive
        quotes.subscribe_match(r"^STOCKQUOTE\.S.*$")  # a pattern, also case-insensitive
        publisher.publish("stockquotes", ("SUN", 22.44))
        publisher.publish(["stockquote.sun", "stockquote.ibm", "stockquote.sap"], ("MIX", 1.5))
        quotes.listen(timeout=30)  # returns after abort(), or after 30 s
    print(f"received {quotes.received} events")


if __name__ == "__main__":
    main()
