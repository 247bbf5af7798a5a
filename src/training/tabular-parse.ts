/**
 * Reading the text of a tabular file into rows: RFC 4180 CSV and JSON Lines (the format rules are
 * at the top of tabular.ts). Every error names the file and line and is non-retryable.
 */
import { isObject } from '../config/validate';
import { describeData, excerpt, excerptList, jsonErrorPosition } from '../trust/excerpt';
import { breathe, ROWS_PER_YIELD } from './liveness';
import { NonRetryableTrainingError } from './protocol';

/** One data record: its number among the data rows and its physical line (both 1-based), and its values by column name. */
export interface Row {
  readonly index: number;
  readonly line: number;
  readonly values: ReadonlyMap<string, unknown>;
}

export interface Table {
  readonly columns: readonly string[];
  readonly rows: readonly Row[];
}

export class TabularError extends NonRetryableTrainingError {}

export function fail(message: string): never {
  throw new TabularError(message);
}

/** A bounded, escaped excerpt of a cell for messages (trust/excerpt.ts): messages never carry a file's contents. */
export function cellText(value: unknown): string {
  return excerpt(value);
}

export interface CsvRecord {
  readonly line: number;
  readonly fields: string[];
  readonly quoted: boolean[];
}

/**
 * Fields one CSV record may hold. Each field is a JS string on the heap (tens of bytes): a 512 MiB
 * line of `0,` would be 256 M of them at once, a fatal out-of-memory of the process on every attempt.
 */
export const MAX_CSV_FIELDS = 1_048_576;

/** RFC 4180 records with the physical line each starts on, one at a time. Blank lines are skipped. */
export function* csvRecords(text: string, uri: string): Generator<CsvRecord> {
  let line = 1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const start = line;
    const fields: string[] = [];
    const quoted: boolean[] = [];
    let blank = true;
    for (;;) {
      // One field.
      let value = '';
      let wasQuoted = false;
      // Leading spaces before a quote are allowed (and dropped).
      let j = i;
      while (j < n && (text[j] === ' ' || text[j] === '\t')) j++;
      if (text[j] === '"') {
        wasQuoted = true;
        blank = false;
        i = j + 1;
        for (;;) {
          if (i >= n) fail(`${uri} line ${start}: a quoted field is not closed`);
          const ch = text[i]!;
          if (ch === '"') {
            if (text[i + 1] === '"') {
              value += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (ch === '\n') line++;
          value += ch;
          i++;
        }
        while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\r')) i++;
        if (i < n && text[i] !== ',' && text[i] !== '\n') {
          fail(`${uri} line ${line}: unexpected ${describeData(text[i])} after a quoted field`);
        }
      } else {
        let end = i;
        while (end < n && text[end] !== ',' && text[end] !== '\n') end++;
        value = text.slice(i, end).replace(/\r$/, '').trim();
        if (value.includes('"')) fail(`${uri} line ${line}: a quote inside an unquoted field: ${describeData(value)}`);
        if (value !== '' || text[end] === ',') blank = false;
        i = end;
      }
      fields.push(value);
      quoted.push(wasQuoted);
      if (fields.length > MAX_CSV_FIELDS) fail(`${uri} line ${start}: more than ${MAX_CSV_FIELDS} fields in one record`);
      if (i < n && text[i] === ',') {
        i++;
        continue;
      }
      // End of record: a newline or the end of the text.
      if (i < n && text[i] === '\n') {
        i++;
        line++;
      }
      break;
    }
    if (!blank) yield { line: start, fields, quoted };
  }
}

/** Every RFC 4180 record of `text` (csvRecords, collected). */
export function parseCsvRecords(text: string, uri: string): CsvRecord[] {
  return [...csvRecords(text, uri)];
}

/**
 * The table of a CSV text. Parsed in chunks of ROWS_PER_YIELD records with a yield to the event
 * loop between them, so a large file keeps the trainer answering and heartbeating.
 */
export async function csvTable(text: string, uri: string): Promise<Table> {
  const records = csvRecords(text, uri);
  const first = records.next();
  const header = first.done ? undefined : first.value;
  if (!header) fail(`${uri} is empty: expected a header row`);
  const columns = header.fields;
  columns.forEach((c, k) => {
    if (c === '') fail(`${uri} line ${header.line}: header column ${k + 1} has no name`);
    if (columns.indexOf(c) !== k) fail(`${uri} line ${header.line}: header column \`${excerpt(c)}\` appears twice`);
  });
  const rows: Row[] = [];
  for (const r of records) {
    if (r.fields.length !== columns.length) {
      fail(`${uri} line ${r.line}: expected ${columns.length} columns as in the header, got ${r.fields.length}`);
    }
    rows.push({ index: rows.length + 1, line: r.line, values: new Map(columns.map((c, j) => [c, r.fields[j]!])) });
    if (rows.length % ROWS_PER_YIELD === 0) await breathe();
  }
  return { columns, rows };
}

/** The table of a JSON Lines text, parsed in chunks like csvTable. */
export async function jsonlTable(text: string, uri: string, explicitColumns: boolean): Promise<Table> {
  let columns: string[] | undefined;
  const rows: Row[] = [];
  const lines = text.split('\n');
  for (let k = 0; k < lines.length; k++) {
    if (k % ROWS_PER_YIELD === ROWS_PER_YIELD - 1) await breathe();
    const line = k + 1;
    const s = lines[k]!.trim();
    if (s === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(s);
    } catch (err) {
      fail(`${uri} line ${line}: not valid JSON${jsonErrorPosition(err)}`);
    }
    if (!isObject(value)) fail(`${uri} line ${line}: expected a JSON object, got ${describeData(value)}`);
    if (!columns) {
      columns = Object.keys(value);
    } else if (!explicitColumns) {
      const extra = Object.keys(value).find((key) => !columns!.includes(key));
      if (extra !== undefined) fail(`${uri} line ${line}: field \`${excerpt(extra)}\` is not in the first object's fields (${excerptList(columns)}); list \`params.features\` to pick columns`);
    }
    rows.push({ index: rows.length + 1, line, values: new Map(Object.entries(value)) });
  }
  if (!columns) fail(`${uri} is empty: expected one JSON object per line`);
  return { columns, rows };
}
