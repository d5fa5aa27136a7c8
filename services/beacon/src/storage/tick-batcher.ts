/**
 * Coalesces the calls started in one turn of the event loop into one batch (the DataLoader
 * pattern): the blockstore turns concurrent puts into one multi-row INSERT and concurrent
 * gets into one binary COPY, so a statement's fixed cost (a round trip, the server's
 * executor start, the pool checkout, the socket writes) is paid once per batch rather than
 * once per block. Each caller still gets its own outcome: `run` returns one settled result
 * per item, and a caller whose signal aborts is answered at once without touching the others.
 */

/** A batch's `run` answered fewer results than it was given items (a bug in `run`). */
export class BatchResultMissingError extends Error {
  override readonly name = 'BatchResultMissingError'
}

export interface TickBatcherInit<Item, Result> {
  /**
   * Runs one batch; answers one settled result per item, in the order given. If it throws,
   * every caller in the batch gets that error. It may answer an item early through
   * `answer(index, outcome)` (a read whose row arrived before the rest); a later outcome
   * for that item is ignored.
   */
  run: (items: Item[], answer: (index: number, outcome: PromiseSettledResult<Result>) => void) => Promise<Array<PromiseSettledResult<Result>>>
  /** Items per batch; a batch that is full is sent at once. */
  maxItems: number
  /**
   * Bytes per batch by `sizeOf`; an item that would overflow it starts the next batch, and an
   * item this size or larger is sent at once, alone. @default Infinity
   */
  maxBytes?: number
  /** The size an item adds to its batch. @default () => 0 */
  sizeOf?: (item: Item) => number
}

interface Waiting<Item, Result> {
  item: Item
  settled: boolean
  resolve: (result: Result) => void
  reject: (err: unknown) => void
  /** Removes the abort listener. */
  release: () => void
}

export class TickBatcher<Item, Result> {
  private readonly init: Required<TickBatcherInit<Item, Result>>
  private waiting: Array<Waiting<Item, Result>> = []
  private waitingBytes = 0
  private scheduled: NodeJS.Immediate | undefined

  constructor (init: TickBatcherInit<Item, Result>) {
    this.init = { maxBytes: Number.POSITIVE_INFINITY, sizeOf: () => 0, ...init }
  }

  /** The result of `item`, run in the batch of the current turn of the event loop. */
  async submit (item: Item, signal?: AbortSignal): Promise<Result> {
    signal?.throwIfAborted()
    return await new Promise<Result>((resolve, reject) => {
      const size = this.init.sizeOf(item)
      if (this.waiting.length > 0 && this.waitingBytes + size > this.init.maxBytes) this.flush()
      const entry: Waiting<Item, Result> = { item, settled: false, resolve, reject, release: () => {} }
      if (signal !== undefined) {
        // An aborted caller is answered now; a batch already sent still runs for the others,
        // and one not yet sent goes without it.
        const onAbort = (): void => {
          if (entry.settled) return
          entry.settled = true
          reject(signal.reason)
        }
        signal.addEventListener('abort', onAbort, { once: true })
        entry.release = () => { signal.removeEventListener('abort', onAbort) }
      }
      this.waiting.push(entry)
      this.waitingBytes += size
      if (this.waiting.length >= this.init.maxItems || size >= this.init.maxBytes) {
        // The batch is full (or this item fills one alone): waiting for the end of the turn
        // would only delay it.
        this.flush()
        return
      }
      // setImmediate, not a microtask: callers that were waiting on I/O (a hash on the thread
      // pool, the previous batch's reply) and resume in the same poll phase join one batch.
      this.scheduled ??= setImmediate(() => {
        this.scheduled = undefined
        this.flush()
      })
    })
  }

  private flush (): void {
    const batch = this.waiting.filter((entry) => !entry.settled)
    this.waiting = []
    this.waitingBytes = 0
    if (batch.length === 0) return
    const settle = (entry: Waiting<Item, Result>, outcome: PromiseSettledResult<Result> | undefined): void => {
      entry.release()
      if (entry.settled) return
      entry.settled = true
      if (outcome === undefined) entry.reject(new BatchResultMissingError('a batch answered fewer results than it was given items'))
      else if (outcome.status === 'fulfilled') entry.resolve(outcome.value)
      else entry.reject(outcome.reason)
    }
    const answer = (index: number, outcome: PromiseSettledResult<Result>): void => {
      const entry = batch[index]
      if (entry !== undefined) settle(entry, outcome)
    }
    this.init.run(batch.map((entry) => entry.item), answer).then(
      (outcomes) => { batch.forEach((entry, i) => { settle(entry, outcomes[i]) }) },
      (err: unknown) => { for (const entry of batch) settle(entry, { status: 'rejected', reason: err }) }
    )
  }
}
