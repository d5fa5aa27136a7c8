/**
 * The patch to @helia/bitswap (patches/@helia+bitswap+4.0.19.patch, docs/upstream.md): a
 * `sendBudget` bounds the blocks a peer's ledger reads before they are sent, and a peer that
 * disconnects stops its ledger. Stock @helia/bitswap reads every wanted block into one
 * message first, whatever the peer does with it. Real nodes on loopback, blocks in memory.
 */
import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { MemoryBlockstore } from 'blockstore-core'
import type { AbortOptions } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { Registry } from 'prom-client'
import { createStorageMetrics } from '@pharos/beacon/pinning/storage-metrics.ts'
import { createBeaconHelia } from '@pharos/beacon/storage/beacon-helia.ts'
import type { BeaconHelia } from '@pharos/beacon/storage/beacon-helia.ts'
import { BitswapSendBudget } from '@pharos/beacon/storage/bitswap-send-budget.ts'
import { neverRead, sendWants } from '../../services/beacon/test/helpers/bitswap-wire.ts'
import { createClientPeer } from '../../services/beacon/test/helpers/client-peer.ts'
import type { ClientPeer } from '../../services/beacon/test/helpers/client-peer.ts'
import { randomContent, testLogger } from '../../services/beacon/test/helpers/storage.ts'
import { sleep, waitFor } from '@pharos/testing/wait.ts'

/**
 * Each message goes out on a stream of its own, and a stream takes 256 KiB (yamux's initial
 * window) before a peer that does not read stops it: a batch of two such blocks stalls.
 */
const BLOCK = 256 * 1024
const BLOCKS = 12

describe('@helia/bitswap send budget patch', () => {
  const nodes: ClientPeer[] = []
  const helias: BeaconHelia[] = []
  afterEach(async () => {
    for (const helia of helias.splice(0)) await Promise.resolve(helia.stop()).catch(() => {})
    for (const node of nodes.splice(0)) await Promise.resolve(node.stop()).catch(() => {})
  })

  it('reads no more than the budget allows for a peer that does not read, and stops its ledger when it leaves', async () => {
    const blockstore = new MemoryBlockstore()
    const cids: CID[] = []
    for (let i = 0; i < BLOCKS; i++) {
      const bytes = randomContent(BLOCK)
      const cid = CID.createV1(raw.code, await sha256.digest(bytes))
      await blockstore.put(cid, bytes)
      cids.push(cid)
    }
    let reads = 0
    const get = blockstore.get.bind(blockstore)
    blockstore.get = (cid: CID, options?: AbortOptions) => {
      reads++
      return get(cid, options)
    }
    const budget = new BitswapSendBudget({
      peerBytes: 2 * BLOCK,
      totalBytes: 8 * BLOCK,
      sizeOf: async (cid) => await blockstore.has(cid) ? BLOCK : undefined
    })

    const server = await createClientPeer({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    nodes.push(server)
    const helia = createBeaconHelia({ libp2p: server, blockstore, log: testLogger(), metrics: createStorageMetrics(new Registry()), sendBudget: budget })
    helias.push(helia)
    await helia.start()

    const reader = await createClientPeer()
    nodes.push(reader)
    await neverRead(reader)
    await reader.dial(multiaddr(server.getMultiaddrs()[0]?.toString() ?? assert.fail()))
    await sendWants(reader, server.peerId, cids)
    await waitFor('the ledger to wait for room in the budget', () => budget.snapshot().peersWaiting === 1, 10_000, () => JSON.stringify({ reads, ...budget.snapshot() }))
    await sleep(300)
    assert.equal(reads, 2, `stock @helia/bitswap reads all ${BLOCKS} wanted blocks at once`)
    assert.equal(budget.snapshot().bytesInFlight, 2 * BLOCK)

    // The peer leaves: its stalled stream resets (freeing the budget, so the ledger may read
    // another share before it hears of the disconnect), then its ledger stops for good
    // instead of reading the rest of the want list and dialling the peer back for each batch.
    await reader.stop()
    await waitFor('the departed peer\'s ledger to stop waiting', () => budget.snapshot().peersWaiting === 0)
    await waitFor('its budget to come back', () => budget.snapshot().bytesInFlight === 0)
    const readWhenStopped = reads
    await sleep(1000)
    assert.equal(reads, readWhenStopped, 'the stopped ledger read on')
    assert.ok(reads < BLOCKS, `the departed peer's ledger read ${reads} of its ${BLOCKS} wanted blocks`)
  })
})
