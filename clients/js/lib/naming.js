// Finding the name server (SPEC.md 12.4) and asking it for names (12.3), and resolving the event
// server's address (12.5): tcp://HOST:PORT, PYRONAME://[NSHOST:PORT/]NAME, or :Pyro.EventService.

import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomInt } from "node:crypto";
import { Control } from "./connection.js";
import { AuthFailed, EsError } from "./errors.js";
import { chooseKeys } from "./security.js";
import { decodeHere, encodeNsRequest, encodeWhere } from "./wire.js";

export const EVENT_SERVICE = ":Pyro.EventService";
const DEFAULT_GROUP = ":Default";

/** Thrown when no name server answered anywhere the locator looked. */
export class NameServerNotFound extends EsError {}

/** `HOST:PORT` or `tcp://HOST:PORT`, checked, as tcp://HOST:PORT. */
export function tcpAddress(address) {
  const uri = address.includes("://") ? address : `tcp://${address}`;
  if (!/^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^\s/:]+):\d+$/.test(uri)) {
    throw new RangeError(`address must be tcp://HOST:PORT, not ${address}`);
  }
  return uri;
}

function uriFile() {
  const configured = process.env.NS_URI_FILE;
  if (configured !== undefined) return configured || null;
  const uid = typeof process.getuid === "function" ? process.getuid() : 0;
  return join(process.env.XDG_RUNTIME_DIR || tmpdir(), `es-ns-${uid}.uri`);
}

async function answers(endpoint, keys) {
  const control = new Control(endpoint, { timeout: 1, keys, encode: encodeNsRequest, server: "name server" });
  try {
    const body = await control.request((rid) => ({ type: "PING", rid }));
    return body.server === "ns";
  } catch (err) {
    if (err instanceof AuthFailed) throw err; // a name server is there, and refuses us: say so
    return false;
  } finally {
    control.close();
  }
}

/** Ask by UDP broadcast where the name server is; its endpoint, or null. */
export function discover({ broadcast, port, timeout = 0.5, retries = 3 } = {}) {
  const address = broadcast || process.env.NS_BROADCAST || "127.255.255.255";
  const target = Number(port || process.env.NS_PORT || 9090);
  const nonce = randomInt(2 ** 47);
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    let tries = 0;
    let timer = null;
    const finish = (endpoint) => {
      clearTimeout(timer);
      socket.close();
      resolve(endpoint);
    };
    const ask = () => {
      if (tries++ >= retries) return finish(null);
      socket.send(encodeWhere(nonce), target, address);
      timer = setTimeout(ask, timeout * 1000);
    };
    socket.on("message", (data) => {
      try {
        const here = decodeHere(data);
        if (here.nonce === nonce) finish(here.endpoint);
      } catch {
        // not an answer of ours
      }
    });
    socket.on("error", () => finish(null));
    socket.bind(0, () => {
      socket.setBroadcast(true);
      ask();
    });
  });
}

/** The name server's endpoint: an explicit address, $NS_ADDRESS, the URI file, then broadcast. */
export async function locateNs(address, { keys = null, ...discovery } = {}) {
  const explicit = address || process.env.NS_ADDRESS;
  if (explicit) return tcpAddress(explicit);
  const path = uriFile();
  if (path) {
    let endpoint = "";
    try {
      endpoint = readFileSync(path, "utf8").trim();
    } catch {
      // no file: no name server started here
    }
    if (endpoint && (await answers(endpoint, keys))) return endpoint;
  }
  const found = await discover(discovery);
  if (found) return found;
  throw new NameServerNotFound(
    "no name server found (tried the URI file and broadcast discovery): start one with `ns serve`, or set $NS_ADDRESS",
  );
}

/** A client of the name server. Relative names are taken to be in :Default, as in Pyro. */
export class NameServer {
  /** @param {{address?: string, ident?: string, keys?: object, timeout?: number}} options */
  static async connect({ address, ident, keys, timeout = 5 } = {}) {
    const chosen = chooseKeys({ ident, keys });
    const endpoint = await locateNs(address, { keys: chosen });
    return new NameServer(endpoint, chosen, timeout);
  }

  constructor(endpoint, keys, timeout) {
    this.endpoint = endpoint;
    this._control = new Control(endpoint, { timeout, keys, encode: encodeNsRequest, server: "name server" });
  }

  _name(name) {
    return name.startsWith(":") ? name : `${DEFAULT_GROUP}.${name}`;
  }

  _ask(message) {
    return this._control.request((rid) => ({ ...message, rid }));
  }

  ping() {
    return this._ask({ type: "PING" });
  }

  /** The URI registered for `name` (Pyro's resolve); a shared name's first. */
  async lookup(name) {
    return (await this._ask({ type: "LOOKUP", name: this._name(name) })).uri;
  }

  /** Every URI registered for `name`: one, or a shared name's (SPEC 12.6). */
  async lookupAll(name) {
    const entry = await this._ask({ type: "LOOKUP", name: this._name(name) });
    const uris = entry.uris; // a name server before 12.6 sends only `uri`
    return Array.isArray(uris) && uris.length ? uris.map(String) : [String(entry.uri)];
  }

  /** Register `name`; with a lease, the reply holds the token needed to renew it. With `shared`,
   * `uri` joins the name's other URIs (SPEC 12.6). */
  register(name, uri, { replace = false, lease, meta = "", shared = false } = {}) {
    return this._ask({ type: "REGISTER", name: this._name(name), uri, replace, lease, meta, shared });
  }

  async remove(name, token) {
    await this._ask({ type: "REMOVE", name: this._name(name), token });
  }

  list(group) {
    return this._ask({ type: "LIST", group });
  }

  close() {
    this._control.close();
  }
}

function pyroname(uri) {
  const rest = uri.slice("PYRONAME://".length);
  if (rest.startsWith(":") || !rest.includes("/")) return [undefined, rest];
  const slash = rest.indexOf("/");
  return [rest.slice(0, slash) || undefined, rest.slice(slash + 1)];
}

/**
 * The event server's endpoint for an address, a PYRONAME, $ES_URI, or :Pyro.EventService. A name
 * with several endpoints (the nodes of a cluster, SPEC 12.5) gives one of them at random, other
 * than `avoid` (one that just failed) while there is another.
 */
export async function resolveEsUri(esUri, { keys = null, timeout = 5, avoid = null } = {}) {
  const uri = esUri || process.env.ES_URI || `PYRONAME://${EVENT_SERVICE}`;
  if (!uri.toUpperCase().startsWith("PYRONAME://")) return tcpAddress(uri);
  const [address, name] = pyroname(uri);
  const ns = await NameServer.connect({ address, keys, timeout });
  let endpoints;
  try {
    endpoints = (await ns.lookupAll(name)).map(tcpAddress);
  } finally {
    ns.close();
  }
  return pick(endpoints, avoid);
}

/** One of `endpoints` at random (spreading clients over a cluster's nodes), other than `avoid`
 * unless it is the only one (as Python's `pick`). `random` returns a number in [0, 1). */
export function pick(endpoints, avoid = null, random = Math.random) {
  if (!endpoints.length) throw new RangeError("no endpoint to pick from");
  const others = endpoints.filter((e) => e !== avoid);
  const from = others.length ? others : endpoints;
  return from[Math.min(from.length - 1, Math.floor(random() * from.length))];
}
