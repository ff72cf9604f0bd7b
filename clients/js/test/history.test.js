// History and replay (SPEC 7.11) in the subscriber, without a server: the option `history` checked
// and sent on the wire, what a reply tells (`historyStream`, `replayed`), the flags on events, and
// what a subscriber asks when it subscribes again after the server forgot it (the history after
// the last event of it it got; nothing for a durable subscriber). A stand-in keeper answers the
// requests and a stand-in inbox is fed EV frames, as in durable.test.js. The live cases are in
// tests/integration.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { decode, encode } from "@msgpack/msgpack";
import { Subscriber, askedHistory } from "../lib/subscriber.js";
import { decodeDelivery, encodeRequest, pack } from "../lib/wire.js";
import { consume, feed, subscriber } from "./standin.js";

const vectors = JSON.parse(readFileSync(new URL("../../wire/vectors.json", import.meta.url), "utf8"));

/** Feed `sub` one EV of `flags` (one map, or null for none, per event) from seq `first`. */
async function deliver(sub, { stream = 7, first = 1, flags }) {
  const metas = flags.map((f) => (f === null ? ["orders.eu", 1.5, 1] : ["orders.eu", 1.5, 1, f]));
  const frames = [Buffer.from("a"), pack([1, "EV", sub.sid, stream, 0, first, metas, flags.map((_, i) => encode(i))])];
  await feed(sub, [frames]);
}

/** The options map of a SUB or SUBMATCH as it goes on the wire (header field 6). */
const sent = (request) => decode(encodeRequest(request)[0])[6];

test("history: one of last, since and from, and stream only with from; anything else a TypeError", () => {
  assert.equal(askedHistory(undefined), null);
  assert.equal(askedHistory(null), null);
  assert.deepEqual(askedHistory({ last: 100 }), { last: 100 });
  assert.deepEqual(askedHistory({ last: 0 }), { last: 0 });
  assert.deepEqual(askedHistory({ since: 1767225000.5 }), { since: 1767225000.5 });
  assert.deepEqual(askedHistory({ since: -1 }), { since: -1 }); // a time, any finite one
  assert.deepEqual(askedHistory({ from: 1 }), { from: 1 });
  assert.deepEqual(askedHistory({ from: 5001, stream: 77 }), { from: 5001, stream: 77 });
  assert.deepEqual(askedHistory({ last: 3, since: undefined, stream: null }), { last: 3 }); // not given
  assert.deepEqual(askedHistory({ from: 2 ** 53 - 1, stream: 2 ** 53 - 1 }), {
    from: 2 ** 53 - 1,
    stream: 2 ** 53 - 1,
  });
  for (const bad of [
    {},
    { last: 1, since: 2 },
    { since: 1.5, from: 3 },
    { last: 1, from: 1 },
    { last: -1 },
    { last: 1.5 },
    { last: "10" },
    { last: 2 ** 53 },
    { since: NaN },
    { since: Infinity },
    { since: "2026-01-01" },
    { from: 0 },
    { from: 1.5 },
    { from: 2 ** 53 },
    { from: 1, stream: 0 },
    { from: 1, stream: "77" },
    { last: 5, stream: 9 },
    { since: 5, stream: 9 },
    { stream: 9 },
    { first: 10 },
    { last: 1, extra: true },
    [1],
    "last",
    10,
    true,
  ]) {
    assert.throws(() => askedHistory(bad), TypeError, JSON.stringify(bad));
  }
});

test("subscribe and subscribeMatch send history as the option history; a bad one is sent nowhere", async () => {
  const { sub, requests } = subscriber({ policy: "drop" });
  assert.equal(await sub.subscribe("orders.eu", { history: { last: 100 } }), 1);
  await sub.subscribeMatch("orders\\..*", { history: { from: 5001, stream: 77 } });
  await sub.subscribe(["a", "b"], { history: { since: 1767225000 } });
  await sub.subscribe("c"); // the option applies to its own request only
  await sub.subscribeMatch("^d", {});
  assert.deepEqual(requests.map(sent), [
    { policy: "drop", history: { last: 100 } },
    { policy: "drop", history: { from: 5001, stream: 77 } },
    { policy: "drop", history: { since: 1767225000 } },
    { policy: "drop" },
    { policy: "drop" },
  ]);
  assert.deepEqual(sub.options, new Subscriber({ esUri: "tcp://127.0.0.1:1", policy: "drop" }).options);

  for (const options of [{ history: { last: -1 } }, { history: { since: 1, stream: 2 } }, { last: 10 }, null, 5]) {
    await assert.rejects(sub.subscribe("e", options), TypeError);
    await assert.rejects(sub.subscribeMatch("^e", options), TypeError);
  }
  assert.equal(requests.length, 5);
  assert.deepEqual(sub.subscriptions, [new Set(["orders.eu", "a", "b", "c"]), new Set(["orders\\..*", "^d"])]);
});

