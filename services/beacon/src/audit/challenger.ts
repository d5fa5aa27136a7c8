/**
 * What a beacon needs to challenge another worker (services/net's `challengeWorker`): its own
 * verified copy of each block the challenge names.
 */
import { NotFoundError } from 'interface-store'
import type { CID } from 'multiformats/cid'
import { BlockHashMismatchError } from '../storage/pg-blockstore.ts'
import type { PgBlockstore } from '../storage/pg-blockstore.ts'

export { challengeWorker } from '@pharos/net/clients/audit-challenge.ts'

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
