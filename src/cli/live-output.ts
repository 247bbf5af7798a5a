/**
 * Printing a live view: on a terminal the last frame is redrawn in place (cursor up over it, clear
 * to the end of the screen, print the new one); anywhere else each changed frame is printed below
 * the last, with no escape codes, so a log or a pipe gets one line per change.
 */
import type { Io } from './context';

// Cursor up N lines, to column 1, erase from there to the end of the screen (ECMA-48 CUU, CR, ED).
const redrawFrom = (lines: number): string => (lines > 0 ? `\x1b[${lines}A\r\x1b[J` : '');

export class LiveOutput {
  private shown: readonly string[] | undefined;
  private drawnLines = 0;

  constructor(private readonly io: Pick<Io, 'out' | 'tty'>) {}

  /** Shows a frame (lines that already fit the terminal); nothing happens when it did not change. */
  show(lines: readonly string[]): void {
    if (this.shown && lines.length === this.shown.length && lines.every((l, i) => l === this.shown![i])) return;
    this.shown = lines;
    if (!this.io.tty) {
      this.io.out(lines.join('\n'));
      return;
    }
    this.io.out(`${redrawFrom(this.drawnLines)}${lines.join('\n')}`);
    this.drawnLines = lines.length;
  }

  /** Keeps the current frame on screen: whatever is printed next goes below it. */
  release(): void {
    this.drawnLines = 0;
  }
}
