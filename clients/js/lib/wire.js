// The wire codec of SPEC.md: messages to frames and frames to messages, with no sockets. Every
// decoder checks what it reads and throws ProtocolError with the code a server would use; it never
// throws anything else for bad input.
//
// Messages are plain objects shaped as in vectors.json: {type: "SUB", rid, sid, endpoint,
// subjects, options}, {type: "OK", rid, body}, {type: "EV", sid, stream, lost, events}, ...
// Payloads are Uint8Array (Buffer).
//
// One difference from the Python encoder, which the spec allows: JavaScript has no integral float,
// so a number like 30.0 is written as the integer 30 (decoders must accept integers for times and
// seconds).

import { createHash } from "node:crypto";
import { decode as mpDecode, encode as mpEncode, ExtData } from "@msgpack/msgpack";
import { ErrorCode, ProtocolError } from "./errors.js";

export const VERSION = 1;
export const MAX_INT = Number.MAX_SAFE_INTEGER; // 2**53 - 1
export const MAX_HEADER_BYTES = 1 << 20;
export const MAX_FRAMES = 10_001;
export const MAX_DEPTH = 32;
/** Senders put payloads inside the header (one frame for the whole message) when together they
 * are no larger than this (SPEC 3.4); larger ones travel in frames of their own. */
export const INLINE_BYTES = 256 << 10;
/** Every server accepts a PUB of this many items and payload bytes (its limits cannot be set
 * lower), so a client may gather that much into one PUB without asking the server first. */
export const PUB_ITEMS_ACCEPTED = 256;
export const PUB_BYTES_ACCEPTED = 256 << 10;

const fail = (code, message, rid = 0) => new ProtocolError(code, message, rid);

/** A msgpack value as one frame. */
export function pack(value) {
  const bytes = mpEncode(value, { ignoreUndefined: true });
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function unpack(frame, what) {
  try {
    return mpDecode(frame);
  } catch (err) {
    throw fail(ErrorCode.BAD_REQUEST, `${what} is not valid msgpack (${err.message})`);
  }
}

// --- field readers ---------------------------------------------------------------------------------

const isUint = (v) => Number.isSafeInteger(v) && v >= 0;

function uint(v, name) {
  if (!isUint(v)) throw fail(ErrorCode.BAD_REQUEST, `${name} must be an integer from 0 to 2**53-1`);
  return v;
}

function text(v, name) {
  if (typeof v !== "string") throw fail(ErrorCode.BAD_REQUEST, `${name} must be a string`);
  return v;
}

function list(v, name) {
  if (!Array.isArray(v)) throw fail(ErrorCode.BAD_REQUEST, `${name} must be an array`);
  return v;
}

function time(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw fail(ErrorCode.BAD_REQUEST, "time must be a finite number");
  }
  return v;
}

function format(v) {
  if (!Number.isInteger(v) || v < 0 || v > 127) {
    throw fail(ErrorCode.BAD_REQUEST, "format must be an integer from 0 to 127");
  }
  return v;
}

/** Only core msgpack types in a header: no bin, no extension types, nested at most MAX_DEPTH. */
function plain(v, name, depth = 0) {
  if (v === null || ["boolean", "number", "string"].includes(typeof v)) return v;
  if (v instanceof Uint8Array || v instanceof Date || v instanceof ExtData) {
    throw fail(ErrorCode.BAD_REQUEST, `${name} holds a value that is not a core msgpack type`);
  }
  if (depth >= MAX_DEPTH) throw fail(ErrorCode.BAD_REQUEST, `${name} is nested deeper than ${MAX_DEPTH}`);
  if (Array.isArray(v)) return v.map((x) => plain(x, name, depth + 1));
  if (typeof v === "object" && !(v instanceof Map)) {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = plain(x, name, depth + 1);
    return out;
  }
  throw fail(ErrorCode.BAD_REQUEST, `${name} holds a value that is not a core msgpack type`);
}

function body(v, name) {
  if (v === null || typeof v !== "object" || Array.isArray(v) || v instanceof Uint8Array) {
    throw fail(ErrorCode.BAD_REQUEST, `${name} must be a map with string keys`);
  }
  return plain(v, name);
}

/** Unpack and check a header frame: an array that starts [version, command]. */
function header(frames) {
  if (!frames.length) throw fail(ErrorCode.BAD_REQUEST, "a message needs at least a header frame");
  if (frames.length > MAX_FRAMES) throw fail(ErrorCode.TOO_LARGE, `more than ${MAX_FRAMES} frames`);
  if (frames[0].length > MAX_HEADER_BYTES) {
    throw fail(ErrorCode.TOO_LARGE, `header frame over ${MAX_HEADER_BYTES} bytes`);
  }
  const h = unpack(frames[0], "header");
  if (!Array.isArray(h) || h.length < 2) {
    throw fail(ErrorCode.BAD_REQUEST, "header must be an array [version, command, ...]");
  }
  const rid = h.length > 2 && isUint(h[2]) ? h[2] : 0;
  if (h[0] !== VERSION) throw fail(ErrorCode.BAD_VERSION, `protocol version ${VERSION} is the only one`, rid);
  if (typeof h[1] !== "string") throw fail(ErrorCode.BAD_REQUEST, "command must be a string", rid);
  return h;
}

