// The control connection and what keeps it alive.
//
// Control: a DEALER to a server's ROUTER, with request ids. One task reads every reply and hands it
// to the request waiting for its rid; an ERR for a request nobody waits for (an unconfirmed publish)
// is kept in `errors`. Sends go one at a time, in the order they were asked for (zeromq.js allows
// one pending send). Every wait has a deadline; a failed CurveZMQ handshake, reported by the
// socket's event observer, fails every waiting request at once with AuthFailed. A request sent with
// `mark` is answered later, when it suits the owner (`waitAnswered`): its reply, whenever it is
// read, is remembered until then (or until `forget`); an ERR for it is kept in `errors` too.
//
// Keeper: heartbeats on a connection of their own (`pulse`), never behind the program's traffic;
// after `liveness` seconds without an answer the server counts as gone; then it looks the server up
// again (it may have moved), reconnects with backoff, and asks the owner to restore its session.
// `resolve` is told the endpoint that failed (null at the start), so that a name with several (the
// nodes of a cluster, SPEC 12.5) gives another.

import { EventEmitter } from "node:events";
import { setTimeout as delay } from "node:timers/promises";
import * as zmq from "zeromq";
import { AuthFailed, ConnectionClosed, ErrorCode, EsError, RequestTimeout, errorFromReply } from "./errors.js";
import { asClient } from "./security.js";
import { MAX_INT, decodeReply } from "./wire.js";

// Replies beyond this many unread errors are counted, not stored.
const MAX_KEPT_ERRORS = 100;
// A wait for a marked request's answer looks this often (ms) whether its owner gave up on it.
const SLICE_MS = 50;
const MISMATCH =
  "the handshake with the server failed: a wrong passphrase or key on one side, or security on one side only";

export class Control {
  /**
   * @param {string} endpoint tcp://HOST:PORT
   * @param {{timeout?: number, keys?: object|null, encode: (message: object) => Buffer[]}} options
   */
  constructor(endpoint, { timeout = 10, keys = null, encode, server = "event server" }) {
    this.endpoint = endpoint;
    this.timeout = timeout;
    this.encode = encode;
    this.server = server; // what messages call it: "event server" or "name server"
    this.errors = [];
    this.errorsDropped = 0;
    this.closed = false;
    this.authError = null;
    this._rid = 0;
    this._pending = new Map(); // rid -> {resolve, reject, timer}
    this._marked = new Map(); // rid of a marked request not answered yet -> its waiter, or null
    this._answered = new Set(); // rids of marked requests answered, not yet asked about
    this._sending = Promise.resolve();
    this._socket = new zmq.Dealer({ linger: 0, ipv6: endpoint.includes("[") });
    asClient(this._socket, keys);
    this._socket.sendTimeout = Math.round(timeout * 1000);
    this._socket.connect(endpoint);
    this._readReplies().catch(() => {});
    this._watchHandshakes().catch(() => {});
  }

  nextRid() {
    this._rid = (this._rid % MAX_INT) + 1;
    return this._rid;
  }

