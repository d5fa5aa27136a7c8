/**
 * The worker's side of `/<network>/audit/1.0.0`: for each CID a challenger names, the
 * hash of the nonce and the block as Postgres holds it (verified), or null when the block is
 * missing or corrupt here. Any worker answers the same, from the fleet's one blockstore.
 *
 * Answering reads up to MAX_CHALLENGE_CIDS blocks, so challenges are bounded: per peer by a
 * fixed one-minute window (PHAROS_AUDIT_CHALLENGES_PER_MINUTE), and worker-wide by how many
 * are answered at once; beyond either the challenger gets a `refused` answer, not a proof.
 */
import { NotFoundError } from 'interface-store'
import { challengeProof, decodeChallengeRequest, encodeChallengeResponse } from '@pharos/protocol/audit/index.ts'
import type { ChallengeRefusal } from '@pharos/protocol/audit/index.ts'
import { TtlLru } from '../fleet/ttl-lru.ts'
import type { AuditMetrics } from './audit-metrics.ts'
import { BlockHashMismatchError } from '../storage/pg-blockstore.ts'
import type { PgBlockstore } from '../storage/pg-blockstore.ts'

const WINDOW_MS = 60_000
/** Challenges answered at once by one worker (guess: each reads up to 64 blocks in turn). */
export const MAX_CONCURRENT_CHALLENGES = 4
/** Peers whose windows are remembered (guess: far more than challenge at once; the oldest go first). */
const MAX_TRACKED_PEERS = 10_000

export interface ChallengeResponderDeps {
  blockstore: Pick<PgBlockstore, 'getBytes'>
  challengesPerMinute: number
  metrics: Pick<AuditMetrics, 'challengesAnswered'>
}

export class ChallengeResponder {
  private readonly deps: ChallengeResponderDeps
  private readonly windows = new TtlLru<{ count: number, endsAt: number }>(MAX_TRACKED_PEERS)
  private answering = 0

  constructor (deps: ChallengeResponderDeps) {
    this.deps = deps
  }

  /** The answer frame to a challenge frame from `peer`, or undefined for a malformed one (the stream is aborted). */
  async answer (frame: Uint8Array, peer: string, signal: AbortSignal): Promise<Uint8Array | undefined> {
    const decoded = decodeChallengeRequest(frame)
    if (!decoded.ok) return undefined
    const refusal = this.admit(peer)
    if (refusal !== undefined) {
      this.deps.metrics.challengesAnswered.inc({ outcome: refusal })
      return encodeChallengeResponse({ t: 'refused', reason: refusal })
    }
    this.answering++
    try {
      const proofs: Array<Uint8Array | null> = []
      for (const cid of decoded.value.cids) {
        try {
          proofs.push(await challengeProof(decoded.value.nonce, await this.deps.blockstore.getBytes(cid, { signal })))
        } catch (err) {
          // A corrupt block is as good as missing: we never prove bytes that fail their hash.
          if (err instanceof NotFoundError || err instanceof BlockHashMismatchError) proofs.push(null)
          else throw err
        }
      }
      this.deps.metrics.challengesAnswered.inc({ outcome: 'answered' })
      return encodeChallengeResponse({ t: 'proofs', proofs })
    } finally {
      this.answering--
    }
  }

  private admit (peer: string): ChallengeRefusal | undefined {
    const now = Date.now()
    const window = this.windows.get(peer, now) ?? { count: 0, endsAt: now + WINDOW_MS }
    if (window.count >= this.deps.challengesPerMinute) return 'rate-limited'
    if (this.answering >= MAX_CONCURRENT_CHALLENGES) return 'busy'
    this.windows.set(peer, { count: window.count + 1, endsAt: window.endsAt }, window.endsAt - now, now)
    return undefined
  }
}
