#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so `npx durable-train` works without a build step.
require('tsx/cjs');
const { run } = require('../src/cli/main.ts');
run(process.argv.slice(2)).then((code) => process.exit(code), (err) => { console.error(err); process.exit(1); });