  /** Send a request and wait for its reply body; an ERR reply throws its mapped error. */
  request(build, timeout = this.timeout) {
    if (this.closed) return Promise.reject(new ConnectionClosed("this client was closed"));
    if (this.authError) return Promise.reject(new AuthFailed(ErrorCode.AUTH_FAILED, this.authError));
    const rid = this.nextRid();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(rid);
        reject(new RequestTimeout(`no reply from the ${this.server} at ${this.endpoint}`));
      }, timeout * 1000);
      this._pending.set(rid, { resolve, reject, timer });
      this._send(this.encode(build(rid))).catch((err) => this._settle(rid, err));
    });
  }

  /**
   * Send a request that gets no reply unless it fails (its error lands in `errors`); resolves to
   * its rid once the socket took it. With `mark`, its reply is remembered for `waitAnswered`.
   */
  async send(build, mark = false) {
    if (this.closed) throw new ConnectionClosed("this client was closed");
    if (this.authError) throw new AuthFailed(ErrorCode.AUTH_FAILED, this.authError);
    const rid = this.nextRid();
    if (mark) this._marked.set(rid, null);
    const sent = this._send(this.encode(build(rid)));
    try {
      await sent;
    } catch (err) {
      this._marked.delete(rid);
      throw err;
    }
    return rid;
  }

  /**
   * Resolves to true once the marked request `rid` is answered (OK or ERR; an ERR is kept in
   * `errors`); to false as soon as `giveUp()` says the answer will never come (looked at every
   * SLICE_MS); rejects with RequestTimeout after `timeout` seconds, ConnectionClosed on close.
   */
  waitAnswered(rid, { timeout = this.timeout, giveUp = () => false } = {}) {
    if (this._answered.delete(rid)) return Promise.resolve(true);
    if (this.closed) return Promise.reject(new ConnectionClosed("this client was closed"));
    if (!this._marked.has(rid)) return Promise.resolve(false); // forgotten: nothing to wait for
    return new Promise((resolve, reject) => {
      const done = (finish, value) => {
        clearTimeout(deadline);
        clearInterval(looking);
        this._marked.delete(rid);
        finish(value);
      };
      const deadline = setTimeout(
        () =>
          done(
            reject,
            new RequestTimeout(
              `the event server at ${this.endpoint} has not handled this publisher's events in time ` +
                "(held back by a full block-mode subscriber, or down)",
            ),
          ),
        timeout * 1000,
      );
      const looking = setInterval(() => giveUp() && done(resolve, false), SLICE_MS);
      this._marked.set(rid, { answered: () => done(resolve, true), closed: (err) => done(reject, err) });
    });
  }

  /** The owner no longer cares whether the marked request `rid` is answered. */
  forget(rid) {
    this._marked.delete(rid);
    this._answered.delete(rid);
  }

  /** The first kept error (with a note of how many more there were), clearing them all. */
  takeError() {
    if (!this.errors.length) return null;
    const [first, ...rest] = this.errors;
    const more = rest.length + this.errorsDropped;
    this.errors = [];
    this.errorsDropped = 0;
    if (more) first.message += ` (and ${more} more error(s) for earlier unconfirmed publishes)`;
    return first;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    for (const rid of [...this._pending.keys()]) this._settle(rid, new ConnectionClosed("closed while waiting"));
    for (const waiter of [...this._marked.values()]) waiter?.closed(new ConnectionClosed("closed while waiting"));
    this._marked.clear();
    this._socket.close();
  }

  _send(frames) {
    const next = this._sending.then(() => this._socket.send(frames));
    this._sending = next.catch(() => {});
    return next.catch((err) => {
      if (err.code === "EAGAIN" && this.authError) {
        // Nothing is connected because the handshake fails: say that, not that it timed out.
        throw new AuthFailed(ErrorCode.AUTH_FAILED, `${this.authError} (${this.endpoint})`);
      }
      if (err.code === "EAGAIN") {
        throw new RequestTimeout(`the event server at ${this.endpoint} accepts nothing (down, or blocked)`);
      }
      throw this.closed ? new ConnectionClosed("closed while sending") : err;
    });
  }

  _settle(rid, error, body) {
    const waiter = this._pending.get(rid);
    if (!waiter) return false;
    this._pending.delete(rid);
    clearTimeout(waiter.timer);
    if (error) waiter.reject(error);
    else waiter.resolve(body);
    return true;
  }

  async _readReplies() {
    for await (const frames of this._socket) {
      let reply;
      try {
        reply = decodeReply(frames);
      } catch {
        continue; // not a reply this version understands: skip it, never crash on it
      }
      if (reply.type === "OK") {
        if (!this._settle(reply.rid, null, reply.body)) this._answer(reply.rid);
      } else {
        const error = errorFromReply(reply.code, reply.message);
        if (!this._settle(reply.rid, error)) {
          this._answer(reply.rid);
          this._keep(error);
        }
      }
    }
  }

  _answer(rid) {
    if (!this._marked.has(rid)) return;
    const waiter = this._marked.get(rid);
    this._marked.delete(rid);
    if (waiter) waiter.answered();
    else this._answered.add(rid);
  }

  _keep(error) {
    if (this.errors.length < MAX_KEPT_ERRORS) this.errors.push(error);
    else this.errorsDropped += 1;
  }

  async _watchHandshakes() {
    for await (const event of this._socket.events) {
      if (event.type === "handshake") this.authError = null;
      else if (event.type.startsWith("handshake:error")) {
        this.authError =
          event.type === "handshake:error:auth"
            ? "the server refused this client's key (a wrong passphrase, or a key not on its allow-list)"
            : MISMATCH;
        const error = new AuthFailed(ErrorCode.AUTH_FAILED, `${this.authError} (${this.endpoint})`);
        for (const rid of [...this._pending.keys()]) this._settle(rid, error);
      }
    }
  }
}

