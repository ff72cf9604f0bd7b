// Queue groups (SPEC 7.12) in the subscriber, without a server: the options `group` and `durable`
// checked and sent on every SUB and SUBMATCH (subscribing again too), close() leaving the group
// with an UNSUB of no names, the `redelivered` flag on events, no history for a member, and none of
// a durable subscriber's rules for a durable group's member. A stand-in keeper answers the requests
// and a stand-in inbox is fed EV frames, as in durable.test.js. The live cases are in
// tests/integration.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { decode, encode } from "@msgpack/msgpack";
import { Subscriber, memberDurable } from "../lib/subscriber.js";
import { decodeDelivery, encodeRequest, pack } from "../lib/wire.js";
import { consume, feed, subscriber } from "./standin.js";

const vectors = JSON.parse(readFileSync(new URL("../../wire/vectors.json", import.meta.url), "utf8"));

const ES = "tcp://127.0.0.1:1";

/** Feed `sub` one EV of `flags` (one map, or null for none, per event) from seq `first`. */
async function deliver(sub, { stream = 7, first = 1, lost = 0, flags }) {
  const metas = flags.map((f) => (f === null ? ["jobs.resize", 1.5, 1] : ["jobs.resize", 1.5, 1, f]));
  const frames = [
    Buffer.from("a"),
    pack([1, "EV", sub.sid, stream, lost, first, metas, flags.map((_, i) => encode(first + i))]),
  ];
  await feed(sub, [frames]);
}

/** The options map of a SUB or SUBMATCH as it goes on the wire (header field 6). */
const sent = (request) => decode(encodeRequest(request)[0])[6];

/** The SUB and SUBMATCH headers of some of the spec's vectors (those that are msgpack). */
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
    .filter((h) => Array.isArray(h) && ["SUB", "SUBMATCH"].includes(h[1]) && h[6] instanceof Object);

