// The spec's test vectors (../wire/vectors.json), run against this client's codec: what a client
// decodes (replies, deliveries, discovery answers) must decode to the vector's message, and what it
// encodes (requests to both servers, discovery questions) must encode to the vector's frames, read
// back as msgpack (JavaScript writes an integral float such as 30.0 as the integer 30, which the
// spec allows), and byte for byte once that is allowed for: the vector's header packed again by this
// codec (which catches map keys in another order, or an option written that the vector leaves out).
// Invalid vectors of the kinds a client decodes must be refused with their code.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { decode } from "@msgpack/msgpack";
import { ProtocolError } from "../lib/errors.js";
import {
  decodeDelivery,
  decodeHere,
  decodeReply,
  encodeNsRequest,
  encodeRequest,
  encodeWhere,
  pack,
  publicId,
} from "../lib/wire.js";

const vectors = JSON.parse(readFileSync(new URL("../../wire/vectors.json", import.meta.url), "utf8"));
const frames = (vector) => vector.frames.map((hex) => Buffer.from(hex, "hex"));

const DECODERS = {
  reply: (f) => decodeReply(f),
  delivery: (f) => decodeDelivery(f),
  here: (f) => decodeHere(f[0]),
};

function asJson(message) {
  // the vectors' form: payloads in hex
  if (message.type !== "EV") return message;
  return { ...message, events: message.events.map((e) => ({ ...e, payload: e.payload.toString("hex") })) };
}

function fromJson(message) {
  if (message.type !== "PUB") return message;
  return { ...message, items: message.items.map((i) => ({ ...i, payload: Buffer.from(i.payload, "hex") })) };
}

const ENCODERS = {
  request: (m) => encodeRequest(fromJson(m)),
  "ns-request": (m) => encodeNsRequest(m),
  where: (m) => [encodeWhere(m.nonce)],
};

for (const vector of vectors.valid) {
  if (DECODERS[vector.kind]) {
    test(`decodes: ${vector.kind}: ${vector.name}`, () => {
      assert.deepEqual(asJson(DECODERS[vector.kind](frames(vector))), vector.message);
    });
  }
  if (ENCODERS[vector.kind]) {
    test(`encodes: ${vector.kind}: ${vector.name}`, () => {
      const ours = ENCODERS[vector.kind](vector.message);
      const theirs = frames(vector);
      assert.equal(ours.length, theirs.length);
      assert.deepEqual(decode(ours[0]), decode(theirs[0]));
      assert.equal(Buffer.from(ours[0]).toString("hex"), pack(decode(theirs[0])).toString("hex"));
      ours.slice(1).forEach((frame, i) => assert.deepEqual(Buffer.from(frame), theirs[i + 1]));
    });
  }
}

for (const vector of vectors.invalid) {
  if (!DECODERS[vector.kind]) continue;
  test(`refuses: ${vector.kind}: ${vector.name}`, () => {
    assert.throws(
      () => DECODERS[vector.kind](frames(vector)),
      (err) => err instanceof ProtocolError && err.code === vector.error && err.rid === vector.rid,
    );
  });
}

test("every kind a client decodes or encodes has vectors here", () => {
  const kinds = new Set(vectors.valid.map((v) => v.kind));
  for (const kind of [...Object.keys(DECODERS), ...Object.keys(ENCODERS)]) assert.ok(kinds.has(kind), kind);
});

test("a subscriber's public id is the start of the SHA-256 of its sid (SPEC 7.1)", () => {
  assert.equal(publicId("5f0c1e2d3b4a69788796a5b4c3d2e1f4"), "d94c18ae3ea6e52c");
});
