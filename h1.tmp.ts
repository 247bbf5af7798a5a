import { checkShardedParams } from '/work/wt/hostile/src/config/sharded-data';
import { Checker } from '/work/wt/hostile/src/config/validate';
for (const uri of ['https://user:SECRET1@host/x/*.jsonl', 'gs://user:SECRET2@b/x/*.jsonl', 'gs://b/x/*.jsonl?token=SECRET3', 'gs://b-{date}/x/*.jsonl', 'file:///tmp/a/../../etc/*.jsonl', 'gs://b/x/{date}/*.jsonl#SECRET4']) {
  const c = new Checker();
  const r = checkShardedParams(c, "data.train", undefined, { uri, format: 'jsonl', label: 'y', features: ['a'], task: 'regression', ...(uri.includes('{date}') && { window: 3 }) } as any);
  console.log(uri, '=>', JSON.stringify(c.issues), r && JSON.stringify((r as any).uris ?? (r as any).window));
}