function fields(h, count) {
  if (h.length !== count) {
    throw fail(ErrorCode.BAD_REQUEST, `${h[1]} header has ${h.length} elements, not ${count}`);
  }
}

// --- decoding what a client receives ---------------------------------------------------------------

/** A reply: {type: "OK", rid, body} or {type: "ERR", rid, code, message}. */
export function decodeReply(frames) {
  const h = header(frames);
  if (frames.length !== 1) throw fail(ErrorCode.BAD_REQUEST, "a reply is a single header frame");
  if (h[1] === "OK") {
    fields(h, 4);
    return { type: "OK", rid: uint(h[2], "rid"), body: body(h[3], "body") };
  }
  if (h[1] === "ERR") {
    fields(h, 5);
    return { type: "ERR", rid: uint(h[2], "rid"), code: text(h[3], "code"), message: text(h[4], "message") };
  }
  throw fail(ErrorCode.UNKNOWN_COMMAND, `unknown reply ${String(h[1]).slice(0, 40)}`);
}

/**
 * What a subscriber's ROUTER receives (without the routing-id frame): an event batch
 * {type: "EV", sid, stream, lost, events}, a loss notice {type: "LOST", sid, stream, lost, seq}, or a
 * goodbye {type: "BYE", sid, stream} from a server that is stopping.
 */
export function decodeDelivery(frames) {
  const h = header(frames);
  if (h[1] === "LOST") return decodeLoss(h, frames);
  if (h[1] === "BYE") return decodeBye(h, frames);
  if (h[1] !== "EV") throw fail(ErrorCode.UNKNOWN_COMMAND, `unknown delivery ${String(h[1]).slice(0, 40)}`);
  const inline = h.length === 8;
  if (!inline) fields(h, 7);
  const sid = text(h[2], "sid");
  const stream = uint(h[3], "stream");
  const lost = uint(h[4], "lost");
  const first = uint(h[5], "first");
  if (first === 0) throw fail(ErrorCode.BAD_REQUEST, "first must be at least 1");
  const metas = list(h[6], "events");
  if (metas.length === 0) throw fail(ErrorCode.BAD_REQUEST, "an EV carries at least one event");
  if (metas.length - 1 > MAX_INT - first) {
    throw fail(ErrorCode.BAD_REQUEST, "an EV's last seq must be at most 2**53-1");
  }
  const payloads = inline ? inlinePayloads(h[7], frames, metas.length) : frames.slice(1);
  if (metas.length !== payloads.length) {
    throw fail(ErrorCode.BAD_REQUEST, `EV lists ${metas.length} events but carries ${payloads.length}`);
  }
  // Events carry no seq of their own: they are numbered one by one from `first` (SPEC section 5).
  const events = metas.map((meta, i) => {
    if (!Array.isArray(meta) || (meta.length !== 3 && meta.length !== 4)) {
      throw fail(ErrorCode.BAD_REQUEST, "each EV event must be [subject, time, format, flags?]");
    }
    const flags = meta.length === 4 ? body(meta[3], "event flags") : {};
    const event = {
      seq: first + i,
      subject: text(meta[0], "subject"),
      time: time(meta[1]),
      format: format(meta[2]),
      payload: Buffer.from(payloads[i]),
    };
    if (flags.retained === true) event.retained = true;
    if (flags.resumed === true) event.resumed = true;
    // Its seq in the server's history (SPEC 7.11); a flag of another type is ignored, as unknown
    // flags are.
    if (Number.isSafeInteger(flags.history) && flags.history > 0) event.history = flags.history;
    if (flags.replayed === true) event.replayed = true;
    if (flags.redelivered === true) event.redelivered = true; // a queue group's, handed again (SPEC 7.12)
    return event;
  });
  return inline ? { type: "EV", sid, stream, lost, events, inline } : { type: "EV", sid, stream, lost, events };
}

// A loss notice (SPEC section 5.1): `lost` events up to and including `seq` were dropped.
function decodeLoss(h, frames) {
  if (frames.length !== 1) throw fail(ErrorCode.BAD_REQUEST, "a loss notice is a single header frame");
  fields(h, 6);
  const sid = text(h[2], "sid");
  const stream = uint(h[3], "stream");
  const lost = uint(h[4], "lost");
  const seq = uint(h[5], "seq");
  if (lost === 0) throw fail(ErrorCode.BAD_REQUEST, "lost must be at least 1");
  if (lost > seq) throw fail(ErrorCode.BAD_REQUEST, "a loss notice cannot lose more events than seq");
  return { type: "LOST", sid, stream, lost, seq };
}

// The server is stopping (SPEC section 5.2): nothing more comes on this stream.
function decodeBye(h, frames) {
  if (frames.length !== 1) throw fail(ErrorCode.BAD_REQUEST, "a goodbye is a single header frame");
  fields(h, 4);
  return { type: "BYE", sid: text(h[2], "sid"), stream: uint(h[3], "stream") };
}