/** Delays between reconnection attempts: base, base*factor, ... up to cap, each cut by up to
 * `jitter` (a fraction) so that many clients do not come back in step (as clients/keeper.py). */
export class Backoff {
  constructor({ base = 0.1, cap = 5, factor = 2, jitter = 0.2 } = {}) {
    Object.assign(this, { base, cap, factor, jitter, attempt: 0 });
  }
  next() {
    const delay = Math.min(this.cap, this.base * this.factor ** this.attempt);
    this.attempt += 1;
    return delay * (1 - this.jitter * Math.random());
  }
}

/**
 * Keeps a client connected. `status` is "connecting", "connected", "down" or "closed"; every change
 * is emitted as "status".
 */
export class Keeper extends EventEmitter {
  constructor({ resolve, probe, restore, timeout, interval, liveness, keys, encode }) {
    super();
    Object.assign(this, { resolve, probe, restore, timeout, interval, liveness, keys, encode });
    this.status = "connecting";
    this.recoveries = 0; // sessions restored after the server lost them
    this.reconnections = 0; // times the server was found gone and again
    this.control = null;
    this._pulse = null;
    this._stopped = false;
    this._abort = new AbortController();
  }

  /** Wait, unless the keeper closes (no timer keeps the process alive after close) or is told
   * the server is gone first. */
  _sleep(seconds) {
    this._nap = new AbortController();
    const signal = AbortSignal.any([this._abort.signal, this._nap.signal]);
    return delay(seconds * 1000, undefined, { signal }).catch(() => {});
  }

  /** The server said it is stopping (a BYE on the subscriber's inbox): look for a server now,
   * without waiting for heartbeats to go unanswered. */
  gone() {
    this._toldGone = true;
    this._nap?.abort();
  }

  async start() {
    this.endpoint = await this.resolve(null);
    this.control = this._open(this.endpoint);
    this._pulse = this._open(this.endpoint);
    this._loop().catch((err) => this.emit("error", err));
  }

  _open(endpoint) {
    return new Control(endpoint, { timeout: this.timeout, keys: this.keys, encode: this.encode });
  }

  _set(status) {
    if (status === this.status) return;
    this.status = status;
    this.emit("status", status);
  }

  async _loop() {
    let lastOk = Date.now();
    while (!this._stopped) {
      await this._sleep(this.interval);
      if (this._stopped) return;
      if (this._toldGone) {
        this._toldGone = false;
        this._set("down");
        await this._reconnect();
        lastOk = Date.now();
        continue;
      }
      let intact;
      try {
        intact = await this.probe(this._pulse);
      } catch (err) {
        if (!(err instanceof EsError)) throw err;
        if ((Date.now() - lastOk) / 1000 >= this.liveness) {
          this._set("down");
          await this._reconnect();
          lastOk = Date.now();
        }
        continue;
      }
      lastOk = Date.now();
      if (!intact) await this._recover();
      this._set("connected");
    }
  }

  async _recover() {
    try {
      await this.restore(this.control);
      this.recoveries += 1;
    } catch (err) {
      if (!(err instanceof EsError)) throw err;
    }
  }

  async _reconnect() {
    const backoff = new Backoff();
    while (!this._stopped) {
      let endpoint;
      let pulse;
      try {
        endpoint = await this.resolve(this.endpoint);
        pulse = this._open(endpoint);
        const intact = await this.probe(pulse);
        this._pulse.close();
        this._pulse = pulse;
        if (endpoint !== this.endpoint) {
          const old = this.control;
          this.control = this._open(endpoint);
          this.endpoint = endpoint;
          old.close();
        }
        this.reconnections += 1;
        if (!intact) await this._recover();
        this._set("connected");
        return;
      } catch (err) {
        pulse?.close();
        if (!(err instanceof EsError) && !(err instanceof RangeError)) throw err;
        await this._sleep(backoff.next());
      }
    }
  }

  /** Run `action` on the current Control; once more on a new one if it was replaced meanwhile. */
  async call(action) {
    const control = this.control;
    try {
      return await action(control);
    } catch (err) {
      if (err instanceof ConnectionClosed && !this._stopped && this.control !== control) {
        return action(this.control);
      }
      throw err;
    }
  }

  close() {
    this._stopped = true;
    this._abort.abort();
    this.control?.close();
    this._pulse?.close();
    this._set("closed");
  }
}
