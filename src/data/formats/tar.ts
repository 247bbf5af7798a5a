/**
 * WebDataset tar shards (`format: "tar"`): a POSIX tar (gzip when the name ends in `.gz`) whose
 * members are grouped into samples as WebDataset groups them: a member's key is its path up to the
 * first `.` of its base name, the rest is its extension (`train/00042.seg.png` → key `train/00042`,
 * extension `seg.png`, compared in lower case), and consecutive members with one key are one sample.
 * Parsing is tar-stream's (a maintained streaming parser: headers, checksums, pax and GNU long
 * names); directories and links are skipped. Every error names the shard and the member, and is
 * non-retryable (the same bytes fail the same way).
 */
import tarStream from 'tar-stream';
import { excerpt } from '../../trust/excerpt';
import { shardContent } from '../records';
import { bad } from '../source';

/** One sample: its key and its members by extension (lower case). */
export interface TarSample {
  readonly key: string;
  readonly members: ReadonlyMap<string, Buffer>;
}

/** Members per shard (a bound on what one shard's parse holds besides its bytes). */
export const MAX_TAR_MEMBERS = 1_000_000;

/** WebDataset's split of a member path into key and extension (its `base_plus_ext`); undefined for a name without one. */
export function keyAndExtension(name: string): { key: string; extension: string } | undefined {
  const m = /^((?:.*\/|)[^./]+)\.([^/]*)$/.exec(name.replace(/^\.\//, ''));
  return m ? { key: m[1]!, extension: m[2]!.toLowerCase() } : undefined;
}

/** The samples of a tar shard, in order. */
export async function tarSamples(bytes: Buffer, uri: string): Promise<TarSample[]> {
  const raw = (await shardContent(bytes, uri)).bytes;
  const samples: Array<{ key: string; members: Map<string, Buffer> }> = [];
  const extract = tarStream.extract();
  let count = 0;
  const parsed = (async () => {
    for await (const entry of extract) {
      const { name, type } = entry.header;
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      if (type !== 'file' && type !== 'contiguous-file') continue;
      if (++count > MAX_TAR_MEMBERS) bad(`Expected shard ${uri} of \`params.uri\` (\`params.format\` tar) to hold at most ${MAX_TAR_MEMBERS} members: split it into smaller shards`);
      const split = keyAndExtension(name);
      if (!split) continue; // no extension: not part of any sample (WebDataset skips these too)
      let last = samples[samples.length - 1];
      if (last?.key !== split.key) {
        last = { key: split.key, members: new Map() };
        samples.push(last);
      }
      if (last.members.has(split.extension)) {
        bad(`Expected member \`${excerpt(name, 64)}\` of shard ${uri} (\`params.format\` tar) to be the only \`.${excerpt(split.extension)}\` of sample \`${excerpt(split.key, 64)}\`, got a second one`);
      }
      last.members.set(split.extension, Buffer.concat(chunks));
    }
  })();
  extract.end(raw);
  try {
    await parsed;
  } catch (err) {
    if (err instanceof Error && err.name === 'NonRetryableTrainingError') throw err;
    bad(`Expected shard ${uri} of \`params.uri\` (\`params.format\` tar) to be a tar archive, got bytes that are not (${excerpt((err as Error).message, 80)})`);
  }
  return samples;
}
