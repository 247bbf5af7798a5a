/**
 * A GCS read stream's whole body, with a watchdog. The library's request timeout does not cover a
 * streamed body (a server gone mid-body leaves the stream silent), so a read that receives nothing
 * for `stallMs` is aborted as a transient ETIMEDOUT, and a stream closed before its end is a
 * transient failure too: the caller's retry loop tries again. Used by the checkpoint store's
 * downloads and the streamed dataset's shard reads.
 */
export function readWholeStream(
  stream: NodeJS.ReadableStream & { destroy(err?: Error): void },
  what: string,
  stallMs: number,
  onResponse?: (res: { headers?: Record<string, string | string[] | undefined> }) => void,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let settled = false;
    let watchdog: NodeJS.Timeout | undefined;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(watchdog);
      fn();
    };
    const arm = (): void => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        const err = Object.assign(new Error(`${what} stalled: no data for ${stallMs} ms (ETIMEDOUT)`), { code: 'ETIMEDOUT' });
        settle(() => reject(err));
        stream.destroy(err);
      }, stallMs);
    };
    arm();
    stream
      .on('response', (res: { headers?: Record<string, string | string[] | undefined> }) => {
        arm();
        onResponse?.(res);
      })
      .on('data', (chunk: Buffer) => {
        arm();
        chunks.push(chunk);
      })
      .on('error', (err) => settle(() => reject(err)))
      .on('end', () => settle(() => resolve(Buffer.concat(chunks))))
      // Closed without 'end' or 'error': the body was cut short.
      .on('close', () => settle(() => reject(Object.assign(new Error(`${what} closed before its end (Premature close)`), { code: 'ERR_STREAM_PREMATURE_CLOSE' }))));
  });
}
