/**
 * One status line on a terminal's stderr, redrawn in place (`\r` and erase-line), for
 * `pharos-peer fetch` and `publish`. Off a terminal it writes nothing: stderr there is a log
 * or a pipe, where redrawn lines are noise; the result still goes to stdout.
 */

/** Redraws at most this often (guess: smooth to the eye, a few writes a second). */
const REDRAW_MS = 100

/** `1536` → `1.5 KiB`. */
export function formatBytes (bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`
}

export class ProgressLine {
  private readonly write: (text: string) => void
  private readonly enabled: boolean
  private readonly now: () => number
  private lastDraw = -Infinity
  private pending: string | undefined
  private shown = false

  constructor (write: (text: string) => void, enabled: boolean, now: () => number = Date.now) {
    this.write = write
    this.enabled = enabled
    this.now = now
  }

  /** Shows `text` now, or at the next update after REDRAW_MS unless `force`. */
  update (text: string, force = false): void {
    if (!this.enabled) return
    this.pending = text
    if (!force && this.now() - this.lastDraw < REDRAW_MS) return
    this.draw()
  }

  /** Draws what is pending and ends the line, so what follows starts on a line of its own. */
  done (): void {
    if (!this.enabled) return
    if (this.pending !== undefined) this.draw()
    if (this.shown) this.write('\n')
    this.shown = false
  }

  private draw (): void {
    if (this.pending === undefined) return
    this.write(`\r\u001b[2K${this.pending}`)
    this.pending = undefined
    this.lastDraw = this.now()
    this.shown = true
  }
}
