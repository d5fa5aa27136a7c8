/**
 * The Helia side of bench/pinning: a Helia node as an app would run one, and the DAG fetch
 * both the Helia receiver and the serving clients use.
 */
import { rm } from 'node:fs/promises'
import { multiaddr } from '@multiformats/multiaddr'
import { FsBlockstore } from 'blockstore-fs'
import { Registry } from 'prom-client'
import type { CID } from 'multiformats/cid'
import { createStorageMetrics } from '@pharos/beacon/pinning/storage-metrics.ts'
import { walkDag } from '@pharos/beacon/pinning/dag-walk.ts'
import { createBeaconHelia } from '@pharos/beacon/storage/beacon-helia.ts'
import type { BeaconHelia } from '@pharos/beacon/storage/beacon-helia.ts'
import { collectBytes } from '@pharos/beacon/storage/pg-blockstore.ts'
import { createClientPeer } from '../../services/beacon/test/helpers/client-peer.ts'
import type { ClientPeer } from '../../services/beacon/test/helpers/client-peer.ts'
import { testLogger } from '../../services/beacon/test/helpers/storage.ts'
import { tempDir } from '@pharos/testing/worker-process.ts'

/** The worker's PHAROS_PIN_FETCH_CONCURRENCY default: every Helia walk here uses the same. */
export const WALK_CONCURRENCY = 32

/**
 * A Helia node: createHeliaLight with @helia/bitswap and no send budget (what
 * services/beacon's createBeaconHelia builds without options), blocks in blockstore-fs, its
 * own js-libp2p node (TCP + Noise + Yamux) on loopback.
 */
export interface HeliaNode { helia: BeaconHelia, node: ClientPeer, stop: () => Promise<void> }

export async function heliaNode (): Promise<HeliaNode> {
  const node = await createClientPeer({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  const dir = await tempDir('pharos-bench-helia-')
  const blockstore = new FsBlockstore(dir)
  await blockstore.open()
  const helia = createBeaconHelia({ libp2p: node, blockstore, log: testLogger(), metrics: createStorageMetrics(new Registry()) })
  await helia.start()
  return {
    helia,
    node,
    stop: async () => {
      await helia.stop()
      await node.stop()
      await blockstore.close()
      await rm(dir, { recursive: true, force: true })
    }
  }
}

export interface Fetched { seconds: number, blocks: number, bytes: number }

/**
 * Fetches every block of `root` into `receiver` over Bitswap from `from`, the pin walk's
 * model (services/beacon/src/pinning/dag-walk.ts, WALK_CONCURRENCY blocks in flight, each
 * through Helia's blockstore: fetched, verified and stored); seconds from the dial to the
 * last block stored.
 */
export async function fetchDag (receiver: HeliaNode, from: string[], root: CID): Promise<Fetched> {
  const started = performance.now()
  await receiver.node.dial(from.map((text) => multiaddr(text)))
  const unlimited = { key: 'none', value: Number.MAX_SAFE_INTEGER }
  const size = await walkDag(root, {
    signal: AbortSignal.timeout(600_000),
    concurrency: WALK_CONCURRENCY,
    limits: { maxBytes: unlimited, maxBlocks: unlimited, maxDepth: unlimited, quotaBytes: unlimited, maxLinksPerBlock: 1_000_000 },
    load: async (cid, signal) => ({ bytes: await collectBytes(receiver.helia.blockstore.get(cid, { signal })), newToOwner: true }),
    onBlock: async () => {}
  })
  return { seconds: (performance.now() - started) / 1000, ...size }
}
