// Payload formats (SPEC.md section 8): 0 raw bytes, 1 msgpack (the default), 2 Python pickle, which
// this client never decodes (it would run code chosen by the sender, and JavaScript cannot anyway).

import { decode, encode } from "@msgpack/msgpack";
import { PayloadError } from "./errors.js";

export const Format = Object.freeze({ RAW: 0, MSGPACK: 1, PICKLE: 2 });

/** The format number for a serializer name: "msgpack" or "raw". */
export function formatFor(serializer = "msgpack") {
  if (serializer === "msgpack") return Format.MSGPACK;
  if (serializer === "raw") return Format.RAW;
  throw new RangeError(`serializer must be "msgpack" or "raw", not ${serializer}`);
}

/** A message as payload bytes in `format`. */
export function encodePayload(message, format) {
  if (format === Format.RAW) {
    if (typeof message === "string") return Buffer.from(message, "utf8");
    if (message instanceof Uint8Array) return Buffer.from(message);
    throw new TypeError("a raw message must be a Buffer, a Uint8Array or a string");
  }
  const bytes = encode(message, { ignoreUndefined: true });
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Payload bytes back to a value: raw stays bytes; msgpack is decoded (timestamps to Date). */
export function decodePayload(payload, format) {
  if (format === Format.RAW) return payload;
  if (format === Format.MSGPACK) {
    try {
      return decode(payload);
    } catch (err) {
      throw new PayloadError(`the message is not valid msgpack: ${err.message}`);
    }
  }
  if (format === Format.PICKLE) {
    throw new PayloadError("a pickled message: JavaScript cannot read it, and would not (unsafe)");
  }
  throw new PayloadError(`unknown payload format ${format}`);
}
