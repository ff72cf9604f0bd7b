// Durable subscribers (SPEC 7.10) in the subscriber, without a server: the duplicate rule
// (lib/streams.js), and the subscriber fed fake inbox frames (routing id, EV header) by a stand-in
// inbox that records what it sends back: duplicates dropped and still acknowledged, ACKs to every
// recent connection of the stream; a stand-in keeper for SUB options, `replaced` and close(). The
// live cases (a durable subscriber killed and started again) are in
// tests/integration/test_durable_subscribers.py.

import assert from "node:assert/strict";
import { test } from "node:test";
import { decode, encode } from "@msgpack/msgpack";
import { Servers, Streams } from "../lib/streams.js";
import { Subscriber } from "../lib/subscriber.js";
import { pack } from "../lib/wire.js";
import { consume, feed, subscriber } from "./standin.js";

test("a batch that starts below the seq expected is sent again: duplicates dropped, lost told once", () => {
  const streams = new Streams();
  assert.deepEqual(streams.batch(7, 1, 10, 0), [0, 0]);
  assert.deepEqual(streams.batch(7, 5, 5, 0), [0, 1]); // had already
  assert.deepEqual(streams.batch(7, 8, 12, 3), [0, 3]); // 8 to 10 had; the loss before 8 was told
  assert.deepEqual(streams.batch(7, 13, 13, 0), [0, 0]); // still expects 13
  assert.deepEqual(streams.batch(7, 16, 16, 2), [2, 0]); // told 2, gap 2
  assert.deepEqual(streams.batch(7, 20, 20, 1), [3, 0]); // told 1, but 17 to 19 are missing
  assert.deepEqual(streams.batch(7, 3, 4, 0), [0, 2]); // an old batch does not move the seq back
  assert.deepEqual(streams.batch(7, 21, 21, 0), [0, 0]);
});

test("a stream not heard of before counts no gap: a durable name's stream may be far along", () => {
  const streams = new Streams();
  assert.deepEqual(streams.batch(9, 1001, 1002, 0), [0, 0]); // an earlier holder consumed 1 to 1000
  assert.equal(new Streams().notice(9, 1500, 5), 5);
  assert.equal(streams.notice(9, 1010, 5), 8); // 1003 to 1010: the gap is larger
});

test("the connections of a stream: at most four, oldest first; at most eight streams", () => {
  const servers = new Servers();
  const id = (n) => Buffer.from([0, n]);
  for (const n of [1, 2, 1, 3, 4, 5]) servers.heard(7, id(n));
  assert.deepEqual(servers.of(7), [id(1), id(3), id(4), id(5)]); // 1 heard again: newer than 2
  servers.heard(7, Buffer.from([0, 5])); // the newest again: nothing changes
  assert.deepEqual(servers.of(7), [id(1), id(3), id(4), id(5)]);
  for (let stream = 100; stream < 108; stream++) servers.heard(stream, id(9));
  assert.deepEqual(servers.of(7), []); // heard least recently: forgotten
  assert.deepEqual(servers.of(107), [id(9)]);
});

// --- the subscriber, fed fake frames -------------------------------------------------------------

/** Feed `sub` deliveries (a routing id and an EV of messages from seq `first`) through its inbox;
 * resolves once all were read. The inbox records what the subscriber sends back (ACKs). */
async function deliver(sub, ...deliveries) {
  const frames = deliveries.map(({ server, stream, lost = 0, first, messages }) => [
    Buffer.from(server),
    pack([1, "EV", sub.sid, stream, lost, first, messages.map(() => ["s", 1.5, 1]), messages.map((m) => encode(m))]),
  ]);
  await feed(sub, frames);
}

/** The ACKs sent: [routing id as text, seq]. */
const acks = (sub) =>
  sub._inbox.sent.map(([server, header]) => {
    const [, command, , sid, seq] = decode(header);
    assert.deepEqual([command, sid], ["ACK", sub.sid]);
    return [server.toString(), seq];
  });

const turn = () => new Promise((resolve) => setImmediate(resolve));
const dry = () => new Promise((resolve) => setTimeout(resolve, 120)); // past ACK_DRY

test("events sent again are dropped: the program sees each once, and a loss is told once", async () => {
  const { sub } = subscriber({ durable: "billing" });
  await deliver(sub, { server: "a", stream: 7, lost: 3, first: 4, messages: ["d", "e", "f"] });
  // The connection broke before our ACK: the server sends again from the last one acknowledged.
  await deliver(sub, { server: "b", stream: 7, lost: 3, first: 4, messages: ["d", "e", "f", "g"] });
  const events = await consume(sub);
  assert.deepEqual(
    events.map((e) => [e.msg, e.seq, e.lost]),
    [
      ["d", 4, 3],
      ["e", 5, 0],
      ["f", 6, 0],
      ["g", 7, 0],
    ],
  );
  assert.equal(sub.lost, 3);
  await sub.close();
});

