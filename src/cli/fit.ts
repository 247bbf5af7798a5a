/**
 * Fitting a status line to a terminal's width: the line is a row of segments, each with a priority;
 * when it would be wider than the terminal, the least important segments go first (or their shorter
 * form is used), so the line never wraps. Pure: the same segments and width give the same line.
 */

export interface Segment {
  /** Longest form first; a shorter form is tried when the longer one does not fit. */
  readonly forms: readonly string[];
  /** 0 is kept longest; higher numbers are dropped first. */
  readonly priority: number;
  /** Spaces before this segment when another is shown before it (two between groups, one within). */
  readonly gap?: number;
}

export const seg = (priority: number, gap: number, ...forms: string[]): Segment => ({ forms, priority, gap });

/** Cuts a line to `width` characters, marking the cut with an ellipsis. */
export function truncate(line: string, width: number): string {
  if (line.length <= width) return line;
  if (width <= 0) return '';
  return width === 1 ? line.slice(0, 1) : `${line.slice(0, width - 1)}…`;
}

function join(segments: readonly Segment[], chosen: ReadonlyMap<number, string>): string {
  let line = '';
  segments.forEach((s, i) => {
    const text = chosen.get(i);
    if (text === undefined) return;
    line += line === '' ? text : `${' '.repeat(s.gap ?? 2)}${text}`;
  });
  return line;
}

/**
 * The line of these segments (in their order) that fits `width`: segments are added from the most
 * important down, each in its longest form that still fits, until one does not fit. The most
 * important segment is cut with an ellipsis if even it alone is too wide.
 */
export function fitSegments(segments: readonly Segment[], width: number): string {
  const order = segments.map((s, i) => ({ s, i })).sort((a, b) => a.s.priority - b.s.priority || a.i - b.i);
  const chosen = new Map<number, string>();
  for (const { s, i } of order) {
    const form = s.forms.find((f) => join(segments, new Map(chosen).set(i, f)).length <= width);
    // Stop at the first segment that does not fit: a less important one filling the gap would make
    // the fields come and go between redraws as the numbers change length.
    if (form === undefined) break;
    chosen.set(i, form);
  }
  if (chosen.size === 0 && order[0]) chosen.set(order[0].i, order[0].s.forms[0] ?? '');
  return truncate(join(segments, chosen), width);
}
