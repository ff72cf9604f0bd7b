// Type declarations for the Node.js client of the ZeroMQ event service.

import { EventEmitter } from "node:events";

export type Status = "connecting" | "connected" | "down" | "closed";

/** CurveZMQ keys in Z85: this party's pair, the servers' public key, the keys its inbox accepts. */
export interface Keys {
  publicKey: string;
  secretKey: string;
  serverKey: string;
  allowed: string[];
}

export interface ClientOptions {
  /** tcp://HOST:PORT, HOST:PORT or PYRONAME://[NSHOST:PORT/]NAME; default $ES_URI, then :Pyro.EventService. */
  esUri?: string;
  /** Passphrase: CurveZMQ on every connection (SPEC.md section 14). */
  ident?: string;
  /** Keys from key files (keysFromFiles), instead of a passphrase. */
  keys?: Keys;
  /** Seconds a request waits for its reply. */
  timeout?: number;
  /** Seconds between checks of the server. */
  heartbeat?: number;
  /** Seconds without an answer before the server counts as gone and the client reconnects. */
  liveness?: number;
}

export interface PublishOptions {
  /** Wait for the server and resolve to the number of subscribers that received it. */
  confirm?: boolean;
  timeout?: number;
  /** Keep it as the subject's retained event, sent to every new subscription that matches. */
  retain?: boolean;
  /** Seconds a retained event lives (default: until replaced or cleared). */
  ttl?: number;
}

export interface PublisherOptions extends ClientOptions {
  serializer?: "msgpack" | "raw";
  /** Seconds: unconfirmed publishes closer together than this to the last send go out as one PUB
   * (0: each alone); the first after a pause always goes at once. Default 100 microseconds. */
  linger?: number;
}

/**
 * Unconfirmed publishes made close together (in one tick) are gathered into one PUB; a confirmed
 * publish, flush() and close() send them first. A publisher runs at most 4,000 events ahead of
 * what the server has handled, then publish() waits (up to `timeout`). A payload over 1 MiB is
 * checked against the server's max_message_bytes first, and refused with TooLarge.
 */
export class Publisher extends EventEmitter {
  static connect(options?: PublisherOptions): Promise<Publisher>;
  readonly esUri: string;
  readonly status: Status;
  readonly recoveries: number;
  /** Errors the server reported for unconfirmed publishes, not yet thrown by flush(). */
  readonly errors: RequestError[];
  publish(subjects: string | string[], message: unknown, options?: PublishOptions): Promise<number | null>;
  publishMany(events: Array<[string | string[], unknown]>, options?: PublishOptions): Promise<number | null>;
  /** Clear the retained event of these subjects. */
  clearRetained(subjects: string | string[], options?: { confirm?: boolean; timeout?: number }): Promise<void>;
  flush(timeout?: number): Promise<void>;
  ping(timeout?: number): Promise<Record<string, unknown>>;
  /** Flush, then close: throws what the program was not told yet, not an AuthFailed a call
   * already threw with nothing published after it. */
  close(timeout?: number): Promise<void>;
  on(event: "status", listener: (status: Status) => void): this;
  on(event: "error", listener: (error: Error) => void): this;
}

export class Event {
  readonly subject: string;
  /** The server's time of the publish, seconds since the epoch. */
  readonly time: number;
  readonly seq: number;
  readonly stream: number;
  readonly format: number;
  readonly payload: Buffer;
  /** Events lost just before this one. */
  lost: number;
  /** The first event after the subscription was restored (events may have been lost). */
  resumed: boolean;
  /** A retained event, sent because of a new subscription: it may be old. */
  readonly retained: boolean;
  /** Its seq in the server's history (SPEC.md 7.11) when a history rule keeps it, live or
   * replayed; else null. */
  readonly history: number | null;
  /** Sent from the server's history because a subscription asked for it: it may be old. */
  readonly replayed: boolean;
  /** A queue group's event (SPEC.md 7.12) handed to this member after the member that had it went
   * without acknowledging it: that one may have handled it too. */
  readonly redelivered: boolean;
  /** The decoded message (msgpack), or the bytes (raw). */
  readonly msg: unknown;
}

