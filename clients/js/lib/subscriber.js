// Subscribe to subjects and patterns. The subscriber binds an inbox (a ROUTER) that the event server
// connects to and delivers on; it checks each batch's stream and sequence numbers, and reports gaps.
//
// Two ways to consume, as Node users expect: `sub.on("event", handler)` (with "gap" before an event
// that follows lost ones, and "gap" with a null event when the server tells of losses no event
// followed), or `for await (const event of sub)` / `await sub.next(timeout)`. Without an "event"
// listener, events wait in a queue; when the queue is full the inbox stops reading.
//
// Acknowledgements free room in this subscriber's queue on the server (SPEC 3.7): it sends at most
// a queue's worth of events not acknowledged. They go back on the inbox to the delivery connections
// the events' stream came on, every half queue (at most every ACK_EVERY events), at least every
// ACK_INTERVAL while events are consumed, and ACK_DRY seconds after the last event consumed.
//
// A durable subscriber (option `durable`, SPEC 7.10) is sent again, after a reconnection or a
// server restart, every event it had not acknowledged: those below the seq it expects are dropped
// here (lib/streams.js), so the program sees each event once. close() leaves its subscriptions on
// the server, which keeps its events for the next subscriber of its name.
//
// A subscription may ask for events from the server's history first (option `history`, SPEC
// 7.11): they come flagged `replayed`, before any later event, and every event a history rule
// keeps carries its seq there (`history`). A subscriber that asked for history and subscribes
// again after the server forgot it asks for the history after the last such event it got, so it
// misses nothing meanwhile; a durable one does not (its log has those events).
//
// A member of a queue group (option `group`, SPEC 7.12) shares the group's events with the other
// members: each goes to one of them, flagged `redelivered` when the member that had it went
// without acknowledging it. Its stream is an ordinary one: a durable group's member sends the
// option `durable` (the group's name), but is no durable subscriber (`durable` null, never
// `replaced`). It cannot ask for history, and close() leaves the group (an UNSUB of no names)
// without removing the group's subscriptions.

import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { EventEmitter } from "node:events";
import * as zmq from "zeromq";
import { Keeper } from "./connection.js";
import { EsError } from "./errors.js";
import { resolveEsUri } from "./naming.js";
import { decodePayload } from "./payload.js";
import { HEARTBEAT, LIVENESS, subjectList } from "./publisher.js";
import { asServer, chooseKeys, releaseServer } from "./security.js";
import { Servers, Streams } from "./streams.js";
import { HISTORY_KEYS, decodeDelivery, encodeRequest, publicId } from "./wire.js";

const ACK_EVERY = 256;
const ACK_INTERVAL = 1;
const ACK_DRY = 0.05;
const DEFAULT_QUEUE = 1000;

/** Events between acknowledgements for a queue of `queue` events (0: unbounded). */
const ackEvery = (queue) => (queue === 0 ? ACK_EVERY : Math.max(1, Math.min(ACK_EVERY, Math.floor((queue + 1) / 2))));

/**
 * What a subscription asks of the server's history (SPEC 7.11), checked: `{last: n}`,
 * `{since: time}` or `{from: seq, stream?: id}`, as the wire map of the option `history`; null for
 * none. TypeError for anything else.
 */
export function askedHistory(history) {
  if (history === undefined || history === null) return null;
  if (typeof history !== "object" || Array.isArray(history)) {
    throw new TypeError("history must be {last: n}, {since: time} or {from: seq, stream?: id}");
  }
  const unknown = Object.keys(history).filter((key) => !HISTORY_KEYS.includes(key));
  if (unknown.length) throw new TypeError(`history takes last, since, from and stream, not ${unknown.join(", ")}`);
  const given = (key) => history[key] !== undefined && history[key] !== null;
  const asked = ["last", "since", "from"].filter(given);
  if (asked.length !== 1) throw new TypeError("history must give one of last, since and from");
  const { last, since, from, stream } = history;
  if (given("last") && !(Number.isSafeInteger(last) && last >= 0)) {
    throw new TypeError("history last must be an integer from 0 to 2**53-1");
  }
  if (given("since") && !(typeof since === "number" && Number.isFinite(since))) {
    throw new TypeError("history since must be a finite number (seconds since the epoch)");
  }
  if (given("from") && !(Number.isSafeInteger(from) && from >= 1)) {
    throw new TypeError("history from must be an integer from 1 to 2**53-1");
  }
  if (given("stream") && !given("from")) throw new TypeError("history gives stream only with from");
  if (given("stream") && !(Number.isSafeInteger(stream) && stream >= 1)) {
    throw new TypeError("history stream must be an integer from 1 to 2**53-1");
  }
  return given("stream") ? { from, stream } : { [asked[0]]: history[asked[0]] };
}

