import { Counter, Histogram } from 'prom-client'
import type { Registry } from 'prom-client'

/** How an audit round ended: `storage-unavailable` rounds stop early and sign nothing. */
export const AUDIT_ROUND_OUTCOMES = ['completed', 'storage-unavailable', 'failed'] as const
export type AuditRoundOutcome = typeof AUDIT_ROUND_OUTCOMES[number]
/** Why an audit found a block bad. */
export const AUDIT_FAILURE_REASONS = ['missing', 'corrupt'] as const
/** What became of the repair of a bad block. */
export const AUDIT_REPAIR_OUTCOMES = ['repaired', 'failed'] as const
/**
 * What became of a challenge this worker answered: `answered` (proofs sent, whatever they
 * say), `rate-limited` and `busy` (refused), `rejected` (a malformed, oversized or too-slow
 * request, or one that could not be answered because Postgres was unreachable: its stream was
 * aborted).
 */
export type ChallengeAnswerOutcome = 'answered' | 'rate-limited' | 'busy' | 'rejected'
/** Verdicts of challenges this worker sent, or `error` when no verdict came back. */
export type ChallengeSentOutcome = 'passed' | 'failed' | 'unverifiable' | 'refused' | 'error'

/** Metrics of storage audits and challenges. Labels are closed sets; never CIDs or peers. */
export function createAuditMetrics (registry: Registry) {
  const rounds = new Counter({
    name: 'pharos_audit_rounds_total',
    help: 'Audit rounds run by this worker, by outcome',
    labelNames: ['outcome'] as const,
    registers: [registry]
  })
  const failures = new Counter({
    name: 'pharos_audit_failures_total',
    help: 'Blocks an audit round found missing or corrupt, by reason',
    labelNames: ['reason'] as const,
    registers: [registry]
  })
  const repairs = new Counter({
    name: 'pharos_audit_repairs_total',
    help: 'Repairs of blocks an audit found bad (fetched from peers, verified, stored again), by outcome',
    labelNames: ['outcome'] as const,
    registers: [registry]
  })
  // Every label from the start: `increase()` over a series that appears at 1 reads 0, so
  // the first bad block or failed repair would not fire its alert.
  for (const outcome of AUDIT_ROUND_OUTCOMES) rounds.inc({ outcome }, 0)
  for (const reason of AUDIT_FAILURE_REASONS) failures.inc({ reason }, 0)
  for (const outcome of AUDIT_REPAIR_OUTCOMES) repairs.inc({ outcome }, 0)
  return {
    rounds: rounds as { inc: (labels: { outcome: AuditRoundOutcome }) => void },
    roundDuration: new Histogram({
      name: 'pharos_audit_round_duration_seconds',
      help: 'Duration of completed audit rounds (checks, repairs and the signed report), throttling included',
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900],
      registers: [registry]
    }),
    blocksChecked: new Counter({
      name: 'pharos_audit_blocks_checked_total',
      help: 'Pinned blocks this worker re-read and re-hashed in audit rounds',
      registers: [registry]
    }),
    bytesChecked: new Counter({
      name: 'pharos_audit_bytes_checked_total',
      help: 'Bytes of pinned blocks this worker re-read and re-hashed in audit rounds',
      registers: [registry]
    }),
    failures: failures as { inc: (labels: { reason: typeof AUDIT_FAILURE_REASONS[number] }) => void },
    repairs: repairs as { inc: (labels: { outcome: typeof AUDIT_REPAIR_OUTCOMES[number] }) => void },
    challengesAnswered: new Counter({
      name: 'pharos_audit_challenges_answered_total',
      help: 'Storage-proof challenges other peers sent this worker, by outcome (rejected: malformed, oversized, too slow or unanswerable; the stream was aborted)',
      labelNames: ['outcome'] as const,
      registers: [registry]
    }) as { inc: (labels: { outcome: ChallengeAnswerOutcome }) => void },
    challengesSent: new Counter({
      name: 'pharos_audit_challenges_sent_total',
      help: 'Storage-proof challenges this worker sent to other workers, by verdict',
      labelNames: ['outcome'] as const,
      registers: [registry]
    }) as { inc: (labels: { outcome: ChallengeSentOutcome }) => void }
  }
}

export type AuditMetrics = ReturnType<typeof createAuditMetrics>
