/**
 * src/worker.ts waits for a Temporal server that is not up yet, and fails at once on anything
 * else. The errors are the real ones NativeConnection.connect throws: a closed port, a name that
 * does not resolve, and TLS asked of a plaintext dev server.
 *
 *   node --import tsx --test test/worker-connect.e2e.test.ts
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { NativeConnection, TransportError } from '@temporalio/worker';
import { unreachable } from '../src/worker';
import { startStack, type Stack } from './helpers/temporal';

let stack: Stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.close();
});

async function connectError(options: Parameters<typeof NativeConnection.connect>[0]): Promise<unknown> {
  try {
    const c = await NativeConnection.connect(options);
    await c.close();
  } catch (err) {
    return err;
  }
  return assert.fail(`connected to ${options?.address}`);
}

const closedPort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });

test('a closed port and a name that does not resolve are waited for; TLS against a plaintext server fails at once', async () => {
  assert.equal(unreachable(await connectError({ address: `127.0.0.1:${await closedPort()}` })), 'connection refused');
  assert.equal(unreachable(await connectError({ address: 'no-such-host.invalid:7233' })), 'the name does not resolve');
  const tls = await connectError({ address: stack.address, tls: true });
  assert.ok(tls instanceof TransportError, `a transport error: ${String(tls)}`);
  assert.equal(unreachable(tls), undefined, `TLS mismatch is not retried: ${String(tls)}`);
  assert.equal(unreachable(new Error('Connection refused')), undefined, 'only the SDK transport errors');
});
