// The publisher with a stand-in for its connection keeper (no sockets): what close() throws (it
// tells the program what it has not been told, and nothing twice), how publishes are gathered,
// the size check and the flow control. The live cases (a key revoked while a publisher is
// connected, quick publishes in fewer PUBs) are in tests/integration/test_polyglot.py.

import assert from "node:assert/strict";
import { test } from "node:test";
import { decode } from "@msgpack/msgpack";
import { AuthFailed, BadSubject, ConnectionClosed, ErrorCode, TooLarge } from "../lib/errors.js";
import { MAX_ITEMS } from "../lib/outbox.js";
import { AHEAD, MARK_EVERY, Publisher } from "../lib/publisher.js";

/** A keeper whose server answers every call with `answer()`: a value, or an error to throw. */
function publisherWith(answer) {
  const pub = new Publisher({ esUri: "tcp://127.0.0.1:1" }); // never started: no sockets
  const control = {
    errors: [],
    takeError() {
      return this.errors.shift() ?? null;
    },
    send: async () => null,
    request: async () => ({}),
  };
  pub._keeper = {
    control,
    call: async (action) => {
      const outcome = answer();
      if (outcome instanceof Error) throw outcome;
      return action(control);
    },
    close() {},
  };
  return pub;
}

const refused = () => new AuthFailed(ErrorCode.AUTH_FAILED, "the server refused this client's key");

test("close() does not throw again the AuthFailed a publish threw", async () => {
  let outcome = null;
  const pub = publisherWith(() => outcome);
  await pub.publish("a", 1); // not flushed
  outcome = refused();
  await assert.rejects(pub.publish("a", 2, { confirm: true }), AuthFailed);
  await pub.close(); // the program knows: the connection is refused
});

test("close() throws AuthFailed for a publish that went out after the one refused", async () => {
  let outcome = refused();
  const pub = publisherWith(() => outcome);
  await assert.rejects(pub.publish("a", 1), AuthFailed);
  outcome = null;
  await pub.publish("a", 2); // went out: whether it arrived is news only close() can tell
  outcome = refused();
  await assert.rejects(pub.close(), AuthFailed);
});

test("close() throws what the server reported for an unconfirmed publish", async () => {
  let outcome = null;
  const pub = publisherWith(() => outcome);
  await pub.publish("a", 1);
  pub._keeper.control.errors.push(new BadSubject(ErrorCode.BAD_SUBJECT, "subject too long"));
  outcome = refused();
  await assert.rejects(pub.publish("a", 2, { confirm: true }), AuthFailed);
  outcome = null;
  await assert.rejects(pub.close(), BadSubject);
});

test("flush() after a refused publish throws AuthFailed while the refusal lasts", async () => {
  const pub = publisherWith(refused);
  await assert.rejects(pub.publish("a", 1), AuthFailed);
  await assert.rejects(pub.flush(), AuthFailed); // asked for: always answered
  await pub.close();
});

// --- gathering, the size check and flow control, with a stand-in keeper that records each message

/** A publisher whose server records every message (`sent`), answers PING with `limits`, and
 * answers a marked PUB only when the test calls `answer()`. */
function recording({ limits = {}, linger } = {}) {
  const pub = new Publisher({ esUri: "tcp://127.0.0.1:1", linger });
  const sent = [];
  const waiting = new Map(); // rid -> resolve, for marked PUBs
  let rid = 0;
  const control = {
    errors: [],
    takeError() {
      return this.errors.shift() ?? null;
    },
    send: async (build, mark) => {
      const message = build(++rid);
      sent.push({ ...message, mark });
      return rid;
    },
    request: async (build) => {
      const message = build(++rid);
      sent.push(message);
      if (message.type === "PING") return { server: "es", limits };
      return { receivers: 1 };
    },
    waitAnswered: (rid) => new Promise((resolve) => waiting.set(rid, resolve)),
    forget() {},
  };
  pub._keeper = { control, reconnections: 0, call: async (action) => action(control), close() {} };
  const answer = () => {
    for (const [rid, resolve] of waiting) {
      waiting.delete(rid);
      resolve(true);
    }
  };
  return { pub, sent, waiting, answer };
}

