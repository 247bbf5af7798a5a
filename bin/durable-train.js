#!/usr/bin/env node
// In a checkout of the repository the TypeScript sources run through tsx (no build step); an
// installed package has no src/ and runs its built JavaScript in dist/.
const fs = require('node:fs');
const path = require('node:path');

const source = path.join(__dirname, '../src/cli/main.ts');
let main;
if (fs.existsSync(source)) {
  require('tsx/cjs');
  main = require(source);
} else {
  main = require('../dist/cli/main.js');
}
main.run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