test("the reply's history stream and replayed count are kept; the result is still the count", async () => {
  const replies = [
    { count: 1, stream: 3, heartbeat: 5, queue: 1000 },
    { count: 2, stream: 3, heartbeat: 5, queue: 1000, history: 77, replayed: 12 },
    { count: 3, stream: 3, heartbeat: 5, queue: 1000 },
    { count: 4, stream: 3, heartbeat: 5, queue: 1000, history: 77, replayed: 0 },
  ];
  const { sub } = subscriber({}, () => replies.shift());
  assert.deepEqual([sub.historyStream, sub.replayed], [null, 0]);
  assert.equal(await sub.subscribe("a"), 1);
  assert.deepEqual([sub.historyStream, sub.replayed], [null, 0]);
  assert.equal(await sub.subscribe("b", { history: { last: 12 } }), 2);
  assert.deepEqual([sub.historyStream, sub.replayed], [77, 12]);
  assert.equal(await sub.subscribe("c"), 3); // a request without history changes neither
  assert.deepEqual([sub.historyStream, sub.replayed], [77, 12]);
  assert.equal(await sub.subscribeMatch("^d", { history: { from: 900, stream: 77 } }), 4);
  assert.deepEqual([sub.historyStream, sub.replayed], [77, 0]);
});

test("events carry their history seq and replayed flag; null and false without them", async () => {
  const { sub } = subscriber();
  await deliver(sub, {
    flags: [{ history: 5001, replayed: true }, { history: 5002 }, null, { retained: true }, { history: 9, other: 1 }],
  });
  const events = await consume(sub);
  assert.deepEqual(
    events.map((e) => [e.seq, e.history, e.replayed, e.retained]),
    [
      [1, 5001, true, false],
      [2, 5002, false, false],
      [3, null, false, false],
      [4, null, false, true],
      [5, 9, false, false],
    ],
  );
  await sub.close();
});

test("a history flag that is not a seq is ignored, as unknown flags are; so is replayed not true", () => {
  const ev = (flags) =>
    decodeDelivery([pack([1, "EV", "s", 1, 0, 1, [["x", 1.5, 1, flags]], [Buffer.from("p")]])]).events[0];
  for (const history of [0, -1, 1.5, "5", true, 2 ** 53, null]) {
    assert.equal("history" in ev({ history }), false, String(history));
  }
  assert.equal(ev({ history: 2 ** 53 - 1 }).history, 2 ** 53 - 1);
  for (const replayed of [1, "true", false, null]) assert.equal("replayed" in ev({ replayed }), false);
});

test("subscribing again, a subscriber that asked for history asks for the history after the last event it got", async () => {
  const { sub, requests } = subscriber({ policy: "block" }, (m) =>
    m.options?.history ? { count: 2, history: 77, replayed: 3 } : { count: 2 },
  );
  await sub.subscribe("orders.eu", { history: { last: 3 } });
  await sub.subscribeMatch("^audit\\.");
  await deliver(sub, {
    first: 1,
    flags: [{ history: 5001, replayed: true }, { history: 5003, replayed: true }, null, { history: 5002 }],
  });
  await consume(sub);
  requests.length = 0;
  await sub._replay(sub._keeper.control);
  assert.deepEqual(
    requests.map((r) => [r.type, sent(r)]),
    [
      ["SUB", { policy: "block", history: { from: 5004, stream: 77 } }],
      ["SUBMATCH", { policy: "block", history: { from: 5004, stream: 77 } }],
    ],
  );

  // Events sent again (below the seq expected) are not new: they move nothing. New ones do.
  await deliver(sub, { first: 2, flags: [{ history: 9000 }, null, null, { history: 5004 }] });
  await consume(sub);
  requests.length = 0;
  await sub._replay(sub._keeper.control);
  assert.deepEqual(
    requests.map((r) => sent(r).history),
    [
      { from: 5005, stream: 77 },
      { from: 5005, stream: 77 },
    ],
  );
  await sub.close();
});

