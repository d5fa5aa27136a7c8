/**
 * The order a worker's parts start and stop in, written down once. A part is anything that
 * holds something until the worker stops: a lock, the database pool, a timer, or a service
 * with its own start (HTTP, libp2p, storage, audits, the log service). Parts come up in the
 * order they are added; `stopAll` stops every part that came up, the last first, so a part
 * always stops before what it was started on, and a start that fails half-way stops exactly
 * what had come up. A part whose stop fails is logged, and the rest still stop.
 */
export interface Part {
  /** Names the part in logs and in the order the worker reports (`Worker.parts`). */
  readonly name: string
  /** Brings the part up; a part without one is up as soon as it is added (`held`). */
  readonly start?: () => Promise<void>
  readonly stop: () => Promise<void>
}

export class Lifecycle {
  /** Parts added with `add`, waiting for `startAll`. */
  private readonly pending: Part[] = []
  /** Parts that came up (or began to), in that order. */
  private readonly running: Part[] = []
  private readonly cameUp: string[] = []
  private readonly onStopError: (part: string, err: unknown) => void

  constructor (onStopError: (part: string, err: unknown) => void) {
    this.onStopError = onStopError
  }

  /** Something already acquired (a lock, a pool, a timer): up now, stopped in its turn. */
  held (name: string, stop: () => void | Promise<void>): void {
    this.up({ name, stop: async () => { await stop() } })
  }

  /** A part that comes up with the next `startAll`, after every part added before it. */
  add (part: Part): void {
    this.pending.push(part)
  }

  /**
   * Starts the parts added with `add`, in order. A part whose start fails may have half
   * started, so `stopAll` stops it with the others; the parts after it never start.
   */
  async startAll (): Promise<void> {
    for (let part = this.pending.shift(); part !== undefined; part = this.pending.shift()) {
      this.up(part)
      await part.start?.()
    }
  }

  /** Stops every part that came up, the last first. Safe to call more than once. */
  async stopAll (): Promise<void> {
    this.pending.length = 0
    for (let part = this.running.pop(); part !== undefined; part = this.running.pop()) {
      try {
        await part.stop()
      } catch (err) {
        this.onStopError(part.name, err)
      }
    }
  }

  /** The parts' names in the order they came up; they stop in the reverse order. */
  order (): string[] {
    return [...this.cameUp]
  }

  private up (part: Part): void {
    this.running.push(part)
    this.cameUp.push(part.name)
  }
}