/** A subscriber's own durable name (SPEC 7.10), checked; null for none. TypeError for a bad one. */
function ownDurable(durable, name) {
  if (durable == null) return null;
  if (typeof durable === "boolean") throw new TypeError("durable: true is for a group's members: give a durable name");
  if (typeof durable !== "string" || !durable) throw new TypeError("durable must be a non-empty name");
  if (durable.startsWith("$")) throw new TypeError("durable names starting with $ are the server's own");
  if (name != null) throw new TypeError("a durable subscriber cannot also be a named service");
  return durable;
}

/**
 * The option `durable` a queue group's member sends (SPEC 7.12): the group's name for a durable
 * group (`durable` true or the group's name), else none. TypeError for a bad group, a `name` with
 * it, or another durable name.
 */
export function memberDurable(group, durable, name) {
  if (typeof group !== "string" || !group) throw new TypeError("group must be a non-empty name");
  if (group.startsWith("$")) throw new TypeError("group names starting with $ are the server's own");
  if (name != null) throw new TypeError("a group's member cannot also be a named service");
  if (durable === true || durable === group) return group;
  if (durable == null || durable === false) return null;
  throw new TypeError("a durable group's durable name is the group's: give durable: true");
}

/** One event as a subscriber receives it. `msg` decodes the payload on first use. */
export class Event {
  constructor(
    {
      subject,
      time,
      seq,
      format,
      payload,
      retained = false,
      resumed = false,
      history = null,
      replayed = false,
      redelivered = false,
    },
    stream,
  ) {
    Object.assign(this, { subject, time, seq, format, payload, stream, retained });
    this.lost = 0; // events lost just before this one (reported by the server or seen in seq)
    this.resumed = resumed; // the first event after a restart: events may have been lost
    this.history = history; // its seq in the server's history (SPEC 7.11), or null
    this.replayed = replayed; // sent from the history because a subscription asked for it
    this.redelivered = redelivered; // a queue group's, handed here after the member that had it went
  }

  get msg() {
    if (!("_msg" in this)) this._msg = decodePayload(this.payload, this.format);
    return this._msg;
  }
}

// A loss the server told with no event after it, waiting in the queue behind earlier events.
class Notice {
  constructor(lost) {
    this.lost = lost;
  }
}

function hostOf(endpoint) {
  const host = endpoint.slice("tcp://".length, endpoint.lastIndexOf(":"));
  return host.startsWith("[") ? host.slice(1, -1) : host;
}

/** The local address this host uses to reach `endpoint` (a UDP connect sends nothing). */
function localAddressFor(endpoint) {
  const host = hostOf(endpoint);
  const port = Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
  return new Promise((resolve, reject) => {
    const socket = createSocket(host.includes(":") ? "udp6" : "udp4");
    socket.on("error", reject);
    socket.connect(port, host, () => {
      const { address } = socket.address();
      socket.close();
      resolve(address);
    });
  });
}

const literal = (host) => (host.includes(":") ? `[${host}]` : host);

export class Subscriber extends EventEmitter {
  /**
   * @param {{esUri?: string, ident?: string, keys?: object, host?: string, publishHost?: string,
   *   policy?: "block"|"drop", queueSize?: number, maxStall?: number, name?: string,
   *   durable?: string|boolean, group?: string, timeout?: number, heartbeat?: number,
   *   liveness?: number}} options
   */
  static async connect(options = {}) {
    const subscriber = new Subscriber(options);
    try {
      await subscriber._start(options);
    } catch (err) {
      await subscriber.close();
      throw err;
    }
    return subscriber;
  }

