/**
 * A peer's storage audits of beacon workers (docs/audits.md): net's `challengeWorker` sends
 * the challenge and judges the answer; the peer's part is its own copy of each block.
 */
import type { Helia } from '@helia/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { CID } from 'multiformats/cid'
import { challengeWorker } from '@pharos/net/clients/audit-challenge.ts'
import type { ChallengeResult } from '@pharos/protocol/audit/index.ts'
import { collectBytes } from './bytes.ts'
import type { AbortOptions, Libp2p, PeerId } from '@libp2p/interface'

export interface StorageAuditComponents {
  libp2p: Pick<Libp2p, 'dialProtocol'>
  /** The peer's blockstore, read offline: a block this peer lacks proves nothing. */
  blockstore: Pick<Helia['blockstore'], 'get'>
  network: string
  requestMs: number
}

/** Challenges `worker` to prove it holds `cids`, judged against this peer's own copies. */
export async function challengeBeacon (components: StorageAuditComponents, worker: PeerId | string, cids: readonly CID[], options: AbortOptions): Promise<ChallengeResult> {
  const { libp2p, blockstore, network, requestMs } = components
  const peer = typeof worker === 'string' ? peerIdFromString(worker) : worker
  return await challengeWorker(libp2p, peer, cids, async (cid) => {
    try {
      return await collectBytes(blockstore.get(cid, { offline: true }))
    } catch (err) {
      const name = (err as Error | undefined)?.name
      if (name === 'NotFoundError' || name === 'BlockNotFoundWhileOfflineError') return undefined
      throw err
    }
  }, { ...options, network, timeoutMs: requestMs })
}
