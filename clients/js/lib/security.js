// CurveZMQ keys (SPEC.md section 14): from a passphrase by scrypt, or from ZeroMQ certificate files,
// and a ZAP handler (RFC 27) for the subscriber's inbox, which must accept only the server's key.
// zeromq.js has no ZAP authenticator of its own, so this is the small one the RFC describes.

import { createPrivateKey, createPublicKey, scryptSync } from "node:crypto";
import { readFileSync } from "node:fs";
import * as zmq from "zeromq";

export const KDF = Object.freeze({ salt: "zmq-event-service/curve/v1", N: 16384, r: 8, p: 1, length: 32 });

const Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/** Z85 text of bytes whose length is a multiple of 4 (ZeroMQ's key encoding). */
export function z85Encode(bytes) {
  if (bytes.length % 4) throw new RangeError("Z85 needs a multiple of 4 bytes");
  let out = "";
  for (let i = 0; i < bytes.length; i += 4) {
    let value = ((bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3]) >>> 0;
    let chunk = "";
    for (let j = 0; j < 5; j++) {
      chunk = Z85[value % 85] + chunk;
      value = Math.floor(value / 85);
    }
    out += chunk;
  }
  return out;
}

/** Bytes of Z85 text whose length is a multiple of 5. */
export function z85Decode(text) {
  if (text.length % 5) throw new RangeError("Z85 text needs a multiple of 5 characters");
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let value = 0;
    for (let j = 0; j < 5; j++) {
      const digit = Z85.indexOf(text[i + j]);
      if (digit < 0) throw new RangeError(`not a Z85 character: ${text[i + j]}`);
      value = value * 85 + digit;
    }
    out.writeUInt32BE(value, (i / 5) * 4);
  }
  return out;
}

// A PKCS#8 wrapper for a raw X25519 private key, so that Node's crypto computes the public key.
const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");

/** The Curve25519 public key (Z85) of a secret key (32 bytes), as zmq_curve_public computes it. */
export function curvePublic(secret) {
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, secret]), format: "der", type: "pkcs8" });
  const jwk = createPublicKey(key).export({ format: "jwk" });
  return z85Encode(Buffer.from(jwk.x, "base64url"));
}

/** The 32-byte secret key a passphrase gives (scrypt, SPEC.md 14.1). */
export function deriveSecret(passphrase) {
  return scryptSync(Buffer.from(passphrase, "utf8"), Buffer.from(KDF.salt, "ascii"), KDF.length, {
    N: KDF.N,
    r: KDF.r,
    p: KDF.p,
    maxmem: 64 * 1024 * 1024,
  });
}

const derived = new Map();

/**
 * @typedef {{publicKey: string, secretKey: string, serverKey: string, allowed: string[]}} Keys
 * Keys in Z85: this party's pair, the servers' public key, and the keys its inbox accepts.
 */

/** @returns {Keys} the one key pair every holder of the passphrase derives. */
export function keysFromPassphrase(passphrase) {
  if (!passphrase) throw new RangeError("the passphrase is empty");
  if (!derived.has(passphrase)) {
    const secret = deriveSecret(passphrase);
    const publicKey = curvePublic(secret);
    derived.set(passphrase, { publicKey, secretKey: z85Encode(secret), serverKey: publicKey, allowed: [publicKey] });
  }
  return derived.get(passphrase);
}

function readCertificate(path) {
  const text = readFileSync(path, "utf8");
  const find = (name) => text.match(new RegExp(`^\\s*${name}\\s*=\\s*"(.{40})"`, "m"))?.[1];
  return { publicKey: find("public-key"), secretKey: find("secret-key") };
}

/** @returns {Keys} from this client's secret certificate and the servers' public one (es keygen). */
export function keysFromFiles(keyFile, serverKeyFile) {
  const own = readCertificate(keyFile);
  const server = readCertificate(serverKeyFile);
  if (!own.publicKey || !own.secretKey) throw new RangeError(`${keyFile} holds no secret key`);
  if (!server.publicKey) throw new RangeError(`${serverKeyFile} holds no public key`);
  return { ...own, serverKey: server.publicKey, allowed: [server.publicKey] };
}

/** The keys a client was given as `ident` (a passphrase) or `keys`; null means no security. */
export function chooseKeys({ ident, keys } = {}) {
  if (ident && keys) throw new RangeError("give ident or keys, not both");
  return ident ? keysFromPassphrase(ident) : (keys ?? null);
}

/** Make a socket (before it connects) a CurveZMQ client of `serverKey` (default: keys.serverKey). */
export function asClient(socket, keys, serverKey) {
  if (!keys) return;
  socket.curvePublicKey = keys.publicKey;
  socket.curveSecretKey = keys.secretKey;
  socket.curveServerKey = serverKey ?? keys.serverKey;
}

// --- the ZAP handler -----------------------------------------------------------------------------

const domains = new Map(); // ZAP domain -> Set of allowed Z85 keys
let handler = null;

async function serveZap(socket) {
  for await (const [version, requestId, domain, , , mechanism, credentials] of socket) {
    const allowed = domains.get(domain.toString());
    const key = credentials && credentials.length === 32 ? z85Encode(credentials) : "";
    const ok = mechanism?.toString() === "CURVE" && allowed !== undefined && allowed.has(key);
    await socket.send([version, requestId, ok ? "200" : "400", ok ? "OK" : "key not allowed", "", ""]);
  }
}

/** Make a socket (before it binds) a CurveZMQ server that accepts only `keys.allowed`, under ZAP
 * domain `domain`. Call `releaseServer(domain)` when the socket closes. */
export function asServer(socket, keys, domain) {
  if (!keys) return;
  if (handler === null) {
    handler = new zmq.Reply({ linger: 0 });
    handler.bindSync("inproc://zeromq.zap.01"); // before any CURVE server socket binds
    serveZap(handler).catch(() => {}); // ends when the handler is closed
  }
  domains.set(domain, new Set(keys.allowed));
  socket.zapDomain = domain;
  socket.curveServer = true;
  socket.curvePublicKey = keys.publicKey;
  socket.curveSecretKey = keys.secretKey;
}

/** Forget a ZAP domain; the handler stops with the last one. */
export function releaseServer(domain) {
  if (!domains.delete(domain) || domains.size || handler === null) return;
  handler.close();
  handler = null;
}
