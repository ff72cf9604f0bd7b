// Error codes of the wire protocol (SPEC.md section 6) and the exceptions they map to. One table,
// EXCEPTION_FOR_CODE, turns a code into a class; nothing ever looks at message text.
//
// The names are the Python client's (clients/errors.py): `code` is the wire code and `message` the
// server's own words, so the class name, the code and the message each say one thing
// ("BadSubject: subject too long", with `code` "BAD_SUBJECT").

/** Stable error codes carried in ERR replies. */
export const ErrorCode = Object.freeze({
  BAD_VERSION: "BAD_VERSION",
  BAD_REQUEST: "BAD_REQUEST",
  UNKNOWN_COMMAND: "UNKNOWN_COMMAND",
  BAD_SUBJECT: "BAD_SUBJECT",
  BAD_PATTERN: "BAD_PATTERN",
  BAD_ENDPOINT: "BAD_ENDPOINT",
  BAD_POLICY: "BAD_POLICY",
  TOO_LARGE: "TOO_LARGE",
  LIMIT_EXCEEDED: "LIMIT_EXCEEDED",
  INTERNAL: "INTERNAL",
  BAD_NAME: "BAD_NAME",
  NOT_FOUND: "NOT_FOUND",
  NAME_TAKEN: "NAME_TAKEN",
  NOT_OWNER: "NOT_OWNER",
  NOT_EMPTY: "NOT_EMPTY",
  AUTH_FAILED: "AUTH_FAILED",
  STORAGE_FAILED: "STORAGE_FAILED",
  STORE_FULL: "STORE_FULL",
  NO_QUORUM: "NO_QUORUM",
});

/** Root of every error this library throws on purpose. */
export class EsError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** Frames that break the wire spec; `code` says which rule, `rid` the request id if known. */
export class ProtocolError extends EsError {
  constructor(code, message, rid = 0) {
    super(message);
    this.code = code;
    this.rid = rid;
  }
}

/** The server refused a request and said why: `code` (ErrorCode), `message` (its words). */
export class RequestError extends EsError {
  constructor(code, message) {
    super(message);
    this.code = code;
  }

  /** @deprecated the server's message is `message`, as in the Python client. */
  get detail() {
    return this.message;
  }
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
/** The CurveZMQ handshake failed: a wrong or missing passphrase or key on one side. */
export class AuthFailed extends RequestError {}

/** The server could not write the change to its storage (disk full, a damaged file): the request
 * had no effect. */
export class StorageFailed extends RequestError {}
/** A durable subscriber with the block policy holds all the stored events it may: the publish was
 * refused whole. */
export class StoreFull extends RequestError {}
/** A publish of retained events on a node of a cluster: the cluster's stream did not take them in
 * time (the node is cut off from most of its NATS cluster), so nothing of it was delivered. */
export class NoQuorum extends RequestError {}

/** No reply within the timeout. */
export class RequestTimeout extends EsError {}
/** This program closed the client. */
export class ConnectionClosed extends EsError {}
/** An event's message cannot be decoded, or its format is not allowed (pickle). */
export class PayloadError extends EsError {}

export const EXCEPTION_FOR_CODE = Object.freeze({
  BAD_VERSION: BadRequest,
  BAD_REQUEST: BadRequest,
  UNKNOWN_COMMAND: BadRequest,
  BAD_SUBJECT: BadSubject,
  BAD_PATTERN: BadPattern,
  BAD_ENDPOINT: BadEndpoint,
  BAD_POLICY: BadPolicy,
  TOO_LARGE: TooLarge,
  LIMIT_EXCEEDED: LimitExceeded,
  INTERNAL: ServerError,
  BAD_NAME: BadName,
  NOT_FOUND: NotFound,
  NAME_TAKEN: NameTaken,
  NOT_OWNER: NotOwner,
  NOT_EMPTY: NotEmpty,
  AUTH_FAILED: AuthFailed,
  STORAGE_FAILED: StorageFailed,
  STORE_FULL: StoreFull,
  NO_QUORUM: NoQuorum,
});

/** @deprecated the Python client's name, EXCEPTION_FOR_CODE. */
export const ERROR_FOR_CODE = EXCEPTION_FOR_CODE;

/** The error for an ERR reply; a code this version does not know is a plain RequestError. */
export function errorFromReply(code, message) {
  const Cls = Object.hasOwn(EXCEPTION_FOR_CODE, code) ? EXCEPTION_FOR_CODE[code] : RequestError;
  return new Cls(code, message);
}