// Payloads inside the header (small ones, SPEC section 5): an array of bin, and no more frames.
function inlinePayloads(value, frames, count) {
  if (frames.length !== 1) throw fail(ErrorCode.BAD_REQUEST, "EV with inline payloads takes only a header");
  if (!Array.isArray(value) || !value.every((p) => p instanceof Uint8Array)) {
    throw fail(ErrorCode.BAD_REQUEST, "inline payloads must be an array of bin");
  }
  if (value.length !== count) throw fail(ErrorCode.BAD_REQUEST, `EV lists ${count} items but ${value.length} inline`);
  return value;
}

/** A discovery answer: {type: "HERE", nonce, endpoint}. */
export function decodeHere(datagram) {
  const h = header([datagram]);
  if (h[1] !== "HERE") throw fail(ErrorCode.UNKNOWN_COMMAND, "not a HERE datagram");
  fields(h, 4);
  return { type: "HERE", nonce: uint(h[2], "nonce"), endpoint: text(h[3], "endpoint") };
}

// --- encoding what a client sends --------------------------------------------------------------------

/** The keys of the SUB and SUBMATCH option `history` (SPEC 3.1, 7.11). */
export const HISTORY_KEYS = ["last", "since", "from", "stream"];

// The keys given (not undefined or null) of `o`, in this order.
function given(o, keys) {
  const out = {};
  for (const key of keys) {
    if (o[key] !== undefined && o[key] !== null) out[key] = o[key];
  }
  return out;
}

function options(o = {}) {
  const out = given(o, ["policy", "queue", "max_stall", "key", "name", "durable", "group"]);
  // What the request asks of the server's history (SPEC 7.11): one of last, since and from.
  if (o.history !== undefined && o.history !== null) out.history = given(o.history, HISTORY_KEYS);
  return out;
}

const ENCODERS = {
  SUB: (m) => [m.sid, m.endpoint, m.subjects, options(m.options)],
  SUBMATCH: (m) => [m.sid, m.endpoint, m.patterns, options(m.options)],
  UNSUB: (m) => [m.sid, m.subjects],
  PING: () => [],
  STATS: () => [],
  ACK: (m) => [m.sid, m.seq],
  HEARTBEAT: (m) => [m.sid],
  SUBJECTS: (m) => [m.pattern ? { pattern: m.pattern } : {}],
  NUMSUB: (m) => [m.subjects],
  SUBSCRIBERS: (m) => [m.id ? { id: m.id } : {}],
};

const NS_ENCODERS = {
  PING: () => [],
  REGISTER: (m) => {
    // Only the options set, in this order, as the Python encoder writes them: a false flag, an
    // empty meta and no lease are left out. `shared` adds the URI beside the name's others (12.6).
    const o = {};
    if (m.replace) o.replace = true;
    if (m.lease !== undefined && m.lease !== null) o.lease = m.lease;
    if (m.meta) o.meta = m.meta;
    if (m.shared) o.shared = true;
    return [m.name, m.uri, o];
  },
  RENEW: (m) => [m.name, m.token],
  LOOKUP: (m) => [m.name],
  REMOVE: (m) => [m.name, m.token ? { token: m.token } : {}],
  LIST: (m) => {
    const o = {};
    for (const key of ["group", "prefix", "regex"]) if (m[key] !== undefined) o[key] = m[key];
    return [o];
  },
  LISTALL: () => [],
  MKGROUP: (m) => [m.group],
  RMGROUP: (m) => [m.group],
  SETMETA: (m) => [m.name, m.meta],
  GETMETA: (m) => [m.name],
};

/** The frames of a request to the event server. */
/** A subscriber's public id (SPEC 7.1): the first 16 hex digits of the SHA-256 of its sid. */
export function publicId(sid) {
  return createHash("sha256").update(sid, "utf8").digest("hex").slice(0, 16);
}

export function encodeRequest(m) {
  if (m.type === "PUB") {
    const items = m.items.map((item) => {
      if (!item.retain) return [item.subjects, item.format];
      return [item.subjects, item.format, item.ttl == null ? { retain: true } : { retain: true, ttl: item.ttl }];
    });
    const payloads = m.items.map((item) => Buffer.from(item.payload));
    if (m.inline) return [pack([VERSION, "PUB", m.rid, m.confirm, items, payloads])];
    return [pack([VERSION, "PUB", m.rid, m.confirm, items]), ...payloads];
  }
  const encoder = ENCODERS[m.type];
  if (!encoder) throw new TypeError(`not a request: ${m.type}`);
  return [pack([VERSION, m.type, m.rid, ...encoder(m)])];
}

/** The frames of a request to the name server. */
export function encodeNsRequest(m) {
  const encoder = NS_ENCODERS[m.type];
  if (!encoder) throw new TypeError(`not a name server request: ${m.type}`);
  return [pack([VERSION, m.type, m.rid, ...encoder(m)])];
}

/** The discovery datagram asking where the name server is. */
export function encodeWhere(nonce) {
  return pack([VERSION, "WHERE", nonce]);
}
