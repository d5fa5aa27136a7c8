import { Readable } from 'node:stream'
import type { FastifyBaseLogger } from 'fastify'
import { schema } from '../config/schema.ts'
import type { CarOutcome, GatewayMetrics } from './gateway-metrics.ts'
import type { LimitMetrics } from '../metrics/limit-metrics.ts'
import { CarLimitError } from '../storage/car-stream.ts'
import type { CarWalk } from '../storage/car-stream.ts'
import type { PgBlockstore } from '../storage/pg-blockstore.ts'

export interface CarResponseInit {
  blockstore: Pick<PgBlockstore, 'getBytes'>
  /** PHAROS_GATEWAY_CAR_TIMEOUT_MS: the body is cut off this long after it starts. */
  timeoutMs: number
  /** Frees the response's stream slot; called once, when the response closes. */
  release: () => void
  limitMetrics: Pick<LimitMetrics, 'blocked'>
  metrics: GatewayMetrics
  log: FastifyBaseLogger
}

/**
 * One CAR response from the moment it holds a stream slot: it records once how it ended
 * (`pharos_gateway_car_responses_total{outcome}`, a limit also on
 * `pharos_limit_blocked_total` and in an info log line naming the key), and when the
 * response closes, for whatever reason, it stops the walk reading storage and frees the slot.
 */
export class CarResponse {
  private readonly init: CarResponseInit
  private readonly started = performance.now()
  /** Aborted when the response closes or the time limit passes: the walk reads no further block. */
  private readonly abort = new AbortController()
  private outcome: CarOutcome | undefined
  private walk: CarWalk | undefined
  private timer: NodeJS.Timeout | undefined

  constructor (init: CarResponseInit) {
    this.init = init
  }

  /** The walk whose progress the log line reports. */
  track (walk: CarWalk): void {
    this.walk = walk
  }

  /** Records how the response ended; only the first call counts. */
  settle (outcome: CarOutcome, err?: unknown): void {
    if (this.outcome !== undefined) return
    this.outcome = outcome
    const { metrics, limitMetrics, log } = this.init
    metrics.carResponses.inc({ outcome })
    const walked = this.walk?.progress
    const progress = { cid: this.walk?.root.toString(), blocks: walked?.blocks, bytes: walked?.bytes, peakHeld: walked?.peakHeld, ms: Math.round(performance.now() - this.started) }
    if (err instanceof CarLimitError) {
      limitMetrics.blocked(err.key)
      log.info({ ...progress, limit: schema[err.key].env, reason: err.message }, 'CAR response stopped at a limit')
    } else if (outcome === 'error') {
      log.warn({ ...progress, err }, 'CAR stream failed')
    }
  }

  /** The response closed (sent, cut off, or the client went away): stop reading, free the slot. */
  readonly closed = (): void => {
    clearTimeout(this.timer)
    this.settle('client-closed')
    this.abort.abort()
    this.init.release()
  }

  /**
   * The response body: the walk's CAR bytes, pulled as the client reads. An error mid-way
   * (a limit, the time limit, a missing or corrupt block) destroys it, and Fastify then
   * destroys the response: the client sees a truncated transfer, never a CAR that looks
   * complete.
   */
  body (walk: CarWalk): Readable {
    this.walk = walk
    const { blockstore, timeoutMs } = this.init
    const signal = this.abort.signal
    const settle = this.settle.bind(this)
    async function * guarded (): AsyncGenerator<Uint8Array> {
      try {
        yield * walk.stream(blockstore, signal)
        settle('complete')
      } catch (err) {
        settle(err instanceof CarLimitError ? 'limit' : signal.aborted ? 'client-closed' : 'error', err)
        throw err
      }
    }
    const readable = Readable.from(guarded(), { objectMode: false })
    // A client gone while the root was read: Fastify destroys the body at once, no clock needed.
    if (signal.aborted) return readable
    this.timer = setTimeout(() => {
      const err = new CarLimitError('gatewayCarTimeoutMs', timeoutMs, `the CAR took longer than ${timeoutMs} ms`)
      this.settle('limit', err)
      this.abort.abort(err)
      // The walk may be parked waiting for the client to read: destroying the body ends it now.
      readable.destroy(err)
    }, timeoutMs)
    return readable
  }
}
