/**
 * History <-> JSON in the standard proto3 JSON form (as `temporal workflow show -o json` and the
 * SDK's historyToJSON/historyFromJSON write and read it).
 *
 * Why not just the SDK's functions: in this install @temporalio/common and @temporalio/proto each
 * carry their own nested copy of protobufjs 8 (the root has protobufjs 7 for other packages), so
 * the SDK's historyToJSON/historyFromJSON throw "type must be a Type" (protobufjs's instanceof
 * check sees a Type from the other copy). We try the SDK first and otherwise do the same
 * conversion with the protobufjs copy that @temporalio/proto's types come from.
 */
import path from 'node:path';
import * as proto from '@temporalio/proto';
import { historyFromJSON as sdkFromJSON, historyToJSON as sdkToJSON, type History } from '@temporalio/common/lib/proto-utils';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }): unknown;
}

let fallback: { protojson: ProtoJson; historyType: unknown } | undefined;
function protoCopy() {
  if (!fallback) {
    const protoDir = path.dirname(require.resolve('@temporalio/proto/package.json'));
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const protojson = require(require.resolve('protobufjs/ext/protojson', { paths: [protoDir] })) as ProtoJson;
    const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(n: string): unknown }).lookupType('temporal.api.history.v1.History');
    fallback = { protojson, historyType };
  }
  return fallback;
}

const isTypeMismatch = (err: unknown) => err instanceof TypeError && /type must be a Type/.test(err.message);

export function historyToJson(history: History): string {
  try {
    return sdkToJSON(history);
  } catch (err) {
    if (!isTypeMismatch(err)) throw err;
    const { protojson, historyType } = protoCopy();
    const message = proto.temporal.api.history.v1.History.fromObject(history as Record<string, unknown>);
    return JSON.stringify(protojson.toJson(historyType, message), null, 2);
  }
}

export function historyFromJson(json: unknown): History {
  try {
    return sdkFromJSON(json);
  } catch (err) {
    if (!isTypeMismatch(err)) throw err;
    const { protojson, historyType } = protoCopy();
    return protojson.fromJson(historyType, json, { ignoreUnknownFields: true }) as History;
  }
}
