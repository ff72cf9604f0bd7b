// Publish events on subjects: `const pub = await Publisher.connect(); await pub.publish("StockQuotes", ["SUN", 22.44])`.
//
// As the Python client's (clients/publisher.py), with the same names and defaults:
// - An unconfirmed publish does not wait for a round trip: it goes through the outbox (outbox.js),
//   alone when the publisher is idle, many to one PUB when they come close together. A confirmed
//   publish, flush() and close() send what waits there first, so events keep their order.
// - flush() resolves once the server has handled everything published before it (a PING: the
//   server handles one connection's requests in order); it throws the first error the server
//   reported for an unconfirmed publish.
// - A publisher runs at most AHEAD events ahead of what the server has handled: every MARK_EVERY
//   events, one of the outbox's PUBs asks for an answer, and sending waits for the oldest answer
//   when more than AHEAD events went out after it. So a block-mode subscriber that reads slowly
//   holds publishers back by that much, not by every buffer on the way.
// - A payload larger than every server accepts (1 MiB) is checked against this server's
//   max_message_bytes (from PING, asked once) and refused here with TooLarge: the server would
//   drop the connection without a reply, and the program would see only a timeout.

import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { Keeper } from "./connection.js";
import { AuthFailed, ConnectionClosed, ErrorCode, TooLarge } from "./errors.js";
import { resolveEsUri } from "./naming.js";
import { LINGER, Outbox } from "./outbox.js";
import { encodePayload, formatFor } from "./payload.js";
import { chooseKeys } from "./security.js";
import { INLINE_BYTES, encodeRequest } from "./wire.js";

export const HEARTBEAT = 2;
export const LIVENESS = 6;
/** Events between PUBs that ask the server for an answer (confirm), so a publisher knows how far
 * the server got without a round trip of its own: a few per second at full speed. */
export const MARK_EVERY = 1000;
/** Most events a publisher sends beyond the last one the server answered for; then it waits.
 * Tens of milliseconds of traffic for a fast server: never the limit while the server keeps up. */
export const AHEAD = 4000;

// Every server accepts payloads of this size (its max_message_bytes is never lower than the
// header ceiling it must accept anyway); only larger ones need the server's own limit, from PING.
const ALWAYS_ACCEPTED = 1 << 20;

/** One subject or several, as the array the wire carries. */
export function subjectList(subjects) {
  const list = typeof subjects === "string" ? [subjects] : [...subjects];
  if (!list.length || !list.every((s) => typeof s === "string")) {
    throw new TypeError("subjects must be a string or an array of strings");
  }
  return list;
}

const payloadBytes = (items) => items.reduce((sum, item) => sum + item.payload.length, 0);

/**
 * Emits "status" ("connected", "down", "closed") as its link to the event server changes.
 */
export class Publisher extends EventEmitter {
  /**
   * @param {{esUri?: string, ident?: string, keys?: object, serializer?: "msgpack"|"raw",
   *   timeout?: number, heartbeat?: number, liveness?: number, linger?: number}} options
   *   `linger`: publishes closer together than this many seconds are sent as one message (0: each
   *   alone); the first after a pause always goes at once.
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
    linger = LINGER,
  } = {}) {
    super();
    const chosen = chooseKeys({ ident, keys });
    this.format = formatFor(serializer);
    const probeId = randomBytes(16).toString("hex"); // a sid that never subscribes (SPEC 3.8)
    this._keeper = new Keeper({
      resolve: (avoid) => resolveEsUri(esUri, { keys: chosen, avoid }),
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
    this._outbox = new Outbox((items, size) => this._sendBatch(items, size), { linger });
    this._unflushed = 0; // events published since the last flush
    this._limits = null; // the server's, from PING, once a payload needs them
    this._sent = 0; // events the outbox sent
    this._answered = 0; // events sent up to the newest answered mark
    this._marks = []; // unanswered PUBs that asked: {control, rid, sent, epoch (reconnections)}
    this._closed = false;
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

  /** How many times the session was restored after the server lost it (a publisher has none). */
  get recoveries() {
    return this._keeper.recoveries;
  }

  /** Errors the server reported for unconfirmed publishes, not yet thrown by flush(). */
  get errors() {
    return [...(this._keeper.control?.errors ?? [])];
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
    if (this._closed) throw new ConnectionClosed("this publisher was closed");
    const size = payloadBytes(items);
    await this._checkSize(items, timeout);
    if (confirm) {
      const inline = size <= INLINE_BYTES; // small payloads inside the header (SPEC 3.4)
      const { result } = await this._outbox.after(() =>
        this._keeper.call((c) => c.request((rid) => ({ type: "PUB", rid, confirm: true, items, inline }), timeout)),
      );
      return (await result).receivers ?? 0;
    }
    await this._outbox.put(items, size);
    this._unflushed += items.length;
    return null;
  }

  /** The outbox's sender. Every MARK_EVERY events it asks for an answer; it waits while AHEAD
   * events are unanswered. */
  async _sendBatch(items, size) {
    const inline = size <= INLINE_BYTES;
    const mark = this._sent + items.length - this._newestMark() >= MARK_EVERY;
    let control;
    const rid = await this._keeper.call((c) => {
      control = c;
      return c.send((rid) => ({ type: "PUB", rid, confirm: mark, items, inline }), mark);
    });
    this._sent += items.length;
    if (mark) this._marks.push({ control, rid, sent: this._sent, epoch: this._keeper.reconnections });
    await this._holdBack();
  }

  _newestMark() {
    return this._marks.length ? this._marks.at(-1).sent : this._answered;
  }

  /**
   * Wait for the oldest answers while more than AHEAD events went out after the last one
   * answered. A mark sent before the keeper found the server gone (and again) will never be
   * answered: it is dropped, as what it was sent with is lost.
   */
  async _holdBack() {
    const keeper = this._keeper;
    while (this._marks.length && this._sent - this._answered > AHEAD) {
      const { control, rid, sent, epoch } = this._marks.shift();
      if (control === keeper.control && epoch === keeper.reconnections) {
        try {
          await control.waitAnswered(rid, { giveUp: () => keeper.reconnections !== epoch });
        } catch (err) {
          if (!(err instanceof ConnectionClosed) || control === keeper.control) throw err; // closing
        }
      } else control.forget(rid);
      this._answered = sent;
    }
  }

  /** Refuse here what the server would refuse by dropping the connection (a frame over its
   * socket's size limit gets no reply at all, only a timeout). */
  async _checkSize(items, timeout) {
    const largest = items.reduce((most, item) => Math.max(most, item.payload.length), 0);
    if (largest <= ALWAYS_ACCEPTED) return;
    this._limits ??= (await this._ping(timeout)).limits ?? {};
    const limit = Number(this._limits.max_message_bytes ?? ALWAYS_ACCEPTED);
    if (largest > limit) {
      throw new TooLarge(ErrorCode.TOO_LARGE, `message of ${largest} bytes; this server takes ${limit}`);
    }
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
    const { result } = await this._outbox.after(() => this._ping(timeout));
    await result;
    this._unflushed = 0;
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
      this._closed = true;
      this._outbox.close();
      this._keeper.close();
    }
  }
}
