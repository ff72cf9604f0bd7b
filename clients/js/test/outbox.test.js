// The outbox's rules (lib/outbox.js), with a send that records what it was given, a clock the test
// sets, and a deferred callback the test runs: no sockets, no waiting.

import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_BYTES, MAX_ITEMS, Outbox } from "../lib/outbox.js";
import { RequestTimeout } from "../lib/errors.js";

/** An outbox whose sends land in `sent` (one array of item names per PUB). */
function outbox({ linger = 100e-6, fail = () => null } = {}) {
  const box = {
    sent: [],
    time: 1000,
    deferred: null,
    runDeferred() {
      const callback = box.deferred;
      box.deferred = null;
      callback?.();
    },
  };
  box.outbox = new Outbox(
    async (items, size) => {
      const error = fail(items);
      if (error) throw error;
      box.sent.push({ names: items.map((item) => item.name), size });
    },
    {
      linger,
      now: () => box.time,
      defer: (callback) => (box.deferred = callback),
      cancel: () => (box.deferred = null),
    },
  );
  return box;
}

const item = (name, bytes = 1) => ({ name, payload: Buffer.alloc(bytes) });
const put = (box, ...items) =>
  box.outbox.put(
    items,
    items.reduce((n, i) => n + i.payload.length, 0),
  );
const names = (box) => box.sent.map((pub) => pub.names);

test("the first publish after a pause goes at once, alone", async () => {
  const box = outbox();
  await put(box, item("a"));
  assert.deepEqual(names(box), [["a"]]);
  box.time += 1; // a pause
  await put(box, item("b"));
  assert.deepEqual(names(box), [["a"], ["b"]]);
  assert.equal(box.deferred, null);
});

test("publishes close together go out as one PUB, in order, once the tick is over", async () => {
  const box = outbox();
  await put(box, item("a"));
  for (const name of ["b", "c", "d"]) await put(box, item(name)); // within the linger
  assert.deepEqual(names(box), [["a"]]); // gathered, not sent yet
  box.runDeferred();
  await box.outbox.drain();
  assert.deepEqual(names(box), [["a"], ["b", "c", "d"]]);
  assert.equal(box.outbox.batches, 1);
});

test("linger 0: every publish goes alone", async () => {
  const box = outbox({ linger: 0 });
  for (const name of ["a", "b", "c"]) await put(box, item(name));
  assert.deepEqual(names(box), [["a"], ["b"], ["c"]]);
  assert.equal(box.outbox.batches, 0);
});

test("a publish made while a send is under way is gathered, not sent beside it", async () => {
  const box = outbox();
  const first = put(box, item("a")); // idle: a send starts
  const second = put(box, item("b")); // not awaited before: the send is still under way
  await Promise.all([first, second]);
  box.runDeferred();
  await box.outbox.drain();
  assert.deepEqual(names(box), [["a"], ["b"]]);
});

test("a batch holds at most MAX_ITEMS events: the publish that fills it sends it", async () => {
  const box = outbox();
  await put(box, item("first"));
  for (let i = 0; i < MAX_ITEMS + 3; i++) await put(box, item(i));
  assert.deepEqual(
    box.sent.map((pub) => pub.names.length),
    [1, MAX_ITEMS],
  );
  box.runDeferred();
  await box.outbox.drain();
  assert.deepEqual(
    box.sent.map((pub) => pub.names.length),
    [1, MAX_ITEMS, 3],
  );
  assert.deepEqual(box.sent.flatMap((pub) => pub.names).slice(1), [...Array(MAX_ITEMS + 3).keys()]);
});

test("a batch holds at most MAX_BYTES of payload, unless one publish alone is larger", async () => {
  const box = outbox();
  await put(box, item("first"));
  const half = MAX_BYTES / 2;
  await put(box, item("a", half));
  await put(box, item("b", half)); // exactly MAX_BYTES: still one batch
  await put(box, item("c", 1)); // would pass it: a, b go first
  await put(box, item("huge", MAX_BYTES + 1)); // larger alone: c goes first, then it alone
  box.runDeferred();
  await box.outbox.drain();
  assert.deepEqual(names(box), [["first"], ["a", "b"], ["c"], ["huge"]]);
  assert.deepEqual(
    box.sent.map((pub) => pub.size),
    [1, MAX_BYTES, 1, MAX_BYTES + 1],
  );
});

test("after(task) runs the task once what was gathered before it was sent", async () => {
  const box = outbox();
  await put(box, item("a"));
  await put(box, item("b"));
  await put(box, item("c"));
  const { result } = await box.outbox.after(() => {
    box.sent.push({ names: ["confirmed"] });
    return Promise.resolve(7);
  });
  assert.equal(await result, 7);
  assert.deepEqual(names(box), [["a"], ["b", "c"], ["confirmed"]]);
  assert.equal(box.deferred, null); // nothing left for the callback
});

test("a publish made after a confirmed one, before it went out, goes after it", async () => {
  const box = outbox();
  await put(box, item("a"));
  await put(box, item("b")); // gathered
  const confirmed = box.outbox.after(() => box.sent.push({ names: ["confirmed"] }));
  const later = put(box, item("c")); // the chain is busy: gathered behind the confirmed one
  await Promise.all([confirmed, later]);
  box.runDeferred();
  await box.outbox.drain();
  assert.deepEqual(names(box), [["a"], ["b"], ["confirmed"], ["c"]]);
});

test("the error of a send nobody waited for is thrown by the next call, once", async () => {
  let failing = false;
  const box = outbox({ fail: () => (failing ? new RequestTimeout("no room") : null) });
  await put(box, item("a"));
  await put(box, item("b")); // gathered: this publish resolved already
  failing = true;
  box.runDeferred(); // the callback's send fails
  await assert.rejects(box.outbox.drain(), RequestTimeout);
  failing = false;
  await box.outbox.drain(); // told once
  box.time += 1;
  await put(box, item("c"));
  assert.deepEqual(names(box), [["a"], ["c"]]);
});

test("a publish whose own send fails rejects with that error", async () => {
  const box = outbox({ fail: () => new RequestTimeout("no room") });
  await assert.rejects(put(box, item("a")), RequestTimeout); // idle: sent at once, and failed
  await box.outbox.drain(); // already told
});

test("close() drops what is gathered and cancels the callback", async () => {
  const box = outbox();
  await put(box, item("a"));
  await put(box, item("b"));
  box.outbox.close();
  assert.equal(box.deferred, null);
  assert.deepEqual(names(box), [["a"]]);
});
