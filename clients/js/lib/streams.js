// What a subscriber expects next in each delivery stream, and where its ACKs go back: pure, no
// sockets (as clients/streams.py and the Servers of clients/inbox.py). The subscriber hands it each
// EV and LOST it reads (SPEC 5, 7.3).
//
// - The loss reported for a batch is the larger of what the server told (`lost`) and the gap in seq
//   the subscriber sees: they differ only when events were lost on the way (a broken connection).
// - After a delivery the next seq expected is one past its last event (or past a LOST's seq); never
//   earlier than before, so an old, late message cannot make a loss be counted twice.
// - Events below the seq expected were had already: a durable subscriber's events are sent again
//   after a reconnection or a server restart (SPEC 7.10), and dropped, so that the program sees
//   each once; the loss before them was reported when it was first told.
// - A stream not heard of before counts no gap: this subscriber may hold a durable name whose
//   stream an earlier subscriber consumed up to anywhere.
// - At most STREAMS_KEPT streams are remembered, the least recently heard forgotten first: a
//   subscriber that re-subscribes often does not grow them without bound.

/** Streams remembered (events of an older one may still arrive, SPEC 7.3). */
export const STREAMS_KEPT = 8;

/** The next seq expected in each recent stream (see above). */
export class Streams {
  constructor(kept = STREAMS_KEPT) {
    this.kept = kept;
    this._next = new Map(); // stream -> next seq, the most recently heard last
  }

  /**
   * Events `first` to `last` arrived, `lost` told before them: [the loss to report, how many of
   * them (from the first) were had already].
   */
  batch(stream, first, last, lost) {
    const expected = this._next.get(stream);
    this._expect(stream, Math.max(expected ?? 0, last + 1));
    if (expected === undefined) return [lost, 0];
    if (first < expected) return [0, Math.min(expected, last + 1) - first]; // sent again
    return [Math.max(lost, first - expected), 0];
  }

  /** A LOST notice: `lost` events up to `seq` were dropped. The loss to report. */
  notice(stream, seq, lost) {
    const expected = this._next.get(stream);
    this._expect(stream, Math.max(expected ?? 0, seq + 1));
    return expected === undefined ? lost : Math.max(lost, seq - expected + 1);
  }

  _expect(stream, seq) {
    this._next.delete(stream); // set again below: the most recently heard
    this._next.set(stream, seq);
    while (this._next.size > this.kept) this._next.delete(this._next.keys().next().value);
  }
}

/**
 * Where ACKs go back: the delivery connections (the inbox ROUTER's routing ids) each recent stream
 * came on, the newest last. A stream has one connection, but a durable subscriber's outlives it
 * (SPEC 7.10): after a reconnection or a restart of the server its events come again on a new one
 * while the old one may still hold some. An ACK goes to every connection of its stream; those gone
 * drop it (a ROUTER drops what has no peer).
 */
export class Servers {
  constructor(streams = STREAMS_KEPT, each = 4) {
    this._streams = streams;
    this._each = each;
    this._of = new Map(); // stream -> routing ids, oldest first; the most recently heard stream last
  }

  /** A delivery of `stream` came from the connection `server` (a routing id). */
  heard(stream, server) {
    let servers = this._of.get(stream) ?? [];
    this._of.delete(stream);
    if (!servers.length || !servers.at(-1).equals(server)) {
      const others = servers.filter((s) => !s.equals(server));
      servers = [...others.slice(Math.max(0, others.length - this._each + 1)), server];
    }
    this._of.set(stream, servers);
    while (this._of.size > this._streams) this._of.delete(this._of.keys().next().value);
  }

  /** The connections of `stream`, oldest first. */
  of(stream) {
    return this._of.get(stream) ?? [];
  }
}
