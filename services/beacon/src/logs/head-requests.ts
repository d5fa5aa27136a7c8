/**
 * The beacon's side of HEAD requests on the `sync` topic (docs/logs.md "HEAD requests"): a
 * peer broadcasts which authors' heads it wants, and this worker, a seeder of every registered
 * author's log, answers from Postgres with the heads better than what the peer holds. The
 * answer is a push over the sync protocol (a `heads` request carrying them as `known`), and
 * the peer fetches what it lacks from us with `entries`.
 *
 * What a request can make a worker do, in order, each check before the next costs anything:
 * 1. a well-formed, fresh request signed by the asker it names (head-request.ts);
 * 2. a registered asker;
 * 3. a direct connection to the asker already open: a broadcast reaches every node, and a
 *    worker that dialled each asker would let one request aim the fleet at any peer; the
 *    asker's own beacons hold connections to it (the SDK dials them at start);
 * 4. within PHAROS_SYNC_HEAD_REQUESTS_PER_MINUTE for that asker, and
 *    PHAROS_SYNC_HEAD_ANSWERS_MAX answers in progress on this worker;
 * 5. one query for the registered authors among the (at most 32) asked about;
 * 6. one push of at most 32 heads.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { CID } from 'multiformats/cid'
import { encodeSyncRequest, newerHeads, openHeadRequest, syncProtocolId } from '@pharos/protocol/log/index.ts'
import type { HeadRequest, KnownHead } from '@pharos/protocol/log/index.ts'
import type { Connection, Libp2p } from '@libp2p/interface'
import type { Logger } from '../logging/logger.ts'
import type { LimitMetrics } from '../metrics/limit-metrics.ts'
import type { LogMetrics } from './log-metrics.ts'
import type { LogStore } from './log-store.ts'
import { TokenBuckets } from './token-buckets.ts'

/** The asker answers a push with its heads of no authors: an empty list (generous bound). */
const PUSH_ANSWER_MAX_BYTES = 64 * 1024

export interface HeadRequestsDeps {
  node: Pick<Libp2p, 'getConnections'>
  network: string
  logs: Pick<LogStore, 'heads'>
  isRegistered: (peerId: string) => boolean
  /** PHAROS_SYNC_HEAD_REQUESTS_PER_MINUTE: requests answered per asker per minute. */
  requestsPerMinute: number
  /** PHAROS_SYNC_HEAD_ANSWERS_MAX: answers in progress at once on this worker. */
  answersMax: number
  /** A push must be done within this (guess: the sync protocol's own request bound). */
  pushTimeoutMs?: number
  metrics: Pick<LogMetrics, 'headRequests'>
  limitMetrics: Pick<LimitMetrics, 'blocked'>
  log: Logger
}

export class HeadRequests {
  readonly #deps: HeadRequestsDeps
  readonly #rate: TokenBuckets
  readonly #protocol: string
  #answering = 0

  constructor (deps: HeadRequestsDeps) {
    this.#deps = deps
    this.#rate = new TokenBuckets({ capacity: deps.requestsPerMinute, perMinute: deps.requestsPerMinute })
    this.#protocol = syncProtocolId(deps.network)
  }

  /** A payload delivered on the `sync` topic. Resolves once it is answered or refused; never rejects. */
  async onDelivered (payload: Uint8Array, signal: AbortSignal): Promise<void> {
    const { metrics, limitMetrics } = this.#deps
    const opened = await openHeadRequest(payload, Date.now())
    if (!opened.ok) {
      metrics.headRequests.inc({ outcome: 'malformed' })
      return
    }
    const request = opened.value
    if (!this.#deps.isRegistered(request.asker)) {
      metrics.headRequests.inc({ outcome: 'unregistered' })
      return
    }
    const asker = peerIdFromString(request.asker)
    const connection = this.#deps.node.getConnections(asker).find((c) => c.status === 'open' && c.limits === undefined)
    if (connection === undefined) {
      metrics.headRequests.inc({ outcome: 'not-connected' })
      return
    }
    if (!this.#rate.take(request.asker)) {
      metrics.headRequests.inc({ outcome: 'rate-limited' })
      limitMetrics.blocked('syncHeadRequestsPerMinute')
      return
    }
    if (this.#answering >= this.#deps.answersMax) {
      metrics.headRequests.inc({ outcome: 'busy' })
      limitMetrics.blocked('syncHeadAnswersMax')
      return
    }
    this.#answering++
    try {
      const newer = await this.#newer(request)
      if (newer.length === 0) {
        metrics.headRequests.inc({ outcome: 'up-to-date' })
        return
      }
      const timeout = AbortSignal.timeout(this.#deps.pushTimeoutMs ?? 30_000)
      await this.#push(connection, newer, AbortSignal.any([signal, timeout]))
      metrics.headRequests.inc({ outcome: 'answered' })
    } catch (err) {
      metrics.headRequests.inc({ outcome: 'push-failed' })
      this.#deps.log.debug({ err, asker: request.asker }, 'answering a head request failed')
    } finally {
      this.#answering--
    }
  }

  /** The best heads we hold of the registered authors asked about, where better than the asker's. */
  async #newer (request: HeadRequest): Promise<KnownHead[]> {
    const wants = request.wants.filter((want) => this.#deps.isRegistered(want.author))
    if (wants.length === 0) return []
    const held = new Map((await this.#deps.logs.heads(wants.map((want) => want.author))).map((head) => [head.author, { cid: CID.decode(head.cid), seq: head.seq }]))
    return newerHeads(wants, held)
  }

  /**
   * A `heads` request that asks for nothing and carries `known`: sync on connect's way of
   * saying "these are here; fetch what you lack". The answer (the asker's heads of no
   * authors) is read and dropped.
   */
  async #push (connection: Connection, known: KnownHead[], signal: AbortSignal): Promise<void> {
    // On the connection checked above, never a new dial.
    const stream = await connection.newStream(this.#protocol, { signal })
    try {
      const lp = lpStream(stream, { maxDataLength: PUSH_ANSWER_MAX_BYTES })
      await lp.write(encodeSyncRequest({ t: 'heads', authors: [], known }), { signal })
      await lp.read({ signal })
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
  }
}
