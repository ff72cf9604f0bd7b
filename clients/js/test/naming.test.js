// Shared names (SPEC 12.5, 12.6): lookupAll against a stand-in connection, `pick`, resolveEsUri
// against a stand-in name server (a ROUTER answering LOOKUP), and the keeper telling `resolve`
// which endpoint failed.

import assert from "node:assert/strict";
import { test } from "node:test";
import { decode } from "@msgpack/msgpack";
import * as zmq from "zeromq";
import { Keeper } from "../lib/connection.js";
import { NameServer, pick, resolveEsUri } from "../lib/naming.js";
import { encodeNsRequest, pack } from "../lib/wire.js";

const A = "tcp://127.0.0.1:7001";
const B = "tcp://127.0.0.1:7002";
const C = "tcp://127.0.0.1:7003";
const fixed = (r) => () => r; // a `random` that always gives r

/** A name server client never connected (no sockets), whose connection answers `reply(message)`;
 * `requests` records what it sent. */
function nameServer(reply) {
  const ns = Object.create(NameServer.prototype);
  const requests = [];
  ns.endpoint = "tcp://127.0.0.1:1";
  ns._control = {
    request: async (build) => {
      const message = build(requests.length + 1);
      requests.push(message);
      return reply(message);
    },
    close() {},
  };
  return { ns, requests };
}

test("pick never gives the endpoint that failed while there is another", () => {
  for (const r of [0, 0.3, 0.5, 0.7, 0.999999]) {
    assert.notEqual(pick([A, B, C], B, fixed(r)), B);
    assert.equal(pick([A, B], A, fixed(r)), B);
  }
  const seen = new Set();
  for (let i = 0; i < 200; i++) seen.add(pick([A, B, C], A));
  assert.deepEqual([...seen].sort(), [B, C]); // at random among the others
});

test("pick gives the only endpoint even if it failed, and any one with nothing to avoid", () => {
  assert.equal(pick([A], A), A);
  assert.equal(pick([A], null), A);
  assert.equal(pick([A, B, C], null, fixed(0)), A);
  assert.equal(pick([A, B, C], null, fixed(0.999999)), C);
  assert.equal(pick([A, B, C], "tcp://127.0.0.1:9", fixed(0.5)), B);
  assert.throws(() => pick([], A), RangeError);
});

test("lookupAll gives every URI of a shared name; lookup its first", async () => {
  const { ns, requests } = nameServer(() => ({ name: ":Default.Nodes", uri: A, meta: "", uris: [A, B, C] }));
  assert.deepEqual(await ns.lookupAll("Nodes"), [A, B, C]);
  assert.equal(await ns.lookup("Nodes"), A);
  assert.deepEqual(requests, [
    { type: "LOOKUP", name: ":Default.Nodes", rid: 1 },
    { type: "LOOKUP", name: ":Default.Nodes", rid: 2 },
  ]);
});

test("lookupAll gives [uri] when the name server sends no uris (one from before 12.6)", async () => {
  const { ns } = nameServer(() => ({ name: ":Pyro.EventService", uri: A, meta: "" }));
  assert.deepEqual(await ns.lookupAll(":Pyro.EventService"), [A]);
  const { ns: empty } = nameServer(() => ({ name: ":Pyro.EventService", uri: A, meta: "", uris: [] }));
  assert.deepEqual(await empty.lookupAll(":Pyro.EventService"), [A]);
});

test("register sends `shared` only when it is true", async () => {
  const { ns, requests } = nameServer(() => ({ name: ":Default.Nodes" }));
  await ns.register("Nodes", A, { lease: 30, meta: "node a", shared: true });
  await ns.register("Nodes", B);
  const options = requests.map((m) => decode(encodeNsRequest(m)[0])[5]);
  assert.deepEqual(options, [{ lease: 30, meta: "node a", shared: true }, {}]);
  assert.deepEqual(Object.keys(options[0]), ["lease", "meta", "shared"]);
});

/** A stand-in name server: a ROUTER that answers every LOOKUP with these URIs. */
async function standInNs(uris) {
  const router = new zmq.Router({ linger: 0 });
  await router.bind("tcp://127.0.0.1:*");
  const served = (async () => {
    for await (const [peer, frame] of router) {
      const [, command, rid] = decode(frame);
      const body = command === "LOOKUP" ? { name: ":Default.Nodes", uri: uris[0], meta: "", uris } : {};
      await router.send([peer, pack([1, "OK", rid, body])]);
    }
  })().catch(() => {});
  return {
    address: router.lastEndpoint.slice("tcp://".length),
    close: async () => {
      router.close();
      await served;
    },
  };
}

test("resolveEsUri takes another node than the one that failed", async () => {
  const ns = await standInNs([A, B]);
  try {
    const uri = `PYRONAME://${ns.address}/Nodes`;
    for (let i = 0; i < 5; i++) assert.equal(await resolveEsUri(uri, { avoid: A, timeout: 2 }), B);
    assert.equal(await resolveEsUri(uri, { avoid: B, timeout: 2 }), A);
    assert.ok([A, B].includes(await resolveEsUri(uri, { timeout: 2 })));
  } finally {
    await ns.close();
  }
});

test("resolveEsUri gives the only node even if it failed", async () => {
  const ns = await standInNs([A]);
  try {
    assert.equal(await resolveEsUri(`PYRONAME://${ns.address}/Nodes`, { avoid: A, timeout: 2 }), A);
  } finally {
    await ns.close();
  }
});

test("the keeper tells resolve nothing at the start, and the endpoint that failed on reconnecting", async () => {
  const asked = [];
  const keeper = new Keeper({
    resolve: async (avoid) => {
      asked.push(avoid);
      return avoid === A ? B : A;
    },
    probe: async () => true,
    restore: async () => {},
    timeout: 1,
    interval: 3600,
    liveness: 3,
  });
  keeper._open = (endpoint) => ({ endpoint, close() {} }); // no sockets
  try {
    await keeper.start();
    assert.equal(keeper.endpoint, A);
    await keeper._reconnect();
    assert.equal(keeper.endpoint, B);
    assert.equal(keeper.control.endpoint, B);
    assert.deepEqual(asked, [null, A]);
  } finally {
    keeper.close();
  }
});
