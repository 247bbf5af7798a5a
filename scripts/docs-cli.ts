/**
 * Writes docs/cli.md from the CLI's own usage texts (src/cli/*.ts), so the reference cannot drift
 * from what `--help` prints; test/docs.test.ts fails when it is stale.
 *
 *   node --import tsx scripts/docs-cli.ts
 */
import fs from 'node:fs';
import path from 'node:path';
import { USAGE } from '../src/cli/args';
import { SEARCH_EDIT_USAGE } from '../src/cli/search-edit';
import { SETUP_NATIVE_USAGE } from '../src/cli/setup-native';
import { TRIALS_USAGE } from '../src/cli/trials';

export function cliReference(): string {
  const block = (title: string, text: string) => `## ${title}\n\n\`\`\`\n${text.trim()}\n\`\`\`\n`;
  return [
    '# The durable-train command line',
    '',
    'Generated from the usage texts in `src/cli/` by `node --import tsx scripts/docs-cli.ts`; the same text is what `--help` prints. The README\'s *Starting runs*, *Control and progress* and *Retraining on a schedule* show it in use.',
    '',
    block('durable-train --help', USAGE),
    block('durable-train search-edit --help', SEARCH_EDIT_USAGE),
    block('durable-train trials --help', TRIALS_USAGE),
    block('durable-train setup-native --help', SETUP_NATIVE_USAGE),
  ].join('\n');
}

if (require.main === module) {
  fs.writeFileSync(path.join(__dirname, '../docs/cli.md'), cliReference());
  console.log('wrote docs/cli.md');
}
