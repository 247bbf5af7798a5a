/**
 * Field-level validation for plain-JSON inputs. Pure code: workflows, activities and the
 * CLI all run it, so the same input gets the same error everywhere.
 */

export interface ConfigIssue {
  /** Dotted path of the field, e.g. `hyperparameters.learningRate`. */
  readonly field: string;
  readonly expected: string;
  readonly received: string;
}

/** Thrown for invalid input; its message lists every problem, one per line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly issues: readonly ConfigIssue[], context = 'Invalid input') {
    super(`${context}:\n${issues.map((i) => `  - ${formatIssue(i)}`).join('\n')}`);
  }
}

export function formatIssue(issue: ConfigIssue): string {
  return `Expected \`${shownField(issue.field)}\` to be ${issue.expected}, got ${issue.received}`;
}

/**
 * Format characters (bidirectional-text controls, zero-width characters, Unicode tags), other
 * default-ignorable ones (variation selectors, Hangul fillers) and line/paragraph separators, which
 * JSON.stringify leaves as they are: in a message they make the text read as something else (a URI
 * ending in `\u202egpj.csv` shows as `…vsc.jpg`) or carry text no reader sees.
 */
const INVISIBLE = /[\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\u115f\u1160\u3164\uffa0]/gu;

/** The first invisible character of `text` as `U+202E`, or undefined: for inputs (URIs) that must not have any. */
export function invisibleCharacter(text: string): string | undefined {
  const m = new RegExp(INVISIBLE.source, 'u').exec(text);
  return m ? `U+${m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}` : undefined;
}

/** JSON string escaping (quotes, backslashes, control characters) plus the invisible characters above; no surrounding quotes. */
export function escapeText(text: string): string {
  return JSON.stringify(text)
    .slice(1, -1)
    .replace(INVISIBLE, (c) => {
      const cp = c.codePointAt(0)!;
      return cp <= 0xffff ? `\\u${cp.toString(16).padStart(4, '0')}` : `\\u{${cp.toString(16)}}`;
    });
}

/** The escaped first `max` characters of `text`, `…` when it had more (cut before escaping, so no escape is cut in half). */
function bounded(text: string, max: number): string {
  const chars = [...text];
  return chars.length > max ? `${escapeText(chars.slice(0, max).join(''))}…` : escapeText(text);
}

/** A field path as messages show it: field names come from the input, so they are escaped and bounded too. */
function shownField(field: string): string {
  return bounded(field, 100).replace(/`/g, '\\`');
}

const MAX_KEYS_SHOWN = 8;
function shownKeys(keys: readonly string[]): string {
  const shown = keys.slice(0, MAX_KEYS_SHOWN).map((k) => bounded(k, 24));
  return keys.length > MAX_KEYS_SHOWN ? `${shown.join(', ')} and ${keys.length - MAX_KEYS_SHOWN} more` : shown.join(', ');
}

/** Describes a received value the way the error messages show it: `-1` (number). */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing (undefined)';
  if (value === null) return '`null`';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return `an object with keys [${shownKeys(Object.keys(value))}]`;
  let shown: string;
  try {
    shown = typeof value === 'string' ? `"${escapeText(value)}"` : escapeText(String(value));
  } catch {
    shown = escapeText(String(value));
  }
  if (shown.length > 80) shown = `${shown.slice(0, 77)}...`;
  return `\`${shown}\` (${typeof value})`;
}

export type JsonObject = { readonly [key: string]: unknown };

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Collects issues while walking an input; `check*` helpers return the value or undefined. */
export class Checker {
  readonly issues: ConfigIssue[] = [];

  fail(field: string, expected: string, value: unknown): undefined {
    this.issues.push({ field, expected, received: describe(value) });
    return undefined;
  }

  object(field: string, value: unknown, required = true): JsonObject | undefined {
    if (value === undefined && !required) return undefined;
    return isObject(value) ? value : this.fail(field, 'an object', value);
  }

  /** Rejects keys that are not in `known`: a typo must not silently fall back to a default. */
  noUnknownKeys(field: string, value: JsonObject, known: readonly string[]): void {
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) {
        this.issues.push({
          field: field ? `${field}.${key}` : key,
          expected: `one of the known fields (${known.join(', ')})`,
          received: `an unknown field`,
        });
      }
    }
  }

  string(field: string, value: unknown, opts: { required?: boolean; nonEmpty?: boolean } = {}): string | undefined {
    if (value === undefined && opts.required === false) return undefined;
    if (typeof value !== 'string' || (opts.nonEmpty !== false && value.length === 0)) {
      return this.fail(field, 'a non-empty string', value);
    }
    return value;
  }

  oneOf<T extends string>(field: string, value: unknown, choices: readonly T[], fallback?: T): T | undefined {
    if (value === undefined && fallback !== undefined) return fallback;
    if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
    return this.fail(field, `one of ${choices.map((c) => `\`${c}\``).join(', ')}`, value);
  }

  number(
    field: string,
    value: unknown,
    opts: { min?: number; max?: number; exclusiveMin?: number; integer?: boolean; fallback?: number; optional?: boolean } = {},
  ): number | undefined {
    if (value === undefined) {
      if (opts.fallback !== undefined) return opts.fallback;
      if (opts.optional) return undefined;
    }
    const whole = opts.integer ? 'a whole number' : 'a number';
    let expected = whole;
    if (opts.exclusiveMin !== undefined) {
      expected = `${whole} greater than ${opts.exclusiveMin}${opts.max !== undefined ? ` and at most ${opts.max}` : ''}`;
    }
    else if (opts.min !== undefined && opts.max !== undefined) expected = `${whole} from ${opts.min} to ${opts.max}`;
    else if (opts.min !== undefined) expected = `${whole} from ${opts.min} and up`;
    else if (opts.max !== undefined) expected = `${whole} at most ${opts.max}`;
    if (typeof value !== 'number' || !Number.isFinite(value)) return this.fail(field, expected, value);
    if (opts.integer && !Number.isInteger(value)) return this.fail(field, expected, value);
    if (opts.exclusiveMin !== undefined && !(value > opts.exclusiveMin)) return this.fail(field, expected, value);
    if (opts.min !== undefined && value < opts.min) return this.fail(field, expected, value);
    if (opts.max !== undefined && value > opts.max) return this.fail(field, expected, value);
    return value;
  }

  boolean(field: string, value: unknown, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') {
      this.fail(field, 'true or false', value);
      return fallback;
    }
    return value;
  }

  throwIfAny(context?: string): void {
    if (this.issues.length > 0) throw new ConfigError(this.issues, context);
  }
}

const MAX_ID_LENGTH = 128;

/**
 * Ids become path segments in the checkpoint store: only a conservative character set, so
 * no input can climb out of its prefix (`..`, separators) or hide control characters.
 */
export function checkPathSegment(c: Checker, field: string, value: unknown): string | undefined {
  const expected = `an id of 1 to ${MAX_ID_LENGTH} characters from [A-Za-z0-9._-], not starting with '.'`;
  if (typeof value !== 'string') return c.fail(field, expected, value);
  if (value.length === 0 || value.length > MAX_ID_LENGTH || !/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(value)) {
    return c.fail(field, expected, value);
  }
  return value;
}
