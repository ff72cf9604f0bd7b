// The publisher's outbox: unconfirmed events on their way to the server (clients/outbox.py, with
// Node's event loop where Python has a flusher thread).
//
// A publish that finds the publisher idle (nothing gathered, no send under way, and `linger`
// seconds since the last send) is sent at once, alone: gathering never delays light traffic. One
// that comes sooner joins a batch, which goes out as one PUB when it is full or, when the program
// stops publishing, from a setImmediate callback: as soon as the code running now and the promise
// callbacks it queued are done. So the publishes of one tick (a loop of `await pub.publish(...)`
// is one) travel together, and no event waits for more than that tick.
//
// Invariants:
// - Events leave in the order they were put: every send is a step of one chain, run one after the
//   other, and `after(task)` runs a task (a confirmed publish, a flush's PING) as a step too,
//   after what was gathered before it has been sent.
// - A batch holds at most MAX_ITEMS events and, unless one publish alone is larger, MAX_BYTES of
//   payload; every server accepts that much in one PUB (SPEC.md 3.4).
// - What waits here is bounded: a put that sends (the batch is full, or the publisher was idle)
//   resolves only once that send is done, and rejects with its error.
// - An error of a send nobody waits for (a batch sent from the callback, or by drain()) is thrown
//   by the next put(), drain() or after(), once.

import { PUB_BYTES_ACCEPTED, PUB_ITEMS_ACCEPTED } from "./wire.js";

export const MAX_ITEMS = PUB_ITEMS_ACCEPTED;
export const MAX_BYTES = PUB_BYTES_ACCEPTED;
/** Publishes closer together than this (seconds) to the last send are gathered: far less than a
 * paced publisher's interval (200 us at 5,000 events a second), far more than a tight loop's. */
export const LINGER = 100e-6;

const seconds = () => performance.now() / 1000;

export class Outbox {
  /**
   * @param {(items: object[], size: number) => Promise<void>} send sends one PUB of `items`, whose
   *   payloads are `size` bytes together
   * @param {{linger?: number, now?: () => number, defer?: (f: () => void) => any,
   *   cancel?: (handle: any) => void}} options `now` in seconds; `defer`/`cancel` as setImmediate
   */
  constructor(send, { linger = LINGER, now = seconds, defer = setImmediate, cancel = clearImmediate } = {}) {
    Object.assign(this, { linger, _send: send, _now: now, _defer: defer, _cancel: cancel });
    this._items = [];
    this._bytes = 0;
    this._tail = Promise.resolve(); // the last step of the chain; it never rejects
    this._busy = 0; // steps on the chain not finished
    this._lastSend = -Infinity;
    this._timer = null;
    this._error = null;
    this._closed = false;
    this.batches = 0; // PUB messages sent for more than one event (for tests and statistics)
  }

  /** Send `items` now if the publisher is idle, else gather them (see the module). */
  put(items, size) {
    this._raiseError();
    const steps = [];
    if (this._items.length && this._bytes + size > MAX_BYTES) steps.push(this._sendGathered(false));
    const idle = !this._items.length && this._busy === 0 && this._now() - this._lastSend >= this.linger;
    this._items.push(...items);
    this._bytes += size;
    if (idle || this._items.length >= MAX_ITEMS) steps.push(this._sendGathered(false));
    else if (this._timer === null && !this._closed) {
      this._timer = this._defer(() => {
        this._timer = null;
        this._sendGathered(true);
      });
    }
    return Promise.all(steps).then(() => {});
  }

  /** Send what was gathered now; resolves once every send asked for before is done, or throws
   * the error one of them met (before a flush, or closing). */
  async drain() {
    this._sendGathered(true);
    await this._tail;
    this._raiseError();
  }

  /**
   * Run `task` once what was gathered before it has been sent: resolves to `{ result }`, what
   * `task` returned. A promise it returns (a request's reply) is not waited for here, so later
   * sends do not wait for a round trip.
   */
  after(task) {
    this._sendGathered(true);
    return this._step(() => {
      this._raiseError();
      const result = task();
      if (result instanceof Promise) result.catch(() => {}); // its owner awaits it
      return { result };
    });
  }

  /** Stop; what is still gathered is not sent (drain first). */
  close() {
    this._closed = true;
    this._stopTimer();
  }

  _raiseError() {
    const error = this._error;
    this._error = null;
    if (error) throw error;
  }

  _stopTimer() {
    if (this._timer !== null) this._cancel(this._timer);
    this._timer = null;
  }

  /** Everything gathered, as one send on the chain (or null if nothing is). With `keep`, its
   * error is kept for the next call instead of rejecting the step. */
  _sendGathered(keep) {
    this._stopTimer();
    if (!this._items.length) return null;
    const items = this._items;
    const size = this._bytes;
    this._items = [];
    this._bytes = 0;
    if (items.length > 1) this.batches += 1;
    const send = () => this._send(items, size);
    if (!keep) return this._step(send);
    return this._step(() =>
      send().catch((err) => {
        this._error ??= err;
      }),
    );
  }

  _step(work) {
    this._busy += 1;
    const step = this._tail.then(work).finally(() => {
      this._busy -= 1;
      this._lastSend = this._now();
    });
    this._tail = step.catch(() => {});
    return step;
  }
}
