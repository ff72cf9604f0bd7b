// Key derivation against the spec's vectors, and Z85 against ZeroMQ's own key pairs.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import * as zmq from "zeromq";
import { curvePublic, deriveSecret, keysFromPassphrase, z85Decode, z85Encode } from "../lib/security.js";

const { keys } = JSON.parse(readFileSync(new URL("../../wire/vectors.json", import.meta.url), "utf8"));

test("the KDF parameters are the spec's", () => {
  assert.deepEqual(keys.kdf, { name: "scrypt", salt: "zmq-event-service/curve/v1", N: 16384, r: 8, p: 1, length: 32 });
});

for (const pair of keys.pairs) {
  test(`a passphrase gives the vector's keys: ${pair.passphrase}`, () => {
    assert.equal(deriveSecret(pair.passphrase).toString("hex"), pair.secret_hex);
    const derived = keysFromPassphrase(pair.passphrase);
    assert.equal(derived.secretKey, pair.secret_z85);
    assert.equal(derived.publicKey, pair.public_z85);
  });
}

test("Z85 and the public key agree with ZeroMQ's", () => {
  for (let i = 0; i < 5; i++) {
    const { publicKey, secretKey } = zmq.curveKeyPair();
    assert.equal(z85Encode(z85Decode(secretKey)), secretKey);
    assert.equal(curvePublic(z85Decode(secretKey)), publicKey);
  }
});