  constructor({
    esUri,
    ident,
    keys,
    policy,
    queueSize,
    maxStall,
    name,
    durable,
    group,
    timeout = 10,
    heartbeat = HEARTBEAT,
    liveness = LIVENESS,
  } = {}) {
    super();
    this.sid = randomBytes(16).toString("hex");
    this.keys = chooseKeys({ ident, keys });
    // A queue group's member (SPEC 7.12): each event of the group goes to one member. Its durable
    // option is the group's (a durable group), not a durable name of its own: what a durable
    // subscriber does (`replaced`, close() leaving its subscriptions, no history asked again) is
    // not a member's, whose stream is an ordinary one.
    this.group = group ?? null;
    const wired = this.group === null ? ownDurable(durable, name) : memberDurable(group, durable, name);
    // The durable name (SPEC 7.10): the server keeps this subscriber's events while it is away, and
    // gives them to the next subscriber of that name. close() leaves it; unsubscribe from
    // everything to end it. Null for a member, whatever its group is.
    this.durable = this.group === null ? wired : null;
    this.replaced = false; // another subscriber took our durable name: no more events come here
    this.historyStream = null; // the server's history stream (SPEC 7.11), once a reply told it
    this.replayed = 0; // events of the history the last subscription that asked for them gets
    this._askedHistory = false; // asked once: subscribing again asks for what came after
    this._historySeen = 0; // the highest history seq of an event handed on to the program
    this.options = {
      policy,
      queue: queueSize,
      max_stall: maxStall,
      key: this.keys?.publicKey,
      name,
      durable: wired,
      group: this.group,
    };
    this._subjects = new Set(); // this subscriber's own record, replayed after a reconnect
    this._patterns = new Set();
    this.badDeliveries = 0;
    this.lost = 0; // events the server reported lost (or seen missing in seq), in all
    this._queue = [];
    this._waiters = [];
    this._room = null; // resolves when a full queue has room again
    this._limit = queueSize || DEFAULT_QUEUE;
    this._ackEvery = ackEvery(queueSize ?? DEFAULT_QUEUE);
    this._streams = new Streams(); // the next seq expected in each stream
    this._resumed = false;
    this._streamBefore = null; // the stream of the last events before a recovery
    this._streamNow = null; // the stream of the last events taken
    this._lastSeq = 0; // the last event the program is done with, and its stream: what an ACK says
    this._handed = null; // the event handed to a reader, done when it asks for the next one
    this._lastStream = 0;
    this._unacked = 0;
    this._ackedAt = Date.now();
    this._servers = new Servers(); // the delivery connections of each stream: ACKs go there
    this._sending = false; // zeromq.js allows one send at a time on a socket
    this._dryTimer = null;
    this._closed = false;
    this._domain = `es-inbox-${this.sid}`;
    this._keeper = new Keeper({
      resolve: (avoid) => resolveEsUri(esUri, { keys: this.keys, avoid }),
      probe: (control) => this._probe(control, heartbeat),
      restore: (control) => this._replay(control),
      timeout,
      interval: heartbeat,
      liveness,
      keys: this.keys,
      encode: encodeRequest,
    });
    this._keeper.on("status", (status) => this.emit("status", status));
    this._keeper.on("error", (err) => this.emit("error", err));
  }

  async _start({ host, publishHost }) {
    await this._keeper.start();
    const bindHost = host || (await localAddressFor(this._keeper.endpoint));
    this._inbox = new zmq.Router({ linger: 0, receiveHighWaterMark: this._limit + 16, ipv6: bindHost.includes(":") });
    asServer(this._inbox, this.keys, this._domain); // only the event server's key may deliver
    await this._inbox.bind(`tcp://${literal(bindHost)}:0`);
    const port = this._inbox.lastEndpoint.slice(this._inbox.lastEndpoint.lastIndexOf(":") + 1);
    this.endpoint = `tcp://${literal(publishHost || bindHost)}:${port}`;
    this._readInbox().catch((err) => this._closed || this.emit("error", err));
  }

  get esUri() {
    return this._keeper.endpoint;
  }

  get status() {
    return this._keeper.status;
  }

  get recoveries() {
    return this._keeper.recoveries;
  }

  // --- subscriptions ---------------------------------------------------------------------------------

  /** What a SUB, SUBMATCH or UNSUB reply tells: the heartbeat the server wants, our queue size. */
  _learn(body) {
    const { heartbeat } = body;
    if (typeof heartbeat === "number" && heartbeat > 0 && heartbeat < this._keeper.interval) {
      this._keeper.interval = heartbeat; // the server wants to hear from us this often
    }
    if (Number.isInteger(body.queue) && body.queue >= 0) this._ackEvery = ackEvery(body.queue);
    if (Number.isSafeInteger(body.history) && Number.isSafeInteger(body.replayed)) {
      if (this.historyStream !== null && body.history !== this.historyStream) this._historySeen = 0; // another history: its seqs begin again
      this.historyStream = body.history; // asked for history: its stream, and how much comes
      this.replayed = body.replayed;
    }
    return body;
  }