test("an ACK goes to every recent connection of the stream of the last event, oldest first", async () => {
  const { sub } = subscriber({ durable: "billing" });
  await deliver(
    sub,
    { server: "other", stream: 8, first: 1, messages: ["x"] }, // another stream: not told
    { server: "old", stream: 7, first: 1, messages: [1, 2] },
    { server: "new", stream: 7, first: 2, messages: [2, 3] }, // a new connection, 2 sent again
  );
  assert.deepEqual(
    (await consume(sub)).map((e) => e.msg),
    ["x", 1, 2, 3],
  );
  sub._ack();
  await turn();
  assert.deepEqual(acks(sub), [
    ["old", 3],
    ["new", 3],
  ]);
  await sub.close();
});

test("a batch of duplicates only is acknowledged all the same: the server waits for that room", async () => {
  const { sub } = subscriber({ durable: "billing" });
  await deliver(sub, { server: "a", stream: 7, first: 1, messages: [1, 2, 3] });
  await consume(sub);
  await dry();
  assert.deepEqual(acks(sub), [["a", 3]]);
  sub._inbox.sent.length = 0;
  await deliver(sub, { server: "b", stream: 7, first: 2, messages: [2, 3] }); // back after a restart
  assert.equal(sub._queue.length, 0); // nothing new for the program
  await dry();
  assert.deepEqual(acks(sub), [
    ["a", 3],
    ["b", 3],
  ]);
  await sub.close();
});

test("the durable name goes in the options of every SUB and SUBMATCH", async () => {
  const { sub, requests } = subscriber({ durable: "billing", policy: "block" });
  await sub.subscribe("orders");
  await sub.subscribeMatch("^invoices\\.");
  assert.deepEqual(
    requests.map((m) => [m.type, m.options.durable, m.options.policy]),
    [
      ["SUB", "billing", "block"],
      ["SUBMATCH", "billing", "block"],
    ],
  );
  assert.equal(sub.durable, "billing");
  assert.equal(new Subscriber({ esUri: "tcp://127.0.0.1:1" }).durable, null);
  assert.throws(() => new Subscriber({ esUri: "tcp://127.0.0.1:1", durable: "" }), TypeError);
});

test("replaced: another subscriber took the durable name; told once, never subscribed again", async (t) => {
  const heartbeats = [{ known: false, evicted: "replaced" }, { known: false }];
  const { sub } = subscriber({ durable: "billing" }, () => heartbeats.shift());
  sub._subjects.add("orders");
  const told = [];
  sub.on("replaced", (name) => told.push(name));
  assert.equal(await sub._probe(sub._keeper.control, 2), true); // intact: nothing to replay
  assert.equal(await sub._probe(sub._keeper.control, 2), true); // known: false, but replaced
  assert.equal(sub.replaced, true);
  assert.deepEqual(told, ["billing"]);

  // Without a "replaced" listener, a process warning says it.
  const warn = t.mock.method(process, "emitWarning", () => {});
  const other = subscriber({ durable: "audit" }, () => ({ known: false, evicted: "replaced" })).sub;
  other._subjects.add("orders");
  assert.equal(await other._probe(other._keeper.control, 2), true);
  assert.equal(warn.mock.callCount(), 1);
  assert.match(warn.mock.calls[0].arguments[0], /"audit" was taken by another subscriber/);

  // Any other reason: subscribe again (the server keeps a durable subscriber's events meanwhile).
  const away = subscriber({ durable: "ledger" }, () => ({ known: false, evicted: "silent" })).sub;
  away._subjects.add("orders");
  assert.equal(await away._probe(away._keeper.control, 2), false);
  assert.equal(away.replaced, false);
});

test("close() leaves a durable subscriber subscribed; any other unsubscribes", async () => {
  const durable = subscriber({ durable: "billing" });
  await durable.sub.subscribe("orders");
  await durable.sub.close();
  assert.deepEqual(
    durable.requests.map((m) => m.type),
    ["SUB"],
  );
  const plain = subscriber();
  await plain.sub.subscribe("orders");
  await plain.sub.close();
  assert.deepEqual(
    plain.requests.map((m) => [m.type, m.subjects]),
    [
      ["SUB", ["orders"]],
      ["UNSUB", ["orders"]],
    ],
  );
});

test("subscribing again, a durable subscriber whose events were kept marks nothing resumed", async () => {
  for (const [kept, resumed] of [
    [true, false],
    [false, true],
    [undefined, true],
  ]) {
    const { sub, requests } = subscriber({ durable: "d" }, () => ({ count: 2, kept }));
    sub._subjects.add("a");
    sub._patterns.add("^b");
    await sub._replay(sub._keeper.control);
    assert.deepEqual(
      requests.map((r) => r.type),
      ["SUB", "SUBMATCH"],
    );
    assert.equal(sub._resumed, resumed);
  }
});
