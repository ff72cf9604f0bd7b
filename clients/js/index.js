// The Node.js client of the ZeroMQ event service. See README.md and ../wire/SPEC.md.

export * from "./lib/errors.js";
export { Publisher } from "./lib/publisher.js";
export { Event, Subscriber } from "./lib/subscriber.js";
export { NameServer, NameServerNotFound, locateNs, pick, resolveEsUri, EVENT_SERVICE } from "./lib/naming.js";
export { keysFromPassphrase, keysFromFiles } from "./lib/security.js";
export { Format } from "./lib/payload.js";
