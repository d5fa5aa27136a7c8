import type { Libp2p } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { decodeSyncRequest, encodeSyncResponse, syncProtocolId } from '@pharos/protocol/log/index.ts'
import type { EntryBlock } from '@pharos/protocol/log/index.ts'
import { serveRequests } from '@pharos/net/request-response.ts'

/** What a peer serving its log was asked: the `from` of each `entries` request, and the blocks sent. */
export interface ServedLog {
  asked: string[]
  blocks: number
}

/**
 * Serves `log` on `peer`'s sync protocol as the peer SDK does: an `entries` request gets the
 * blocks walking back along `prev` from its `from`, up to its limit. Each request waits for
 * `gate` first (a peer that answers slowly, or not until told).
 */
export async function serveLog (peer: Libp2p, network: string, log: readonly EntryBlock[], gate: () => Promise<void> = async () => {}): Promise<ServedLog> {
  const served: ServedLog = { asked: [], blocks: 0 }
  const byCid = new Map(log.map((block) => [block.cid.toString(), block]))
  await serveRequests(peer, syncProtocolId(network), async (frame) => {
    const decoded = decodeSyncRequest(frame)
    if (!decoded.ok || decoded.value.t !== 'entries') return undefined
    served.asked.push(decoded.value.from.toString())
    await gate()
    const blocks: Uint8Array[] = []
    for (let cid: CID | null = decoded.value.from; cid !== null && blocks.length < decoded.value.limit;) {
      const block = byCid.get(cid.toString())
      if (block === undefined) break
      blocks.push(block.bytes)
      cid = block.entry.prev
    }
    served.blocks += blocks.length
    return encodeSyncResponse({ t: 'entries', blocks })
  }, { maxRequestBytes: 64 * 1024, timeoutMs: 60_000, maxInboundStreams: 32 })
  return served
}