  /** This subscriber's own record: [subjects, patterns], as sets (copies). */
  get subscriptions() {
    return [new Set(this._subjects), new Set(this._patterns)];
  }

  /** @deprecated `subscriptions[0]`, as in the Python client. */
  get subjects() {
    return this.subscriptions[0];
  }

  /** @deprecated `subscriptions[1]`, as in the Python client. */
  get patterns() {
    return this.subscriptions[1];
  }

  /** The public id the server lists this subscriber by (the sid is its secret; SPEC 7.1). */
  get id() {
    return publicId(this.sid);
  }

  /**
   * Subscribe to one subject or several (exact, any case); resolves to the subscription count.
   * `history`: first the events the server's history holds on them (SPEC 7.11), before any later
   * event: `{last: 100}`, `{since: time}` or `{from: seq, stream: id}`; `replayed` then says how
   * many, `historyStream` the history's stream.
   */
  async subscribe(subjects, options = {}) {
    const list = subjectList(subjects);
    const asking = this._asking(options);
    const body = await this._keeper.call((c) =>
      c.request((rid) => ({
        type: "SUB",
        rid,
        sid: this.sid,
        endpoint: this.endpoint,
        subjects: list,
        options: asking,
      })),
    );
    this._learn(body);
    list.forEach((s) => this._subjects.add(s));
    return body.count;
  }

  /** Subscribe to RE2 patterns (any case, anchored at the start). `history` as for subscribe(). */
  async subscribeMatch(patterns, options = {}) {
    const list = subjectList(patterns);
    const asking = this._asking(options);
    const body = await this._keeper.call((c) =>
      c.request((rid) => ({
        type: "SUBMATCH",
        rid,
        sid: this.sid,
        endpoint: this.endpoint,
        patterns: list,
        options: asking,
      })),
    );
    this._learn(body);
    list.forEach((p) => this._patterns.add(p));
    return body.count;
  }

  // The options of a SUB or SUBMATCH asking for `history` (none: this subscriber's own).
  _asking(options) {
    if (options === null || typeof options !== "object" || Array.isArray(options)) {
      throw new TypeError("the options of a subscription must be an object, such as {history: {last: 10}}");
    }
    const unknown = Object.keys(options).filter((key) => key !== "history");
    if (unknown.length) throw new TypeError(`a subscription takes the option history, not ${unknown.join(", ")}`);
    const asked = askedHistory(options.history);
    if (asked === null) return this.options;
    if (this.group !== null) throw new TypeError("a group's member cannot ask for history (SPEC 7.12)");
    this._askedHistory = true;
    return { ...this.options, history: asked };
  }

  // What a subscriber that asked for history asks when it subscribes again after the server forgot
  // it: the history after the last event of it handed on (SPEC 7.11). A durable subscriber's log
  // has those already; a group's member never asks for history.
  _historyAgain() {
    if (!this._askedHistory || this.durable !== null || this.group !== null) return null;
    const from = this._historySeen + 1;
    return this.historyStream === null ? { from } : { from, stream: this.historyStream };
  }

  /** Remove subjects or patterns; resolves to the subscriptions left. A group's member removes them
   * from its group, for every member (SPEC 7.12). */
  async unsubscribe(names) {
    const list = subjectList(names);
    const body = await this._keeper.call((c) =>
      c.request((rid) => ({ type: "UNSUB", rid, sid: this.sid, subjects: list })),
    );
    for (const name of list) {
      this._patterns.delete(name);
      for (const s of this._subjects) if (s.toLowerCase() === name.toLowerCase()) this._subjects.delete(s);
    }
    return body.count;
  }

  async _probe(control, heartbeat) {
    const body = await control.request((rid) => ({ type: "HEARTBEAT", rid, sid: this.sid }), heartbeat);
    // Told once (later heartbeats get known: false), and only to a durable subscriber.
    if (body.evicted === "replaced" && this.durable !== null) this._lose();
    // Replaced, we must not subscribe again: two programs would take the name from each other.
    if (this.replaced || (!this._subjects.size && !this._patterns.size)) return true;
    // Known with another inbox: someone subscribed with our sid elsewhere; take it back.
    const elsewhere = typeof body.endpoint === "string" && body.endpoint !== this.endpoint;
    return Boolean(body.known) && !elsewhere;
  }