export interface SubscriberOptions extends ClientOptions {
  /** Address to bind the inbox on (default: the one that reaches the server). */
  host?: string;
  /** Address the server should connect to, if not the bound one (NAT). */
  publishHost?: string;
  policy?: "block" | "drop";
  queueSize?: number;
  maxStall?: number;
  /** A service name: its arrival and departure are announced as $es.service.* meta-events. */
  name?: string;
  /**
   * A durable name (SPEC.md 7.10): the server keeps this subscriber's events until it acknowledges
   * them, while it is away too, and gives them to the next subscriber of that name. Events sent
   * again are dropped (the program sees each once); close() leaves the subscriptions on the server.
   * Names starting with `$` are the server's own (TypeError). With `group`: `true` (or the group's
   * name) makes the group durable; another name is a TypeError.
   */
  durable?: string | boolean;
  /**
   * A queue group (SPEC.md 7.12): this subscriber is a member, and each event the group's
   * subscriptions match goes to one member. Not with `name`, nor history (TypeError); names
   * starting with `$` are the server's own. close() leaves the group; its subscriptions stay.
   */
  group?: string;
}

/**
 * What a subscription asks of the server's history (SPEC.md 7.11): its `last` events (an integer
 * from 0), those published `since` a time (seconds since the epoch), or those `from` a seq of the
 * history's `stream` on (integers from 1; a stream that is not the history's gets all of them).
 */
export type History = { last: number } | { since: number } | { from: number; stream?: number };

export interface SubscribeOptions {
  /** First the events the server's history holds for this request's subjects or patterns, before
   * any later event; they come flagged `replayed`. A bad one throws TypeError, as does any for a
   * queue group's member. */
  history?: History;
}

export class Subscriber extends EventEmitter implements AsyncIterable<Event> {
  static connect(options?: SubscriberOptions): Promise<Subscriber>;
  readonly sid: string;
  /** The public id the server lists this subscriber by (the sid is its secret). */
  readonly id: string;
  readonly endpoint: string;
  readonly esUri: string;
  readonly status: Status;
  readonly recoveries: number;
  /** This subscriber's own record, replayed after a reconnect: [subjects, patterns] (copies). */
  readonly subscriptions: [Set<string>, Set<string>];
  /** @deprecated use `subscriptions[0]` (the Python client's name). */
  readonly subjects: Set<string>;
  /** @deprecated use `subscriptions[1]` (the Python client's name). */
  readonly patterns: Set<string>;
  /** Events the server reported lost for this subscriber (or seen missing in seq), in all. */
  readonly lost: number;
  /** The durable name, or null (also for a durable group's member). */
  readonly durable: string | null;
  /** The queue group this subscriber is a member of, or null. */
  readonly group: string | null;
  /** Another subscriber took this one's durable name: no more events come here (not taken back). */
  readonly replaced: boolean;
  /**
   * The server's history stream (SPEC.md 7.11), from the last reply to a subscription that asked
   * for history; null before. Subscribing again after the server forgot this subscriber, one that
   * asked for history (not a durable one) asks for the history after the last event of it it got.
   */
  readonly historyStream: number | null;
  /** How many events of the history the last subscription that asked for them gets (0 before). */
  readonly replayed: number;
  /** Subscribe to subjects (any case); resolves to the subscription count. */
  subscribe(subjects: string | string[], options?: SubscribeOptions): Promise<number>;
  /** Subscribe to RE2 patterns (any case, anchored at the start); resolves to the subscription count. */
  subscribeMatch(patterns: string | string[], options?: SubscribeOptions): Promise<number>;
  /** Remove subjects or patterns; resolves to the subscriptions left. A group's member removes them
   * from its group, for every member. */
  unsubscribe(names: string | string[]): Promise<number>;
  /** The next event, or null after `timeout` seconds or once closed. */
  next(timeout?: number): Promise<Event | null>;
  [Symbol.asyncIterator](): AsyncIterator<Event>;
  /** Unsubscribe everything (a durable subscriber's subscriptions stay; a group's member leaves
   * its group, whose subscriptions stay), then close. */
  close(): Promise<void>;
  on(event: "event", listener: (event: Event) => void): this;
  /**
   * Before an event that follows lost ones: `lost` is their number, or null when unknown (a recovery).
   * With a null event: the server told of `lost` events dropped that no event followed (a LOST notice).
   */
  on(event: "gap", listener: (lost: number | null, event: Event | null) => void): this;
  /** Once, when another subscriber took the durable name (without a listener: a process warning). */
  on(event: "replaced", listener: (durable: string) => void): this;
  on(event: "status", listener: (status: Status) => void): this;
  on(event: "error", listener: (error: Error) => void): this;
}

