// What the subscriber's tests share: a subscriber with no sockets, whose keeper answers requests
// with a stand-in, and an inbox fed with frames made by the test (durable, history and groups).

import { Subscriber } from "../lib/subscriber.js";

/** A subscriber never started (no sockets), with a stand-in keeper answering `reply(message)`;
 * `requests` records what it sent on its control connection (an ACK there too, unanswered). */
export function subscriber(options = {}, reply = () => ({ count: 1 })) {
  const sub = new Subscriber({ esUri: "tcp://127.0.0.1:1", ...options });
  const requests = [];
  const control = {
    request: async (build) => {
      const message = build(requests.length + 1);
      requests.push(message);
      return reply(message);
    },
    send: async (build) => {
      requests.push(build(requests.length + 1));
    },
  };
  sub._keeper = { control, interval: 2, call: async (action) => action(control), close() {} };
  sub.endpoint = "tcp://127.0.0.1:5555";
  return { sub, requests };
}

/** Feed `sub` these messages (each a list of frames) through its inbox; resolves once all were
 * read. The inbox records what the subscriber sends back (ACKs) in `sub._inbox.sent`. */
export async function feed(sub, messages) {
  sub._inbox ??= { sent: [], send: async (frames) => sub._inbox.sent.push(frames), close() {} };
  sub._inbox[Symbol.asyncIterator] = async function* () {
    yield* messages;
  };
  await sub._readInbox();
}

/** The events waiting, consumed as the program would: it then asks for another, finds none, and
 * so is done with the last one. */
export async function consume(sub) {
  const events = [];
  while (sub._queue.length) events.push(await sub.next());
  await sub.next(0);
  return events;
}
