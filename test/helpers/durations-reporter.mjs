/**
 * A node:test reporter that writes one JSON line per finished test or suite: its file, name,
 * nesting level (0 = top level), duration in ms and outcome. `npm test` (test/run.ts) runs it
 * beside the spec reporter and prints from it where each file's time went: in its top-level
 * tests or outside them (process start, imports and tfjs, before/after hooks), and the slowest
 * tests of the suite.
 *
 *   node --import tsx --test --test-reporter=spec --test-reporter-destination=stdout \
 *     --test-reporter=./test/helpers/durations-reporter.mjs --test-reporter-destination=<file> <files>
 *
 * Plain JavaScript: node loads reporters before tsx's hooks apply to them.
 */
export default async function* durationsReporter(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { name = '', nesting = 0, file = '', details } = event.data;
    yield `${JSON.stringify({ file, name, nesting, ms: details?.duration_ms ?? 0, ok: event.type === 'test:pass' })}\n`;
  }
}