test("subscribing again: from 1 before any event; the stream of the last reply that told one, or none", async () => {
  let stream = null;
  const { sub, requests } = subscriber({}, () =>
    stream === null ? { count: 1 } : { count: 1, history: stream, replayed: 0 },
  );
  await sub.subscribe("a", { history: { since: 0 } }); // a server that tells no stream
  await sub._replay(sub._keeper.control);
  assert.deepEqual(sent(requests.at(-1)).history, { from: 1 });

  stream = 41; // then one that does: the reply to subscribing again tells it
  await sub._replay(sub._keeper.control);
  assert.deepEqual(sent(requests.at(-1)).history, { from: 1 });
  assert.equal(sub.historyStream, 41);
  await sub._replay(sub._keeper.control);
  assert.deepEqual(sent(requests.at(-1)).history, { from: 1, stream: 41 });

  stream = null; // a reply without one leaves the last one told
  await deliver(sub, { flags: [{ history: 6 }] });
  await sub._replay(sub._keeper.control);
  await sub._replay(sub._keeper.control);
  assert.deepEqual(
    requests.slice(-2).map((r) => sent(r).history),
    [
      { from: 7, stream: 41 },
      { from: 7, stream: 41 },
    ],
  );
  await sub.close();
});

test("subscribing again, a durable subscriber or one that never asked for history asks for none", async () => {
  const reply = () => ({ count: 1, history: 77, replayed: 2, kept: true });
  const durable = subscriber({ durable: "billing" }, reply);
  await durable.sub.subscribe("orders.eu", { history: { last: 2 } });
  assert.deepEqual(sent(durable.requests[0]), { durable: "billing", history: { last: 2 } });
  const never = subscriber({}, reply);
  await never.sub.subscribe("orders.eu");
  await never.sub.subscribeMatch("^audit\\.");
  for (const { sub, requests } of [durable, never]) {
    await deliver(sub, { flags: [{ history: 5001, replayed: true }, { history: 5002 }] });
    await consume(sub);
    requests.length = 0;
    await sub._replay(sub._keeper.control);
    assert.ok(requests.length > 0);
    for (const request of requests) assert.equal("history" in sent(request), false);
    await sub.close();
  }
});

test("the spec's SUB vectors with a bad history are refused here too, as is a durable name starting $", () => {
  const subs = (list) =>
    list
      .filter((v) => v.kind === "request" && v.frames.length)
      .map((v) => {
        try {
          return decode(Buffer.from(v.frames[0], "hex"));
        } catch {
          return null; // not msgpack: not one of these
        }
      })
      .filter((h) => Array.isArray(h) && ["SUB", "SUBMATCH"].includes(h[1]));
  const valid = vectors.valid.filter((v) => v.kind === "request" && v.message.options?.history);
  assert.ok(valid.length >= 2);
  for (const v of valid) assert.deepEqual(askedHistory(v.message.options.history), v.message.options.history);
  const invalid = subs(vectors.invalid).filter((h) => h[6] instanceof Object && "history" in h[6]);
  assert.ok(invalid.length >= 3);
  for (const h of invalid) assert.throws(() => askedHistory(h[6].history), TypeError, JSON.stringify(h[6]));
  const reserved = subs(vectors.refused).filter((h) => h[6] instanceof Object && String(h[6].durable).startsWith("$"));
  assert.ok(reserved.length >= 1);
  for (const h of reserved) {
    assert.throws(() => new Subscriber({ esUri: "tcp://127.0.0.1:1", durable: h[6].durable }), TypeError);
  }
});

test("a reply from another history (the server restarted on memory storage) starts the seqs again", async () => {
  let stream = 77;
  const { sub, requests } = subscriber({}, () => ({ count: 1, history: stream, replayed: 0 }));
  await sub.subscribe("orders.eu", { history: { last: 1 } });
  await deliver(sub, { flags: [{ history: 900 }] });
  await consume(sub);
  stream = 78; // a new history: its seqs begin at 1 again
  await sub._replay(sub._keeper.control);
  assert.deepEqual(sent(requests.at(-1)).history, { from: 901, stream: 77 }); // gets it all
  await sub._replay(sub._keeper.control);
  assert.deepEqual(sent(requests.at(-1)).history, { from: 1, stream: 78 });
  await sub.close();
});
