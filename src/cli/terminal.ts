/**
 * Strings from users and from the server (workflow and schedule ids, failure messages, params,
 * model names, notes) made safe to print on a terminal. A workflow id may hold `\x1b[31m` or an
 * OSC 8 link; printed raw it recolours, moves the cursor or retitles the reader's terminal. Every
 * line the CLI prints of such a string goes through `forTerminal` (text) or `jsonForTerminal`
 * (--json); our own cursor codes (live-output.ts) are added after.
 */
import { escapeText } from '../config/validate';

// C0 and C1 controls and DEL: JSON.stringify (escapeText) escapes C0 only, and a terminal reads
// U+009B as CSI, the 8-bit form of ESC [.
const CONTROL = /\p{Cc}/u;
const hex = (c: string): string => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`;

/**
 * `text` with every control character (C0, DEL, C1) and every invisible format character
 * (bidirectional controls, zero-width characters: escapeText's set) written as an escape such as
 * `\u001b` or `\n`; quotes and backslashes stay as they are, so an ordinary id reads as typed.
 * With `max`, at most that many characters are kept (cut before escaping), then `…`.
 */
export function forTerminal(value: unknown, options: { readonly max?: number; readonly newlines?: boolean } = {}): string {
  const text = typeof value === 'string' ? value : String(value);
  const chars = [...text];
  const cut = options.max !== undefined && chars.length > options.max;
  const shown = (cut ? chars.slice(0, options.max) : chars).map((c) => {
    if (c === '"' || c === '\\' || (c === '\n' && options.newlines)) return c;
    const escaped = escapeText(c);
    if (escaped !== c) return escaped;
    return CONTROL.test(c) ? hex(c) : c;
  });
  return `${shown.join('')}${cut ? '…' : ''}`;
}

// Outside its strings JSON has no such characters; inside them a \u escape is the same text.
const JSON_UNSAFE = /[\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/gu;

/** JSON.stringify whose output holds no control or invisible character (they are \u-escaped; the JSON means the same). */
export function jsonForTerminal(value: unknown): string {
  // Code units, so a character beyond U+FFFF becomes its surrogate pair, as JSON spells it.
  const units = (c: string): string => c.split('').map((u) => `\\u${u.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
  return (JSON.stringify(value) ?? 'null').replace(JSON_UNSAFE, units);
}
