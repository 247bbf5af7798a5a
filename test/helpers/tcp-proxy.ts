/**
 * A TCP proxy on 127.0.0.1 in front of a server (fake-gcs-server in the fault suite) that a test
 * can turn into a black hole: in `hold` mode every connection, new or open, is accepted and never
 * answered (bytes sent to it go nowhere), as behind a dropped route. Back in `pass` mode the held
 * connections are reset (as a peer that rebooted would) and new ones go through again.
 *
 *   const proxy = await startTcpProxy(emu.port);   // proxy.endpoint: http://127.0.0.1:<port>
 *   proxy.hold(); ... proxy.pass(); await proxy.close();
 */
import net from 'node:net';

export interface TcpProxy {
  readonly port: number;
  readonly endpoint: string;
  /** Connections accepted while held, so far. */
  readonly heldConnections: number;
  hold(): void;
  pass(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  let holding = false;
  let heldConnections = 0;
  const open = new Map<net.Socket, net.Socket | undefined>();

  const blackHole = (client: net.Socket): void => {
    const upstream = open.get(client);
    if (upstream) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      upstream.destroy();
      open.set(client, undefined);
    }
    client.removeAllListeners('data');
    client.on('data', () => undefined); // read and drop: the sender sees no back pressure, no answer
  };

  const server = net.createServer((client) => {
    client.on('error', () => undefined);
    client.on('close', () => open.delete(client));
    open.set(client, undefined);
    if (holding) {
      heldConnections++;
      blackHole(client);
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => {
      if (open.get(client) === upstream) client.destroy();
    });
    open.set(client, upstream);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;

  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    get heldConnections() {
      return heldConnections;
    },
    hold() {
      holding = true;
      for (const client of open.keys()) blackHole(client);
    },
    pass() {
      holding = false;
      for (const [client, upstream] of open) if (!upstream) client.resetAndDestroy();
    },
    async close() {
      for (const [client, upstream] of open) {
        client.destroy();
        upstream?.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