  // Another subscriber took our durable name (SPEC 7.10): say so once, and leave it to it.
  _lose() {
    if (this.replaced) return;
    this.replaced = true;
    if (this.listenerCount("replaced")) this.emit("replaced", this.durable);
    else process.emitWarning(`durable ${JSON.stringify(this.durable)} was taken by another subscriber`, "EsWarning");
  }

  async _replay(control) {
    const again = this._historyAgain();
    const options = again === null ? this.options : { ...this.options, history: again };
    const asked = [];
    if (this._subjects.size) asked.push({ type: "SUB", subjects: [...this._subjects] });
    if (this._patterns.size) asked.push({ type: "SUBMATCH", patterns: [...this._patterns] });
    let kept = false; // a durable subscriber whose events the server kept: none lost (SPEC 3.1)
    // Set before asking: the first event may come before the answer (a node of a cluster answers
    // once its peers know, SPEC 15.4, and delivers meanwhile). It is the first of a new stream:
    // those still on their way from the old server are not flagged. Not for a durable subscriber,
    // whose events the server most likely kept: they come before the answer too, and only the
    // answer says whether they were kept.
    const durable = this.durable !== null;
    this._streamBefore = this._streamNow;
    this._resumed = !durable;
    for (const request of asked) {
      const body = this._learn(
        await control.request((rid) => ({ ...request, rid, sid: this.sid, endpoint: this.endpoint, options })),
      );
      kept = kept || body.kept === true;
    }
    this._resumed = !kept && (durable || this._resumed);
  }

  // --- receiving -----------------------------------------------------------------------------------

  async _readInbox() {
    for await (const [server, ...frames] of this._inbox) {
      let delivery;
      try {
        delivery = decodeDelivery(frames);
      } catch {
        this.badDeliveries += 1;
        continue;
      }
      if (delivery.sid !== this.sid) {
        this.badDeliveries += 1;
        continue;
      }
      this._servers.heard(delivery.stream, server); // where our ACKs go back to
      if (delivery.type === "BYE") {
        this._keeper.gone(); // find the server again now, not after its silence
        continue;
      }
      if (delivery.type === "LOST") {
        this._notice(delivery);
        continue;
      }
      for (const event of this._eventsOf(delivery)) {
        if (this.listenerCount("event")) this._dispatch(event);
        else this._enqueue(event);
      }
      if (this._room) await this._room;
    }
  }

  // The server dropped events and no event followed them: say so now.
  _notice(loss) {
    const lost = this._streams.notice(loss.stream, loss.seq, loss.lost);
    this.lost += lost;
    // In its place among the events. Told now to an "event" listener (it got every event
    // already) or to a reader waiting in next() (it has taken every event); else it waits in the
    // queue behind the events not read yet, or the one handed to a reader still busy with it.
    if (this.listenerCount("event") || this._waiters.length) this.emit("gap", lost, null);
    else this._queue.push(new Notice(lost));
  }

  // The new events of a batch, the first marked with the loss before it. Those had already (a
  // durable subscriber's, sent again) are dropped, and still acknowledged: the server waits for
  // that room.
  _eventsOf(delivery) {
    const { stream, events: items } = delivery;
    const [lost, had] = this._streams.batch(stream, items[0].seq, items.at(-1).seq, delivery.lost);
    if (had) this._owe();
    const events = items.slice(had).map((e) => new Event(e, stream));
    if (!events.length) return events;
    events[0].lost = lost;
    this.lost += lost;
    if (this._resumed && stream !== this._streamBefore) {
      this._resumed = false;
      events[0].resumed = true;
    }
    this._streamNow = stream;
    for (const event of events) if (event.history > this._historySeen) this._historySeen = event.history;
    return events;
  }

  _dispatch(event) {
    if (event.resumed) this.emit("gap", null, event);
    if (event.lost) this.emit("gap", event.lost, event);
    try {
      this.emit("event", event);
    } finally {
      this._consumed(event);
    }
  }

