// Lint rules that keep workflows deterministic and promises handled.
import tseslint from 'typescript-eslint';

const nodeBuiltins = [
  'assert', 'buffer', 'child_process', 'cluster', 'crypto', 'dgram', 'dns', 'events', 'fs', 'fs/promises',
  'http', 'http2', 'https', 'net', 'os', 'path', 'perf_hooks', 'process', 'readline', 'stream', 'timers',
  'tls', 'url', 'util', 'v8', 'vm', 'worker_threads', 'zlib',
];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.cache/**', 'runs/**', 'tools/**', 'test/fixtures/**', 'scratch/**', 'bin/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', {
        // node:test collects these itself.
        allowForKnownSafeCalls: [{ from: 'package', name: ['test', 'describe', 'it', 'suite'], package: 'node:test' }],
      }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflow code is replayed: no I/O, no tensors, no clocks of its own.
    files: ['src/workflows/**/*.ts', 'src/config/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: nodeBuiltins.flatMap((m) => [m, `node:${m}`]).map((name) => ({ name, message: 'Workflows must stay deterministic: no Node built-ins.' })),
        patterns: [
          { group: ['@tensorflow/*'], message: 'Workflows never touch tensors: call an activity.' },
          { group: ['@google-cloud/*'], message: 'Workflows do no I/O: call an activity.' },
          // checkpoints/layout is pure (no Node built-ins, no I/O): workflows build URIs with it.
          { group: ['**/activities/*', '**/training/*', '**/checkpoints/*', '!**/checkpoints/layout'], message: 'Import activity types only (`import type`).', allowTypeImports: true },
        ],
      }],
    },
  },
);
