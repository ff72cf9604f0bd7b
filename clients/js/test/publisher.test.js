// What Publisher.close() throws, with a stand-in for its connection keeper (no sockets): it tells
// the program what it has not been told, and nothing twice. The live case, a key revoked while a
// publisher is connected, is in tests/integration/test_polyglot.py.

import assert from "node:assert/strict";
import { test } from "node:test";
import { AuthFailed, BadSubject, ErrorCode } from "../lib/errors.js";
import { Publisher } from "../lib/publisher.js";

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
