/**
 * The audit area of a worker, composed once (worker.ts calls this): the audit loop, its
 * signed reports (stored, and published on the overlay's `audit` topic), the challenge
 * responder on `/<network>/audit/1.0.0`, and a challenger for checking other workers.
 * See docs/audits.md.
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import type { Registry } from 'prom-client'
import { auditProtocolId, MAX_CHALLENGE_FRAME_BYTES } from '@pharos/protocol/audit/index.ts'
import type { ChallengeResult } from '@pharos/protocol/audit/index.ts'
import type { Ed25519Signer } from '@pharos/protocol/log/index.ts'
import type { Config } from '../config/schema.ts'
import type { Logger } from '../logging/logger.ts'
import { createAuditMetrics } from './audit-metrics.ts'
import type { AuditMetrics } from './audit-metrics.ts'
import { serveRequests } from '@pharos/net/request-response.ts'
import type { StorageService } from '../pinning/storage-service.ts'
import type { SqlQueryable } from '../storage/sql.ts'
import { AuditStore } from './audit-store.ts'
import { Auditor } from './auditor.ts'
import { challengeWorker, verifiedCopy } from './challenger.ts'
import { ChallengeResponder } from './challenge-responder.ts'

/** The overlay topic reports are published on (a member of OVERLAY_TOPICS). */
export const AUDIT_TOPIC = 'audit'
/** A challenge must be read and answered within this (guess: 64 block reads from Postgres). */
const CHALLENGE_TIMEOUT_MS = 30_000
/** Concurrent inbound challenge streams per connection. */
const MAX_INBOUND_CHALLENGE_STREAMS = 2

export interface AuditServiceDeps {
  config: Pick<Config, 'network' | 'auditIntervalMs' | 'auditSampleSize' | 'auditMaxBytesPerSecond' | 'auditRepairTimeoutMs' | 'auditChallengesPerMinute'>
  db: SqlQueryable
  node: Libp2p
  storage: Pick<StorageService, 'blockstore' | 'fetchBlock' | 'dialOrigin'>
  signer: Ed25519Signer
  /** Broadcasts a report on the overlay topic to this worker's peers and hands it to the fleet's other workers. */
  publish: (topic: string, messageId: string, payload: Uint8Array) => void
  registry: Registry
  log: Logger
}

export interface AuditService {
  readonly auditor: Auditor
  readonly store: AuditStore
  readonly metrics: AuditMetrics
  /** Challenges `worker` to prove it holds `cids`, judged against this worker's own copies. */
  challenge: (worker: PeerId, cids: readonly CID[], signal: AbortSignal) => Promise<ChallengeResult>
  /** Registers the challenge protocol and schedules audit rounds. Call after libp2p started. */
  start: () => Promise<void>
  /** Stops rounds (one under way is aborted) and unregisters the protocol. */
  stop: () => Promise<void>
}

export function createAuditService (deps: AuditServiceDeps): AuditService {
  const { config, node, storage } = deps
  const log = deps.log.child({ component: 'audit' })
  const metrics = createAuditMetrics(deps.registry)
  const store = new AuditStore(deps.db)
  const auditor = new Auditor({
    intervalMs: config.auditIntervalMs,
    sampleSize: config.auditSampleSize,
    maxBytesPerSecond: config.auditMaxBytesPerSecond,
    repairTimeoutMs: config.auditRepairTimeoutMs
  }, {
    signer: deps.signer,
    store,
    blockstore: storage.blockstore,
    refetch: async (cid, origins, signal) => {
      // Dials are best effort and run beside the fetch: Bitswap sends our want to every peer
      // as it connects, so the first origin to answer wins and a dead one costs nothing.
      for (const origin of origins) {
        storage.dialOrigin(origin, signal).catch((err: unknown) => { log.debug({ err, origin }, 'could not dial a pin origin for a repair') })
      }
      await storage.fetchBlock(cid, signal)
    },
    publish: (reportCid, statement) => { deps.publish(AUDIT_TOPIC, reportCid, statement) },
    metrics,
    log: deps.log
  })
  const responder = new ChallengeResponder({ blockstore: storage.blockstore, challengesPerMinute: config.auditChallengesPerMinute, metrics })
  const protocol = auditProtocolId(config.network)
  const ownCopy = verifiedCopy(storage.blockstore)

  return {
    auditor,
    store,
    metrics,
    async challenge (worker, cids, signal) {
      try {
        const result = await challengeWorker(node, worker, cids, ownCopy, { network: config.network, signal })
        metrics.challengesSent.inc({ outcome: result.verdict })
        return result
      } catch (err) {
        metrics.challengesSent.inc({ outcome: 'error' })
        throw err
      }
    },
    async start () {
      await serveRequests(node, protocol, async (frame, connection, signal) => await responder.answer(frame, connection.remotePeer.toString(), signal), {
        maxRequestBytes: MAX_CHALLENGE_FRAME_BYTES,
        timeoutMs: CHALLENGE_TIMEOUT_MS,
        maxInboundStreams: MAX_INBOUND_CHALLENGE_STREAMS,
        onRejected: (connection, err) => {
          metrics.challengesAnswered.inc({ outcome: 'rejected' })
          log.debug({ err, peer: connection.remotePeer.toString() }, 'audit challenge rejected')
        }
      })
      auditor.start()
    },
    async stop () {
      await auditor.stop()
      await node.unhandle(protocol).catch(() => {})
    }
  }
}
