/**
 * A CPU budget per author for work that arrives in bulk (the entries of an ancestor fetch):
 * one lane per author, a task at a time within a lane, lanes served round-robin by at most
 * `concurrency` runners. A runner takes up to `slice` tasks of one lane, then yields to the
 * event loop (setImmediate, so timers, I/O and HTTP requests such as /healthz run) and moves
 * on to the next lane in the ring. So one author's backlog of thousands of entries never
 * holds the event loop for more than a slice, and an author that arrives later waits for at
 * most one slice of every lane ahead of it, not for their whole backlogs.
 */

export interface AuthorLanesOptions {
  /** Lanes served at once (each runs one task at a time). */
  concurrency: number
  /** Tasks a runner takes from one lane before it yields and moves on. */
  slice: number
}

interface Job {
  task: () => Promise<unknown>
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
}

const yieldToEventLoop = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

export class AuthorLanes {
  private readonly concurrency: number
  private readonly slice: number
  /** Pending jobs per lane; a lane is here while it has jobs or a runner holds it. */
  private readonly lanes = new Map<string, Job[]>()
  /** Lanes with jobs that no runner holds, in turn order. */
  private readonly ring: string[] = []
  private runners = 0

  constructor (options: AuthorLanesOptions) {
    if (!Number.isSafeInteger(options.concurrency) || options.concurrency < 1 || !Number.isSafeInteger(options.slice) || options.slice < 1) {
      throw new RangeError(`lanes need a positive integer concurrency and slice, not ${options.concurrency} and ${options.slice}`)
    }
    this.concurrency = options.concurrency
    this.slice = options.slice
  }

  /** Runs `task` in `lane`'s turn, after the lane's earlier tasks; settles as the task does. */
  async run<T> (lane: string, task: () => Promise<T>): Promise<T> {
    return await new Promise<T>((resolve, reject) => {
      let jobs = this.lanes.get(lane)
      if (jobs === undefined) {
        jobs = []
        this.lanes.set(lane, jobs)
        this.ring.push(lane)
      }
      jobs.push({ task, resolve: resolve as (value: unknown) => void, reject })
      this.pump()
    })
  }

  /** Tasks waiting, over all lanes (tests, progress). */
  get pending (): number {
    let count = 0
    for (const jobs of this.lanes.values()) count += jobs.length
    return count
  }

  private pump (): void {
    while (this.runners < this.concurrency && this.ring.length > 0) {
      const lane = this.ring.shift()
      if (lane === undefined) break
      this.runners++
      void this.serve(lane).finally(() => {
        this.runners--
        this.pump()
      })
    }
  }

  /** One turn: up to `slice` jobs of `lane`, then a yield; the lane goes to the back of the ring if it has more. */
  private async serve (lane: string): Promise<void> {
    const jobs = this.lanes.get(lane) ?? []
    for (let done = 0; done < this.slice; done++) {
      const job = jobs.shift()
      if (job === undefined) break
      try {
        job.resolve(await job.task())
      } catch (err) {
        job.reject(err)
      }
    }
    await yieldToEventLoop()
    // Jobs added during the turn stay in this lane's list (it was held, not in the ring).
    if (jobs.length > 0) this.ring.push(lane)
    else this.lanes.delete(lane)
  }
}
