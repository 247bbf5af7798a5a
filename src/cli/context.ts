/** What every command gets: where to print, and a Temporal client opened only when it is needed. */
import { Client, Connection } from '@temporalio/client';
import { connectionSettings } from '../connection';
import { EXIT } from './args';

export interface Io {
  out(line: string): void;
  err(line: string): void;
  /** Rewrites the live view in place when the output is a terminal. */
  readonly tty: boolean;
  /** The terminal's width in columns, when there is one (the live view fits it). */
  readonly columns?: () => number | undefined;
}

export const consoleIo: Io = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
  tty: Boolean(process.stdout.isTTY),
  columns: () => process.stdout.columns,
};

/** Opens the client on first call, so commands validate their arguments before connecting. */
export interface LazyClient {
  (): Promise<Client>;
  close(): Promise<void>;
}

export function lazyClient(): LazyClient {
  let opened: Promise<{ client: Client; connection: Connection }> | undefined;
  const open = async () => {
    const settings = connectionSettings();
    let connection: Connection;
    try {
      connection = await Connection.connect({ ...settings.connectionOptions, connectTimeout: 5000 } as any);
    } catch (err) {
      throw Object.assign(new Error(`Cannot reach Temporal at ${settings.address}: ${(err as Error).message}`), { exitCode: EXIT.unreachable });
    }
    return { client: new Client({ connection, namespace: settings.namespace }), connection };
  };
  const client = async (): Promise<Client> => (await (opened ??= open())).client;
  client.close = async () => {
    const o = await opened?.catch(() => undefined);
    await o?.connection.close();
  };
  return client;
}
