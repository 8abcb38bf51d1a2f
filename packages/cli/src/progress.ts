// Progress of a long transfer (an upload) on stderr: one line redrawn in place on a terminal, nothing when piped.
import { formatBytes } from './output.js';

/** Redraws at most this often, so a fast transfer does not flood the terminal. */
const REDRAW_MS = 100;

export class TransferProgress {
  private readonly enabled = process.stderr.isTTY === true;
  private lastDraw = 0;
  private drawn = false;

  constructor(private readonly label: string) {}

  update(sent: number, total: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (sent < total && now - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = now;
    const pct = total > 0 ? Math.floor((sent / total) * 100) : 100;
    const width = 24;
    const filled = Math.round((pct / 100) * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const text = `${this.label} [${bar}] ${String(pct).padStart(3)}%  ${formatBytes(sent)} / ${formatBytes(total)}`;
    const columns = process.stderr.columns || 80;
    process.stderr.write(`\r\x1b[K${text.slice(0, columns - 1)}`);
    this.drawn = true;
  }

  /** Clears the line, leaving the terminal as it was. */
  done(): void {
    if (this.drawn) process.stderr.write('\r\x1b[K');
    this.drawn = false;
  }
}