  _enqueue(event) {
    const waiter = this._waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.resolve(event);
      this._handed = event; // done when the reader asks for the next one
      return;
    }
    this._queue.push(event);
    if (this._queue.length >= this._limit && !this._room) {
      this._room = new Promise((resolve) => (this._wake = resolve));
    }
  }

  // The reader asks for another event (or closes): the one it was handed is done. An event a
  // program was still handling when it died is therefore sent again (a durable subscriber's) or to
  // another member (a group's).
  _done() {
    const handed = this._handed;
    if (!handed) return;
    this._handed = null;
    this._consumed(handed);
  }

  _consumed(event) {
    this._lastSeq = event.seq;
    this._lastStream = event.stream;
    this._owe();
  }

  // An ACK is due: now if half a queue (or ACK_INTERVAL) went by since the last, else soon.
  _owe() {
    this._unacked += 1;
    if (this._unacked >= this._ackEvery || Date.now() - this._ackedAt >= ACK_INTERVAL * 1000) this._ack();
    else if (!this._dryTimer) this._dryTimer = setTimeout(() => this._ack(), ACK_DRY * 1000);
  }

  // Tell the server how far we got, on every recent connection of the stream (SPEC 7.10: a durable
  // subscriber's events may come on several); one send at a time.
  _ack() {
    clearTimeout(this._dryTimer);
    this._dryTimer = null;
    const servers = this._servers.of(this._lastStream);
    if (!this._unacked || !this._lastSeq || !servers.length || this._closed) return;
    if (this._sending) {
      this._dryTimer = setTimeout(() => this._ack(), ACK_DRY * 1000);
      return;
    }
    const seq = this._lastSeq;
    this._unacked = 0;
    this._ackedAt = Date.now();
    this._sending = true;
    const frames = encodeRequest({ type: "ACK", rid: 0, sid: this.sid, seq });
    this._sendAll(servers, frames).finally(() => (this._sending = false));
  }

  async _sendAll(servers, frames) {
    for (const server of servers) {
      try {
        await this._inbox.send([server, ...frames]);
      } catch {
        // A closed inbox, a connection gone or no room towards it: the next ACK says it all.
      }
    }
  }

  /** The next event, or null after `timeout` seconds (or once closed). */
  next(timeout) {
    this._done();
    while (this._queue.length) {
      const event = this._queue.shift();
      if (this._room && this._queue.length < this._limit / 2) {
        this._room = null;
        this._wake();
      }
      if (event instanceof Notice) {
        this.emit("gap", event.lost, null);
        continue;
      }
      this._handed = event; // done when the reader asks for the next one
      return Promise.resolve(event);
    }
    if (this._closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const waiter = { resolve, timer: null };
      if (timeout !== undefined && timeout !== null) {
        waiter.timer = setTimeout(() => {
          this._waiters.splice(this._waiters.indexOf(waiter), 1);
          resolve(null);
        }, timeout * 1000);
      }
      this._waiters.push(waiter);
    });
  }

  async *[Symbol.asyncIterator]() {
    while (!this._closed || this._queue.length) {
      const event = await this.next();
      if (event === null) return;
      yield event;
    }
  }

  /** Unsubscribe everything (best effort), then close; iterators end. A durable subscriber's
   * subscriptions stay: the server keeps its events for the next subscriber of its name. A
   * group's member leaves its group (an UNSUB of no names): the group's subscriptions stay, and
   * what it held goes to the other members. */
  async close() {
    if (this._closed) return;
    this._done(); // closing: the program is done with what it had
    this._closed = true;
    const member = this.group !== null; // its subjects are the group's: naming them removes them
    const names = this.durable === null && !member ? [...this._subjects, ...this._patterns] : [];
    if ((names.length || member) && this._keeper.control) {
      try {
        if (member && this._lastSeq) {
          // What it handled is done, not for the others: on the control socket, read before the UNSUB.
          const seq = this._lastSeq;
          await this._keeper.control.send((rid) => ({ type: "ACK", rid, sid: this.sid, seq }));
        }
        await this._keeper.control.request((rid) => ({ type: "UNSUB", rid, sid: this.sid, subjects: names }), 2);
      } catch (err) {
        if (!(err instanceof EsError)) throw err;
      }
    }
    clearTimeout(this._dryTimer);
    this._keeper.close();
    this._inbox?.close();
    releaseServer(this._domain);
    for (const waiter of this._waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.resolve(null);
    }
    if (this._room) this._wake();
  }
}
