// Names shared with the Python client (clients/errors.py, clients/subscriber.py): the same name
// for the same thing. The old JavaScript names stay as deprecated aliases.

import assert from "node:assert/strict";
import { test } from "node:test";
import { BadSubject, ERROR_FOR_CODE, EXCEPTION_FOR_CODE, ErrorCode, RequestError, errorFromReply } from "../index.js";
import { Subscriber } from "../lib/subscriber.js";

test("an ERR reply's code is `code` and the server's words are `message`, as in Python", () => {
  const error = errorFromReply(ErrorCode.BAD_SUBJECT, "subject too long");
  assert.ok(error instanceof BadSubject && error instanceof RequestError);
  assert.equal(error.code, "BAD_SUBJECT");
  assert.equal(error.message, "subject too long");
  assert.equal(error.detail, "subject too long"); // deprecated
  assert.equal(String(error), "BadSubject: subject too long");
  const unknown = errorFromReply("NEW_CODE", "from a newer server");
  assert.equal(unknown.constructor, RequestError);
  assert.equal(unknown.code, "NEW_CODE");
});

test("EXCEPTION_FOR_CODE maps every wire code (ERROR_FOR_CODE is the same table)", () => {
  assert.deepEqual(Object.keys(EXCEPTION_FOR_CODE).sort(), Object.values(ErrorCode).sort());
  assert.equal(ERROR_FOR_CODE, EXCEPTION_FOR_CODE);
});

test("a subscriber's own record is `subscriptions`: [subjects, patterns], copies", async () => {
  const sub = new Subscriber({ esUri: "tcp://127.0.0.1:1" }); // never started: no sockets
  let count = 0;
  const control = { request: async () => ({ count: ++count }) };
  sub._keeper = { control, call: async (action) => action(control), close() {} };
  await sub.subscribe(["Quotes", "News"]);
  await sub.subscribeMatch("^STOCK\\..*");
  await sub.unsubscribe("quotes"); // subjects ignore case
  const [subjects, patterns] = sub.subscriptions;
  assert.deepEqual([...subjects], ["News"]);
  assert.deepEqual([...patterns], ["^STOCK\\..*"]);
  subjects.add("not recorded");
  assert.deepEqual([...sub.subscriptions[0]], ["News"]);
  assert.deepEqual([[...sub.subjects], [...sub.patterns]], [["News"], ["^STOCK\\..*"]]); // deprecated
});

test("a subscriber heartbeats as often as the server's SUB reply asks, never less often", async () => {
  // Before, the JS subscriber kept its own interval: a server with a shorter liveness evicted it.
  const sub = new Subscriber({ esUri: "tcp://127.0.0.1:1" }); // never started: no sockets
  const replies = [
    { count: 1, heartbeat: 0.5 },
    { count: 2, heartbeat: 30 },
  ];
  const control = { request: async () => replies.shift() };
  sub._keeper = { control, interval: 2, call: async (action) => action(control), close() {} };
  await sub.subscribe("a");
  assert.equal(sub._keeper.interval, 0.5);
  await sub.subscribe("b");
  assert.equal(sub._keeper.interval, 0.5);
});