export class NameServer {
  static connect(options?: { address?: string; ident?: string; keys?: Keys; timeout?: number }): Promise<NameServer>;
  readonly endpoint: string;
  ping(): Promise<Record<string, unknown>>;
  /** The URI registered for `name`; a shared name's first. */
  lookup(name: string): Promise<string>;
  /** Every URI registered for `name`: one, or a shared name's (SPEC 12.6). */
  lookupAll(name: string): Promise<string[]>;
  /** With `shared`, `uri` joins the name's other URIs (SPEC 12.6). */
  register(
    name: string,
    uri: string,
    options?: { replace?: boolean; lease?: number; meta?: string; shared?: boolean },
  ): Promise<Record<string, unknown>>;
  remove(name: string, token?: string): Promise<void>;
  list(group?: string): Promise<Record<string, unknown>>;
  close(): void;
}

export const EVENT_SERVICE: ":Pyro.EventService";
export function locateNs(address?: string, options?: { keys?: Keys | null }): Promise<string>;
/** A name with several endpoints gives one at random, other than `avoid` while there is another. */
export function resolveEsUri(
  esUri?: string,
  options?: { keys?: Keys | null; timeout?: number; avoid?: string | null },
): Promise<string>;
/** One of `endpoints` at random, other than `avoid` unless it is the only one. */
export function pick(endpoints: readonly string[], avoid?: string | null, random?: () => number): string;
export function keysFromPassphrase(passphrase: string): Keys;
export function keysFromFiles(keyFile: string, serverKeyFile: string): Keys;

export const Format: { readonly RAW: 0; readonly MSGPACK: 1; readonly PICKLE: 2 };

export const ErrorCode: Readonly<Record<string, string>>;
export class EsError extends Error {}
/** Frames that break the wire spec: `code` says which rule, `message` how. */
export class ProtocolError extends EsError {
  readonly code: string;
  readonly rid: number;
}
/** The server refused a request: `code` is the wire code (ErrorCode), `message` its own words. */
export class RequestError extends EsError {
  readonly code: string;
  /** @deprecated the server's message is `message` (as in the Python client). */
  readonly detail: string;
}
export class BadRequest extends RequestError {}
export class BadSubject extends RequestError {}
export class BadPattern extends RequestError {}
export class BadEndpoint extends RequestError {}
export class BadPolicy extends RequestError {}
export class TooLarge extends RequestError {}
export class LimitExceeded extends RequestError {}
export class ServerError extends RequestError {}
export class NamingError extends RequestError {}
export class BadName extends NamingError {}
export class NotFound extends NamingError {}
export class NameTaken extends NamingError {}
export class NotOwner extends NamingError {}
export class NotEmpty extends NamingError {}
export class AuthFailed extends RequestError {}
export class StorageFailed extends RequestError {}
export class StoreFull extends RequestError {}
export class NoQuorum extends RequestError {}
export class RequestTimeout extends EsError {}
export class ConnectionClosed extends EsError {}
export class PayloadError extends EsError {}
export class NameServerNotFound extends EsError {}
/** The one table from a wire code to its error class. */
export const EXCEPTION_FOR_CODE: Readonly<Record<string, typeof RequestError>>;
/** @deprecated use EXCEPTION_FOR_CODE (the Python client's name). */
export const ERROR_FOR_CODE: Readonly<Record<string, typeof RequestError>>;
export function errorFromReply(code: string, message: string): RequestError;
