/**
 * The challenger's side of `/<network>/audit/1.0.0`, for a beacon checking another worker and
 * for a peer checking a beacon (`PharosPeer.challenge`): a fresh random nonce and the CIDs go
 * out, and each proof that comes back is judged against the challenger's own copy of the
 * block by services/protocol's `judgeChallengeAnswer` (docs/audits.md).
 */
import type { AbortOptions, Libp2p, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import {
  auditProtocolId,
  CHALLENGE_NONCE_BYTES,
  encodeChallengeRequest,
  judgeChallengeAnswer,
  MAX_CHALLENGE_CIDS,
  MAX_CHALLENGE_FRAME_BYTES
} from '@pharos/protocol/audit/index.ts'
import type { ChallengeResult } from '@pharos/protocol/audit/index.ts'
import { MalformedResponseError } from '../errors.ts'
import { request } from '../request-response.ts'

export interface ChallengeOptions extends AbortOptions {
  network: string
  /** Our own bound on the exchange (RequestTimeoutError past it). @default only `signal` bounds it */
  timeoutMs?: number
}

/**
 * Challenges `worker` to prove it holds `cids` (1..MAX_CHALLENGE_CIDS) and judges its answer
 * against `ownCopy` (the challenger's copy of a block, or undefined when it holds no good one:
 * that CID then proves nothing). Throws MalformedResponseError for an answer that is not one.
 */
export async function challengeWorker (
  node: Pick<Libp2p, 'dialProtocol'>,
  worker: PeerId,
  cids: readonly CID[],
  ownCopy: (cid: CID) => Promise<Uint8Array | undefined>,
  options: ChallengeOptions
): Promise<ChallengeResult> {
  if (cids.length === 0 || cids.length > MAX_CHALLENGE_CIDS) throw new RangeError(`a challenge names 1..${MAX_CHALLENGE_CIDS} CIDs, not ${cids.length}`)
  const protocol = auditProtocolId(options.network)
  const challenge = { nonce: globalThis.crypto.getRandomValues(new Uint8Array(CHALLENGE_NONCE_BYTES)), cids: [...cids] }
  const answer = await request(node, worker, protocol, encodeChallengeRequest({ t: 'challenge', ...challenge }), {
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    maxResponseBytes: MAX_CHALLENGE_FRAME_BYTES,
    what: 'audit challenge'
  })
  const judged = await judgeChallengeAnswer(challenge, answer, ownCopy)
  if (!judged.ok) throw new MalformedResponseError(worker.toString(), protocol, judged.detail)
  return judged.value
}
