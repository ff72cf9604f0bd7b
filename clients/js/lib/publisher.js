// Publish events on subjects: `const pub = await Publisher.connect(); await pub.publish("StockQuotes", ["SUN", 22.44])`.

import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { Keeper } from "./connection.js";
import { AuthFailed } from "./errors.js";
import { resolveEsUri } from "./naming.js";
import { encodePayload, formatFor } from "./payload.js";
import { chooseKeys } from "./security.js";
import { encodeRequest } from "./wire.js";

export const HEARTBEAT = 2;
export const LIVENESS = 6;

/** One subject or several, as the array the wire carries. */
export function subjectList(subjects) {
  const list = typeof subjects === "string" ? [subjects] : [...subjects];
  if (!list.length || !list.every((s) => typeof s === "string")) {
    throw new TypeError("subjects must be a string or an array of strings");
  }
  return list;
}

/**
 * Emits "status" ("connected", "down", "closed") as its link to the event server changes.
 */
export class Publisher extends EventEmitter {
  /**
   * @param {{esUri?: string, ident?: string, keys?: object, serializer?: "msgpack"|"raw",
   *   timeout?: number, heartbeat?: number, liveness?: number}} options
   */
  static async connect(options = {}) {
    const publisher = new Publisher(options);
    try {
      await publisher._keeper.start();
      // The server is there and takes our key, or connect() says so now: AuthFailed at once,
      // RequestTimeout after `timeout` (and nothing is left running to keep Node alive).
      await publisher.ping();
    } catch (err) {
      publisher._keeper.close();
      throw err;
    }
    return publisher;
  }

  constructor({
    esUri,
    ident,
    keys,
    serializer = "msgpack",
    timeout = 10,
    heartbeat = HEARTBEAT,
    liveness = LIVENESS,
  } = {}) {
    super();
    const chosen = chooseKeys({ ident, keys });
    this.format = formatFor(serializer);
    const probeId = randomBytes(16).toString("hex"); // a sid that never subscribes (SPEC 3.8)
    this._keeper = new Keeper({
      resolve: () => resolveEsUri(esUri, { keys: chosen }),
      probe: async (control) => {
        await control.request((rid) => ({ type: "HEARTBEAT", rid, sid: probeId }), heartbeat);
        return true;
      },
      restore: async () => {},
      timeout,
      interval: heartbeat,
      liveness,
      keys: chosen,
      encode: encodeRequest,
    });
    this._keeper.on("status", (status) => this.emit("status", status));
    this._keeper.on("error", (err) => this.emit("error", err));
    this._unflushed = false;
    // An AuthFailed a call threw, with nothing published since: close() does not throw it again.
    this._toldRefused = false;
  }

  /** The event server's endpoint now (it changes if the server moves). */
  get esUri() {
    return this._keeper.endpoint;
  }

  get status() {
    return this._keeper.status;
  }

  /**
   * Publish `message` on one subject or several (one event per subject). With `confirm`, wait and
   * return how many subscribers received it.
   */
  publish(subjects, message, { confirm = false, timeout, retain = false, ttl } = {}) {
    return this.publishMany([[subjects, message]], { confirm, timeout, retain, ttl });
  }

  /** Several events in one message; they arrive in this order. */
  publishMany(events, { confirm = false, timeout, retain = false, ttl } = {}) {
    const items = events.map(([subjects, message]) => ({
      subjects: subjectList(subjects),
      format: this.format,
      payload: encodePayload(message, this.format),
      retain,
      ttl,
    }));
    if (items.length === 0) return Promise.resolve(confirm ? 0 : null); // malformed (SPEC 3.4)
    return this._told(this._publish(items, confirm, timeout));
  }

  /** Clear the retained event of these subjects (a retained, empty message). */
  async clearRetained(subjects, { confirm = false, timeout } = {}) {
    const items = [{ subjects: subjectList(subjects), format: 0, payload: Buffer.alloc(0), retain: true }];
    await this._told(this._publish(items, confirm, timeout));
  }

  async _publish(items, confirm, timeout) {
    if (confirm) {
      const body = await this._keeper.call((c) =>
        c.request((rid) => ({ type: "PUB", rid, confirm: true, items }), timeout),
      );
      return body.receivers ?? 0;
    }
    await this._keeper.call((c) => c.send((rid) => ({ type: "PUB", rid, confirm: false, items })));
    this._unflushed = true;
    return null;
  }

  /** What `promise` settles to; an AuthFailed it throws is remembered (see close()). */
  async _told(promise) {
    try {
      const result = await promise;
      this._toldRefused = false; // something went out after it: close() has news to tell
      return result;
    } catch (err) {
      if (err instanceof AuthFailed) this._toldRefused = true;
      throw err;
    }
  }

  /** Resolves once the server has handled every earlier publish; throws the first error it reported. */
  flush(timeout) {
    return this._told(this._flush(timeout));
  }

  async _flush(timeout) {
    await this._ping(timeout);
    this._unflushed = false;
    const error = this._keeper.control.takeError();
    if (error) throw error;
  }

  /** The server's answer to PING: its name, version, clock and limits. */
  ping(timeout) {
    return this._told(this._ping(timeout));
  }

  _ping(timeout) {
    return this._keeper.call((c) => c.request((rid) => ({ type: "PING", rid }), timeout));
  }

  /**
   * Flush (if anything was published since the last flush), then close. Throws what the program
   * has not been told: an error the server reported for an unconfirmed publish, or a failure to
   * flush; not the AuthFailed a call threw already, when nothing was published after it.
   */
  async close(timeout) {
    try {
      if (this._unflushed || this._keeper.control?.errors.length) await this._flush(timeout);
    } catch (err) {
      if (!(err instanceof AuthFailed && this._toldRefused)) throw err;
    } finally {
      this._keeper.close();
    }
  }
}
