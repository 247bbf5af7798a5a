/**
 * tf.train.Example, decoded with the bounded protobuf wire reader the SavedModel op check uses
 * (src/training/savedmodel/wire.ts: no recursion, every length checked against its message) and
 * only for the features asked for. The messages (tensorflow/core/example/{example,feature}.proto):
 *
 *   Example  { Features features = 1; }
 *   Features { map<string, Feature> feature = 1; }        // map entry: key = 1, value = 2
 *   Feature  { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
 *   BytesList { repeated bytes value = 1; }  FloatList { repeated float value = 1 [packed]; }
 *   Int64List { repeated int64 value = 1 [packed]; }
 *
 * Packed and unpacked repeats are both read (proto3 writers pack; the format allows either).
 * Int64 values are two's complement in 10-byte varints when negative: read exactly as BigInt.
 */
import { bytesOf, forEachField, readVarint, text, WireFormatError, WireType, type WireField } from '../../training/savedmodel/wire';

export type FeatureKind = 'bytes_list' | 'float_list' | 'int64_list';

/** One feature's values: numbers for float_list (a packed one as a Float32Array) and int64_list, UTF-8 strings for bytes_list. */
export type TfFeature = { readonly kind: 'float_list' | 'int64_list'; readonly values: number[] | Float32Array } | { readonly kind: 'bytes_list'; readonly values: string[] };

/** Float32Array reads the platform's byte order; the wire's is little-endian (every platform Node's prebuilt tfjs runs on). */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const KINDS: Record<number, FeatureKind> = { 1: 'bytes_list', 2: 'float_list', 3: 'int64_list' };

export { WireFormatError };

/** An int64 varint in buf[start, end) (its bytes already bounded by the reader), as the nearest double. */
function int64At(buf: Uint8Array, start: number, end: number): number {
  const [fast] = readVarint(buf, start, end);
  if (fast <= Number.MAX_SAFE_INTEGER) return fast;
  let v = 0n;
  for (let i = end - 1; i >= start; i--) v = (v << 7n) | BigInt(buf[i]! & 0x7f);
  return Number(BigInt.asIntN(64, v));
}

/**
 * Values one feature list may hold as JS numbers or strings. A packed int64 value can be one byte, a
 * JS number eight on the heap: a 512 MiB record of zeros would need 4 GiB at once, a fatal
 * out-of-memory of the trainer on every attempt. (A packed float_list is copied whole into a
 * Float32Array, outside the heap, and is bounded by the shard's size.)
 */
export const MAX_LIST_VALUES = 16 * 1024 * 1024;

function tooMany(kind: FeatureKind, at: number): never {
  throw new WireFormatError(`a ${kind} of more than ${MAX_LIST_VALUES} values at byte ${at}`);
}

function readList(buf: Uint8Array, list: WireField, kind: FeatureKind): TfFeature {
  if (kind === 'bytes_list') {
    const values: string[] = [];
    forEachField(buf, list.start, list.end, (f) => {
      if (f.no === 1) values.push(text(buf, f));
      if (values.length > MAX_LIST_VALUES) tooMany(kind, f.start);
    });
    return { kind, values };
  }
  const values: number[] = [];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let packed: Float32Array | undefined;
  const unpack = (): void => {
    if (packed) for (const v of packed) values.push(v);
    packed = undefined;
  };
  forEachField(buf, list.start, list.end, (f) => {
    if (f.no !== 1) return;
    if (values.length > MAX_LIST_VALUES) tooMany(kind, f.start);
    if (kind === 'float_list') {
      if (f.type === WireType.Fixed32) {
        unpack();
        values.push(view.getFloat32(f.start, true));
      }
      else if (f.type === WireType.Bytes) {
        if ((f.end - f.start) % 4 !== 0) throw new WireFormatError(`packed float_list of ${f.end - f.start} bytes (not a multiple of 4) at byte ${f.start}`);
        // The usual case, one packed run (what every TensorFlow writer emits): copied whole, not value by value.
        if (LITTLE_ENDIAN && values.length === 0 && packed === undefined) packed = new Float32Array(Uint8Array.prototype.slice.call(buf, f.start, f.end).buffer); // a copy: Buffer#slice would share
        else {
          unpack();
          if (values.length + (f.end - f.start) / 4 > MAX_LIST_VALUES) tooMany(kind, f.start);
          for (let p = f.start; p < f.end; p += 4) values.push(view.getFloat32(p, true));
        }
      } else throw new WireFormatError(`float_list value of wire type ${f.type} at byte ${f.start}`);
    } else if (f.type === WireType.Varint) {
      values.push(int64At(buf, f.start, f.end));
    } else if (f.type === WireType.Bytes) {
      for (let p = f.start; p < f.end; ) {
        if (values.length > MAX_LIST_VALUES) tooMany(kind, p);
        const [, next] = readVarint(buf, p, f.end);
        values.push(int64At(buf, p, next));
        p = next;
      }
    } else throw new WireFormatError(`int64_list value of wire type ${f.type} at byte ${f.start}`);
  });
  return { kind, values: packed && values.length === 0 ? packed : values };
}

/**
 * The features named in `wanted` of the tf.train.Example in buf[start, end); the others are skipped
 * by length, never decoded. A feature listed twice keeps its last value (protobuf map semantics).
 * Throws WireFormatError when the bytes are not such a message.
 */
export function exampleFeatures(buf: Uint8Array, start: number, end: number, wanted: ReadonlySet<string>): Map<string, TfFeature> {
  const out = new Map<string, TfFeature>();
  forEachField(buf, start, end, (features) => {
    if (features.no !== 1) return;
    forEachField(buf, bytesOf(features).start, features.end, (entry) => {
      if (entry.no !== 1) return;
      let key: string | undefined;
      let value: WireField | undefined;
      forEachField(buf, bytesOf(entry).start, entry.end, (f) => {
        if (f.no === 1) key = text(buf, f);
        else if (f.no === 2) value = bytesOf(f);
      });
      if (key === undefined || !wanted.has(key)) return;
      let feature: TfFeature | undefined;
      if (value) {
        forEachField(buf, value.start, value.end, (kind) => {
          const k = KINDS[kind.no];
          if (k) feature = readList(buf, bytesOf(kind), k);
        });
      }
      // A Feature with no kind set is an empty list (as TensorFlow reads it).
      out.set(key, feature ?? { kind: 'float_list', values: [] });
    });
  });
  return out;
}
