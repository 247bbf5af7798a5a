/**
 * Attacks on whoever reads our CLI's output: a workflow id (or a failure message) is the caller's
 * text, and printed raw its escape sequences recolour, move the cursor or retitle the reader's
 * terminal. `list` and `status` must print them escaped, in text and in --json.
 */
import assert from 'node:assert/strict';
import { mnistInput, runDurableTrain, uniqueId, waitFor } from '../helpers/temporal';
import type { Attack } from './attack';

/** Any C0/C1 control character or bidi override: none may reach the terminal. */
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

export const attacks: Attack[] = [
  {
    name: 'a workflow id with terminal escape sequences, listed and shown by the CLI',
    origin: '#20 smaller items',
    timeoutMs: 90_000,
    async run({ stack }) {
      const taskQueue = uniqueId('nobody-esc');
      const workflowId = `${uniqueId('esc')}\x1b[2J\x1b]0;owned\x07\u009b31m\u202e`;
      // A queue nobody polls: the run never starts, it only has to be listed.
      await stack.client.workflow.start('trainModel', { taskQueue, workflowId, args: [mnistInput()] });
      try {
        const env = { TEMPORAL_ADDRESS: stack.address };
        const listed = await waitFor(async () => {
          const r = await runDurableTrain(['list', '--query', `TaskQueue="${taskQueue}"`], env);
          return r.stdout.includes('esc-') && r;
        }, 30_000, 'the run in `list`');
        const json = await runDurableTrain(['list', '--json', '--query', `TaskQueue="${taskQueue}"`], env);
        const status = await runDurableTrain(['status', workflowId], env);
        for (const [what, text] of [['list', listed.stdout], ['list --json', json.stdout], ['status', status.stdout + status.stderr]] as const) {
          assert.doesNotMatch(text, RAW, `${what} printed a control character: ${JSON.stringify(text)}`);
        }
        assert.ok(listed.stdout.includes('\\u001b[2J\\u001b]0;owned\\u0007\\u009b31m\\u202e'), listed.stdout);
        assert.equal((JSON.parse(json.stdout) as Array<{ workflowId: string }>)[0]?.workflowId, workflowId);
        return { outcome: 'list and status printed the id escaped (\\u001b…), --json the same id', victimUnchanged: 'n/a' };
      } finally {
        await stack.client.workflow.getHandle(workflowId).terminate('attack over').catch(() => undefined);
      }
    },
  },
];
