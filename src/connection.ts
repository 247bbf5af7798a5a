/**
 * Temporal connection settings, read once at the entry points with the same environment
 * variables and config profiles as the Temporal CLI (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
 * TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE, TEMPORAL_API_KEY, TLS settings).
 */
import { loadClientConnectConfig } from '@temporalio/envconfig';

export const DEFAULT_TASK_QUEUE = 'durable-train';

export interface ConnectionSettings {
  readonly address: string;
  readonly namespace: string;
  readonly connectionOptions: ReturnType<typeof loadClientConnectConfig>['connectionOptions'];
}

export function connectionSettings(env: NodeJS.ProcessEnv = process.env): ConnectionSettings {
  const config = loadClientConnectConfig({ ...(env.TEMPORAL_PROFILE && { profile: env.TEMPORAL_PROFILE }) });
  const address = config.connectionOptions.address ?? 'localhost:7233';
  return {
    address,
    namespace: config.namespace ?? 'default',
    connectionOptions: { ...config.connectionOptions, address },
  };
}

export function taskQueueFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.DT_TASK_QUEUE || env.TEMPORAL_TASK_QUEUE || DEFAULT_TASK_QUEUE;
}