const pubs = (sent) => sent.filter((m) => m.type === "PUB");

test("quick publishes go out in fewer PUBs than events, in order, before a confirmed one", async () => {
  const { pub, sent } = recording();
  for (let i = 0; i < 600; i++) await pub.publish("quick", i);
  assert.equal(await pub.publish("quick", "confirmed", { confirm: true }), 1);
  const events = pubs(sent).flatMap((m) => m.items.map((item) => decode(item.payload)));
  assert.deepEqual(events, [...Array(600).keys(), "confirmed"]);
  assert.ok(pubs(sent).length < 10, `${pubs(sent).length} PUBs`);
  assert.ok(pubs(sent).every((m) => m.items.length <= MAX_ITEMS && m.inline === true));
  assert.equal(pubs(sent).at(-1).confirm, true);
  await pub.close();
  assert.equal(sent.at(-1).type, "PING"); // close() flushed
});

test("flush() sends what was gathered first, then asks the server (PING)", async () => {
  const { pub, sent } = recording();
  await pub.publish("a", 1);
  await pub.publish("a", 2); // gathered
  await pub.flush();
  assert.deepEqual(
    sent.map((m) => m.type),
    ["PUB", "PUB", "PING"],
  );
  await pub.close();
  assert.equal(sent.length, 3); // nothing published since the flush: closed at once
});

test("a payload over 1 MiB is checked against the server's max_message_bytes: TooLarge", async () => {
  const { pub, sent } = recording({ limits: { max_message_bytes: (1 << 20) + 10 } });
  await pub.publish("small", Buffer.alloc(1000)); // every server takes it: no PING
  assert.deepEqual(
    sent.map((m) => m.type),
    ["PUB"],
  );
  const error = await pub.publish("big", Buffer.alloc(2 << 20)).catch((err) => err);
  assert.ok(error instanceof TooLarge);
  assert.equal(error.code, ErrorCode.TOO_LARGE);
  await assert.rejects(pub.publish("big", Buffer.alloc(2 << 20), { confirm: true }), TooLarge);
  await pub.publish("fits", Buffer.alloc((1 << 20) + 1), { confirm: true });
  assert.deepEqual(
    sent.map((m) => m.type),
    ["PUB", "PING", "PUB"], // the limits asked once; nothing too large went out
  );
  assert.equal(sent.at(-1).inline, false); // large payloads travel as frames
});

test(`a publisher runs at most AHEAD (${AHEAD}) events ahead of the server's answers`, async () => {
  const { pub, sent, waiting, answer } = recording({ linger: 0 }); // one PUB per event
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  let published = 0;
  const publishing = (async () => {
    for (; published < AHEAD + MARK_EVERY; published++) await pub.publish("flow", published);
  })();
  for (let i = 0; i < 100 && published < AHEAD; i++) await turn();
  for (let i = 0; i < 10; i++) await turn(); // time to run further, were it not held back
  // The event after AHEAD waits for the answer to the oldest mark (the MARK_EVERYth event).
  assert.equal(published, AHEAD);
  assert.equal(waiting.size, 1);
  const marked = pubs(sent).filter((m) => m.mark);
  assert.equal(marked.length, AHEAD / MARK_EVERY);
  assert.ok(marked.every((m) => m.confirm === true)); // a marked PUB asks for an answer
  answer(); // the server caught up with that mark: MARK_EVERY more may go
  await publishing;
  assert.equal(pubs(sent).length, AHEAD + MARK_EVERY);
  assert.equal(waiting.size, 0);
});

test("errors reported for unconfirmed publishes are listed, then thrown by flush()", async () => {
  const { pub } = recording();
  await pub.publish("a", 1);
  pub._keeper.control.errors.push(new BadSubject(ErrorCode.BAD_SUBJECT, "subject too long"));
  assert.equal(pub.errors.length, 1);
  const error = await pub.flush().catch((err) => err);
  assert.ok(error instanceof BadSubject);
  assert.deepEqual([error.code, error.message], [ErrorCode.BAD_SUBJECT, "subject too long"]);
  assert.equal(pub.errors.length, 0);
  await pub.close();
  await assert.rejects(pub.publish("a", 2), ConnectionClosed);
});
