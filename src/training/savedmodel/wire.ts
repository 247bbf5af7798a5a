/**
 * A minimal reader of the protobuf wire format, for the few fields of saved_model.pb that the op
 * check (op-check.ts) needs. Chosen over protobufjs with a .proto of TensorFlow's messages because
 * it is about 60 lines, decodes nothing it is not asked for (a GraphDef's tensors and shapes are
 * skipped by length, not parsed), never recurses (the caller walks nested messages with its own
 * bounded stack) and needs no new dependency; tfjs-node's own generated reader (google-protobuf)
 * decodes the whole file recursively with no bound.
 *
 * Wire format (https://protobuf.dev/programming-guides/encoding/): a message is a sequence of
 * (tag varint = field << 3 | wire type, value); wire types 0 varint, 1 fixed64, 2 length-delimited
 * (bytes, strings, nested messages, packed repeats), 5 fixed32. Groups (3, 4) are not used by any
 * TensorFlow message and are refused.
 */

export class WireFormatError extends Error {
  override readonly name = 'WireFormatError';
}

export const WireType = { Varint: 0, Fixed64: 1, Bytes: 2, Fixed32: 5 } as const;
export type WireType = (typeof WireType)[keyof typeof WireType];

/** One field of a message: its number, wire type, and where its value lies (`value` for varints). */
export interface WireField {
  readonly no: number;
  readonly type: WireType;
  /** For Bytes: the payload's bounds in the buffer. */
  readonly start: number;
  readonly end: number;
  /** For Varint: the value (exact up to 2^53). */
  readonly value: number;
}

/** One varint at `pos` (exact up to 2^53): its value and the position after it. */
export function readVarint(buf: Uint8Array, pos: number, end: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new WireFormatError(`truncated varint at byte ${pos}`);
    const b = buf[pos++]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, pos];
    scale *= 128;
  }
  throw new WireFormatError(`varint longer than 10 bytes at byte ${pos}`);
}

/** Calls `visit` for each field of the message in buf[start, end), in order. */
export function forEachField(buf: Uint8Array, start: number, end: number, visit: (field: WireField) => void): void {
  let pos = start;
  while (pos < end) {
    const [tag, afterTag] = readVarint(buf, pos, end);
    const no = Math.floor(tag / 8);
    const type = (tag % 8) as WireType;
    if (no === 0) throw new WireFormatError(`field number 0 at byte ${pos}`);
    pos = afterTag;
    switch (type) {
      case WireType.Varint: {
        const [value, next] = readVarint(buf, pos, end);
        visit({ no, type, start: pos, end: next, value });
        pos = next;
        break;
      }
      case WireType.Fixed64:
      case WireType.Fixed32: {
        const next = pos + (type === WireType.Fixed64 ? 8 : 4);
        if (next > end) throw new WireFormatError(`truncated fixed-width field ${no} at byte ${pos}`);
        visit({ no, type, start: pos, end: next, value: 0 });
        pos = next;
        break;
      }
      case WireType.Bytes: {
        const [length, from] = readVarint(buf, pos, end);
        if (length > end - from) throw new WireFormatError(`field ${no} at byte ${pos} claims ${length} bytes, only ${end - from} remain`);
        visit({ no, type, start: from, end: from + length, value: length });
        pos = from + length;
        break;
      }
      default:
        throw new WireFormatError(`unsupported wire type ${type} (field ${no}) at byte ${pos}`);
    }
  }
}

/** The UTF-8 string of a Bytes field. */
export function text(buf: Uint8Array, field: WireField): string {
  if (field.type !== WireType.Bytes) throw new WireFormatError(`field ${field.no} is not a string (wire type ${field.type})`);
  return Buffer.from(buf.buffer, buf.byteOffset + field.start, field.end - field.start).toString('utf8');
}

/** Asserts that a field holds a nested message (or string), for the caller to descend into. */
export function bytesOf(field: WireField): WireField {
  if (field.type !== WireType.Bytes) throw new WireFormatError(`field ${field.no} is not a message (wire type ${field.type})`);
  return field;
}