test("group: a non-empty name not starting $, without name; durable true or the group's name", () => {
  const member = new Subscriber({ esUri: ES, group: "workers" });
  assert.deepEqual(
    [member.group, member.durable, member.options.group, member.options.durable],
    ["workers", null, "workers", null],
  );
  for (const durable of [true, "billers"]) {
    const sub = new Subscriber({ esUri: ES, group: "billers", durable });
    assert.deepEqual([sub.group, sub.durable, sub.options.durable], ["billers", null, "billers"]);
  }
  for (const durable of [false, null, undefined]) {
    assert.equal(new Subscriber({ esUri: ES, group: "workers", durable }).options.durable, null);
  }
  const plain = new Subscriber({ esUri: ES, durable: "billing" });
  assert.deepEqual([plain.group, plain.durable, plain.options.group], [null, "billing", null]);
  assert.equal(new Subscriber({ esUri: ES, group: null }).group, null);

  for (const bad of [
    { group: "" },
    { group: 5 },
    { group: true },
    { group: ["workers"] },
    { group: { name: "workers" } },
    { group: "$workers" },
    { group: "workers", name: "svc" },
    { group: "billers", durable: "other" },
    { group: "billers", durable: "" },
    { group: "billers", durable: 1 },
    { durable: true }, // durable: true names a group's log: only with group
    { durable: false },
  ]) {
    assert.throws(() => new Subscriber({ esUri: ES, ...bad }), TypeError, JSON.stringify(bad));
  }
  assert.equal(memberDurable("w", undefined, undefined), null);
  assert.equal(memberDurable("w", true, null), "w");
  assert.throws(() => memberDurable("w", "v"), /durable name is the group's/);
});

test("the group (and a durable group's name) goes in the options of every SUB and SUBMATCH", async () => {
  const { sub, requests } = subscriber({ group: "workers", policy: "drop", queueSize: 10 });
  await sub.subscribe("jobs.resize");
  await sub.subscribeMatch("^jobs\\.");
  assert.deepEqual(requests.map(sent), [
    { policy: "drop", queue: 10, group: "workers" },
    { policy: "drop", queue: 10, group: "workers" },
  ]);
  const durable = subscriber({ group: "billers", durable: true });
  await durable.sub.subscribe("jobs.bill");
  assert.deepEqual(sent(durable.requests[0]), { group: "billers", durable: "billers" });
});

test("the spec's vectors: a member's SUB encodes as theirs; those refused for a group are refused here", async () => {
  for (const name of ["join a queue group", "join a durable queue group"]) {
    const vector = vectors.valid.find((v) => v.name === name);
    assert.ok(vector, name);
    const { queue, group, durable } = vector.message.options;
    const { sub, requests } = subscriber({
      queueSize: queue,
      group,
      durable: durable === undefined ? undefined : true,
    });
    sub.sid = vector.message.sid;
    sub.endpoint = vector.message.endpoint;
    await sub.subscribe(vector.message.subjects);
    const ours = decode(encodeRequest({ ...requests[0], rid: vector.message.rid })[0]);
    assert.deepEqual(ours, decode(Buffer.from(vector.frames[0], "hex")));
  }
  const refused = subs([...vectors.invalid, ...vectors.refused]).filter((h) => "group" in h[6]);
  assert.ok(refused.length >= 3); // not a string, starting $, another durable name
  for (const h of refused) {
    const { group, durable } = h[6];
    assert.throws(() => new Subscriber({ esUri: ES, group, durable }), TypeError, JSON.stringify(h[6]));
  }
});

test("close() of a member leaves its group: an UNSUB of no names, not of the group's subjects", async () => {
  for (const options of [{ group: "workers" }, { group: "billers", durable: true }]) {
    const { sub, requests } = subscriber(options);
    await sub.subscribe(["jobs.resize", "jobs.crop"]);
    await sub.subscribeMatch("^jobs\\.");
    await sub.close();
    assert.deepEqual(
      requests.map((m) => [m.type, m.subjects ?? m.patterns]),
      [
        ["SUB", ["jobs.resize", "jobs.crop"]],
        ["SUBMATCH", ["^jobs\\."]],
        ["UNSUB", []],
      ],
    );
    assert.deepEqual(decode(encodeRequest(requests[2])[0]).slice(3), [sub.sid, []]);
  }
  // One that has subscribed to nothing (or no longer) leaves all the same: the server may hold it.
  const { sub, requests } = subscriber({ group: "workers" });
  await sub.close();
  await sub.close(); // once
  assert.deepEqual(
    requests.map((m) => [m.type, m.subjects]),
    [["UNSUB", []]],
  );
});

test("a member's unsubscribe() names what it removes from the group", async () => {
  const { sub, requests } = subscriber({ group: "workers" }, (m) => ({ count: m.type === "UNSUB" ? 1 : 2 }));
  await sub.subscribe(["jobs.resize", "jobs.crop"]);
  assert.equal(await sub.unsubscribe("JOBS.CROP"), 1);
  assert.deepEqual(requests.at(-1).subjects, ["JOBS.CROP"]);
  assert.deepEqual(sub.subscriptions, [new Set(["jobs.resize"]), new Set()]);
});

test("events carry the redelivered flag: true only when the flags say true", async () => {
  const { sub } = subscriber({ group: "workers" });
  await deliver(sub, {
    flags: [{ redelivered: true }, null, {}, { redelivered: 1 }, { redelivered: "true" }, { redelivered: true, x: 1 }],
  });
  const events = await consume(sub);
  assert.deepEqual(
    events.map((e) => [e.seq, e.msg, e.redelivered]),
    [
      [1, 1, true],
      [2, 2, false],
      [3, 3, false],
      [4, 4, false],
      [5, 5, false],
      [6, 6, true],
    ],
  );
  const ev = (flags) =>
    decodeDelivery([pack([1, "EV", "s", 1, 0, 1, [["x", 1.5, 1, flags]], [Buffer.from("p")]])]).events[0];
  assert.equal(ev({ redelivered: true }).redelivered, true);
  for (const redelivered of [false, null, 1, "true", [true]]) assert.equal("redelivered" in ev({ redelivered }), false);
  await sub.close();
});

test("a member cannot ask for history: a TypeError, and nothing is sent", async () => {
  const { sub, requests } = subscriber({ group: "workers" });
  await assert.rejects(sub.subscribe("jobs.resize", { history: { last: 10 } }), /cannot ask for history/);
  await assert.rejects(sub.subscribeMatch("^jobs\\.", { history: { from: 1 } }), TypeError);
  await assert.rejects(sub.subscribe("jobs.resize", { history: { last: -1 } }), TypeError); // bad anyway
  assert.equal(requests.length, 0);
  assert.deepEqual(sub.subscriptions, [new Set(), new Set()]);
  await sub.subscribe("jobs.resize", { history: null }); // none asked: fine
  assert.equal("history" in sent(requests[0]), false);
});

test("subscribing again after the server forgot it, a member sends its group again, never history", async () => {
  for (const [options, wire] of [
    [
      { group: "workers", queueSize: 10 },
      { queue: 10, group: "workers" },
    ],
    [
      { group: "billers", durable: "billers" },
      { group: "billers", durable: "billers" },
    ],
  ]) {
    const { sub, requests } = subscriber(options, (m) =>
      m.type === "HEARTBEAT" ? { known: false } : { count: 3, stream: 9, heartbeat: 5, queue: 10 },
    );
    await sub.subscribe("jobs.resize");
    await sub.subscribeMatch("^jobs\\.");
    assert.equal(await sub._probe(sub._keeper.control, 2), false); // forgotten: subscribe again
    sub._askedHistory = true; // even were it set, a member asks for none
    requests.length = 0;
    await sub._replay(sub._keeper.control);
    assert.deepEqual(
      requests.map((r) => [r.type, sent(r)]),
      [
        ["SUB", wire],
        ["SUBMATCH", wire],
      ],
    );
    assert.equal(sub._resumed, true); // a member's reply tells nothing kept: it may have lost some
  }
});

test("a durable group's member is no durable subscriber: never replaced, close() does not stay", async (t) => {
  const warn = t.mock.method(process, "emitWarning", () => {});
  const heartbeats = [{ known: false, evicted: "replaced" }, { known: false }];
  const { sub, requests } = subscriber({ group: "billers", durable: true }, (m) =>
    m.type === "HEARTBEAT" ? heartbeats.shift() : { count: 1 },
  );
  const told = [];
  sub.on("replaced", (name) => told.push(name));
  await sub.subscribe("jobs.bill");
  assert.equal(await sub._probe(sub._keeper.control, 2), false); // subscribes again, as any member
  assert.equal(await sub._probe(sub._keeper.control, 2), false);
  assert.equal(sub.replaced, false);
  assert.deepEqual(told, []);
  assert.equal(warn.mock.callCount(), 0);
  assert.equal(sub.durable, null);
  await sub.close();
  assert.deepEqual(requests.at(-1).type, "UNSUB");
  assert.deepEqual(requests.at(-1).subjects, []);
});

test("a member's stream is an ordinary one: losses counted, events in it once", async () => {
  const { sub } = subscriber({ group: "billers", durable: true });
  await deliver(sub, { first: 1, flags: [null, null] });
  await deliver(sub, { first: 5, lost: 2, flags: [{ redelivered: true }] }); // 3 and 4 missing
  await deliver(sub, { first: 5, flags: [null, null] }); // 5 seen already
  const events = await consume(sub);
  assert.deepEqual(
    events.map((e) => [e.seq, e.lost, e.redelivered]),
    [
      [1, 0, false],
      [2, 0, false],
      [5, 2, true],
      [6, 0, false],
    ],
  );
  assert.equal(sub.lost, 2);
  await sub.close();
});

test("close() of a member that handled events acknowledges them first, on the control socket", async () => {
  const { sub, requests } = subscriber({ group: "workers" });
  await sub.subscribe("jobs.resize");
  await deliver(sub, { flags: [null, null, null] });
  await consume(sub);
  await sub.close();
  assert.deepEqual(
    requests.slice(1).map((m) => [m.type, m.seq ?? m.subjects]),
    [
      ["ACK", 3],
      ["UNSUB", []],
    ],
  );
});

test("an event is acknowledged once the reader asks for the next one, not when it is handed out", async () => {
  const { sub } = subscriber({ group: "workers" });
  await deliver(sub, { flags: [null, null] });
  const sent = () => sub._inbox.sent.map((frames) => decode(frames.at(-1)).slice(3));
  assert.equal((await sub.next()).seq, 1);
  sub._ack();
  assert.deepEqual(sent(), []); // still handling it: a death now hands it to another member
  assert.equal((await sub.next()).seq, 2);
  sub._ack();
  assert.deepEqual(sent(), [[sub.sid, 1]]);
  await sub.close();
});
