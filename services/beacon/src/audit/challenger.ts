/**
 * The challenger's side of `/<network>/audit/1.0.0`, for a beacon checking another worker (or
 * any peer that answers the protocol): a fresh random nonce and the CIDs, then each proof is
 * checked against our own verified copy. The peer SDK has the same thing as
 * `PharosPeer.challenge`; both judge answers with services/protocol's `judgeChallengeAnswer`.
 */
import { randomBytes } from 'node:crypto'
import { NotFoundError } from 'interface-store'
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import {
  auditProtocolId,
  CHALLENGE_NONCE_BYTES,
  encodeChallengeRequest,
  judgeChallengeAnswer,
  MAX_CHALLENGE_CIDS,
  MAX_CHALLENGE_FRAME_BYTES
} from '../../../protocol/src/audit/index.ts'
import type { ChallengeResult } from '../../../protocol/src/audit/index.ts'
import { request } from '../p2p/request-response.ts'
import { BlockHashMismatchError } from '../storage/pg-blockstore.ts'
import type { PgBlockstore } from '../storage/pg-blockstore.ts'

/** The worker's answer could not be read as one (wrong shape, wrong number of proofs). */
export class MalformedChallengeAnswerError extends Error {
  override readonly name = 'MalformedChallengeAnswerError'
  constructor (peer: string, detail: string) {
    super(`audit answer from ${peer}: ${detail}`)
  }
}

export interface ChallengeOptions {
  network: string
  signal: AbortSignal
}

/** Our verified copy of a block, or undefined when we hold no good copy (it then proves nothing). */
export function verifiedCopy (blockstore: Pick<PgBlockstore, 'getBytes'>): (cid: CID) => Promise<Uint8Array | undefined> {
  return async (cid) => {
    try {
      return await blockstore.getBytes(cid)
    } catch (err) {
      if (err instanceof NotFoundError || err instanceof BlockHashMismatchError) return undefined
      throw err
    }
  }
}

/** Challenges `worker` to prove it holds `cids` (1..MAX_CHALLENGE_CIDS) and judges its answer against `ownCopy`. */
export async function challengeWorker (
  node: Pick<Libp2p, 'dialProtocol'>,
  worker: PeerId,
  cids: readonly CID[],
  ownCopy: (cid: CID) => Promise<Uint8Array | undefined>,
  options: ChallengeOptions
): Promise<ChallengeResult> {
  if (cids.length === 0 || cids.length > MAX_CHALLENGE_CIDS) throw new RangeError(`a challenge names 1..${MAX_CHALLENGE_CIDS} CIDs, not ${cids.length}`)
  const challenge = { nonce: new Uint8Array(randomBytes(CHALLENGE_NONCE_BYTES)), cids: [...cids] }
  const answer = await request(node, worker, auditProtocolId(options.network), encodeChallengeRequest({ t: 'challenge', ...challenge }), {
    signal: options.signal,
    maxResponseBytes: MAX_CHALLENGE_FRAME_BYTES
  })
  const judged = await judgeChallengeAnswer(challenge, answer, ownCopy)
  if (!judged.ok) throw new MalformedChallengeAnswerError(worker.toString(), judged.detail)
  return judged.value
}
